//! Continuous cartpole (docs/DESIGN.md): the classic-control dynamics with a continuous force.

use super::{Env, Step};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};

pub(super) const WGSL: &str = crate::kernels::ENV_CARTPOLE_WGSL;

/// Continuous cartpole: obs `[x, ẋ, θ, θ̇]`, action `a ∈ [−1, 1]`, force `10·a`, explicit Euler
/// with τ = 0.02, reset uniform in ±0.05, terminated when `|x| > 2.4` or `|θ| > 12°`, reward 1
/// per step (also on the terminating step), truncated after 200 steps.
#[derive(Debug, Clone)]
pub struct Cartpole {
    state: [f64; 4],
    steps: usize,
    /// Steps per episode (default 200).
    pub max_steps: usize,
}

impl Default for Cartpole {
    fn default() -> Self {
        Self::new()
    }
}

impl Cartpole {
    /// A cartpole with 200-step episodes.
    pub fn new() -> Self {
        Self { state: [0.0; 4], steps: 0, max_steps: 200 }
    }

    /// The true dynamics in f64.
    pub fn dynamics(s: &[f64], a: f64) -> [f64; 4] {
        let (gravity, masscart, masspole, length, tau) = (9.8, 1.0, 0.1, 0.5, 0.02);
        let total_mass = masspole + masscart;
        let polemass_length = masspole * length;
        let force = 10.0 * a.clamp(-1.0, 1.0);
        let (x, x_dot, theta, theta_dot) = (s[0], s[1], s[2], s[3]);
        let (sin, cos) = theta.sin_cos();
        let temp = (force + polemass_length * theta_dot * theta_dot * sin) / total_mass;
        let thetaacc = (gravity * sin - cos * temp) / (length * (4.0 / 3.0 - masspole * cos * cos / total_mass));
        let xacc = temp - polemass_length * thetaacc * cos / total_mass;
        [x + tau * x_dot, x_dot + tau * xacc, theta + tau * theta_dot, theta_dot + tau * thetaacc]
    }

    /// Terminal-state test.
    pub fn terminated(s: &[f64]) -> bool {
        s[0].abs() > 2.4 || s[2].abs() > 12.0 * 2.0 * std::f64::consts::PI / 360.0
    }

    /// Sets the state directly (tests, replays).
    pub fn set_state(&mut self, s: [f64; 4]) {
        self.state = s;
        self.steps = 0;
    }
}

impl Env for Cartpole {
    fn obs_dim(&self) -> usize {
        4
    }
    fn act_dim(&self) -> usize {
        1
    }
    fn action_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![-1.0], vec![1.0])
    }
    fn reset(&mut self, seed: u64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for v in &mut self.state {
            *v = rng.random_range(-0.05..0.05);
        }
        self.steps = 0;
        self.state.to_vec()
    }
    fn step(&mut self, action: &[f64]) -> Result<Step> {
        if action.len() != 1 || !action[0].is_finite() {
            return Err(Error::InvalidInput(format!("cartpole needs one finite action, got {action:?}")));
        }
        self.state = Self::dynamics(&self.state, action[0]);
        self.steps += 1;
        Ok(Step {
            obs: self.state.to_vec(),
            reward: 1.0,
            terminated: Self::terminated(&self.state),
            truncated: self.steps >= self.max_steps,
        })
    }
}
