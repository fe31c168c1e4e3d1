//! Replaying a SAC run's checkpoint: episodes of its deterministic policy.

use std::path::Path;

use super::run_loop::play_episode;
use super::{Policy, SacCheckpoint, SacConfig};
use crate::env::Env;
use crate::error::{Error, Result};

/// Replays the policy of the run in `run_dir` on its built-in environment: the return of each
/// of `episodes` episodes (reset seeds from `seed`).
pub fn evaluate(run_dir: &Path, episodes: usize, seed: u64) -> Result<Vec<f64>> {
    let cfg: SacConfig = crate::run::read_config(run_dir)?;
    if let Some(env) = &cfg.external_env {
        return Err(Error::config(
            "external_env",
            format!(
                "{} ran on {env}, which only its caller can step; replay it from there (Python: lookahead.sac.evaluate)",
                run_dir.display()
            ),
        ));
    }
    let mut env = cfg.env.make();
    evaluate_on(run_dir, episodes, seed, env.as_mut())
}

/// Replays the policy of the run in `run_dir` on `env`: `episodes` episodes, each at most the
/// run's total steps long.
pub fn evaluate_on(run_dir: &Path, episodes: usize, seed: u64, env: &mut dyn Env) -> Result<Vec<f64>> {
    if episodes == 0 {
        return Err(Error::config("episodes", "must be at least 1 (--episodes; episodes= in Python)"));
    }
    let cfg: SacConfig = crate::run::read_config(run_dir)?;
    let ckpt = SacCheckpoint::load(&run_dir.join("model.safetensors"))?;
    if ckpt.manifest.config != cfg {
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
    (0..episodes as u64)
        .map(|k| play_episode(env, &policy, seed.wrapping_mul(7919).wrapping_add(k), cfg.schedule.total_steps as u64))
        .collect()
}
