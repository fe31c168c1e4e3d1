//! `train.*`: member losses and the flat gradient of a minibatch against the f64 reference, and
//! several Adam steps (gradient norm, clipping, bounds) against the f64 update.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::adam::reference::{adam_step_f64, AdamParams};
use crate::kernels::adam::{AdamBuffers, AdamKernels, NORM_CHUNK, REDUCTION_WORKGROUP};
use crate::kernels::{self, bind_params, params_layout, TrainParams};
use crate::model::{Ensemble, EnsembleSpec};
use crate::train::reference::flat_loss_and_grads_f64;
use crate::train::{ReplayBuffer, TrainConfig, TrainKernel, Trainer};
use crate::verify::compare::{compare, compare_exact, f32s, seeded, Comparison};
use crate::verify::{case, Case, Family, Tol, ADAM_TOL, LOSS_TOL};

/// The training cases: losses and gradients per forward kernel (in quick, the one `auto`
/// picks), then Adam.
pub(in crate::verify) fn cases(quick: bool) -> Vec<Case> {
    let mut v = Vec::new();
    let forward: &[TrainKernel] = if quick { &[TrainKernel::Auto] } else { &[TrainKernel::Tiled, TrainKernel::Fused] };
    for &k in forward {
        let rows = if quick { 11 } else { 137 };
        let name = |what: &str| format!("{what}, {} kernels: losses; gradients to 1e-3, {rows} rows", k.name());
        v.push(case(Family::TrainLoss, &name("Gaussian NLL"), Some(LOSS_TOL), move |c| {
            case_gradients(c, true, false, k, quick)
        }));
        v.push(case(Family::TrainLoss, &name("MSE, learned reward"), Some(LOSS_TOL), move |c| {
            case_gradients(c, false, true, k, quick)
        }));
    }
    v.push(case(Family::TrainAdam, "five steps: parameters, both moments, step count", Some(ADAM_TOL), move |c| {
        case_adam(c, quick)
    }));
    v
}

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
