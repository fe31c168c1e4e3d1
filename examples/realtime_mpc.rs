//! A 50 Hz control loop on the pendulum with the true dynamics: the planner runs on its own
//! thread (each plan within 15 ms), the loop hands it the newest state and applies the newest
//! action every 20 ms, and reports the achieved rate, deadline misses and the return.
//!
//! `cargo run --release --example realtime_mpc`
//! On a CPU rasteriser (lavapipe) the population is reduced to 300; on a GPU it is 500.

use std::time::{Duration, Instant};

use lookahead::env::EnvKind;
use lookahead::gpu::{AdapterOptions, GpuContext};
use lookahead::planner::{AsyncPlanner, Dynamics, Planner, PlannerConfig};

const PERIOD: Duration = Duration::from_millis(20);

fn main() -> anyhow::Result<()> {
    let ctx = GpuContext::new(&AdapterOptions::default())?;
    let population = if ctx.is_software() { 300 } else { 500 };
    println!("adapter: {}; population {population}, horizon 30, up to 5 CEM iterations per plan", ctx.adapter());
    let cfg = PlannerConfig { population, ..PlannerConfig::pendulum_mpc() };
    let mut planner = Planner::new(&ctx, EnvKind::Pendulum.task(), Dynamics::Analytic, cfg)?;
    let mut env = EnvKind::Pendulum.make();
    let mut obs = env.reset(0);
    let f32s = |o: &[f64]| -> Vec<f32> { o.iter().map(|v| *v as f32).collect() };
    let iteration = planner.warm_up(&f32s(&obs))?;
    println!("one CEM iteration: {iteration:?}");
    let agent = AsyncPlanner::spawn(planner, Duration::from_millis(15))?;
    let (mut total, mut misses, mut late_worst) = (0.0, 0, Duration::ZERO);
    let start = Instant::now();
    let mut next = start;
    for _ in 0..200 {
        agent.set_state(&f32s(&obs))?;
        let action = agent.action()?.map(|a| a[0] as f64).unwrap_or(0.0);
        let step = env.step(&[action])?;
        total += step.reward;
        obs = step.obs;
        next += PERIOD;
        let now = Instant::now();
        if now > next {
            misses += 1;
            late_worst = late_worst.max(now - next);
            next = now;
        } else {
            std::thread::sleep(next - now);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let plans = agent.plans()?;
    agent.stop()?;
    println!(
        "200 steps in {secs:.2} s: {:.1} Hz, {misses} deadline misses (worst {late_worst:?}), {plans} plans, return {total:.1}",
        200.0 / secs
    );
    Ok(())
}
