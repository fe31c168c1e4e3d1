//! The PETS loop (Chua et al. 2018): random exploration, then every step plan with CEM over the
//! learned ensemble, act, store the transition, and retrain the model every `freq_train_model`
//! steps — with a run folder (`crate::run`) holding the resolved config, metrics, per-trial
//! results, the checkpoint, a learning-curve plot and the consistent points `resume` continues
//! from.
//!
//! - `config`: [`PetsConfig`] and its sections, presets and resolution;
//! - `run_loop`: the loop's phases (`start_or_resume`, `explore`, `retrain`, `run_trial`,
//!   `save_point`);
//! - `resume`: the consistent point ([`ResumeState`]);
//! - `eval`: replaying a run's checkpoint ([`evaluate`], [`evaluate_on`]).

mod config;
mod eval;
#[cfg(feature = "progress")]
mod progress;
mod resume;
mod run_loop;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::env::{Env, Task};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::run::{curve, nan_as_null, RunLayout};

pub use config::{LoopConfig, ModelConfig, PetsConfig, Preset};
pub use eval::{evaluate, evaluate_on, load_elites, EvalOptions, Evaluation};
#[cfg(feature = "progress")]
pub use progress::ProgressDisplay;
pub use resume::{saved_transitions, ResumeState};

/// The files a run writes in its folder.
pub const RUN_FILES: [&str; 6] =
    ["config.toml", "metrics.jsonl", "results.csv", "model.safetensors", "learning_curve.svg", "resume.json"];

/// A PETS run folder: [`RUN_FILES`], and each consistent point's replay buffer and trainer.
pub const LAYOUT: RunLayout = RunLayout {
    kind: "pets",
    files: &RUN_FILES,
    point_stems: &[resume::REPLAY_STEM, resume::TRAINER_STEM],
    state_file: "resume.json",
    results_header: "env_step,trial,return,model_loss,plan_ms,step_ms",
};

/// One trial's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// Trial index from 0.
    pub trial: usize,
    /// Environment steps so far (exploration included).
    pub env_step: usize,
    /// Sum of rewards.
    #[serde(with = "nan_as_null")]
    pub total_return: f64,
    /// Steps in the trial.
    pub steps: usize,
    /// Training loss of the latest model (NaN before the first training).
    #[serde(with = "nan_as_null")]
    pub model_loss: f64,
    /// Median plan latency in the trial.
    #[serde(with = "nan_as_null")]
    pub plan_ms: f64,
    /// Wall time per environment step (planning and training included).
    #[serde(with = "nan_as_null")]
    pub step_ms: f64,
}

impl TrialResult {
    /// The trial's row of `results.csv` (columns: [`LAYOUT`]'s header).
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{:.3},{:.3}",
            self.env_step, self.trial, self.total_return, self.model_loss, self.plan_ms, self.step_ms
        )
    }

    /// The trial's event in `metrics.jsonl`.
    pub fn event(&self) -> serde_json::Value {
        serde_json::json!({"event": "trial", "trial": self.trial, "env_step": self.env_step,
            "return": self.total_return, "steps": self.steps, "model_loss": self.model_loss,
            "plan_ms": self.plan_ms, "step_ms": self.step_ms})
    }
}

/// What the loop reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Current trial.
    pub trial: usize,
    /// Trials in all.
    pub trials: usize,
    /// Steps in the current trial.
    pub step: usize,
    /// Return so far in the trial.
    pub trial_return: f64,
    /// Last finished trial's return.
    pub last_return: Option<f64>,
    /// Environment steps per second over the run.
    pub steps_per_s: f64,
}

/// A finished (or interrupted) run.
#[derive(Debug, Clone, PartialEq)]
pub struct PetsSummary {
    /// Every trial.
    pub trials: Vec<TrialResult>,
    /// Stopped by the interrupt flag.
    pub interrupted: bool,
    /// Where the interrupt stopped the run (`"exploration step 57"`, `"training before trial 3,
    /// step 50"`, `"trial 2, step 17"`; trials and steps counted from 1).
    pub stopped_at: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// The run directory, if any.
    pub out_dir: Option<PathBuf>,
}

/// Where a PETS run writes and how it is stopped ([`crate::run::RunOptions`] with PETS's
/// [`Progress`]).
pub type RunOptions<'a> = crate::run::RunOptions<'a, Progress>;

/// Writes the learning curve (return per trial) as SVG.
pub fn plot_learning_curve(path: &Path, title: &str, trials: &[TrialResult]) -> Result<()> {
    let points: Vec<(f64, f64)> = trials.iter().map(|t| (t.trial as f64 + 1.0, t.total_return)).collect();
    curve::plot_curve(path, title, "trial", "return", &points)
}

/// Runs PETS on `env` (whose planning twin is `task`) with `cfg`: exploration (unless resuming),
/// then the trials, each followed by a consistent point, then the run's end event and curve.
pub fn run(
    ctx: &GpuContext,
    cfg: &PetsConfig,
    env: &mut dyn Env,
    task: Task,
    opts: RunOptions<'_>,
) -> Result<PetsSummary> {
    let started = Instant::now();
    let mut pets = run_loop::PetsLoop::start_or_resume(ctx, cfg, env, task, opts)?;
    if !pets.resumed() {
        pets.explore()?;
        if !pets.interrupted() {
            pets.save_point(0)?;
        }
    }
    pets.run_trials()?;
    pets.finish(started)
}
