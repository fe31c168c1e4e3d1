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

    /// [`ReplayBuffer::new`] for sizes a model can take: `obs_dim` in `1..=kernels::MAX_OBS`,
    /// `act_dim` in `1..=kernels::MAX_ACT` (errors naming `obs_dim` and `act_dim`).
    pub fn checked(obs_dim: usize, act_dim: usize) -> Result<Self> {
        Error::collect(crate::kernels::check_dims("", obs_dim, act_dim))?;
        Ok(Self::new(obs_dim, act_dim))
    }

    /// Observation size.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action size.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// Writes the transitions as safetensors (`obs`, `act`, `next_obs` `[n, dim]`, `reward`,
    /// `terminated` `[n]`, all F32), atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let n = self.len();
        let mut t: crate::model::format::Tensors = std::collections::BTreeMap::new();
        t.insert("obs".into(), (vec![n, self.obs_dim], self.obs.clone()));
        t.insert("act".into(), (vec![n, self.act_dim], self.act.clone()));
        t.insert("next_obs".into(), (vec![n, self.obs_dim], self.next_obs.clone()));
        t.insert("reward".into(), (vec![n], self.reward.clone()));
        t.insert("terminated".into(), (vec![n], self.terminated.iter().map(|b| *b as u8 as f32).collect()));
        let meta = [("format".to_string(), "lookahead-replay-v1".to_string())].into();
        let bytes = crate::model::format::serialize(&t, meta)
            .map_err(|reason| Error::Weights { path: path.display().to_string(), reason })?;
        crate::util::write_atomic(path, &bytes)
    }

    /// Reads transitions written by [`ReplayBuffer::save`], every value checked as by `push`.
    pub fn load(path: &std::path::Path, obs_dim: usize, act_dim: usize) -> Result<Self> {
        use crate::error::FormatError;
        let mut b = Self::checked(obs_dim, act_dim)?;
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: p.clone(), source })?;
        let weights = |reason: FormatError| Error::Weights { path: p.clone(), reason };
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| weights(FormatError::NotSafetensors(e.to_string())))?;
        let get = |name: &str, width: usize| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(|_| weights(FormatError::MissingTensor(name.into())))?;
            let data: Vec<f32> =
                t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            if t.dtype() != safetensors::Dtype::F32 || !data.len().is_multiple_of(width.max(1)) {
                return Err(weights(FormatError::Shape(format!("tensor {name:?} has the wrong type or shape"))));
            }
            Ok(data)
        };
        let (obs, act, next) = (get("obs", obs_dim)?, get("act", act_dim)?, get("next_obs", obs_dim)?);
        let (reward, terminated) = (get("reward", 1)?, get("terminated", 1)?);
        for i in 0..reward.len() {
            let row = |v: &[f32], w: usize| v.get(i * w..(i + 1) * w).map(<[f32]>::to_vec);
            let (Some(o), Some(a), Some(n)) = (row(&obs, obs_dim), row(&act, act_dim), row(&next, obs_dim)) else {
                return Err(weights(FormatError::Shape("the tensors hold different numbers of transitions".into())));
            };
            b.push(&o, &a, &n, reward[i], terminated[i] != 0.0)?;
        }
        Ok(b)
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
