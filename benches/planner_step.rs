//! One `plan()` end to end (upload, one submission, readback) through the PETS reference
//! ensemble, at a size that suits the adapter: the reference plan on a real GPU, a reduced
//! population on CPU rasterisers such as lavapipe. Bench names carry the adapter.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookahead::env::EnvKind;
use lookahead::gpu::{AdapterOptions, GpuContext};
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::planner::{Dynamics, Planner, PlannerConfig};

fn plan(c: &mut Criterion) {
    let ctx = GpuContext::new(&AdapterOptions::default())
        .expect("a GPU adapter (or lavapipe: apt-get install mesa-vulkan-drivers)");
    let cfg = if ctx.is_software() {
        PlannerConfig { population: 50, particles: 4, iterations: 2, ..PlannerConfig::pets_reference() }
    } else {
        PlannerConfig::pets_reference()
    };
    let ens = Ensemble::random(EnsembleSpec::pets(4, 1), 1).expect("ensemble");
    let mut planner =
        Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Ensemble(ens), cfg.clone()).expect("planner");
    let adapter = ctx.adapter().name.split_whitespace().next().unwrap_or("gpu").to_lowercase();
    let mut group = c.benchmark_group(format!("{adapter}/plan"));
    group.sample_size(10).warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(planner.model_steps_per_plan()));
    let name = format!("{}x{}x{}x{}", cfg.population, cfg.particles, cfg.horizon, cfg.iterations);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            for i in 0..iters {
                planner.plan(&[0.0, 0.0, 0.01 * (i % 3) as f32, 0.0]).expect("plan");
            }
            t0.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, plan);
criterion_main!(benches);
