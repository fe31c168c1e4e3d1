//! Run folders: what every learning loop writes through (PETS today). A run folder holds the
//! resolved `config.toml`, `metrics.jsonl` (one JSON event a line, each synced), `results.csv`
//! (one row per finished unit of work: a trial, an evaluation), the latest checkpoint, a
//! learning curve, and consistent points from which `resume` continues exactly ([`point`]).
//!
//! A loop describes its files once ([`RunLayout`]); [`RunFolder`] refuses a folder that holds
//! files unless told to overwrite, replaces an earlier run only after every check has passed,
//! and reopens a run to resume it. [`stop_requested`] is the one test of the interrupt flag,
//! [`curve`] draws the learning curve, and `progress` (feature `progress`) is the terminal's bar.

pub mod curve;
pub mod point;
#[cfg(feature = "progress")]
pub mod progress;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// The files one kind of run writes in its folder.
#[derive(Debug, Clone, Copy)]
pub struct RunLayout {
    /// Every fixed file name of a run (config, metrics, results, checkpoint, curve, state).
    pub files: &'static [&'static str],
    /// Stems of a consistent point's files (`replay` → `replay.<N>.safetensors`).
    pub point_stems: &'static [&'static str],
    /// The state file naming the last consistent point (`resume.json`).
    pub state_file: &'static str,
    /// The header line of `results.csv` (without the newline).
    pub results_header: &'static str,
}

impl RunLayout {
    /// Whether `name` is a consistent point's file of this layout.
    pub fn is_point_file(&self, name: &str) -> bool {
        name.ends_with(".safetensors") && self.point_stems.iter().any(|stem| name.starts_with(&format!("{stem}.")))
    }
}

/// The I/O error of `path`.
pub fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.display().to_string();
    move |source| Error::Io { path, source }
}

/// Whether the interrupt flag has been raised.
pub fn stop_requested(flag: Option<&Arc<AtomicBool>>) -> bool {
    flag.is_some_and(|f| f.load(Ordering::SeqCst))
}

/// The config a run folder holds (`config.toml`).
pub fn read_config<T: DeserializeOwned>(dir: &Path) -> Result<T> {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    toml::from_str(&text).map_err(|e| Error::config(path.display().to_string(), e.to_string()))
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// The metrics and results of a run, open for appending.
pub struct RunFolder {
    dir: PathBuf,
    metrics: std::fs::File,
    results: std::fs::File,
}

impl RunFolder {
    /// Checks that `dir` can hold a new run (before any work): absent, empty, or `overwrite`.
    pub fn check(dir: &Path, overwrite: bool) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::config("out", format!("{} exists and is not a folder", dir.display())));
        }
        let occupied = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
        if occupied && !overwrite {
            return Err(Error::config(
                "out",
                format!(
                    "{} already holds files (an earlier run?); choose another folder, or replace that run with \
                     --overwrite (overwrite=True in Python)",
                    dir.display()
                ),
            ));
        }
        Ok(())
    }

    /// Starts a new run in `dir`: the earlier run's files (by `layout`) are removed first, so the
    /// two never mix; then `config` is written and the metrics and results files are created.
    pub fn create(dir: &Path, layout: &RunLayout, config: &str, overwrite: bool) -> Result<Self> {
        Self::check(dir, overwrite)?;
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let points = std::fs::read_dir(dir)
            .map_err(io_error(dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| layout.is_point_file(&n.to_string_lossy()));
        let names: Vec<PathBuf> = layout.files.iter().map(|n| dir.join(n)).chain(points.map(|n| dir.join(n))).collect();
        for p in names {
            if p.exists() {
                std::fs::remove_file(&p).map_err(io_error(&p))?;
            }
        }
        write_atomic(&dir.join("config.toml"), config.as_bytes())?;
        let open = |name: &str| {
            let p = dir.join(name);
            std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&p).map_err(io_error(&p))
        };
        let metrics = open("metrics.jsonl")?;
        let mut results = open("results.csv")?;
        let csv = dir.join("results.csv");
        results.write_all(format!("{}\n", layout.results_header).as_bytes()).map_err(io_error(&csv))?;
        results.sync_data().map_err(io_error(&csv))?;
        Ok(Self { dir: dir.to_path_buf(), metrics, results })
    }

    /// Opens an existing run's files to continue it: metrics are appended to, and the results
    /// are rewritten with the `rows` of the resumed point (later rows belonged to lost work).
    pub fn reopen(dir: &Path, layout: &RunLayout, rows: &[String]) -> Result<Self> {
        let mut text = format!("{}\n", layout.results_header);
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        write_atomic(&dir.join("results.csv"), text.as_bytes())?;
        // A process killed while appending leaves a partial last line: cut it off.
        let metrics = dir.join("metrics.jsonl");
        if let Ok(bytes) = std::fs::read(&metrics) {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if keep < bytes.len() {
                write_atomic(&metrics, &bytes[..keep])?;
            }
        }
        let open = |name: &str| {
            let p = dir.join(name);
            std::fs::OpenOptions::new().append(true).open(&p).map_err(io_error(&p))
        };
        Ok(Self { dir: dir.to_path_buf(), metrics: open("metrics.jsonl")?, results: open("results.csv")? })
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one event to `metrics.jsonl`, synced.
    pub fn event(&mut self, value: serde_json::Value) -> Result<()> {
        let mut line = value.to_string();
        line.push('\n');
        self.metrics
            .write_all(line.as_bytes())
            .and_then(|_| self.metrics.sync_data())
            .map_err(io_error(&self.dir.join("metrics.jsonl")))
    }

    /// Appends one row to `results.csv`, synced.
    pub fn row(&mut self, row: &str) -> Result<()> {
        self.results
            .write_all(format!("{row}\n").as_bytes())
            .and_then(|_| self.results.sync_data())
            .map_err(io_error(&self.dir.join("results.csv")))
    }
}

/// The f64 fields of the run files that may hold NaN ("no model yet"): JSON has no NaN, so
/// serde_json writes it as null, which an `f64` field then refuses — a run interrupted between
/// its exploration and its first training could not be resumed. Non-finite values are written
/// as null and read back as NaN.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a non-finite value as null.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    /// Reads null as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
