//! Run folders: what every learning loop writes through (PETS today). A run folder holds the
//! resolved `config.toml`, `metrics.jsonl` (one JSON event a line, each synced), `results.csv`
//! (one row per finished unit of work: a trial, an evaluation), the latest checkpoint, a
//! learning curve, and consistent points from which `resume` continues exactly ([`point`]).
//!
//! A loop describes its files once ([`RunLayout`]); [`RunFolder`] refuses a folder that holds
//! files unless told to overwrite, replaces an earlier run only after every check has passed,
//! and reopens a run to resume it. Nothing can corrupt a folder:
//! - one writer at a time: [`lock::RunLock`] holds an advisory lock on `run.lock` for the run's
//!   life (released by the OS however the process ends), and a second writer is refused;
//! - a run's folder carries a marker (`run.json`: the run's kind and id), and `overwrite`
//!   touches only a folder with a marker of the same kind, and in it only the layout's files
//!   (anything else stays); a folder of files no run wrote is refused;
//! - no run file is written through a symlink: temporary files are created exclusively under
//!   unpredictable names and renamed ([`crate::util::write_atomic`]), the appended files are
//!   opened without following links, and a folder holding a link where a run file belongs is
//!   refused.
//!
//! [`stop_requested`] is the one test of the interrupt flag, [`curve`] draws the learning curves,
//! and `progress` (feature `progress`) is the terminal's bar.

pub mod curve;
pub mod lock;
pub mod point;
#[cfg(feature = "progress")]
pub mod progress;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::util::write_atomic;
use lock::{RunLock, LOCK_FILE};

/// Where a run writes, how it is stopped and what it reports (`P`: the loop's progress).
pub struct RunOptions<'a, P> {
    /// Run directory (created); `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Set to stop at the next point where the files are consistent.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Called after every step.
    pub progress: Option<&'a mut dyn FnMut(&P)>,
    /// Replace the run already in `out_dir` (otherwise a folder holding files is refused, so a
    /// repeated command never destroys an earlier run).
    pub overwrite: bool,
    /// Continue the run in `out_dir` from its last consistent point, exactly as if it had not
    /// stopped.
    pub resume: bool,
}

impl<P> Default for RunOptions<'_, P> {
    fn default() -> Self {
        Self { out_dir: None, interrupt: None, progress: None, overwrite: false, resume: false }
    }
}

/// How a replay of a run's policy is watched and stopped.
#[derive(Default)]
pub struct EvalOptions<'a> {
    /// Set to stop before the next environment step; the unfinished episode is dropped.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Called with each finished episode's index (from 0) and return.
    pub on_episode: Option<&'a mut dyn FnMut(usize, f64)>,
}

/// A replay's finished episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The return of each finished episode, in order.
    pub returns: Vec<f64>,
    /// The interrupt flag stopped the replay before its last episode.
    pub interrupted: bool,
}

/// Replays `episodes` episodes through `play` (given each episode's reset seed, derived from
/// `seed`, and the interrupt's test; `None` when the interrupt stopped it), calling
/// `opts.on_episode` after each; stops at the interrupt with the episodes finished.
pub fn replay_episodes(
    episodes: usize,
    seed: u64,
    mut opts: EvalOptions<'_>,
    mut play: impl FnMut(u64, &dyn Fn() -> bool) -> Result<Option<f64>>,
) -> Result<Evaluation> {
    if episodes == 0 {
        return Err(Error::config("episodes", "must be at least 1 (--episodes; episodes= in Python)"));
    }
    let mut out = Evaluation { returns: Vec::new(), interrupted: false };
    let flag = opts.interrupt.clone();
    let stop = move || stop_requested(flag.as_ref());
    for ep in 0..episodes {
        let Some(total) = play(seed.wrapping_mul(7919).wrapping_add(ep as u64), &stop)? else {
            out.interrupted = true;
            break;
        };
        if let Some(cb) = opts.on_episode.as_mut() {
            cb(ep, total);
        }
        out.returns.push(total);
    }
    Ok(out)
}

/// The marker a run writes first in its folder.
pub const MARKER_FILE: &str = "run.json";

/// What `run.json` says: the kind of run that owns the folder and the run's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMarker {
    /// The kind of run (`"pets"`).
    pub kind: String,
    /// A random id, new for every run started in the folder.
    pub id: String,
}

/// The files one kind of run writes in its folder.
#[derive(Debug, Clone, Copy)]
pub struct RunLayout {
    /// The kind of run (`"pets"`), written in the folder's marker.
    pub kind: &'static str,
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
    /// Whether `name` is a consistent point's file of this layout (`<stem>.<number>.safetensors`).
    pub fn is_point_file(&self, name: &str) -> bool {
        self.point_stems.iter().any(|stem| {
            let number = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.'));
            let number = number.and_then(|r| r.strip_suffix(".safetensors"));
            number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// Refuses a folder holding a symlink where a run file belongs (it would make the run write
    /// outside its folder).
    pub fn check_no_links(&self, dir: &Path) -> Result<()> {
        let names = self.files.iter().chain([&MARKER_FILE, &LOCK_FILE]);
        for name in names {
            let p = dir.join(name);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::config(
                    "out",
                    format!(
                        "{} is a symlink; a run's files must be plain files: remove it or choose another folder",
                        p.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Opens `path` with `options` without following a symlink at it (Unix: `O_NOFOLLOW`).
pub fn open_no_follow(path: &Path, options: &mut std::fs::OpenOptions) -> Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).map_err(|e| {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            Error::config("out", format!("{} is a symlink; a run's files must be plain files", path.display()))
        } else {
            io_error(path)(e)
        }
    })
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
    let text = crate::util::read_config_file(&path)?;
    toml::from_str(&text).map_err(|e| Error::config(path.display().to_string(), e.to_string()))
}

/// The folder's lock for a run of `layout` writing to `out_dir`: to resume, the folder is locked
/// (refused when it holds no run of this kind) and `same_config` must accept its config; a new
/// run claims it ([`RunFolder::claim`]: refused when it holds files, unless `overwrite`).
pub fn lock_folder(
    out_dir: Option<&Path>,
    (resume, overwrite): (bool, bool),
    layout: &RunLayout,
    same_config: impl FnOnce(&Path) -> Result<()>,
) -> Result<Option<RunLock>> {
    match (out_dir, resume) {
        (Some(dir), true) => {
            let lock = RunFolder::lock_to_resume(dir, layout)?;
            same_config(dir)?;
            Ok(Some(lock))
        }
        (None, true) => Err(Error::config("resume", "resuming needs the run folder (--out; out= in Python)")),
        (Some(dir), false) => RunFolder::claim(dir, layout, overwrite),
        (None, false) => Ok(None),
    }
}

/// Refuses to resume the run in `dir` unless its `config.toml` holds `cfg` exactly, naming every
/// difference and the folder's own config to resume with.
pub fn check_same_config<T: DeserializeOwned + serde::Serialize + PartialEq>(dir: &Path, cfg: &T) -> Result<()> {
    let theirs: T = read_config(dir)?;
    if &theirs == cfg {
        return Ok(());
    }
    let differences = crate::util::config_differences(cfg, &theirs, "here", "in the folder").join("; ");
    let why = format!(
        "{} holds a run of another config ({differences}); resume with the folder's own settings: --config {}",
        dir.display(),
        dir.join("config.toml").display()
    );
    Err(Error::config("resume", why))
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    Ok(crate::util::sha256_hex(&bytes))
}

/// The metrics and results of a run, open for appending, and the folder's lock.
pub struct RunFolder {
    lock: RunLock,
    metrics: std::fs::File,
    results: std::fs::File,
}

/// The marker of the run in `dir`, if it has a readable one.
pub fn read_marker(dir: &Path) -> Option<RunMarker> {
    let text = std::fs::read_to_string(dir.join(MARKER_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

impl RunFolder {
    /// Checks that `dir` can hold a new run (before any work): absent, empty, or `overwrite`
    /// and holding a run of this kind (its marker); no symlink where a run file belongs.
    pub fn check(dir: &Path, layout: &RunLayout, overwrite: bool) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::config("out", format!("{} exists and is not a folder", dir.display())));
        }
        layout.check_no_links(dir)?;
        let occupied = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name() != LOCK_FILE))
            .unwrap_or(false);
        if occupied && overwrite {
            return match read_marker(dir) {
                Some(m) if m.kind == layout.kind => Ok(()),
                Some(m) => Err(Error::config(
                    "out",
                    format!(
                        "{} holds a {} run, not a {} run; choose another folder",
                        dir.display(),
                        m.kind,
                        layout.kind
                    ),
                )),
                None => Err(Error::config(
                    "out",
                    format!(
                        "{} holds files that no run wrote (no {MARKER_FILE}); overwriting replaces only a run's \
                         folder: choose another folder",
                        dir.display()
                    ),
                )),
            };
        }
        if occupied {
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

    /// Checks that `dir` can hold a new run ([`RunFolder::check`]) before any work and, where
    /// the folder exists, locks it (a second writer is refused here) and checks it again under
    /// the lock. The lock goes to [`RunFolder::create`].
    pub fn claim(dir: &Path, layout: &RunLayout, overwrite: bool) -> Result<Option<RunLock>> {
        Self::check(dir, layout, overwrite)?;
        if !dir.is_dir() {
            return Ok(None);
        }
        let lock = RunLock::acquire(dir)?;
        Self::check(dir, layout, overwrite)?;
        Ok(Some(lock))
    }

    /// Starts a new run in `dir` under `claimed` (from [`RunFolder::claim`]; `None`: the folder is
    /// created and locked now): removes the earlier run's files (by `layout`, nothing else) so
    /// the two never mix; then writes the marker and `config`, and creates the metrics and
    /// results files.
    pub fn create(
        dir: &Path,
        layout: &RunLayout,
        config: &str,
        overwrite: bool,
        claimed: Option<RunLock>,
    ) -> Result<Self> {
        let lock = match claimed {
            Some(lock) => lock,
            None => {
                std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                let gone = || Error::config("out", format!("{} was removed while the run started", dir.display()));
                Self::claim(dir, layout, overwrite)?.ok_or_else(gone)?
            }
        };
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
        let marker = RunMarker { kind: layout.kind.to_string(), id: format!("{:016x}", rand::random::<u64>()) };
        write_atomic(
            &dir.join(MARKER_FILE),
            serde_json::to_string(&marker).expect("the marker serialises").as_bytes(),
        )?;
        write_atomic(&dir.join("config.toml"), config.as_bytes())?;
        let open = |name: &str| {
            open_no_follow(&dir.join(name), std::fs::OpenOptions::new().create(true).write(true).truncate(true))
        };
        let metrics = open("metrics.jsonl")?;
        let mut results = open("results.csv")?;
        let csv = dir.join("results.csv");
        results.write_all(format!("{}\n", layout.results_header).as_bytes()).map_err(io_error(&csv))?;
        results.sync_data().map_err(io_error(&csv))?;
        Ok(Self { lock, metrics, results })
    }

    /// Locks the run in `dir` to resume it (before its state is read), refusing a folder that
    /// does not exist, holds another kind of run or no run at all (nothing is created in it),
    /// and a symlink where a run file belongs.
    pub fn lock_to_resume(dir: &Path, layout: &RunLayout) -> Result<RunLock> {
        let why = match read_marker(dir) {
            _ if !dir.is_dir() => Some(format!(
                "{} is not a run folder: there is nothing to resume (start the run without resume)",
                dir.display()
            )),
            Some(m) if m.kind == layout.kind => None,
            Some(m) => Some(format!(
                "{} holds a {} run, not a {} run; choose another folder",
                dir.display(),
                m.kind,
                layout.kind
            )),
            // A lost marker beside a consistent point: the point's own checks decide.
            None if dir.join(layout.state_file).is_file() => None,
            None => Some(format!(
                "{} holds no run to resume (no {MARKER_FILE} or {}): a run stopped before its first consistent point \
                 starts again with --overwrite",
                dir.display(),
                layout.state_file
            )),
        };
        if let Some(why) = why {
            return Err(Error::config("resume", why));
        }
        layout.check_no_links(dir)?;
        RunLock::acquire(dir)
    }

    /// Opens an existing run's files to continue it (under `lock`, from
    /// [`RunFolder::lock_to_resume`]): metrics are appended to, and the results are rewritten
    /// with the `rows` of the resumed point (later rows belonged to lost work).
    pub fn reopen(lock: RunLock, layout: &RunLayout, rows: &[String]) -> Result<Self> {
        let dir = lock.dir().to_path_buf();
        let dir = dir.as_path();
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
        let open = |name: &str| open_no_follow(&dir.join(name), std::fs::OpenOptions::new().append(true));
        Ok(Self { metrics: open("metrics.jsonl")?, results: open("results.csv")?, lock })
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        self.lock.dir()
    }

    /// Appends one event to `metrics.jsonl`, synced.
    pub fn event(&mut self, value: serde_json::Value) -> Result<()> {
        let mut line = value.to_string();
        line.push('\n');
        self.metrics
            .write_all(line.as_bytes())
            .and_then(|_| self.metrics.sync_data())
            .map_err(io_error(&self.dir().join("metrics.jsonl")))
    }

    /// Appends one row to `results.csv`, synced.
    pub fn row(&mut self, row: &str) -> Result<()> {
        self.results
            .write_all(format!("{row}\n").as_bytes())
            .and_then(|_| self.results.sync_data())
            .map_err(io_error(&self.dir().join("results.csv")))
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

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: RunLayout = RunLayout {
        kind: "test",
        files: &["a.txt"],
        point_stems: &["replay"],
        state_file: "s.json",
        results_header: "x",
    };

    /// Only `<stem>.<number>.safetensors` is a point's file: a user's backup that shares the
    /// prefix is not (overwrite and the point cleanup would delete it).
    #[test]
    fn a_points_files_are_numbered_and_nothing_else_is_one() {
        assert!(LAYOUT.is_point_file("replay.0.safetensors") && LAYOUT.is_point_file("replay.17.safetensors"));
        for name in [
            "replay.backup.safetensors",
            "replay..safetensors",
            "replay.1.safetensors.bak",
            "replay.1x.safetensors",
            "other.1.safetensors",
        ] {
            assert!(!LAYOUT.is_point_file(name), "{name}");
        }
    }

    /// Two locks on one folder: the second is refused, naming this process; dropping the first
    /// frees the folder.
    #[test]
    fn a_locked_folder_refuses_a_second_lock_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("lookahead-runlock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = lock::RunLock::acquire(&dir).unwrap();
        let e = lock::RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(e.contains(&format!("process {}", std::process::id())), "{e}");
        drop(first);
        lock::RunLock::acquire(&dir).expect("free again");
        std::fs::remove_dir_all(&dir).ok();
    }
}
