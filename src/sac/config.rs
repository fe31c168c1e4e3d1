//! The configuration of a SAC run: the algorithm (`[sac]`) and the loop (`[loop]`) sections,
//! the presets, and their resolution from a preset, a TOML file and `key.path=value`
//! assignments (`util::resolve_layers`, as a PETS config; every problem reported at once).
//!
//! Presets (`reference`) follow the SAC papers' settings as pranz24/pytorch-soft-actor-critic,
//! Stable-Baselines3 and CleanRL all use them: 2 × 256 ReLU networks, batch 256, learning rate
//! 3e-4 for the actor, the critics and the temperature (pranz24, SB3; CleanRL uses 1e-3 for the
//! critics and α), γ 0.99, τ 0.005, targets averaged and the actor updated on every update
//! (pranz24, SB3; CleanRL delays the actor to every second update), one update per environment
//! step, a buffer of 10⁶ transitions, and a learned α starting at 1.0 (`log α = 0`, the start of
//! all three: SB3's `ent_coef = "auto"`, CleanRL's and pranz24's zero `log_alpha`) tuned towards
//! the entropy `−|A|`. Random warm-up steps: 5 000 on gymnasium tasks (CleanRL's
//! `learning_starts`), 1 000 on the built-in pendulum and cartpole; 10⁶ environment steps on
//! gymnasium tasks, 20 000 on the built-in ones (rl-zoo3's Pendulum-v1 budget). `demo` is
//! 2 × 64 networks, batch 128, learning rates 1e-3 (rl-zoo3's Pendulum-v1 rate) and 15 000 steps,
//! 1 000 of them random, sized for the built-in pendulum on a CPU rasteriser.

use serde::{Deserialize, Serialize};

use super::reference::{ActionScale, HiddenActivation, NetShapes, UpdateSettings};
use crate::env::EnvKind;
use crate::error::{Error, Result};
use crate::kernels::mlp_fused::FUSED_MAX_LAYERS;
use crate::kernels::{MAX_ACT, MAX_OBS};
use crate::model::MAX_PARAMS;
use crate::util;

/// Most gradient updates per environment step.
pub const MAX_UPDATES_PER_STEP: usize = 64;

/// The algorithm's settings (`[sac]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlgorithmConfig {
    /// The actor's hidden widths (reference: 2 × 256).
    pub actor_hidden: Vec<usize>,
    /// The actor's hidden activation, `relu` or `silu` (reference: relu).
    pub actor_activation: HiddenActivation,
    /// Each critic's hidden widths (reference: 2 × 256).
    pub critic_hidden: Vec<usize>,
    /// The critics' hidden activation (reference: relu).
    pub critic_activation: HiddenActivation,
    /// Transitions per minibatch, drawn with replacement (reference: 256).
    pub batch_size: usize,
    /// The actor's Adam learning rate (reference: 3e-4).
    pub lr_actor: f64,
    /// The critics' Adam learning rate (reference: 3e-4).
    pub lr_critic: f64,
    /// `log α`'s Adam learning rate (reference: 3e-4).
    pub lr_alpha: f64,
    /// Discount γ in [0, 1) (reference: 0.99).
    pub gamma: f64,
    /// Polyak coefficient τ in (0, 1] (reference: 0.005).
    pub tau: f64,
    /// Average the target critics after every this many updates (reference: 1).
    pub target_update_interval: usize,
    /// Update the actor and α on every this many updates (reference: 1).
    pub actor_update_frequency: usize,
    /// Learn α towards `target_entropy` (reference: true).
    pub learn_alpha: bool,
    /// α at the start, or always when it is not learned (reference: 1.0).
    pub initial_alpha: f64,
    /// The entropy α is tuned towards; unset: `−|A|`.
    pub target_entropy: Option<f64>,
    /// Gradient updates per environment step after the warm-up (reference: 1).
    pub updates_per_step: usize,
    /// A SAC checkpoint (`model.safetensors` of a run, or `policy.safetensors` of a
    /// distillation) whose actor the run starts from, instead of fresh weights; unset: fresh.
    pub init_policy: Option<String>,
    /// Updates at the start in which only the critics learn (the actor and α wait), so that an
    /// initial policy meets critics that already value it (default 0).
    pub actor_warmup_updates: u64,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        Self {
            actor_hidden: vec![256, 256],
            actor_activation: HiddenActivation::Relu,
            critic_hidden: vec![256, 256],
            critic_activation: HiddenActivation::Relu,
            batch_size: 256,
            lr_actor: 3e-4,
            lr_critic: 3e-4,
            lr_alpha: 3e-4,
            gamma: 0.99,
            tau: 0.005,
            target_update_interval: 1,
            actor_update_frequency: 1,
            learn_alpha: true,
            initial_alpha: 1.0,
            target_entropy: None,
            updates_per_step: 1,
            init_policy: None,
            actor_warmup_updates: 0,
        }
    }
}

/// The schedule of a SAC run (`[loop]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacLoopConfig {
    /// Transitions the replay buffer holds, the oldest replaced first (reference: 10⁶).
    pub buffer_capacity: usize,
    /// Environment steps with uniformly random actions and no updates before learning starts
    /// (reference: 1 000 on built-in tasks, 5 000 on gymnasium tasks).
    pub random_steps: usize,
    /// Environment steps of the whole run, the random ones included (reference: 20 000 on
    /// built-in tasks, 10⁶ on gymnasium tasks).
    pub total_steps: usize,
    /// Evaluate the deterministic policy after every this many environment steps (reference:
    /// 2 000 on built-in tasks, 10 000 on gymnasium tasks).
    pub eval_every: usize,
    /// Episodes per evaluation (reference: 10).
    pub eval_episodes: usize,
}

impl Default for SacLoopConfig {
    fn default() -> Self {
        Self {
            buffer_capacity: 1_000_000,
            random_steps: 1_000,
            total_steps: 20_000,
            eval_every: 2_000,
            eval_episodes: 10,
        }
    }
}

/// Everything a SAC run needs; the TOML sections are `[sac]` and `[loop]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SacConfig {
    /// Built-in environment (or the preset's base for an external one).
    pub env: EnvKind,
    /// Seed of the environment, the initial networks, the warm-up actions and every update.
    pub seed: u64,
    /// An environment outside the crate that the caller drives (e.g. `gymnasium:Hopper-v5`);
    /// not settable from a config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_env: Option<String>,
    /// The algorithm.
    pub sac: AlgorithmConfig,
    /// The schedule.
    #[serde(rename = "loop")]
    pub schedule: SacLoopConfig,
}

/// Named starting points of a SAC config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SacPreset {
    /// The papers' settings (module documentation).
    Reference,
    /// Small enough for the built-in pendulum on a CPU rasteriser in minutes.
    Demo,
}

impl std::str::FromStr for SacPreset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reference" => Ok(SacPreset::Reference),
            "demo" => Ok(SacPreset::Demo),
            other => Err(Error::config("preset", format!("unknown preset {other:?}; known: reference, demo"))),
        }
    }
}

/// Where the task comes from, which sets the reference schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOrigin {
    /// The crate's pendulum or cartpole.
    BuiltIn,
    /// A gymnasium (MuJoCo) task driven from Python.
    Gymnasium,
}

/// Most evaluation episodes per evaluation: every evaluation plays them all before the run goes
/// on (a typo of a few zeros would stall a run for hours).
pub const MAX_EVAL_EPISODES: usize = 1_000;

/// Optional keys that a serialised config leaves out when unset.
const OPTIONAL_KEYS: &[&str] = &["sac.target_entropy", "sac.init_policy"];

impl SacConfig {
    /// The preset for `env` from `origin`.
    pub fn preset(env: EnvKind, origin: TaskOrigin, preset: SacPreset) -> Self {
        let mut c = SacConfig {
            env,
            seed: 0,
            external_env: None,
            sac: AlgorithmConfig::default(),
            schedule: SacLoopConfig::default(),
        };
        if origin == TaskOrigin::Gymnasium {
            c.schedule =
                SacLoopConfig { random_steps: 5_000, total_steps: 1_000_000, eval_every: 10_000, ..c.schedule };
        }
        if preset == SacPreset::Demo {
            c.sac = AlgorithmConfig {
                actor_hidden: vec![64, 64],
                critic_hidden: vec![64, 64],
                batch_size: 128,
                lr_actor: 1e-3,
                lr_critic: 1e-3,
                lr_alpha: 1e-3,
                ..AlgorithmConfig::default()
            };
            c.schedule = SacLoopConfig {
                buffer_capacity: 100_000,
                random_steps: 1_000,
                total_steps: 15_000,
                eval_every: 2_500,
                eval_episodes: 5,
            };
        }
        c
    }

    /// Preset, then a TOML file, then `key.path=value` assignments (`sac.gamma=0.98`); unknown
    /// keys (with their path) and impossible values are errors, all reported at once.
    pub fn resolve(
        env: EnvKind,
        origin: TaskOrigin,
        preset: SacPreset,
        file: Option<&str>,
        sets: &[String],
    ) -> Result<Self> {
        util::resolve_layers(&Self::preset(env, origin, preset), file, sets, OPTIONAL_KEYS, |_, _| {}, Self::validate)
    }

    /// Checks both sections; every problem is reported at once with its key path.
    pub fn validate(&self) -> Result<()> {
        let mut errs = self.sac.problems();
        errs.extend(self.schedule.problems());
        if self.sac.batch_size > self.schedule.buffer_capacity {
            errs.push(Error::config(
                "sac.batch_size",
                format!(
                    "{} exceeds loop.buffer_capacity = {}; a minibatch is drawn from the buffer",
                    self.sac.batch_size, self.schedule.buffer_capacity
                ),
            ));
        }
        Error::collect(errs)
    }

    /// The entropy α is tuned towards for `act_dim` actions: `sac.target_entropy`, else `−act_dim`.
    pub fn target_entropy(&self, act_dim: usize) -> f64 {
        self.sac.target_entropy.unwrap_or(-(act_dim as f64))
    }

    /// The networks' shapes for a task of `obs_dim` observations and `act_dim` actions.
    pub fn net_shapes(&self, obs_dim: usize, act_dim: usize) -> NetShapes {
        NetShapes {
            obs_dim,
            act_dim,
            actor_hidden: self.sac.actor_hidden.clone(),
            actor_activation: self.sac.actor_activation,
            critic_hidden: self.sac.critic_hidden.clone(),
            critic_activation: self.sac.critic_activation,
        }
    }

    /// The settings of one update for a task with action bounds `lower`..`upper` (finite).
    pub fn update_settings(&self, lower: &[f64], upper: &[f64]) -> Result<UpdateSettings> {
        let scale = ActionScale::from_bounds(lower, upper)?;
        let a = &self.sac;
        Ok(UpdateSettings {
            gamma: a.gamma,
            tau: a.tau,
            lr_actor: a.lr_actor,
            lr_critic: a.lr_critic,
            lr_alpha: a.lr_alpha,
            target_update_interval: a.target_update_interval as u64,
            actor_update_frequency: a.actor_update_frequency as u64,
            learn_alpha: a.learn_alpha,
            target_entropy: self.target_entropy(scale.act_dim()),
            scale,
        })
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }
}

impl AlgorithmConfig {
    /// Every problem of the section, keys as `sac.<key>`.
    fn problems(&self) -> Vec<Error> {
        let mut errs = Vec::new();
        let mut bad = |f: &str, r: String| errs.push(Error::config(format!("sac.{f}"), r));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        for (f, v) in [("lr_actor", self.lr_actor), ("lr_critic", self.lr_critic), ("lr_alpha", self.lr_alpha)] {
            if !positive(v) {
                bad(f, format!("{} must be a positive finite number", util::short_float(v)));
            }
        }
        if !(self.gamma.is_finite() && (0.0..1.0).contains(&self.gamma)) {
            bad("gamma", format!("{} is outside [0, 1)", util::short_float(self.gamma)));
        }
        if !(self.tau.is_finite() && self.tau > 0.0 && self.tau <= 1.0) {
            bad("tau", format!("{} is outside (0, 1]", util::short_float(self.tau)));
        }
        if !positive(self.initial_alpha) {
            bad("initial_alpha", format!("{} must be a positive finite number", util::short_float(self.initial_alpha)));
        }
        if self.init_policy.as_deref().is_some_and(|p| p.trim().is_empty()) {
            bad("init_policy", "an empty path; leave the key out to start from fresh weights".into());
        }
        if let Some(h) = self.target_entropy.filter(|h| !h.is_finite()) {
            bad("target_entropy", format!("{} is not a finite number", util::short_float(h)));
        }
        for (f, v) in [
            ("batch_size", self.batch_size),
            ("target_update_interval", self.target_update_interval),
            ("actor_update_frequency", self.actor_update_frequency),
        ] {
            if v == 0 {
                bad(f, "must be at least 1".into());
            }
        }
        if !(1..=MAX_UPDATES_PER_STEP).contains(&self.updates_per_step) {
            bad("updates_per_step", format!("{} is outside 1..={MAX_UPDATES_PER_STEP}", self.updates_per_step));
        }
        for (f, widths) in [("actor_hidden", &self.actor_hidden), ("critic_hidden", &self.critic_hidden)] {
            if let Some(why) = widths_problem(widths) {
                bad(f, why);
            }
        }
        errs
    }
}

/// Why hidden `widths` do not fit the crate's networks: at most `FUSED_MAX_LAYERS` layers in
/// all, every width at least 1, no layer over `MAX_PARAMS` weights (with inputs of up to
/// `MAX_OBS + MAX_ACT` values).
pub(crate) fn widths_problem(widths: &[usize]) -> Option<String> {
    if widths.is_empty() || widths.len() >= FUSED_MAX_LAYERS {
        return Some(format!(
            "{} hidden layers; use 1 to {} (the networks take at most {FUSED_MAX_LAYERS} layers)",
            widths.len(),
            FUSED_MAX_LAYERS - 1
        ));
    }
    if widths.contains(&0) {
        return Some(format!("{widths:?}: every width must be at least 1"));
    }
    let ins = std::iter::once(MAX_OBS + MAX_ACT).chain(widths.iter().copied());
    if ins.zip(widths).any(|(i, o)| (i as u64).saturating_mul(*o as u64) > MAX_PARAMS) {
        return Some(format!("{widths:?}: a layer would have more than {MAX_PARAMS} weights"));
    }
    None
}

impl SacLoopConfig {
    /// Every problem of the section, keys as `loop.<key>`.
    fn problems(&self) -> Vec<Error> {
        let mut errs = Vec::new();
        let mut bad = |f: &str, r: String| errs.push(Error::config(format!("loop.{f}"), r));
        if self.buffer_capacity == 0 || self.buffer_capacity as u64 > u32::MAX as u64 {
            bad("buffer_capacity", format!("{} is outside 1..={}", self.buffer_capacity, u32::MAX));
        }
        for (f, v) in [("eval_every", self.eval_every), ("eval_episodes", self.eval_episodes)] {
            if v == 0 {
                bad(f, "must be at least 1".into());
            }
        }
        if self.eval_episodes > MAX_EVAL_EPISODES {
            bad(
                "eval_episodes",
                format!("{} is above {MAX_EVAL_EPISODES} episodes per evaluation", self.eval_episodes),
            );
        }
        if self.total_steps < self.random_steps {
            bad(
                "total_steps",
                format!(
                    "{} is below loop.random_steps = {}: the run would never learn",
                    self.total_steps, self.random_steps
                ),
            );
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(sets: &[&str]) -> Result<SacConfig> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        SacConfig::resolve(EnvKind::Pendulum, TaskOrigin::BuiltIn, SacPreset::Reference, None, &sets)
    }

    /// Every impossible value is refused naming its key. Catches a range check that is missing,
    /// names another key, or lets NaN and infinity through (`NaN < x` is false both ways).
    #[test]
    fn sac_config_names_each_bad_key() {
        let cases: &[(&str, &str)] = &[
            ("sac.gamma=1.0", "sac.gamma"),
            ("sac.gamma=nan", "sac.gamma"),
            ("sac.tau=0", "sac.tau"),
            ("sac.tau=1.5", "sac.tau"),
            ("sac.batch_size=0", "sac.batch_size"),
            ("sac.batch_size=2000000", "sac.batch_size"),
            ("sac.lr_actor=0", "sac.lr_actor"),
            ("sac.lr_critic=-1e-3", "sac.lr_critic"),
            ("sac.lr_alpha=inf", "sac.lr_alpha"),
            ("sac.initial_alpha=0", "sac.initial_alpha"),
            ("sac.target_entropy=nan", "sac.target_entropy"),
            ("sac.actor_hidden=[]", "sac.actor_hidden"),
            ("sac.critic_hidden=[0, 4]", "sac.critic_hidden"),
            ("sac.actor_hidden=[8, 8, 8, 8, 8, 8, 8, 8]", "sac.actor_hidden"),
            ("sac.critic_hidden=[100000, 100000]", "sac.critic_hidden"),
            ("sac.actor_activation=tanh", "sac.actor_activation"),
            ("sac.target_update_interval=0", "sac.target_update_interval"),
            ("sac.actor_update_frequency=0", "sac.actor_update_frequency"),
            ("sac.updates_per_step=0", "sac.updates_per_step"),
            ("sac.updates_per_step=65", "sac.updates_per_step"),
            ("sac.learn_alpha=3", "sac.learn_alpha"),
            ("sac.unknown=1", "sac.unknown: unknown key"),
            ("loop.buffer_capacity=0", "loop.buffer_capacity"),
            ("loop.buffer_capacity=5000000000", "loop.buffer_capacity"),
            ("loop.eval_every=0", "loop.eval_every"),
            ("loop.eval_episodes=0", "loop.eval_episodes"),
            ("loop.total_steps=999", "loop.total_steps"),
        ];
        for (set, key) in cases {
            let e = resolve(&[set]).expect_err(set).to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
        // The values at the edges of the ranges are accepted.
        let ok = ["sac.gamma=0", "sac.tau=1", "sac.updates_per_step=64", "sac.actor_activation=silu"];
        let c = resolve(&ok).unwrap();
        assert_eq!((c.sac.gamma, c.sac.tau, c.sac.actor_activation), (0.0, 1.0, HiddenActivation::Silu));
        assert_eq!(resolve(&["sac.target_entropy=-3.5"]).unwrap().target_entropy(2), -3.5);
    }

    /// Several problems, in both sections and of every kind (range, type, unknown key), are
    /// reported together. Catches a validation that stops at the first problem.
    #[test]
    fn sac_config_reports_every_problem_at_once() {
        let e = resolve(&["sac.gamma=2", "loop.eval_every=0", "sac.batch_size=many", "sac.lr_critic=0", "x.y=1"])
            .unwrap_err();
        let Error::InvalidConfigs(all) = &e else { panic!("one error only: {e}") };
        let text = e.to_string();
        for key in ["sac.gamma", "loop.eval_every", "sac.batch_size", "sac.lr_critic", "x: unknown key"] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(all.len() >= 5, "{text}");
    }

    /// Every preset for every task and origin is valid, and the presets say what the module
    /// documentation says. Catches a preset edited out of its own ranges.
    #[test]
    fn sac_config_presets_are_valid() {
        for env in EnvKind::ALL {
            for origin in [TaskOrigin::BuiltIn, TaskOrigin::Gymnasium] {
                for preset in [SacPreset::Reference, SacPreset::Demo] {
                    SacConfig::preset(env, origin, preset).validate().unwrap();
                }
            }
        }
        let r = SacConfig::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, SacPreset::Reference);
        assert_eq!((r.sac.actor_hidden.clone(), r.sac.batch_size, r.sac.initial_alpha), (vec![256, 256], 256, 1.0));
        assert_eq!((r.schedule.random_steps, r.target_entropy(3)), (1_000, -3.0));
        let g = SacConfig::preset(EnvKind::Pendulum, TaskOrigin::Gymnasium, SacPreset::Reference);
        assert_eq!((g.schedule.random_steps, g.schedule.buffer_capacity), (5_000, 1_000_000));
        let d = SacConfig::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, SacPreset::Demo);
        assert_eq!((d.sac.critic_hidden.clone(), d.schedule.random_steps), (vec![64, 64], 1_000));
        assert!("fast".parse::<SacPreset>().is_err());
    }

    /// A config written as TOML reads back equal, through serde and through `resolve` with the
    /// text as the file, with and without the optional target entropy. Catches a field that
    /// does not serialise, and the optional key refused when it is set.
    #[test]
    fn sac_config_toml_round_trip() {
        let mut c = SacConfig::preset(EnvKind::Cartpole, TaskOrigin::BuiltIn, SacPreset::Demo);
        c.seed = 17;
        for entropy in [None, Some(-0.5)] {
            c.sac.target_entropy = entropy;
            let text = c.to_toml();
            assert_eq!(toml::from_str::<SacConfig>(&text).unwrap(), c);
            let r = SacConfig::resolve(EnvKind::Cartpole, TaskOrigin::BuiltIn, SacPreset::Reference, Some(&text), &[])
                .unwrap();
            assert_eq!(r, c);
        }
        let s = c.update_settings(&[-1.0], &[3.0]).unwrap();
        assert_eq!((s.scale.center.clone(), s.scale.half.clone(), s.target_entropy), (vec![1.0], vec![2.0], -0.5));
    }
}
