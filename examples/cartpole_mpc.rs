//! Plan with a learned ensemble loaded from safetensors (here: a freshly initialised one saved
//! and loaded again, standing in for a model trained elsewhere), then run MPC with the true
//! cartpole dynamics for comparison.
//!
//! `cargo run --release --example cartpole_mpc`

use lookahead::env::EnvKind;
use lookahead::gpu::{AdapterOptions, GpuContext};
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::planner::{Dynamics, Planner, PlannerConfig};

fn main() -> anyhow::Result<()> {
    let ctx = GpuContext::new(&AdapterOptions::default())?;
    println!("adapter: {}", ctx.adapter());

    // A model file with the documented tensor names (see lookahead::model).
    let path = std::env::temp_dir().join("lookahead-example-ensemble.safetensors");
    Ensemble::random(EnsembleSpec::pets(4, 1), 0)?.save(&path)?;
    let ensemble = Ensemble::load(&path)?;
    let small = PlannerConfig { population: 100, particles: 4, ..PlannerConfig::pets_reference() };
    let mut learned = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Ensemble(ensemble), small)?;
    let plan = learned.plan(&[0.0, 0.0, 0.05, 0.0])?;
    println!("untrained ensemble plans {:?} (predicted return {:.2})", plan.action, plan.predicted_return);

    // The true dynamics keep the pole up.
    let mut planner =
        Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Analytic, PlannerConfig::pets_reference())?;
    let mut env = EnvKind::Cartpole.make();
    let mut obs = env.reset(7);
    let mut total = 0.0;
    for _ in 0..200 {
        let o: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
        let action = planner.plan(&o)?.action[0] as f64;
        let step = env.step(&[action])?;
        total += step.reward;
        obs = step.obs;
        if step.terminated || step.truncated {
            break;
        }
    }
    println!("true-dynamics MPC return: {total}");
    Ok(())
}
