//! MBPO's branched rollout kernels (`shaders/mbpo.wgsl`): start states drawn from the real
//! ring, the policy's sampled action and the ensemble's inputs, the elite's sampled prediction
//! with the task's reward and termination, each live rollout's place in the model ring, and the
//! transitions stored there. The actor and the ensemble run on `mlp.wgsl` through
//! [`super::net::LayeredNet`]; the f64 twin is `crate::mbpo::reference`. The random streams'
//! purposes are [`super::purpose`]'s `MBPO_*`.

use super::family::{FamilyDecl, Part, TaskWgsl};
use super::sac::POLICY_WGSL;
use super::sparse::{EntryBindings, SparseKernels};
use super::{Family, COMMON_WGSL, MAX_ACT};
use crate::error::Result;
use crate::gpu::GpuContext;

/// `mbpo.wgsl`.
pub const MBPO_WGSL: &str = include_str!("../../shaders/mbpo.wgsl");

/// Invocations of `rollout_rank`'s one workgroup (WGSL `RANK_WG`).
pub const RANK_WORKGROUP: usize = 256;

/// The family: common definitions, the task's reward and termination, the policy's pieces,
/// `mbpo.wgsl`.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "mbpo",
    &[Part::Wgsl(COMMON_WGSL), Part::Task, Part::Wgsl(POLICY_WGSL), Part::Wgsl(MBPO_WGSL)],
    &["rollout_start", "rollout_policy", "rollout_model", "rollout_rank", "rollout_store"],
);

/// Uniform of one rollout step (WGSL `RolloutParams`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct RolloutParams {
    pub n_rollouts: u32,
    pub obs_dim: u32,
    pub act_dim: u32,
    pub model_out: u32,
    pub out_cols: u32,
    pub n_members: u32,
    pub n_elites: u32,
    pub flags: u32,
    pub n_real: u32,
    pub capacity: u32,
    pub batch_lo: u32,
    pub batch_hi: u32,
    pub step: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub first: u32,
    pub rows: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
    pub center: [f32; MAX_ACT],
    pub half: [f32; MAX_ACT],
}

/// Group-1 bindings of each entry point: `(binding, read-only)` (mbpo.wgsl's table).
pub const BINDINGS: [EntryBindings; 5] = [
    ("rollout_start", &[(0, true), (1, false), (2, false)]),
    ("rollout_policy", &[(1, false), (3, true), (4, false), (5, false), (6, true)]),
    ("rollout_model", &[(1, false), (2, false), (4, false), (6, true), (7, true), (8, true), (9, false)]),
    ("rollout_rank", &[(2, false), (10, false), (11, false)]),
    ("rollout_store", &[(2, false), (9, false), (10, false), (12, false)]),
];

/// Every entry point of `mbpo.wgsl` for one task, each with its own group-1 layout.
pub type MbpoKernels = SparseKernels;

/// Builds (or takes from the context's cache) every pipeline of `mbpo.wgsl` with `task`'s
/// reward and termination.
pub fn mbpo_kernels(ctx: &GpuContext, task: TaskWgsl<'_>) -> Result<MbpoKernels> {
    SparseKernels::new::<RolloutParams>(ctx, Family::Mbpo, Some(task), &BINDINGS, &["rollout_rank"])
}
