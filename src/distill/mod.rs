//! Distilling a PETS run's planner into a policy network (Nagabandi et al. 2018, "Neural network
//! dynamics for model-based deep RL with model-free fine-tuning"), with DAgger (Ross et al.
//! 2011): iteration 0 labels the states of the planner's own episodes with its actions; each
//! later iteration runs the policy so far, labels every state it visits with the planner's
//! action over the run's learned ensemble, adds them to the data and trains on all of it
//! (behaviour cloning on the GPU: the SAC actor's network and kernels, the mean squared error of
//! the deterministic action `c + h·tanh(μ)` to the planner's; `SacDevice::imitate`).
//!
//! An iteration's episodes run side by side: every step plans all of them in one batched GPU
//! call (`Planner::plan_batch`), each episode keeping its own warm start along its own
//! trajectory — the labels are the planner's actions as it would act from those states in its
//! own episodes. The warm starts are reset at the start of each iteration.
//!
//! The planner's return on the evaluation start states is measured once; the policy's on the
//! same states after every iteration. Both, the data's size and the imitation loss go to the run
//! folder (`RUN/distill` by default), with a consistent point after every iteration.

pub mod config;
mod resume;
mod run_loop;

pub use config::{DistillConfig, Mode};
pub use run_loop::episode_seed;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::{Env, EnvKind, Task};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::run::{nan_as_null, RunLayout};

/// A distillation's folder.
pub const LAYOUT: RunLayout = RunLayout {
    kind: "distill",
    files: &["config.toml", "metrics.jsonl", "results.csv", "policy.safetensors", "distill_curve.svg", "resume.json"],
    point_stems: &[resume::DATASET_STEM, resume::STATE_STEM],
    state_file: "resume.json",
    results_header:
        "iteration,labels,new_labels,updates,imitation_loss,policy_return,policy_std,planner_return,seconds",
};

/// One iteration: its data, its training and the policy's evaluation beside the planner's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IterationResult {
    /// 0: the planner's own episodes; then DAgger's (or, in `bc` mode, the planner's again).
    pub iteration: usize,
    /// Labelled states so far.
    pub labels: usize,
    /// Labelled states this iteration added.
    pub new_labels: usize,
    /// Imitation updates so far.
    pub updates: u64,
    /// The mean squared error of the iteration's last submission of updates.
    #[serde(with = "nan_as_null")]
    pub imitation_loss: f64,
    /// The policy's mean return over the evaluation start states.
    pub policy_return: f64,
    /// Their standard deviation.
    pub policy_std: f64,
    /// The planner's mean return over the same start states.
    pub planner_return: f64,
    /// Wall time so far (across resumes).
    pub seconds: f64,
}

impl IterationResult {
    /// The row of `results.csv` ([`LAYOUT`]'s header).
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{:.3}",
            self.iteration,
            self.labels,
            self.new_labels,
            self.updates,
            self.imitation_loss,
            self.policy_return,
            self.policy_std,
            self.planner_return,
            self.seconds
        )
    }
}

/// Where a distillation is, for a progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The iteration under way.
    pub iteration: usize,
    /// Iterations in all (the first included).
    pub iterations: usize,
    /// `planner` (its evaluation), `collect`, `train` or `evaluate`.
    pub phase: &'static str,
    /// Labelled states so far.
    pub labels: usize,
}

/// The terminal's progress bar of a distillation (the command line's and the Python package's):
/// iterations done, the phase under way and the labelled states so far.
pub struct ProgressDisplay {
    bar: crate::run::progress::ProgressBar,
}

impl ProgressDisplay {
    /// A bar of `cfg`'s iterations.
    pub fn new(cfg: &DistillConfig) -> Self {
        Self { bar: crate::run::progress::ProgressBar::new(cfg.dagger.iterations as u64 + 1) }
    }

    /// Shows `p`.
    pub fn update(&mut self, p: &Progress) {
        let text = format!("iteration {}/{} · {} · {} labels", p.iteration, p.iterations, p.phase, p.labels);
        self.bar.set(p.iteration as u64, text);
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish();
    }
}

/// Where a distillation writes, how it is stopped and what it reports.
pub type RunOptions<'a> = crate::run::RunOptions<'a, Progress>;

/// How a distillation ended.
#[derive(Debug, Clone)]
pub struct DistillSummary {
    /// Every iteration finished, in order.
    pub iterations: Vec<IterationResult>,
    /// The planner's return on each evaluation start state.
    pub planner_returns: Vec<f64>,
    /// The interrupt flag stopped it.
    pub interrupted: bool,
    /// Where it stopped, when interrupted.
    pub stopped_at: Option<String>,
    /// Wall time (across resumes).
    pub seconds: f64,
    /// Its folder.
    pub out_dir: Option<PathBuf>,
}

/// Distils the planner of the PETS run in `run_dir` (a run on a built-in environment) into a
/// policy with `cfg`: the planner's evaluation, iteration 0 on its own episodes, then
/// `cfg.dagger.iterations` iterations; a consistent point, a row of `results.csv` and
/// `policy.safetensors` (a SAC checkpoint: `Policy::load`, `sac --init-policy`) after each.
pub fn run(ctx: &GpuContext, cfg: &DistillConfig, run_dir: &Path, opts: RunOptions<'_>) -> Result<DistillSummary> {
    let started = std::time::Instant::now();
    let (source, planner) = run_loop::load_source(ctx, run_dir, cfg.seed, None)?;
    let kind = source.builtin().expect("a run without its task is refused by load_source");
    let envs = builtin_envs(cfg, kind);
    distil(ctx, cfg, (Some(run_dir), source, planner), envs, (opts, started))
}

/// The loop from `source`'s `planner` on `envs`: the planner's evaluation, the iterations, the
/// end.
fn distil<'e>(
    ctx: &GpuContext,
    cfg: &'e DistillConfig,
    from: (Option<&Path>, run_loop::Source, crate::planner::Planner),
    envs: Vec<Box<dyn Env + 'e>>,
    (opts, started): (RunOptions<'_>, std::time::Instant),
) -> Result<DistillSummary> {
    let mut lp = run_loop::DistillLoop::start_or_resume(ctx, cfg, from, envs, opts)?;
    lp.run_iterations(started)?;
    lp.finish(started)
}

/// As many of `kind`'s environments as the episodes side by side need.
fn builtin_envs(cfg: &DistillConfig, kind: EnvKind) -> Vec<Box<dyn Env>> {
    let n = cfg.dagger.episodes.max(cfg.dagger.eval_episodes);
    (0..n).map(|_| -> Box<dyn Env> { kind.make() }).collect()
}

/// [`run`] with the planner of a known model instead of a PETS run's: `env`'s own dynamics
/// (as `lookahead mpc`), planned with `planner` (its seed replaced by the distillation's);
/// the controller a control engineer has, distilled into a network that acts in microseconds.
pub fn run_mpc(
    ctx: &GpuContext,
    cfg: &DistillConfig,
    env: EnvKind,
    planner: crate::planner::PlannerConfig,
    opts: RunOptions<'_>,
) -> Result<DistillSummary> {
    let started = std::time::Instant::now();
    let (source, planner) = run_loop::mpc_source(ctx, env, planner, cfg.seed)?;
    let envs = builtin_envs(cfg, env);
    distil(ctx, cfg, (None, source, planner), envs, (opts, started))
}

/// [`run`] for a PETS run on an environment outside the crate (driven from Python): `envs`
/// (at least `max(dagger.episodes, dagger.eval_episodes)` of them, made alike: the episodes run
/// side by side) and the run's planning `task`.
pub fn run_on<'e>(
    ctx: &GpuContext,
    cfg: &'e DistillConfig,
    run_dir: &Path,
    envs: Vec<Box<dyn Env + 'e>>,
    task: Task,
    opts: RunOptions<'_>,
) -> Result<DistillSummary> {
    let started = std::time::Instant::now();
    let (source, planner) = run_loop::load_source(ctx, run_dir, cfg.seed, Some(task))?;
    distil(ctx, cfg, (Some(run_dir), source, planner), envs, (opts, started))
}

/// The default folder of a distillation of the run in `run_dir`.
pub fn default_out(run_dir: &Path) -> PathBuf {
    run_dir.join("distill")
}
