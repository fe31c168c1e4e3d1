//! Model-based policy optimisation (Janner et al. 2019, "When to trust your model"): the
//! ensemble trained on real transitions, short branched rollouts of the SAC policy through it
//! from states of the replay buffer, and SAC trained on those model transitions.

pub mod config;
pub mod reference;
pub mod rollout;

pub use config::{MbpoConfig, MbpoLoopConfig, MbpoPreset, RolloutConfig, MAX_ROLLOUT_LENGTH};

mod resume;
mod run_loop;

use std::time::Instant;

use crate::env::{Env, Task};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::family::TaskWgsl;
use crate::run::RunLayout;
use crate::sac::device::SacDevice;
use crate::sac::{Extension, LoopSpec, RunOptions, SacLoop, SacSummary};

/// An MBPO run folder: SAC's files (the policy's checkpoint in `model.safetensors`), its
/// `config.toml` an MBPO config, and `metrics.jsonl` with the model's events (`"model"`: its
/// training, the rollout length, the model buffer's fill).
pub const LAYOUT: RunLayout = RunLayout {
    kind: "mbpo",
    point_stems: &["replay", "state", resume::TRANSITIONS_STEM, resume::ENSEMBLE_STEM, resume::MODEL_RING_STEM],
    ..crate::sac::LAYOUT
};

/// Runs MBPO on `env` (whose planning functions are `task`'s: the rollouts take its reward
/// unless the model learns it, and its termination) with `cfg`: the random steps, then every
/// environment step SAC's updates on minibatches of the model ring (and `real_data_ratio` of
/// the real ring) and the next action in one submission, the ensemble retrained and a rollout
/// batch run every `freq_train_model` steps; an evaluation per epoch; the end event and the
/// learning curve.
pub fn run(
    ctx: &GpuContext,
    cfg: &MbpoConfig,
    env: &mut dyn Env,
    task: &Task,
    opts: RunOptions<'_>,
) -> Result<SacSummary> {
    cfg.validate()?;
    if task.obs_dim != env.obs_dim() || task.act_dim != env.act_dim() {
        return Err(Error::InvalidInput(format!(
            "task {} has obs {} / act {}, the environment obs {} / act {}",
            task.name,
            task.obs_dim,
            task.act_dim,
            env.obs_dim(),
            env.act_dim()
        )));
    }
    let started = Instant::now();
    let sac_cfg = cfg.sac_config();
    let name = cfg.external_env.clone().unwrap_or_else(|| cfg.env.name().to_string());
    let interrupt = opts.interrupt.clone();
    let make = |dev: &SacDevice| -> Result<Box<dyn Extension + '_>> {
        let wgsl = TaskWgsl { name: &task.name, wgsl: &task.wgsl };
        Ok(Box::new(run_loop::ModelRollouts::new(ctx, cfg, dev, wgsl, interrupt.clone())?))
    };
    let spec = LoopSpec {
        layout: &LAYOUT,
        config_toml: cfg.to_toml(),
        title: format!("MBPO on {name}"),
        model_ring: Some((cfg.model_buffer_capacity(), cfg.real_rows())),
        extension: Some(&make),
        episode_cap: Some(cfg.schedule.trial_length as u64),
        same_config: Box::new(|dir| crate::run::check_same_config(dir, cfg)),
    };
    let mut lp = SacLoop::start_or_resume(ctx, &sac_cfg, spec, env, opts)?;
    lp.run_steps(started)?;
    lp.finish(started)
}

/// Replays the policy of the MBPO run in `run_dir` on its built-in environment: the return of
/// each of `episodes` episodes (reset seeds from `seed`).
pub fn evaluate(
    run_dir: &std::path::Path,
    episodes: usize,
    seed: u64,
    opts: crate::run::EvalOptions<'_>,
) -> Result<crate::run::Evaluation> {
    let cfg: MbpoConfig = crate::run::read_config(run_dir)?;
    crate::sac::evaluate_builtin(&cfg.sac_config(), run_dir, episodes, seed, opts)
}

/// Replays the policy of the MBPO run in `run_dir` on `env`.
pub fn evaluate_on(
    run_dir: &std::path::Path,
    episodes: usize,
    seed: u64,
    env: &mut dyn Env,
    opts: crate::run::EvalOptions<'_>,
) -> Result<crate::run::Evaluation> {
    let cfg: MbpoConfig = crate::run::read_config(run_dir)?;
    crate::sac::evaluate_policy(&cfg.sac_config(), run_dir, episodes, seed, env, opts)
}
