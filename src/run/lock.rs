//! The exclusive lock of a run folder: an advisory lock (`flock` on Unix, `LockFileEx` on
//! Windows, through `std::fs::File::try_lock`) on `run.lock` in the folder, held for the run's
//! life. The OS releases it when the process ends, however it ends, so a killed run never blocks
//! its `resume`; a second writer is refused at once, naming the folder and the holder's PID.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{io_error, open_no_follow};
use crate::error::{Error, Result};

/// The lock file's name in a run folder (never removed: a removed lock file would let a second
/// writer lock a new file while the first still holds the old one).
pub const LOCK_FILE: &str = "run.lock";

/// A held lock on a run folder; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    dir: PathBuf,
}

impl RunLock {
    /// Locks `dir` (which must exist) for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = open_no_follow(&path, std::fs::OpenOptions::new().read(true).write(true).create(true))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() { "another process".to_string() } else { format!("process {holder}") };
                return Err(Error::config(
                    "out",
                    format!(
                        "{} is in use by a run of {who}; wait for it to end, or choose another folder",
                        dir.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path)(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_data())
            .map_err(io_error(&path))?;
        Ok(Self { _file: file, dir: dir.to_path_buf() })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
