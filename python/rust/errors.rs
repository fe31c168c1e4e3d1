//! The module's exceptions: every engine error becomes the matching Python exception carrying
//! the engine's own message; and the locking that lets the GIL go while an object works.

use std::sync::{Mutex, MutexGuard};

use pyo3::create_exception;
use pyo3::prelude::*;

use lookahead::error::Error;

create_exception!(_lookahead, LookaheadError, pyo3::exceptions::PyException, "Any error of the engine.");
create_exception!(_lookahead, ConfigError, LookaheadError, "An unknown key or an impossible setting.");
create_exception!(_lookahead, InputError, LookaheadError, "Wrong sizes, non-finite values or other bad input.");
create_exception!(_lookahead, LimitError, LookaheadError, "A size beyond what the device allows.");
create_exception!(_lookahead, GpuError, LookaheadError, "No adapter, a shader, the device or a timeout.");
create_exception!(_lookahead, FileError, LookaheadError, "A file that cannot be read, written or trusted.");

/// The engine's error as the matching Python exception, with the engine's message.
pub fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidConfig { .. } | Error::InvalidConfigs(_) => ConfigError::new_err(msg),
        Error::InvalidInput(_) => InputError::new_err(msg),
        Error::LimitExceeded { .. } => LimitError::new_err(msg),
        Error::NoAdapter { .. }
        | Error::RequestDevice(_)
        | Error::ShaderCompile { .. }
        | Error::Gpu(_)
        | Error::OutOfMemory { .. }
        | Error::DeviceLost { .. }
        | Error::Timeout { .. } => GpuError::new_err(msg),
        Error::Weights { .. } | Error::Io { .. } | Error::Plot { .. } => FileError::new_err(msg),
        _ => LookaheadError::new_err(msg),
    }
}

/// An engine result as a Python one ([`py_err`]).
pub trait OrPy<T> {
    /// The value, or the engine's error as its Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> OrPy<T> for lookahead::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(py_err)
    }
}

/// The exception of a lock poisoned by a panic.
fn poisoned() -> PyErr {
    LookaheadError::new_err("an earlier call panicked while holding this object")
}

/// Runs `f` on the object behind `m` with the GIL released, taking the lock only once the GIL is
/// released (so two Python threads sharing the object take turns instead of deadlocking).
pub fn with_unlocked<T: Send, U: Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    f: impl FnOnce(&mut T) -> lookahead::Result<U> + Send,
) -> PyResult<U> {
    py.detach(|| match m.lock() {
        Ok(mut g) => Ok(f(&mut g)),
        Err(_) => Err(()),
    })
    .map_err(|_| poisoned())?
    .py()
}

/// The object behind `m`, locked while the GIL is held (for quick reads).
pub fn lock<T>(m: &Mutex<T>) -> PyResult<MutexGuard<'_, T>> {
    m.lock().map_err(|_| poisoned())
}

/// Adds the exceptions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LookaheadError", py.get_type::<LookaheadError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("GpuError", py.get_type::<GpuError>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    Ok(())
}
