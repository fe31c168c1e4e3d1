//! MBPO's branched rollouts on the GPU: a batch of R rollouts from start states of the real
//! ring, k steps of the SAC actor (sampled) and the ensemble (an elite per rollout and step),
//! every live rollout's transition appended to SAC's model ring — recorded into one submission
//! whose only readback is the ring's state (head, fill, transitions written).
//!
//! The rollouts run in passes of at most [`RolloutShapes::rows`] rollouts (so that the
//! ensemble's hidden values of every member stay within a storage binding); a pass runs every
//! step, and its transitions reach the ring step by step in rollout order. The f64 twin is
//! [`super::reference::rollouts_f64`].

use std::time::Duration;

use crate::error::{Error, Result};
use crate::gpu::{grid_1d, GpuContext, Profiler, RecordStats, Recorder};
use crate::kernels::family::TaskWgsl;
use crate::kernels::mbpo::{mbpo_kernels, MbpoKernels, RolloutParams};
use crate::kernels::mlp::{Activation, MlpKernels};
use crate::kernels::net::{LayeredNet, NetBuffers, NetLayout};
use crate::kernels::{bind_params, params_stride, FLAG_LEARNED_REWARD, FLAG_SAMPLE_NOISE, MAX_ACT, WG_SIZE};
use crate::model::{Ensemble, EnsembleSpec};
use crate::sac::device::SacDevice;

/// How long a rollout submission may take before the device is considered lost.
const SUBMISSION_TIMEOUT: Duration = Duration::from_secs(600);

/// The sizes a rollout device is built for.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutShapes {
    /// The ensemble's architecture.
    pub spec: EnsembleSpec,
    /// Rollouts per batch.
    pub n_rollouts: usize,
    /// Most steps per rollout.
    pub max_length: usize,
    /// Rollouts per pass (the buffers' rows; at most `n_rollouts`).
    pub rows: usize,
}

impl RolloutShapes {
    /// Passes per batch.
    pub fn passes(&self) -> usize {
        self.n_rollouts.div_ceil(self.rows.max(1))
    }

    /// The most rollouts per pass whose buffers fit `ctx`'s storage bindings (at most
    /// `n_rollouts`): the ensemble's widest layer over every member is the largest.
    pub fn rows_that_fit(ctx: &GpuContext, spec: &EnsembleSpec, n_rollouts: usize) -> usize {
        let limit = ctx.limits().max_storage_buffer_binding_size.min(ctx.limits().max_buffer_size);
        let widest = spec.widths().into_iter().max().unwrap_or(1).max(2 * MAX_ACT) as u64;
        let per_row = spec.n_members as u64 * widest * 4;
        (limit / per_row.max(1)).clamp(1, n_rollouts.max(1) as u64) as usize
    }
}

/// The model ring's state after a batch (mbpo.wgsl's `ring_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingState {
    /// The row the next transition goes to.
    pub head: u32,
    /// Rows holding transitions.
    pub fill: u32,
    /// Transitions written since the ring was created.
    pub written: u64,
}

impl RingState {
    /// From the four words of `ring_state`.
    pub fn of(words: &[u32]) -> Self {
        Self { head: words[0], fill: words[1], written: words[2] as u64 | ((words[3] as u64) << 32) }
    }

    /// The four words of `ring_state`.
    pub fn words(&self) -> [u32; 4] {
        [self.head, self.fill, self.written as u32, (self.written >> 32) as u32]
    }
}

/// Every buffer of a pass.
struct Buffers {
    state: wgpu::Buffer,
    alive: wgpu::Buffer,
    actor_out: wgpu::Buffer,
    actions: wgpu::Buffer,
    model_in: wgpu::Buffer,
    model_consts: wgpu::Buffer,
    model_out: wgpu::Buffer,
    elites: wgpu::Buffer,
    trans: wgpu::Buffer,
    rank: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl Buffers {
    fn new(ctx: &GpuContext, s: &RolloutShapes, row_len: usize) -> Result<Self> {
        let (r, e, spec) = (s.rows, s.spec.n_members, &s.spec);
        let (d, a, ind) = (spec.obs_dim, spec.act_dim, spec.in_dim());
        for (what, floats) in
            [("the ensemble's inputs", e * r * ind), ("the ensemble's outputs", e * r * spec.out_cols())]
        {
            ctx.check_buffer_size(what, (floats * 4) as u64, true, "fewer rollouts per step")?;
        }
        ctx.scoped("mbpo buffers", || {
            let sb = |name: &str, n: usize| ctx.storage_buffer(&format!("mbpo.{name}"), n);
            Self {
                state: sb("state", r * d),
                alive: sb("alive", r),
                actor_out: sb("actor_out", r * 2 * a),
                actions: sb("actions", r * a),
                model_in: sb("model_in", e * r * ind),
                model_consts: sb("model_consts", 2 * ind + 2 * spec.model_out()),
                model_out: sb("model_out", e * r * spec.out_cols()),
                elites: sb("elites", e),
                trans: sb("trans", r * row_len),
                rank: sb("rank", r),
                staging: ctx.staging_buffer("mbpo.staging", 16),
            }
        })
    }
}

/// The rollouts' kernels, networks and buffers, bound to a SAC device's actor and rings.
pub struct RolloutDevice {
    ctx: GpuContext,
    shapes: RolloutShapes,
    /// The ensemble's layout (every member).
    pub layout: NetLayout,
    params: wgpu::Buffer,
    kernels: MbpoKernels,
    mlp: MlpKernels,
    bufs: Buffers,
    actor: LayeredNet,
    model: LayeredNet,
    groups: Vec<(&'static str, wgpu::BindGroup)>,
    uniforms: wgpu::Buffer,
    uniforms_bg: wgpu::BindGroup,
    stride: u64,
    ring_state: wgpu::Buffer,
    base: RolloutParams,
    n_elites: usize,
}

impl RolloutDevice {
    /// Builds the kernels for `task`, the buffers of `shapes`, the actor bound to `sac`'s
    /// parameters and the ensemble's own; draws follow `seed`. The model is set with
    /// [`RolloutDevice::set_model`] before the first batch.
    pub fn new(
        ctx: &GpuContext,
        sac: &SacDevice,
        task: TaskWgsl<'_>,
        shapes: RolloutShapes,
        seed: u64,
    ) -> Result<Self> {
        let Some((ring, ring_state)) = sac.model_ring() else {
            return Err(Error::InvalidInput("MBPO's rollouts need a SAC device with a model ring".into()));
        };
        check_shapes(sac.shapes(), &shapes)?;
        let (s, spec) = (sac.shapes(), &shapes.spec);
        spec.validate()?;
        let (mlp, kernels) = (MlpKernels::new(ctx)?, mbpo_kernels(ctx, task)?);
        let bufs = Buffers::new(ctx, &shapes, s.row_len())?;
        let layout = NetLayout::new(&spec.widths(), spec.n_members, NetLayout::alignment(ctx));
        let params = ctx.storage_buffer("mbpo.ensemble", layout.len);
        let (actor, model) = bind_nets(ctx, &mlp, sac, (&layout, &params), &bufs, shapes.rows)?;
        let groups = bind_kernels(ctx, &kernels, &bufs, sac.replay_ring(), ring, ring_state);
        let stride = params_stride::<RolloutParams>(ctx);
        let uniforms = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mbpo.params"),
            size: stride * (shapes.passes() * shapes.max_length) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let uniforms_bg = bind_params::<RolloutParams>(ctx, "mbpo.params", &kernels.params, &uniforms);
        let base = base_params(sac, spec, s.model_capacity, seed);
        ctx.check()?;
        Ok(Self {
            ctx: ctx.clone(),
            layout,
            params,
            kernels,
            mlp,
            bufs,
            actor,
            model,
            groups,
            uniforms,
            uniforms_bg,
            stride,
            ring_state: ring_state.clone(),
            base,
            n_elites: 0,
            shapes,
        })
    }

    /// The sizes.
    pub fn shapes(&self) -> &RolloutShapes {
        &self.shapes
    }

    /// Rollouts from now on go through `ensemble` (this device's architecture), each step
    /// through one of `elites` drawn per rollout.
    pub fn set_model(&mut self, ensemble: &Ensemble, elites: &[usize]) -> Result<()> {
        let spec = &self.shapes.spec;
        if &ensemble.spec != spec {
            return Err(Error::InvalidInput("an ensemble of another architecture than the rollouts'".into()));
        }
        if elites.is_empty() || elites.iter().any(|m| *m >= spec.n_members) {
            return Err(Error::InvalidInput(format!("elites {elites:?} of an ensemble of {} members", spec.n_members)));
        }
        ensemble.validate()?;
        let flat = self.layout.pack(ensemble.layers.iter().map(|l| (&l.weight[..], &l.bias[..])))?;
        let consts: Vec<f32> =
            [&ensemble.input_mean[..], &ensemble.input_std, &ensemble.max_logvar, &ensemble.min_logvar].concat();
        let q = &self.ctx.queue;
        q.write_buffer(&self.params, 0, bytemuck::cast_slice(&flat));
        q.write_buffer(&self.bufs.model_consts, 0, bytemuck::cast_slice(&consts));
        let e: Vec<u32> = elites.iter().map(|m| *m as u32).collect();
        q.write_buffer(&self.bufs.elites, 0, bytemuck::cast_slice(&e));
        self.n_elites = elites.len();
        Ok(())
    }

    /// Runs rollout batch `batch` (its draws follow it) of `length` steps from the first
    /// `n_real` rows of the real ring, in one submission; the model ring's state after it.
    pub fn run(&self, batch: u64, length: usize, n_real: usize) -> Result<RingState> {
        Ok(self.run_recorded(batch, length, n_real, None)?.0)
    }

    /// [`RolloutDevice::run`] with every dispatch timed by `profiler`.
    pub fn run_profiled(
        &self,
        batch: u64,
        length: usize,
        n_real: usize,
        profiler: &Profiler,
    ) -> Result<(RingState, RecordStats)> {
        self.run_recorded(batch, length, n_real, Some(profiler))
    }

    fn run_recorded(
        &self,
        batch: u64,
        length: usize,
        n_real: usize,
        profiler: Option<&Profiler>,
    ) -> Result<(RingState, RecordStats)> {
        if self.n_elites == 0 {
            return Err(Error::InvalidInput("rollouts before a model was set (set_model)".into()));
        }
        if !(1..=self.shapes.max_length).contains(&length) || n_real == 0 || n_real > u32::MAX as usize {
            return Err(Error::InvalidInput(format!(
                "rollouts of {length} steps from {n_real} real transitions; this device runs 1 to {} steps from at \
                 least one",
                self.shapes.max_length
            )));
        }
        self.write_params(batch, length, n_real);
        let mut rec = Recorder::new(&self.ctx, "mbpo", profiler);
        for pass in 0..self.shapes.passes() {
            self.record_pass(&mut rec, pass, length)?;
        }
        let (mut encoder, profile) = rec.finish();
        encoder.copy_buffer_to_buffer(&self.ring_state, 0, &self.bufs.staging, 0, Some(16));
        let read = self.ctx.submit_and_read(encoder, &self.bufs.staging, 4, SUBMISSION_TIMEOUT)?;
        let words: Vec<u32> = read.iter().map(|v| v.to_bits()).collect();
        let recorded = profile.read(&self.ctx, profiler, SUBMISSION_TIMEOUT)?;
        Ok((RingState::of(&words), recorded))
    }

    /// One uniform per (pass, step).
    fn write_params(&self, batch: u64, length: usize, n_real: usize) {
        let (rows, n) = (self.shapes.rows, self.shapes.n_rollouts);
        let mut bytes = vec![0u8; self.stride as usize * self.shapes.passes() * self.shapes.max_length];
        for pass in 0..self.shapes.passes() {
            for k in 0..length {
                let first = pass * rows;
                let p = RolloutParams {
                    n_rollouts: rows.min(n - first) as u32,
                    n_elites: self.n_elites as u32,
                    n_real: n_real as u32,
                    batch_lo: batch as u32,
                    batch_hi: (batch >> 32) as u32,
                    step: k as u32,
                    first: first as u32,
                    rows: rows as u32,
                    ..self.base
                };
                let at = self.slot(pass, k) * self.stride as usize;
                bytes[at..at + std::mem::size_of::<RolloutParams>()].copy_from_slice(bytemuck::bytes_of(&p));
            }
        }
        self.ctx.queue.write_buffer(&self.uniforms, 0, &bytes);
    }

    fn slot(&self, pass: usize, k: usize) -> usize {
        pass * self.shapes.max_length + k
    }

    /// One pass: the start states, then every step.
    fn record_pass(&self, rec: &mut Recorder<'_>, pass: usize, length: usize) -> Result<()> {
        let n = self.shapes.rows.min(self.shapes.n_rollouts - pass * self.shapes.rows);
        let max = self.ctx.limits().max_compute_workgroups_per_dimension;
        let (x, y) = grid_1d(n as u32, WG_SIZE, max)?;
        let per_rollout = (x, y, 1);
        self.dispatch(rec, "rollout_start", self.slot(pass, 0), per_rollout);
        for k in 0..length {
            let slot = self.slot(pass, k);
            self.actor.record_forward(rec, &self.mlp);
            self.dispatch(rec, "rollout_policy", slot, per_rollout);
            self.model.record_forward(rec, &self.mlp);
            self.dispatch(rec, "rollout_model", slot, per_rollout);
            self.dispatch(rec, "rollout_rank", slot, (1, 1, 1));
            self.dispatch(rec, "rollout_store", slot, per_rollout);
        }
        Ok(())
    }

    fn dispatch(&self, rec: &mut Recorder<'_>, entry: &'static str, slot: usize, grid: (u32, u32, u32)) {
        let group = &self.groups.iter().find(|(e, _)| *e == entry).expect("bound at creation").1;
        let off = [(slot as u64 * self.stride) as u32];
        rec.dispatch(entry, &self.kernels.get(entry).pipeline, &[(&self.uniforms_bg, &off), (group, &[])], grid);
    }

    /// The model ring's state.
    pub fn ring_state(&self) -> Result<RingState> {
        Ok(RingState::of(&self.ctx.read_buffer::<u32>(&self.ring_state, 4)?))
    }

    /// Sets the model ring's state (a resumed run's).
    pub fn set_ring_state(&self, state: RingState) {
        self.ctx.queue.write_buffer(&self.ring_state, 0, bytemuck::cast_slice(&state.words()));
    }

    /// The last step's actions `[rows, act]` of the last pass (for checks).
    pub fn last_actions(&self) -> Result<Vec<f32>> {
        self.ctx.read_buffer(&self.bufs.actions, self.shapes.rows * self.shapes.spec.act_dim)
    }
}

/// Refuses rollout shapes that do not fit the SAC device `s`: other sizes than its policy's,
/// empty counts, passes larger than the batch or than the model ring.
fn check_shapes(s: &crate::sac::device::SacShapes, shapes: &RolloutShapes) -> Result<()> {
    let spec = &shapes.spec;
    if spec.obs_dim != s.obs_dim || spec.act_dim != s.act_dim {
        return Err(Error::InvalidInput(format!(
            "an ensemble of obs {} / act {} beside a policy of obs {} / act {}",
            spec.obs_dim, spec.act_dim, s.obs_dim, s.act_dim
        )));
    }
    if shapes.rows == 0 || shapes.rows > shapes.n_rollouts || shapes.max_length == 0 {
        return Err(Error::InvalidInput(format!(
            "{} rollouts in passes of {} rows, at most {} steps: every count must be ≥ 1 and a pass at most the batch",
            shapes.n_rollouts, shapes.rows, shapes.max_length
        )));
    }
    if shapes.rows > s.model_capacity {
        return Err(Error::InvalidInput(format!(
            "passes of {} rollouts into a model ring of {} rows: a step's transitions would overwrite each other",
            shapes.rows, s.model_capacity
        )));
    }
    Ok(())
}

/// The actor on the rollouts' states (the SAC device's parameters) and the ensemble on their
/// inputs (every member), forward only.
fn bind_nets(
    ctx: &GpuContext,
    mlp: &MlpKernels,
    sac: &SacDevice,
    (layout, params): (&NetLayout, &wgpu::Buffer),
    bufs: &Buffers,
    rows: usize,
) -> Result<(LayeredNet, LayeredNet)> {
    let fwd =
        |params, input, output| NetBuffers { params, grads: None, input, output, grad_output: None, grad_input: None };
    let s = sac.shapes();
    let actor = LayeredNet::bind(
        ctx,
        mlp,
        "mbpo.actor",
        &sac.actor_layout,
        s.actor_activation,
        rows,
        &fwd(sac.actor_params(), &bufs.state, &bufs.actor_out),
    )?;
    let model = LayeredNet::bind(
        ctx,
        mlp,
        "mbpo.model",
        layout,
        Activation::Silu,
        rows,
        &fwd(params, &bufs.model_in, &bufs.model_out),
    )?;
    Ok((actor, model))
}

/// The uniform's fields that do not change between batches.
fn base_params(sac: &SacDevice, spec: &EnsembleSpec, capacity: usize, seed: u64) -> RolloutParams {
    let s = sac.shapes();
    let (center, half) = sac.action_scale();
    let mut p = RolloutParams {
        obs_dim: s.obs_dim as u32,
        act_dim: s.act_dim as u32,
        model_out: spec.model_out() as u32,
        out_cols: spec.out_cols() as u32,
        n_members: spec.n_members as u32,
        flags: if spec.probabilistic { FLAG_SAMPLE_NOISE } else { 0 }
            | if spec.learned_reward { FLAG_LEARNED_REWARD } else { 0 },
        capacity: capacity as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        half: [1.0; MAX_ACT],
        ..RolloutParams::default()
    };
    for (i, (c, h)) in center.iter().zip(half).enumerate() {
        p.center[i] = *c as f32;
        p.half[i] = *h as f32;
    }
    p
}

/// Every entry point's group-1 bind group.
fn bind_kernels(
    ctx: &GpuContext,
    k: &MbpoKernels,
    b: &Buffers,
    replay: &wgpu::Buffer,
    ring: &wgpu::Buffer,
    ring_state: &wgpu::Buffer,
) -> Vec<(&'static str, wgpu::BindGroup)> {
    vec![
        ("rollout_start", k.bind(ctx, "rollout_start", &[replay, &b.state, &b.alive])),
        (
            "rollout_policy",
            k.bind(ctx, "rollout_policy", &[&b.state, &b.actor_out, &b.actions, &b.model_in, &b.model_consts]),
        ),
        (
            "rollout_model",
            k.bind(
                ctx,
                "rollout_model",
                &[&b.state, &b.alive, &b.actions, &b.model_consts, &b.model_out, &b.elites, &b.trans],
            ),
        ),
        ("rollout_rank", k.bind(ctx, "rollout_rank", &[&b.alive, &b.rank, ring_state])),
        ("rollout_store", k.bind(ctx, "rollout_store", &[&b.alive, &b.trans, &b.rank, ring])),
    ]
}
