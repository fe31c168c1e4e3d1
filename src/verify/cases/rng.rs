//! `rng.*`: Philox words and Feistel permutations bit for bit, Box–Muller normals and the
//! transcendentals against f64, and the samplers' moments, through probe kernels that expose
//! common.wgsl's (and cem.wgsl's) functions to the host.

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::{self, rng, COMMON_WGSL};
use crate::model::clamp_logvar;
use crate::verify::compare::{compare, compare_exact, seeded, Comparison};
use crate::verify::{case, Case, Family, Tol, TRANSCENDENTAL_TOL};

/// The random-stream cases; `quick` runs smaller sizes.
pub(in crate::verify) fn cases(quick: bool) -> Vec<Case> {
    vec![
        case(Family::RngPhilox, "counters 0..n, bit for bit", None, move |c| case_philox(c, quick)),
        case(Family::RngFeistel, "permutations of 1 to 1001 items, bit for bit, bijective", None, move |c| {
            case_feistel(c, quick)
        }),
        case(
            Family::RngNormal,
            "Box–Muller normals, softplus, log-variance clamp",
            Some(TRANSCENDENTAL_TOL),
            move |c| case_transcendentals(c, quick),
        ),
        Case {
            criterion: Some("5 standard errors"),
            ..case(Family::RngStatistics, "normal and ±2-truncated normal moments", None, move |c| {
                case_statistics(c, quick)
            })
        },
    ]
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
