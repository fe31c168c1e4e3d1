//! Soft Actor-Critic kernels (`shaders/sac.wgsl`): the minibatch and noise draws, the squashed
//! Gaussian policy, the critic target and loss gradient, the actor loss gradient (and behaviour
//! cloning's, for distillation), the update's statistics and α's gradient, Polyak averaging and
//! the next action. The networks run on
//! `mlp.wgsl` through [`super::net::LayeredNet`]; the f64 twin is `crate::sac::reference`. The
//! random streams' purposes are [`super::purpose`]'s `SAC_*`.

use super::family::{FamilyDecl, Part};
use super::sparse::{EntryBindings, SparseKernels};
use super::{Family, COMMON_WGSL, MAX_ACT, REDUCE_WGSL};
use crate::error::Result;
use crate::gpu::GpuContext;

/// `sac.wgsl`.
pub const SAC_WGSL: &str = include_str!("../../shaders/sac.wgsl");

/// Values per update in the statistics buffer (WGSL `STATS`): critic loss, actor loss, α,
/// entropy, mean Q, then unused.
pub const STATS: usize = 8;

/// Bounds of the actor's log σ (WGSL `LOG_STD_MIN`, `LOG_STD_MAX`).
pub const LOG_STD_MIN: f64 = -5.0;
/// See [`LOG_STD_MIN`].
pub const LOG_STD_MAX: f64 = 2.0;

/// `policy.wgsl`: the squashed Gaussian policy's pieces that `sac.wgsl` and `mbpo.wgsl` share.
pub const POLICY_WGSL: &str = include_str!("../../shaders/policy.wgsl");

/// The family: common definitions, the fixed-order workgroup sum, the policy's pieces,
/// `sac.wgsl`.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "sac",
    &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(REDUCE_WGSL), Part::Wgsl(POLICY_WGSL), Part::Wgsl(SAC_WGSL)],
    &[
        "sample",
        "policy_next",
        "policy_cur",
        "critic_grad",
        "actor_q_grad",
        "actor_grad",
        "imitation_grad",
        "update_stats",
        "polyak",
        "act",
    ],
);

/// Uniform of one update (WGSL `SacParams`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct SacParams {
    pub batch: u32,
    pub obs_dim: u32,
    pub act_dim: u32,
    pub n_stored: u32,
    pub update_lo: u32,
    pub update_hi: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub gamma: f32,
    pub tau: f32,
    pub target_entropy: f32,
    pub learn_alpha: u32,
    pub actor_step: u32,
    pub slot: u32,
    pub n_polyak: u32,
    pub deterministic: u32,
    pub step_lo: u32,
    pub step_hi: u32,
    pub n_real_rows: u32,
    pub model_window: u32,
    pub model_capacity: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
    pub center: [f32; MAX_ACT],
    pub half: [f32; MAX_ACT],
}

impl SacParams {
    /// Parameters with the action bounds' centre and half width set (at most [`MAX_ACT`]
    /// actions; the rest stay 0 and 1).
    pub fn with_bounds(center: &[f64], half: &[f64]) -> Self {
        let mut p = Self { act_dim: center.len() as u32, half: [1.0; MAX_ACT], ..Self::default() };
        for (i, (c, h)) in center.iter().zip(half).take(MAX_ACT).enumerate() {
            p.center[i] = *c as f32;
            p.half[i] = *h as f32;
        }
        p
    }
}

/// Group-1 bindings of each entry point: `(binding, read-only)` (sac.wgsl's table).
pub const BINDINGS: [EntryBindings; 10] = [
    ("sample", &[(0, true), (1, false), (2, false), (3, false), (4, false), (18, true), (19, true)]),
    ("policy_next", &[(2, false), (3, false), (4, false), (5, true), (6, false)]),
    ("policy_cur", &[(2, false), (3, false), (4, false), (5, true), (6, false)]),
    ("critic_grad", &[(4, false), (7, true), (8, true), (9, false), (12, true)]),
    ("actor_q_grad", &[(4, false), (7, true), (9, false)]),
    ("actor_grad", &[(4, false), (5, true), (10, true), (11, false), (12, true)]),
    ("imitation_grad", &[(1, false), (4, false), (5, true), (11, false)]),
    ("update_stats", &[(4, false), (12, true), (13, false), (14, false)]),
    ("polyak", &[(15, true), (16, false)]),
    ("act", &[(5, true), (17, false)]),
];

/// Every entry point of `sac.wgsl`, each with its own group-1 layout.
pub type SacKernels = SparseKernels;

/// Builds (or takes from the context's cache) every pipeline of `sac.wgsl`.
pub fn sac_kernels(ctx: &GpuContext) -> Result<SacKernels> {
    SparseKernels::new::<SacParams>(ctx, Family::Sac, None, &BINDINGS, &["update_stats"])
}
