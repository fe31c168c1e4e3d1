//! Soft Actor-Critic (Haarnoja et al. 2018, with the learned temperature of the second paper):
//! the f64 reference of one whole update that the GPU update is checked against
//! ([`reference`]), the configuration of a run ([`config`]), and the GPU side ([`device`]: the
//! networks, the replay ring and the recording of N updates and the next action into one
//! submission).

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod policy;
#[cfg(feature = "progress")]
pub mod progress;
pub mod reference;

#[cfg(test)]
mod tests;

pub use checkpoint::SacCheckpoint;
pub use config::{AlgorithmConfig, SacConfig, SacLoopConfig, SacPreset, TaskOrigin, MAX_UPDATES_PER_STEP};
pub use policy::Policy;
#[cfg(feature = "progress")]
pub use progress::ProgressDisplay;
pub use reference::HiddenActivation;

mod eval;
pub mod resume;
mod run_loop;

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::run::{curve, nan_as_null, RunLayout};

pub use eval::{evaluate, evaluate_builtin, evaluate_on, evaluate_policy};
pub use resume::{ExtensionFile, ExtensionPoint, SacResumeState};
pub use run_loop::{build_device, eval_seed, play_episode, Extension, ExtensionFactory, LoopSpec, SacLoop};

/// The files a SAC run writes in its folder.
pub const RUN_FILES: [&str; 6] =
    ["config.toml", "metrics.jsonl", "results.csv", "model.safetensors", "learning_curve.svg", "resume.json"];

/// A SAC run folder: [`RUN_FILES`], and each consistent point's replay ring and checkpoint.
pub const LAYOUT: RunLayout = RunLayout {
    kind: "sac",
    files: &RUN_FILES,
    point_stems: &["replay", "state"],
    state_file: "resume.json",
    results_header: "env_step,episodes,eval_return,eval_std,train_return,critic_loss,actor_loss,alpha,entropy,seconds",
};

/// One evaluation of the deterministic policy, with the training since the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalResult {
    /// Environment steps when it ran.
    pub env_step: u64,
    /// Training episodes finished by then.
    pub episodes: u64,
    /// Mean return of the evaluation episodes.
    #[serde(with = "nan_as_null")]
    pub eval_return: f64,
    /// Their standard deviation.
    #[serde(with = "nan_as_null")]
    pub eval_std: f64,
    /// Mean return of the training episodes since the previous evaluation (NaN: none).
    #[serde(with = "nan_as_null")]
    pub train_return: f64,
    /// Mean critic loss of the updates since the previous evaluation (NaN: none).
    #[serde(with = "nan_as_null")]
    pub critic_loss: f64,
    /// Mean actor loss of those updates (NaN: none).
    #[serde(with = "nan_as_null")]
    pub actor_loss: f64,
    /// α after them.
    #[serde(with = "nan_as_null")]
    pub alpha: f64,
    /// Mean policy entropy of those updates (NaN: none).
    #[serde(with = "nan_as_null")]
    pub entropy: f64,
    /// Wall time of the run so far (across resumes: the time before a resume included).
    #[serde(with = "nan_as_null")]
    pub seconds: f64,
}

impl EvalResult {
    /// The row of `results.csv` (columns: [`LAYOUT`]'s header).
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{:.3}",
            self.env_step,
            self.episodes,
            self.eval_return,
            self.eval_std,
            self.train_return,
            self.critic_loss,
            self.actor_loss,
            self.alpha,
            self.entropy,
            self.seconds
        )
    }
}

/// What the loop reports after every environment step.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Environment steps taken.
    pub env_step: u64,
    /// Environment steps planned.
    pub total_steps: u64,
    /// The last evaluation's mean return.
    pub last_eval: Option<f64>,
    /// The last finished training episode's return.
    pub last_return: Option<f64>,
    /// Environment steps per second over the run.
    pub steps_per_s: f64,
}

/// Where a SAC run writes and how it is stopped.
pub type RunOptions<'a> = crate::run::RunOptions<'a, Progress>;

/// A finished (or interrupted) run.
#[derive(Debug, Clone, PartialEq)]
pub struct SacSummary {
    /// Every evaluation.
    pub evals: Vec<EvalResult>,
    /// Training episodes finished.
    pub episodes: u64,
    /// Environment steps taken.
    pub env_steps: u64,
    /// Stopped by the interrupt flag.
    pub interrupted: bool,
    /// Where the interrupt stopped the run (`"step 5731"`).
    pub stopped_at: Option<String>,
    /// Wall time (across resumes).
    pub seconds: f64,
    /// The run directory, if any.
    pub out_dir: Option<PathBuf>,
}

/// Writes the learning curve (evaluation return per environment step) as SVG.
pub fn plot_learning_curve(path: &std::path::Path, title: &str, evals: &[EvalResult]) -> Result<()> {
    let points: Vec<(f64, f64)> = evals.iter().map(|e| (e.env_step as f64, e.eval_return)).collect();
    curve::plot_curve(path, title, "environment step", "evaluation return", &points)
}

/// Runs SAC on `env` with `cfg`: random steps, then every step N updates and the next action
/// in one submission; an evaluation and a consistent point at the end of the episode in which
/// each evaluation falls due; the end event and the learning curve.
pub fn run(ctx: &GpuContext, cfg: &SacConfig, env: &mut dyn Env, opts: RunOptions<'_>) -> Result<SacSummary> {
    let started = Instant::now();
    let mut sac = run_loop::SacLoop::start_or_resume(ctx, cfg, run_loop::LoopSpec::sac(cfg), env, opts)?;
    sac.run_steps(started)?;
    sac.finish(started)
}
