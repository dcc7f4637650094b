//! The runner: executes stages in order over one record and fires hooks
//! between them.
//!
//! Stages know nothing of hooks; hooks attach here, through the
//! [`Hooks`] trait. The runner also owns the two rules that hold for every
//! registration: an error after the account exists becomes
//! [`Error::AfterCreate`], and a session opened for hooks is always closed.

use crate::error::{Error, HsError};
use crate::record::{AFTER_SUBMIT, HookCall, HookPoint, Outcome, Record, Stage, Undone};
use crate::stages::{self, Ctx};

/// Something that runs between stages. The Lua engine is one; [`NoHooks`] is
/// the other.
pub trait Hooks {
    fn fire(&mut self, call: &HookCall<'_>, rec: &mut Record) -> Result<(), Error>;

    /// The hook files that handle `point`, for saying what was left undone.
    fn handlers(&self, _point: HookPoint) -> Vec<String> {
        Vec::new()
    }
}

pub struct NoHooks;

impl Hooks for NoHooks {
    fn fire(&mut self, _: &HookCall<'_>, _: &mut Record) -> Result<(), Error> {
        Ok(())
    }
}

/// Runs stages in order over one record, firing hooks before and after each.
pub struct Runner<'h> {
    hooks: &'h mut dyn Hooks,
    dry_run: bool,
    /// The hook point running now, if a hook runs.
    at: Option<HookPoint>,
    /// Fire hook points from this one on only (a rerun).
    skip_until: Option<HookPoint>,
}

impl<'h> Runner<'h> {
    pub fn new(hooks: &'h mut dyn Hooks, dry_run: bool) -> Self {
        Runner {
            hooks,
            dry_run,
            at: None,
            skip_until: None,
        }
    }

    /// Finishes an account an earlier run created: the hooks from `from`
    /// (a point after submit) on, and the post stage.
    pub fn resume(
        &mut self,
        from: HookPoint,
        after: &[Stage],
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        self.skip_until = Some(from);
        if from == HookPoint::After(Stage::Submit) {
            // The submit stage itself is done: only its after-point is fired.
            let mut step = String::new();
            let r = self.fire(from, rec, &mut step, ctx);
            self.skip_until = None;
            if let Err(e) = r {
                return self.finish(Err(e), rec, ctx, &step);
            }
        }
        self.run(after, rec, ctx)
    }

    pub fn run(
        &mut self,
        stages: &[Stage],
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        let mut step = String::new();
        let result = self.run_stages(stages, rec, ctx, &mut step);
        self.finish(result, rec, ctx, &step)
    }

    /// After the stages: what an error amounts to, the `on_error` hooks,
    /// and the session that never outlives the run.
    fn finish(
        &mut self,
        result: Result<(), Error>,
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
        step: &str,
    ) -> Result<(), Error> {
        let mut result = match result {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = match (&rec.user_id, err) {
                    (_, e @ Error::AfterCreate { .. }) => e,
                    // An account this run created or changed; one it only
                    // read is as it was, and the error is a plain refusal.
                    (Some(user_id), e)
                        if matches!(rec.outcome, Some(Outcome::Registered | Outcome::Updated)) =>
                    {
                        Error::AfterCreate {
                            user_id: user_id.clone(),
                            existed: rec.outcome != Some(Outcome::Registered),
                            step: step.to_string(),
                            cause: e.to_string(),
                            undone: Box::new(Undone {
                                from: self.at.map(|p| p.to_string()),
                                live_session: false,
                                want_session: rec.want_session,
                                account: Vec::new(),
                            }),
                            left: String::new(),
                        }
                    }
                    (_, e) => e,
                };
                // A session asked for by hooks never outlives the run; one that
                // cannot be ended is named in what was left undone.
                if let Err(e) = stages::post::end_session(rec, ctx) {
                    ctx.console.verbose(&e.to_string());
                }
                let err = self.left_undone(err, rec);
                let call = HookCall {
                    point: HookPoint::OnError,
                    server_url: rec.server_url.as_deref(),
                    dry_run: self.dry_run,
                    error: Some(err.to_string()),
                    deadline: ctx.deadline,
                    rerun: ctx.rerun,
                };
                let mut scratch = rec.clone();
                if let Err(hook_err) = self.hooks.fire(&call, &mut scratch) {
                    ctx.console
                        .warn(&format!("on_error hook failed too: {hook_err}"));
                }
                Err(err)
            }
        };
        if result.is_ok() {
            if let Err(e) = stages::post::end_session(rec, ctx) {
                result = Err(self.left_undone(e, rec));
            }
        }
        result
    }

    /// Fills in what an account that exists was left without: the hook
    /// points from the failed one on, with their files, and a live session.
    fn left_undone(&self, err: Error, rec: &Record) -> Error {
        let Error::AfterCreate {
            user_id,
            existed,
            step,
            cause,
            mut undone,
            ..
        } = err
        else {
            return err;
        };
        // A session that is still open (ending it failed) is live.
        undone.live_session |= rec.access_token.is_some();
        let from = undone.from.as_deref().and_then(HookPoint::parse);
        let mut left: Vec<String> = Vec::new();
        for step in &undone.account {
            left.push(crate::backend::mas::step_left(step).to_string());
        }
        if let Some(from) = from {
            let start = AFTER_SUBMIT.iter().position(|p| *p == from).unwrap_or(0);
            for p in &AFTER_SUBMIT[start..] {
                let files = self.hooks.handlers(*p);
                if !files.is_empty() {
                    left.push(format!("the {p} hook of {}", files.join(", ")));
                }
            }
        }
        if undone.live_session {
            let device = rec.device_id.as_deref();
            left.push(format!(
                "ending the session the tool opened on the account: a device with a live access \
                 token stays on it{}; end it with DELETE /_synapse/admin/v2/users/{user_id}/devices/{}, \
                 or rerun a batch with its results file",
                device.map(|d| format!(" (device {d})")).unwrap_or_default(),
                device.unwrap_or("DEVICE")
            ));
        }
        Error::AfterCreate {
            user_id,
            existed,
            step,
            cause,
            undone,
            left: left.join("; "),
        }
    }

    fn run_stages(
        &mut self,
        stages: &[Stage],
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
        step: &mut String,
    ) -> Result<(), Error> {
        let mut spent = 0;
        let mut i = 0;
        while let Some(&stage) = stages.get(i) {
            if stage.creates() && rec.skips_creation() {
                // --ensure: the account exists (or is not to be created).
                i += 1;
                continue;
            }
            self.fire(HookPoint::Before(stage), rec, step, ctx)?;
            *step = format!("the {stage} stage");
            self.at = None;
            match stages::run(stage, rec, ctx) {
                Ok(()) => {}
                Err(Error::Again { from, cause }) => {
                    let method = if stage == Stage::Nonce { "GET" } else { "POST" };
                    let Some(wait) = self.again(method, &cause, &mut spent, ctx)? else {
                        return Err(Error::Server(*cause));
                    };
                    ctx.console.verbose(&format!(
                        "{}: {cause}; trying again from the {from} stage in {:.1} s ({spent}/{})",
                        rec.username.as_deref().unwrap_or("?"),
                        wait.as_secs_f64(),
                        ctx.retries
                    ));
                    i = stages.iter().position(|s| *s == from).unwrap_or(i);
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.fire(HookPoint::After(stage), rec, step, ctx)?;
            i += 1;
        }
        Ok(())
    }

    /// Whether, and after which wait (already waited), the register call is
    /// tried again after `e`: the run's retry policy with `--retries` as the
    /// budget. A rate limit is waited out whatever `--retries` says (it uses
    /// none up), within `--max-wait` and `--deadline`.
    fn again(
        &self,
        method: &str,
        e: &HsError,
        spent: &mut u32,
        ctx: &Ctx<'_>,
    ) -> Result<Option<std::time::Duration>, Error> {
        let resolved = ctx.resolved()?;
        let policy = crate::retry::Policy {
            retries: ctx.retries,
            ..resolved.transport.policy.clone()
        };
        // Safe to repeat: a "user in use" after a lost answer is settled by a login.
        match policy.decide(e, *spent, crate::retry::Repeat::Safe, ctx.deadline) {
            Ok((wait, counts)) => {
                *spent += u32::from(counts);
                let what = format!("{method} {}", crate::homeserver::REGISTER_PATH);
                policy.waits.wait(&what, e, wait, &|| None);
                Ok(Some(wait))
            }
            Err(crate::retry::GiveUp::Final | crate::retry::GiveUp::Spent) => Ok(None),
            Err(why) => Err(Error::Server(policy.explain(e.clone(), why))),
        }
    }

    fn fire(
        &mut self,
        point: HookPoint,
        rec: &mut Record,
        step: &mut String,
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        if let Some(from) = self.skip_until {
            if from != point {
                return Ok(());
            }
            self.skip_until = None;
        }
        self.at = Some(point);
        *step = format!("the {point} hook");
        let server_url = rec.server_url.clone();
        let call = HookCall {
            point,
            server_url: server_url.as_deref(),
            dry_run: self.dry_run,
            error: None,
            deadline: ctx.deadline,
            rerun: ctx.rerun,
        };
        let r = self.hooks.fire(&call, rec);
        if r.is_ok() {
            self.at = None;
        }
        r
    }
}
