//! Pendulum swing-up with the semantics of Pendulum-v1.

use super::{Env, Step};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};

pub(super) const WGSL: &str = crate::kernels::ENV_PENDULUM_WGSL;

/// Pendulum-v1: g 10, m 1, l 1, dt 0.05, torque `u ∈ [−2, 2]`; obs `[cos θ, sin θ, θ̇]`; reward
/// `−(norm(θ)² + 0.1 θ̇² + 0.001 u²)` on the state before the step; reset θ ∈ ±π, θ̇ ∈ ±1;
/// 200 steps, no termination.
#[derive(Debug, Clone)]
pub struct Pendulum {
    th: f64,
    thdot: f64,
    steps: usize,
    /// Steps per episode (default 200).
    pub max_steps: usize,
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

/// Gravity (m/s²).
pub const GRAVITY: f64 = 10.0;
/// Pendulum mass (kg).
pub const MASS: f64 = 1.0;
/// Pendulum length (m).
pub const LENGTH: f64 = 1.0;
/// Time step (s).
pub const DT_S: f64 = 0.05;
/// Largest angular speed (rad/s); faster speeds are clipped.
pub const MAX_SPEED: f64 = 8.0;
/// Largest torque magnitude (N·m); actions are clipped to ±MAX_TORQUE.
pub const MAX_TORQUE: f64 = 2.0;

/// Angle wrapped into `[−π, π)`.
pub fn angle_normalize(x: f64) -> f64 {
    use std::f64::consts::PI;
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl Pendulum {
    /// A pendulum with 200-step episodes.
    pub fn new() -> Self {
        Self { th: 0.0, thdot: 0.0, steps: 0, max_steps: 200 }
    }

    /// Sets `(θ, θ̇)` directly.
    pub fn set_state(&mut self, th: f64, thdot: f64) {
        self.th = th;
        self.thdot = thdot;
        self.steps = 0;
    }

    /// One step of the physics from `(θ, θ̇)` with torque `u` (clipped to the bounds):
    /// `θ̇ ← clip(θ̇ + (3g/(2l)·sin θ + 3/(m l²)·u)·dt, ±8)`, then `θ ← θ + θ̇·dt`.
    pub fn dynamics(th: f64, thdot: f64, u: f64) -> (f64, f64) {
        let u = u.clamp(-MAX_TORQUE, MAX_TORQUE);
        let (g, m, l) = (GRAVITY, MASS, LENGTH);
        let new_thdot =
            (thdot + (3.0 * g / (2.0 * l) * th.sin() + 3.0 / (m * l * l) * u) * DT_S).clamp(-MAX_SPEED, MAX_SPEED);
        (th + new_thdot * DT_S, new_thdot)
    }

    /// The reward of applying `u` in `(θ, θ̇)`: `−(norm(θ)² + 0.1 θ̇² + 0.001 u²)`, `u` clipped.
    pub fn reward(th: f64, thdot: f64, u: f64) -> f64 {
        let u = u.clamp(-MAX_TORQUE, MAX_TORQUE);
        -(angle_normalize(th).powi(2) + 0.1 * thdot * thdot + 0.001 * u * u)
    }

    /// [`Pendulum::dynamics`] on an observation `[cos θ, sin θ, θ̇]` (what a planner sees).
    pub fn dynamics_obs(obs: &[f64], u: f64) -> [f64; 3] {
        let (th, thdot) = Self::dynamics(obs[1].atan2(obs[0]), obs[2], u);
        [th.cos(), th.sin(), thdot]
    }

    /// [`Pendulum::reward`] on an observation `[cos θ, sin θ, θ̇]`.
    pub fn reward_obs(obs: &[f64], u: f64) -> f64 {
        Self::reward(obs[1].atan2(obs[0]), obs[2], u)
    }

    fn obs(&self) -> Vec<f64> {
        vec![self.th.cos(), self.th.sin(), self.thdot]
    }
}

impl Env for Pendulum {
    fn obs_dim(&self) -> usize {
        3
    }
    fn act_dim(&self) -> usize {
        1
    }
    fn action_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![-MAX_TORQUE], vec![MAX_TORQUE])
    }
    fn reset(&mut self, seed: u64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        self.th = rng.random_range(-std::f64::consts::PI..std::f64::consts::PI);
        self.thdot = rng.random_range(-1.0..1.0);
        self.steps = 0;
        self.obs()
    }
    fn step(&mut self, action: &[f64]) -> Result<Step> {
        if action.len() != 1 || !action[0].is_finite() {
            return Err(Error::InvalidInput(format!("pendulum needs one finite action, got {action:?}")));
        }
        let reward = Self::reward(self.th, self.thdot, action[0]);
        (self.th, self.thdot) = Self::dynamics(self.th, self.thdot, action[0]);
        self.steps += 1;
        Ok(Step { obs: self.obs(), reward, terminated: false, truncated: self.steps >= self.max_steps })
    }
}
