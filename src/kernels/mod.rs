//! WGSL kernels, one Rust module per shader family, each with an f64 CPU reference of the
//! same maths (`reference` submodules).
//!
//! # Layouts (one vocabulary everywhere)
//! - Particles: `n = (b · population + c) · particles + k` for plan `b` of a batch, candidate `c`
//!   and particle `k`; `N = n_batch · population · particles`.
//! - Candidate actions: `actions[((b · population + c) · horizon + t) · act_dim + a]`.
//! - Plan distribution: `mean[(b · horizon + t) · act_dim + a]`, same for `var`.
//! - Ensemble weights: `weight[l][(m · in + i) · out + o]`, biases `bias[l][m · out + o]`.
//!
//! # Slots
//! The model is evaluated on *slots*: rows of a member-major matrix, so that every 64-row tile
//! of the matmul belongs to one member. Per plan there are `L` local slots (`population ·
//! particles`, or `members · population · particles` for expectation propagation). Member `m`
//! owns local slots `[ceil(m·L/E), ceil((m+1)·L/E))` of every plan; globally its block is those
//! local slots of plan 0, then of plan 1, ... (see [`slot_of_local`]). Trajectory sampling
//! assigns each particle a local slot through a keyed Feistel permutation: TS1 re-draws it at
//! every step, TS∞ once per iteration.

pub mod adam;
pub mod cem;
pub mod family;
pub mod loss;
pub mod mbpo;
pub mod mlp;
pub mod mlp_coop;
pub mod mlp_fused;
pub mod mlp_grads;
pub mod model_step;
pub mod net;
pub mod rng;
pub mod rollout;
pub mod sac;
pub mod sparse;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

pub use family::{
    custom_pipeline, is_builtin_task, runtime_checks_off, shaders, Family, FamilyDecl, Part, Requires, ShaderSource,
    TaskWgsl, WG_SIZE_OVERRIDE,
};

/// Largest observation size an environment function handles (WGSL `MAX_OBS`).
pub const MAX_OBS: usize = 32;
/// Largest action size an environment function handles (WGSL `MAX_ACT`).
pub const MAX_ACT: usize = 8;
/// Workgroup size of the one-dimensional kernels (the `WG_SIZE` override).
pub const WG_SIZE: u32 = 64;

/// The problems of an observation and action size outside `1..=MAX_OBS` and `1..=MAX_ACT`
/// (the WGSL arrays' sizes), as config errors naming `{prefix}obs_dim` and `{prefix}act_dim`.
pub fn check_dims(prefix: &str, obs_dim: usize, act_dim: usize) -> Vec<Error> {
    [("obs_dim", obs_dim, MAX_OBS), ("act_dim", act_dim, MAX_ACT)]
        .into_iter()
        .filter(|(_, v, max)| *v == 0 || v > max)
        .map(|(key, v, max)| Error::config(format!("{prefix}{key}"), format!("{v} is outside 1..={max}")))
        .collect()
}

/// `common.wgsl`: shared structs, Philox, softplus, the log-variance clamp, slot helpers.
pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");
/// `mlp.wgsl`: ensemble linear layers.
pub const MLP_WGSL: &str = include_str!("../../shaders/mlp.wgsl");
/// `tile.wgsl`: the 64×64 register-tiled product of `mlp.wgsl` and `mlp_grads.wgsl`.
pub const TILE_WGSL: &str = include_str!("../../shaders/tile.wgsl");
/// `mlp_grads.wgsl`: every layer's weight and bias gradients in one dispatch.
pub const MLP_GRADS_WGSL: &str = include_str!("../../shaders/mlp_grads.wgsl");
/// `mlp_rows.wgsl`: ensemble layer with uniform weights, one invocation per row (CPU rasterisers).
pub const MLP_ROWS_WGSL: &str = include_str!("../../shaders/mlp_rows.wgsl");
/// `mlp_fused.wgsl`: every layer of the ensemble network on a block of rows in one workgroup
/// (`fused_layers`), before the part with the entry point ([`MLP_FUSED_NET_WGSL`] or
/// [`MODEL_STEP_WGSL`]).
pub const MLP_FUSED_WGSL: &str = include_str!("../../shaders/mlp_fused.wgsl");
/// `mlp_fused_net.wgsl`: the whole ensemble network in one dispatch (the planner's network on
/// GPUs, the trainer's forward pass and input-gradient chain), after [`MLP_FUSED_WGSL`].
pub const MLP_FUSED_NET_WGSL: &str = include_str!("../../shaders/mlp_fused_net.wgsl");
/// `model_step.wgsl`: a whole model step of the planner (network, sampled prediction, the
/// particles' next states, rewards and inputs) in one dispatch: the bindings and the step after
/// the layers, before the network's step part ([`MODEL_STEP_FUSED_WGSL`], [`MODEL_STEP_COOP_WGSL`]).
pub const MODEL_STEP_WGSL: &str = include_str!("../../shaders/model_step.wgsl");
/// `model_step_fused.wgsl`: the model step on [`MLP_FUSED_WGSL`]'s layers.
pub const MODEL_STEP_FUSED_WGSL: &str = include_str!("../../shaders/model_step_fused.wgsl");
/// `model_step_coop.wgsl`: the model step on [`MLP_COOP_WGSL`]'s layers.
pub const MODEL_STEP_COOP_WGSL: &str = include_str!("../../shaders/model_step_coop.wgsl");
/// `particles.wgsl`: a particle's slots, inputs, sampled prediction and step, shared by
/// [`ROLLOUT_WGSL`] and [`MODEL_STEP_WGSL`].
pub const PARTICLES_WGSL: &str = include_str!("../../shaders/particles.wgsl");
/// `mlp_coop.wgsl`: every layer of the fused network on 16×16×16 cooperative matrices (f16
/// operands, `coop_layers`), after [`mlp_coop::DIRECTIVES`], before the part with the entry
/// point ([`MLP_COOP_NET_WGSL`] or [`MODEL_STEP_COOP_WGSL`]).
pub const MLP_COOP_WGSL: &str = include_str!("../../shaders/mlp_coop.wgsl");
/// `mlp_coop_net.wgsl`: the network on cooperative matrices in one dispatch.
pub const MLP_COOP_NET_WGSL: &str = include_str!("../../shaders/mlp_coop_net.wgsl");
/// `rollout_layout.wgsl`: the rollout layout's binding declarations, before each family using it.
pub const ROLLOUT_LAYOUT_WGSL: &str = include_str!("../../shaders/rollout_layout.wgsl");
/// `rollout.wgsl`: trajectory-sampling rollout of a learned ensemble.
pub const ROLLOUT_WGSL: &str = include_str!("../../shaders/rollout.wgsl");
/// `env_eval.wgsl`: a task's reward and termination on given transitions.
pub const ENV_EVAL_WGSL: &str = include_str!("../../shaders/env_eval.wgsl");
/// `analytic.wgsl`: rollout with the environment's own WGSL dynamics.
pub const ANALYTIC_WGSL: &str = include_str!("../../shaders/analytic.wgsl");
/// `cem.wgsl`: sampling, elite selection and the distribution update.
pub const CEM_WGSL: &str = include_str!("../../shaders/cem.wgsl");
/// `reduce.wgsl`: the fixed-order workgroup sum of the loss and optimiser reductions.
pub const REDUCE_WGSL: &str = include_str!("../../shaders/reduce.wgsl");
/// `loss.wgsl`: minibatch gathering, Gaussian NLL / MSE and their gradients.
pub const LOSS_WGSL: &str = include_str!("../../shaders/loss.wgsl");
/// `adam.wgsl`: gradient norm and the Adam update.
pub const ADAM_WGSL: &str = include_str!("../../shaders/adam.wgsl");

/// `env_cartpole.wgsl`: continuous cartpole's reward, termination and dynamics (twin of `env::Cartpole`).
pub const ENV_CARTPOLE_WGSL: &str = include_str!("../../shaders/env_cartpole.wgsl");
/// `env_pendulum.wgsl`: pendulum swing-up's reward and dynamics (twin of `env::Pendulum`).
pub const ENV_PENDULUM_WGSL: &str = include_str!("../../shaders/env_pendulum.wgsl");
/// `env_quadratic.wgsl`: the synthetic quadratic task (twin of `env::Quadratic`).
pub const ENV_QUADRATIC_WGSL: &str = include_str!("../../shaders/env_quadratic.wgsl");
/// The built-in environment functions, by name: every rollout family is validated with each.
pub const ENV_SOURCES: [(&str, &str); 3] =
    [("cartpole", ENV_CARTPOLE_WGSL), ("pendulum", ENV_PENDULUM_WGSL), ("quadratic", ENV_QUADRATIC_WGSL)];

/// The uniform shared by the rollout, analytic and CEM families (WGSL `PlanParams`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct PlanParams {
    pub n_batch: u32,
    pub population: u32,
    pub particles: u32,
    pub horizon: u32,
    pub obs_dim: u32,
    pub act_dim: u32,
    pub n_members: u32,
    pub local_slots: u32,
    pub n_elites: u32,
    pub iteration: u32,
    pub t: u32,
    pub call: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub propagation: u32,
    pub flags: u32,
    pub alpha: f32,
    pub model_out: u32,
    pub in_dim: u32,
    pub sampled: u32,
    pub keep: u32,
    pub archive: u32,
    pub sigma: f32,
    pub gamma: f32,
    pub beta: f32,
    pub noise_beta: f32,
    pub _pad0: u32,
}

/// The uniform of the training families (WGSL `TrainParams`), one entry per minibatch step.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct TrainParams {
    pub n_members: u32,
    pub batch: u32,
    pub valid_rows: u32,
    pub in_dim: u32,
    pub model_out: u32,
    pub probabilistic: u32,
    pub learn_bounds: u32,
    pub step: u32,
    pub n_steps: u32,
    pub bounds_offset: u32,
    pub min_offset: u32,
    pub n_params: u32,
    pub n_chunks: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub clip_norm: f32,
    pub logvar_penalty: f32,
    pub objective: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// `PlanParams.flags`: the model is probabilistic (sample mean + σ·ε).
pub const FLAG_SAMPLE_NOISE: u32 = 1;
/// `PlanParams.flags`: the model's last output is the reward.
pub const FLAG_LEARNED_REWARD: u32 = 2;
/// `PlanParams.flags`: clipped instead of truncated normal candidates.
pub const FLAG_CLIPPED_NORMAL: u32 = 4;
/// `PlanParams.flags`: random shooting, candidates uniform within the bounds.
pub const FLAG_UNIFORM: u32 = 8;
/// `PlanParams.flags`: iCEM's extras are archived elites shifted one step (first iteration).
pub const FLAG_EXTRAS_SHIFTED: u32 = 16;
/// `PlanParams.flags`: iCEM's extras are archived elites as they are (middle iterations).
pub const FLAG_EXTRAS_KEPT: u32 = 32;
/// `PlanParams.flags`: iCEM's one extra is the current mean (last iteration).
pub const FLAG_EXTRAS_MEAN: u32 = 64;

/// Random-stream purposes (top 4 bits of the fourth Philox counter word).
pub mod purpose {
    /// Candidate sampling.
    pub const SAMPLE: u32 = 1;
    /// Model noise (mean + σ·ε).
    pub const NOISE: u32 = 2;
    /// Particle → slot permutation.
    pub const PERMUTE: u32 = 3;
    /// iCEM: which archived elites are kept, and the shifted elites' new last action.
    pub const ELITE: u32 = 4;
    /// SAC: the minibatch's replay indices.
    pub const SAC_INDEX: u32 = 5;
    /// SAC: the noise of the next actions a′ ~ π(·|s′).
    pub const SAC_NEXT: u32 = 6;
    /// SAC: the noise of the current actions ã ~ π(·|s).
    pub const SAC_CUR: u32 = 7;
    /// SAC: the noise of the environment's actions.
    pub const SAC_ACT: u32 = 8;
    /// MBPO: a rollout's start state in the real ring.
    pub const MBPO_START: u32 = 9;
    /// MBPO: the noise of a rollout's actions.
    pub const MBPO_ACT: u32 = 10;
    /// MBPO: the elite a rollout steps through.
    pub const MBPO_MEMBER: u32 = 11;
    /// MBPO: the noise of the model's sampled predictions.
    pub const MBPO_NOISE: u32 = 12;
}

/// First local slot of member `m` (`ceil(m·L/E)`).
pub fn local_block_start(m: u32, local_slots: u32, n_members: u32) -> u32 {
    (m * local_slots).div_ceil(n_members)
}

/// Global slot of local slot `ls` of plan `b` (see the module docs).
pub fn slot_of_local(ls: u32, b: u32, n_batch: u32, local_slots: u32, n_members: u32) -> (u32, u32) {
    let m = ls * n_members / local_slots;
    let start = local_block_start(m, local_slots, n_members);
    let count = local_block_start(m + 1, local_slots, n_members) - start;
    (m, n_batch * start + b * count + (ls - start))
}

pub use crate::gpu::dispatch;

/// Refuses a dispatch of `kernel` where one of its grid dimensions (`what`, workgroups) exceeds
/// the device's workgroups per dimension.
pub fn check_grid(ctx: &GpuContext, kernel: &str, dims: &[(&str, u32)]) -> Result<()> {
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    match dims.iter().find(|(_, v)| *v > max) {
        Some((what, v)) => Err(Error::LimitExceeded {
            what: format!("{kernel}: {what}"),
            requested: *v as u64,
            limit: "max_compute_workgroups_per_dimension",
            max: max as u64,
            hint: "lower population × particles × batch size",
        }),
        None => Ok(()),
    }
}

/// Layout entry for a storage buffer at `binding`.
pub fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Layout entry for a uniform buffer at `binding`.
pub fn uniform_entry(binding: u32, dynamic: bool, size: u64) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: dynamic,
            min_binding_size: wgpu::BufferSize::new(size),
        },
        count: None,
    }
}

/// Layout of storage buffers at bindings 0, 1, 2, ... (`read_only[i]` for binding i), from the
/// context's cache.
pub fn storage_layout(ctx: &GpuContext, label: &str, read_only: &[bool]) -> Result<wgpu::BindGroupLayout> {
    let entries: Vec<_> = read_only.iter().enumerate().map(|(i, r)| storage_entry(i as u32, *r)).collect();
    ctx.bind_group_layout(label, &entries)
}

/// Layout of one uniform `T` at binding 0 with a dynamic offset: the per-dispatch parameters
/// (`PlanParams`, `TrainParams`) that a plan or an epoch writes once, one entry per step.
pub fn params_layout<T>(ctx: &GpuContext, label: &str) -> Result<wgpu::BindGroupLayout> {
    ctx.bind_group_layout(label, &[uniform_entry(0, true, std::mem::size_of::<T>() as u64)])
}

/// Bind group of `buffer` as an array of `T` uniforms addressed by dynamic offsets (see
/// [`params_layout`]).
pub fn bind_params<T>(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffer: &wgpu::Buffer,
) -> wgpu::BindGroup {
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: 0,
                size: wgpu::BufferSize::new(std::mem::size_of::<T>() as u64),
            }),
        }],
    })
}

/// Bytes between consecutive entries of a dynamic-offset uniform array of `T`.
pub fn params_stride<T>(ctx: &GpuContext) -> u64 {
    let align = ctx.limits().min_uniform_buffer_offset_alignment.max(1) as u64;
    (std::mem::size_of::<T>() as u64).div_ceil(align) * align
}

/// Bind group of whole buffers, bound in order 0, 1, 2, ...
pub fn bind_buffers(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
}

/// The bind group layouts shared by the plan families: group 0 is `PlanParams` (dynamic
/// offset, one entry per iteration and step), group 1 the family's buffers.
#[derive(Clone)]
pub struct PlanLayouts {
    /// Group 0: `PlanParams` with a dynamic offset.
    pub params: wgpu::BindGroupLayout,
    /// Group 1 of rollout.wgsl / analytic.wgsl.
    pub rollout: wgpu::BindGroupLayout,
    /// Group 1 of cem.wgsl.
    pub cem: wgpu::BindGroupLayout,
}

impl PlanLayouts {
    /// The layouts (from the context's cache).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(Self {
            params: params_layout::<PlanParams>(ctx, "plan.params")?,
            // obs, state, track, actions, model_consts, x0, slot_of, out
            rollout: storage_layout(ctx, "plan.rollout", &[true, false, false, true, true, false, false, true])?,
            // mean, var, bounds, actions, track, cand_returns, elites, plan_stats
            cem: storage_layout(ctx, "plan.cem", &[false, false, true, false, true, false, false, false])?,
        })
    }
}
