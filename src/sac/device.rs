//! SAC on the GPU: the replay ring, the actor, the twin critics and their targets, log α, their
//! Adam states, and the recording of N updates plus the next action into one submission, so that
//! an environment step costs at most one GPU round trip whatever the updates per step.
//!
//! One update, as [`super::reference`] computes it in f64: draw the minibatch and its noise;
//! a′ ~ π(·|s′) and the target critics on (s′, a′); the critics on (s, a), the critic loss
//! gradient, the critics' backward pass and Adam step; then, on actor steps, ã ~ π(·|s), the
//! critics (just updated) on (s, ã), their input gradient, the actor loss gradient, the actor's
//! backward pass and Adam step, α's gradient and Adam step; the statistics; Polyak averaging on
//! target steps.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::gpu::{grid_1d, GpuContext, Profiler, RecordStats, Recorder};
use crate::kernels::adam::{AdamBuffers, AdamKernels, NORM_CHUNK};
use crate::kernels::mlp::{Activation, MlpKernels};
use crate::kernels::net::{LayeredNet, NetBuffers, NetLayout};
use crate::kernels::sac::{SacKernels, SacParams, STATS};
use crate::kernels::{bind_params, params_layout, params_stride, TrainParams, MAX_ACT, MAX_OBS, WG_SIZE};

use super::reference;

/// How long a submission may take before the device is considered lost.
const SUBMISSION_TIMEOUT: Duration = Duration::from_secs(600);

/// The sizes a SAC device is built for.
#[derive(Debug, Clone, PartialEq)]
pub struct SacShapes {
    /// Observation width.
    pub obs_dim: usize,
    /// Action width.
    pub act_dim: usize,
    /// Minibatch rows.
    pub batch: usize,
    /// Replay capacity (transitions).
    pub capacity: usize,
    /// The actor's hidden widths.
    pub actor_hidden: Vec<usize>,
    /// The critics' hidden widths.
    pub critic_hidden: Vec<usize>,
    /// The actor's hidden activation.
    pub actor_activation: Activation,
    /// The critics' hidden activation.
    pub critic_activation: Activation,
    /// Most updates recorded into one submission.
    pub max_updates: usize,
    /// Rows of the model ring that MBPO's rollouts fill (0: none, plain SAC).
    pub model_capacity: usize,
    /// Minibatch rows drawn from the real ring while the model ring holds transitions (the
    /// rest come from the model ring); `batch` without a model ring.
    pub real_rows: usize,
}

impl SacShapes {
    /// The actor's widths: obs → hidden → (mean, raw log σ).
    pub fn actor_widths(&self) -> Vec<usize> {
        [vec![self.obs_dim], self.actor_hidden.clone(), vec![2 * self.act_dim]].concat()
    }

    /// A critic's widths: (obs, act) → hidden → Q.
    pub fn critic_widths(&self) -> Vec<usize> {
        [vec![self.obs_dim + self.act_dim], self.critic_hidden.clone(), vec![1]].concat()
    }

    /// Floats of one replay row: obs, act, reward, next obs, terminated.
    pub fn row_len(&self) -> usize {
        2 * self.obs_dim + self.act_dim + 2
    }

    /// Floats of the per-row values (sac.wgsl's `rows` regions).
    fn rows_len(&self) -> usize {
        (7 + 2 * self.act_dim) * self.batch
    }

    fn check(&self) -> Result<()> {
        let mut errs = Vec::new();
        if self.obs_dim == 0 || self.obs_dim > MAX_OBS {
            errs.push(Error::config("obs_dim", format!("{} is outside 1..={MAX_OBS}", self.obs_dim)));
        }
        if self.act_dim == 0 || self.act_dim > MAX_ACT {
            errs.push(Error::config("act_dim", format!("{} is outside 1..={MAX_ACT}", self.act_dim)));
        }
        if self.batch == 0 || self.capacity == 0 || self.max_updates == 0 {
            errs.push(Error::config("sac", "batch size, buffer capacity and updates per submission must be ≥ 1"));
        }
        if self.real_rows > self.batch || (self.model_capacity == 0 && self.real_rows != self.batch) {
            errs.push(Error::config(
                "sac",
                format!(
                    "{} real rows of a minibatch of {} (all of them without a model ring)",
                    self.real_rows, self.batch
                ),
            ));
        }
        if self.actor_hidden.contains(&0) || self.critic_hidden.contains(&0) {
            errs.push(Error::config("sac", "every hidden width must be at least 1"));
        }
        Error::collect(errs)
    }
}

/// The update's settings that do not change the buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSettings {
    /// Discount.
    pub gamma: f64,
    /// Polyak factor.
    pub tau: f64,
    /// α's target entropy.
    pub target_entropy: f64,
    /// Whether log α is learned.
    pub learn_alpha: bool,
    /// Learning rates: actor, critics, log α.
    pub lr: [f64; 3],
    /// Adam's β1, β2, ε.
    pub adam: [f64; 3],
    /// The random streams' key.
    pub seed: u64,
    /// The action bounds' centre and half width.
    pub center: Vec<f64>,
    /// See `center`.
    pub half: Vec<f64>,
}

/// One network's (or log α's) parameters, gradients and Adam state on the device.
pub struct Trained {
    /// The flat parameters.
    pub params: wgpu::Buffer,
    grads: wgpu::Buffer,
    moment1: wgpu::Buffer,
    moment2: wgpu::Buffer,
    counters: wgpu::Buffer,
    adam_params: wgpu::BindGroup,
    adam: wgpu::BindGroup,
    grids: ((u32, u32, u32), (u32, u32, u32)),
    /// Floats of `params`.
    pub len: usize,
}

impl Trained {
    fn new(ctx: &GpuContext, adam: &AdamKernels, label: &str, init: &[f32], lr: f64, betas: [f64; 3]) -> Result<Self> {
        let len = init.len();
        let n_chunks = len.div_ceil(NORM_CHUNK);
        let sb = |name: &str, n: usize| ctx.storage_buffer(&format!("{label}.{name}"), n);
        let (params, grads, moment1, moment2) =
            (ctx.storage_buffer_init(&format!("{label}.params"), init), sb("grads", len), sb("m1", len), sb("m2", len));
        let (partials, norm, counters) = (sb("partials", n_chunks), sb("norm", 1), sb("counters", 4));
        let tp = TrainParams {
            n_params: len as u32,
            n_chunks: n_chunks as u32,
            bounds_offset: len as u32,
            lr: lr as f32,
            beta1: betas[0] as f32,
            beta2: betas[1] as f32,
            eps: betas[2] as f32,
            ..TrainParams::default()
        };
        let u = ctx.uniform_buffer_init(&format!("{label}.adam_params"), &[tp]);
        let adam_params =
            bind_params::<TrainParams>(ctx, label, &params_layout::<TrainParams>(ctx, "train.params")?, &u);
        let bufs = AdamBuffers {
            params: &params,
            grads: &grads,
            moment1: &moment1,
            moment2: &moment2,
            partials: &partials,
            stats: &norm,
            counters: &counters,
        };
        let adam_bg = adam.bind(ctx, &format!("{label}.adam"), &bufs);
        let max = ctx.limits().max_compute_workgroups_per_dimension;
        let xy = |(x, y): (u32, u32)| (x, y, 1);
        let grids = (xy(grid_1d(n_chunks as u32, 1, max)?), xy(grid_1d(len as u32, WG_SIZE, max)?));
        Ok(Self { params, grads, moment1, moment2, counters, adam_params, adam: adam_bg, grids, len })
    }

    fn record_adam(&self, rec: &mut Recorder<'_>, k: &AdamKernels) {
        let groups: [(&wgpu::BindGroup, &[u32]); 2] = [(&self.adam_params, &[0]), (&self.adam, &[])];
        rec.dispatch("grad_norm_partial", &k.norm_partial, &groups, self.grids.0);
        rec.dispatch("grad_norm_final", &k.norm_final, &groups, (1, 1, 1));
        rec.dispatch("adam_step", &k.adam, &groups, self.grids.1);
    }
}

/// Every buffer the update's kernels and networks exchange (sac.wgsl's table).
struct Io {
    replay: wgpu::Buffer,
    critic_in: wgpu::Buffer,
    next_in: wgpu::Buffer,
    cur_in: wgpu::Buffer,
    rows: wgpu::Buffer,
    actor_next: wgpu::Buffer,
    actor_cur: wgpu::Buffer,
    target_in: wgpu::Buffer,
    pi_in: wgpu::Buffer,
    q: wgpu::Buffer,
    q_next: wgpu::Buffer,
    q_pi: wgpu::Buffer,
    dq: wgpu::Buffer,
    dq_pi: wgpu::Buffer,
    dq_in: wgpu::Buffer,
    dactor: wgpu::Buffer,
    stats: wgpu::Buffer,
    act_obs: wgpu::Buffer,
    act_out: wgpu::Buffer,
    action: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// MBPO's model ring (none: plain SAC, whose `sample` reads the replay ring there).
    model_ring: Option<wgpu::Buffer>,
    /// The model ring's head, fill and transitions written (u32, mbpo.wgsl's `ring_state`).
    ring_state: wgpu::Buffer,
}

impl Io {
    fn new(ctx: &GpuContext, s: &SacShapes) -> Result<Self> {
        let (b, d, a) = (s.batch, s.obs_dim, s.act_dim);
        let replay_bytes = (s.capacity as u64).saturating_mul(s.row_len() as u64).saturating_mul(4);
        let row_bytes = s.row_len() as u64 * 4;
        let fits = ctx.limits().max_storage_buffer_binding_size.min(ctx.limits().max_buffer_size) / row_bytes;
        let what = format!("the replay buffer ({} transitions × {row_bytes} B; at most {fits} fit)", s.capacity);
        ctx.check_buffer_size(&what, replay_bytes, true, "lower loop.buffer_capacity")?;
        let model_bytes = (s.model_capacity as u64).saturating_mul(row_bytes);
        let what = format!("the model ring ({} transitions × {row_bytes} B; at most {fits} fit)", s.model_capacity);
        ctx.check_buffer_size(&what, model_bytes, true, "fewer rollouts per step or retained epochs")?;
        let staging_len = s.max_updates * STATS + MAX_ACT;
        ctx.scoped("sac buffers", || {
            let sb = |name: &str, n: usize| ctx.storage_buffer(&format!("sac.{name}"), n);
            Self {
                replay: sb("replay", s.capacity * s.row_len()),
                critic_in: sb("critic_in", 2 * b * (d + a)),
                next_in: sb("next_in", b * d),
                cur_in: sb("cur_in", b * d),
                rows: sb("rows", s.rows_len()),
                actor_next: sb("actor_next", b * 2 * a),
                actor_cur: sb("actor_cur", b * 2 * a),
                target_in: sb("target_in", 2 * b * (d + a)),
                pi_in: sb("pi_in", 2 * b * (d + a)),
                q: sb("q", 2 * b),
                q_next: sb("q_next", 2 * b),
                q_pi: sb("q_pi", 2 * b),
                dq: sb("dq", 2 * b),
                dq_pi: sb("dq_pi", 2 * b),
                dq_in: sb("dq_in", 2 * b * (d + a)),
                dactor: sb("dactor", b * 2 * a),
                stats: sb("stats", s.max_updates * STATS),
                act_obs: sb("act_obs", d),
                act_out: sb("act_out", 2 * a),
                action: sb("action", MAX_ACT),
                staging: ctx.staging_buffer("sac.staging", (staging_len * 4) as u64),
                model_ring: (s.model_capacity > 0).then(|| sb("model_ring", s.model_capacity * s.row_len())),
                ring_state: ctx.storage_buffer_init("sac.ring_state", &[0u32; 4]),
            }
        })
    }
}

/// The networks bound to their inputs and outputs.
struct Nets {
    actor_next: LayeredNet,
    actor_cur: LayeredNet,
    actor_act: LayeredNet,
    critic: LayeredNet,
    critic_pi: LayeredNet,
    target: LayeredNet,
}

/// The initial parameters: the actor's and the critics' (both members) flat in their layouts,
/// and log α.
#[derive(Debug, Clone, PartialEq)]
pub struct SacParamsF32 {
    /// The actor in [`SacDevice::actor_layout`].
    pub actor: Vec<f32>,
    /// Both critics in [`SacDevice::critic_layout`].
    pub critic: Vec<f32>,
    /// Both target critics, same layout.
    pub target: Vec<f32>,
    /// log α.
    pub log_alpha: f32,
}

impl SacParamsF32 {
    /// The reference's networks in the device's layouts (`actor`: 1 member, `critic`: Q1 and
    /// Q2), rounded to f32.
    pub fn of_reference(nets: &reference::SacNets, actor: &NetLayout, critic: &NetLayout) -> Self {
        Self {
            actor: reference::to_layout(actor, &[&nets.actor]),
            critic: reference::to_layout(critic, &[&nets.q1, &nets.q2]),
            target: reference::to_layout(critic, &[&nets.q1_target, &nets.q2_target]),
            log_alpha: nets.log_alpha as f32,
        }
    }

    /// Sets every network of `nets` (of the same sizes) to these parameters.
    pub fn set_reference(&self, nets: &mut reference::SacNets, actor: &NetLayout, critic: &NetLayout) {
        nets.actor.set_flat(&reference::from_layout(actor, &self.actor, 0));
        nets.q1.set_flat(&reference::from_layout(critic, &self.critic, 0));
        nets.q2.set_flat(&reference::from_layout(critic, &self.critic, 1));
        nets.q1_target.set_flat(&reference::from_layout(critic, &self.target, 0));
        nets.q2_target.set_flat(&reference::from_layout(critic, &self.target, 1));
        nets.log_alpha = self.log_alpha as f64;
    }
}

/// What one update does besides the critic step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdatePlan {
    /// The update's index (its random draws follow it).
    pub index: u64,
    /// Step the actor (and α).
    pub actor: bool,
    /// Polyak-average the targets after it.
    pub polyak: bool,
}

/// SAC's state on the device.
pub struct SacDevice {
    ctx: GpuContext,
    shapes: SacShapes,
    settings: UpdateSettings,
    /// The actor's layout (1 member).
    pub actor_layout: NetLayout,
    /// The critics' layout (2 members).
    pub critic_layout: NetLayout,
    mlp: MlpKernels,
    adam: AdamKernels,
    sac: SacKernels,
    io: Io,
    nets: Nets,
    actor: Trained,
    critic: Trained,
    target: wgpu::Buffer,
    alpha: Trained,
    uniforms: wgpu::Buffer,
    uniforms_bg: wgpu::BindGroup,
    stride: u64,
    groups: Vec<(&'static str, wgpu::BindGroup)>,
    polyak_grid: (u32, u32, u32),
    /// Transitions written to the ring.
    stored: u64,
    /// The newest model-ring rows the minibatches draw from.
    model_window: usize,
    /// Dispatches recorded by the last submission.
    last_dispatches: u64,
}

impl SacDevice {
    /// Builds every buffer, network and bind group for `shapes`, starting from `init`.
    pub fn new(ctx: &GpuContext, shapes: SacShapes, settings: UpdateSettings, init: &SacParamsF32) -> Result<Self> {
        shapes.check()?;
        let align = NetLayout::alignment(ctx);
        let actor_layout = NetLayout::new(&shapes.actor_widths(), 1, align);
        let critic_layout = NetLayout::new(&shapes.critic_widths(), 2, align);
        if init.actor.len() != actor_layout.len
            || init.critic.len() != critic_layout.len
            || init.target.len() != critic_layout.len
        {
            return Err(Error::InvalidInput("the initial parameters do not match the networks' layouts".into()));
        }
        let (mlp, adam, sac) = (MlpKernels::new(ctx)?, AdamKernels::new(ctx)?, crate::kernels::sac::sac_kernels(ctx)?);
        let io = Io::new(ctx, &shapes)?;
        let [lr_a, lr_c, lr_alpha] = settings.lr;
        let actor = Trained::new(ctx, &adam, "sac.actor", &init.actor, lr_a, settings.adam)?;
        let critic = Trained::new(ctx, &adam, "sac.critic", &init.critic, lr_c, settings.adam)?;
        let alpha = Trained::new(ctx, &adam, "sac.alpha", &[init.log_alpha], lr_alpha, settings.adam)?;
        let target = ctx.storage_buffer_init("sac.target", &init.target);
        let nets = bind_nets(ctx, &mlp, &shapes, (&actor_layout, &critic_layout), &io, (&actor, &critic, &target))?;
        let stride = params_stride::<SacParams>(ctx);
        let uniforms = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sac.params"),
            size: stride * (shapes.max_updates as u64 + 1),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let uniforms_bg = bind_params::<SacParams>(ctx, "sac.params", &sac.params, &uniforms);
        let groups = bind_kernels(ctx, &sac, &io, &critic, &target, &alpha);
        let max = ctx.limits().max_compute_workgroups_per_dimension;
        let (x, y) = grid_1d(critic_layout.len as u32, WG_SIZE, max)?;
        ctx.check()?;
        Ok(Self {
            ctx: ctx.clone(),
            shapes,
            settings,
            actor_layout,
            critic_layout,
            mlp,
            adam,
            sac,
            io,
            nets,
            actor,
            critic,
            target,
            alpha,
            uniforms,
            uniforms_bg,
            stride,
            groups,
            polyak_grid: (x, y, 1),
            stored: 0,
            model_window: usize::MAX,
            last_dispatches: 0,
        })
    }

    /// The sizes.
    pub fn shapes(&self) -> &SacShapes {
        &self.shapes
    }

    /// The real replay ring (`[capacity, row]`; its first [`SacDevice::n_stored`] rows hold
    /// transitions).
    pub fn replay_ring(&self) -> &wgpu::Buffer {
        &self.io.replay
    }

    /// The model ring and its state (head, fill, transitions written low and high: u32), which
    /// MBPO's rollouts fill; none for plain SAC.
    pub fn model_ring(&self) -> Option<(&wgpu::Buffer, &wgpu::Buffer)> {
        self.io.model_ring.as_ref().map(|r| (r, &self.io.ring_state))
    }

    /// The minibatches' model rows come from the newest `window` rows of the model ring (all of
    /// them until this is called).
    pub fn set_model_window(&mut self, window: usize) {
        self.model_window = window;
    }

    /// The action bounds' centre and half width.
    pub fn action_scale(&self) -> (&[f64], &[f64]) {
        (&self.settings.center, &self.settings.half)
    }

    /// The actor's flat parameters (in [`SacDevice::actor_layout`]).
    pub fn actor_params(&self) -> &wgpu::Buffer {
        &self.actor.params
    }

    /// The context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Transitions in the ring (at most its capacity).
    pub fn n_stored(&self) -> usize {
        self.stored.min(self.shapes.capacity as u64) as usize
    }

    /// Writes one transition into the ring (queued before the next submission; the oldest is
    /// overwritten once the ring is full).
    pub fn push(&mut self, obs: &[f32], act: &[f32], reward: f32, next_obs: &[f32], terminated: bool) -> Result<()> {
        let (d, a) = (self.shapes.obs_dim, self.shapes.act_dim);
        if obs.len() != d || next_obs.len() != d || act.len() != a {
            return Err(Error::InvalidInput(format!(
                "a transition of obs {} / act {} / next obs {}; this SAC takes obs {d} / act {a}",
                obs.len(),
                act.len(),
                next_obs.len()
            )));
        }
        let row: Vec<f32> = [obs, act, &[reward], next_obs, &[f32::from(u8::from(terminated))]].concat();
        let at = (self.stored % self.shapes.capacity as u64) as usize * self.shapes.row_len();
        self.ctx.queue.write_buffer(&self.io.replay, (at * 4) as u64, bytemuck::cast_slice(&row));
        self.stored += 1;
        Ok(())
    }

    fn params_of(&self, slot: usize, plan: Option<&UpdatePlan>, step: u64, deterministic: bool) -> SacParams {
        let s = &self.settings;
        let bounds = SacParams::with_bounds(&s.center, &s.half);
        let index = plan.map_or(0, |p| p.index);
        SacParams {
            batch: self.shapes.batch as u32,
            obs_dim: self.shapes.obs_dim as u32,
            act_dim: self.shapes.act_dim as u32,
            n_stored: self.n_stored() as u32,
            update_lo: index as u32,
            update_hi: (index >> 32) as u32,
            seed_lo: s.seed as u32,
            seed_hi: (s.seed >> 32) as u32,
            gamma: s.gamma as f32,
            tau: s.tau as f32,
            target_entropy: s.target_entropy as f32,
            learn_alpha: u32::from(s.learn_alpha),
            actor_step: u32::from(plan.is_some_and(|p| p.actor)),
            slot: slot as u32,
            n_polyak: self.critic_layout.len as u32,
            deterministic: u32::from(deterministic),
            step_lo: step as u32,
            step_hi: (step >> 32) as u32,
            n_real_rows: self.shapes.real_rows as u32,
            model_window: self.model_window.min(u32::MAX as usize) as u32,
            model_capacity: self.shapes.model_capacity as u32,
            ..bounds
        }
    }

    fn group(&self, entry: &str) -> &wgpu::BindGroup {
        &self.groups.iter().find(|(e, _)| *e == entry).expect("bound at creation").1
    }

    /// Records `entry` with update slot `slot`'s parameters over `grid`.
    fn dispatch_grid(&self, rec: &mut Recorder<'_>, entry: &'static str, slot: usize, grid: (u32, u32, u32)) {
        let off = [(slot as u64 * self.stride) as u32];
        rec.dispatch(
            entry,
            &self.sac.get(entry).pipeline,
            &[(&self.uniforms_bg, &off), (self.group(entry), &[])],
            grid,
        );
    }

    /// Records `entry` over one invocation per row of `n` (fewer than 2^16 workgroups: the
    /// batch is checked at creation).
    fn dispatch(&self, rec: &mut Recorder<'_>, entry: &'static str, slot: usize, n: usize) {
        self.dispatch_grid(rec, entry, slot, (n.div_ceil(WG_SIZE as usize).max(1) as u32, 1, 1));
    }

    /// Records one update in slot `slot` of the submission.
    fn record_update(&self, rec: &mut Recorder<'_>, slot: usize, plan: &UpdatePlan) {
        let (b, n) = (self.shapes.batch, &self.nets);
        // The critic step.
        self.dispatch(rec, "sample", slot, b);
        n.actor_next.record_forward(rec, &self.mlp);
        self.dispatch(rec, "policy_next", slot, b);
        n.target.record_forward(rec, &self.mlp);
        n.critic.record_forward(rec, &self.mlp);
        self.dispatch(rec, "critic_grad", slot, b);
        n.critic.record_backward(rec, &self.mlp);
        self.critic.record_adam(rec, &self.adam);
        // The actor step (and α's), on the critics just updated.
        if plan.actor {
            n.actor_cur.record_forward(rec, &self.mlp);
            self.dispatch(rec, "policy_cur", slot, b);
            n.critic_pi.record_forward(rec, &self.mlp);
            self.dispatch(rec, "actor_q_grad", slot, b);
            n.critic_pi.record_backward(rec, &self.mlp);
            self.dispatch(rec, "actor_grad", slot, b);
            n.actor_cur.record_backward(rec, &self.mlp);
            self.actor.record_adam(rec, &self.adam);
        }
        self.dispatch_grid(rec, "update_stats", slot, (1, 1, 1));
        if plan.actor && self.settings.learn_alpha {
            self.alpha.record_adam(rec, &self.adam);
        }
        if plan.polyak {
            self.dispatch_grid(rec, "polyak", slot, self.polyak_grid);
        }
    }

    /// Records one imitation update in slot `slot`: the minibatch, the actor on its
    /// observations, the gradient of the squared error of its deterministic actions to the
    /// rows' actions, the actor's Adam step; the loss reduced into the statistics.
    fn record_imitation(&self, rec: &mut Recorder<'_>, slot: usize, _plan: &UpdatePlan) {
        let (b, n) = (self.shapes.batch, &self.nets);
        self.dispatch(rec, "sample", slot, b);
        n.actor_cur.record_forward(rec, &self.mlp);
        self.dispatch(rec, "imitation_grad", slot, b);
        n.actor_cur.record_backward(rec, &self.mlp);
        self.actor.record_adam(rec, &self.adam);
        self.dispatch_grid(rec, "update_stats", slot, (1, 1, 1));
    }

    /// Behaviour cloning: `n` (at most `max_updates`) updates of the actor alone, numbered
    /// from `first` (the minibatches' draws follow the number), each on a minibatch of the
    /// ring's rows whose actions are the labels, minimising the mean squared error of the
    /// deterministic action `c + h·tanh(μ)` to them; the critics, the targets and α do not move.
    /// One submission; the updates' losses.
    pub fn imitate(&mut self, first: u64, n: usize) -> Result<Vec<f64>> {
        let plans: Vec<UpdatePlan> =
            (0..n as u64).map(|k| UpdatePlan { index: first + k, actor: false, polyak: false }).collect();
        let (step, _) = self.run_recorded(&plans, None, 0, false, None, Self::record_imitation)?;
        Ok(step.stats.iter().map(|s| s.critic_loss).collect())
    }

    /// Runs `plans` (at most `max_updates`) and, when `obs` is given, computes the action for
    /// it (sampled with the noise of environment step `step`, or the mean when `deterministic`),
    /// all in one submission with one readback: the updates' statistics and the action.
    pub fn run(&mut self, plans: &[UpdatePlan], obs: Option<&[f32]>, step: u64, deterministic: bool) -> Result<Step> {
        Ok(self.run_recorded(plans, obs, step, deterministic, None, Self::record_update)?.0)
    }

    /// [`SacDevice::run`] with every dispatch timed by `profiler`: the step and the
    /// submission's dispatches and GPU milliseconds per kernel.
    pub fn run_profiled(
        &mut self,
        plans: &[UpdatePlan],
        obs: Option<&[f32]>,
        step: u64,
        deterministic: bool,
        profiler: &Profiler,
    ) -> Result<(Step, RecordStats)> {
        self.run_recorded(plans, obs, step, deterministic, Some(profiler), Self::record_update)
    }

    fn run_recorded(
        &mut self,
        plans: &[UpdatePlan],
        obs: Option<&[f32]>,
        step: u64,
        deterministic: bool,
        profiler: Option<&Profiler>,
        record: fn(&Self, &mut Recorder<'_>, usize, &UpdatePlan),
    ) -> Result<(Step, RecordStats)> {
        if plans.len() > self.shapes.max_updates {
            return Err(Error::InvalidInput(format!(
                "{} updates in one submission; this device takes at most {}",
                plans.len(),
                self.shapes.max_updates
            )));
        }
        if !plans.is_empty() && self.n_stored() == 0 {
            return Err(Error::InvalidInput("an update needs at least one stored transition".into()));
        }
        let mut params: Vec<u8> = vec![0; self.stride as usize * (self.shapes.max_updates + 1)];
        for (slot, plan) in plans.iter().enumerate() {
            let p = self.params_of(slot, Some(plan), step, deterministic);
            params[slot * self.stride as usize..][..std::mem::size_of::<SacParams>()]
                .copy_from_slice(bytemuck::bytes_of(&p));
        }
        let act_slot = self.shapes.max_updates;
        let p = SacParams { batch: 1, ..self.params_of(act_slot, None, step, deterministic) };
        params[act_slot * self.stride as usize..][..std::mem::size_of::<SacParams>()]
            .copy_from_slice(bytemuck::bytes_of(&p));
        self.ctx.queue.write_buffer(&self.uniforms, 0, &params);
        let mut rec = Recorder::new(&self.ctx, "sac", profiler);
        for (slot, plan) in plans.iter().enumerate() {
            record(self, &mut rec, slot, plan);
        }
        if let Some(o) = obs {
            self.record_act(&mut rec, o, act_slot)?;
        }
        let (mut encoder, profile) = rec.finish();
        self.last_dispatches = profile.dispatches();
        let n_stats = plans.len() * STATS;
        encoder.copy_buffer_to_buffer(&self.io.stats, 0, &self.io.staging, 0, Some((n_stats.max(1) * 4) as u64));
        encoder.copy_buffer_to_buffer(
            &self.io.action,
            0,
            &self.io.staging,
            (n_stats * 4) as u64,
            Some((MAX_ACT * 4) as u64),
        );
        let out = self.ctx.submit_and_read(encoder, &self.io.staging, n_stats + MAX_ACT, SUBMISSION_TIMEOUT)?;
        let stats = out[..n_stats].chunks(STATS).map(UpdateStats::of).collect();
        let action = obs.map(|_| out[n_stats..n_stats + self.shapes.act_dim].to_vec());
        let recorded = profile.read(&self.ctx, profiler, SUBMISSION_TIMEOUT)?;
        Ok((Step { stats, action }, recorded))
    }

    fn record_act(&self, rec: &mut Recorder<'_>, obs: &[f32], slot: usize) -> Result<()> {
        if obs.len() != self.shapes.obs_dim {
            return Err(Error::InvalidInput(format!(
                "an observation of {} values; expected {}",
                obs.len(),
                self.shapes.obs_dim
            )));
        }
        self.ctx.queue.write_buffer(&self.io.act_obs, 0, bytemuck::cast_slice(obs));
        self.nets.actor_act.record_forward(rec, &self.mlp);
        self.dispatch(rec, "act", slot, self.shapes.act_dim);
        Ok(())
    }

    /// Reads every parameter back: actor, critics, targets, log α.
    pub fn params(&self) -> Result<SacParamsF32> {
        let c = &self.ctx;
        Ok(SacParamsF32 {
            actor: c.read_buffer(&self.actor.params, self.actor.len)?,
            critic: c.read_buffer(&self.critic.params, self.critic.len)?,
            target: c.read_buffer(&self.target, self.critic.len)?,
            log_alpha: c.read_buffer::<f32>(&self.alpha.params, 1)?[0],
        })
    }

    /// Everything the updates change: parameters, Adam moments and step counts (a resume point
    /// restores it with [`SacDevice::restore`]).
    pub fn snapshot(&self) -> Result<DeviceState> {
        Ok(DeviceState { params: self.params()?, moments: self.moments()?, adam_steps: self.adam_steps()? })
    }

    /// Restores a [`SacDevice::snapshot`] and the replay ring's first `stored` rows from
    /// `ring` (`[min(stored, capacity), row]`; `stored` may exceed the capacity: the ring
    /// continues where it was).
    pub fn restore(&mut self, state: &DeviceState, ring: &[f32], stored: u64) -> Result<()> {
        let p = &state.params;
        let lens =
            [(p.actor.len(), self.actor.len), (p.critic.len(), self.critic.len), (p.target.len(), self.critic.len)];
        let held = (stored.min(self.shapes.capacity as u64) as usize) * self.shapes.row_len();
        if lens.iter().any(|(a, b)| a != b) || ring.len() != held {
            return Err(Error::InvalidInput("a SAC state of other sizes than this device's".into()));
        }
        let q = &self.ctx.queue;
        for (t, values, [m1, m2], steps) in [
            (&self.actor, &p.actor[..], &state.moments[0], state.adam_steps[0]),
            (&self.critic, &p.critic[..], &state.moments[1], state.adam_steps[1]),
            (&self.alpha, &[p.log_alpha][..], &state.moments[2], state.adam_steps[2]),
        ]
        .map(|(t, v, (a, b), s)| (t, v, [a, b], s))
        {
            if m1.len() != t.len || m2.len() != t.len {
                return Err(Error::InvalidInput("Adam moments of other sizes than this device's".into()));
            }
            q.write_buffer(&t.params, 0, bytemuck::cast_slice(values));
            q.write_buffer(&t.moment1, 0, bytemuck::cast_slice(m1));
            q.write_buffer(&t.moment2, 0, bytemuck::cast_slice(m2));
            q.write_buffer(&t.counters, 0, bytemuck::cast_slice(&[steps, 0, 0, 0]));
        }
        q.write_buffer(&self.target, 0, bytemuck::cast_slice(&p.target));
        q.write_buffer(&self.io.replay, 0, bytemuck::cast_slice(ring));
        self.stored = stored;
        self.ctx.check()
    }

    /// Compute dispatches of the last submission ([`SacDevice::run`]).
    pub fn last_dispatches(&self) -> u64 {
        self.last_dispatches
    }

    /// Adam's step counts: actor, critics, log α.
    pub fn adam_steps(&self) -> Result<[u32; 3]> {
        let n = |t: &Trained| -> Result<u32> { Ok(self.ctx.read_buffer::<u32>(&t.counters, 4)?[0]) };
        Ok([n(&self.actor)?, n(&self.critic)?, n(&self.alpha)?])
    }

    /// Adam's moments of the actor, the critics and log α (first, second).
    pub fn moments(&self) -> Result<[(Vec<f32>, Vec<f32>); 3]> {
        let m = |t: &Trained| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((self.ctx.read_buffer(&t.moment1, t.len)?, self.ctx.read_buffer(&t.moment2, t.len)?))
        };
        Ok([m(&self.actor)?, m(&self.critic)?, m(&self.alpha)?])
    }

    /// The minibatch and noise the last update drew (what its `sample` kernel wrote).
    pub fn last_minibatch(&self) -> Result<Minibatch> {
        let (b, d, a) = (self.shapes.batch, self.shapes.obs_dim, self.shapes.act_dim);
        let c = &self.ctx;
        let rows = c.read_buffer::<f32>(&self.io.rows, (2 + 2 * a) * b)?;
        Ok(Minibatch {
            critic_in: c.read_buffer(&self.io.critic_in, 2 * b * (d + a))?,
            obs: c.read_buffer(&self.io.cur_in, b * d)?,
            next_obs: c.read_buffer(&self.io.next_in, b * d)?,
            reward: rows[..b].to_vec(),
            terminated: rows[b..2 * b].to_vec(),
            eps_next: rows[2 * b..(2 + a) * b].to_vec(),
            eps_cur: rows[(2 + a) * b..].to_vec(),
        })
    }

    /// The gradients left by the last update: actor, critics, log α.
    pub fn grads(&self) -> Result<[Vec<f32>; 3]> {
        let g = |t: &Trained| self.ctx.read_buffer(&t.grads, t.len);
        Ok([g(&self.actor)?, g(&self.critic)?, g(&self.alpha)?])
    }
}

/// What [`SacDevice::snapshot`] reads back.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    /// Every parameter.
    pub params: SacParamsF32,
    /// Adam's (first, second) moments of the actor, the critics and log α.
    pub moments: [(Vec<f32>, Vec<f32>); 3],
    /// Adam's step counts, same order.
    pub adam_steps: [u32; 3],
}

impl DeviceState {
    /// The Adam states as the reference keeps them (one per critic, both with the critics' step
    /// count), from the device's layouts.
    pub fn reference_adam(&self, actor: &NetLayout, critic: &NetLayout) -> reference::SacAdam {
        let state = |(m1, m2): &(Vec<f32>, Vec<f32>), layout: Option<(&NetLayout, usize)>, t: u32| {
            let of = |v: &[f32]| match layout {
                Some((l, m)) => reference::from_layout(l, v, m),
                None => v.iter().map(|x| *x as f64).collect(),
            };
            reference::AdamState { m1: of(m1), m2: of(m2), t }
        };
        let [a, c, la] = &self.moments;
        let [ta, tc, tla] = self.adam_steps;
        reference::SacAdam {
            actor: state(a, Some((actor, 0)), ta),
            q1: state(c, Some((critic, 0)), tc),
            q2: state(c, Some((critic, 1)), tc),
            log_alpha: state(la, None, tla),
        }
    }
}

/// The minibatch of the last update as its kernels read it, and its noise (row-major, f32).
#[derive(Debug, Clone, PartialEq)]
pub struct Minibatch {
    /// Both critics' inputs `[2B, obs + act]`: the rows' (obs, act), Q1's rows then Q2's.
    pub critic_in: Vec<f32>,
    /// The actor's input at the observations `[B, obs]`.
    pub obs: Vec<f32>,
    /// The actor's input at the next observations `[B, obs]`.
    pub next_obs: Vec<f32>,
    /// `[B]`.
    pub reward: Vec<f32>,
    /// `[B]`: 1 or 0.
    pub terminated: Vec<f32>,
    /// ε′ `[B, act]`.
    pub eps_next: Vec<f32>,
    /// ε `[B, act]`.
    pub eps_cur: Vec<f32>,
}

/// An update's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    /// mean (Q1 − y)² + mean (Q2 − y)².
    pub critic_loss: f64,
    /// mean α log π(ã|s) − min Q(s, ã) (none when the update did not step the actor).
    pub actor_loss: Option<f64>,
    /// α used by the update.
    pub alpha: f64,
    /// −mean log π(a′|s′) (the critic target's samples, which every update draws).
    pub entropy: f64,
    /// mean ½(Q1 + Q2)(s, a).
    pub mean_q: f64,
}

impl UpdateStats {
    fn of(v: &[f32]) -> Self {
        Self {
            critic_loss: v[0] as f64,
            actor_loss: v[1].is_finite().then_some(v[1] as f64),
            alpha: v[2] as f64,
            entropy: v[3] as f64,
            mean_q: v[4] as f64,
        }
    }
}

/// What a submission returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// One per update.
    pub stats: Vec<UpdateStats>,
    /// The action, when an observation was given.
    pub action: Option<Vec<f32>>,
}

/// A forward-only binding.
fn fwd<'a>(params: &'a wgpu::Buffer, input: &'a wgpu::Buffer, output: &'a wgpu::Buffer) -> NetBuffers<'a> {
    NetBuffers { params, grads: None, input, output, grad_output: None, grad_input: None }
}

/// Binds the actor (on s′, on s, on the acting observation), the critics (on (s, a) with weight
/// gradients, on (s, ã) with the input gradient only) and the target critics on (s′, a′).
fn bind_nets(
    ctx: &GpuContext,
    mlp: &MlpKernels,
    s: &SacShapes,
    (al, cl): (&NetLayout, &NetLayout),
    io: &Io,
    (actor, critic, target): (&Trained, &Trained, &wgpu::Buffer),
) -> Result<Nets> {
    let actor_net = |label: &str, rows: usize, b: NetBuffers<'_>| {
        LayeredNet::bind(ctx, mlp, label, al, s.actor_activation, rows, &b)
    };
    let critic_net =
        |label: &str, b: NetBuffers<'_>| LayeredNet::bind(ctx, mlp, label, cl, s.critic_activation, s.batch, &b);
    let b = s.batch;
    Ok(Nets {
        actor_next: actor_net("sac.actor_next", b, fwd(&actor.params, &io.next_in, &io.actor_next))?,
        actor_cur: actor_net(
            "sac.actor_cur",
            b,
            NetBuffers {
                grads: Some(&actor.grads),
                grad_output: Some(&io.dactor),
                ..fwd(&actor.params, &io.cur_in, &io.actor_cur)
            },
        )?,
        actor_act: actor_net("sac.actor_act", 1, fwd(&actor.params, &io.act_obs, &io.act_out))?,
        critic: critic_net(
            "sac.critic",
            NetBuffers {
                grads: Some(&critic.grads),
                grad_output: Some(&io.dq),
                ..fwd(&critic.params, &io.critic_in, &io.q)
            },
        )?,
        critic_pi: critic_net(
            "sac.critic_pi",
            NetBuffers {
                grad_output: Some(&io.dq_pi),
                grad_input: Some(&io.dq_in),
                ..fwd(&critic.params, &io.pi_in, &io.q_pi)
            },
        )?,
        target: critic_net("sac.target", fwd(target, &io.target_in, &io.q_next))?,
    })
}

/// Every sac.wgsl entry point's group-1 bind group (policy and gradient kernels over the
/// buffers of their step).
fn bind_kernels(
    ctx: &GpuContext,
    k: &SacKernels,
    io: &Io,
    critic: &Trained,
    target: &wgpu::Buffer,
    alpha: &Trained,
) -> Vec<(&'static str, wgpu::BindGroup)> {
    let la = &alpha.params;
    vec![
        (
            "sample",
            k.bind(
                ctx,
                "sample",
                &[
                    &io.replay,
                    &io.critic_in,
                    &io.next_in,
                    &io.cur_in,
                    &io.rows,
                    io.model_ring.as_ref().unwrap_or(&io.replay),
                    &io.ring_state,
                ],
            ),
        ),
        (
            "policy_next",
            k.bind(ctx, "policy_next", &[&io.next_in, &io.cur_in, &io.rows, &io.actor_next, &io.target_in]),
        ),
        ("policy_cur", k.bind(ctx, "policy_cur", &[&io.next_in, &io.cur_in, &io.rows, &io.actor_cur, &io.pi_in])),
        ("critic_grad", k.bind(ctx, "critic_grad", &[&io.rows, &io.q, &io.q_next, &io.dq, la])),
        ("actor_q_grad", k.bind(ctx, "actor_q_grad", &[&io.rows, &io.q_pi, &io.dq_pi])),
        ("actor_grad", k.bind(ctx, "actor_grad", &[&io.rows, &io.actor_cur, &io.dq_in, &io.dactor, la])),
        ("imitation_grad", k.bind(ctx, "imitation_grad", &[&io.critic_in, &io.rows, &io.actor_cur, &io.dactor])),
        ("update_stats", k.bind(ctx, "update_stats", &[&io.rows, la, &alpha.grads, &io.stats])),
        ("polyak", k.bind(ctx, "polyak", &[&critic.params, target])),
        ("act", k.bind(ctx, "act", &[&io.act_out, &io.action])),
    ]
}
