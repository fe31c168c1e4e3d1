//! The kernel families of the table: what each case checks, by name (`rng.philox`,
//! `mlp.fused`, ...) in reports, and which families run only on some adapters.

use serde::Serialize;

use crate::error::Error;

/// A kernel family of the conformance table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `rng.philox`: Philox 4×32-10 words, bit for bit.
    RngPhilox,
    /// `rng.feistel`: the Feistel permutations, bit for bit and bijective.
    RngFeistel,
    /// `rng.normal`: Box–Muller normals, softplus and the log-variance clamp.
    RngNormal,
    /// `rng.statistics`: the samplers' moments.
    RngStatistics,
    /// `mlp.tiled`: the tiled layer kernel.
    MlpTiled,
    /// `mlp.rows`: the row layer kernel.
    MlpRows,
    /// `mlp.fused`: the fused whole-network kernel, in each layout.
    MlpFused,
    /// `env`: the environments' WGSL rewards and terminations.
    Env,
    /// `plan.analytic`: plans through the environments' WGSL dynamics.
    PlanAnalytic,
    /// `plan.ensemble`: plans through learned ensembles.
    PlanEnsemble,
    /// `plan.kinds`: two consecutive plans of each planner kind.
    PlanKinds,
    /// `train.loss`: member losses and gradients.
    TrainLoss,
    /// `train.adam`: Adam steps.
    TrainAdam,
    /// `sac`: whole SAC updates (draws, losses, gradients, Adam, α, Polyak).
    Sac,
    /// `mbpo.rollout`: MBPO's branched rollout batches (start states, actions, elite choice,
    /// sampled predictions, rewards, termination, the model ring's FIFO placement).
    MbpoRollout,
    /// `mlp.coop16`: the tensor-core network kernel (optional: see [`Family::needs`]).
    MlpCoop16,
}

impl Family {
    /// Every family: the portable ones in the table's order, then the optional ones.
    pub const ALL: [Family; 16] = [
        Family::RngPhilox,
        Family::RngFeistel,
        Family::RngNormal,
        Family::RngStatistics,
        Family::MlpTiled,
        Family::MlpRows,
        Family::MlpFused,
        Family::Env,
        Family::PlanAnalytic,
        Family::PlanEnsemble,
        Family::PlanKinds,
        Family::TrainLoss,
        Family::TrainAdam,
        Family::Sac,
        Family::MbpoRollout,
        Family::MlpCoop16,
    ];

    /// The families every adapter runs ([`crate::verify::cases`]), in the table's order.
    pub const PORTABLE: [Family; 15] = {
        let mut v = [Family::RngPhilox; 15];
        let mut i = 0;
        while i < 15 {
            v[i] = Family::ALL[i];
            i += 1;
        }
        v
    };

    /// The families run only where the adapter has what they need
    /// ([`crate::verify::optional_cases`]).
    pub const OPTIONAL: [Family; 1] = [Family::MlpCoop16];

    /// The name in reports, e.g. `"mlp.fused"`.
    pub const fn name(self) -> &'static str {
        match self {
            Family::RngPhilox => "rng.philox",
            Family::RngFeistel => "rng.feistel",
            Family::RngNormal => "rng.normal",
            Family::RngStatistics => "rng.statistics",
            Family::MlpTiled => "mlp.tiled",
            Family::MlpRows => "mlp.rows",
            Family::MlpFused => "mlp.fused",
            Family::Env => "env",
            Family::PlanAnalytic => "plan.analytic",
            Family::PlanEnsemble => "plan.ensemble",
            Family::PlanKinds => "plan.kinds",
            Family::TrainLoss => "train.loss",
            Family::TrainAdam => "train.adam",
            Family::Sac => "sac",
            Family::MbpoRollout => "mbpo.rollout",
            Family::MlpCoop16 => "mlp.coop16",
        }
    }

    /// What an adapter needs to run an optional family; `None` for a portable one.
    pub const fn needs(self) -> Option<&'static str> {
        match self {
            Family::MlpCoop16 => {
                Some("16×16×16 cooperative matrices with f16 operands and f32 accumulators, one subgroup size")
            }
            _ => None,
        }
    }
}

/// The names of [`Family::PORTABLE`], in order (for matching report lines as text).
pub const FAMILIES: [&str; 15] = {
    let mut v = [""; 15];
    let mut i = 0;
    while i < 15 {
        v[i] = Family::PORTABLE[i].name();
        i += 1;
    }
    v
};

impl std::fmt::Display for Family {
    /// The name, padded as asked (`{:<14}`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for Family {
    type Err = Error;

    /// The family named `s` (its [`Family::name`]).
    fn from_str(s: &str) -> Result<Self, Error> {
        Family::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
            Error::InvalidInput(format!("no verification family named {s:?} (one of {})", names.join(", ")))
        })
    }
}

impl Serialize for Family {
    /// As its name.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_parsed_from_its_name_and_serialized_as_it() {
        for f in Family::ALL {
            assert_eq!(f.name().parse::<Family>().unwrap(), f);
            assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{}\"", f.name()));
            assert_eq!(format!("{f:<14}|"), format!("{:<14}|", f.name()));
        }
        assert!("mlp.nonexistent".parse::<Family>().is_err());
        assert!(Family::PORTABLE.iter().all(|f| f.needs().is_none()));
        assert!(Family::OPTIONAL.iter().all(|f| f.needs().is_some() && !Family::PORTABLE.contains(f)));
        assert_eq!(FAMILIES[6], "mlp.fused");
    }
}
