//! Replaying a SAC run's checkpoint: episodes of its deterministic policy.

use std::path::Path;

use super::run_loop::play_episode;
use super::{Policy, SacCheckpoint, SacConfig};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::run::{EvalOptions, Evaluation};

/// Replays the policy of the run in `run_dir` on its built-in environment: the return of each
/// of `episodes` episodes (reset seeds from `seed`).
pub fn evaluate(run_dir: &Path, episodes: usize, seed: u64, opts: EvalOptions<'_>) -> Result<Evaluation> {
    let cfg: SacConfig = crate::run::read_config(run_dir)?;
    evaluate_builtin(&cfg, run_dir, episodes, seed, opts)
}

/// Replays the policy of the run in `run_dir`, run with `cfg` (a SAC config or a loop's on
/// SAC's), on its built-in environment.
pub fn evaluate_builtin(
    cfg: &SacConfig,
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    opts: EvalOptions<'_>,
) -> Result<Evaluation> {
    if let Some(env) = &cfg.external_env {
        return Err(Error::config(
            "external_env",
            format!(
                "{} ran on {env}, which only its caller can step; replay it from there (Python: lookahead.sac.evaluate \
             or lookahead.mbpo.evaluate)",
                run_dir.display()
            ),
        ));
    }
    let mut env = cfg.env.make();
    evaluate_policy(cfg, run_dir, episodes, seed, env.as_mut(), opts)
}

/// Replays the policy of the run in `run_dir` on `env`: `episodes` episodes, each at most the
/// run's total steps long, stopping at the interrupt with the episodes finished.
pub fn evaluate_on(
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    env: &mut dyn Env,
    opts: EvalOptions<'_>,
) -> Result<Evaluation> {
    let cfg: SacConfig = crate::run::read_config(run_dir)?;
    evaluate_policy(&cfg, run_dir, episodes, seed, env, opts)
}

/// Replays the policy of the run in `run_dir`, run with `cfg` (a SAC config, or a loop's on
/// SAC's as its `sac_config`), on `env`.
pub fn evaluate_policy(
    cfg: &SacConfig,
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    env: &mut dyn Env,
    opts: EvalOptions<'_>,
) -> Result<Evaluation> {
    let ckpt = SacCheckpoint::load(&run_dir.join("model.safetensors"))?;
    if &ckpt.manifest.config != cfg {
        return Err(Error::InvalidInput(format!(
            "{}: the checkpoint was written by a run of another config than config.toml; the folder mixes two runs",
            run_dir.display()
        )));
    }
    let (lower, upper) = env.action_bounds();
    if env.obs_dim() != ckpt.manifest.obs_dim || env.act_dim() != ckpt.manifest.act_dim {
        return Err(Error::InvalidInput(format!(
            "the environment has obs {} / act {}, the policy obs {} / act {}",
            env.obs_dim(),
            env.act_dim(),
            ckpt.manifest.obs_dim,
            ckpt.manifest.act_dim
        )));
    }
    if lower != ckpt.manifest.lower || upper != ckpt.manifest.upper {
        return Err(Error::InvalidInput("the environment's action bounds differ from the run's".into()));
    }
    let policy = Policy::from_checkpoint(&ckpt)?;
    let cap = cfg.schedule.total_steps as u64;
    crate::run::replay_episodes(episodes, seed, opts, |reset_seed, stop| {
        play_episode(env, &policy, reset_seed, cap, stop)
    })
}
