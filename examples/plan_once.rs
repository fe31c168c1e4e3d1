//! The smallest complete use: plan one action for a hanging pendulum with its true dynamics.
//!
//! `cargo run --release --example plan_once`

use lookahead::env::EnvKind;
use lookahead::gpu::{AdapterOptions, GpuContext};
use lookahead::planner::{Dynamics, Planner, PlannerConfig};

fn main() -> lookahead::Result<()> {
    let ctx = GpuContext::new(&AdapterOptions::default())?;
    let task = EnvKind::Pendulum.task();
    let mut planner = Planner::new(&ctx, task, Dynamics::Analytic, PlannerConfig::pendulum_mpc())?;
    // obs = [cos θ, sin θ, θ̇]: hanging straight down, at rest.
    let plan = planner.plan(&[-1.0, 0.0, 0.0])?;
    println!("torque {:+.3}, predicted return {:.1} on {}", plan.action[0], plan.predicted_return, ctx.adapter());
    Ok(())
}
