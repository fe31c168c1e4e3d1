//! Per-kernel throughput: one 200 → 200 SiLU layer of a 7-member ensemble over the rows of the
//! reference plan step (350 candidates × 20 particles), submitted N times and waited on.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookahead::gpu::{AdapterOptions, GpuContext};
use lookahead::kernels::bind_buffers;
use lookahead::kernels::mlp::{Activation, LayerParams, MlpKernels};

fn mlp_layer(c: &mut Criterion) {
    let ctx = GpuContext::new(&AdapterOptions::default())
        .expect("a GPU adapter (or lavapipe: apt-get install mesa-vulkan-drivers)");
    let mlp = MlpKernels::new(&ctx).expect("kernels");
    let local_slots = if ctx.is_software() { 350 } else { 7000 };
    let (e, width) = (7u32, 200u32);
    let lp = LayerParams {
        n_batch: 1,
        local_slots,
        n_members: e,
        in_dim: width,
        out_dim: width,
        activation: Activation::Silu as u32,
        store_pre: 0,
        bias_grad_off: 0,
    };
    let rows = local_slots as usize;
    let x: Vec<f32> = (0..rows * width as usize).map(|i| ((i % 97) as f32 - 48.0) / 48.0).collect();
    let w: Vec<f32> = (0..(e * width * width) as usize).map(|i| ((i % 89) as f32 - 44.0) / 440.0).collect();
    let b = vec![0.01f32; (e * width) as usize];
    let xb = ctx.storage_buffer_init("x", &x);
    let wb = ctx.storage_buffer_init("w", &w);
    let bb = ctx.storage_buffer_init("b", &b);
    let yb = ctx.storage_buffer("y", rows * width as usize);
    let ub = ctx.uniform_buffer_init("lp", &[lp]);
    let aux = ctx.storage_buffer("aux", 1);
    let bg = bind_buffers(&ctx, "bench", &mlp.layout, &[&ub, &xb, &wb, &bb, &yb, &aux]);
    let groups = lp.workgroups(&ctx).expect("fits");
    let adapter = ctx.adapter().name.split_whitespace().next().unwrap_or("gpu").to_lowercase();
    let mut group = c.benchmark_group(format!("{adapter}/mlp_forward"));
    group.sample_size(10).warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(rows as u64 * (width * width) as u64));
    group.bench_function(format!("{rows}rows_{e}x{width}x{width}"), |bench| {
        bench.iter_custom(|iters| {
            let t0 = Instant::now();
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for _ in 0..iters {
                    mlp.dispatch(&mut pass, &bg, groups);
                }
            }
            let idx = ctx.queue.submit(Some(enc.finish()));
            ctx.device
                .poll(lookahead::wgpu::PollType::Wait {
                    submission_index: Some(idx),
                    timeout: Some(Duration::from_secs(600)),
                })
                .expect("the GPU finishes");
            t0.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, mlp_layer);
criterion_main!(benches);
