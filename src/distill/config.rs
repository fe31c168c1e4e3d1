//! A distillation's settings (`lookahead distill`): the network the planner is distilled into
//! (`[policy]`: a SAC actor, so that `sac --init-policy` can fine-tune it), its training
//! (`[train]`: behaviour cloning's minibatches, Adam, updates per iteration) and the data
//! (`[dagger]`: iterations, episodes per iteration, evaluation episodes, and whether the
//! episodes after the first iteration follow the policy — DAgger — or the planner — plain
//! behaviour cloning, the comparison). The PETS run distilled from is not part of the config:
//! its folder is the command's `--run`, and a resumed distillation checks it is the same.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sac::config::{widths_problem, MAX_EVAL_EPISODES, MAX_UPDATES_PER_STEP};
use crate::sac::HiddenActivation;
use crate::util;

/// Most episodes of one iteration (they run side by side: one plan of all of them per step).
pub const MAX_EPISODES: usize = 1_024;

/// Most DAgger iterations.
pub const MAX_ITERATIONS: usize = 1_000;

/// The network distilled into (`[policy]`): a SAC actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyNetConfig {
    /// Hidden widths (default 2 × 64).
    pub hidden: Vec<usize>,
    /// Hidden activation, `relu` or `silu` (default relu).
    pub activation: HiddenActivation,
}

impl Default for PolicyNetConfig {
    fn default() -> Self {
        Self { hidden: vec![64, 64], activation: HiddenActivation::Relu }
    }
}

/// Behaviour cloning's training (`[train]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImitationConfig {
    /// Labelled states per minibatch, drawn with replacement from all so far (default 128).
    pub batch_size: usize,
    /// Adam's learning rate (default 1e-3).
    pub lr: f64,
    /// Updates after each iteration's labels are added (default 1 000), continuing from the
    /// policy so far.
    pub updates_per_iteration: usize,
}

impl Default for ImitationConfig {
    fn default() -> Self {
        Self { batch_size: 128, lr: 1e-3, updates_per_iteration: 1_000 }
    }
}

/// Who acts in the episodes of iterations after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The policy so far (Ross et al. 2011): the states it visits, labelled by the planner.
    Dagger,
    /// The planner itself: plain behaviour cloning on more of the planner's own states.
    Bc,
}

/// The data (`[dagger]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaggerConfig {
    /// Iterations after the first (the first labels the planner's own episodes; default 5).
    pub iterations: usize,
    /// Episodes per iteration, run side by side, every visited state labelled (default 4).
    pub episodes: usize,
    /// Episodes of each evaluation of the policy, and of the planner's once (default 5).
    pub eval_episodes: usize,
    /// `dagger` (default) or `bc`.
    pub mode: Mode,
    /// Label the policy's states with the planner's warm start along the episode (default
    /// true); false plans each of them from the planner's initial distribution.
    pub warm_start_labels: bool,
}

impl Default for DaggerConfig {
    fn default() -> Self {
        Self { iterations: 5, episodes: 4, eval_episodes: 5, mode: Mode::Dagger, warm_start_labels: true }
    }
}

/// The whole config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The policy's initialisation, the minibatches' draws, the episodes' reset seeds and the
    /// planner's random stream.
    #[serde(default)]
    pub seed: u64,
    /// The network.
    #[serde(default)]
    pub policy: PolicyNetConfig,
    /// Its training.
    #[serde(default)]
    pub train: ImitationConfig,
    /// The data.
    #[serde(default)]
    pub dagger: DaggerConfig,
}

impl DistillConfig {
    /// The defaults, then a TOML file, then `key.path=value` assignments; unknown keys (with
    /// their path) and impossible values are errors, all reported at once.
    pub fn resolve(file: Option<&str>, sets: &[String]) -> Result<Self> {
        util::resolve_layers(&Self::default(), file, sets, &[], |_, _| {}, Self::validate)
    }

    /// Every problem at once, each with its key path.
    pub fn validate(&self) -> Result<()> {
        let mut errs = Vec::new();
        let mut bad = |k: &str, why: String| errs.push(Error::config(k, why));
        if let Some(why) = widths_problem(&self.policy.hidden) {
            bad("policy.hidden", why);
        }
        let t = &self.train;
        if t.batch_size == 0 || t.batch_size > u32::MAX as usize {
            bad("train.batch_size", format!("{} is outside 1..={}", t.batch_size, u32::MAX));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            bad("train.lr", format!("{} must be a positive finite number", util::short_float(t.lr)));
        }
        if t.updates_per_iteration == 0 || t.updates_per_iteration > 10_000_000 {
            bad("train.updates_per_iteration", format!("{} is outside 1..=10000000", t.updates_per_iteration));
        }
        let d = &self.dagger;
        if d.iterations > MAX_ITERATIONS {
            bad("dagger.iterations", format!("{} is above {MAX_ITERATIONS}", d.iterations));
        }
        if !(1..=MAX_EPISODES).contains(&d.episodes) {
            bad("dagger.episodes", format!("{} is outside 1..={MAX_EPISODES}", d.episodes));
        }
        if !(1..=MAX_EVAL_EPISODES.min(MAX_EPISODES)).contains(&d.eval_episodes) {
            bad("dagger.eval_episodes", format!("{} is outside 1..={}", d.eval_episodes, MAX_EPISODES));
        }
        Error::collect(errs)
    }

    /// The TOML text of `config.toml`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }

    /// Imitation updates per submission.
    pub fn updates_per_submission(&self) -> usize {
        MAX_UPDATES_PER_STEP.min(self.train.updates_per_iteration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bad key and value of every section is named at once; the defaults pass and round
    /// trip through their TOML. Catches a section whose problems are dropped and a key that
    /// does not parse back.
    #[test]
    fn bad_keys_and_values_are_named_at_once() {
        let sets: Vec<String> =
            ["policy.hidden=[]", "train.lr=-1", "train.batch_size=0", "dagger.episodes=0", "dagger.bogus=1"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let e = DistillConfig::resolve(None, &sets).unwrap_err().to_string();
        for key in ["policy.hidden", "train.lr", "train.batch_size", "dagger.episodes", "dagger.bogus"] {
            assert!(e.contains(key), "{key} missing from {e}");
        }
        let e = DistillConfig::resolve(None, &["dagger.mode=\"imitate\"".into()]).unwrap_err().to_string();
        assert!(e.contains("dagger.mode") && e.contains("`dagger` or `bc`"), "{e}");
        let c = DistillConfig::resolve(None, &["dagger.mode=\"bc\"".into()]).unwrap();
        assert_eq!(c.dagger.mode, Mode::Bc);
        let back: DistillConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }
}
