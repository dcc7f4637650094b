//! SIGINT and SIGTERM: an interrupted run puts the terminal back, ends every
//! session it opened on the server (within [`GRACE`]), says so in one line
//! and exits with 130 (SIGINT) or 143 (SIGTERM), as a shell reports them.
//!
//! The signals are blocked in every thread and taken by one thread of their
//! own ([`install`], called before any other thread starts), so a hook busy
//! in Lua or a request in flight cannot delay the answer past the grace.

use crate::homeserver::sessions;
use std::time::Duration;

/// The longest an interrupted run waits for its sessions to end.
pub const GRACE: Duration = Duration::from_secs(5);

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread started
/// after) and starts the thread that answers them.
pub fn install() {
    // SAFETY: plain libc calls on a sigset_t this function owns.
    let set = unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        let set = set.assume_init();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        loop {
            let mut sig = 0;
            // SAFETY: sigwait on the set blocked above.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                interrupted(sig);
            }
        }
    });
}

fn interrupted(sig: i32) -> ! {
    // At a prompt, the line the person was typing on is ended first.
    let at_prompt = crate::prompt::restore_terminal();
    let name = if sig == libc::SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    };
    let start = std::time::Instant::now();
    let (mut ended, mut left) = sessions::end_all(GRACE);
    // A request in flight may still hand the run a session: ended too.
    while start.elapsed() < GRACE / 2 {
        std::thread::sleep(Duration::from_millis(50));
        if sessions::count() > 0 {
            let (e, l) = sessions::end_all(GRACE.saturating_sub(start.elapsed()));
            ended += e;
            left += l;
        } else if start.elapsed() >= Duration::from_millis(200) {
            break;
        }
    }
    let mut line = format!(
        "{}error: interrupted by {name}",
        if at_prompt { "\n" } else { "" }
    );
    if ended > 0 {
        line.push_str(&format!(
            "; ended the {ended} session{} the run had opened",
            if ended == 1 { "" } else { "s" }
        ));
    }
    if left > 0 {
        line.push_str(&format!(
            "; {left} session{} could not be ended within {} s (a rerun with the same results file ends them)",
            if left == 1 { "" } else { "s" },
            GRACE.as_secs()
        ));
    }
    eprintln!("{line}");
    std::process::exit(128 + sig);
}
