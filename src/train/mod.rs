//! Training the probabilistic ensemble on the GPU: replay buffer and normaliser, per-member
//! bootstrap resampling, minibatch epochs of forward, Gaussian NLL, backward and Adam — every
//! member in the same dispatches, many minibatch steps per submission — validation scoring,
//! early stopping with patience and elite selection (as mbrl-lib's ModelTrainer).
//!
//! The trainer is an assembly of kernel owners (`kernels::mlp`, `kernels::loss`,
//! `kernels::adam`) split along its seams: the flat parameter layout (`params`), the network's
//! state on the device (`device`), the recording and running of epochs (`epoch`), one
//! training call with its early stopping (`fit`), and the checkpoint format that includes the
//! optimiser state (`checkpoint`).

mod buffer;
pub mod checkpoint;
mod config;
mod device;
mod epoch;
mod fit;
mod params;
pub mod reference;

pub use buffer::{input_statistics, ReplayBuffer};
pub use config::{FusedBlocks, TrainConfig, TrainKernel};
pub use params::ParamLayout;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Profiler, RecordStats};
use crate::kernels::adam::AdamKernels;
use crate::kernels::loss::LossKernels;
use crate::kernels::mlp::MlpKernels;
use crate::kernels::{self, TrainParams};
use crate::model::format::ensemble_tensors;
use crate::model::{Ensemble, EnsembleSpec};
use checkpoint::{AdamState, Checkpoint};
use device::{DeviceNet, FusedKernels};

pub use crate::kernels::adam::NORM_CHUNK;

/// What one call of [`Trainer::train`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrainReport {
    /// Epochs run (early stopping or an interrupt may end before `epochs`).
    pub epochs: usize,
    /// The interrupt flag ([`Trainer::set_interrupt`]) ended training early; the best weights
    /// seen so far are kept, as at early stopping.
    pub interrupted: bool,
    /// Mean training loss per epoch (NLL or MSE, mean over members and steps).
    pub train_loss: Vec<f64>,
    /// Validation MSE per epoch and member (training data when there is no split).
    pub val_mse: Vec<Vec<f64>>,
    /// Lowest validation MSE per member over the epochs that counted as improvements (as
    /// mbrl-lib keeps it); the elites are ranked by it. The weights kept are those of the last
    /// such epoch, so a member's kept weights may score above its entry here.
    pub best_mse: Vec<f64>,
    /// Members with the lowest `best_mse`, best first.
    pub elites: Vec<usize>,
    /// Minibatch steps skipped for a non-finite gradient.
    pub skipped_steps: u32,
    /// Wall time of each epoch's training submissions (scoring excluded).
    pub epoch_seconds: Vec<f64>,
    /// Transitions used for training and for scoring.
    pub n_train: usize,
    /// Transitions scored.
    pub n_eval: usize,
}

/// Trains an ensemble on the GPU; the weights stay on the device between calls.
pub struct Trainer {
    ctx: GpuContext,
    cfg: TrainConfig,
    ensemble: Ensemble,
    layout: ParamLayout,
    mlp: MlpKernels,
    loss: LossKernels,
    adam: AdamKernels,
    net: DeviceNet,
    params_stride: u64,
    elites: Vec<usize>,
    rng: rand_chacha::ChaCha12Rng,
    /// Times every dispatch when set ([`Trainer::set_profiling`]).
    profiler: Option<Profiler>,
    /// Dispatch counts (and GPU times when profiling) since the last [`Trainer::take_record`].
    recorded: RefCell<RecordStats>,
    /// Ends training early when set.
    interrupt: Option<Arc<AtomicBool>>,
}

fn read_u32s(ctx: &GpuContext, b: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
    ctx.read_buffer::<u32>(b, n)
}

/// Checks the trainer's buffers against the device before any is created, in saturating
/// arithmetic (a product past 2^64 is refused as too large): the flat parameters, one layer's
/// rows at the widest layer (every per-layer buffer is no larger), and the values of every layer
/// kept together for the backward pass, which grow with the depth.
fn check_sizes(ctx: &GpuContext, spec: &EnsembleSpec, b: usize, layout: &ParamLayout) -> Result<()> {
    let rows = (spec.n_members as u64).saturating_mul(b as u64);
    let widest = spec.layer_dims().iter().map(|(i, o)| (*i).max(*o)).max().unwrap_or(1) as u64;
    let hint = "lower train.batch_size, model.members or the width or depth of model.hidden";
    let bytes = |per_row: u64| rows.saturating_mul(per_row).saturating_mul(4);
    ctx.check_buffer_size("training activations (members × batch × widest layer × 4 B)", bytes(widest), true, hint)?;
    let hidden: u64 = spec.hidden.iter().map(|w| *w as u64).sum();
    let per_row = (spec.in_dim() as u64 + 2 * spec.out_cols() as u64 + 2 * widest).saturating_add(2 * hidden);
    ctx.check_buffer_size(
        "training values of every layer (members × batch × (in + 2 × out + 2 × widest + 2 × Σ hidden) × 4 B)",
        bytes(per_row),
        false,
        hint,
    )?;
    ctx.check_buffer_size("flat parameters", layout.len as u64 * 4, true, "use a smaller network")
}

impl Trainer {
    /// Uploads `ensemble` and builds the kernels and the minibatch workspace.
    pub fn new(ctx: &GpuContext, ensemble: Ensemble, cfg: TrainConfig) -> Result<Self> {
        ensemble.validate()?;
        let spec = ensemble.spec.clone();
        cfg.validate(spec.n_members)?;
        let limits = ctx.limits();
        if limits.max_storage_buffers_per_shader_stage < 8 {
            return Err(Error::LimitExceeded {
                what: "storage buffers of the loss kernels".into(),
                requested: 8,
                limit: "max_storage_buffers_per_shader_stage",
                max: limits.max_storage_buffers_per_shader_stage as u64,
                hint: "use an adapter with at least 8 storage buffers per stage",
            });
        }
        let align = (limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
        let layout = ParamLayout::new(&spec, align);
        let b = cfg.batch_size;
        check_sizes(ctx, &spec, b, &layout)?;
        let mlp = MlpKernels::new(ctx)?;
        let loss = LossKernels::new(ctx)?;
        let adam = AdamKernels::new(ctx)?;
        let fused = FusedKernels::for_config(ctx, &spec, &cfg, b)?;
        let net = DeviceNet::build(ctx, &mlp, fused, &ensemble, &layout, b)?;
        ctx.check()?;
        let params_stride = kernels::params_stride::<TrainParams>(ctx);
        let rng = rand_chacha::ChaCha12Rng::seed_from_u64(cfg.seed);
        Ok(Self {
            ctx: ctx.clone(),
            elites: (0..cfg.num_elites).collect(),
            cfg,
            ensemble,
            layout,
            mlp,
            loss,
            adam,
            net,
            params_stride,
            rng,
            profiler: None,
            recorded: RefCell::default(),
            interrupt: None,
        })
    }

    /// A flag that, once set (e.g. by a Ctrl-C handler), ends `train` at the next minibatch
    /// submission, keeping the best weights seen so far (the report says `interrupted`).
    pub fn set_interrupt(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.interrupt = flag;
    }

    pub(crate) fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Times every dispatch on the GPU from now on (or stops); false when the adapter has no
    /// timestamp queries. Profiled epochs run one compute pass per dispatch, a little slower.
    pub fn set_profiling(&mut self, on: bool) -> bool {
        self.profiler = if on { Profiler::new(&self.ctx) } else { None };
        self.profiler.is_some()
    }

    /// Dispatches by kernel (and, when profiling, GPU milliseconds by kernel) since the last
    /// call; resets the counts.
    pub fn take_record(&self) -> RecordStats {
        self.recorded.take()
    }

    /// The kernels the network's passes run on: `fused` (three dispatches per minibatch step) or
    /// `tiled` (one per layer and pass), as `train.mlp_kernel` chose on this device.
    pub fn mlp_kernel(&self) -> TrainKernel {
        match self.net.ops() {
            device::NetOps::Fused(..) => TrainKernel::Fused,
            device::NetOps::Layers(_) => TrainKernel::Tiled,
        }
    }

    /// The fused forward kernel's layout, on the fused path.
    pub fn fused_layout(&self) -> Option<crate::kernels::mlp_fused::FusedShape> {
        match self.net.ops() {
            device::NetOps::Fused(k, _) => Some(k.forward.shape),
            device::NetOps::Layers(_) => None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Elite members after the last `train` (initially the first `num_elites`).
    pub fn elites(&self) -> &[usize] {
        &self.elites
    }

    /// The flat parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The current parameters (read back from the GPU) with the current normaliser.
    pub fn ensemble(&self) -> Result<Ensemble> {
        let flat = self.ctx.read_buffer::<f32>(&self.net.params, self.layout.len)?;
        let mut e = self.ensemble.clone();
        self.layout.unpack(&flat, &mut e);
        Ok(e)
    }

    /// Everything needed to resume: parameters, normaliser, elites and Adam state.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let ensemble = self.ensemble()?;
        let (m1, m2, steps) = self.adam_state()?;
        let by_name = |flat: &[f32]| -> BTreeMap<String, Vec<f32>> {
            let mut shaped = ensemble.clone();
            self.layout.unpack(flat, &mut shaped);
            shaped.input_mean.iter_mut().for_each(|v| *v = 0.0);
            shaped.input_std.iter_mut().for_each(|v| *v = 0.0);
            ensemble_tensors(&shaped).into_iter().map(|(n, _, d)| (n, d)).collect()
        };
        Ok(Checkpoint {
            adam: Some(AdamState { m: by_name(&m1), v: by_name(&m2), steps }),
            ensemble,
            train: self.cfg.clone(),
            elites: self.elites.clone(),
            rng: Some(checkpoint::RngState::of(&self.rng)),
        })
    }

    /// A trainer that resumes from `ckpt` (with `cfg`, or the checkpoint's settings when `None`).
    pub fn from_checkpoint(ctx: &GpuContext, ckpt: &Checkpoint, cfg: Option<TrainConfig>) -> Result<Self> {
        let mut t = Self::new(ctx, ckpt.ensemble.clone(), cfg.unwrap_or_else(|| ckpt.train.clone()))?;
        if let Some(adam) = &ckpt.adam {
            let flat = |moments: &BTreeMap<String, Vec<f32>>| -> Result<Vec<f32>> {
                let mut shaped = ckpt.ensemble.clone();
                for (l, layer) in shaped.layers.iter_mut().enumerate() {
                    let get = |name: String, len: usize| -> Result<Vec<f32>> {
                        match moments.get(&name) {
                            Some(v) if v.len() == len => Ok(v.clone()),
                            _ => Err(Error::InvalidInput(format!(
                                "Adam state for {name} is missing or has the wrong size"
                            ))),
                        }
                    };
                    layer.weight = get(format!("layers.{l}.weight"), layer.weight.len())?;
                    layer.bias = get(format!("layers.{l}.bias"), layer.bias.len())?;
                }
                for (name, dst) in [("max_logvar", &mut shaped.max_logvar), ("min_logvar", &mut shaped.min_logvar)] {
                    match moments.get(name) {
                        Some(v) if v.len() == dst.len() => dst.copy_from_slice(v),
                        _ => {
                            return Err(Error::InvalidInput(format!(
                                "Adam state for {name} is missing or has the wrong size"
                            )))
                        }
                    }
                }
                Ok(t.layout.pack(&shaped))
            };
            let (m1, m2) = (flat(&adam.m)?, flat(&adam.v)?);
            t.set_adam_state(&m1, &m2, adam.steps)?;
        }
        if ckpt.elites.len() == t.cfg.num_elites {
            t.elites = ckpt.elites.clone();
        }
        // The generator continues where the saved trainer's stood, unless a new seed was given.
        if let Some(r) = ckpt.rng.as_ref().filter(|_| t.cfg.seed == ckpt.train.seed) {
            t.rng = r.restore().map_err(|reason| Error::Weights { path: "checkpoint".into(), reason })?;
        }
        Ok(t)
    }

    /// Adam state: (first moments, second moments, steps taken), flat layout.
    pub fn adam_state(&self) -> Result<(Vec<f32>, Vec<f32>, u32)> {
        let m1 = self.ctx.read_buffer::<f32>(&self.net.moment1, self.layout.len)?;
        let m2 = self.ctx.read_buffer::<f32>(&self.net.moment2, self.layout.len)?;
        let c = read_u32s(&self.ctx, &self.net.counters, 4)?;
        Ok((m1, m2, c[0]))
    }

    /// Restores Adam state saved by [`Trainer::adam_state`].
    pub fn set_adam_state(&mut self, m1: &[f32], m2: &[f32], steps: u32) -> Result<()> {
        if m1.len() != self.layout.len || m2.len() != self.layout.len {
            return Err(Error::InvalidInput(format!("Adam moments must have {} values each", self.layout.len)));
        }
        let q = &self.ctx.queue;
        q.write_buffer(&self.net.moment1, 0, bytemuck::cast_slice(m1));
        q.write_buffer(&self.net.moment2, 0, bytemuck::cast_slice(m2));
        q.write_buffer(&self.net.counters, 0, bytemuck::cast_slice(&[steps, 0, 0, 0]));
        Ok(())
    }

    /// Loss of every member and the gradient of the summed loss (plus the bounds penalty) on
    /// the given rows of `buffer` (at most `batch_size`; every member sees the same rows), with
    /// the current parameters and normaliser; nothing is updated. For checks and diagnostics.
    pub fn loss_and_gradients(&mut self, buffer: &ReplayBuffer, rows: &[usize]) -> Result<(Vec<f64>, Vec<f32>)> {
        let spec = self.ensemble.spec.clone();
        if rows.is_empty() || rows.len() > self.cfg.batch_size {
            return Err(Error::InvalidInput(format!("need 1..={} rows, got {}", self.cfg.batch_size, rows.len())));
        }
        if let Some(r) = rows.iter().find(|r| **r >= buffer.len()) {
            return Err(Error::InvalidInput(format!("row {r} is outside the buffer of {} transitions", buffer.len())));
        }
        let (mean, std) = (&self.ensemble.input_mean, &self.ensemble.input_std);
        let mut data = Vec::new();
        for &i in rows {
            data.extend(buffer.input(i).iter().enumerate().map(|(k, v)| (v - mean[k]) / std[k]));
            data.extend(buffer.target(i, spec.learned_reward));
        }
        let dataset = self.ctx.storage_buffer_init("train.probe", &data);
        let ep = self.make_epoch(&dataset, vec![rows.len() as u32], 0)?;
        let (e, b) = (spec.n_members, self.cfg.batch_size);
        let mut idx = vec![0u32; e * b];
        for m in 0..e {
            for r in 0..rows.len() {
                idx[m * b + r] = r as u32;
            }
        }
        self.ctx.queue.write_buffer(&ep.indices, 0, bytemuck::cast_slice(&idx));
        self.ctx.queue.write_buffer(&self.net.grads, 0, bytemuck::cast_slice(&vec![0f32; self.layout.len]));
        self.run_steps(&ep, true)?;
        let stats = self.ctx.read_buffer::<f32>(&ep.stats, e)?;
        let grads = self.ctx.read_buffer::<f32>(&self.net.grads, self.layout.len)?;
        Ok((stats.iter().map(|v| *v as f64).collect(), grads))
    }
}
