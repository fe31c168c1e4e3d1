//! The warm start of a planner (mbrl-lib's `keep_last_solution`, MJPC's "resample from the
//! previous policy"): where each plan's sampling distribution begins. The first plan, and every
//! plan after a reset, starts from the middle of the action bounds with variance
//! `(upper − lower)² / 16`; a plan that follows another starts from the returned sequence
//! shifted one step earlier, the new last step at the middle of the bounds. The GPU applies the
//! same shift in `cem.wgsl`'s `shift_solution`; the host keeps a copy (for budgeted plans, whose
//! result may be an earlier iteration, and as the fallback plan when the GPU cannot answer in
//! time), computed by the kernel's reference function so the two cannot drift apart.

use crate::kernels::cem::reference::shift_sequence;

/// Initial distribution and shift rule for one task's action bounds and horizon, plus the host
/// copy of the current warm start.
#[derive(Debug, Clone)]
pub(super) struct WarmStart {
    horizon: usize,
    mid: Vec<f32>,
    initial_var: Vec<f32>,
    keep_last_solution: bool,
    /// `[n_batch, horizon, act_dim]`, or empty before the first plan.
    current: Vec<f32>,
    /// `[n_batch, act_dim]`: the first action of each plan's last returned sequence (MPPI's
    /// smoothing starts from it), or empty.
    past: Vec<f32>,
}

impl WarmStart {
    pub(super) fn new(lower: &[f32], upper: &[f32], horizon: usize, keep_last_solution: bool) -> Self {
        let mid = lower.iter().zip(upper).map(|(l, u)| 0.5 * (l + u)).collect();
        let initial_var = lower.iter().zip(upper).map(|(l, u)| (u - l) * (u - l) / 16.0).collect();
        Self { horizon, mid, initial_var, keep_last_solution, current: Vec::new(), past: Vec::new() }
    }

    /// The mean every plan of a fresh batch of `n_batch` starts from.
    pub(super) fn initial_mean(&self, n_batch: usize) -> Vec<f32> {
        self.mid.repeat(n_batch * self.horizon)
    }

    /// The variance every plan starts from.
    pub(super) fn initial_var(&self, n_batch: usize) -> Vec<f32> {
        self.initial_var.repeat(n_batch * self.horizon)
    }

    /// The warm start of `n_batch` plans (the initial mean when there is none of that size).
    pub(super) fn current(&self, n_batch: usize) -> Vec<f32> {
        if self.current.len() == n_batch * self.horizon * self.mid.len() {
            self.current.clone()
        } else {
            self.initial_mean(n_batch)
        }
    }

    /// Forgets the warm start; returns the mean the next plan starts from.
    pub(super) fn reset(&mut self, n_batch: usize) -> Vec<f32> {
        self.current = self.initial_mean(n_batch);
        self.past.clear();
        self.current.clone()
    }

    /// The first action of each plan's last returned sequence (the middle of the bounds before
    /// the first plan).
    pub(super) fn past(&self, n_batch: usize) -> Vec<f32> {
        if self.past.len() == n_batch * self.mid.len() {
            self.past.clone()
        } else {
            self.mid.repeat(n_batch)
        }
    }

    /// Records the sequences a plan returned (`[n_batch, horizon, act_dim]`); returns the mean
    /// the next plan starts from: the shifted sequences, or the initial mean without warm starts.
    pub(super) fn advance(&mut self, returned: &[f32]) -> Vec<f32> {
        let step = self.mid.len();
        self.past = returned.chunks(self.horizon * step).flat_map(|plan| plan[..step].to_vec()).collect();
        self.current = if self.keep_last_solution {
            shift_sequence(returned, self.horizon, &self.mid)
        } else {
            self.initial_mean(returned.len() / (self.horizon * self.mid.len()))
        };
        self.current.clone()
    }

    /// Restores a warm start saved with [`WarmStart::snapshot`].
    pub(super) fn restore(&mut self, saved: Vec<f32>) {
        self.current = saved;
    }

    /// The current warm start as stored (possibly empty).
    pub(super) fn snapshot(&self) -> Vec<f32> {
        self.current.clone()
    }
}
