//! Adding an environment: implement `Env` for the real system, write its reward, termination
//! (and optionally dynamics) as WGSL functions for the planner, and run PETS on it.
//!
//! `cargo run --release --example custom_env`

use lookahead::env::{Env, Step, Task};
use lookahead::gpu::{AdapterOptions, GpuContext};
use lookahead::pets::{self, PetsConfig, Preset, RunOptions};
use lookahead::{Error, Result};

/// A point mass on a rail that should come to rest at x = 1: state [x, v], force in [−1, 1].
struct PointMass {
    x: f64,
    v: f64,
    steps: usize,
}

impl Env for PointMass {
    fn obs_dim(&self) -> usize {
        2
    }
    fn act_dim(&self) -> usize {
        1
    }
    fn action_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![-1.0], vec![1.0])
    }
    fn reset(&mut self, seed: u64) -> Vec<f64> {
        self.x = -0.5 + 0.1 * (seed % 5) as f64;
        self.v = 0.0;
        self.steps = 0;
        vec![self.x, self.v]
    }
    fn step(&mut self, action: &[f64]) -> Result<Step> {
        let a = action
            .first()
            .copied()
            .filter(|a| a.is_finite())
            .ok_or_else(|| Error::InvalidInput("one finite force".into()))?;
        let a = a.clamp(-1.0, 1.0);
        self.v += 0.1 * a;
        self.x += 0.1 * self.v;
        self.steps += 1;
        let reward = -((self.x - 1.0).powi(2) + 0.01 * a * a);
        Ok(Step { obs: vec![self.x, self.v], reward, terminated: false, truncated: self.steps >= 50 })
    }
}

/// The planner's twin of the reward: the same maths in WGSL (`params` is the planner's uniform).
const POINT_MASS_WGSL: &str = r#"
fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    let a = clamp(act[0], -1.0, 1.0);
    return -((next[0] - 1.0) * (next[0] - 1.0) + 0.01 * a * a);
}

fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    return false;
}
"#;

fn main() -> anyhow::Result<()> {
    let ctx = GpuContext::new(&AdapterOptions::default())?;
    println!("adapter: {}", ctx.adapter());
    let task = Task {
        name: "point_mass".into(),
        obs_dim: 2,
        act_dim: 1,
        action_lower: vec![-1.0],
        action_upper: vec![1.0],
        wgsl: POINT_MASS_WGSL.into(),
        has_dynamics: false,
    };
    // Start from the demo preset and shorten it for a 50-step task.
    let mut cfg = PetsConfig::preset(lookahead::env::EnvKind::Cartpole, Preset::Demo);
    cfg.schedule.trial_length = 50;
    cfg.schedule.initial_exploration_steps = 100;
    cfg.schedule.trials = 3;
    cfg.schedule.freq_train_model = 25;
    cfg.planner.horizon = 10;
    let mut env = PointMass { x: 0.0, v: 0.0, steps: 0 };
    let summary = pets::run(&ctx, &cfg, &mut env, task, RunOptions::default())?;
    for t in &summary.trials {
        println!("trial {}: return {:.2} ({} steps, plan {:.1} ms)", t.trial + 1, t.total_return, t.steps, t.plan_ms);
    }
    Ok(())
}
