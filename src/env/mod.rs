//! Environments: the gymnasium-shaped [`Env`] trait, native continuous cartpole and pendulum
//! (f64), and the planning [`Task`]: dimensions, action bounds and the WGSL reward,
//! termination and (for analytic planning) dynamics functions that the rollout kernels call.

mod cartpole;
mod pendulum;
mod quadratic;
pub mod reference;

pub use cartpole::Cartpole;
pub use pendulum::Pendulum;
pub use quadratic::Quadratic;

use crate::error::{Error, Result};

/// Result of one environment step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Observation after the step.
    pub obs: Vec<f64>,
    /// Reward of the step.
    pub reward: f64,
    /// The episode ended in a terminal state.
    pub terminated: bool,
    /// The episode was cut by the step limit.
    pub truncated: bool,
}

/// A gymnasium-shaped environment.
pub trait Env {
    /// Observation size.
    fn obs_dim(&self) -> usize;
    /// Action size.
    fn act_dim(&self) -> usize;
    /// `(lower, upper)` action bounds.
    fn action_bounds(&self) -> (Vec<f64>, Vec<f64>);
    /// Starts an episode; returns the first observation.
    fn reset(&mut self, seed: u64) -> Vec<f64>;
    /// Applies `action` (clipped to the bounds).
    fn step(&mut self, action: &[f64]) -> Result<Step>;
}

/// The built-in environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    /// Continuous cartpole (balance), 200 steps.
    Cartpole,
    /// Pendulum swing-up (Pendulum-v1), 200 steps.
    Pendulum,
}

impl EnvKind {
    /// Every built-in environment.
    pub const ALL: [EnvKind; 2] = [EnvKind::Cartpole, EnvKind::Pendulum];

    /// Lower-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EnvKind::Cartpole => "cartpole",
            EnvKind::Pendulum => "pendulum",
        }
    }

    /// The WGSL reward / termination / dynamics functions.
    pub fn wgsl(self) -> &'static str {
        match self {
            EnvKind::Cartpole => cartpole::WGSL,
            EnvKind::Pendulum => pendulum::WGSL,
        }
    }

    /// A fresh native environment.
    pub fn make(self) -> Box<dyn Env + Send> {
        match self {
            EnvKind::Cartpole => Box::new(Cartpole::new()),
            EnvKind::Pendulum => Box::new(Pendulum::new()),
        }
    }

    /// The planning task of this environment.
    pub fn task(self) -> Task {
        let env = self.make();
        let (lo, hi) = env.action_bounds();
        Task {
            name: self.name().to_string(),
            obs_dim: env.obs_dim(),
            act_dim: env.act_dim(),
            action_lower: lo,
            action_upper: hi,
            wgsl: self.wgsl().to_string(),
            has_dynamics: true,
        }
    }
}

impl std::str::FromStr for EnvKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cartpole" => Ok(EnvKind::Cartpole),
            "pendulum" => Ok(EnvKind::Pendulum),
            other => Err(Error::config("env", format!("unknown environment {other:?}; known: cartpole, pendulum"))),
        }
    }
}

/// What a planner needs to know about the problem: sizes, action bounds, and WGSL functions
///
/// ```wgsl
/// fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32
/// fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool
/// fn env_step(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>) -> array<f32, MAX_OBS>  // analytic planning only
/// ```
///
/// which may read the uniform `params` (`params.obs_dim`, `params.act_dim`). See
/// `shaders/env_*.wgsl` for the built-in ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Name used in labels and reports.
    pub name: String,
    /// Observation size (≤ `kernels::MAX_OBS`).
    pub obs_dim: usize,
    /// Action size (≤ `kernels::MAX_ACT`).
    pub act_dim: usize,
    /// Lower action bounds.
    pub action_lower: Vec<f64>,
    /// Upper action bounds.
    pub action_upper: Vec<f64>,
    /// WGSL source of the environment functions.
    pub wgsl: String,
    /// `wgsl` defines `env_step`, so the task can be planned with its true dynamics.
    pub has_dynamics: bool,
}

impl Task {
    /// The synthetic quadratic task of any size (benchmarks and planner tests).
    pub fn quadratic(obs_dim: usize, act_dim: usize) -> Self {
        Task {
            name: format!("quadratic{obs_dim}x{act_dim}"),
            obs_dim,
            act_dim,
            action_lower: vec![-1.0; act_dim],
            action_upper: vec![1.0; act_dim],
            wgsl: quadratic::WGSL.to_string(),
            has_dynamics: true,
        }
    }

    /// Checks sizes and bounds.
    pub fn validate(&self) -> Result<()> {
        let mut errs = crate::kernels::check_dims("task.", self.obs_dim, self.act_dim);
        if self.action_lower.len() != self.act_dim || self.action_upper.len() != self.act_dim {
            errs.push(Error::config("task.action_bounds", format!("need {} lower and upper bounds", self.act_dim)));
        } else if self
            .action_lower
            .iter()
            .zip(&self.action_upper)
            .any(|(l, u)| !(l.is_finite() && u.is_finite() && l < u))
        {
            errs.push(Error::config(
                "task.action_bounds",
                "every lower bound must be finite and below its finite upper bound",
            ));
        }
        Error::collect(errs)
    }
}
