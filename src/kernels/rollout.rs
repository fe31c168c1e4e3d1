//! Rollout kernels (`shaders/rollout.wgsl`, `shaders/analytic.wgsl`): particles through a
//! learned ensemble with trajectory sampling, or through the task's own WGSL dynamics. The
//! per-kernel references (which member a particle uses) live here; whole-rollout references,
//! which need a model and a task, are one layer up in `planner::reference`.

use serde::{Deserialize, Serialize};

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

    /// Member evaluating local particle `j` of plan `b` at step `t` (`prepare_inputs`).
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
