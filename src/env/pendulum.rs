//! Pendulum swing-up with the semantics of Pendulum-v1.

use super::{Env, Step};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};

pub(super) const WGSL: &str = include_str!("../../shaders/env_pendulum.wgsl");

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
        (vec![-2.0], vec![2.0])
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
        let (g, m, l, dt) = (10.0, 1.0, 1.0, 0.05);
        let u = action[0].clamp(-2.0, 2.0);
        let reward = -(angle_normalize(self.th).powi(2) + 0.1 * self.thdot * self.thdot + 0.001 * u * u);
        let new_thdot =
            (self.thdot + (3.0 * g / (2.0 * l) * self.th.sin() + 3.0 / (m * l * l) * u) * dt).clamp(-8.0, 8.0);
        self.th += new_thdot * dt;
        self.thdot = new_thdot;
        self.steps += 1;
        Ok(Step { obs: self.obs(), reward, terminated: false, truncated: self.steps >= self.max_steps })
    }
}
