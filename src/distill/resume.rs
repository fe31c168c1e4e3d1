//! A distillation's consistent point (`resume.json`), written after every iteration through
//! `crate::run::point`: the labelled states (`dataset.<N>.safetensors`, rows as SAC's replay
//! ring: observation | the planner's action | 0 | observation | 0) and the policy with Adam's
//! state (`state.<N>.safetensors`, a SAC checkpoint), named with their SHA-256 in the state.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DistillConfig, IterationResult, LAYOUT};
use crate::error::{Error, Result};
use crate::run::point;
use crate::sac::resume::save_ring;
use crate::sac::SacCheckpoint;

/// The stem of a point's labelled states.
pub(super) const DATASET_STEM: &str = "dataset";
/// The stem of a point's policy checkpoint.
pub(super) const STATE_STEM: &str = "state";

/// Version of `resume.json`'s layout.
const VERSION: u32 = 1;

/// Where a distillation stood after its last finished iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DistillResumeState {
    /// [`VERSION`].
    pub version: u32,
    /// Imitation updates made (the draws follow it).
    pub updates: u64,
    /// Plans made (the planner's random stream follows it).
    pub planner_calls: u32,
    /// The planner's return on each evaluation start state.
    pub planner_returns: Vec<f64>,
    /// Every finished iteration, in order.
    pub iterations: Vec<IterationResult>,
    /// SHA-256 of the PETS run's `model.safetensors` the labels came from.
    pub source_sha256: String,
    /// The point's dataset file.
    pub dataset_file: String,
    /// Its SHA-256.
    pub dataset_sha256: String,
    /// The point's checkpoint file.
    pub state_file: String,
    /// Its SHA-256.
    pub state_sha256: String,
}

impl DistillResumeState {
    /// A state after `iterations`, its files still to be written.
    pub fn new(
        updates: u64,
        planner_calls: u32,
        planner_returns: Vec<f64>,
        iterations: Vec<IterationResult>,
        source_sha256: String,
    ) -> Self {
        Self {
            version: VERSION,
            updates,
            planner_calls,
            planner_returns,
            iterations,
            source_sha256,
            dataset_file: String::new(),
            dataset_sha256: String::new(),
            state_file: String::new(),
            state_sha256: String::new(),
        }
    }

    /// Writes the dataset (`[rows, row_len]`) and the checkpoint under this point's names, then
    /// the state naming them (the commit), then removes earlier points' files.
    pub fn save(mut self, dir: &Path, (rows, row_len): (&[f32], usize), ckpt: &SacCheckpoint) -> Result<()> {
        let n = self.iterations.len();
        let dataset = point::write_file(dir, DATASET_STEM, n, |p| save_ring(p, rows, row_len))?;
        let state = point::write_file(dir, STATE_STEM, n, |p| ckpt.save(p))?;
        (self.dataset_file, self.dataset_sha256) = (dataset.name, dataset.sha256);
        (self.state_file, self.state_sha256) = (state.name, state.sha256);
        let text = serde_json::to_string_pretty(&self).expect("the state serialises");
        point::commit(dir, &LAYOUT, &text, &[&self.dataset_file, &self.state_file])
    }

    /// Reads the state and checks that the files it names are the ones it was written with.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(LAYOUT.state_file);
        let text = point::read_state(dir, &LAYOUT)?;
        let s: Self = serde_json::from_str(&text).map_err(|e| Error::config(p.display().to_string(), e.to_string()))?;
        let files = [
            (DATASET_STEM, s.dataset_file.as_str(), s.dataset_sha256.as_str()),
            (STATE_STEM, &s.state_file, &s.state_sha256),
        ];
        point::check_files(dir, &LAYOUT, s.iterations.len(), &files)?;
        Ok(s)
    }

    /// SHA-256 of the counters and results (not the files), which the point's checkpoint
    /// carries, so that an edited state is caught.
    pub fn digest(&self) -> String {
        let fields = serde_json::json!({"version": self.version, "updates": self.updates,
            "planner_calls": self.planner_calls, "planner_returns": self.planner_returns,
            "iterations": self.iterations, "source_sha256": self.source_sha256});
        crate::util::sha256_hex(fields.to_string().as_bytes())
    }

    /// Refuses a state of another version, of another source model, edited (its checkpoint's
    /// digest), or whose counters a run of `cfg` cannot have reached: every problem at once.
    pub fn check(&self, dir: &Path, cfg: &DistillConfig, source_sha256: &str, ckpt: &SacCheckpoint) -> Result<()> {
        let mut problems = Vec::new();
        if self.version != VERSION {
            problems.push(format!("version {} (this build reads version {VERSION})", self.version));
        }
        if self.source_sha256 != source_sha256 {
            problems.push("the PETS run's model.safetensors changed since the labels were made".to_string());
        }
        if ckpt.manifest.point_sha256 != self.digest() {
            problems.push("its counters or results are not those its checkpoint was written with (edited?)".into());
        }
        let n = self.iterations.len();
        let per = cfg.train.updates_per_iteration as u64;
        let in_order =
            self.iterations.iter().enumerate().all(|(i, r)| r.iteration == i && r.updates == (i as u64 + 1) * per);
        if n > cfg.dagger.iterations + 1 || !in_order || self.updates != n as u64 * per {
            problems.push(format!("{n} iterations and {} updates do not follow the config", self.updates));
        }
        if self.planner_returns.len() != cfg.dagger.eval_episodes {
            problems.push(format!(
                "{} planner returns for {} episodes",
                self.planner_returns.len(),
                cfg.dagger.eval_episodes
            ));
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{}: {}; the distillation cannot be resumed (start again with --overwrite)",
            dir.join(LAYOUT.state_file).display(),
            problems.join(", ")
        )))
    }
}
