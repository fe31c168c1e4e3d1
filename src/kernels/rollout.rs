//! Rollout kernels (`shaders/rollout.wgsl`, `shaders/analytic.wgsl`): particles through a
//! learned ensemble with trajectory sampling, or through the task's own WGSL dynamics. The
//! per-kernel references (which member a particle uses) live here; whole-rollout references,
//! which need a model and a task, are one layer up in `planner::reference`.

use serde::{Deserialize, Serialize};

use super::family::{FamilyDecl, Part, TaskWgsl};
use super::{
    Family, PlanLayouts, PlanParams, ANALYTIC_WGSL, COMMON_WGSL, ENV_EVAL_WGSL, PARTICLES_WGSL, ROLLOUT_LAYOUT_WGSL,
    ROLLOUT_WGSL, WG_SIZE_OVERRIDE,
};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// The buffers of group 1 of `rollout.wgsl` and `analytic.wgsl`, in binding order.
pub struct RolloutBuffers<'a> {
    /// `[n_batch, obs_dim]` start observations.
    pub obs: &'a wgpu::Buffer,
    /// `[n_particles, obs_dim]` particle states.
    pub state: &'a wgpu::Buffer,
    /// `[n_particles, 2]`: return and alive flag of each particle.
    pub track: &'a wgpu::Buffer,
    /// `[n_batch · population, horizon, act_dim]` candidate actions.
    pub actions: &'a wgpu::Buffer,
    /// Input mean, input std, max and min log-variance of the model, concatenated.
    pub model_consts: &'a wgpu::Buffer,
    /// `[slots, in_dim]` normalised model inputs.
    pub x0: &'a wgpu::Buffer,
    /// `[n_particles]` slot of each particle at this step.
    pub slot_of: &'a wgpu::Buffer,
    /// `[slots, out_cols]` model outputs.
    pub out: &'a wgpu::Buffer,
}

/// The group-1 bind group of the rollout families over `b`.
pub fn bind_rollout(ctx: &GpuContext, layouts: &PlanLayouts, label: &str, b: &RolloutBuffers<'_>) -> wgpu::BindGroup {
    super::bind_buffers(
        ctx,
        label,
        &layouts.rollout,
        &[b.obs, b.state, b.track, b.actions, b.model_consts, b.x0, b.slot_of, b.out],
    )
}

/// `rollout.wgsl` with a task's WGSL functions: trajectory-sampling rollouts of a learned ensemble.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "rollout",
    &[
        Part::Wgsl(COMMON_WGSL),
        Part::Task,
        Part::Wgsl(ROLLOUT_LAYOUT_WGSL),
        Part::Wgsl(PARTICLES_WGSL),
        Part::Wgsl(ROLLOUT_WGSL),
    ],
    &["begin_rollout", "propagate"],
);

/// `analytic.wgsl` with a task's WGSL functions: rollouts with the task's own dynamics.
pub const ANALYTIC_FAMILY: FamilyDecl = FamilyDecl::portable(
    "analytic",
    &[Part::Wgsl(COMMON_WGSL), Part::Task, Part::Wgsl(ROLLOUT_LAYOUT_WGSL), Part::Wgsl(ANALYTIC_WGSL)],
    &["rollout_analytic"],
);

/// `env_eval.wgsl` with a task's WGSL functions: its reward and termination on given transitions.
pub const ENV_EVAL_FAMILY: FamilyDecl = FamilyDecl::portable(
    "env_eval",
    &[Part::Wgsl(COMMON_WGSL), Part::Task, Part::Wgsl(ROLLOUT_LAYOUT_WGSL), Part::Wgsl(ENV_EVAL_WGSL)],
    &["evaluate_env"],
);

/// The pipelines of `rollout.wgsl` for one task's WGSL functions (a learned ensemble).
pub struct RolloutKernels {
    /// `begin_rollout`: one invocation per particle and step (TS1) or particle (TS∞,
    /// expectation).
    pub begin: wgpu::ComputePipeline,
    /// `propagate`: one invocation per particle.
    pub propagate: wgpu::ComputePipeline,
}

impl RolloutKernels {
    /// Builds (or takes from the context's cache) the pipelines for the task named `task`
    /// whose WGSL functions are `task_wgsl`.
    pub fn new(ctx: &GpuContext, layouts: &PlanLayouts, task: &str, task_wgsl: &str) -> Result<Self> {
        let task = Some(TaskWgsl { name: task, wgsl: task_wgsl });
        let pipe = |entry: &str| {
            Family::Rollout.pipeline(ctx, task, entry, &[&layouts.params, &layouts.rollout], WG_SIZE_OVERRIDE)
        };
        Ok(Self { begin: pipe("begin_rollout")?, propagate: pipe("propagate")? })
    }
}

/// The number of transitions `before` / `act` / `next` hold, each array checked: sizes within
/// the WGSL limits, whole rows of the same count, every value finite.
fn check_transitions(obs_dim: usize, act_dim: usize, before: &[f32], act: &[f32], next: &[f32]) -> Result<usize> {
    if obs_dim == 0 || act_dim == 0 || obs_dim > super::MAX_OBS || act_dim > super::MAX_ACT {
        return Err(Error::InvalidInput(format!(
            "obs_dim {obs_dim} and act_dim {act_dim} must lie in 1..={} and 1..={}",
            super::MAX_OBS,
            super::MAX_ACT
        )));
    }
    let n = before.len() / obs_dim;
    if before.len() != n * obs_dim || next.len() != n * obs_dim || act.len() != n * act_dim || n == 0 {
        return Err(Error::InvalidInput(format!(
            "transitions: {} / {} / {} values do not form n > 0 rows of obs {obs_dim} / act {act_dim} / obs {obs_dim}",
            before.len(),
            act.len(),
            next.len()
        )));
    }
    if [before, act, next].iter().any(|v| v.iter().any(|x| !x.is_finite())) {
        return Err(Error::InvalidInput("transitions hold a non-finite value".into()));
    }
    Ok(n)
}

/// A task's `env_reward` and `env_terminated` (its WGSL `task_wgsl`, named `task`) on `n`
/// transitions `before` / `act` / `next` (`[n, obs_dim]`, `[n, act_dim]`, `[n, obs_dim]`):
/// `(reward, terminated)` of each, computed by `env_eval.wgsl` on the device.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_env(
    ctx: &GpuContext,
    task: &str,
    task_wgsl: &str,
    obs_dim: usize,
    act_dim: usize,
    before: &[f32],
    act: &[f32],
    next: &[f32],
) -> Result<Vec<(f32, bool)>> {
    let n = check_transitions(obs_dim, act_dim, before, act, next)?;
    let layouts = PlanLayouts::new(ctx)?;
    let pipe = Family::EnvEval.pipeline(
        ctx,
        Some(TaskWgsl { name: task, wgsl: task_wgsl }),
        "evaluate_env",
        &[&layouts.params, &layouts.rollout],
        WG_SIZE_OVERRIDE,
    )?;
    let p = PlanParams {
        n_batch: 1,
        population: n as u32,
        particles: 1,
        horizon: 1,
        obs_dim: obs_dim as u32,
        act_dim: act_dim as u32,
        ..Default::default()
    };
    let params = ctx.uniform_buffer_init("env_eval.params", &[p]);
    let params_bg = super::bind_params::<PlanParams>(ctx, "env_eval.params", &layouts.params, &params);
    let (b, s, a) = (
        ctx.storage_buffer_init("env_eval.before", before),
        ctx.storage_buffer_init("env_eval.next", next),
        ctx.storage_buffer_init("env_eval.act", act),
    );
    let track = ctx.storage_buffer("env_eval.track", 2 * n);
    // Bindings the entry point does not use; read-only and read-write ones need their own.
    let (unused_r, unused_w1, unused_w2) = (
        ctx.storage_buffer("env_eval.unused", 1),
        ctx.storage_buffer("env_eval.unused", 1),
        ctx.storage_buffer("env_eval.unused", 1),
    );
    let bg = bind_rollout(
        ctx,
        &layouts,
        "env_eval",
        &RolloutBuffers {
            obs: &b,
            state: &s,
            track: &track,
            actions: &a,
            model_consts: &unused_r,
            x0: &unused_w1,
            slot_of: &unused_w2,
            out: &unused_r,
        },
    );
    let grid = crate::gpu::grid_1d(n as u32, super::WG_SIZE, ctx.limits().max_compute_workgroups_per_dimension)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        super::dispatch(&mut pass, &pipe, &[(&params_bg, &[0]), (&bg, &[])], (grid.0, grid.1, 1));
    }
    ctx.queue.submit(Some(enc.finish()));
    let out = ctx.read_buffer::<f32>(&track, 2 * n)?;
    Ok(out.chunks_exact(2).map(|c| (c[0], c[1] != 0.0)).collect())
}

/// The pipeline of `analytic.wgsl` for one task: candidates rolled out with the task's own
/// `env_step` (one particle each).
pub struct AnalyticKernels {
    /// `rollout_analytic`: one invocation per candidate.
    pub rollout: wgpu::ComputePipeline,
}

impl AnalyticKernels {
    /// Builds (or takes from the context's cache) the pipeline for the task named `task`.
    pub fn new(ctx: &GpuContext, layouts: &PlanLayouts, task: &str, task_wgsl: &str) -> Result<Self> {
        let rollout = Family::Analytic.pipeline(
            ctx,
            Some(TaskWgsl { name: task, wgsl: task_wgsl }),
            "rollout_analytic",
            &[&layouts.params, &layouts.rollout],
            WG_SIZE_OVERRIDE,
        )?;
        Ok(Self { rollout })
    }
}

/// How particles move through the ensemble (PETS §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// Each particle draws a random member at every step (default).
    #[default]
    Ts1,
    /// Each particle keeps one member for the whole horizon.
    Tsinf,
    /// Every particle is propagated with the ensemble's mean prediction.
    Expectation,
}

impl Propagation {
    /// The value of `PlanParams.propagation` (WGSL `PROP_*`).
    pub fn code(self) -> u32 {
        match self {
            Propagation::Ts1 => 0,
            Propagation::Tsinf => 1,
            Propagation::Expectation => 2,
        }
    }
}

/// f64 CPU reference of the per-particle choices of `rollout.wgsl`.
pub mod reference {
    use super::Propagation;
    use crate::kernels::{purpose, rng};

    /// Member evaluating local particle `j` of plan `b` at step `t` (`begin_rollout`).
    #[allow(clippy::too_many_arguments)]
    pub fn member_of(
        j: u32,
        pk: u32,
        n_members: u32,
        b: u32,
        call: u32,
        iteration: u32,
        t: u32,
        propagation: Propagation,
        seed: u64,
    ) -> u32 {
        let sub = if propagation == Propagation::Tsinf { 0xffff } else { t };
        let ctr_hi = [b, call, rng::tag(purpose::PERMUTE, iteration, sub)];
        let ls = rng::permute_index(j, pk, rng::feistel_half_bits(pk), ctr_hi, rng::key_of(seed));
        ls * n_members / pk
    }

    /// Random stream position of one rollout (plan `b`, call, iteration, seed).
    #[derive(Debug, Clone, Copy)]
    pub struct Stream {
        /// Plan index in the batch.
        pub b: u32,
        /// Plan call counter.
        pub call: u32,
        /// CEM iteration.
        pub iteration: u32,
        /// Planner seed.
        pub seed: u64,
    }
}
