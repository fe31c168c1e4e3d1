//! Ctrl-C while the engine works with the GIL released. Python runs its signal handlers only
//! between bytecodes of the main thread, so none runs during a training or a plan; CPython's
//! C-level handler, though, writes every signal's number to the wakeup descriptor at once.
//! `lookahead._signals.signal_fds` makes a pipe that descriptor (`signal.set_wakeup_fd`) around an
//! engine call and passes its read end here, where a thread watches it and raises the engine's
//! interrupt flag on SIGINT.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use pyo3::prelude::*;

use crate::env::{take_error, ErrorSlot};
use crate::errors::OrPy;

/// Set by the SIGINT handler of `lookahead.pets.run` and `lookahead.sac.run` (the first Ctrl-C)
/// and read after every environment step; the running loop stops with every file consistent.
/// Cleared when a run starts. (The wakeup descriptor's watcher, [`Interrupt`], stops every
/// phase, training included.)
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the running loop to stop after its current step (what Ctrl-C does).
#[pyfunction]
pub fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// What a run's step callback does after its progress bar: Python's signals and
/// [`request_stop`], either of which stops the run after the step (`stop`, the flag the
/// [`Interrupt`] raises).
pub struct Watch {
    stop: Arc<AtomicBool>,
    /// A signal handler that raised (the run's on a second Ctrl-C): raised again once the run
    /// has stopped with its files consistent.
    raised: Option<PyErr>,
}

impl Watch {
    /// Watches for a run that stops at `stop`; clears an earlier [`request_stop`].
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        STOP_REQUESTED.store(false, Ordering::SeqCst);
        Self { stop, raised: None }
    }

    /// Runs Python's signal handlers and raises `stop` if one raised or asked to stop.
    pub fn step(&mut self) {
        // Ctrl-C in Python (the run's handler calls request_stop): stop after this step.
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            self.raised.get_or_insert(e);
            self.stop.store(true, Ordering::SeqCst);
        }
        if STOP_REQUESTED.load(Ordering::SeqCst) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// The exception a signal handler raised, if any.
    pub fn raised(self) -> Option<PyErr> {
        self.raised
    }
}

/// The read end of the wakeup pipe and the descriptor that was the wakeup descriptor before
/// (-1 for none), to which every byte read is passed on.
pub type SignalFds = Option<(i32, i32)>;

/// Raises its flag when SIGINT arrives, for as long as it lives: on drop the watching thread is
/// woken, stopped and joined. Without descriptors (off the main thread, or not on unix) the flag
/// stays down.
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    watcher: Option<(JoinHandle<()>, Wake)>,
}

impl Interrupt {
    /// Watches `fds` (see [`SignalFds`]).
    pub fn watch(fds: SignalFds) -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let watcher = fds.and_then(|(read, forward)| {
            let (wake, woken) = Wake::new()?;
            let f = flag.clone();
            let thread = std::thread::Builder::new()
                .name("lookahead-sigint".into())
                .spawn(move || watch_fd(read, forward, woken, &f))
                .ok()?;
            Some((thread, wake))
        });
        Self { flag, watcher }
    }

    /// The flag the engine checks.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some((thread, wake)) = self.watcher.take() {
            wake.wake();
            let _ = thread.join();
        }
    }
}

/// The write end of a pipe that ends the watcher's wait (its read end, closed by the watcher).
#[cfg(unix)]
struct Wake(i32);

#[cfg(unix)]
impl Wake {
    /// The pipe: (write end, read end).
    fn new() -> Option<(Self, i32)> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors.
        (unsafe { libc::pipe(fds.as_mut_ptr()) } == 0).then_some((Self(fds[1]), fds[0]))
    }

    fn wake(&self) {
        // SAFETY: one readable byte.
        let _ = unsafe { libc::write(self.0, [0u8].as_ptr().cast(), 1) };
    }
}

#[cfg(unix)]
impl Drop for Wake {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this pipe's, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// Reads the signal numbers written to `read` until a byte arrives on `woken` (which it then
/// closes), raising `flag` at SIGINT and passing every byte on to `forward` (when not -1); ends
/// early if `read` fails.
#[cfg(unix)]
fn watch_fd(read: i32, forward: i32, woken: i32, flag: &AtomicBool) {
    let mut buf = [0u8; 64];
    loop {
        let mut p = [
            libc::pollfd { fd: read, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: woken, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid `pollfd`s, and their count.
        let ready = unsafe { libc::poll(p.as_mut_ptr(), 2, -1) };
        if ready < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if ready < 0 || p[1].revents != 0 || p[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            break;
        }
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(read, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
            continue;
        }
        if n <= 0 {
            break;
        }
        let bytes = &buf[..n as usize];
        if bytes.contains(&(libc::SIGINT as u8)) {
            flag.store(true, Ordering::SeqCst);
        }
        if forward >= 0 {
            // SAFETY: `bytes` is readable for its length. A full or closed descriptor loses the
            // bytes, as CPython's own handler would.
            let _ = unsafe { libc::write(forward, bytes.as_ptr().cast(), bytes.len()) };
        }
    }
    // SAFETY: the read end of the watcher's own pipe, closed once.
    unsafe { libc::close(woken) };
}

/// Nothing to wake where nothing is watched.
#[cfg(not(unix))]
struct Wake;

#[cfg(not(unix))]
impl Wake {
    fn new() -> Option<(Self, i32)> {
        None
    }

    fn wake(&self) {}
}

#[cfg(not(unix))]
fn watch_fd(_read: i32, _forward: i32, _woken: i32, _flag: &AtomicBool) {}

/// Where a run writes: its folder (or nothing) and whether it replaces or continues one.
pub struct Files {
    pub out: Option<PathBuf>,
    pub overwrite: bool,
    pub resume: bool,
}

/// Runs a learning loop (called with the GIL released) through `run` with the run options of
/// `files`, stopped by `stop`, drawing `bar` (a loop's progress display, advanced by `update`
/// and removed by `finish`) and watched by a [`Watch`]: the run's result and the exception a
/// signal handler raised, if any.
pub fn watched_run<P, B, R>(
    bar: Option<B>,
    update: fn(&mut B, &P),
    finish: fn(B),
    files: Files,
    stop: Arc<AtomicBool>,
    run: impl FnOnce(lookahead::run::RunOptions<'_, P>) -> R,
) -> (R, Option<PyErr>) {
    let mut bar = bar;
    let mut watch = Watch::new(stop.clone());
    let mut on_step = |p: &P| {
        if let Some(b) = bar.as_mut() {
            update(b, p);
        }
        watch.step();
    };
    let opts = lookahead::run::RunOptions {
        out_dir: files.out,
        interrupt: Some(stop),
        progress: Some(&mut on_step),
        overwrite: files.overwrite,
        resume: files.resume,
    };
    let result = run(opts);
    if let Some(b) = bar {
        finish(b);
    }
    (result, watch.raised())
}

/// Runs a learning loop through `run` with the GIL released, as [`watched_run`] does, stopped at
/// its next consistent point by SIGINT written to `signal_fds` (see [`SignalFds`]). The
/// exception a Python environment raised (the first kept in `errors`), else one a signal
/// handler raised, is raised in place of the loop's result.
#[allow(clippy::too_many_arguments)]
pub fn run_loop<P, B: Send, S: Send>(
    py: Python<'_>,
    bar: Option<B>,
    update: fn(&mut B, &P),
    finish: fn(B),
    files: Files,
    signal_fds: SignalFds,
    errors: &[ErrorSlot],
    run: impl FnOnce(lookahead::run::RunOptions<'_, P>) -> lookahead::error::Result<S> + Send,
) -> PyResult<S> {
    let interrupt = Interrupt::watch(signal_fds);
    let stop = interrupt.flag();
    let (result, raised) = py.detach(|| watched_run(bar, update, finish, files, stop, run));
    drop(interrupt);
    if let Some(e) = errors.iter().find_map(take_error).or(raised) {
        return Err(e);
    }
    result.py()
}
