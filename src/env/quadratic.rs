//! A synthetic task of any size: single integrators with a quadratic cost (benchmarks, tests).

use super::{Env, Step};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};

pub(super) const WGSL: &str = crate::kernels::ENV_QUADRATIC_WGSL;

/// `next_d = s_d + 0.1·a_(d mod act_dim)`, reward `−(Σ next² + 0.01·Σ a²)`, actions in ±1,
/// reset uniform in ±1, 100 steps, no termination.
#[derive(Debug, Clone)]
pub struct Quadratic {
    state: Vec<f64>,
    act_dim: usize,
    steps: usize,
}

impl Quadratic {
    /// A task with the given sizes.
    pub fn new(obs_dim: usize, act_dim: usize) -> Self {
        Self { state: vec![0.0; obs_dim], act_dim, steps: 0 }
    }

    /// The dynamics in f64.
    pub fn dynamics(s: &[f64], a: &[f64]) -> Vec<f64> {
        s.iter().enumerate().map(|(d, v)| v + 0.1 * a[d % a.len()]).collect()
    }

    /// The reward in f64.
    pub fn reward(a: &[f64], next: &[f64]) -> f64 {
        -(next.iter().map(|v| v * v).sum::<f64>() + 0.01 * a.iter().map(|v| v * v).sum::<f64>())
    }
}

impl Env for Quadratic {
    fn obs_dim(&self) -> usize {
        self.state.len()
    }
    fn act_dim(&self) -> usize {
        self.act_dim
    }
    fn action_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![-1.0; self.act_dim], vec![1.0; self.act_dim])
    }
    fn reset(&mut self, seed: u64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for v in &mut self.state {
            *v = rng.random_range(-1.0..1.0);
        }
        self.steps = 0;
        self.state.clone()
    }
    fn step(&mut self, action: &[f64]) -> Result<Step> {
        if action.len() != self.act_dim || action.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "quadratic needs {} finite actions, got {action:?}",
                self.act_dim
            )));
        }
        let a: Vec<f64> = action.iter().map(|v| v.clamp(-1.0, 1.0)).collect();
        self.state = Self::dynamics(&self.state, &a);
        self.steps += 1;
        Ok(Step {
            obs: self.state.clone(),
            reward: Self::reward(&a, &self.state),
            terminated: false,
            truncated: self.steps >= 100,
        })
    }
}
