//! The configuration of a PETS run: the model, training, planner and loop sections, the
//! presets, and their resolution from a preset, a TOML file and `key.path=value` assignments
//! (every problem reported at once).

use serde::{Deserialize, Serialize};

use crate::env::{EnvKind, Task};
use crate::error::{Error, Result};
use crate::model::EnsembleSpec;
pub use crate::model::ModelConfig;
use crate::planner::PlannerConfig;
use crate::train::TrainConfig;
use crate::util;

/// The schedule of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Random-action steps before the first trial (default: 200).
    pub initial_exploration_steps: usize,
    /// Trials (episodes) planned with the model (default: 25).
    pub trials: usize,
    /// Steps per trial at most (default: 200).
    pub trial_length: usize,
    /// Retrain the model every this many planned steps (default: 50).
    pub freq_train_model: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self { initial_exploration_steps: 200, trials: 25, trial_length: 200, freq_train_model: 50 }
    }
}

/// Everything a PETS run needs; the TOML sections are `[model]`, `[train]`, `[planner]`, `[loop]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PetsConfig {
    /// Built-in environment.
    pub env: EnvKind,
    /// Seed of the environment, exploration, training and planning.
    pub seed: u64,
    /// An environment outside the crate that the caller drives (e.g. `gymnasium:Pendulum-v1`
    /// from the Python package); `env` then names the built-in preset the settings started
    /// from. Recorded in the run folder; not settable from a config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_env: Option<String>,
    /// Ensemble architecture.
    pub model: ModelConfig,
    /// Training settings.
    pub train: TrainConfig,
    /// Planner settings.
    pub planner: PlannerConfig,
    /// Loop schedule.
    #[serde(rename = "loop")]
    pub schedule: LoopConfig,
}

/// Named starting points for a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The PETS reference settings (docs/DESIGN.md; pendulum: horizon 30, 15 trials).
    Reference,
    /// Small enough for a CPU rasteriser (lavapipe) in minutes.
    Demo,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reference" => Ok(Preset::Reference),
            "demo" => Ok(Preset::Demo),
            other => Err(Error::config("preset", format!("unknown preset {other:?}; known: reference, demo"))),
        }
    }
}

/// Optional keys that a serialised config leaves out when unset.
const OPTIONAL_KEYS: &[&str] = &["planner.action_lower", "planner.action_upper", "train.clip_grad_norm"];

impl PetsConfig {
    /// The preset for `env`.
    pub fn preset(env: EnvKind, preset: Preset) -> Self {
        let mut c = PetsConfig {
            env,
            seed: 0,
            external_env: None,
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            planner: PlannerConfig::pets_reference(),
            schedule: LoopConfig::default(),
        };
        if env == EnvKind::Pendulum {
            c.planner.horizon = 30;
            c.schedule.trials = 15;
        }
        if preset == Preset::Demo {
            c.model = ModelConfig { members: 5, hidden: vec![64, 64], ..ModelConfig::default() };
            c.train = TrainConfig {
                epochs: 30,
                patience: 0,
                batch_size: 32,
                lr: 2e-3,
                num_elites: 3,
                ..TrainConfig::default()
            };
            c.planner = PlannerConfig { population: 100, particles: 8, iterations: 3, ..c.planner };
            c.schedule.trials = if env == EnvKind::Pendulum { 8 } else { 5 };
        }
        c
    }

    /// Preset, then a TOML file, then `key.path=value` assignments; unknown keys (with their
    /// path) and impossible values are errors.
    pub fn resolve(env: EnvKind, preset: Preset, file: Option<&str>, sets: &[String]) -> Result<Self> {
        util::resolve_layers(&Self::preset(env, preset), file, sets, OPTIONAL_KEYS, unset_ignored_keys, Self::validate)
    }

    /// Checks every section; all problems are reported at once.
    pub fn validate(&self) -> Result<()> {
        let mut errs = Vec::new();
        let mut take = |r: Result<()>| match r {
            Ok(()) => {}
            Err(Error::InvalidConfigs(v)) => errs.extend(v),
            Err(e) => errs.push(e),
        };
        take(self.planner.validate());
        take(self.train.validate(self.model.members));
        if self.model.members == 0 {
            take(Err(Error::config("model.members", "must be at least 1")));
        }
        take(Error::collect(crate::model::hidden_problems(&self.model.hidden)));
        let s = &self.schedule;
        if s.trials == 0 || s.trial_length == 0 || s.freq_train_model == 0 {
            take(Err(Error::config("loop", "trials, trial_length and freq_train_model must be at least 1")));
        }
        if s.initial_exploration_steps == 0 {
            take(Err(Error::config(
                "loop.initial_exploration_steps",
                "the model needs data before the first plan: use at least 1",
            )));
        }
        // One seed drives a run; section seeds would be silently replaced by it.
        if self.planner.seed != PlannerConfig::default().seed {
            take(Err(Error::config("planner.seed", "a PETS run takes every seed from the top-level `seed`")));
        }
        if self.train.seed != TrainConfig::default().seed {
            take(Err(Error::config("train.seed", "a PETS run takes every seed from the top-level `seed`")));
        }
        Error::collect(errs)
    }

    /// The ensemble architecture for `task`.
    pub fn ensemble_spec(&self, task: &Task) -> EnsembleSpec {
        self.model.spec(task.obs_dim, task.act_dim)
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }
}

impl PetsConfig {
    /// The keys whose values differ between `self` and `other`, as `key: self's, other's`
    /// (`loop.trials: 3 here, 4 there` with `here`/`there` as the two names), in key order.
    pub fn differences(&self, other: &PetsConfig, here: &str, there: &str) -> Vec<String> {
        util::config_differences(self, other, here, there)
    }
}

/// Puts back the default of every key the planner's kind ignores that the user did not name:
/// a preset's value there (the demo's 3 iterations) is not the user's setting, which
/// `PlannerConfig::validate` refuses for the kind.
fn unset_ignored_keys(table: &mut toml::Table, named: &[String]) {
    let Some(planner) = table.get_mut("planner").and_then(toml::Value::as_table_mut) else { return };
    if planner.get("kind").and_then(toml::Value::as_str) != Some(crate::planner::PlannerKind::RandomShooting.name()) {
        return;
    }
    let Ok(defaults) = toml::Table::try_from(PlannerConfig::default()) else { return };
    for key in PlannerConfig::RANDOM_SHOOTING_IGNORES {
        if let (false, Some(v)) = (named.contains(&format!("planner.{key}")), defaults.get(key)) {
            planner.insert(key.to_string(), v.clone());
        }
    }
}
