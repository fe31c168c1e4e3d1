//! The environments' planning functions in f64: the CPU twins of `shaders/env_*.wgsl`
//! (`env_step`, `env_reward`, `env_terminated`), built on the native environments' own physics
//! so that the maths exists once on the host.

use super::{Cartpole, Pendulum, Quadratic};

/// The environment functions of a task in f64 (twins of `shaders/env_*.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefTask {
    /// env_cartpole.wgsl
    Cartpole,
    /// env_pendulum.wgsl
    Pendulum,
    /// env_quadratic.wgsl
    Quadratic,
}

impl RefTask {
    /// `env_step`.
    pub fn step(self, s: &[f64], a: &[f64]) -> Vec<f64> {
        match self {
            RefTask::Cartpole => Cartpole::dynamics(s, a[0]).to_vec(),
            RefTask::Pendulum => Pendulum::dynamics_obs(s, a[0]).to_vec(),
            RefTask::Quadratic => Quadratic::dynamics(s, a),
        }
    }

    /// `env_terminated`.
    pub fn terminated(self, _a: &[f64], next: &[f64]) -> bool {
        match self {
            RefTask::Cartpole => Cartpole::terminated(next),
            _ => false,
        }
    }

    /// `env_reward`.
    pub fn reward(self, s: &[f64], a: &[f64], next: &[f64]) -> f64 {
        match self {
            RefTask::Cartpole => {
                if Cartpole::terminated(next) {
                    0.0
                } else {
                    1.0
                }
            }
            RefTask::Pendulum => Pendulum::reward_obs(s, a[0]),
            RefTask::Quadratic => Quadratic::reward(a, next),
        }
    }
}
