//! Replay buffer of transitions and the input normaliser computed from it.

use crate::error::{Error, Result};

/// Transitions `(obs, act, next_obs, reward, terminated)` stored row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayBuffer {
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    act: Vec<f32>,
    next_obs: Vec<f32>,
    reward: Vec<f32>,
    terminated: Vec<bool>,
}

impl ReplayBuffer {
    /// An empty buffer for the given sizes.
    pub fn new(obs_dim: usize, act_dim: usize) -> Self {
        Self {
            obs_dim,
            act_dim,
            obs: Vec::new(),
            act: Vec::new(),
            next_obs: Vec::new(),
            reward: Vec::new(),
            terminated: Vec::new(),
        }
    }

    /// Observation size.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action size.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// Stored transitions.
    pub fn len(&self) -> usize {
        self.reward.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.reward.is_empty()
    }

    /// Appends one transition; wrong sizes or non-finite values are rejected and nothing is stored.
    pub fn push(&mut self, obs: &[f32], act: &[f32], next_obs: &[f32], reward: f32, terminated: bool) -> Result<()> {
        let n = self.len();
        for (what, v, want) in
            [("obs", obs, self.obs_dim), ("act", act, self.act_dim), ("next_obs", next_obs, self.obs_dim)]
        {
            if v.len() != want {
                return Err(Error::InvalidInput(format!(
                    "transition {n}: {what} has {} values, expected {want}",
                    v.len()
                )));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::InvalidInput(format!("transition {n}: {what}[{i}] = {} is not finite", v[i])));
            }
        }
        if !reward.is_finite() {
            return Err(Error::InvalidInput(format!("transition {n}: reward {reward} is not finite")));
        }
        self.obs.extend_from_slice(obs);
        self.act.extend_from_slice(act);
        self.next_obs.extend_from_slice(next_obs);
        self.reward.push(reward);
        self.terminated.push(terminated);
        Ok(())
    }

    /// Observation of transition `i`.
    pub fn obs(&self, i: usize) -> &[f32] {
        &self.obs[i * self.obs_dim..(i + 1) * self.obs_dim]
    }

    /// Action of transition `i`.
    pub fn act(&self, i: usize) -> &[f32] {
        &self.act[i * self.act_dim..(i + 1) * self.act_dim]
    }

    /// Next observation of transition `i`.
    pub fn next_obs(&self, i: usize) -> &[f32] {
        &self.next_obs[i * self.obs_dim..(i + 1) * self.obs_dim]
    }

    /// Reward of transition `i`.
    pub fn reward(&self, i: usize) -> f32 {
        self.reward[i]
    }

    /// Model input of transition `i`: `[obs, act]`.
    pub fn input(&self, i: usize) -> Vec<f32> {
        [self.obs(i), self.act(i)].concat()
    }

    /// Model target of transition `i`: `Δobs = next_obs − obs`, then the reward if `with_reward`.
    pub fn target(&self, i: usize, with_reward: bool) -> Vec<f32> {
        let mut t: Vec<f32> = self.next_obs(i).iter().zip(self.obs(i)).map(|(n, o)| n - o).collect();
        if with_reward {
            t.push(self.reward[i]);
        }
        t
    }
}

/// Input normalisation `(x − mean) / std` from a buffer's inputs; a standard deviation below
/// 1e-12 becomes 1 (a constant input is centred, not blown up).
pub fn input_statistics(buffer: &ReplayBuffer, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let d = buffer.obs_dim + buffer.act_dim;
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0f64; d];
    for &i in rows {
        for (k, v) in buffer.input(i).iter().enumerate() {
            mean[k] += *v as f64 / n;
        }
    }
    let mut var = vec![0.0f64; d];
    for &i in rows {
        for (k, v) in buffer.input(i).iter().enumerate() {
            var[k] += (*v as f64 - mean[k]).powi(2) / n;
        }
    }
    let std = var.iter().map(|v| if v.sqrt() < 1e-12 { 1.0 } else { v.sqrt() as f32 }).collect();
    (mean.iter().map(|m| *m as f32).collect(), std)
}
