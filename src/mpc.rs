//! Closed-loop MPC episodes: plan with the GPU planner, act in the native environment,
//! repeat. Used by `lookahead mpc` and the behavioural tests.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::env::{EnvKind, Step};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::planner::{Dynamics, Planner, PlannerConfig};

/// One row of a trajectory: the observation the action was chosen from, the action, the reward.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryRow {
    /// Step index from 0.
    pub step: usize,
    /// Observation before the action.
    pub obs: Vec<f64>,
    /// The executed action.
    pub action: Vec<f64>,
    /// Reward of the step.
    pub reward: f64,
}

/// A finished episode.
#[derive(Debug, Clone)]
pub struct Episode {
    /// Sum of rewards.
    pub total_return: f64,
    /// Steps taken.
    pub steps: usize,
    /// The episode ended in a terminal state.
    pub terminated: bool,
    /// Every step.
    pub trajectory: Vec<TrajectoryRow>,
    /// Wall time of each plan.
    pub plan_times: Vec<Duration>,
}

/// Runs one episode of `env` with analytic (true-dynamics) MPC. `on_step` sees each row as it happens.
pub fn run_episode(
    ctx: &GpuContext,
    env: EnvKind,
    cfg: PlannerConfig,
    seed: u64,
    mut on_step: impl FnMut(&TrajectoryRow),
) -> Result<Episode> {
    let mut planner = Planner::new(ctx, env.task(), Dynamics::Analytic, PlannerConfig { seed, ..cfg })?;
    let mut e = env.make();
    let mut obs = e.reset(seed);
    let mut ep =
        Episode { total_return: 0.0, steps: 0, terminated: false, trajectory: Vec::new(), plan_times: Vec::new() };
    loop {
        let o32: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
        let t0 = Instant::now();
        let plan = planner.plan(&o32)?;
        ep.plan_times.push(t0.elapsed());
        let action: Vec<f64> = plan.action.iter().map(|v| *v as f64).collect();
        let Step { obs: next, reward, terminated, truncated } = e.step(&action)?;
        let row = TrajectoryRow { step: ep.steps, obs: obs.clone(), action, reward };
        on_step(&row);
        ep.trajectory.push(row);
        ep.total_return += reward;
        ep.steps += 1;
        obs = next;
        if terminated || truncated {
            ep.terminated = terminated;
            return Ok(ep);
        }
    }
}

/// Writes a trajectory as CSV: `step, obs_0 … obs_{n-1}, action_0 … action_{m-1}, reward`.
pub fn write_trajectory_csv(path: &Path, rows: &[TrajectoryRow]) -> Result<()> {
    let (n, m) = rows.first().map(|r| (r.obs.len(), r.action.len())).unwrap_or((0, 0));
    let mut text = String::from("step");
    (0..n).for_each(|i| text.push_str(&format!(",obs_{i}")));
    (0..m).for_each(|i| text.push_str(&format!(",action_{i}")));
    text.push_str(",reward\n");
    for r in rows {
        text.push_str(&r.step.to_string());
        for v in r.obs.iter().chain(&r.action) {
            text.push_str(&format!(",{v}"));
        }
        text.push_str(&format!(",{}\n", r.reward));
    }
    crate::util::write_atomic(path, text.as_bytes())
}
