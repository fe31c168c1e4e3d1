//! Replaying a PETS run's checkpoint: episodes planned with its elites, stopped by an
//! interrupt flag between environment steps.

use std::path::Path;

use super::PetsConfig;
use crate::env::{Env, Task};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::planner::{Dynamics, Planner, PlannerConfig};
use crate::train::checkpoint::Checkpoint;

pub use crate::run::{EvalOptions, Evaluation};

/// Replays a run's checkpoint: `episodes` episodes planned with its elites, returns per episode.
pub fn evaluate(
    ctx: &GpuContext,
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    opts: EvalOptions<'_>,
) -> Result<Evaluation> {
    let cfg = read_run_config(run_dir)?;
    if let Some(env) = &cfg.external_env {
        return Err(Error::config(
            "external_env",
            format!(
                "{} ran on {env}, which only its caller can step; replay it from there (Python: lookahead.pets.evaluate)",
                run_dir.display()
            ),
        ));
    }
    let mut env = cfg.env.make();
    evaluate_on(ctx, run_dir, episodes, seed, env.as_mut(), cfg.env.task(), opts)
}

fn read_run_config(run_dir: &Path) -> Result<PetsConfig> {
    crate::run::read_config(run_dir)
}

/// Replays the checkpoint of the run in `run_dir` on `env` planned with `task` (for runs on an
/// environment outside the crate): `episodes` episodes of at most the run's trial length.
pub fn evaluate_on(
    ctx: &GpuContext,
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    env: &mut dyn Env,
    task: Task,
    opts: EvalOptions<'_>,
) -> Result<Evaluation> {
    let cfg = read_run_config(run_dir)?;
    if env.obs_dim() != task.obs_dim || env.act_dim() != task.act_dim {
        return Err(Error::InvalidInput("the environment and its planning task disagree on sizes".into()));
    }
    let model = load_elites(run_dir, &cfg, &task)?;
    let mut planner =
        Planner::new(ctx, task, Dynamics::Ensemble(model), PlannerConfig { seed, ..cfg.planner.clone() })?;
    let steps = cfg.schedule.trial_length;
    crate::run::replay_episodes(episodes, seed, opts, |reset_seed, stop| {
        play_episode(&mut planner, env, reset_seed, steps, stop)
    })
}

/// The elites of the checkpoint (`model.safetensors`) of the run of `cfg` in `run_dir`, planning
/// `task`: the config is validated, and a checkpoint that is not the model the config describes
/// (a folder mixing two runs) is refused, naming what disagrees.
pub fn load_elites(run_dir: &Path, cfg: &PetsConfig, task: &Task) -> Result<crate::model::Ensemble> {
    cfg.validate()?;
    let ckpt = Checkpoint::load(run_dir.join("model.safetensors"))?;
    let expected = cfg.ensemble_spec(task);
    if ckpt.ensemble.spec != expected {
        return Err(Error::InvalidInput(format!(
            "{}: the checkpoint holds ({}), the config describes ({}); the folder mixes two runs",
            run_dir.display(),
            ckpt.ensemble.spec,
            expected
        )));
    }
    if ckpt.elites.len() != cfg.train.num_elites {
        return Err(Error::InvalidInput(format!(
            "{}: the checkpoint names {} elites, the config train.num_elites = {}",
            run_dir.display(),
            ckpt.elites.len(),
            cfg.train.num_elites
        )));
    }
    ckpt.ensemble.select_members(&ckpt.elites)
}

/// One episode of at most `steps` steps from `env`'s reset with `reset_seed`: its return, or
/// `None` when the interrupt flag stopped it.
fn play_episode(
    planner: &mut Planner,
    env: &mut dyn Env,
    reset_seed: u64,
    steps: usize,
    stop: &dyn Fn() -> bool,
) -> Result<Option<f64>> {
    let mut obs = env.reset(reset_seed);
    planner.reset()?;
    let mut total = 0.0;
    for _ in 0..steps {
        if stop() {
            return Ok(None);
        }
        let o: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
        let a: Vec<f64> = planner.plan(&o)?.action.iter().map(|v| *v as f64).collect();
        let s = env.step(&a)?;
        total += s.reward;
        obs = s.obs;
        if s.terminated || s.truncated {
            break;
        }
    }
    Ok(Some(total))
}
