//! Progress while a batch runs, and the summary at its end.
//!
//! On a terminal: a bar with the rate, the ETA and the counts. Elsewhere
//! (a log, CI): a plain line every few seconds. With -q: nothing but errors.

use crate::report::{Report, Status};
use crate::retry::{Waits, secs};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PLAIN_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counts {
    registered: AtomicUsize,
    exists: AtomicUsize,
    rejected: AtomicUsize,
    failed: AtomicUsize,
    skipped: AtomicUsize,
    dry_run: AtomicUsize,
    incomplete: AtomicUsize,
    duplicate: AtomicUsize,
    updated: AtomicUsize,
    unchanged: AtomicUsize,
    deactivated: AtomicUsize,
    already_inactive: AtomicUsize,
    incomplete_existing: AtomicUsize,
    to_create: AtomicUsize,
    to_change: AtomicUsize,
    pruned: AtomicUsize,
    to_prune: AtomicUsize,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    counts: Counts,
    start: Instant,
    last_plain: Mutex<Instant>,
    total: Option<u64>,
    /// What the run waits for (a rate limit), shown on the progress line.
    waits: Arc<Waits>,
}

/// The end of a batch, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub registered: usize,
    pub exists: usize,
    pub rejected: usize,
    pub failed: usize,
    /// Done by an earlier run with the same results file.
    pub skipped: usize,
    pub dry_run: usize,
    /// Registered, but a step after that is still undone.
    pub incomplete: usize,
    /// Rows that repeat an earlier row's username.
    pub duplicate: usize,
    /// `--ensure`: accounts that existed and were changed.
    pub updated: usize,
    /// `--ensure`, `--plan`: accounts that were as the input says.
    pub unchanged: usize,
    pub deactivated: usize,
    /// Recorded deactivated, having been so already (or gone).
    pub already_inactive: usize,
    /// `incomplete` rows of accounts that existed before the run.
    pub incomplete_existing: usize,
    /// `--plan`: accounts that would be created.
    pub to_create: usize,
    /// `--plan`: accounts that would be changed.
    pub to_change: usize,
    /// `--prune`: accounts deactivated or locked for not being in the inventory.
    pub pruned: usize,
    /// `--plan --prune`: of `to_change`, the accounts that would be pruned.
    pub to_prune: usize,
}

impl Summary {
    pub fn rows(&self) -> usize {
        self.registered
            + self.exists
            + self.rejected
            + self.failed
            + self.skipped
            + self.dry_run
            + self.incomplete
            + self.duplicate
            + self.updated
            + self.unchanged
            + self.deactivated
            + self.already_inactive
            + self.to_create
            + self.to_change
            + self.pruned
    }
}

/// A rate for people: whole numbers, one decimal below 10.
pub fn rate(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

impl Progress {
    pub fn new(quiet: bool, total: Option<u64>, waits: Arc<Waits>) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{bar:30} {pos}/{len}  ETA {eta}  {msg}"
            } else {
                "{spinner} {pos} rows  {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            plain: !quiet && !tty,
            counts: Counts::default(),
            start: Instant::now(),
            last_plain: Mutex::new(Instant::now()),
            total,
            waits,
        }
    }

    /// Counts one finished row.
    pub fn add(&self, report: &Report, skipped: bool) {
        let status = report.status;
        let c = &self.counts;
        let counter = match (skipped, status) {
            (true, _) => &c.skipped,
            (_, Status::Registered) => &c.registered,
            (_, Status::Exists) => &c.exists,
            (_, Status::Rejected) => &c.rejected,
            (_, Status::DryRun) => &c.dry_run,
            (_, Status::Incomplete) => &c.incomplete,
            (_, Status::Duplicate) => &c.duplicate,
            (_, Status::Failed | Status::Pending) => &c.failed,
            (_, Status::Updated) => &c.updated,
            (_, Status::Unchanged) => &c.unchanged,
            (_, Status::Deactivated) if report.changes.as_ref().is_none_or(|c| c.is_empty()) => {
                &c.already_inactive
            }
            (_, Status::Deactivated) => &c.deactivated,
            (_, Status::Plan) if !report.would_change() => &c.unchanged,
            (_, Status::Pruned) => &c.pruned,
            (_, Status::Plan) if report.exists == Some(false) => &c.to_create,
            (_, Status::Plan) => &c.to_change,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if status == Status::Plan && report.pruned == Some(true) && report.would_change() {
            c.to_prune.fetch_add(1, Ordering::Relaxed);
        }
        if !skipped
            && status == Status::Incomplete
            && report.exists == Some(true)
            && report.created != Some(true)
        {
            c.incomplete_existing.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.refresh();
    }

    /// Redraws the counts (and what the run waits for): on every row, and
    /// every second while rows are slow to come.
    pub fn refresh(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(self.counts_text());
        } else if self.plain {
            let mut last = self.last_plain.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= PLAIN_EVERY {
                *last = Instant::now();
                let s = self.summary();
                let of = self.total.map(|t| format!(" of {t}")).unwrap_or_default();
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "progress: {}{of} rows  {}",
                    s.rows(),
                    self.counts_text()
                );
            }
        }
    }

    /// A line on standard error that does not tear the bar.
    pub fn println(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    fn counts_text(&self) -> String {
        let s = self.summary();
        let rate = (s.rows() - s.skipped) as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let mut t = format!(
            "{}/s  ok {}  exists {}  failed {}",
            self::rate(rate),
            s.registered,
            s.exists,
            s.failed + s.rejected + s.duplicate
        );
        if s.incomplete > 0 {
            t.push_str(&format!("  incomplete {}", s.incomplete));
        }
        if s.skipped > 0 {
            t.push_str(&format!("  done before {}", s.skipped));
        }
        if s.updated + s.unchanged > 0 {
            t.push_str(&format!(
                "  updated {}  unchanged {}",
                s.updated, s.unchanged
            ));
        }
        if let Some((what, left)) = self.waits.waiting() {
            t.push_str(&format!("  waiting {} {what}", secs(left)));
        }
        t
    }

    pub fn summary(&self) -> Summary {
        let c = &self.counts;
        let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        Summary {
            registered: get(&c.registered),
            exists: get(&c.exists),
            rejected: get(&c.rejected),
            failed: get(&c.failed),
            skipped: get(&c.skipped),
            dry_run: get(&c.dry_run),
            incomplete: get(&c.incomplete),
            duplicate: get(&c.duplicate),
            updated: get(&c.updated),
            unchanged: get(&c.unchanged),
            deactivated: get(&c.deactivated),
            already_inactive: get(&c.already_inactive),
            incomplete_existing: get(&c.incomplete_existing),
            to_create: get(&c.to_create),
            to_change: get(&c.to_change),
            pruned: get(&c.pruned),
            to_prune: get(&c.to_prune),
        }
    }

    /// Clears the bar; the summary line and the elapsed time.
    pub fn finish(&self) -> (Summary, Duration) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        (self.summary(), self.start.elapsed())
    }
}
