//! Ctrl-C for the commands that run long (`pets`, `eval`): the first press raises a flag that
//! the work checks at its next consistent point, a second ends the process at once; either way
//! an interrupted command exits with status 130 (128 + SIGINT), as a shell reports a process
//! that SIGINT ended.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

/// The exit status of an interrupted command.
const INTERRUPTED: u8 = 130;

/// The flag that a first Ctrl-C raises, after printing `finishing` (what the command completes
/// before it stops); a second Ctrl-C ends the process at once with status 130, after printing
/// `remains` (what is left on disk).
pub fn install_interrupt_handler(finishing: &'static str, remains: &'static str) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: leave now. Every file is written atomically or appended line
            // by line, so what was complete remains.
            eprintln!("\nsecond interrupt: exiting now{remains}");
            exit_at_once(INTERRUPTED.into());
        }
        eprintln!("\ninterrupt: finishing {finishing} (Ctrl-C again to exit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// The exit status of a command that the flag may have stopped: 130 when it did, else 0.
pub fn exit_status(interrupted: bool) -> ExitCode {
    if interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Ends the process with `code` from the Ctrl-C handler's thread while the main thread may be
/// in the middle of GPU work or already returning from `main`: without running exit handlers
/// and library destructors (`_exit`), which would otherwise run concurrently with the main
/// thread's use of the driver, or with its own exit (a crash instead of status 130, seen with
/// lavapipe on a loaded machine).
fn exit_at_once(code: i32) -> ! {
    #[cfg(unix)]
    {
        // SAFETY: `_exit` takes no pointers and never returns; it is async-signal-safe.
        unsafe { libc::_exit(code) }
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}
