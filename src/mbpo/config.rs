//! The configuration of an MBPO run: the ensemble (`[model]`), its training (`[train]`), SAC
//! (`[sac]`), the model rollouts (`[rollout]`) and the loop (`[loop]`) sections, the presets,
//! and their resolution from a preset, a TOML file and `key.path=value` assignments
//! (`util::resolve_layers`, as the PETS and SAC configs; every problem reported at once).
//!
//! # The reference preset: mbrl-lib's MBPO
//!
//! `reference` is the MBPO configuration of mbrl-lib (facebookresearch/mbrl-lib, commit
//! 3f93ccc): `mbrl/examples/conf/algorithm/mbpo.yaml`,
//! `mbrl/examples/conf/dynamics_model/gaussian_mlp_ensemble.yaml` and the overrides
//! `mbrl/examples/conf/overrides/mbpo_{cartpole,inv_pendulum,halfcheetah,hopper}.yaml`, as
//! `mbrl/algorithms/mbpo.py` uses them. The tasks:
//!
//! - built-in cartpole: `mbpo_cartpole.yaml` (mbrl-lib's `cartpole_continuous`);
//! - built-in pendulum: mbrl-lib has no MBPO pendulum override, so the pendulum takes the
//!   cartpole's settings (the same 200-step episodes and one action);
//! - gymnasium `InvertedPendulum-*`: `mbpo_inv_pendulum.yaml`; `HalfCheetah-*`:
//!   `mbpo_halfcheetah.yaml`; `Hopper-*`: `mbpo_hopper.yaml`; `Pendulum-*`: the built-in
//!   pendulum's; any other gymnasium task (and a gymnasium origin without an id) starts from
//!   `mbpo_halfcheetah.yaml`, mbrl-lib's settings for a generic MuJoCo locomotion task.
//!
//! The keys and what they become:
//!
//! | mbrl-lib | here |
//! | --- | --- |
//! | `ensemble_size: 7`, `num_layers: 4`, `hid_size: 200`, SiLU | `model.members = 7`, `model.hidden = [200; 4]` |
//! | `deterministic: false` | `model.probabilistic = true` |
//! | `learned_rewards: true` | `model.learned_reward = true` |
//! | `learn_logvar_bounds: false` | `train.learn_logvar_bounds = false` |
//! | `model_lr`, `model_wd`, `model_batch_size` | `train.lr`, `train.weight_decay`, `train.batch_size` |
//! | `validation_ratio`, `patience`, `num_elites` | `train.validation_ratio`, `train.patience`, `train.num_elites` |
//! | `improvement_threshold` (unset: 0.01) | `train.improvement_threshold = 0.01` |
//! | `bootstrap_permutes` (unset: sampling with replacement) | `train.bootstrap = true` |
//! | `effective_model_rollouts_per_step` | `rollout.rollouts_per_step` |
//! | `rollout_schedule` | `rollout.rollout_schedule` |
//! | `num_epochs_to_retain_sac_buffer` | `rollout.retain_epochs` |
//! | `real_data_ratio: 0.0` | `rollout.real_data_ratio = 0` |
//! | `freq_train_model`, `epoch_length` | `rollout.freq_train_model`, `rollout.epoch_length` |
//! | `num_sac_updates_per_step` | `sac.updates_per_step` |
//! | `sac_gamma`, `sac_tau`, `sac_batch_size` | `sac.gamma`, `sac.tau`, `sac.batch_size` |
//! | `sac_target_update_interval` | `sac.target_update_interval` |
//! | `sac_hidden_size` | `sac.actor_hidden` and `sac.critic_hidden`, 2 layers of it (pranz24's networks) |
//! | `sac_lr` | `sac.lr_actor`, `sac.lr_critic`, `sac.lr_alpha` (pranz24 uses one rate for all three) |
//! | `sac_automatic_entropy_tuning` | `sac.learn_alpha` |
//! | `sac_target_entropy` | `sac.target_entropy` (unset when α is not learned: mbrl-lib ignores it then) |
//! | `sac_alpha` | `sac.initial_alpha`: see below |
//! | `initial_exploration_steps: 5000` | `loop.initial_exploration_steps` |
//! | `num_steps` | `loop.total_steps = initial_exploration_steps + num_steps`: see below |
//! | `dataset_size` (unset: `num_steps`) | `loop.buffer_capacity = num_steps` |
//! | `trial_length` | `loop.trial_length` (gymnasium tasks: 1 000, their time limit) |
//! | `num_eval_episodes: 1` | `loop.eval_episodes = 1` |
//!
//! Where the two differ:
//!
//! - `num_steps` counts the steps after the initial exploration (`mbpo.py` explores first,
//!   then runs `num_steps` steps); `loop.total_steps` counts them all, so it is the sum.
//! - With `sac_automatic_entropy_tuning: true`, pranz24's SAC starts `log α` at 0 and sets
//!   `α = exp(log α)` after the first update, so `sac_alpha` (0.2) only enters the first
//!   update's losses and α starts from 1 for every later one: `sac.initial_alpha = 1.0` there.
//!   Without tuning (Hopper) α stays `sac_alpha`: `sac.initial_alpha = 0.2`.
//! - `num_epochs_train_model` is unset in mbrl-lib's MBPO: the model trains until `patience`
//!   epochs pass without improvement, however many that takes. `train.epochs` must be finite:
//!   200, a cap that the patience of 5 normally ends well before.
//! - `random_initial_explore: false`: mbrl-lib explores with the untrained SAC policy's sampled
//!   actions; the loop here explores with uniformly random actions (SAC's warm-up). No key.
//! - No key for what is fixed here: `sac_updates_every_steps: 1` (SAC updates on every step),
//!   `sac_policy: Gaussian` (the tanh-squashed Gaussian actor), `sac_samples_action: true`
//!   (model rollouts sample the policy's actions), `normalize: true` and `target_is_delta:
//!   true` (the ensemble always normalises its inputs and predicts `Δ = obs' − obs`),
//!   `normalize_double_precision`, `propagation_method: random_model` (each model step of a
//!   rollout uses a random elite), `term_fn` (the task's WGSL termination).
//! - `real_data_ratio`: mbrl-lib draws each whole minibatch from the real buffer with this
//!   probability; the loop here takes this fraction of every minibatch from it (Janner et al.'s
//!   code). The reference ratio is 0, where both are the same.
//! - The model buffer: mbrl-lib resizes it at every epoch to `k × rollouts × trainings per epoch
//!   × retained epochs` for the epoch's rollout length `k`; the loop here allocates the largest
//!   the schedule reaches once ([`MbpoConfig::model_buffer_capacity`]).
//! - pranz24 averages the target critics when `update % target_update_interval == 0` counting
//!   from 0, the SAC here when `(update + 1) % interval == 0`: the same period, one update later.
//!
//! The reward of a model transition is the model's prediction when `model.learned_reward`
//! (mbrl-lib's `learned_rewards: true`, the reference), else the task's WGSL reward of
//! `(obs, act, obs')`. `model.probabilistic` may be either: a deterministic ensemble predicts
//! the mean only.
//!
//! # The demo preset
//!
//! `demo` (every value of it in one place, `fn demo` of this file) is sized for a CPU
//! rasteriser (lavapipe, 2 cores) to learn the built-in cartpole or pendulum in minutes:
//! 5 deterministic members × 2 × 64 with the task's WGSL reward, SAC 2 × 64 with batch 128 and 10 updates
//! per step, 20 rollouts per step of length 1 growing to 5, the model retrained every 250
//! steps, 3 000 steps in all. Its values are starting points, to be tuned.

use serde::{Deserialize, Serialize};

use crate::env::EnvKind;
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::sac::config::MAX_EVAL_EPISODES;
use crate::sac::{AlgorithmConfig, SacConfig, SacLoopConfig, TaskOrigin};
use crate::train::TrainConfig;
use crate::util;

/// Longest model rollout (`rollout.rollout_schedule`'s lengths). MBPO's rollouts are short on
/// purpose (the model's errors compound along them; mbrl-lib's overrides use at most 25 steps), each
/// step is a sequential model and policy pass, and the model buffer grows with the length: a
/// branch as long as a whole MuJoCo episode (1 000 steps) is already far past any use, and a
/// mistyped length is refused before a buffer of its size is allocated.
pub const MAX_ROLLOUT_LENGTH: usize = 1_000;

/// The model rollouts (`[rollout]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// Model rollouts started per environment step, all of a model training's started at once
    /// (mbrl-lib's `effective_model_rollouts_per_step`; reference: 400).
    pub rollouts_per_step: usize,
    /// `[min_epoch, max_epoch, min_length, max_length]`: the rollout length is `min_length` up
    /// to epoch `min_epoch`, `max_length` from epoch `max_epoch`, linear in between, epochs
    /// counted from 1 as mbrl-lib counts them here ([`MbpoConfig::rollout_length`]; mbrl-lib's
    /// `rollout_schedule`; reference cartpole: `[1, 15, 1, 1]`).
    pub rollout_schedule: [usize; 4],
    /// Epochs of model transitions the model buffer keeps (mbrl-lib's
    /// `num_epochs_to_retain_sac_buffer`; reference: 1).
    pub retain_epochs: usize,
    /// Fraction in [0, 1] of every SAC minibatch drawn from the real buffer, the rest from the
    /// model buffer (reference: 0).
    pub real_data_ratio: f64,
    /// Retrain the model and roll it out after every this many environment steps (mbrl-lib's
    /// `freq_train_model`; reference cartpole: 200).
    pub freq_train_model: usize,
    /// Environment steps per epoch: the unit of the rollout schedule and of the model buffer,
    /// and one evaluation per epoch (reference cartpole: 200).
    pub epoch_length: usize,
}

impl Default for RolloutConfig {
    /// mbrl-lib's cartpole settings.
    fn default() -> Self {
        let o = &MBPO_CARTPOLE;
        Self {
            rollouts_per_step: o.effective_model_rollouts_per_step,
            rollout_schedule: o.rollout_schedule,
            retain_epochs: o.num_epochs_to_retain_sac_buffer,
            real_data_ratio: MBPO_REAL_DATA_RATIO,
            freq_train_model: o.freq_train_model,
            epoch_length: o.epoch_length,
        }
    }
}

/// The schedule of an MBPO run (`[loop]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MbpoLoopConfig {
    /// Real transitions the replay buffer holds, the oldest replaced first (mbrl-lib: its
    /// `num_steps`; reference cartpole: 5 000).
    pub buffer_capacity: usize,
    /// Environment steps with uniformly random actions before the model is first trained
    /// (reference: 5 000).
    pub initial_exploration_steps: usize,
    /// Environment steps of the whole run, the exploration included (reference cartpole:
    /// 5 000 + 5 000).
    pub total_steps: usize,
    /// Steps per episode at most (reference: 200 on the built-in tasks, 1 000 on gymnasium's).
    pub trial_length: usize,
    /// Episodes per evaluation, one evaluation per epoch (reference: 1).
    pub eval_episodes: usize,
}

impl Default for MbpoLoopConfig {
    /// mbrl-lib's cartpole settings.
    fn default() -> Self {
        let o = &MBPO_CARTPOLE;
        Self {
            buffer_capacity: o.num_steps,
            initial_exploration_steps: MBPO_INITIAL_EXPLORATION_STEPS,
            total_steps: MBPO_INITIAL_EXPLORATION_STEPS + o.num_steps,
            trial_length: o.trial_length,
            eval_episodes: MBPO_NUM_EVAL_EPISODES,
        }
    }
}

/// Everything an MBPO run needs; the TOML sections are `[model]`, `[train]`, `[sac]`,
/// `[rollout]` and `[loop]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MbpoConfig {
    /// Built-in environment (or the preset's base for an external one).
    pub env: EnvKind,
    /// Seed of the environment, exploration, the ensemble's training, the rollouts and every
    /// SAC update; the sections' own seeds stay at their defaults.
    pub seed: u64,
    /// An environment outside the crate that the caller drives (e.g. `gymnasium:Hopper-v5`);
    /// `env` then names the built-in the settings started from. Not settable from a config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_env: Option<String>,
    /// The ensemble's architecture.
    pub model: ModelConfig,
    /// The ensemble's training on the real transitions.
    pub train: TrainConfig,
    /// SAC; `updates_per_step` is the SAC updates per environment step.
    pub sac: AlgorithmConfig,
    /// The model rollouts.
    pub rollout: RolloutConfig,
    /// The schedule.
    #[serde(rename = "loop")]
    pub schedule: MbpoLoopConfig,
}

/// Named starting points of an MBPO config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MbpoPreset {
    /// mbrl-lib's MBPO settings (module documentation).
    Reference,
    /// Small enough for the built-in cartpole or pendulum on a CPU rasteriser in minutes.
    Demo,
}

impl std::str::FromStr for MbpoPreset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reference" => Ok(MbpoPreset::Reference),
            "demo" => Ok(MbpoPreset::Demo),
            other => Err(Error::config("preset", format!("unknown preset {other:?}; known: reference, demo"))),
        }
    }
}

/// Optional keys that a serialised config leaves out when unset.
const OPTIONAL_KEYS: &[&str] = &["sac.target_entropy", "sac.init_policy", "train.clip_grad_norm"];

impl MbpoConfig {
    /// The preset for `env` from `origin`: mbrl-lib's cartpole settings for the built-in tasks,
    /// its HalfCheetah settings for a gymnasium task (use [`MbpoConfig::preset_for_gymnasium`]
    /// when the id is known); `demo` for either.
    pub fn preset(env: EnvKind, origin: TaskOrigin, preset: MbpoPreset) -> Self {
        match (preset, origin) {
            (MbpoPreset::Demo, _) => demo(env),
            (MbpoPreset::Reference, TaskOrigin::BuiltIn) => reference(env, &MBPO_CARTPOLE),
            (MbpoPreset::Reference, TaskOrigin::Gymnasium) => reference(env, &MBPO_HALFCHEETAH),
        }
    }

    /// The reference/demo preset for a gymnasium task id, with or without its `gymnasium:`
    /// prefix and whatever its version: `InvertedPendulum-v5` → `mbpo_inv_pendulum.yaml`,
    /// `HalfCheetah-v5` → `mbpo_halfcheetah.yaml`, `Hopper-v5` → `mbpo_hopper.yaml`,
    /// `Pendulum-v1` → the built-in pendulum's (the same task), any other id →
    /// `mbpo_halfcheetah.yaml` as a generic MuJoCo start. `env` is the built-in the settings
    /// start from: the pendulum for `Pendulum-*`, the cartpole for the others (as the Python
    /// package's gymnasium tasks).
    pub fn preset_for_gymnasium(id: &str, preset: MbpoPreset) -> Self {
        let id = id.strip_prefix("gymnasium:").unwrap_or(id);
        let name = id.split("-v").next().unwrap_or(id);
        if name == "Pendulum" {
            return Self::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, preset);
        }
        let env = EnvKind::Cartpole;
        if preset == MbpoPreset::Demo {
            return demo(env);
        }
        let o = match name {
            "InvertedPendulum" => &MBPO_INV_PENDULUM,
            "Hopper" => &MBPO_HOPPER,
            _ => &MBPO_HALFCHEETAH,
        };
        reference(env, o)
    }

    /// `base` (a preset already chosen), then a TOML file, then `key.path=value` assignments
    /// (`rollout.freq_train_model=100`), then [`MbpoConfig::validate`]; unknown keys (with
    /// their path) and impossible values are errors, all reported at once.
    pub fn resolve(base: Self, file: Option<&str>, sets: &[String]) -> Result<Self> {
        util::resolve_layers(&base, file, sets, OPTIONAL_KEYS, |_, _| {}, Self::validate)
    }

    /// Checks every section; every problem is reported at once with its key path.
    pub fn validate(&self) -> Result<()> {
        let mut errs = Vec::new();
        let mut take = |r: Result<()>| match r {
            Ok(()) => {}
            Err(Error::InvalidConfigs(v)) => errs.extend(v),
            Err(e) => errs.push(e),
        };
        take(self.sac_problems());
        take(self.train.validate(self.model.members));
        if self.model.members == 0 {
            take(Err(Error::config("model.members", "must be at least 1")));
        }
        take(Error::collect(crate::model::hidden_problems(&self.model.hidden)));
        // One seed drives a run; a section seed would be silently replaced by it.
        if self.train.seed != TrainConfig::default().seed {
            take(Err(Error::config("train.seed", "an MBPO run takes every seed from the top-level `seed`")));
        }
        take(Error::collect(self.rollout.problems()));
        take(Error::collect(self.schedule.problems()));
        // The model buffer (its size follows from the rollout settings).
        let r = &self.rollout;
        let capacity = self.model_buffer_capacity();
        let rollout_ok = r.rollouts_per_step > 0 && r.retain_epochs > 0 && r.freq_train_model > 0;
        if rollout_ok && capacity as u64 > u32::MAX as u64 {
            take(Err(Error::config(
                "rollout",
                format!(
                    "the model buffer would hold {capacity} transitions (rollouts_per_step × \
                     freq_train_model × ⌈epoch_length / freq_train_model⌉ × retain_epochs × the \
                     longest rollout), more than {}; use fewer or shorter rollouts",
                    u32::MAX
                ),
            )));
        }
        if rollout_ok && capacity < self.rollouts_per_batch() {
            take(Err(Error::config(
                "rollout",
                format!(
                    "the model buffer ({capacity} transitions) cannot hold the {} rollouts started at \
                     once",
                    self.rollouts_per_batch()
                ),
            )));
        }
        if rollout_ok && self.sac.batch_size > capacity {
            take(Err(Error::config(
                "sac.batch_size",
                format!(
                    "{} exceeds the model buffer's {capacity} transitions; a minibatch is drawn from it",
                    self.sac.batch_size
                ),
            )));
        }
        Error::collect(errs)
    }

    /// The `[sac]` section's problems, through `SacConfig::validate` with a loop section that
    /// has none: a buffer as large as one minibatch (so the minibatch fits it; the model buffer
    /// is checked separately), and only the `sac.` keys kept.
    fn sac_problems(&self) -> Result<()> {
        let probe = SacConfig {
            schedule: SacLoopConfig {
                buffer_capacity: self.sac.batch_size.max(1),
                random_steps: 0,
                total_steps: 1,
                eval_every: 1,
                eval_episodes: 1,
            },
            ..self.sac_config()
        };
        let errs = match probe.validate() {
            Ok(()) => Vec::new(),
            Err(Error::InvalidConfigs(v)) => v,
            Err(e) => vec![e],
        };
        let sac_key = |e: &Error| matches!(e, Error::InvalidConfig { field, .. } if field.starts_with("sac."));
        Error::collect(errs.into_iter().filter(sac_key).collect())
    }

    /// Rollout length `k` at `epoch`, counted from 0 as mbrl-lib's loop counts them:
    /// mbrl-lib's `truncated_linear(min_epoch, max_epoch, min_length, max_length, epoch + 1)`
    /// (`mbrl/util/math.py`, called by `mbrl/algorithms/mbpo.py`) rounded down by `int()`:
    /// `min_length` while `epoch + 1 ≤ min_epoch`, `max_length` once `epoch + 1 ≥ max_epoch`
    /// (always when the two epochs are equal), linear in between. Computed in f64 as mbrl-lib
    /// computes it, so the rounding is the same (`[0, 22, 1, 23]` gives 15 at epoch 14 where
    /// exact arithmetic would give 16).
    pub fn rollout_length(&self, epoch: usize) -> usize {
        let [min_epoch, max_epoch, min_length, max_length] = self.rollout.rollout_schedule;
        let x = epoch.saturating_add(1);
        if max_epoch <= min_epoch {
            return max_length;
        }
        if x <= min_epoch {
            return min_length;
        }
        let dx = ((x - min_epoch) as f64 / (max_epoch - min_epoch) as f64).min(1.0);
        let y = dx * (max_length as f64 - min_length as f64) + min_length as f64;
        y as usize
    }

    /// Rollouts started at each model training: `rollouts_per_step × freq_train_model`
    /// (saturating).
    pub fn rollouts_per_batch(&self) -> usize {
        self.rollout.rollouts_per_step.saturating_mul(self.rollout.freq_train_model)
    }

    /// The model buffer's capacity in transitions (saturating): `rollouts_per_batch ×
    /// ⌈epoch_length / freq_train_model⌉ × retain_epochs × max_length`. mbrl-lib resizes its
    /// buffer at every epoch with that epoch's rollout length `k` in place of `max_length`;
    /// this is the largest the schedule needs, allocated once. The ceiling is mbrl-lib's
    /// `trains_per_epoch`: the model trains every `freq_train_model` steps of the run, not of
    /// the epoch, so an epoch that is no multiple of it holds a varying number of trainings.
    pub fn model_buffer_capacity(&self) -> usize {
        self.model_window(self.rollout.rollout_schedule[3].max(self.rollout.rollout_schedule[2]))
    }

    /// Minibatch rows drawn from the real buffer: `round(sac.batch_size × real_data_ratio)`.
    pub fn real_rows(&self) -> usize {
        (self.sac.batch_size as f64 * self.rollout.real_data_ratio).round() as usize
    }

    /// The newest model transitions SAC draws from while rollouts are `length` steps long:
    /// `rollouts_per_batch × ⌈epoch_length / freq_train_model⌉ × retain_epochs × length`
    /// (saturating), mbrl-lib's buffer capacity for that length (it replaces its buffer by one
    /// of that size, keeping the newest transitions, when the length changes).
    pub fn model_window(&self, length: usize) -> usize {
        let r = &self.rollout;
        let trains_per_epoch = r.epoch_length.div_ceil(r.freq_train_model.max(1));
        self.rollouts_per_batch()
            .saturating_mul(trains_per_epoch)
            .saturating_mul(r.retain_epochs)
            .saturating_mul(length)
    }

    /// The SAC settings as a [`SacConfig`], what the SAC device and policy are built from: the
    /// environment, seed and `[sac]` section, and a loop section of the real buffer's capacity,
    /// `random_steps = initial_exploration_steps`, `total_steps`, `eval_every = epoch_length`
    /// and `eval_episodes`.
    pub fn sac_config(&self) -> SacConfig {
        SacConfig {
            env: self.env,
            seed: self.seed,
            external_env: self.external_env.clone(),
            sac: self.sac.clone(),
            schedule: SacLoopConfig {
                buffer_capacity: self.schedule.buffer_capacity,
                random_steps: self.schedule.initial_exploration_steps,
                total_steps: self.schedule.total_steps,
                eval_every: self.rollout.epoch_length,
                eval_episodes: self.schedule.eval_episodes,
            },
        }
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }
}

impl RolloutConfig {
    /// Every problem of the section, keys as `rollout.<key>`.
    fn problems(&self) -> Vec<Error> {
        let mut errs = Vec::new();
        let mut bad = |f: &str, r: String| errs.push(Error::config(format!("rollout.{f}"), r));
        for (f, v) in [
            ("rollouts_per_step", self.rollouts_per_step),
            ("retain_epochs", self.retain_epochs),
            ("freq_train_model", self.freq_train_model),
            ("epoch_length", self.epoch_length),
        ] {
            if v == 0 {
                bad(f, "must be at least 1".into());
            }
        }
        let [min_epoch, max_epoch, min_length, max_length] = self.rollout_schedule;
        let schedule = format!("{:?} (min_epoch, max_epoch, min_length, max_length)", self.rollout_schedule);
        if min_epoch > max_epoch {
            bad("rollout_schedule", format!("{schedule}: min_epoch is after max_epoch"));
        }
        if !(1 <= min_length && min_length <= max_length && max_length <= MAX_ROLLOUT_LENGTH) {
            bad(
                "rollout_schedule",
                format!("{schedule}: the lengths must satisfy 1 ≤ min_length ≤ max_length ≤ {MAX_ROLLOUT_LENGTH}"),
            );
        }
        if !(self.real_data_ratio.is_finite() && (0.0..=1.0).contains(&self.real_data_ratio)) {
            bad("real_data_ratio", format!("{} is outside [0, 1]", util::short_float(self.real_data_ratio)));
        }
        errs
    }
}

impl MbpoLoopConfig {
    /// Every problem of the section, keys as `loop.<key>`.
    fn problems(&self) -> Vec<Error> {
        let mut errs = Vec::new();
        let mut bad = |f: &str, r: String| errs.push(Error::config(format!("loop.{f}"), r));
        if self.buffer_capacity == 0 || self.buffer_capacity as u64 > u32::MAX as u64 {
            bad("buffer_capacity", format!("{} is outside 1..={}", self.buffer_capacity, u32::MAX));
        }
        if self.initial_exploration_steps == 0 {
            bad("initial_exploration_steps", "the model needs data before its first training: use at least 1".into());
        }
        if self.total_steps < self.initial_exploration_steps {
            bad(
                "total_steps",
                format!(
                    "{} is below loop.initial_exploration_steps = {}: the run would never learn",
                    self.total_steps, self.initial_exploration_steps
                ),
            );
        }
        if self.trial_length == 0 {
            bad("trial_length", "must be at least 1".into());
        }
        if !(1..=MAX_EVAL_EPISODES).contains(&self.eval_episodes) {
            bad("eval_episodes", format!("{} is outside 1..={MAX_EVAL_EPISODES}", self.eval_episodes));
        }
        errs
    }
}

/// The demo preset, every value of it here (they are starting points to tune): sized for a
/// CPU rasteriser (lavapipe, 2 cores) to learn the built-in cartpole or pendulum in minutes.
fn demo(env: EnvKind) -> MbpoConfig {
    MbpoConfig {
        env,
        seed: 0,
        external_env: None,
        // A small deterministic ensemble; the task's exact WGSL reward instead of a learned one.
        // Deterministic: after the few epochs that a few hundred transitions give, a Gaussian
        // head's standard deviation is still far from its data (cartpole: about 0.56 against
        // one-step changes of 0.01 to 0.17), so its sampled rollouts are mostly noise and
        // terminate at once; the means are already close (validation MSE ~1e-4).
        model: ModelConfig { members: 5, hidden: vec![64, 64], probabilistic: false, learned_reward: false },
        // mbrl-lib's rate, decay and validation split; fewer epochs and smaller minibatches
        // for a buffer of at most 3 000 transitions.
        train: TrainConfig {
            lr: 1e-3,
            weight_decay: 5e-5,
            batch_size: 64,
            epochs: 25,
            patience: 5,
            validation_ratio: 0.2,
            num_elites: 3,
            learn_logvar_bounds: false,
            ..TrainConfig::default()
        },
        // The SAC demo's networks and rates, 10 updates per step on model data.
        sac: AlgorithmConfig {
            actor_hidden: vec![64, 64],
            critic_hidden: vec![64, 64],
            batch_size: 128,
            lr_actor: 1e-3,
            lr_critic: 1e-3,
            lr_alpha: 1e-3,
            updates_per_step: 10,
            ..AlgorithmConfig::default()
        },
        // 20 × 250 = 5 000 rollouts per training, one step long at first, five from epoch 5;
        // 5% real data against a small model's errors (Janner et al.'s ratio).
        rollout: RolloutConfig {
            rollouts_per_step: 20,
            rollout_schedule: [1, 5, 1, 5],
            retain_epochs: 1,
            real_data_ratio: 0.05,
            freq_train_model: 250,
            epoch_length: 250,
        },
        // 500 random steps (2.5 episodes), then 10 epochs of 250 steps.
        schedule: MbpoLoopConfig {
            buffer_capacity: 100_000,
            initial_exploration_steps: 500,
            total_steps: 3_000,
            trial_length: 200,
            eval_episodes: 3,
        },
    }
}

/// One of mbrl-lib's MBPO overrides (`mbrl/examples/conf/overrides/mbpo_*.yaml`), its keys.
struct MbrlOverride {
    trial_length: usize,
    num_steps: usize,
    epoch_length: usize,
    num_elites: usize,
    patience: usize,
    model_lr: f64,
    model_wd: f64,
    model_batch_size: usize,
    validation_ratio: f64,
    freq_train_model: usize,
    effective_model_rollouts_per_step: usize,
    rollout_schedule: [usize; 4],
    num_sac_updates_per_step: usize,
    num_epochs_to_retain_sac_buffer: usize,
    sac_gamma: f64,
    sac_tau: f64,
    sac_alpha: f64,
    sac_target_update_interval: usize,
    sac_automatic_entropy_tuning: bool,
    sac_target_entropy: Option<f64>,
    sac_hidden_size: usize,
    sac_lr: f64,
    sac_batch_size: usize,
}

/// `mbpo_cartpole.yaml`.
const MBPO_CARTPOLE: MbrlOverride = MbrlOverride {
    trial_length: 200,
    num_steps: 5_000,
    epoch_length: 200,
    num_elites: 5,
    patience: 5,
    model_lr: 1e-3,
    model_wd: 5e-5,
    model_batch_size: 256,
    validation_ratio: 0.2,
    freq_train_model: 200,
    effective_model_rollouts_per_step: 400,
    rollout_schedule: [1, 15, 1, 1],
    num_sac_updates_per_step: 20,
    num_epochs_to_retain_sac_buffer: 1,
    sac_gamma: 0.99,
    sac_tau: 0.005,
    sac_alpha: 0.2,
    sac_target_update_interval: 4,
    sac_automatic_entropy_tuning: true,
    sac_target_entropy: Some(-0.05),
    sac_hidden_size: 256,
    sac_lr: 3e-4,
    sac_batch_size: 256,
};

/// `mbpo_inv_pendulum.yaml` (no `trial_length`: gymnasium's InvertedPendulum time limit).
const MBPO_INV_PENDULUM: MbrlOverride = MbrlOverride {
    trial_length: GYMNASIUM_TRIAL_LENGTH,
    num_steps: 20_000,
    epoch_length: 250,
    num_elites: 5,
    patience: 5,
    model_lr: 1e-3,
    model_wd: 1e-5,
    model_batch_size: 256,
    validation_ratio: 0.2,
    freq_train_model: 250,
    effective_model_rollouts_per_step: 400,
    rollout_schedule: [1, 15, 1, 1],
    num_sac_updates_per_step: 10,
    num_epochs_to_retain_sac_buffer: 1,
    sac_gamma: 0.99,
    sac_tau: 0.005,
    sac_alpha: 0.2,
    sac_target_update_interval: 1,
    sac_automatic_entropy_tuning: true,
    sac_target_entropy: Some(-1.0),
    sac_hidden_size: 256,
    sac_lr: 3e-4,
    sac_batch_size: 256,
};

/// `mbpo_halfcheetah.yaml` (no `trial_length`: gymnasium's MuJoCo time limit).
const MBPO_HALFCHEETAH: MbrlOverride = MbrlOverride {
    trial_length: GYMNASIUM_TRIAL_LENGTH,
    num_steps: 400_000,
    epoch_length: 1_000,
    num_elites: 5,
    patience: 5,
    model_lr: 1e-3,
    model_wd: 1e-5,
    model_batch_size: 256,
    validation_ratio: 0.2,
    freq_train_model: 250,
    effective_model_rollouts_per_step: 400,
    rollout_schedule: [20, 150, 1, 1],
    num_sac_updates_per_step: 10,
    num_epochs_to_retain_sac_buffer: 1,
    sac_gamma: 0.99,
    sac_tau: 0.005,
    sac_alpha: 0.2,
    sac_target_update_interval: 1,
    sac_automatic_entropy_tuning: true,
    sac_target_entropy: Some(-1.0),
    sac_hidden_size: 512,
    sac_lr: 3e-4,
    sac_batch_size: 256,
};

/// `mbpo_hopper.yaml` (no `trial_length`: gymnasium's MuJoCo time limit; its
/// `sac_target_entropy: 1` is ignored without entropy tuning, so it is left unset).
const MBPO_HOPPER: MbrlOverride = MbrlOverride {
    trial_length: GYMNASIUM_TRIAL_LENGTH,
    num_steps: 125_000,
    epoch_length: 1_000,
    num_elites: 5,
    patience: 5,
    model_lr: 1e-3,
    model_wd: 1e-5,
    model_batch_size: 256,
    validation_ratio: 0.2,
    freq_train_model: 250,
    effective_model_rollouts_per_step: 400,
    rollout_schedule: [20, 150, 1, 15],
    num_sac_updates_per_step: 40,
    num_epochs_to_retain_sac_buffer: 1,
    sac_gamma: 0.99,
    sac_tau: 0.005,
    sac_alpha: 0.2,
    sac_target_update_interval: 4,
    sac_automatic_entropy_tuning: false,
    sac_target_entropy: None,
    sac_hidden_size: 512,
    sac_lr: 3e-4,
    sac_batch_size: 256,
};

/// Episode cap of the gymnasium MuJoCo tasks (their `max_episode_steps`), which mbrl-lib's
/// MBPO leaves to the environment's time limit.
const GYMNASIUM_TRIAL_LENGTH: usize = 1_000;

/// `mbpo.yaml`'s `initial_exploration_steps`.
const MBPO_INITIAL_EXPLORATION_STEPS: usize = 5_000;
/// `mbpo.yaml`'s `real_data_ratio`.
const MBPO_REAL_DATA_RATIO: f64 = 0.0;
/// `mbpo.yaml`'s `num_eval_episodes`.
const MBPO_NUM_EVAL_EPISODES: usize = 1;
/// `train.epochs` of the reference: mbrl-lib sets no `num_epochs_train_model` and trains until
/// the patience runs out; this is a cap that patience normally ends first.
const REFERENCE_MAX_TRAIN_EPOCHS: usize = 200;

/// The reference preset for `env` from one of mbrl-lib's overrides, with `mbpo.yaml` and
/// `gaussian_mlp_ensemble.yaml` (module documentation).
fn reference(env: EnvKind, o: &MbrlOverride) -> MbpoConfig {
    MbpoConfig {
        env,
        seed: 0,
        external_env: None,
        // ensemble_size 7, num_layers 4 × hid_size 200, deterministic false; learned_rewards.
        model: ModelConfig { members: 7, hidden: vec![200; 4], probabilistic: true, learned_reward: true },
        train: TrainConfig {
            lr: o.model_lr,
            weight_decay: o.model_wd,
            batch_size: o.model_batch_size,
            epochs: REFERENCE_MAX_TRAIN_EPOCHS,
            patience: o.patience,
            improvement_threshold: 0.01,
            validation_ratio: o.validation_ratio,
            num_elites: o.num_elites,
            bootstrap: true,
            learn_logvar_bounds: false,
            ..TrainConfig::default()
        },
        sac: AlgorithmConfig {
            actor_hidden: vec![o.sac_hidden_size; 2],
            critic_hidden: vec![o.sac_hidden_size; 2],
            batch_size: o.sac_batch_size,
            lr_actor: o.sac_lr,
            lr_critic: o.sac_lr,
            lr_alpha: o.sac_lr,
            gamma: o.sac_gamma,
            tau: o.sac_tau,
            target_update_interval: o.sac_target_update_interval,
            actor_update_frequency: 1,
            learn_alpha: o.sac_automatic_entropy_tuning,
            // pranz24 starts a learned log α at 0 (module documentation).
            initial_alpha: if o.sac_automatic_entropy_tuning { 1.0 } else { o.sac_alpha },
            target_entropy: if o.sac_automatic_entropy_tuning { o.sac_target_entropy } else { None },
            updates_per_step: o.num_sac_updates_per_step,
            ..AlgorithmConfig::default()
        },
        rollout: RolloutConfig {
            rollouts_per_step: o.effective_model_rollouts_per_step,
            rollout_schedule: o.rollout_schedule,
            retain_epochs: o.num_epochs_to_retain_sac_buffer,
            real_data_ratio: MBPO_REAL_DATA_RATIO,
            freq_train_model: o.freq_train_model,
            epoch_length: o.epoch_length,
        },
        schedule: MbpoLoopConfig {
            buffer_capacity: o.num_steps,
            initial_exploration_steps: MBPO_INITIAL_EXPLORATION_STEPS,
            total_steps: MBPO_INITIAL_EXPLORATION_STEPS + o.num_steps,
            trial_length: o.trial_length,
            eval_episodes: MBPO_NUM_EVAL_EPISODES,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(sets: &[&str]) -> Result<MbpoConfig> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let base = MbpoConfig::preset(EnvKind::Cartpole, TaskOrigin::BuiltIn, MbpoPreset::Reference);
        MbpoConfig::resolve(base, None, &sets)
    }

    /// Every impossible value is refused naming its key. Catches a range check that is missing,
    /// names another key, or lets NaN and infinity through (`NaN < x` is false both ways).
    #[test]
    fn mbpo_config_names_each_bad_key() {
        let cases: &[(&str, &str)] = &[
            ("rollout.rollouts_per_step=0", "rollout.rollouts_per_step"),
            ("rollout.rollout_schedule=[15, 1, 1, 1]", "rollout.rollout_schedule"),
            ("rollout.rollout_schedule=[1, 15, 0, 1]", "rollout.rollout_schedule"),
            ("rollout.rollout_schedule=[1, 15, 5, 4]", "rollout.rollout_schedule"),
            ("rollout.rollout_schedule=[1, 15, 1, 1001]", "rollout.rollout_schedule"),
            ("rollout.rollout_schedule=[1, 15, 1]", "rollout.rollout_schedule"),
            ("rollout.retain_epochs=0", "rollout.retain_epochs"),
            ("rollout.real_data_ratio=-0.1", "rollout.real_data_ratio"),
            ("rollout.real_data_ratio=1.5", "rollout.real_data_ratio"),
            ("rollout.real_data_ratio=nan", "rollout.real_data_ratio"),
            ("rollout.freq_train_model=0", "rollout.freq_train_model"),
            ("rollout.epoch_length=0", "rollout.epoch_length"),
            ("rollout.rollouts_per_step=100000000", "rollout: the model buffer"),
            ("rollout.unknown=1", "rollout.unknown: unknown key"),
            ("loop.buffer_capacity=0", "loop.buffer_capacity"),
            ("loop.buffer_capacity=5000000000", "loop.buffer_capacity"),
            ("loop.initial_exploration_steps=0", "loop.initial_exploration_steps"),
            ("loop.total_steps=4999", "loop.total_steps"),
            ("loop.trial_length=0", "loop.trial_length"),
            ("loop.eval_episodes=0", "loop.eval_episodes"),
            ("loop.eval_episodes=1001", "loop.eval_episodes"),
            ("loop.random_steps=10", "loop.random_steps: unknown key"),
            ("model.members=0", "model.members"),
            ("model.hidden=[64, 0]", "model.hidden"),
            ("train.num_elites=8", "train.num_elites"),
            ("train.lr=0", "train.lr"),
            ("train.validation_ratio=1", "train.validation_ratio"),
            ("train.seed=3", "train.seed"),
            ("sac.gamma=1.0", "sac.gamma"),
            ("sac.tau=0", "sac.tau"),
            ("sac.lr_alpha=inf", "sac.lr_alpha"),
            ("sac.batch_size=0", "sac.batch_size"),
            ("sac.batch_size=100000", "sac.batch_size"),
            ("sac.updates_per_step=65", "sac.updates_per_step"),
            ("sac.critic_hidden=[]", "sac.critic_hidden"),
            ("sac.target_entropy=nan", "sac.target_entropy"),
            ("external_env=\"gymnasium:Hopper-v5\"", "external_env: unknown key"),
        ];
        for (set, key) in cases {
            let e = resolve(&[set]).expect_err(set).to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
        // The values at the edges of the ranges are accepted; a SAC minibatch larger than the
        // real buffer is (it is drawn from the model buffer).
        let ok = [
            "rollout.real_data_ratio=1",
            "rollout.rollout_schedule=[3, 3, 1000, 1000]",
            "rollout.rollouts_per_step=1",
            "loop.total_steps=5000",
            "loop.buffer_capacity=100",
            "loop.eval_episodes=1000",
            "model.probabilistic=false",
            "model.learned_reward=false",
        ];
        let c = resolve(&ok).unwrap();
        assert_eq!((c.rollout.real_data_ratio, c.rollout_length(0), c.schedule.buffer_capacity), (1.0, 1000, 100));
    }

    /// Several problems, in every section and of every kind (range, type, unknown key), are
    /// reported together. Catches a validation that stops at the first problem or drops a
    /// section's problems (the `[sac]` ones come through `SacConfig::validate`).
    #[test]
    fn mbpo_config_reports_every_problem_at_once() {
        let e = resolve(&[
            "sac.gamma=2",
            "rollout.freq_train_model=0",
            "loop.trial_length=0",
            "train.epochs=many",
            "model.members=4",
            "x.y=1",
        ])
        .unwrap_err();
        let Error::InvalidConfigs(all) = &e else { panic!("one error only: {e}") };
        let text = e.to_string();
        for key in [
            "sac.gamma",
            "rollout.freq_train_model",
            "loop.trial_length",
            "train.epochs",
            "train.num_elites",
            "x: unknown key",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(all.len() >= 6, "{text}");
        // The probe's own loop section reports nothing.
        assert!(!text.contains("loop.random_steps") && !text.contains("loop.eval_every"), "{text}");
    }

    /// Every preset for every task, origin and gymnasium id is valid. Catches a preset edited
    /// out of its own ranges, or a gymnasium id sent to the wrong override.
    #[test]
    fn mbpo_config_presets_are_valid() {
        for env in EnvKind::ALL {
            for origin in [TaskOrigin::BuiltIn, TaskOrigin::Gymnasium] {
                for preset in [MbpoPreset::Reference, MbpoPreset::Demo] {
                    let c = MbpoConfig::preset(env, origin, preset);
                    c.validate().unwrap_or_else(|e| panic!("{env:?} {origin:?} {preset:?}: {e}"));
                    c.sac_config().validate().unwrap_or_else(|e| panic!("{env:?} {origin:?} {preset:?}: {e}"));
                }
            }
        }
        let ids =
            ["InvertedPendulum-v5", "HalfCheetah-v5", "Hopper-v5", "Pendulum-v1", "Reacher-v5", "gymnasium:Hopper-v5"];
        for id in ids {
            for preset in [MbpoPreset::Reference, MbpoPreset::Demo] {
                let c = MbpoConfig::preset_for_gymnasium(id, preset);
                c.validate().unwrap_or_else(|e| panic!("{id} {preset:?}: {e}"));
                c.sac_config().validate().unwrap_or_else(|e| panic!("{id} {preset:?}: {e}"));
            }
        }
        let gym = |id| MbpoConfig::preset_for_gymnasium(id, MbpoPreset::Reference);
        // mbpo_inv_pendulum.yaml, mbpo_halfcheetah.yaml, mbpo_hopper.yaml.
        let inv = gym("InvertedPendulum-v5");
        assert_eq!((inv.schedule.total_steps, inv.rollout.epoch_length, inv.sac.updates_per_step), (25_000, 250, 10));
        assert_eq!((inv.train.weight_decay, inv.sac.target_entropy, inv.env), (1e-5, Some(-1.0), EnvKind::Cartpole));
        let cheetah = gym("HalfCheetah-v5");
        assert_eq!((cheetah.schedule.buffer_capacity, cheetah.rollout.rollout_schedule), (400_000, [20, 150, 1, 1]));
        assert_eq!((cheetah.sac.actor_hidden.clone(), cheetah.schedule.trial_length), (vec![512, 512], 1_000));
        let hopper = gym("gymnasium:Hopper-v5");
        assert_eq!((hopper.rollout.rollout_schedule, hopper.sac.updates_per_step), ([20, 150, 1, 15], 40));
        assert_eq!(
            (hopper.sac.learn_alpha, hopper.sac.initial_alpha, hopper.sac.target_update_interval),
            (false, 0.2, 4)
        );
        assert_eq!(hopper.model_buffer_capacity(), 400 * 250 * 4 * 15);
        assert_eq!(gym("Reacher-v5"), cheetah);
        assert_eq!(
            gym("Pendulum-v1"),
            MbpoConfig::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, MbpoPreset::Reference)
        );
        let demo = MbpoConfig::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, MbpoPreset::Demo);
        assert_eq!((demo.model.members, demo.sac.batch_size, demo.schedule.total_steps), (5, 128, 3_000));
        assert!("fast".parse::<MbpoPreset>().is_err());
        assert_eq!("demo".parse::<MbpoPreset>().unwrap(), MbpoPreset::Demo);
    }

    /// The reference cartpole preset is mbrl-lib's `mbpo_cartpole.yaml` with `mbpo.yaml` and
    /// `gaussian_mlp_ensemble.yaml`. Catches a value mistyped or mapped onto the wrong key.
    #[test]
    fn mbpo_config_reference_cartpole_is_mbrl_libs() {
        let c = MbpoConfig::preset(EnvKind::Cartpole, TaskOrigin::BuiltIn, MbpoPreset::Reference);
        assert_eq!(
            c.model,
            ModelConfig { members: 7, hidden: vec![200; 4], probabilistic: true, learned_reward: true }
        );
        let t = &c.train;
        assert_eq!((t.lr, t.weight_decay, t.batch_size, t.validation_ratio), (1e-3, 5e-5, 256, 0.2));
        assert_eq!((t.patience, t.num_elites, t.learn_logvar_bounds, t.bootstrap), (5, 5, false, true));
        let r = &c.rollout;
        assert_eq!((r.rollouts_per_step, r.rollout_schedule, r.retain_epochs), (400, [1, 15, 1, 1], 1));
        assert_eq!((r.real_data_ratio, r.freq_train_model, r.epoch_length), (0.0, 200, 200));
        let s = &c.sac;
        assert_eq!((s.actor_hidden.clone(), s.critic_hidden.clone()), (vec![256, 256], vec![256, 256]));
        assert_eq!((s.gamma, s.tau, s.lr_actor, s.lr_critic, s.lr_alpha), (0.99, 0.005, 3e-4, 3e-4, 3e-4));
        assert_eq!((s.batch_size, s.target_update_interval, s.updates_per_step), (256, 4, 20));
        assert_eq!((s.learn_alpha, s.initial_alpha, s.target_entropy), (true, 1.0, Some(-0.05)));
        let l = &c.schedule;
        assert_eq!((l.initial_exploration_steps, l.total_steps, l.buffer_capacity), (5_000, 10_000, 5_000));
        assert_eq!((l.trial_length, l.eval_episodes), (200, 1));
        assert_eq!((c.rollouts_per_batch(), c.model_buffer_capacity()), (80_000, 80_000));
        // The defaults of the sections are the same settings.
        assert_eq!((RolloutConfig::default(), MbpoLoopConfig::default()), (c.rollout.clone(), c.schedule.clone()));
        // The pendulum takes the cartpole's settings.
        let p = MbpoConfig::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, MbpoPreset::Reference);
        assert_eq!(MbpoConfig { env: EnvKind::Cartpole, ..p }, c);
    }

    /// The rollout length at the schedule's edges is mbrl-lib's: the values are
    /// `int(truncated_linear(*schedule, epoch + 1))` run in Python from `mbrl/util/math.py`.
    /// Catches an off-by-one in the epoch (mbrl-lib evaluates at `epoch + 1`), exact integer
    /// arithmetic where mbrl-lib rounds in floating point, and the equal-epochs case (always
    /// `max_length`).
    #[test]
    fn mbpo_config_rollout_length_follows_mbrl_lib() {
        let mut c = MbpoConfig::preset(EnvKind::Cartpole, TaskOrigin::BuiltIn, MbpoPreset::Reference);
        // A schedule and its (epoch, length) points.
        type Points = ([usize; 4], &'static [(usize, usize)]);
        let table: &[Points] = &[
            ([1, 15, 1, 1], &[(0, 1), (7, 1), (14, 1), (1000, 1)]),
            // Hopper's: 1 up to epoch 19 (x = 20 = min_epoch), 15 from epoch 149 (x = 150).
            (
                [20, 150, 1, 15],
                &[(0, 1), (19, 1), (20, 1), (50, 4), (84, 8), (99, 9), (148, 14), (149, 15), (1000, 15)],
            ),
            ([20, 100, 1, 25], &[(19, 1), (50, 10), (84, 20), (98, 24), (99, 25), (100, 25)]),
            ([3, 7, 2, 10], &[(0, 2), (1, 2), (2, 2), (3, 4), (4, 6), (5, 8), (6, 10), (7, 10)]),
            // 15 / 22 × 22 + 1 is just below 16 in f64: mbrl-lib gives 15 at epoch 14 where exact
            // arithmetic gives 16.
            ([0, 22, 1, 23], &[(0, 2), (13, 15), (14, 15), (20, 22), (21, 23), (50, 23)]),
            ([5, 5, 2, 9], &[(0, 9), (4, 9), (5, 9), (100, 9)]),
        ];
        for (schedule, points) in table {
            c.rollout.rollout_schedule = *schedule;
            for &(epoch, k) in *points {
                assert_eq!(c.rollout_length(epoch), k, "{schedule:?} at epoch {epoch}");
            }
        }
        // The last epoch there is does not overflow `epoch + 1`.
        c.rollout.rollout_schedule = [0, 22, 1, 23];
        assert_eq!(c.rollout_length(usize::MAX), 23);
    }

    /// The model buffer holds `rollouts_per_step × freq_train_model × ⌈epoch_length /
    /// freq_train_model⌉ × retain_epochs × max_length` transitions. Catches a factor left out,
    /// a floor where mbrl-lib takes the ceiling, and an overflow instead of a refusal.
    #[test]
    fn mbpo_config_model_buffer_capacity() {
        let mut c = MbpoConfig::preset(EnvKind::Cartpole, TaskOrigin::BuiltIn, MbpoPreset::Reference);
        c.rollout = RolloutConfig {
            rollouts_per_step: 3,
            rollout_schedule: [2, 9, 4, 7],
            retain_epochs: 5,
            real_data_ratio: 0.0,
            freq_train_model: 10,
            epoch_length: 45,
        };
        assert_eq!(c.rollouts_per_batch(), 30);
        assert_eq!(c.model_buffer_capacity(), 30 * 5 * 5 * 7);
        c.rollout.epoch_length = 40;
        assert_eq!(c.model_buffer_capacity(), 30 * 4 * 5 * 7);
        c.rollout.epoch_length = 5;
        assert_eq!(c.model_buffer_capacity(), 30 * 5 * 7);
        c.validate().unwrap();
        c.sac.batch_size = 30 * 5 * 7 + 1;
        assert!(c.validate().unwrap_err().to_string().contains("sac.batch_size"));
        c.rollout.rollouts_per_step = usize::MAX;
        assert_eq!(c.model_buffer_capacity(), usize::MAX);
        assert!(c.validate().unwrap_err().to_string().contains("rollout: the model buffer"));
    }

    /// A config written as TOML reads back equal, through serde and through `resolve` with the
    /// text as the file, with and without the optional keys; the SAC view carries the settings
    /// over. Catches a field that does not serialise (the schedule array), an optional key
    /// refused when it is set, and a loop setting not passed on to SAC.
    #[test]
    fn mbpo_config_toml_round_trip() {
        let mut c = MbpoConfig::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, MbpoPreset::Demo);
        c.seed = 17;
        c.rollout.rollout_schedule = [2, 8, 1, 4];
        for (entropy, clip) in [(None, None), (Some(-0.5), Some(3.0))] {
            c.sac.target_entropy = entropy;
            c.train.clip_grad_norm = clip;
            let text = c.to_toml();
            assert!(text.contains("[rollout]") && text.contains("[loop]"), "{text}");
            assert_eq!(toml::from_str::<MbpoConfig>(&text).unwrap(), c);
            // A base that differs everywhere but leaves the optional keys unset (a file can set
            // them, not unset them).
            let base = MbpoConfig::preset_for_gymnasium("Hopper-v5", MbpoPreset::Reference);
            assert_eq!(MbpoConfig::resolve(base, Some(&text), &[]).unwrap(), c);
        }
        let s = c.sac_config();
        assert_eq!((s.env, s.seed, s.sac.clone()), (EnvKind::Pendulum, 17, c.sac.clone()));
        let l = &s.schedule;
        assert_eq!(
            (l.buffer_capacity, l.random_steps, l.total_steps, l.eval_every, l.eval_episodes),
            (100_000, 500, 3_000, 250, 3)
        );
    }
}
