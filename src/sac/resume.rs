//! A SAC run's consistent point (`resume.json`): written at the end of the training episode in
//! which an evaluation fell due (and at the run's end), last of the files it names, through
//! `crate::run::point`; the replay ring's rows in `replay.<N>.safetensors`, the networks, Adam
//! and the host generator in `state.<N>.safetensors` (a [`SacCheckpoint`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::SacCheckpoint;
use super::{EvalResult, SacConfig};
use crate::error::{Error, FormatError, Result};
use crate::model::format::{serialize, Tensors};
use crate::run::{point, RunLayout};

/// Version of `resume.json`'s layout.
pub const RESUME_VERSION: u32 = 1;

/// Where a SAC run stood at its last consistent point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SacResumeState {
    /// [`RESUME_VERSION`].
    pub version: u32,
    /// Environment steps taken.
    pub env_steps: u64,
    /// Updates made (the draws follow it).
    pub updates: u64,
    /// Training episodes started (their reset seeds follow it).
    pub episode: u64,
    /// The environment step at which the next evaluation falls due.
    pub next_eval: u64,
    /// Every evaluation so far, in order.
    pub evals: Vec<EvalResult>,
    /// The point's replay ring file.
    pub replay_file: String,
    /// The point's checkpoint file.
    pub state_file: String,
    /// SHA-256 of the replay file.
    pub replay_sha256: String,
    /// SHA-256 of the checkpoint file.
    pub state_sha256: String,
    /// What a loop built on SAC's (MBPO) adds to the point: its counters and files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<ExtensionPoint>,
}

/// An [`crate::sac::Extension`]'s part of a consistent point: its counters, and its files
/// (written before the state file, named and checksummed in it like SAC's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionPoint {
    /// The extension's counters (its own layout, checked by the extension).
    pub state: serde_json::Value,
    /// Its files.
    pub files: Vec<ExtensionFile>,
}

/// One file of an [`ExtensionPoint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionFile {
    /// The stem (one of the layout's point stems).
    pub stem: String,
    /// File name in the run folder (`<stem>.<point>.safetensors`).
    pub name: String,
    /// Its SHA-256.
    pub sha256: String,
}

impl ExtensionPoint {
    /// A file written with [`point::write_file`] under `stem`.
    pub fn file(stem: &str, file: point::PointFile) -> ExtensionFile {
        ExtensionFile { stem: stem.to_string(), name: file.name, sha256: file.sha256 }
    }

    /// The file of `stem` in `dir` (checked with the state when it was loaded).
    pub fn path(&self, dir: &Path, stem: &str) -> Result<std::path::PathBuf> {
        match self.files.iter().find(|f| f.stem == stem) {
            Some(f) => Ok(dir.join(&f.name)),
            None => Err(Error::InvalidInput(format!(
                "{}: the consistent point names no {stem} file; it was not written by a run of this kind",
                dir.display()
            ))),
        }
    }
}

impl SacResumeState {
    /// Writes the ring and the checkpoint under point `number`'s names, then this state naming
    /// them (the commit), then removes earlier points' files.
    /// Writes the ring and the checkpoint under point `number`'s names (in a folder of
    /// `layout`), then this state naming them and the extension's files (the commit), then
    /// removes earlier points' files.
    pub fn save(
        mut self,
        (dir, layout): (&Path, &RunLayout),
        number: usize,
        (ring, row_len): (&[f32], usize),
        ckpt: &SacCheckpoint,
    ) -> Result<()> {
        let replay = point::write_file(dir, "replay", number, |p| save_ring(p, ring, row_len))?;
        let state = point::write_file(dir, "state", number, |p| ckpt.save(p))?;
        (self.replay_file, self.replay_sha256) = (replay.name, replay.sha256);
        (self.state_file, self.state_sha256) = (state.name, state.sha256);
        let text = serde_json::to_string_pretty(&self).expect("the state serialises");
        let mut keep = vec![self.replay_file.as_str(), &self.state_file];
        keep.extend(self.extension.iter().flat_map(|e| e.files.iter().map(|f| f.name.as_str())));
        point::commit(dir, layout, &text, &keep)
    }

    /// Reads the state of the run in `dir` (a folder of `layout`), checks its own invariants
    /// and that the files it names are the ones it was written with.
    pub fn load(dir: &Path, layout: &RunLayout) -> Result<Self> {
        let p = dir.join(layout.state_file);
        let text = point::read_state(dir, layout)?;
        let s: Self = serde_json::from_str(&text).map_err(|e| Error::config(p.display().to_string(), e.to_string()))?;
        let mut files = vec![
            ("replay", s.replay_file.as_str(), s.replay_sha256.as_str()),
            ("state", &s.state_file, &s.state_sha256),
        ];
        for f in s.extension.iter().flat_map(|e| &e.files) {
            if !layout.point_stems.contains(&f.stem.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "{}: names a file of stem {:?}, which a {} run does not write",
                    p.display(),
                    f.stem,
                    layout.kind
                )));
            }
            files.push((f.stem.as_str(), &f.name, &f.sha256));
        }
        point::check_files(dir, layout, s.evals.len(), &files)?;
        Ok(s)
    }

    /// SHA-256 of the state's counters and evaluations, and the extension's counters (not the
    /// files it names), which the point's checkpoint carries.
    pub fn digest(&self) -> String {
        let mut fields = serde_json::json!({"version": self.version, "env_steps": self.env_steps,
            "updates": self.updates, "episode": self.episode, "next_eval": self.next_eval, "evals": self.evals});
        if let (Some(e), Some(map)) = (&self.extension, fields.as_object_mut()) {
            map.insert("extension".into(), e.state.clone());
        }
        crate::util::sha256_hex(fields.to_string().as_bytes())
    }

    /// Refuses a state whose counters or evaluations are not those `ckpt` (its point's
    /// checkpoint) was written with.
    pub fn check_checkpoint(&self, dir: &Path, ckpt: &SacCheckpoint) -> Result<()> {
        if ckpt.manifest.point_sha256 == self.digest() {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{}: its counters or evaluations are not those its point's checkpoint was written with (edited?); the \
             run cannot be resumed exactly",
            dir.join(crate::sac::LAYOUT.state_file).display()
        )))
    }

    /// Refuses a state of an unknown version or whose counters lie outside what `cfg` plans,
    /// every problem at once.
    pub fn check_plan(&self, dir: &Path, cfg: &SacConfig) -> Result<()> {
        let s = &cfg.schedule;
        let total = s.total_steps as u64;
        let mut problems = Vec::new();
        if self.version != RESUME_VERSION {
            problems.push(format!("version {} (this build reads version {RESUME_VERSION})", self.version));
        }
        if self.env_steps > total {
            problems.push(format!("env_steps {} of {total} planned", self.env_steps));
        }
        let learning = self.env_steps.saturating_sub(s.random_steps as u64);
        if self.updates != learning.saturating_mul(cfg.sac.updates_per_step as u64) {
            problems.push(format!("updates {} after {} learning steps", self.updates, learning));
        }
        if self.episode > self.env_steps + 1 || self.next_eval > total + s.eval_every as u64 {
            problems.push(format!("episode {} / next evaluation {}", self.episode, self.next_eval));
        }
        let in_order = self.evals.windows(2).all(|w| w[0].env_step < w[1].env_step);
        if !in_order || self.evals.iter().any(|e| e.env_step > self.env_steps) {
            problems.push(format!("{} evaluations out of order or past env_steps", self.evals.len()));
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{}: {}; it was not written by a run of this config",
            dir.join(crate::sac::LAYOUT.state_file).display(),
            problems.join(", ")
        )))
    }
}

/// Writes the ring's rows (`[rows, row_len]`) as safetensors.
pub fn save_ring(path: &Path, ring: &[f32], row_len: usize) -> Result<()> {
    let mut t = Tensors::new();
    t.insert("ring".into(), (vec![ring.len() / row_len, row_len], ring.to_vec()));
    let meta = [("format".to_string(), "lookahead-sac-replay".to_string())].into();
    let bytes = serialize(&t, meta).map_err(|reason| Error::Weights { path: path.display().to_string(), reason })?;
    crate::util::write_atomic(path, &bytes)
}

/// Reads a ring written by [`SacResumeState::save`] with rows of `row_len`.
pub fn load_ring(path: &Path, row_len: usize) -> Result<Vec<f32>> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: p.clone(), source })?;
    let bad = |reason: FormatError| Error::Weights { path: p.clone(), reason };
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(FormatError::NotSafetensors(e.to_string())))?;
    let t = st.tensor("ring").map_err(|_| bad(FormatError::MissingTensor("ring".into())))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 2 || t.shape()[1] != row_len {
        return Err(bad(FormatError::Inconsistent(format!(
            "a ring of shape {:?}; rows of {row_len} expected",
            t.shape()
        ))));
    }
    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}
