//! Consistent points: a loop's state at a moment from which `resume` continues exactly. A
//! point's files are written under names that carry the point's number (so the previous
//! point's files stay intact), each named in the state file with its SHA-256; the state file is
//! written last, atomically: it is the commit. Then the earlier points' files are removed. A crash
//! at any instant leaves either the previous point or this one.

use std::path::Path;

use super::{io_error, sha256_file, RunLayout};
use crate::error::{Error, Result};
use crate::util::write_atomic;

/// One file of a point, as the state file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointFile {
    /// File name in the run folder (`replay.3.safetensors`).
    pub name: String,
    /// Its SHA-256, in hex.
    pub sha256: String,
}

/// The name of point `number`'s file of `stem`.
pub fn file_name(stem: &str, number: usize) -> String {
    format!("{stem}.{number}.safetensors")
}

/// Writes point `number`'s file of `stem` with `write` and checksums it.
pub fn write_file(dir: &Path, stem: &str, number: usize, write: impl FnOnce(&Path) -> Result<()>) -> Result<PointFile> {
    let name = file_name(stem, number);
    write(&dir.join(&name))?;
    let sha256 = sha256_file(&dir.join(&name))?;
    Ok(PointFile { name, sha256 })
}

/// Commits a point: writes the state file `state` (the point's JSON), then removes the point
/// files of `layout` that are not in `keep`.
pub fn commit(dir: &Path, layout: &RunLayout, state: &str, keep: &[&str]) -> Result<()> {
    write_atomic(&dir.join(layout.state_file), state.as_bytes())?;
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let name = entry.map_err(io_error(dir))?.file_name();
        let name = name.to_string_lossy();
        if layout.is_point_file(&name) && !keep.contains(&name.as_ref()) {
            let _ = std::fs::remove_file(dir.join(name.as_ref()));
        }
    }
    Ok(())
}

/// The text of the state file of the run in `dir`.
pub fn read_state(dir: &Path, layout: &RunLayout) -> Result<String> {
    let path = dir.join(layout.state_file);
    if !path.exists() {
        return Err(Error::InvalidInput(format!(
            "{} has no consistent point ({} is missing): the run stopped before its first one, or the file was \
             removed; start again with --overwrite",
            dir.display(),
            layout.state_file
        )));
    }
    std::fs::read_to_string(&path).map_err(io_error(&path))
}

/// Checks that each file a state names, as `(stem, name, SHA-256)`, is the one it was written
/// with: named as point `number`'s file of its stem (so neither a path outside the folder nor
/// another point's file), with that checksum.
pub fn check_files(dir: &Path, layout: &RunLayout, number: usize, files: &[(&str, &str, &str)]) -> Result<()> {
    for (stem, name, want) in files {
        let expected = file_name(stem, number);
        if *name != expected {
            return Err(Error::InvalidInput(format!(
                "{}: {} names {name:?} where point {number}'s file is {expected:?}; it was not written by a run",
                dir.display(),
                layout.state_file
            )));
        }
        if !dir.join(name).is_file() {
            return Err(Error::InvalidInput(format!(
                "{}: {name}, which {} names, is missing; the run cannot be resumed (start again with --overwrite)",
                dir.display(),
                layout.state_file
            )));
        }
        if sha256_file(&dir.join(name))? != *want {
            return Err(Error::InvalidInput(format!(
                "{}: {name} is not the file {} was written with; the run cannot be resumed exactly",
                dir.display(),
                layout.state_file
            )));
        }
    }
    Ok(())
}
