//! The conformance suite (`lookahead verify`): every kernel family against its f64 CPU reference
//! on an adapter, over ragged sizes, with the tolerances and reasons of the test suite, which
//! runs the same table (`tests/verify.rs`), so the two cannot drift apart.
//!
//! A case reports the values compared, the largest absolute and relative errors, its tolerance
//! and whether it passed; a known problem of an adapter (the [`EXPECTED_FAILURES`] table) is
//! reported as an expected failure with its reason instead of failing the run.

use serde::Serialize;

use crate::env::reference::RefTask;
use crate::env::{EnvKind, Task};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::adam::reference::{adam_step_f64, AdamParams};
use crate::kernels::adam::{AdamBuffers, AdamKernels, NORM_CHUNK, REDUCTION_WORKGROUP};
use crate::kernels::cem::reference::shift_f64;
use crate::kernels::mlp::{reference as mlp_ref, Activation, LayerParams, MlpKernels, MlpRowsKernels, RowsBuffers};
use crate::kernels::mlp_fused::{
    pack_network, reference as fused_ref, FusedBuffers, FusedParams, FusedShape, MlpFusedKernels,
};
use crate::kernels::{self, rng, COMMON_WGSL};
use crate::kernels::{bind_params, params_layout, TrainParams};
use crate::model::{clamp_logvar, Ensemble, EnsembleSpec};
use crate::planner::reference::{plan_f64_after, Prior};
use crate::planner::{Dynamics, MlpKernel, ModelStep, Planner, PlannerConfig, PlannerKind, Propagation};
use crate::train::reference::flat_loss_and_grads_f64;
use crate::train::{ReplayBuffer, TrainConfig, TrainKernel, Trainer};

/// Every family of the table, in its order.
pub const FAMILIES: [&str; 13] = [
    "rng.philox",
    "rng.feistel",
    "rng.normal",
    "rng.statistics",
    "mlp.tiled",
    "mlp.rows",
    "mlp.fused",
    "env",
    "plan.analytic",
    "plan.ensemble",
    "plan.kinds",
    "train.loss",
    "train.adam",
];

/// `|gpu − cpu| ≤ abs + rel·|cpu|`; `None` in a report: bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tol {
    /// Relative part.
    pub rel: f64,
    /// Absolute floor.
    pub abs: f64,
}

/// f32 forward passes through a few layers: accumulated rounding stays far below 1e-4 relative;
/// the absolute floor covers outputs that cancel to near zero.
pub const FORWARD_TOL: Tol = Tol { rel: 1e-4, abs: 1e-5 };
/// Transcendentals (log, cos, exp) differ between f32 GPU builtins and f64 by a few ulp.
pub const TRANSCENDENTAL_TOL: Tol = Tol { rel: 1e-5, abs: 2e-6 };
/// Member losses of a minibatch (f32 sums of a few dozen rows).
pub const LOSS_TOL: Tol = Tol { rel: 1e-4, abs: 1e-6 };
/// Adam's parameters after each step (f32 arithmetic of the same update).
pub const ADAM_TOL: Tol = Tol { rel: 1e-4, abs: 1e-6 };
/// Whole plans: a few steps of f32 model rollouts with sampled noise, then CEM averages.
pub const PLAN_TOL: Tol = Tol { rel: 2e-3, abs: 2e-4 };
/// Rewards of one step (the environments' WGSL twins against their f64 twins).
pub const REWARD_TOL: Tol = Tol { rel: 1e-5, abs: 1e-5 };

/// A known problem of one adapter: its cases are run and reported as an expected failure with
/// the reason (and must fail there, so the entry goes when the driver is fixed).
pub struct ExpectedFailure {
    /// Case-insensitive substring of the adapter name.
    pub adapter: &'static str,
    /// Family and case name prefix, e.g. `"mlp.fused"`.
    pub case: &'static str,
    /// Why, with a link where there is one.
    pub reason: &'static str,
}

/// Known per-adapter problems. Empty: every case passes on every adapter measured so far
/// (llvmpipe / Mesa 22.3, NVIDIA H100 / driver 580 through Vulkan).
pub const EXPECTED_FAILURES: &[ExpectedFailure] = &[];

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// Kernel family, e.g. `mlp.fused`.
    pub family: String,
    /// Case within the family.
    pub case: String,
    /// Values compared.
    pub values: usize,
    /// Largest |gpu − cpu|.
    pub max_abs: f64,
    /// Largest |gpu − cpu| / |cpu| over values with |cpu| > 0.
    pub max_rel: f64,
    /// Tolerance (`None`: bit for bit, unless `criterion` is given).
    pub tol: Option<Tol>,
    /// How the case decides when no single tolerance describes it.
    pub criterion: Option<String>,
    /// Within tolerance (and every value finite).
    pub passed: bool,
    /// The worst value, or what did not match.
    pub detail: String,
    /// The reason from [`EXPECTED_FAILURES`] when this case is a known problem of the adapter.
    pub expected_failure: Option<String>,
}

impl CaseResult {
    /// Passed, or failed as expected on this adapter.
    pub fn ok(&self) -> bool {
        self.passed != self.expected_failure.is_some()
    }
}

/// The outcome of comparing device results with a reference.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Values compared.
    pub values: usize,
    /// Largest |gpu − cpu|.
    pub max_abs: f64,
    /// Largest |gpu − cpu| / |cpu| over values with |cpu| > 0.
    pub max_rel: f64,
    /// Largest error relative to its tolerance.
    pub worst: f64,
    /// Every value within tolerance and finite.
    pub passed: bool,
    /// The worst value, or what did not match.
    pub detail: String,
}

impl Comparison {
    fn merge(&mut self, other: Comparison) {
        self.values += other.values;
        self.max_abs = self.max_abs.max(other.max_abs);
        self.max_rel = self.max_rel.max(other.max_rel);
        if other.worst > self.worst || (!other.passed && self.passed) {
            self.detail = other.detail.clone();
            self.worst = other.worst;
        }
        self.passed &= other.passed;
    }

    fn start() -> Self {
        Self { passed: true, ..Default::default() }
    }
}

/// Element-wise comparison within `tol`; a non-finite value on either side fails.
fn compare(what: &str, gpu: &[f32], cpu: &[f64], tol: Tol) -> Comparison {
    let mut c = Comparison::start();
    if gpu.len() != cpu.len() {
        c.passed = false;
        c.detail = format!("{what}: {} values vs {} in the reference", gpu.len(), cpu.len());
        return c;
    }
    c.values = gpu.len();
    for (i, (&g, &r)) in gpu.iter().zip(cpu).enumerate() {
        if !(g.is_finite() && r.is_finite()) {
            c.passed = false;
            c.worst = f64::INFINITY;
            c.detail = format!("{what}[{i}]: gpu {g} vs cpu {r} (non-finite)");
            continue;
        }
        let err = (g as f64 - r).abs();
        c.max_abs = c.max_abs.max(err);
        if r != 0.0 {
            c.max_rel = c.max_rel.max(err / r.abs());
        }
        let ratio = err / (tol.abs + tol.rel * r.abs());
        if ratio > c.worst {
            c.worst = ratio;
            c.detail = format!("{what}[{i}]: gpu {g} vs cpu {r}");
        }
        if ratio > 1.0 {
            c.passed = false;
        }
    }
    c
}

/// Bit-for-bit comparison.
fn compare_exact<T: PartialEq + std::fmt::Debug>(what: &str, gpu: &[T], cpu: &[T]) -> Comparison {
    let mut c = Comparison::start();
    c.values = cpu.len();
    if gpu.len() != cpu.len() {
        c.passed = false;
        c.detail = format!("{what}: {} values vs {} in the reference", gpu.len(), cpu.len());
        return c;
    }
    if let Some(i) = gpu.iter().zip(cpu).position(|(a, b)| a != b) {
        c.passed = false;
        c.worst = f64::INFINITY;
        c.max_abs = f64::NAN;
        c.detail = format!("{what}[{i}]: gpu {:?} vs cpu {:?}", gpu[i], cpu[i]);
    }
    c
}

/// Deterministic pseudo-random values in [-scale, scale).
pub fn seeded(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

/// Kernels that expose Philox, the Feistel permutation and the transcendentals to the host.
const PROBE_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read_write> args: array<u32>;

@compute @workgroup_size(64)
fn philox_words(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= args[0]) { return; }
    let w = philox(vec4<u32>(i, 7u, 0xdeadbeefu, i * 3u), vec2<u32>(0x12345678u, 0x9abcdef0u));
    out[4u * i] = w.x;
    out[4u * i + 1u] = w.y;
    out[4u * i + 2u] = w.z;
    out[4u * i + 3u] = w.w;
}

@compute @workgroup_size(64)
fn permutation(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let n = args[0];
    if (i >= n) { return; }
    out[i] = permute_index(i, n, feistel_half_bits(n), vec3<u32>(args[1], args[2], args[3]), vec2<u32>(args[4], args[5]));
}

@compute @workgroup_size(64)
fn transcendentals(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= args[0]) { return; }
    let w = philox(vec4<u32>(i, 1u, 2u, 3u), vec2<u32>(4u, 5u));
    let z = box_muller(w.x, w.y);
    let x = bitcast<f32>(args[1u + i]);
    out[4u * i] = bitcast<u32>(z.x);
    out[4u * i + 1u] = bitcast<u32>(z.y);
    out[4u * i + 2u] = bitcast<u32>(softplus(x));
    out[4u * i + 3u] = bitcast<u32>(clamp_logvar(x, 0.5, -10.0));
}
"#;

/// Samples drawn by the shaders' own samplers for the statistics case: Box–Muller normals
/// (common.wgsl) and cem.wgsl's truncated normal, written as f32 bits.
const STATS_PROBE_WGSL: &str = r#"
@group(2) @binding(0) var<storage, read_write> samples: array<u32>;

@compute @workgroup_size(64)
fn normal_samples(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (2u * i + 1u >= arrayLength(&samples)) { return; }
    let w = philox(vec4<u32>(i, 11u, 12u, 13u), vec2<u32>(7u, 9u));
    let z = box_muller(w.x, w.y);
    samples[2u * i] = bitcast<u32>(z.x);
    samples[2u * i + 1u] = bitcast<u32>(z.y);
}

@compute @workgroup_size(64)
fn truncated_samples(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= arrayLength(&samples)) { return; }
    samples[i] = bitcast<u32>(truncated_normal(i, 0u));
}
"#;

/// `n` samples from `entry` of the statistics probe.
fn run_stats_probe(ctx: &GpuContext, entry: &str, n: usize, threads: u32) -> Result<Vec<f32>> {
    let layouts = kernels::PlanLayouts::new(ctx)?;
    let empty = ctx.bind_group_layout("verify.empty", &[])?;
    let out_layout = kernels::storage_layout(ctx, "verify.samples", &[false])?;
    let source = [COMMON_WGSL, kernels::CEM_WGSL, STATS_PROBE_WGSL].concat();
    let pipeline =
        kernels::custom_pipeline(ctx, "verify.stats", &source, entry, &[&layouts.params, &empty, &out_layout], &[])?;
    let p = kernels::PlanParams { seed_lo: 0x2545_f491, seed_hi: 17, call: 3, iteration: 1, ..Default::default() };
    let ub = ctx.uniform_buffer_init("verify.params", &[p]);
    let pbg = kernels::bind_params::<kernels::PlanParams>(ctx, "verify.params", &layouts.params, &ub);
    let ebg = kernels::bind_buffers(ctx, "verify.empty", &empty, &[]);
    let out = ctx.storage_buffer("verify.samples", n);
    let obg = kernels::bind_buffers(ctx, "verify.samples", &out_layout, &[&out]);
    let grid = crate::gpu::grid_1d(threads, 64, ctx.limits().max_compute_workgroups_per_dimension)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        kernels::dispatch(&mut pass, &pipeline, &[(&pbg, &[0]), (&ebg, &[]), (&obg, &[])], (grid.0, grid.1, 1));
    }
    ctx.queue.submit(Some(enc.finish()));
    Ok(ctx.read_buffer::<u32>(&out, n)?.into_iter().map(f32::from_bits).collect())
}

/// Sample statistics against the distributions' exact moments, each within 5 standard errors
/// (a test of the samplers themselves, independent of their f64 transliterations).
fn case_statistics(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let n: usize = if quick { 1 << 15 } else { 1 << 17 };
    let moments = |v: &[f32]| {
        let m = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        (m, var)
    };
    let share = |v: &[f32], bound: f64| v.iter().filter(|x| (x.abs() as f64) <= bound).count() as f64 / v.len() as f64;
    let se = |var: f64| 5.0 * (var / n as f64).sqrt();
    let mut c = Comparison::start();
    let normals = run_stats_probe(ctx, "normal_samples", n, (n / 2) as u32)?;
    let (m, v) = moments(&normals);
    let p2 = 0.954_499_736_103_641_6;
    c.merge(compare("normal mean", &[m as f32], &[0.0], Tol { rel: 0.0, abs: se(1.0) }));
    c.merge(compare("normal variance", &[v as f32], &[1.0], Tol { rel: 0.0, abs: se(2.0) }));
    c.merge(compare(
        "normal share within ±2",
        &[share(&normals, 2.0) as f32],
        &[p2],
        Tol { rel: 0.0, abs: se(p2 * (1.0 - p2)) },
    ));
    let trunc = run_stats_probe(ctx, "truncated_samples", n, n as u32)?;
    let (m, v) = moments(&trunc);
    // N(0, 1) truncated at ±2: variance 1 − 4φ(2)/(Φ(2) − Φ(−2)); P(|z| ≤ 1 | |z| ≤ 2).
    let var_t = 1.0 - 4.0 * 0.053_990_966_513_188_06 / p2;
    let p1 = 0.682_689_492_137_085_9 / p2;
    c.merge(compare("truncated mean", &[m as f32], &[0.0], Tol { rel: 0.0, abs: se(var_t) }));
    c.merge(compare("truncated variance", &[v as f32], &[var_t], Tol { rel: 0.0, abs: se(1.0) }));
    c.merge(compare(
        "truncated share within ±1",
        &[share(&trunc, 1.0) as f32],
        &[p1],
        Tol { rel: 0.0, abs: se(p1 * (1.0 - p1)) },
    ));
    let largest = trunc.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    c.merge(compare("truncated largest |z| (at most 2)", &[largest.max(2.0)], &[2.0], Tol { rel: 0.0, abs: 0.0 }));
    Ok(c)
}

/// Runs `entry` of the probe kernels over `n` invocations with (out, args) storage buffers.
fn run_probe(ctx: &GpuContext, entry: &str, out_len: usize, args: &[u32], n: u32) -> Result<Vec<u32>> {
    let layout = kernels::storage_layout(ctx, "verify.probe", &[false, false])?;
    let source = [COMMON_WGSL, PROBE_WGSL].concat();
    // The probe is outside the crate's vetted sources, so it keeps every runtime check.
    let pipeline = kernels::custom_pipeline(ctx, "verify.probe", &source, entry, &[&layout], &[])?;
    let out = ctx.storage_buffer_init("verify.out", &vec![0u32; out_len.max(1)]);
    let argb = ctx.storage_buffer_init("verify.args", args);
    let bg = kernels::bind_buffers(ctx, "verify.probe", &layout, &[&out, &argb]);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        kernels::dispatch(&mut pass, &pipeline, &[(&bg, &[])], (n.div_ceil(64), 1, 1));
    }
    ctx.queue.submit(Some(enc.finish()));
    ctx.read_buffer::<u32>(&out, out_len.max(1))
}

fn case_philox(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let n = if quick { 257u32 } else { 1000 };
    let out = run_probe(ctx, "philox_words", 4 * n as usize, &[n], n)?;
    let cpu: Vec<u32> = (0..n).flat_map(|i| rng::philox([i, 7, 0xdeadbeef, i * 3], [0x12345678, 0x9abcdef0])).collect();
    Ok(compare_exact("philox words", &out, &cpu))
}

fn case_feistel(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let sizes: &[u32] = if quick { &[1, 65, 350] } else { &[1, 63, 65, 350, 1001] };
    let mut c = Comparison::start();
    for &n in sizes {
        let out = run_probe(ctx, "permutation", n as usize, &[n, 3, 9, 0x3000_0005, 11, 12], n)?;
        let cpu: Vec<u32> = (0..n)
            .map(|i| rng::permute_index(i, n, rng::feistel_half_bits(n), [3, 9, 0x3000_0005], [11, 12]))
            .collect();
        c.merge(compare_exact(&format!("permutation of {n}"), &out[..n as usize], &cpu));
        let mut sorted = out[..n as usize].to_vec();
        sorted.sort_unstable();
        c.merge(compare_exact(
            &format!("permutation of {n} sorted (a bijection)"),
            &sorted,
            &(0..n).collect::<Vec<_>>(),
        ));
    }
    Ok(c)
}

fn case_transcendentals(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let n = if quick { 129usize } else { 777 };
    let xs = seeded(n, 5, 30.0);
    let mut args = vec![n as u32];
    args.extend(xs.iter().map(|x| (*x as f32).to_bits()));
    let out = run_probe(ctx, "transcendentals", 4 * n, &args, n as u32)?;
    let gpu: Vec<f32> = out.iter().map(|b| f32::from_bits(*b)).collect();
    let mut cpu = Vec::with_capacity(4 * n);
    for (i, x) in xs.iter().enumerate() {
        let w = rng::philox([i as u32, 1, 2, 3], [4, 5]);
        let (z0, z1) = rng::box_muller(w[0], w[1]);
        let x = *x as f32 as f64;
        cpu.extend([z0, z1, x.max(0.0) + (-x.abs()).exp().ln_1p(), clamp_logvar(x, 0.5, -10.0)]);
    }
    Ok(compare("normals, softplus, log-variance clamp", &gpu, &cpu, TRANSCENDENTAL_TOL))
}

/// Ragged layer shapes: (members, batch, local slots, in, out, activation).
fn layer_cases(quick: bool) -> Vec<LayerParams> {
    let mut v = vec![(3u32, 2u32, 37u32, 13u32, 65u32, Activation::Silu), (1, 1, 1, 5, 8, Activation::Identity)];
    if !quick {
        v.extend([(7, 3, 233, 200, 8, Activation::Identity), (2, 1, 131, 17, 200, Activation::Silu)]);
    }
    v.into_iter()
        .map(|(e, nb, ls, ind, outd, act)| LayerParams {
            n_batch: nb,
            local_slots: ls,
            n_members: e,
            in_dim: ind,
            out_dim: outd,
            activation: act as u32,
            store_pre: 0,
            bias_grad_off: 0,
        })
        .collect()
}

/// Every ragged layer case through `run` (one layer kernel: the layer's parameters, its input
/// `x`, weights `w` and biases `b`, returning the output) against the f64 reference over every
/// member block.
fn case_layers(
    quick: bool,
    mut run: impl FnMut(&LayerParams, &[f64], &[f64], &[f64]) -> Result<Vec<f32>>,
) -> Result<Comparison> {
    let mut c = Comparison::start();
    for (ci, lp) in layer_cases(quick).iter().enumerate() {
        let (e, nb, ls) = (lp.n_members, lp.n_batch, lp.local_slots);
        let (ind, outd) = (lp.in_dim as usize, lp.out_dim as usize);
        let rows = (nb * ls) as usize;
        let x = seeded(rows * ind, 10 + ci as u64, 2.0);
        let w = seeded(e as usize * ind * outd, 20 + ci as u64, 0.3);
        let b = seeded(e as usize * outd, 30 + ci as u64, 0.5);
        let gpu = run(lp, &x, &w, &b)?;
        let act = if lp.activation == Activation::Silu as u32 { Activation::Silu } else { Activation::Identity };
        let mut cpu = vec![0.0; rows * outd];
        for m in 0..e {
            let r0 = (nb * kernels::local_block_start(m, ls, e)) as usize;
            let r1 = (nb * kernels::local_block_start(m + 1, ls, e)) as usize;
            let wm = f32s(&w[m as usize * ind * outd..(m as usize + 1) * ind * outd]);
            let bm = f32s(&b[m as usize * outd..(m as usize + 1) * outd]);
            let xm: Vec<f64> = x[r0 * ind..r1 * ind].iter().map(|v| *v as f32 as f64).collect();
            cpu[r0 * outd..r1 * outd].copy_from_slice(&mlp_ref::layer_f64(&xm, &wm, &bm, ind, outd, act));
        }
        c.merge(compare(&format!("layer {e}×{ind}→{outd}, {rows} rows"), &gpu, &cpu, FORWARD_TOL));
    }
    Ok(c)
}

fn case_mlp_tiled(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let mlp = MlpKernels::new(ctx)?;
    case_layers(quick, |lp, x, w, b| {
        let n = (lp.n_batch * lp.local_slots * lp.out_dim) as usize;
        let xb = ctx.storage_buffer_init("x", &f32s(x));
        let wb = ctx.storage_buffer_init("w", &f32s(w));
        let bb = ctx.storage_buffer_init("b", &f32s(b));
        let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; n]);
        let ub = ctx.uniform_buffer_init("lp", &[*lp]);
        let aux = ctx.storage_buffer("aux", 1);
        let bg = kernels::bind_buffers(ctx, "verify.layer", &mlp.layout, &[&ub, &xb, &wb, &bb, &yb, &aux]);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            mlp.dispatch(&mut pass, &bg, lp.workgroups(ctx)?);
        }
        ctx.queue.submit(Some(enc.finish()));
        ctx.read_buffer::<f32>(&yb, n)
    })
}

fn case_mlp_rows(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let rk = MlpRowsKernels::new(ctx)?;
    case_layers(quick, |lp, x, w, b| {
        let (ind, outd) = (lp.in_dim as usize, lp.out_dim as usize);
        let n = (lp.n_batch * lp.local_slots) as usize * outd;
        let wf = f32s(w);
        let mut windows = Vec::new();
        for m in 0..lp.n_members as usize {
            windows.extend(kernels::mlp::pack_rows_windows(&wf, m, ind, outd).ok_or_else(|| {
                Error::InvalidInput(format!("a {ind} × {outd} layer does not fit the row kernel's windows"))
            })?);
        }
        let xb = ctx.storage_buffer_init("x", &f32s(x));
        let bb = ctx.storage_buffer_init("b", &f32s(b));
        let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; n]);
        let wb = wgpu::util::DeviceExt::create_buffer_init(
            &ctx.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("verify.rows.windows"),
                contents: bytemuck::cast_slice(&windows),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let layer =
            rk.bind_layer(ctx, "verify.rows", lp, &RowsBuffers { input: &xb, bias: &bb, output: &yb, windows: &wb })?;
        let mut rec = crate::gpu::Recorder::new(ctx, "verify.rows", None);
        rk.record(&mut rec, "rows", &layer);
        let (enc, _) = rec.finish();
        ctx.queue.submit(Some(enc.finish()));
        ctx.read_buffer::<f32>(&yb, n)
    })
}

fn case_mlp_fused(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let cases: Vec<(usize, u32, u32, &[usize])> = if quick {
        vec![(3, 2, 37, &[13, 65, 7, 9]), (2, 1, 131, &[70, 33, 130, 201])]
    } else {
        vec![
            (3, 2, 37, &[13, 65, 7, 9]),
            (1, 1, 1, &[5, 8]),
            (7, 3, 233, &[5, 200, 200, 200, 200, 16]),
            (2, 1, 131, &[70, 33, 130, 201]),
            (5, 2, 50, &[24, 200, 200, 200, 200, 38]),
        ]
    };
    let full = ctx.limits().clone();
    let mut c = Comparison::start();
    for (ci, &(e, nb, ls, dims)) in cases.iter().enumerate() {
        // The shapes this adapter gets for few and for many rows per step, and narrower ones.
        let widest = dims.iter().copied().max().unwrap_or(1);
        let tight = wgpu::Limits { max_compute_workgroup_storage_size: (widest * 16) as u32, ..full.clone() };
        let narrow = wgpu::Limits { max_compute_invocations_per_workgroup: 64, ..full.clone() };
        let mut shapes = Vec::new();
        for (l, rows) in [(&full, 1), (&full, kernels::mlp_fused::MANY_ROWS), (&tight, 1), (&narrow, 1)] {
            let s =
                FusedShape::for_network(dims, l, rows).map_err(|why| Error::InvalidInput(format!("fused: {why}")))?;
            if !shapes.contains(&s) {
                shapes.push(s);
            }
        }
        // In full: every layout `bench plan --fused-layouts` can time, on the first (ragged) network.
        if !quick && ci == 0 {
            for s in FusedShape::candidates(dims, &full) {
                if !shapes.contains(&s) {
                    shapes.push(s);
                }
            }
        }
        let net = NetworkCase::new(ci, e, nb, ls, dims);
        let (wp, bp) = pack_network(net.layers.iter().map(|(w, b)| (w.as_slice(), b.as_slice())));
        let p =
            FusedParams::new(dims, e, nb, ls).ok_or_else(|| Error::InvalidInput("fused: network too large".into()))?;
        let (rows, outd, x) = (net.rows, net.out_dim(), &net.x);
        let cpu = net.reference(fused_ref::network_f64);
        for shape in shapes {
            let fk = MlpFusedKernels::new(ctx, shape)?;
            let xb = ctx.storage_buffer_init("x", &f32s(x));
            let wb = ctx.storage_buffer_init("w", &wp);
            let bb = ctx.storage_buffer_init("b", &bp);
            let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; rows * outd]);
            let bg =
                fk.bind(ctx, "verify.fused", &p, &FusedBuffers { input: &xb, weights: &wb, biases: &bb, output: &yb });
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                kernels::dispatch(&mut pass, &fk.forward, &[(&bg, &[])], shape.workgroups(ctx, &p)?);
            }
            ctx.queue.submit(Some(enc.finish()));
            let gpu = ctx.read_buffer::<f32>(&yb, rows * outd)?;
            let what = format!(
                "network {dims:?} × {e}, {rows} rows, {} rows × {} columns per workgroup",
                shape.rows(),
                shape.cols
            );
            c.merge(compare(&what, &gpu, &cpu, FORWARD_TOL));
        }
    }
    Ok(c)
}

/// One member's network on its rows: `(x, [(weights, biases, in, out)], member) → outputs`.
type NetworkRef = fn(&[f64], &[(&[f32], &[f32], usize, usize)], usize) -> Vec<f64>;

/// A whole-network case: seeded weights and biases of `dims` for `e` members and inputs of
/// `nb × ls` rows, member-major ("Slots").
struct NetworkCase {
    e: usize,
    nb: u32,
    ls: u32,
    dims: Vec<usize>,
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    rows: usize,
    x: Vec<f64>,
}

impl NetworkCase {
    fn new(ci: usize, e: usize, nb: u32, ls: u32, dims: &[usize]) -> Self {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(l, io)| {
                let w = seeded(e * io[0] * io[1], 40 + (ci * 10 + l) as u64, 1.5 / (io[0] as f64).sqrt());
                (f32s(&w), f32s(&seeded(e * io[1], 60 + (ci * 10 + l) as u64, 0.5)))
            })
            .collect();
        let rows = (nb * ls) as usize;
        let x = seeded(rows * dims[0], 10 + ci as u64, 2.0).iter().map(|v| *v as f32 as f64).collect();
        Self { e, nb, ls, dims: dims.to_vec(), layers, rows, x }
    }

    fn out_dim(&self) -> usize {
        self.dims[self.dims.len() - 1]
    }

    /// Every member's block through `network` (a reference of one member's network).
    fn reference(&self, network: NetworkRef) -> Vec<f64> {
        let (ind, outd, e) = (self.dims[0], self.out_dim(), self.e as u32);
        let refs: Vec<(&[f32], &[f32], usize, usize)> = self
            .layers
            .iter()
            .zip(self.dims.windows(2))
            .map(|((w, b), io)| (w.as_slice(), b.as_slice(), io[0], io[1]))
            .collect();
        let mut cpu = vec![0.0; self.rows * outd];
        for m in 0..e {
            let r0 = (self.nb * kernels::local_block_start(m, self.ls, e)) as usize;
            let r1 = (self.nb * kernels::local_block_start(m + 1, self.ls, e)) as usize;
            cpu[r0 * outd..r1 * outd].copy_from_slice(&network(&self.x[r0 * ind..r1 * ind], &refs, m as usize));
        }
        cpu
    }
}

/// Network outputs of the tensor-core kernel: f16 operands, so within a few f16 roundings of the
/// reference that rounds the same operands (an activation converted the other way at a tie, or
/// an f32 sum that rounds to the neighbouring f16, moves an output by ~1e-3 of its terms).
pub const COOP16_TOL: Tol = Tol { rel: 1e-2, abs: 2e-3 };

/// The families run only where the adapter has what they need, with what that is.
pub const OPTIONAL_FAMILIES: [(&str, &str); 1] =
    [("mlp.coop16", "16×16×16 cooperative matrices with f16 operands and f32 accumulators, one subgroup size")];

/// The cases of [`OPTIONAL_FAMILIES`] that `ctx` can run.
pub fn optional_cases(ctx: &GpuContext) -> Vec<Case> {
    if !ctx.has_coop16() {
        return Vec::new();
    }
    vec![
        case(
            "mlp.coop16",
            "whole networks on cooperative matrices vs the f16-operand f64 reference; 3 vs 4 column groups per pass bit for bit",
            Some(COOP16_TOL),
            case_mlp_coop16,
        ),
        case(
            "mlp.coop16",
            "a plan's candidate returns through coop16 vs fused (TS1, TS∞, same stream); its model step in one dispatch vs two",
            Some(COOP16_TOL),
            case_plan_coop16,
        ),
    ]
}

fn case_mlp_coop16(ctx: &GpuContext) -> Result<Comparison> {
    use crate::kernels::mlp_coop::{self, reference as coop_ref, CoopShape, MlpCoopKernels};
    // Leftover column tiles (past the whole groups of four) split by K: one (65, 7, 200, 16,
    // 130, 201 and 9 outputs) and two (96: two parts each); three (33, 300 outputs) padded to
    // a group; none (64). The 300-wide layer is five column groups: a second pass of the
    // kernel's group loop, with three of its four groups past the layer's last.
    let cases: [(usize, u32, u32, &[usize]); 4] = [
        (3, 2, 37, &[13, 65, 7, 9]),
        (7, 3, 233, &[5, 200, 200, 200, 200, 16]),
        (2, 1, 131, &[70, 64, 33, 130, 201]),
        (2, 2, 29, &[13, 300, 96, 9]),
    ];
    let mut c = Comparison::start();
    for (ci, &(e, nb, ls, dims)) in cases.iter().enumerate() {
        let net = NetworkCase::new(ci, e, nb, ls, dims);
        let wp = mlp_coop::pack_network_f16(
            net.layers.iter().zip(dims.windows(2)).map(|((w, _), io)| (w.as_slice(), io[0], io[1])),
            e,
        );
        let (_, bp) = pack_network(net.layers.iter().map(|(w, b)| (w.as_slice(), b.as_slice())));
        let p =
            mlp_coop::params(dims, e, nb, ls).ok_or_else(|| Error::InvalidInput("coop16: network too large".into()))?;
        let cpu = net.reference(coop_ref::network_f16_f64);
        let shape = CoopShape::for_network(ctx, dims).map_err(|why| Error::InvalidInput(format!("coop16: {why}")))?;
        let run = |shape: CoopShape| -> Result<Vec<f32>> {
            let k = MlpCoopKernels::new(ctx, shape)?;
            let xb = ctx.storage_buffer_init("x", &f32s(&net.x));
            let wb = ctx.storage_buffer_init("w", &wp);
            let bb = ctx.storage_buffer_init("b", &bp);
            let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; net.rows * net.out_dim()]);
            let buffers = FusedBuffers { input: &xb, weights: &wb, biases: &bb, output: &yb };
            let bg = k.bind(ctx, "verify.coop16", &p, &buffers);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                kernels::dispatch(&mut pass, &k.forward, &[(&bg, &[])], shape.workgroups(ctx, &p)?);
            }
            ctx.queue.submit(Some(enc.finish()));
            ctx.read_buffer::<f32>(&yb, net.rows * net.out_dim())
        };
        let gpu = run(shape)?;
        let what = format!("network {dims:?} × {e}, {} rows", net.rows);
        c.merge(compare(&what, &gpu, &cpu, COOP16_TOL));
        // The other number of column groups per pass gives the same sums in the same order.
        let other = CoopShape { groups_per_pass: 7 - shape.groups_per_pass, ..shape };
        let alt = run(other)?;
        let what =
            format!("{what}, {} column groups per pass against {}", other.groups_per_pass, shape.groups_per_pass);
        let gpu64: Vec<f64> = gpu.iter().map(|v| *v as f64).collect();
        c.merge(compare(&what, &alt, &gpu64, Tol { rel: 0.0, abs: 0.0 }));
    }
    Ok(c)
}

fn case_plan_coop16(ctx: &GpuContext) -> Result<Comparison> {
    let ens = small_ensemble(3, 1, true, false, 7)?;
    let obs = vec![vec![0.6f32, -0.8, 0.3], vec![-1.0, 0.05, -2.0]];
    let returns = |mlp_kernel, model_step, propagation| -> Result<Vec<f32>> {
        let cfg = PlannerConfig { iterations: 1, mlp_kernel, model_step, ..small_cem(propagation, mlp_kernel) };
        let mut planner = Planner::new(ctx, EnvKind::Pendulum.task(), Dynamics::Ensemble(ens.clone()), cfg)?;
        planner.plan_batch(&obs)?;
        Ok(planner.last_iteration()?.candidate_returns)
    };
    let f64s = |v: Vec<f32>| -> Vec<f64> { v.iter().map(|x| *x as f64).collect() };
    // Per propagation: the f32 layers (checked against f64 elsewhere), each model step split,
    // against coop16's with each model step in one dispatch (TS∞: one per iteration); then
    // coop16's split step against its one-dispatch step (the same f16 products either way).
    let mut c = Comparison::start();
    for propagation in [Propagation::Ts1, Propagation::Tsinf] {
        let prop = format!("{propagation:?}").to_lowercase();
        let fused = f64s(returns(MlpKernel::Fused, ModelStep::Split, propagation)?);
        let coop_step = returns(MlpKernel::Coop16, ModelStep::Fused, propagation)?;
        let coop_split = returns(MlpKernel::Coop16, ModelStep::Split, propagation)?;
        c.merge(compare(&format!("{prop}: candidate returns, coop16 vs fused"), &coop_step, &fused, COOP16_TOL));
        let what = format!("{prop}: candidate returns, coop16, model step split vs one dispatch");
        c.merge(compare(&what, &coop_split, &f64s(coop_step), FORWARD_TOL));
    }
    Ok(c)
}

fn case_env(ctx: &GpuContext, kind: EnvKind, quick: bool) -> Result<Comparison> {
    let task = kind.task();
    let rt = match kind {
        EnvKind::Cartpole => RefTask::Cartpole,
        EnvKind::Pendulum => RefTask::Pendulum,
    };
    let (d, na) = (task.obs_dim, task.act_dim);
    let n = if quick { 101 } else { 301 };
    // Cartpole's x and θ up to 1.25× their limits, so that terminations occur and do not.
    let scale: Vec<f64> =
        if kind == EnvKind::Cartpole { vec![3.0, 1.0, 0.26, 1.0] } else { vec![std::f64::consts::PI, 1.0, 8.0] };
    let states: Vec<f64> = seeded(n * d, 7, 1.0).iter().enumerate().map(|(i, v)| v * scale[i % d]).collect();
    let acts = seeded(n * na, 8, 2.5);
    let (mut before, mut act, mut next, mut rewards, mut ends) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let mut s = states[i * d..(i + 1) * d].to_vec();
        if kind == EnvKind::Pendulum {
            let th = s[0];
            s[0] = th.cos();
            s[1] = th.sin();
        }
        let s: Vec<f64> = s.iter().map(|v| *v as f32 as f64).collect();
        let a: Vec<f64> = acts[i * na..(i + 1) * na].iter().map(|v| *v as f32 as f64).collect();
        let s2: Vec<f64> = rt.step(&s, &a).iter().map(|v| *v as f32 as f64).collect();
        rewards.push(rt.reward(&s, &a, &s2));
        ends.push(rt.terminated(&a, &s2));
        before.extend(f32s(&s));
        act.extend(f32s(&a));
        next.extend(f32s(&s2));
    }
    let out = kernels::rollout::evaluate_env(ctx, &task.name, &task.wgsl, d, na, &before, &act, &next)?;
    let (gpu_r, gpu_t): (Vec<f32>, Vec<bool>) = out.into_iter().unzip();
    let mut c = compare("reward", &gpu_r, &rewards, REWARD_TOL);
    c.merge(compare_exact("terminated", &gpu_t, &ends));
    // The WGSL dynamics (analytic planning) against the twin's step.
    Ok(c)
}

fn small_ensemble(obs: usize, act: usize, probabilistic: bool, learned_reward: bool, seed: u64) -> Result<Ensemble> {
    let spec =
        EnsembleSpec { n_members: 3, obs_dim: obs, act_dim: act, hidden: vec![24, 17], probabilistic, learned_reward };
    let mut e = Ensemble::random(spec, seed)?;
    for l in &mut e.layers {
        for (i, b) in l.bias.iter_mut().enumerate() {
            *b = 0.05 * ((i % 7) as f32 - 3.0);
        }
    }
    let ind = obs + act;
    e.input_mean = (0..ind).map(|i| 0.1 * i as f32).collect();
    e.input_std = (0..ind).map(|i| 0.5 + 0.25 * i as f32).collect();
    e.max_logvar = vec![-1.0; e.spec.model_out()];
    e.min_logvar = vec![-6.0; e.spec.model_out()];
    Ok(e)
}

/// One plan on the adapter and with the f64 reference from the same start: the last iteration's
/// elites (exactly), its candidate returns, the plan's mean and statistics (within PLAN_TOL).
pub fn compare_plan(
    ctx: &GpuContext,
    task: Task,
    rt: RefTask,
    ens: Option<Ensemble>,
    cfg: PlannerConfig,
    obs: &[Vec<f32>],
) -> Result<Comparison> {
    compare_plans(ctx, task, rt, ens, cfg, obs, 1)
}

fn small_cem(propagation: Propagation, kernel: MlpKernel) -> PlannerConfig {
    PlannerConfig {
        horizon: 4,
        iterations: 2,
        population: 37,
        particles: 3,
        elite_ratio: 0.2,
        alpha: 0.1,
        propagation,
        seed: 42,
        mlp_kernel: kernel,
        ..PlannerConfig::default()
    }
}

fn case_plan(ctx: &GpuContext, propagation: Propagation, kernel: MlpKernel, step: ModelStep) -> Result<Comparison> {
    let ens = small_ensemble(3, 1, true, false, 7)?;
    let obs = vec![vec![0.6f32, -0.8, 0.3], vec![-1.0, 0.05, -2.0]];
    let cfg = PlannerConfig { model_step: step, ..small_cem(propagation, kernel) };
    compare_plan(ctx, EnvKind::Pendulum.task(), RefTask::Pendulum, Some(ens), cfg, &obs)
}

fn case_plan_learned_reward(ctx: &GpuContext, kernel: MlpKernel, step: ModelStep) -> Result<Comparison> {
    let ens = small_ensemble(5, 2, false, true, 10)?;
    let obs = vec![vec![0.1f32, -0.2, 0.3, 0.0, 0.5]];
    let cfg = PlannerConfig { model_step: step, ..small_cem(Propagation::Ts1, kernel) };
    compare_plan(ctx, Task::quadratic(5, 2), RefTask::Quadratic, Some(ens), cfg, &obs)
}

fn case_plan_analytic(ctx: &GpuContext, kind: EnvKind) -> Result<Comparison> {
    let cfg = PlannerConfig {
        horizon: 7,
        iterations: 3,
        population: 65,
        elite_ratio: 0.1,
        seed: 5,
        ..PlannerConfig::default()
    };
    // Cartpole from states near its limits, so that candidates terminate at different steps.
    let (rt, obs) = match kind {
        EnvKind::Cartpole => (RefTask::Cartpole, vec![vec![0.3f32, 0.5, 0.15, 0.6], vec![-2.1, -0.4, -0.1, -0.3]]),
        EnvKind::Pendulum => (RefTask::Pendulum, vec![vec![-0.9f32, 0.43, 0.7]]),
    };
    compare_plan(ctx, kind.task(), rt, None, cfg, &obs)
}

type CaseFn = Box<dyn Fn(&GpuContext) -> Result<Comparison> + Send + Sync>;

/// `n` transitions of seeded values (next = obs + 0.3 · a seeded change; rewards seeded).
pub fn train_buffer(obs: usize, act: usize, n: usize, seed: u64) -> Result<ReplayBuffer> {
    let mut b = ReplayBuffer::new(obs, act);
    let v = seeded(n * (2 * obs + act + 1), seed, 1.5);
    let mut it = v.iter().map(|x| *x as f32);
    for _ in 0..n {
        let o: Vec<f32> = it.by_ref().take(obs).collect();
        let a: Vec<f32> = it.by_ref().take(act).collect();
        let d: Vec<f32> = it.by_ref().take(obs).collect();
        let next: Vec<f32> = o.iter().zip(&d).map(|(x, y)| x + 0.3 * y).collect();
        b.push(&o, &a, &next, it.next().unwrap_or(0.0), false)?;
    }
    Ok(b)
}

/// Member losses and the flat gradient of a minibatch (Gaussian NLL or MSE, with the
/// log-variance bounds' penalty) on the device against `train::reference::loss_and_grads_f64`,
/// over more than one 64-row tile per member with a partial last tile.
fn case_gradients(
    ctx: &GpuContext,
    probabilistic: bool,
    learned_reward: bool,
    forward: TrainKernel,
    quick: bool,
) -> Result<Comparison> {
    let spec = EnsembleSpec { n_members: 3, obs_dim: 3, act_dim: 2, hidden: vec![7, 5], probabilistic, learned_reward };
    let mut e = Ensemble::random(spec, 5)?;
    for l in &mut e.layers {
        for (i, b) in l.bias.iter_mut().enumerate() {
            *b = 0.1 * ((i % 5) as f32 - 2.0);
        }
    }
    e.input_mean = vec![0.1, -0.2, 0.0, 0.3, 0.05];
    e.input_std = vec![0.9, 1.1, 0.7, 1.3, 0.6];
    e.max_logvar = [0.3, 0.5, 0.1, 0.4][..e.spec.model_out()].to_vec();
    e.min_logvar = [-3.0, -2.0, -4.0, -2.5][..e.spec.model_out()].to_vec();
    let n = if quick { 40 } else { 160 };
    let buffer = train_buffer(3, 2, n, 9)?;
    // 137 rows per member: two 64-row tiles and a partial third.
    let rows: Vec<usize> = (0..if quick { 11 } else { 137 }).map(|i| (i * 7) % n).collect();
    let cfg = TrainConfig { batch_size: rows.len(), num_elites: 2, mlp_kernel: forward, ..TrainConfig::default() };
    let mut trainer = Trainer::new(ctx, e.clone(), cfg)?;
    let (gpu_losses, gpu_grads) = trainer.loss_and_gradients(&buffer, &rows)?;
    // The bounds' penalty (0.01 · (Σ max_logvar − Σ min_logvar)) of the default config.
    let (losses, flat) = flat_loss_and_grads_f64(&e, &buffer, &rows, 0.01, trainer.layout());
    let gl: Vec<f32> = gpu_losses.iter().map(|v| *v as f32).collect();
    let mut c = compare("member losses", &gl, &losses, LOSS_TOL);
    // f32 sums over a batch: 1e-3 relative, with a floor of 1e-5 of the largest gradient.
    let scale = flat.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    c.merge(compare("gradients", &gpu_grads, &flat, Tol { rel: 1e-3, abs: 1e-5 * scale.max(1e-12) }));
    Ok(c)
}

/// Adam's moments: 1e-4 relative, with a floor of 1e-5 of the largest moment (a moment that
/// nearly cancels carries the f32 rounding of the gradients that made it, ~1e-7 of their scale).
fn moment_tol(reference: &[f64]) -> Tol {
    Tol { rel: 1e-4, abs: 1e-5 * reference.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-30) }
}

/// Several Adam steps (gradient norm, clipping on the later steps, bounds after an offset)
/// against the f64 reference: parameters, both moments and the step count after each.
fn case_adam(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    // More chunks than a reduction workgroup has invocations (the final sum's loop) in full.
    let n = NORM_CHUNK * if quick { 1 } else { REDUCTION_WORKGROUP + 3 } + 37;
    let bounds_offset = n - 9;
    let k = AdamKernels::new(ctx)?;
    let layout = params_layout::<TrainParams>(ctx, "train.params")?;
    let p0 = seeded(n, 1, 1.0);
    let params = ctx.storage_buffer_init("params", &f32s(&p0));
    let grads = ctx.storage_buffer("grads", n);
    let (m1b, m2b) = (ctx.storage_buffer("m1", n), ctx.storage_buffer("m2", n));
    let partials = ctx.storage_buffer("partials", n.div_ceil(NORM_CHUNK));
    let stats = ctx.storage_buffer("stats", 4);
    let counters = ctx.storage_buffer("counters", 4);
    let bg = k.bind(
        ctx,
        "verify.adam",
        &AdamBuffers {
            params: &params,
            grads: &grads,
            moment1: &m1b,
            moment2: &m2b,
            partials: &partials,
            stats: &stats,
            counters: &counters,
        },
    );
    let ap = AdamParams { lr: 3e-3, beta1: 0.8, beta2: 0.95, eps: 1e-8, weight_decay: 1e-2, clip_norm: 9.0 };
    let tp = TrainParams {
        n_members: 1,
        n_steps: 1,
        bounds_offset: bounds_offset as u32,
        learn_bounds: 1,
        n_params: n as u32,
        n_chunks: n.div_ceil(NORM_CHUNK) as u32,
        lr: ap.lr as f32,
        beta1: ap.beta1 as f32,
        beta2: ap.beta2 as f32,
        eps: ap.eps as f32,
        weight_decay: ap.weight_decay as f32,
        clip_norm: ap.clip_norm as f32,
        ..Default::default()
    };
    let ub = ctx.uniform_buffer_init("verify.train", &[tp]);
    let pbg = bind_params::<TrainParams>(ctx, "verify.train", &layout, &ub);
    let (mut p, mut m1, mut m2) = (p0.clone(), vec![0.0; n], vec![0.0; n]);
    let mut c = Comparison::start();
    for t in 1..=5usize {
        // Gradients grow with the step so that clipping acts on the later steps only.
        // Scaled with the size so that the norm (≈ 2.6·t²) is under clip_norm on step 1 and over
        // it from step 2 in both sizes.
        let g32 = f32s(&seeded(n, 10 + t as u64, 0.1 * (t * t) as f64 * (2048.0 / n as f64).sqrt()));
        ctx.queue.write_buffer(&grads, 0, bytemuck::cast_slice(&g32));
        let g_used: Vec<f64> = g32.iter().map(|v| *v as f64).collect();
        let grid = |m: usize| (m.div_ceil(kernels::WG_SIZE as usize) as u32, 1, 1);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            let chunks = (n.div_ceil(NORM_CHUNK) as u32, 1, 1);
            kernels::dispatch(&mut pass, &k.norm_partial, &[(&pbg, &[0]), (&bg, &[])], chunks);
            kernels::dispatch(&mut pass, &k.norm_final, &[(&pbg, &[0]), (&bg, &[])], (1, 1, 1));
            kernels::dispatch(&mut pass, &k.adam, &[(&pbg, &[0]), (&bg, &[])], grid(n));
        }
        ctx.queue.submit(Some(enc.finish()));
        if !adam_step_f64(&ap, t as u32, &mut p, &g_used, &mut m1, &mut m2, bounds_offset) {
            return Err(Error::InvalidInput("the reference skipped a finite step".into()));
        }
        c.merge(compare(&format!("step {t}: parameters"), &ctx.read_buffer::<f32>(&params, n)?, &p, ADAM_TOL));
        c.merge(compare(&format!("step {t}: first moments"), &ctx.read_buffer::<f32>(&m1b, n)?, &m1, moment_tol(&m1)));
        c.merge(compare(&format!("step {t}: second moments"), &ctx.read_buffer::<f32>(&m2b, n)?, &m2, moment_tol(&m2)));
        c.merge(compare_exact(&format!("step {t}: step count"), &ctx.read_buffer::<u32>(&counters, 1)?, &[t as u32]));
    }
    Ok(c)
}

/// The settings of each planner kind for the kind cases (MPPI and iCEM off their defaults so
/// that every term of their updates matters), with `propagation`.
pub fn kind_cfg(kind: PlannerKind, propagation: Propagation) -> PlannerConfig {
    let mut cfg = PlannerConfig {
        kind,
        horizon: 5,
        iterations: 3,
        population: 29,
        particles: 3,
        elite_ratio: 0.2,
        propagation,
        seed: 11,
        ..PlannerConfig::default()
    };
    if kind == PlannerKind::Mppi {
        cfg.sigma = 0.6;
        cfg.gamma = 2.0;
        cfg.beta = 0.7;
    }
    if kind == PlannerKind::Icem {
        cfg.population_decay = 1.5;
        cfg.noise_beta = 1.5;
        cfg.keep_elite_fraction = 0.5;
    }
    cfg
}

/// Two consecutive plans of `kind` (the second warm-started from the first, with MPPI's
/// previous action and iCEM's elite archive) against the f64 reference.
fn case_kind(ctx: &GpuContext, kind: PlannerKind, ensemble: bool) -> Result<Comparison> {
    let ens = if ensemble {
        Some(Ensemble::random(
            EnsembleSpec {
                n_members: 3,
                obs_dim: 3,
                act_dim: 1,
                hidden: vec![24, 17],
                probabilistic: true,
                learned_reward: false,
            },
            5,
        )?)
    } else {
        None
    };
    let cfg = kind_cfg(kind, Propagation::Ts1);
    let cfg = if ensemble { cfg } else { PlannerConfig { particles: 1, ..cfg } };
    let obs = vec![vec![0.6f32, -0.8, 0.3], vec![-1.0, 0.05, -2.0]];
    compare_two_plans(ctx, EnvKind::Pendulum.task(), RefTask::Pendulum, ens, cfg, &obs)
}

/// Two consecutive plans on the adapter against the f64 reference, the second warm-started from
/// the first (with MPPI's previous action and iCEM's elite archive).
pub fn compare_two_plans(
    ctx: &GpuContext,
    task: Task,
    rt: RefTask,
    ens: Option<Ensemble>,
    cfg: PlannerConfig,
    obs: &[Vec<f32>],
) -> Result<Comparison> {
    compare_plans(ctx, task, rt, ens, cfg, obs, 2)
}

/// `calls` consecutive plans on the adapter against the f64 reference (`plan_f64_after`), each
/// after the first warm-started from the one before: each plan's last-iteration elites exactly,
/// candidate returns, mean and statistics within [`PLAN_TOL`], and every planned action within
/// the task's bounds.
fn compare_plans(
    ctx: &GpuContext,
    task: Task,
    rt: RefTask,
    ens: Option<Ensemble>,
    cfg: PlannerConfig,
    obs: &[Vec<f32>],
    calls: u32,
) -> Result<Comparison> {
    let dynamics = match &ens {
        Some(e) => Dynamics::Ensemble(e.clone()),
        None => Dynamics::Analytic,
    };
    // The planner's bounds: its own where the configuration narrows the task's.
    let lower = cfg.action_lower.clone().unwrap_or_else(|| task.action_lower.clone());
    let upper = cfg.action_upper.clone().unwrap_or_else(|| task.action_upper.clone());
    let mut planner = Planner::new(ctx, task, dynamics, cfg.clone())?;
    let obs64: Vec<Vec<f64>> = obs.iter().map(|o| o.iter().map(|v| *v as f64).collect()).collect();
    let na = lower.len();
    let mut c = Comparison::start();
    let mut mean: Vec<f64> =
        (0..obs.len() * cfg.horizon).flat_map(|_| lower.iter().zip(&upper).map(|(l, u)| 0.5 * (l + u))).collect();
    let mut prior = Prior::default();
    for call in 0..calls {
        let plans = planner.plan_batch(obs)?;
        let last = planner.last_iteration()?;
        let cpu = plan_f64_after(rt, ens.as_ref(), &cfg, &lower, &upper, &obs64, &mean, call, &prior);
        let it = cfg.effective_iterations() - 1;
        c.merge(compare_exact(&format!("plan {call}: elites of the last iteration"), &last.elites, &cpu.elites[it]));
        c.merge(compare(
            &format!("plan {call}: candidate returns"),
            &last.candidate_returns,
            &cpu.returns[it],
            PLAN_TOL,
        ));
        let gpu_mean: Vec<f32> = plans.iter().flat_map(|p| p.actions.clone()).collect();
        c.merge(compare(&format!("plan {call}: plan"), &gpu_mean, &cpu.mean, PLAN_TOL));
        let outside = gpu_mean
            .iter()
            .enumerate()
            .filter(|(i, a)| !((lower[i % na] as f32)..=(upper[i % na] as f32)).contains(*a))
            .count();
        c.merge(compare_exact(&format!("plan {call}: actions outside the bounds"), &[outside], &[0]));
        let gpu_stats: Vec<f32> = plans.iter().flat_map(|p| [p.predicted_return, p.best_return]).collect();
        let cpu_stats: Vec<f64> = cpu.stats.iter().flat_map(|(a, b)| [*a, *b]).collect();
        c.merge(compare(&format!("plan {call}: statistics"), &gpu_stats, &cpu_stats, PLAN_TOL));
        // The reference follows the device's plan into the next one.
        let returned: Vec<f64> = gpu_mean.iter().map(|v| *v as f64).collect();
        mean = shift_f64(&returned, cfg.horizon, &lower, &upper);
        prior = Prior {
            past: Some(returned.chunks(cfg.horizon * na).flat_map(|s| s[..na].to_vec()).collect()),
            archive: cpu.archive.clone(),
        };
    }
    Ok(c)
}

/// One entry of the table: a family, a case and how to run it.
pub struct Case {
    /// Kernel family, e.g. `mlp.fused`.
    pub family: &'static str,
    /// Case within the family.
    pub name: String,
    /// Tolerance of its comparisons (`None`: bit for bit, unless `criterion` says otherwise).
    pub tol: Option<Tol>,
    /// How the case decides when no single tolerance describes it.
    pub criterion: Option<&'static str>,
    run: CaseFn,
}

fn case(
    family: &'static str,
    name: &str,
    tol: Option<Tol>,
    run: impl Fn(&GpuContext) -> Result<Comparison> + Send + Sync + 'static,
) -> Case {
    Case { family, name: name.to_string(), tol, criterion: None, run: Box::new(run) }
}

/// The table: every family, in dependency order (random streams, layers, environments, plans).
/// `quick` runs smaller sizes of the same cases.
pub fn cases(quick: bool) -> Vec<Case> {
    let mut v = vec![
        case("rng.philox", "counters 0..n, bit for bit", None, move |c| case_philox(c, quick)),
        case("rng.feistel", "permutations of 1 to 1001 items, bit for bit, bijective", None, move |c| {
            case_feistel(c, quick)
        }),
        case("rng.normal", "Box–Muller normals, softplus, log-variance clamp", Some(TRANSCENDENTAL_TOL), move |c| {
            case_transcendentals(c, quick)
        }),
        Case {
            criterion: Some("5 standard errors"),
            ..case("rng.statistics", "normal and ±2-truncated normal moments", None, move |c| {
                case_statistics(c, quick)
            })
        },
        case("mlp.tiled", "ragged layers, every member block", Some(FORWARD_TOL), move |c| case_mlp_tiled(c, quick)),
        case("mlp.rows", "ragged layers, uniform weight windows", Some(FORWARD_TOL), move |c| case_mlp_rows(c, quick)),
        case(
            "mlp.fused",
            "whole networks, the layouts this adapter gets (in full: every layout)",
            Some(FORWARD_TOL),
            move |c| case_mlp_fused(c, quick),
        ),
    ];
    for kind in EnvKind::ALL {
        v.push(case(
            "env",
            &format!("{}: WGSL reward and termination vs the f64 twin", kind.name()),
            Some(REWARD_TOL),
            move |c| case_env(c, kind, quick),
        ));
        v.push(case(
            "plan.analytic",
            &format!("{}: CEM with the WGSL dynamics", kind.name()),
            Some(PLAN_TOL),
            move |c| case_plan_analytic(c, kind),
        ));
    }
    let kernels: &[MlpKernel] =
        if quick { &[MlpKernel::Auto] } else { &[MlpKernel::Tiled, MlpKernel::Rows, MlpKernel::Fused] };
    for propagation in [Propagation::Ts1, Propagation::Tsinf, Propagation::Expectation] {
        for &k in kernels {
            let prop = format!("{propagation:?}").to_lowercase();
            // The fused network kernel runs each model step in one dispatch where it can (TS1,
            // TS∞), and as the network's dispatch then `propagate` with model_step = split.
            let steps: &[ModelStep] = if k == MlpKernel::Fused && propagation != Propagation::Expectation {
                &[ModelStep::Fused, ModelStep::Split]
            } else {
                &[ModelStep::Auto]
            };
            for &step in steps {
                let name = match step {
                    ModelStep::Auto => format!("{prop}, network kernel {}", k.name()),
                    _ => format!("{prop}, network kernel {}, model step {}", k.name(), step.name()),
                };
                v.push(case("plan.ensemble", &name, Some(PLAN_TOL), move |c| case_plan(c, propagation, k, step)));
            }
        }
    }
    v.push(case("plan.ensemble", "deterministic ensemble with a learned reward", Some(PLAN_TOL), |c| {
        case_plan_learned_reward(c, MlpKernel::Auto, ModelStep::Auto)
    }));
    if !quick {
        let name = "deterministic ensemble with a learned reward, network kernel fused, model step fused";
        v.push(case("plan.ensemble", name, Some(PLAN_TOL), |c| {
            case_plan_learned_reward(c, MlpKernel::Fused, ModelStep::Fused)
        }));
    }
    for kind in PlannerKind::ALL {
        for ensemble in [false, true] {
            if quick && ensemble {
                continue;
            }
            let name =
                format!("{}, two plans, {}", kind.name(), if ensemble { "ensemble (TS1)" } else { "known dynamics" });
            v.push(case("plan.kinds", &name, Some(PLAN_TOL), move |c| case_kind(c, kind, ensemble)));
        }
    }
    let forward: &[TrainKernel] = if quick { &[TrainKernel::Auto] } else { &[TrainKernel::Tiled, TrainKernel::Fused] };
    for &k in forward {
        let rows = if quick { 11 } else { 137 };
        let name = |what: &str| format!("{what}, {} kernels: losses; gradients to 1e-3, {rows} rows", k.name());
        v.push(case("train.loss", &name("Gaussian NLL"), Some(LOSS_TOL), move |c| {
            case_gradients(c, true, false, k, quick)
        }));
        v.push(case("train.loss", &name("MSE, learned reward"), Some(LOSS_TOL), move |c| {
            case_gradients(c, false, true, k, quick)
        }));
    }
    v.push(case("train.adam", "five steps: parameters, both moments, step count", Some(ADAM_TOL), move |c| {
        case_adam(c, quick)
    }));
    v
}

/// Runs `case` on `ctx`: its result, with a failure to run (e.g. a shader that does not compile
/// on this adapter) reported as a failed case.
pub fn run_case(ctx: &GpuContext, case: &Case) -> CaseResult {
    let adapter = ctx.adapter().name.to_lowercase();
    let id = format!("{}: {}", case.family, case.name);
    let expected = EXPECTED_FAILURES
        .iter()
        .find(|e| adapter.contains(&e.adapter.to_lowercase()) && id.starts_with(e.case))
        .map(|e| e.reason.to_string());
    let (values, max_abs, max_rel, passed, detail) = match (case.run)(ctx) {
        Ok(c) => (c.values, c.max_abs, c.max_rel, c.passed, c.detail),
        Err(e) => (0, f64::NAN, f64::NAN, false, format!("could not run: {e}")),
    };
    CaseResult {
        family: case.family.to_string(),
        case: case.name.clone(),
        values,
        max_abs,
        max_rel,
        tol: case.tol,
        criterion: case.criterion.map(str::to_string),
        passed,
        detail,
        expected_failure: expected,
    }
}

/// The adapter a report describes, with the features and limits the kernels use.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterReport {
    /// Name, backend, driver and device type.
    pub adapter: crate::gpu::AdapterSummary,
    /// Features the kernels look at.
    pub features: Vec<String>,
    /// Limits the kernels are sized against.
    pub limits: std::collections::BTreeMap<String, u64>,
    /// The network kernel `mlp_kernel = auto` picks for the PETS reference network.
    pub network_kernel: String,
    /// Each of [`OPTIONAL_FAMILIES`]: run here, or not and what it needs.
    pub optional: Vec<String>,
    /// The cooperative-matrix configurations the adapter lists (`M×N×K A/B→C`), if any.
    pub cooperative_matrices: Vec<String>,
    /// Every case (those of the optional families the adapter has after the others).
    pub results: Vec<CaseResult>,
}

impl AdapterReport {
    /// Every case of `cases` on `ctx`, then the [`optional_cases`] it can run, with the
    /// adapter's description.
    pub fn run(ctx: &GpuContext, cases: &[Case], mut on_case: impl FnMut(&CaseResult)) -> Self {
        let f = ctx.wgpu_adapter().features();
        let features = [
            (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
            (wgpu::Features::SHADER_F16, "SHADER_F16"),
            (wgpu::Features::SUBGROUP, "SUBGROUP"),
            (wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX, "EXPERIMENTAL_COOPERATIVE_MATRIX"),
        ]
        .iter()
        .filter(|(flag, _)| f.contains(*flag))
        .map(|(_, n)| n.to_string())
        .collect();
        let l = ctx.limits();
        let limits = [
            ("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size as u64),
            ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup as u64),
            ("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension as u64),
            ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
            ("max_uniform_buffer_binding_size", l.max_uniform_buffer_binding_size),
            ("max_buffer_size", l.max_buffer_size),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        let network_kernel = auto_network_kernel(ctx).unwrap_or_else(|e| format!("none ({e})"));
        let extra = optional_cases(ctx);
        let optional = OPTIONAL_FAMILIES
            .iter()
            .map(|(family, needs)| match extra.iter().any(|c| c.family == *family) {
                true => format!("{family}: run"),
                false => format!("{family}: not run, this adapter lacks {needs}"),
            })
            .collect();
        let results = cases
            .iter()
            .chain(&extra)
            .map(|c| {
                let r = run_case(ctx, c);
                on_case(&r);
                r
            })
            .collect();
        let cooperative_matrices = ctx
            .wgpu_adapter()
            .cooperative_matrix_properties()
            .iter()
            .map(|p| format!("{}×{}×{} {:?}→{:?}", p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type))
            .collect();
        Self {
            adapter: ctx.adapter().clone(),
            features,
            limits,
            network_kernel,
            optional,
            cooperative_matrices,
            results,
        }
    }

    /// Every case passed or failed as expected.
    pub fn ok(&self) -> bool {
        self.results.iter().all(CaseResult::ok)
    }
}

/// Checks the quick cases of `families` on `ctx` (what `lookahead bench train` times): an
/// error naming the first family that fails and its worst value.
pub fn check_families(ctx: &GpuContext, families: &[&str]) -> Result<()> {
    let failed =
        cases(true).into_iter().filter(|c| families.contains(&c.family)).map(|c| run_case(ctx, &c)).find(|r| !r.passed);
    match failed {
        None => Ok(()),
        Some(r) => Err(Error::InvalidInput(format!(
            "{}: {} fails verification on this adapter ({}); no timing is reported for wrong maths \
             (`lookahead verify` shows every case; --force times it anyway)",
            r.family, r.case, r.detail
        ))),
    }
}

/// The network kernel `mlp_kernel = auto` picks on `ctx` for the PETS reference network.
pub fn auto_network_kernel(ctx: &GpuContext) -> Result<String> {
    let p = Planner::new(
        ctx,
        EnvKind::Cartpole.task(),
        Dynamics::Ensemble(Ensemble::random(EnsembleSpec::pets(4, 1), 0)?),
        PlannerConfig { population: 8, particles: 2, iterations: 1, horizon: 2, ..PlannerConfig::default() },
    )?;
    Ok(p.network_kernel().unwrap_or("").to_string())
}

/// Checks that the network kernel `kernel` computes the right network on `ctx` (the quick
/// cases of its family and whole plans through it under TS1 and TS∞ with `model_step`), for
/// `lookahead bench` before it times it: an error naming the family and the worst value when it
/// does not.
pub fn check_network_kernel(ctx: &GpuContext, kernel: &str, model_step: ModelStep) -> Result<()> {
    let family = format!("mlp.{kernel}");
    let mut table = cases(true);
    table.extend(optional_cases(ctx));
    if let Some((_, needs)) = OPTIONAL_FAMILIES.iter().find(|(f, _)| *f == family) {
        if !table.iter().any(|c| c.family == family) {
            return Err(Error::config("planner.mlp_kernel", format!("{kernel}: this adapter lacks {needs}")));
        }
    }
    if !table.iter().any(|c| c.family == family) {
        return Err(Error::InvalidInput(format!("verification has no case for a network kernel named {kernel:?}")));
    }
    table.retain(|c| c.family == family);
    // Whole plans through the f32 kernels against the f64 reference (coop16's family compares
    // its plans with the fused kernel's instead), each model step as the benchmark runs it.
    if let Some(k) = MlpKernel::from_name(kernel).filter(|k| *k != MlpKernel::Coop16) {
        for propagation in [Propagation::Ts1, Propagation::Tsinf] {
            let prop = format!("{propagation:?}").to_lowercase();
            let name = format!("{prop}, network kernel {kernel}, model step {}", model_step.name());
            table.push(case("plan.ensemble", &name, Some(PLAN_TOL), move |c| case_plan(c, propagation, k, model_step)));
        }
    }
    let failed: Vec<CaseResult> = table.iter().map(|c| run_case(ctx, c)).filter(|r| !r.passed).collect();
    match failed.first() {
        None => Ok(()),
        Some(r) => Err(Error::InvalidInput(format!(
            "the {kernel} network kernel fails verification on this adapter ({}: {}: {}); \
             no timing is reported for wrong maths (`lookahead verify` shows every case; --force times it anyway)",
            r.family, r.case, r.detail
        ))),
    }
}
