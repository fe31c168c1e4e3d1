//! The f64 twin of a rollout batch (`shaders/mbpo.wgsl`, [`super::rollout::RolloutDevice`]):
//! the same draws from the same Philox streams, the actor's squashed sample, every member's
//! prediction through [`Ensemble::predict_f64`], the elite drawn per rollout and step, the
//! task's reward and termination ([`RefTask`]), and the FIFO placement of each step's live
//! transitions in the model ring.

use crate::env::reference::RefTask;
use crate::kernels::purpose;
use crate::kernels::rng::{box_muller, key_of, philox, tag};
use crate::model::Ensemble;
use crate::sac::reference::{actor_sample, replay_index, ActionScale, Mlp};

/// A model ring on the host: `[capacity, row]` rows (row = obs | act | reward | next_obs |
/// terminated), where the next transition goes, how many rows hold one, and how many were
/// written in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring {
    /// The rows, `capacity × row` values.
    pub rows: Vec<f64>,
    /// Floats per row.
    pub row_len: usize,
    /// The next row written.
    pub head: usize,
    /// Rows holding transitions.
    pub fill: usize,
    /// Transitions written since the ring was created.
    pub written: u64,
}

impl Ring {
    /// An empty ring of `capacity` rows of `row_len`.
    pub fn new(capacity: usize, row_len: usize) -> Self {
        Self { rows: vec![0.0; capacity * row_len], row_len, head: 0, fill: 0, written: 0 }
    }

    /// Rows.
    pub fn capacity(&self) -> usize {
        self.rows.len() / self.row_len.max(1)
    }

    /// Appends one transition, overwriting the oldest once full.
    pub fn push(&mut self, row: &[f64]) {
        let cap = self.capacity();
        self.rows[self.head * self.row_len..][..self.row_len].copy_from_slice(row);
        self.head = (self.head + 1) % cap;
        self.fill = (self.fill + 1).min(cap);
        self.written += 1;
    }
}

/// What a rollout batch reads besides the model ring.
pub struct RolloutInputs<'a> {
    /// The real ring's first `n_real` rows (`[n_real, row]`).
    pub real: &'a [f64],
    /// The actor (outputs mean | raw log σ).
    pub actor: &'a Mlp,
    /// The action bounds.
    pub scale: &'a ActionScale,
    /// The ensemble.
    pub ensemble: &'a Ensemble,
    /// Its elites, one drawn per rollout and step.
    pub elites: &'a [usize],
    /// The task's reward (unless the model learned it) and termination.
    pub task: RefTask,
    /// The draws' key.
    pub seed: u64,
}

/// The batch's draws: `[element, batch low, batch high, tag(purpose, step, 0)]`.
fn word(seed: u64, purpose: u32, element: usize, batch: u64, step: usize) -> [u32; 4] {
    philox([element as u32, batch as u32, (batch >> 32) as u32, tag(purpose, step as u32, 0)], key_of(seed))
}

fn normal(seed: u64, purpose: u32, element: usize, batch: u64, step: usize) -> f64 {
    let w = word(seed, purpose, element, batch, step);
    box_muller(w[0], w[1]).0
}

/// Rollout batch `batch`: `n_rollouts` rollouts of `length` steps in passes of `rows`, their
/// live transitions appended to `ring` step by step in rollout order, as the GPU does.
pub fn rollouts_f64(
    inp: &RolloutInputs<'_>,
    ring: &mut Ring,
    batch: u64,
    n_rollouts: usize,
    rows: usize,
    length: usize,
) {
    let e = inp.ensemble;
    let (d, a) = (e.spec.obs_dim, e.spec.act_dim);
    let row_len = ring.row_len;
    let n_real = inp.real.len() / row_len;
    for first in (0..n_rollouts).step_by(rows.max(1)) {
        let pass: Vec<usize> = (first..n_rollouts.min(first + rows)).collect();
        let mut states: Vec<Vec<f64>> = pass
            .iter()
            .map(|g| {
                let idx = replay_index(word(inp.seed, purpose::MBPO_START, *g, batch, 0)[0], n_real as u32) as usize;
                inp.real[idx * row_len..][..d].to_vec()
            })
            .collect();
        let mut alive = vec![true; pass.len()];
        for k in 0..length {
            for (r, g) in pass.iter().enumerate() {
                if !alive[r] {
                    continue;
                }
                let (row, terminated) = step_f64(inp, &states[r], *g, batch, k);
                ring.push(&row);
                states[r] = row[d + a + 1..2 * d + a + 1].to_vec();
                alive[r] = !terminated;
            }
        }
    }
}

/// Rollout `g`'s step `k` from `state`: its transition row and whether it terminated.
fn step_f64(inp: &RolloutInputs<'_>, state: &[f64], g: usize, batch: u64, k: usize) -> (Vec<f64>, bool) {
    let e = inp.ensemble;
    let (d, a, mo) = (e.spec.obs_dim, e.spec.act_dim, e.spec.model_out());
    let eps: Vec<f64> = (0..a).map(|i| normal(inp.seed, purpose::MBPO_ACT, g * a + i, batch, k)).collect();
    let action = actor_sample(inp.actor, inp.scale, state, &eps).action;
    // The action as the GPU stores it (f32) is what the model and the reward see.
    let action: Vec<f64> = action.iter().map(|v| *v as f32 as f64).collect();
    let pick = replay_index(word(inp.seed, purpose::MBPO_MEMBER, g, batch, k)[0], inp.elites.len() as u32);
    let member = inp.elites[pick as usize];
    let pred = e.predict_f64(member, &[state, &action[..]].concat());
    let sampled: Vec<f64> = (0..mo)
        .map(|q| {
            if e.spec.probabilistic {
                pred.mean[q]
                    + (0.5 * pred.logvar[q]).exp() * normal(inp.seed, purpose::MBPO_NOISE, g * mo + q, batch, k)
            } else {
                pred.mean[q]
            }
        })
        .collect();
    let next: Vec<f64> = (0..d).map(|i| state[i] + sampled[i]).collect();
    let reward = if e.spec.learned_reward { sampled[d] } else { inp.task.reward(state, &action, &next) };
    let terminated = inp.task.terminated(&action, &next);
    let row = [state, &action[..], &[reward], &next[..], &[f64::from(u8::from(terminated))]].concat();
    (row, terminated)
}
