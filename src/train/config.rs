//! Training configuration.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which kernels run the network's training passes (forward, input gradients, weight
/// gradients); every choice trains the same weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrainKernel {
    /// `fused` when the network and its stored values fit it, else `tiled` (default).
    #[default]
    Auto,
    /// One register-tiled matmul dispatch per layer and pass (`mlp.wgsl`).
    Tiled,
    /// Three dispatches per minibatch step whatever the depth: the forward pass of every layer
    /// (activations kept in workgroup memory, written out once for the backward pass) and the
    /// chain of input gradients (`mlp_fused.wgsl`), every layer's weight and bias gradients
    /// (`mlp_grads.wgsl`); at most 8 layers, 4 rows of the widest layer in the device's
    /// workgroup memory, and every layer's values for a minibatch in one buffer.
    Fused,
}

impl TrainKernel {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            TrainKernel::Auto => "auto",
            TrainKernel::Tiled => "tiled",
            TrainKernel::Fused => "fused",
        }
    }
}

/// Rows per workgroup of the fused training kernels and how many groups of invocations share
/// them, instead of the ones `FusedShape::for_training` picks (for benchmarks that compare them:
/// `lookahead bench train --fused-layouts`). Every choice trains the same weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedBlocks {
    /// Rows per workgroup (a multiple of 4).
    pub rows: u32,
    /// Groups of invocations sharing a workgroup's rows.
    pub split: u32,
}

/// How the ensemble is trained. Defaults are the PETS cartpole reference (docs/DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Adam learning rate (default: 7.5e-4).
    pub lr: f64,
    /// L2 weight decay added to the gradient, as torch.optim.Adam (default: 3e-5).
    pub weight_decay: f64,
    /// Adam β1 (default: 0.9).
    pub beta1: f64,
    /// Adam β2 (default: 0.999).
    pub beta2: f64,
    /// Adam ε (default: 1e-8).
    pub eps: f64,
    /// Rows per member per minibatch (default: 256).
    pub batch_size: usize,
    /// Epochs per call of `train` (default: 25).
    pub epochs: usize,
    /// Stop after this many epochs without an improvement of the validation score; 0 never
    /// stops early (default: 25).
    pub patience: usize,
    /// Relative improvement that counts (default: 0.01).
    pub improvement_threshold: f64,
    /// Fraction of the buffer held out for validation (default: 0: score on the training data).
    pub validation_ratio: f64,
    /// Members whose validation MSE is best, used for planning (default: 5).
    pub num_elites: usize,
    /// Each member trains on its own bootstrap resample of the data (default: true).
    pub bootstrap: bool,
    /// Learn the log-variance bounds, with `logvar_penalty·(Σ max − Σ min)` in the loss (default: true).
    pub learn_logvar_bounds: bool,
    /// Penalty weight of the learned bounds (default: 0.01).
    pub logvar_penalty: f64,
    /// Clip the global gradient norm (default: none).
    pub clip_grad_norm: Option<f64>,
    /// Stop with an error after this many consecutive steps with a non-finite gradient (default: 10).
    pub max_nonfinite_steps: u32,
    /// Minibatch steps recorded per GPU submission (default: 64).
    pub steps_per_submission: usize,
    /// Seed of bootstrap, shuffling and the validation split (default: 0).
    pub seed: u64,
    /// The kernels of the network's training passes: auto, tiled or fused (default: auto).
    pub mlp_kernel: TrainKernel,
    /// The fused kernels' row blocks instead of the rule's; not a config key (benchmarks).
    #[serde(skip)]
    pub fused_blocks: Option<FusedBlocks>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 7.5e-4,
            weight_decay: 3e-5,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            batch_size: 256,
            epochs: 25,
            patience: 25,
            improvement_threshold: 0.01,
            validation_ratio: 0.0,
            num_elites: 5,
            bootstrap: true,
            learn_logvar_bounds: true,
            logvar_penalty: 0.01,
            clip_grad_norm: None,
            max_nonfinite_steps: 10,
            steps_per_submission: 64,
            seed: 0,
            mlp_kernel: TrainKernel::Auto,
            fused_blocks: None,
        }
    }
}

impl TrainConfig {
    /// Checks every value; all problems are reported at once.
    pub fn validate(&self, n_members: usize) -> Result<()> {
        let mut errs = Vec::new();
        let mut bad = |f: &str, r: String| errs.push(Error::config(format!("train.{f}"), r));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.lr) {
            bad("lr", format!("{} must be a positive number", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bad("weight_decay", format!("{} must be ≥ 0", self.weight_decay));
        }
        for (f, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                bad(f, format!("{v} is outside [0, 1)"));
            }
        }
        if !positive(self.eps) {
            bad("eps", format!("{} must be a positive number", self.eps));
        }
        if self.batch_size == 0 {
            bad("batch_size", "must be at least 1".into());
        }
        if self.epochs == 0 {
            bad("epochs", "must be at least 1".into());
        }
        if !(self.validation_ratio.is_finite() && (0.0..1.0).contains(&self.validation_ratio)) {
            bad("validation_ratio", format!("{} is outside [0, 1)", self.validation_ratio));
        }
        if self.num_elites == 0 || self.num_elites > n_members {
            bad("num_elites", format!("{} is outside 1..={n_members} (the ensemble's members)", self.num_elites));
        }
        if !(self.logvar_penalty.is_finite() && self.logvar_penalty >= 0.0) {
            bad("logvar_penalty", format!("{} must be ≥ 0", self.logvar_penalty));
        }
        if let Some(c) = self.clip_grad_norm {
            if !positive(c) {
                bad("clip_grad_norm", format!("{c} must be a positive number"));
            }
        }
        if self.max_nonfinite_steps == 0 {
            bad("max_nonfinite_steps", "must be at least 1".into());
        }
        if self.steps_per_submission == 0 {
            bad("steps_per_submission", "must be at least 1".into());
        }
        Error::collect(errs)
    }
}
