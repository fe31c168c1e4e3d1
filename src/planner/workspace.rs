//! The planner's workspace and recording: buffers and bind groups sized for one batch of plans
//! (every size checked against the device's limits before anything is created), the per-step
//! `PlanParams`, and the recording of CEM iterations into one command buffer.

use super::{DynamicsKernels, NetKernels, Planner, PlannerKind, Propagation, Sampling};
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Profile, Profiler, Recorder};
use crate::kernels::cem::CemBuffers;
use crate::kernels::mlp::{Activation, LayerParams, RowsBuffers, RowsLayer};
use crate::kernels::mlp_fused::{FusedBuffers, FusedParams};
use crate::kernels::model_step::StepBuffers;
use crate::kernels::rollout::{bind_rollout, RolloutBuffers};
use crate::kernels::{self, PlanParams, WG_SIZE};

/// One layer's dispatches: a tiled product over all members, or one row dispatch per member;
/// or the whole network in one fused dispatch; or the whole model step in one dispatch (its
/// groups 1 and 2), which replaces `propagate` as well.
pub(super) enum LayerDispatch {
    Tiled(wgpu::BindGroup, (u32, u32, u32)),
    Rows(RowsLayer),
    Fused(wgpu::BindGroup, (u32, u32, u32)),
    Step(wgpu::BindGroup, wgpu::BindGroup, (u32, u32, u32)),
}

/// Buffers and bind groups for one batch size, built once and reused by every plan.
pub(super) struct Workspace {
    pub(super) n_batch: usize,
    pub(super) params_stride: u64,
    pub(super) params: wgpu::Buffer,
    pub(super) params_bg: wgpu::BindGroup,
    pub(super) rollout_bg: wgpu::BindGroup,
    pub(super) cem_bg: wgpu::BindGroup,
    /// The network's dispatches for each population an iteration can have.
    pub(super) layers: Vec<(u32, Vec<LayerDispatch>)>,
    /// `[2 + n_batch, act_dim]`: lower bounds, upper bounds, each plan's previous first action.
    pub(super) bounds: wgpu::Buffer,
    pub(super) obs: wgpu::Buffer,
    pub(super) mean: wgpu::Buffer,
    pub(super) var: wgpu::Buffer,
    pub(super) cand_returns: wgpu::Buffer,
    pub(super) elites: wgpu::Buffer,
    pub(super) plan_stats: wgpu::Buffer,
    pub(super) staging: wgpu::Buffer,
    pub(super) grid_plan: (u32, u32),
}

/// A layer's parameters and its dispatch grid.
type BoundLayer = (LayerParams, (u32, u32, u32));

fn check_u32(what: &str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::LimitExceeded {
        what: what.to_string(),
        requested: v,
        limit: "u32 index range",
        max: u32::MAX as u64,
        hint: "lower population, particles or batch size",
    })
}

impl Planner {
    /// The parameters of iteration `it` for a batch of `n_batch` (step `t` = 0): its population
    /// (sampled candidates and iCEM's extras), model rows, flags and the optimiser's constants.
    pub(super) fn iteration_params(&self, n_batch: usize, it: usize) -> PlanParams {
        let (sampled, extras, extras_flag) = self.cfg.iteration_shape(it, self.have_archive);
        let population = sampled + extras;
        let (local_slots, n_members, model_out, in_dim, mut flags) = match &self.model {
            Some(m) => {
                let s = &m.ensemble.spec;
                let e = s.n_members;
                let pk = population * self.particles;
                let ls = if self.cfg.propagation == Propagation::Expectation { pk * e } else { pk };
                let mut flags = 0;
                if s.probabilistic {
                    flags |= kernels::FLAG_SAMPLE_NOISE;
                }
                if s.learned_reward {
                    flags |= kernels::FLAG_LEARNED_REWARD;
                }
                (ls, e, s.model_out(), s.in_dim(), flags)
            }
            None => (population, 1, self.task.obs_dim, self.task.obs_dim + self.task.act_dim, 0),
        };
        if self.cfg.sampling == Sampling::ClippedNormal {
            flags |= kernels::FLAG_CLIPPED_NORMAL;
        }
        if self.cfg.kind == PlannerKind::RandomShooting {
            flags |= kernels::FLAG_UNIFORM;
        }
        flags |= extras_flag;
        let cap = self.cfg.max_population() as u64;
        let (h, a) = (self.cfg.horizon as u64, self.task.act_dim as u64);
        PlanParams {
            n_batch: n_batch as u32,
            population: population as u32,
            particles: self.particles as u32,
            horizon: self.cfg.horizon as u32,
            obs_dim: self.task.obs_dim as u32,
            act_dim: self.task.act_dim as u32,
            n_members: n_members as u32,
            local_slots: local_slots as u32,
            n_elites: self.n_elites as u32,
            iteration: it as u32,
            t: 0,
            call: self.call,
            seed_lo: self.cfg.seed as u32,
            seed_hi: (self.cfg.seed >> 32) as u32,
            propagation: self.cfg.propagation.code(),
            flags,
            // Random shooting keeps its best candidate as it is.
            alpha: if self.cfg.kind == PlannerKind::RandomShooting { 0.0 } else { self.cfg.alpha as f32 },
            model_out: model_out as u32,
            in_dim: in_dim as u32,
            sampled: sampled as u32,
            keep: extras as u32,
            // Checked to fit in u32 when the workspace was sized.
            archive: (n_batch as u64 * cap * h * a) as u32,
            sigma: self.cfg.sigma as f32,
            gamma: self.cfg.gamma as f32,
            beta: self.cfg.beta as f32,
            noise_beta: self.cfg.noise_beta as f32,
            _pad0: 0,
        }
    }

    /// Rows of slot_of (`begin_rollout` draws them): a permutation per step for TS1, one for
    /// TS∞, none for expectation or known dynamics.
    pub(super) fn slot_rows(&self) -> usize {
        match (&self.model, self.cfg.propagation) {
            (Some(_), Propagation::Ts1) => self.cfg.horizon,
            (Some(_), Propagation::Tsinf) => 1,
            _ => 0,
        }
    }

    pub(super) fn params_bytes(&self, n_batch: usize, stride: u64) -> Vec<u8> {
        let (iters, h) = (self.cfg.effective_iterations(), self.cfg.horizon);
        let mut bytes = vec![0u8; stride as usize * iters * h];
        for it in 0..iters {
            let base = self.iteration_params(n_batch, it);
            for t in 0..h {
                let p = PlanParams { t: t as u32, ..base };
                let off = (it * h + t) * stride as usize;
                bytes[off..off + std::mem::size_of::<PlanParams>()].copy_from_slice(bytemuck::bytes_of(&p));
            }
        }
        bytes
    }

    pub(super) fn build_workspace(&self, n_batch: usize) -> Result<Workspace> {
        let ctx = &self.ctx;
        let limits = ctx.limits();
        let cfg = &self.cfg;
        let (p, h, a, d) =
            (cfg.max_population() as u64, cfg.horizon as u64, self.task.act_dim as u64, self.task.obs_dim as u64);
        let b = n_batch as u64;
        let k = self.particles as u64;
        let n = b * p * k;
        // iCEM keeps its elites' sequences after the candidates.
        let archive = if cfg.kind == PlannerKind::Icem { b * self.n_elites as u64 * h * a } else { 0 };
        let members = self.model.as_ref().map_or(1, |m| m.ensemble.spec.n_members as u64);
        let max_local_slots = p * k * if cfg.propagation == Propagation::Expectation { members } else { 1 };
        let slot_rows = self.slot_rows() as u64;
        let hint = "lower population, particles, horizon or the batch size";
        // Every quantity below is checked before any buffer is created.
        let n32 = check_u32("particles in flight (batch × population × particles)", n)?;
        let fused = matches!(
            &self.kernels.dynamics,
            DynamicsKernels::Ensemble { net: NetKernels::Fused(_) | NetKernels::Coop(_), .. }
        );
        // A one-dispatch model step reads step t's inputs from one half of x0 while it writes
        // step t + 1's into the other, and keeps the outputs in workgroup memory.
        let one_dispatch = matches!(&self.kernels.dynamics, DynamicsKernels::Ensemble { step: Some(_), .. });
        let x0_halves: u64 = if one_dispatch { 2 } else { 1 };
        let (slots, max_width, in_dim, out_cols) = match &self.model {
            Some(m) => {
                let s = &m.ensemble.spec;
                let slots = b * max_local_slots;
                check_u32("local slots × members", max_local_slots * s.n_members as u64)?;
                // The whole-network kernels keep hidden activations in workgroup memory.
                let widest = if fused { 0 } else { s.hidden.iter().copied().max().unwrap_or(0) as u64 };
                let out_cols = if one_dispatch { 0 } else { s.out_cols() as u64 };
                (slots, widest, s.in_dim() as u64, out_cols)
            }
            None => (0, 0, 0, 0),
        };
        let sizes = [
            ("state (batch × population × particles × obs_dim × 4 B)", n * d * 4),
            ("candidate actions (batch × population × horizon × act_dim × 4 B)", (b * p * h * a + archive) * 4),
            ("model inputs (slots × in_dim × 4 B, two halves with model_step = fused)", x0_halves * slots * in_dim * 4),
            ("hidden activations (slots × widest hidden layer × 4 B)", slots * max_width * 4),
            ("model outputs (slots × outputs × 4 B)", slots * out_cols * 4),
            (
                "every step's slots and their inverse (2 × batch × population × particles × horizon (TS1; TS∞ one) × 4 B)",
                2 * n * slot_rows * 4,
            ),
        ];
        for (what, bytes) in sizes {
            ctx.check_buffer_size(what, bytes, true, hint)?;
            check_u32(what, bytes / 4)?;
        }
        let max_wg = limits.max_compute_workgroups_per_dimension;
        // The largest grids; every iteration's grids are no larger (`Workspace::grids`).
        grid_1d(n32, WG_SIZE, max_wg)?;
        grid_1d(check_u32("slots of every step", n * slot_rows)?, WG_SIZE, max_wg)?;
        grid_1d(check_u32("candidate action values", b * p * h * a + archive)?, WG_SIZE, max_wg)?;
        let grid_plan = grid_1d(check_u32("plan values", b * h * a)?, WG_SIZE, max_wg)?;
        let params_stride = kernels::params_stride::<PlanParams>(ctx);
        let params_len = params_stride * (cfg.effective_iterations() * cfg.horizon) as u64;
        ctx.check_buffer_size(
            "plan parameters (iterations × horizon × 256 B)",
            params_len,
            false,
            "lower iterations or horizon",
        )?;
        // One set of layer dispatches per distinct iteration shape (iCEM's populations vary).
        let mut shapes: Vec<u32> = (0..cfg.effective_iterations())
            .flat_map(|i| {
                [true, false].map(|h| {
                    let (s, e, _) = cfg.iteration_shape(i, h);
                    (s + e) as u32
                })
            })
            .collect();
        shapes.sort_unstable();
        shapes.dedup();
        let mut layer_sets: Vec<(u32, Vec<BoundLayer>)> = Vec::new();
        let mut fused_sets: Vec<(u32, FusedParams, (u32, u32, u32))> = Vec::new();
        if let (Some(m), DynamicsKernels::Ensemble { net: net @ (NetKernels::Fused(_) | NetKernels::Coop(_)), .. }) =
            (&self.model, &self.kernels.dynamics)
        {
            let e = m.ensemble.spec.n_members;
            let dims: Vec<usize> = m.ensemble.spec.widths();
            for &pop in &shapes {
                let pk = pop * self.particles as u32;
                let local_slots = if cfg.propagation == Propagation::Expectation { pk * e as u32 } else { pk };
                let fp = match net {
                    NetKernels::Coop(_) => crate::kernels::mlp_coop::params(&dims, e, n_batch as u32, local_slots),
                    _ => FusedParams::new(&dims, e, n_batch as u32, local_slots),
                }
                .ok_or_else(|| Error::LimitExceeded {
                    what: format!("{}: the network's packed parameters", net.name()),
                    requested: dims.len() as u64,
                    limit: "8 layers, u32 offsets",
                    max: crate::kernels::mlp_fused::FUSED_MAX_LAYERS as u64,
                    hint: "use mlp_kernel = \"tiled\"",
                })?;
                let groups = match net {
                    NetKernels::Coop(ck) => ck.shape.workgroups(ctx, &fp)?,
                    NetKernels::Fused(fk) => fk.shape.workgroups(ctx, &fp)?,
                    _ => unreachable!("matched above"),
                };
                fused_sets.push((pop, fp, groups));
            }
        } else if let Some(m) = &self.model {
            let last = m.ensemble.layers.len() - 1;
            let e = m.ensemble.spec.n_members as u32;
            for &pop in &shapes {
                let pk = pop * self.particles as u32;
                let local_slots = if cfg.propagation == Propagation::Expectation { pk * e } else { pk };
                let mut set = Vec::new();
                for (l, layer) in m.ensemble.layers.iter().enumerate() {
                    let lp = LayerParams {
                        n_batch: n_batch as u32,
                        local_slots,
                        n_members: e,
                        in_dim: layer.in_dim as u32,
                        out_dim: layer.out_dim as u32,
                        activation: if l == last { Activation::Identity as u32 } else { Activation::Silu as u32 },
                        store_pre: 0,
                        bias_grad_off: 0,
                    };
                    set.push((lp, lp.workgroups(ctx)?));
                }
                layer_sets.push((pop, set));
            }
        }
        ctx.scoped("planner workspace", || {
            let sb = |label: &str, len: u64| ctx.storage_buffer(label, len as usize);
            let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("planner.params"),
                size: params_len,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let params_bg =
                kernels::bind_params::<PlanParams>(ctx, "planner.params", &self.kernels.cem.layouts.params, &params);
            let obs = sb("planner.obs", b * d);
            let state = sb("planner.state", n * d);
            let track = sb("planner.track", n * 2);
            let actions = sb("planner.actions", b * p * h * a + archive);
            let x0 = sb("planner.x0", x0_halves * slots * in_dim);
            let slot_of = sb("planner.slot_of", 2 * n * slot_rows);
            let h_a = sb("planner.hidden_a", slots * max_width);
            let h_b = sb("planner.hidden_b", slots * max_width);
            let out = sb("planner.out", slots * out_cols);
            let mean = sb("planner.mean", b * h * a);
            let var = sb("planner.var", b * h * a);
            let cand_returns = sb("planner.cand_returns", b * p);
            let elites = sb("planner.elites", b * self.n_elites as u64);
            // Lower bounds, upper bounds, then each plan's previous first action (MPPI).
            let mid: Vec<f32> = self.lower.iter().zip(&self.upper).map(|(l, u)| 0.5 * (l + u)).collect();
            let bounds_init = [self.lower.clone(), self.upper.clone(), mid.repeat(n_batch)].concat();
            let bounds = ctx.storage_buffer_init("planner.bounds", &bounds_init);
            let plan_stats = sb("planner.plan_stats", b * 2);
            let staging = ctx.staging_buffer("planner.readback", (2 * b * h * a + 2 * b) * 4);
            let dummy_consts;
            let consts = match &self.model {
                Some(m) => &m.consts,
                None => {
                    dummy_consts = sb("planner.no_model", 1);
                    &dummy_consts
                }
            };
            let rollout_bg = bind_rollout(
                ctx,
                &self.kernels.cem.layouts,
                "planner.rollout",
                &RolloutBuffers {
                    obs: &obs,
                    state: &state,
                    track: &track,
                    actions: &actions,
                    model_consts: consts,
                    x0: &x0,
                    slot_of: &slot_of,
                    out: &out,
                },
            );
            let cem_bg = self.kernels.cem.bind(
                ctx,
                "planner.cem",
                &CemBuffers {
                    mean: &mean,
                    var: &var,
                    bounds: &bounds,
                    actions: &actions,
                    track: &track,
                    cand_returns: &cand_returns,
                    elites: &elites,
                    plan_stats: &plan_stats,
                },
            );
            let mut layers = Vec::new();
            let no_aux = sb("planner.no_aux", 1);
            if let (
                Some(m),
                DynamicsKernels::Ensemble { net: net @ (NetKernels::Fused(_) | NetKernels::Coop(_)), step, .. },
            ) = (&self.model, &self.kernels.dynamics)
            {
                let (weights, biases) = m.network.as_ref().expect("the whole-network kernels' model is packed whole");
                let step_bg = step.as_ref().map(|sk| {
                    let buffers = StepBuffers {
                        biases,
                        state: &state,
                        track: &track,
                        actions: &actions,
                        model_consts: consts,
                        x0: &x0,
                        slot_of: &slot_of,
                        weights,
                    };
                    (sk, sk.bind(ctx, &self.kernels.cem.layouts, "model_step", &buffers))
                });
                for (pop, fp, groups) in &fused_sets {
                    let buffers = FusedBuffers { input: &x0, weights, biases, output: &out };
                    let dispatch = match (net, &step_bg) {
                        // The step runs the network kernel's layout: the same grid.
                        (_, Some((sk, bg))) => {
                            LayerDispatch::Step(bg.clone(), sk.bind_net(ctx, "model_step.net", fp), *groups)
                        }
                        (NetKernels::Coop(ck), None) => {
                            LayerDispatch::Fused(ck.bind(ctx, "mlp_coop", fp, &buffers), *groups)
                        }
                        (NetKernels::Fused(fk), None) => {
                            LayerDispatch::Fused(fk.bind(ctx, "mlp_fused", fp, &buffers), *groups)
                        }
                        _ => unreachable!("matched above"),
                    };
                    layers.push((*pop, vec![dispatch]));
                }
            } else if let (Some(m), DynamicsKernels::Ensemble { net, .. }) = (&self.model, &self.kernels.dynamics) {
                for (pop, set) in &layer_sets {
                    let n_layers = set.len();
                    let mut dispatches = Vec::new();
                    for (l, (lp, groups)) in set.iter().enumerate() {
                        // Layers alternate between two hidden buffers: x0 → a → b → a ... → out.
                        let input = if l == 0 {
                            &x0
                        } else if l % 2 == 1 {
                            &h_a
                        } else {
                            &h_b
                        };
                        let output = if l + 1 == n_layers {
                            &out
                        } else if l % 2 == 0 {
                            &h_a
                        } else {
                            &h_b
                        };
                        match (&m.rows, net) {
                            (Some(windows), NetKernels::Rows(rk)) => {
                                let label = format!("mlp_rows.layer{l}");
                                let buffers = RowsBuffers { input, bias: &m.biases[l], output, windows: &windows[l] };
                                dispatches.push(LayerDispatch::Rows(rk.bind_layer(ctx, &label, lp, &buffers)?));
                            }
                            (_, NetKernels::Tiled(mlp)) => {
                                let ubuf =
                                    ctx.uniform_buffer_init(&format!("mlp.layer{l}.params"), std::slice::from_ref(lp));
                                let bg = mlp.bind(
                                    ctx,
                                    &format!("mlp.layer{l}"),
                                    [
                                        ubuf.as_entire_binding(),
                                        input.as_entire_binding(),
                                        m.weights[l].as_entire_binding(),
                                        m.biases[l].as_entire_binding(),
                                        output.as_entire_binding(),
                                        no_aux.as_entire_binding(),
                                    ],
                                );
                                dispatches.push(LayerDispatch::Tiled(bg, *groups));
                            }
                            _ => unreachable!(
                                "the row kernel is chosen only with its windows packed; fused is bound above"
                            ),
                        }
                    }
                    layers.push((*pop, dispatches));
                }
            }
            Ok(Workspace {
                n_batch,
                params_stride,
                params,
                params_bg,
                rollout_bg,
                cem_bg,
                layers,
                bounds,
                obs,
                mean,
                var,
                cand_returns,
                elites,
                plan_stats,
                staging,
                grid_plan,
            })
        })?
    }

    /// Records CEM iterations `its`, then copies the mean, the plan statistics and the variance
    /// to the staging buffer, then (with `shift`) the warm start for the next plan; with a
    /// profiler every dispatch is timed.
    pub(super) fn encode(
        &self,
        ws: &Workspace,
        its: std::ops::Range<usize>,
        shift: bool,
        profiler: Option<&Profiler>,
    ) -> (wgpu::CommandEncoder, Profile) {
        let cem = &self.kernels.cem;
        let mut rec = Recorder::new(&self.ctx, "planner.plan", profiler);
        let h = self.cfg.horizon;
        let offset = |it: usize, t: usize| ((it * h + t) as u64 * ws.params_stride) as u32;
        let xy = |g: (u32, u32)| (g.0, g.1, 1);
        let run = |rec: &mut Recorder<'_>,
                   kernel: &'static str,
                   pipe: &wgpu::ComputePipeline,
                   bg: &wgpu::BindGroup,
                   off: u32,
                   grid: (u32, u32)| {
            rec.dispatch(kernel, pipe, &[(&ws.params_bg, &[off]), (bg, &[])], xy(grid));
        };
        let max_wg = self.ctx.limits().max_compute_workgroups_per_dimension;
        // Every grid is no larger than the ones build_workspace checked.
        let grid = |n: usize| grid_1d(n as u32, WG_SIZE, max_wg).expect("checked when the workspace was sized");
        let (nb, na) = (ws.n_batch, self.task.act_dim);
        for it in its {
            let off0 = offset(it, 0);
            let p = self.iteration_params(nb, it);
            let (pop, sampled, keep) = (p.population as usize, p.sampled as usize, p.keep as usize);
            let grid_particles = grid(nb * pop * self.particles);
            let grid_candidates = grid(nb * pop);
            match self.cfg.kind {
                PlannerKind::Cem | PlannerKind::RandomShooting => {
                    run(&mut rec, "sample_candidates", &cem.sample, &ws.cem_bg, off0, grid(nb * pop * h * na));
                }
                PlannerKind::Mppi => {
                    run(&mut rec, "mppi_sample", &cem.mppi_sample, &ws.cem_bg, off0, grid(nb * pop * na))
                }
                PlannerKind::Icem => {
                    run(&mut rec, "icem_sample", &cem.icem_sample, &ws.cem_bg, off0, grid(nb * sampled * na));
                    if keep > 0 {
                        run(&mut rec, "icem_extras", &cem.icem_extras, &ws.cem_bg, off0, grid(nb * keep * h * na));
                    }
                }
            }
            match &self.kernels.dynamics {
                DynamicsKernels::Analytic(analytic) => {
                    run(&mut rec, "rollout_analytic", &analytic.rollout, &ws.rollout_bg, off0, grid_particles);
                }
                DynamicsKernels::Ensemble { rollout, net, step } => {
                    let layers = &ws
                        .layers
                        .iter()
                        .find(|(q, _)| *q as usize == pop)
                        .expect("every iteration's population was bound")
                        .1;
                    // Every particle's start, every step's slots (TS1: one permutation per step;
                    // TS∞: one for all) and step 0's inputs; later steps write the next inputs.
                    let grid_begin = grid(nb * pop * self.particles * self.slot_rows().max(1));
                    run(&mut rec, "begin_rollout", &rollout.begin, &ws.rollout_bg, off0, grid_begin);
                    for t in 0..h {
                        let off = offset(it, t);
                        if let ([LayerDispatch::Step(bg, net_bg, groups)], Some(sk)) = (layers.as_slice(), step) {
                            // Under TS∞ the dispatch at step 0 runs every step (model_step.wgsl).
                            if t == 0 || self.cfg.propagation != Propagation::Tsinf {
                                let groups_of = [(&ws.params_bg, &[off][..]), (bg, &[][..]), (net_bg, &[][..])];
                                rec.dispatch("model_step", &sk.step, &groups_of, *groups);
                            }
                            continue;
                        }
                        for (l, layer) in layers.iter().enumerate() {
                            let kernel = LAYER_LABELS[l.min(LAYER_LABELS.len() - 1)];
                            match (layer, net) {
                                (LayerDispatch::Tiled(bg, groups), NetKernels::Tiled(mlp)) => {
                                    rec.dispatch(kernel, &mlp.forward, &[(bg, &[])], *groups)
                                }
                                (LayerDispatch::Rows(layer), NetKernels::Rows(rk)) => {
                                    rk.record(&mut rec, kernel, layer)
                                }
                                (LayerDispatch::Fused(bg, groups), NetKernels::Fused(fk)) => {
                                    rec.dispatch("mlp_fused", &fk.forward, &[(bg, &[])], *groups)
                                }
                                (LayerDispatch::Fused(bg, groups), NetKernels::Coop(ck)) => {
                                    rec.dispatch("mlp_coop", &ck.forward, &[(bg, &[])], *groups)
                                }
                                _ => unreachable!("layers are bound with the planner's own network kernel"),
                            }
                        }
                        run(&mut rec, "propagate", &rollout.propagate, &ws.rollout_bg, off, grid_particles);
                    }
                }
            }
            run(&mut rec, "particle_mean", &cem.particle_mean, &ws.cem_bg, off0, grid_candidates);
            if self.cfg.kind == PlannerKind::Mppi {
                run(&mut rec, "mppi_update", &cem.mppi_update, &ws.cem_bg, off0, ws.grid_plan);
                continue;
            }
            run(&mut rec, "rank_elites", &cem.rank, &ws.cem_bg, off0, grid_candidates);
            run(&mut rec, "update_distribution", &cem.update, &ws.cem_bg, off0, ws.grid_plan);
            if self.cfg.kind == PlannerKind::Icem {
                let n = nb * self.n_elites * h * na;
                run(&mut rec, "icem_save_elites", &cem.icem_save_elites, &ws.cem_bg, off0, grid(n));
            }
        }
        let plan_bytes = (ws.n_batch * h * self.task.act_dim * 4) as u64;
        let encoder = rec.encoder();
        encoder.copy_buffer_to_buffer(&ws.mean, 0, &ws.staging, 0, Some(plan_bytes));
        encoder.copy_buffer_to_buffer(&ws.plan_stats, 0, &ws.staging, plan_bytes, Some((ws.n_batch * 8) as u64));
        encoder.copy_buffer_to_buffer(&ws.var, 0, &ws.staging, plan_bytes + (ws.n_batch * 8) as u64, Some(plan_bytes));
        if shift {
            // shift_solution writes the shifted mean into `var` (free until the next plan
            // rewrites it), which is then copied over the mean.
            run(&mut rec, "shift_solution", &cem.shift, &ws.cem_bg, 0, ws.grid_plan);
            rec.encoder().copy_buffer_to_buffer(&ws.var, 0, &ws.mean, 0, Some(plan_bytes));
        }
        rec.finish()
    }
}

/// Profile labels of the ensemble's layers (deeper layers share the last label).
const LAYER_LABELS: [&str; 8] = ["layer0", "layer1", "layer2", "layer3", "layer4", "layer5", "layer6", "layer7+"];
