//! Kernel checks beyond the conformance table (`lookahead verify`, run by `tests/verify.rs`,
//! which holds the random streams, every network kernel, the environment twins, whole plans per
//! propagation and kernel, the planner kinds and training): the CEM kernels one by one (ranking
//! with ties and NaN, sampling bounds, the distribution update and shift), the warm start, a
//! reference-sized plan and the row kernel's weight windows, against their f64 references on
//! the adapter present, over sizes that are not multiples of the workgroup or tile size.

mod common;

use common::{assert_close, f32_bits, from_bits, seeded, Tol};
use lookahead::env::reference::RefTask;
use lookahead::env::{EnvKind, Task};
use lookahead::kernels::cem::reference as cem_ref;
use lookahead::kernels::mlp::{reference as mlp_ref, Activation, LayerParams};
use lookahead::kernels::{self, PlanLayouts, PlanParams};
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::planner::reference::plan_f64;
use lookahead::planner::{Dynamics, MlpKernel, Planner, PlannerConfig, Sampling};
use lookahead::verify::{FORWARD_TOL, PLAN_TOL, TRANSCENDENTAL_TOL};

/// Runs one cem.wgsl entry point over explicit buffers (mean, var, bounds, actions, track,
/// cand_returns, elites, plan_stats) and returns them all.
fn run_cem(
    ctx: &lookahead::gpu::GpuContext,
    entry: &str,
    params: PlanParams,
    bufs: &[Vec<u32>; 8],
    n: u32,
) -> Vec<Vec<u32>> {
    let layouts = PlanLayouts::new(ctx).expect("layouts");
    let pipe = kernels::Family::Cem
        .pipeline(ctx, None, entry, &[&layouts.params, &layouts.cem], kernels::WG_SIZE_OVERRIDE)
        .expect("pipeline");
    let ub = ctx.uniform_buffer_init("params", &[params]);
    let pbg = kernels::bind_buffers(ctx, "params", &layouts.params, &[&ub]);
    let buffers: Vec<wgpu::Buffer> = bufs.iter().map(|b| ctx.storage_buffer_init("cem", b)).collect();
    let refs: Vec<&wgpu::Buffer> = buffers.iter().collect();
    let bg = kernels::bind_buffers(ctx, "cem", &layouts.cem, &refs);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &pbg, &[0]);
        pass.set_bind_group(1, &bg, &[]);
        let (x, y) = lookahead::gpu::grid_1d(n, kernels::WG_SIZE, 65535).expect("grid");
        pass.dispatch_workgroups(x, y, 1);
    }
    ctx.queue.submit(Some(enc.finish()));
    buffers.iter().zip(bufs).map(|(b, v)| ctx.read_buffer::<u32>(b, v.len().max(1)).expect("readback")).collect()
}

fn cem_params(nb: u32, pop: u32, particles: u32, h: u32, na: u32, ne: u32) -> PlanParams {
    PlanParams {
        n_batch: nb,
        population: pop,
        particles,
        horizon: h,
        act_dim: na,
        obs_dim: 1,
        n_members: 1,
        local_slots: pop * particles,
        n_elites: ne,
        iteration: 3,
        call: 17,
        seed_lo: 99,
        seed_hi: 1,
        alpha: 0.25,
        ..Default::default()
    }
}

gpu_test!(particle_mean_and_rank_elites_match_reference_with_ties_and_nan, |ctx| {
    let (nb, pop, k, ne) = (2u32, 70u32, 3u32, 9u32);
    let n = (nb * pop * k) as usize;
    // Returns on a coarse grid (many exact ties), one NaN particle and one +inf particle.
    let mut returns: Vec<f64> = seeded(n, 3, 4.0).iter().map(|v| v.round()).collect();
    returns[5] = f64::NAN;
    returns[100] = f64::INFINITY;
    let mut track = vec![0.0f64; 2 * n];
    for (i, r) in returns.iter().enumerate() {
        track[2 * i] = *r;
    }
    let p = cem_params(nb, pop, k, 1, 1, ne);
    let empty = || vec![0u32; 1];
    let bufs = [
        empty(),
        empty(),
        empty(),
        empty(),
        f32_bits(&track),
        vec![0; (nb * pop) as usize],
        vec![0; (nb * ne) as usize],
        empty(),
    ];
    let after_mean = run_cem(ctx, "particle_mean", p, &bufs, nb * pop);
    let cand_cpu = cem_ref::particle_mean_f64(&returns, k as usize);
    let cand_gpu = from_bits(&after_mean[5]);
    assert_close("particle_mean", &cand_gpu, &cand_cpu, Tol { rel: 1e-6, abs: 1e-6 });
    let mut bufs2 = bufs.clone();
    bufs2[5] = after_mean[5].clone();
    let after_rank = run_cem(ctx, "rank_elites", p, &bufs2, nb * pop);
    let cand_f32: Vec<f64> = cand_gpu.iter().map(|v| *v as f64).collect();
    assert_eq!(after_rank[6], cem_ref::rank_elites_f64(&cand_f32, pop as usize, ne as usize));
});

gpu_test!(sample_candidates_match_reference_and_respect_bounds, |ctx| {
    let (nb, pop, h, na) = (2u32, 101u32, 7u32, 3u32);
    let lower = [-1.0, -2.0, 0.0];
    let upper = [1.0, 2.0, 0.5];
    let plan_len = (nb * h * na) as usize;
    let mean: Vec<f64> = (0..plan_len)
        .map(|i| lower[i % 3] + (upper[i % 3] - lower[i % 3]) * (0.2 + 0.6 * ((i * 7) % 11) as f64 / 10.0))
        .collect();
    let var: Vec<f64> = (0..plan_len).map(|i| 0.05 + 0.1 * (i % 5) as f64).collect();
    let dims =
        cem_ref::CemDims { n_batch: nb as usize, population: pop as usize, horizon: h as usize, act_dim: na as usize };
    for sampling in [Sampling::TruncatedNormal, Sampling::ClippedNormal] {
        let mut p = cem_params(nb, pop, 1, h, na, 1);
        if sampling == Sampling::ClippedNormal {
            p.flags |= kernels::FLAG_CLIPPED_NORMAL;
        }
        let bounds: Vec<f64> = lower.iter().chain(&upper).copied().collect();
        let n_act = (nb * pop * h * na) as usize;
        let bufs =
            [f32_bits(&mean), f32_bits(&var), f32_bits(&bounds), vec![0; n_act], vec![0], vec![0], vec![0], vec![0]];
        let out = run_cem(ctx, "sample_candidates", p, &bufs, n_act as u32);
        let gpu = from_bits(&out[3]);
        let m32: Vec<f64> = mean.iter().map(|v| *v as f32 as f64).collect();
        let v32: Vec<f64> = var.iter().map(|v| *v as f32 as f64).collect();
        let cpu = cem_ref::sample_candidates_f64(
            dims,
            &m32,
            &v32,
            &lower,
            &upper,
            sampling,
            p.seed_lo as u64 | (p.seed_hi as u64) << 32,
            p.call,
            p.iteration,
        );
        assert_close(&format!("{sampling:?} samples"), &gpu, &cpu, TRANSCENDENTAL_TOL);
        for (i, x) in gpu.iter().enumerate() {
            let a = i % na as usize;
            assert!(*x as f64 >= lower[a] && *x as f64 <= upper[a], "sample {i} = {x} outside bounds");
        }
    }
});

gpu_test!(update_distribution_and_shift_match_reference, |ctx| {
    let (nb, pop, h, na, ne) = (2u32, 67u32, 5u32, 2u32, 7u32);
    let plan_len = (nb * h * na) as usize;
    let mean = seeded(plan_len, 1, 0.5);
    let var: Vec<f64> = seeded(plan_len, 2, 0.5).iter().map(|v| v.abs() + 0.01).collect();
    let actions = seeded((nb * pop * h * na) as usize, 3, 1.0);
    let cand = seeded((nb * pop) as usize, 4, 10.0);
    let elites: Vec<u32> = (0..nb * ne).map(|i| (i * 13 + 5) % pop).collect();
    let p = cem_params(nb, pop, 1, h, na, ne);
    let bounds = vec![-1.0f64, -1.0, 1.0, 1.0];
    let bufs = [
        f32_bits(&mean),
        f32_bits(&var),
        f32_bits(&bounds),
        f32_bits(&actions),
        vec![0],
        f32_bits(&cand),
        elites.clone(),
        vec![0; 2 * nb as usize],
    ];
    let out = run_cem(ctx, "update_distribution", p, &bufs, plan_len as u32);
    let dims =
        cem_ref::CemDims { n_batch: nb as usize, population: pop as usize, horizon: h as usize, act_dim: na as usize };
    let f = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| *x as f32 as f64).collect() };
    let (mut m_cpu, mut v_cpu) = (f(&mean), f(&var));
    let stats = cem_ref::update_distribution_f64(dims, &f(&actions), &elites, &f(&cand), 0.25, &mut m_cpu, &mut v_cpu);
    assert_close("updated mean", &from_bits(&out[0]), &m_cpu, FORWARD_TOL);
    assert_close("updated var", &from_bits(&out[1]), &v_cpu, FORWARD_TOL);
    let stats_cpu: Vec<f64> = stats.iter().flat_map(|(a, b)| [*a, *b]).collect();
    assert_close("plan stats", &from_bits(&out[7]), &stats_cpu, FORWARD_TOL);
    let shifted = run_cem(ctx, "shift_solution", p, &bufs, plan_len as u32);
    let cpu_shift = cem_ref::shift_f64(&f(&mean), h as usize, &[-1.0, -1.0], &[1.0, 1.0]);
    assert_close("shifted mean", &from_bits(&shifted[1]), &cpu_shift, Tol { rel: 0.0, abs: 0.0 });
});

fn f64v(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// A plan on the GPU against the f64 reference (`verify::compare_plan`: the last iteration's
/// elites exactly, returns, mean and statistics within PLAN_TOL), with each network kernel when
/// the dynamics are learned.
fn compare_plan(
    ctx: &lookahead::gpu::GpuContext,
    task: Task,
    rt: RefTask,
    ens: Option<Ensemble>,
    cfg: PlannerConfig,
    obs: &[Vec<f32>],
) {
    let kernels: &[MlpKernel] =
        if ens.is_some() { &[MlpKernel::Tiled, MlpKernel::Rows, MlpKernel::Fused] } else { &[MlpKernel::Auto] };
    for &mlp_kernel in kernels {
        let cfg = PlannerConfig { mlp_kernel, ..cfg.clone() };
        let c = lookahead::verify::compare_plan(ctx, task.clone(), rt, ens.clone(), cfg, obs).expect("plan");
        assert!(c.passed && c.values > 0, "{mlp_kernel:?}: {} (max abs {:.2e})", c.detail, c.max_abs);
    }
}

gpu_test!(analytic_plans_match_reference_for_every_builtin_task, |ctx| {
    let cfg = PlannerConfig {
        horizon: 7,
        iterations: 3,
        population: 65,
        elite_ratio: 0.1,
        seed: 5,
        ..PlannerConfig::default()
    };
    compare_plan(
        ctx,
        EnvKind::Pendulum.task(),
        RefTask::Pendulum,
        None,
        cfg.clone(),
        &[vec![-0.9f32, 0.43, 0.7], vec![0.2, 0.98, -1.0]],
    );
    compare_plan(
        ctx,
        EnvKind::Cartpole.task(),
        RefTask::Cartpole,
        None,
        cfg.clone(),
        &[vec![0.01f32, -0.02, 0.03, 0.04]],
    );
    let clipped = PlannerConfig { sampling: Sampling::ClippedNormal, ..cfg };
    compare_plan(ctx, Task::quadratic(5, 3), RefTask::Quadratic, None, clipped, &[vec![0.5f32, -0.5, 0.2, 0.9, -0.1]]);
});

gpu_test!(warm_start_shifts_the_previous_mean, |ctx| {
    let task = EnvKind::Pendulum.task();
    let cfg = PlannerConfig { horizon: 6, iterations: 2, population: 40, seed: 3, ..PlannerConfig::default() };
    let mut planner = Planner::new(ctx, task.clone(), Dynamics::Analytic, cfg.clone()).expect("planner");
    let o1 = vec![0.3f32, 0.95, 0.1];
    let o2 = vec![0.35f32, 0.94, 0.2];
    planner.plan(&o1).expect("plan 1");
    let p2 = planner.plan(&o2).expect("plan 2");
    let (lo, hi) = (task.action_lower.clone(), task.action_upper.clone());
    let mean0 = vec![0.0; cfg.horizon];
    let first = plan_f64(RefTask::Pendulum, None, &cfg, &lo, &hi, &[f64v(&o1)], &mean0, 0);
    let warm = cem_ref::shift_f64(&first.mean, cfg.horizon, &lo, &hi);
    let second = plan_f64(RefTask::Pendulum, None, &cfg, &lo, &hi, &[f64v(&o2)], &warm, 1);
    assert_close("second plan", &p2.actions, &second.mean, PLAN_TOL);
});

gpu_test!(reference_sized_ensemble_plan_matches_reference, |ctx| {
    // 7 × 4×200: the row kernel splits each 200-row weight matrix over three uniform windows.
    // Pendulum's continuous reward makes every prediction count.
    let ens = Ensemble::random(EnsembleSpec::pets(3, 1), 21).unwrap();
    let cfg =
        PlannerConfig { horizon: 3, iterations: 2, population: 20, particles: 3, seed: 4, ..PlannerConfig::default() };
    compare_plan(ctx, EnvKind::Pendulum.task(), RefTask::Pendulum, Some(ens), cfg, &[vec![0.6f32, 0.8, -0.3]]);
});

gpu_test!(row_kernel_layer_matches_f64_reference_across_weight_windows, |ctx| {
    use lookahead::kernels::mlp::{pack_rows_windows, rows_chunking, MlpRowsKernels, RowsBuffers};
    use lookahead::wgpu::util::DeviceExt;
    let rk = MlpRowsKernels::new(ctx).expect("row kernel");
    // (members, batch, local slots, in, out, activation): one window; three windows (200 × 200);
    // 250 × 255: four windows, outputs not a multiple of 4.
    let cases = [
        (3u32, 2u32, 37u32, 13u32, 65u32, Activation::Silu),
        (3, 1, 70, 200, 200, Activation::Silu),
        (2, 3, 11, 250, 255, Activation::Identity),
    ];
    for (ci, &(e, nb, ls, ind, outd, act)) in cases.iter().enumerate() {
        let rows = (nb * ls) as usize;
        let (ind, outd) = (ind as usize, outd as usize);
        let (_, _, chunks) = rows_chunking(ind, outd).expect("fits");
        let x = seeded(rows * ind, 40 + ci as u64, 2.0);
        let w: Vec<f32> = seeded(e as usize * ind * outd, 50 + ci as u64, 0.3).iter().map(|v| *v as f32).collect();
        let b: Vec<f32> = seeded(e as usize * outd, 60 + ci as u64, 0.5).iter().map(|v| *v as f32).collect();
        let windows: Vec<f32> = (0..e as usize).flat_map(|m| pack_rows_windows(&w, m, ind, outd).unwrap()).collect();
        let wbuf = ctx.device.create_buffer_init(&lookahead::wgpu::util::BufferInitDescriptor {
            label: Some("windows"),
            contents: bytemuck::cast_slice(&windows),
            usage: lookahead::wgpu::BufferUsages::UNIFORM,
        });
        let xb = ctx.storage_buffer_init("x", &x.iter().map(|v| *v as f32).collect::<Vec<_>>());
        let bb = ctx.storage_buffer_init("b", &b);
        let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; rows * outd]);
        let lp = LayerParams {
            n_batch: nb,
            local_slots: ls,
            n_members: e,
            in_dim: ind as u32,
            out_dim: outd as u32,
            activation: act as u32,
            ..Default::default()
        };
        let buffers = RowsBuffers { input: &xb, bias: &bb, output: &yb, windows: &wbuf };
        let layer = rk.bind_layer(ctx, "rows", &lp, &buffers).expect("the layer fits the windows");
        let mut rec = lookahead::gpu::Recorder::new(ctx, "rows", None);
        rk.record(&mut rec, "rows", &layer);
        let (enc, profile) = rec.finish();
        assert_eq!(profile.dispatches(), e as u64, "one dispatch per member");
        ctx.queue.submit(Some(enc.finish()));
        let gpu = ctx.read_buffer::<f32>(&yb, rows * outd).unwrap();
        let mut cpu = vec![0.0; rows * outd];
        for m in 0..e {
            let r0 = (nb * kernels::local_block_start(m, ls, e)) as usize;
            let r1 = (nb * kernels::local_block_start(m + 1, ls, e)) as usize;
            let wm = &w[m as usize * ind * outd..(m as usize + 1) * ind * outd];
            let bm = &b[m as usize * outd..(m as usize + 1) * outd];
            let xm: Vec<f64> = x[r0 * ind..r1 * ind].iter().map(|v| *v as f32 as f64).collect();
            cpu[r0 * outd..r1 * outd].copy_from_slice(&mlp_ref::layer_f64(&xm, wm, bm, ind, outd, act));
        }
        assert_close(&format!("row kernel case {ci} ({chunks} windows)"), &gpu, &cpu, FORWARD_TOL);
    }
});

// Every layout of the fused kernel (`FusedShape::candidates`: rows per workgroup, columns per
// invocation, row groups) sums each output in the same order, so all give the same bits: what
// lets `bench plan --fused-layouts` (and a future rule) pick any of them for speed alone. A
// ragged network (widths not multiples of 4, 32 or 64; member blocks that end mid-workgroup).
gpu_test!(every_fused_layout_gives_the_same_network_outputs_bit_for_bit, |ctx| {
    use lookahead::kernels::mlp_fused::{pack_network, FusedBuffers, FusedParams, FusedShape, MlpFusedKernels};
    let (e, nb, ls, dims) = (3usize, 2u32, 37u32, [13usize, 65, 7, 9]);
    let layers: Vec<(Vec<f32>, Vec<f32>)> = dims
        .windows(2)
        .enumerate()
        .map(|(l, io)| {
            let w = seeded(e * io[0] * io[1], 70 + l as u64, 1.5 / (io[0] as f64).sqrt());
            let b = seeded(e * io[1], 80 + l as u64, 0.5);
            (w.iter().map(|v| *v as f32).collect(), b.iter().map(|v| *v as f32).collect())
        })
        .collect();
    let (wp, bp) = pack_network(layers.iter().map(|(w, b)| (w.as_slice(), b.as_slice())));
    let rows = (nb * ls) as usize;
    let x: Vec<f32> = seeded(rows * dims[0], 90, 2.0).iter().map(|v| *v as f32).collect();
    let p = FusedParams::new(&dims, e, nb, ls).unwrap();
    let shapes = FusedShape::candidates(&dims, ctx.limits());
    assert!(shapes.len() >= 10, "only {} layouts", shapes.len());
    let mut first: Option<Vec<f32>> = None;
    for shape in shapes {
        let k = MlpFusedKernels::new(ctx, shape).unwrap();
        let xb = ctx.storage_buffer_init("x", &x);
        let wb = ctx.storage_buffer_init("w", &wp);
        let bb = ctx.storage_buffer_init("b", &bp);
        let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; rows * dims[3]]);
        let bg = k.bind(ctx, "layouts", &p, &FusedBuffers { input: &xb, weights: &wb, biases: &bb, output: &yb });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            kernels::dispatch(&mut pass, &k.forward, &[(&bg, &[])], shape.workgroups(ctx, &p).unwrap());
        }
        ctx.queue.submit(Some(enc.finish()));
        let y = ctx.read_buffer::<f32>(&yb, rows * dims[3]).unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{shape:?}: rows left unwritten");
        match &first {
            None => first = Some(y),
            Some(f) => {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                assert_eq!(bits(&y), bits(f), "{shape:?} differs from the first layout");
            }
        }
    }
});
