//! Training the probabilistic ensemble on the GPU: replay buffer and normaliser, per-member
//! bootstrap resampling, minibatch epochs of forward, Gaussian NLL, backward and Adam — every
//! member in the same dispatches, many minibatch steps per submission — validation scoring,
//! early stopping with patience and elite selection (as mbrl-lib's ModelTrainer).

mod buffer;
pub mod checkpoint;
mod config;
pub mod reference;

pub use buffer::{input_statistics, ReplayBuffer};
pub use config::TrainConfig;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::gpu::{grid_1d, GpuContext};
use crate::kernels::mlp::{Activation, LayerParams, MlpKernels};
use crate::kernels::{self, uniform_entry, TrainParams, WG_SIZE};
use crate::model::format::ensemble_tensors;
use crate::model::{Ensemble, EnsembleSpec};
use checkpoint::{AdamState, Checkpoint};

/// Values per chunk of the gradient-norm reduction (WGSL `CHUNK`).
pub const NORM_CHUNK: usize = 256;
/// Longest wait for one training submission.
const SUBMISSION_TIMEOUT: Duration = Duration::from_secs(600);

/// Where each tensor lives in the flat parameter buffer (starts aligned for buffer bindings).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    /// Offset of each layer's weight `[E, in, out]`.
    pub weight: Vec<usize>,
    /// Offset of each layer's bias `[E, out]`.
    pub bias: Vec<usize>,
    /// Offset of `max_logvar` (everything from here on is a log-variance bound).
    pub max_logvar: usize,
    /// Offset of `min_logvar`.
    pub min_logvar: usize,
    /// Total length including padding.
    pub len: usize,
}

impl ParamLayout {
    /// Layout for `spec` with tensor starts aligned to `align` floats.
    pub fn new(spec: &EnsembleSpec, align: usize) -> Self {
        let up = |x: usize| x.div_ceil(align) * align;
        let e = spec.n_members;
        let (mut weight, mut bias) = (Vec::new(), Vec::new());
        let mut at = 0;
        for (i, o) in spec.layer_dims() {
            weight.push(at);
            at = up(at + e * i * o);
            bias.push(at);
            at = up(at + e * o);
        }
        let mo = spec.model_out();
        let max_logvar = at;
        let min_logvar = up(at + mo);
        Self { weight, bias, max_logvar, min_logvar, len: up(min_logvar + mo) }
    }

    /// The ensemble's parameters in this layout.
    pub fn pack(&self, e: &Ensemble) -> Vec<f32> {
        let mut flat = vec![0.0; self.len];
        for (l, layer) in e.layers.iter().enumerate() {
            flat[self.weight[l]..self.weight[l] + layer.weight.len()].copy_from_slice(&layer.weight);
            flat[self.bias[l]..self.bias[l] + layer.bias.len()].copy_from_slice(&layer.bias);
        }
        flat[self.max_logvar..self.max_logvar + e.max_logvar.len()].copy_from_slice(&e.max_logvar);
        flat[self.min_logvar..self.min_logvar + e.min_logvar.len()].copy_from_slice(&e.min_logvar);
        flat
    }

    /// Writes `flat` back into the ensemble's tensors.
    pub fn unpack(&self, flat: &[f32], e: &mut Ensemble) {
        for (l, layer) in e.layers.iter_mut().enumerate() {
            let (w, b) = (layer.weight.len(), layer.bias.len());
            layer.weight.copy_from_slice(&flat[self.weight[l]..self.weight[l] + w]);
            layer.bias.copy_from_slice(&flat[self.bias[l]..self.bias[l] + b]);
        }
        let mo = e.max_logvar.len();
        e.max_logvar.copy_from_slice(&flat[self.max_logvar..self.max_logvar + mo]);
        e.min_logvar.copy_from_slice(&flat[self.min_logvar..self.min_logvar + mo]);
    }
}

/// What one call of [`Trainer::train`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrainReport {
    /// Epochs run (early stopping may end before `epochs`).
    pub epochs: usize,
    /// Mean training loss per epoch (NLL or MSE, mean over members and steps).
    pub train_loss: Vec<f64>,
    /// Validation MSE per epoch and member (training data when there is no split).
    pub val_mse: Vec<Vec<f64>>,
    /// Best validation MSE per member (of the weights kept).
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

struct Pipelines {
    gather: wgpu::ComputePipeline,
    nll: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    norm_partial: wgpu::ComputePipeline,
    norm_final: wgpu::ComputePipeline,
    adam: wgpu::ComputePipeline,
}

struct Layouts {
    params: wgpu::BindGroupLayout,
    loss: wgpu::BindGroupLayout,
    adam: wgpu::BindGroupLayout,
}

struct LayerOps {
    forward: (wgpu::BindGroup, (u32, u32, u32)),
    weights: (wgpu::BindGroup, (u32, u32, u32)),
    bias: (wgpu::BindGroup, (u32, u32, u32)),
    input: Option<(wgpu::BindGroup, (u32, u32, u32))>,
}

/// Per-call resources: the dataset, minibatch indices, statistics and step parameters.
struct Epoch {
    n_steps: usize,
    indices: wgpu::Buffer,
    stats: wgpu::Buffer,
    stats_len: usize,
    params_bg: wgpu::BindGroup,
    loss_bg: wgpu::BindGroup,
    adam_bg: Option<wgpu::BindGroup>,
    valid: Vec<u32>,
}

/// Trains an ensemble on the GPU; the weights stay on the device between calls.
pub struct Trainer {
    ctx: GpuContext,
    cfg: TrainConfig,
    ensemble: Ensemble,
    layout: ParamLayout,
    mlp: MlpKernels,
    layouts: Layouts,
    pipes: Pipelines,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    moment1: wgpu::Buffer,
    moment2: wgpu::Buffer,
    best: wgpu::Buffer,
    partials: wgpu::Buffer,
    counters: wgpu::Buffer,
    x0: wgpu::Buffer,
    out: wgpu::Buffer,
    grad_out: wgpu::Buffer,
    ops: Vec<LayerOps>,
    params_stride: u64,
    n_chunks: usize,
    elites: Vec<usize>,
    rng: rand::rngs::StdRng,
}

fn read_u32s(ctx: &GpuContext, b: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
    ctx.read_buffer::<u32>(b, n)
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
        let e = spec.n_members;
        let b = cfg.batch_size;
        let rows = (e * b) as u64;
        let widest = spec.layer_dims().iter().map(|(i, o)| (*i).max(*o)).max().unwrap_or(1) as u64;
        let hint = "lower train.batch_size or the network width";
        ctx.check_buffer_size(
            "training activations (members × batch × widest layer × 4 B)",
            rows * widest * 4,
            true,
            hint,
        )?;
        ctx.check_buffer_size("flat parameters", layout.len as u64 * 4, true, "use a smaller network")?;
        let n_chunks = layout.len.div_ceil(NORM_CHUNK);

        let mlp = MlpKernels::new(ctx)?;
        let loss_module = kernels::create_module(ctx, "loss", &[kernels::COMMON_WGSL, kernels::LOSS_WGSL].concat())?;
        let adam_module = kernels::create_module(ctx, "adam", &[kernels::COMMON_WGSL, kernels::ADAM_WGSL].concat())?;
        let layouts = ctx.scoped("train layouts", || {
            let d = &ctx.device;
            let params = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("train.params"),
                entries: &[uniform_entry(0, true, std::mem::size_of::<TrainParams>() as u64)],
            });
            // dataset, indices, x0, out, grad_out, params, grads, stats
            let loss = kernels::storage_layout(d, "train.loss", &[true, true, false, true, false, true, false, false]);
            // params, grads, moment1, moment2, partials, stats, counters
            let adam = kernels::storage_layout(d, "train.adam", &[false, true, false, false, false, false, false]);
            Layouts { params, loss, adam }
        })?;
        let pl = |label: &str, group: &wgpu::BindGroupLayout| {
            ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&layouts.params), Some(group)],
                immediate_size: 0,
            })
        };
        let loss_pl = pl("train.loss", &layouts.loss);
        let adam_pl = pl("train.adam", &layouts.adam);
        let pipe = |pl: &wgpu::PipelineLayout, m: &wgpu::ShaderModule, entry: &str, wg: bool| {
            kernels::create_pipeline(ctx, &format!("train.{entry}"), pl, m, entry, wg)
        };
        let pipes = Pipelines {
            gather: pipe(&loss_pl, &loss_module, "gather_batch", true)?,
            nll: pipe(&loss_pl, &loss_module, "nll_grad", true)?,
            reduce: pipe(&loss_pl, &loss_module, "reduce_loss", true)?,
            norm_partial: pipe(&adam_pl, &adam_module, "grad_norm_partial", true)?,
            norm_final: pipe(&adam_pl, &adam_module, "grad_norm_final", false)?,
            adam: pipe(&adam_pl, &adam_module, "adam_step", true)?,
        };

        let flat = layout.pack(&ensemble);
        let dims = spec.layer_dims();
        let n_layers = dims.len();
        let built = ctx.scoped("trainer buffers", || {
            let sb = |label: &str, len: u64| ctx.storage_buffer(label, len as usize);
            let params = ctx.storage_buffer_init("train.params", &flat);
            let best = ctx.storage_buffer_init("train.best", &flat);
            let grads = sb("train.grads", layout.len as u64);
            let moment1 = sb("train.moment1", layout.len as u64);
            let moment2 = sb("train.moment2", layout.len as u64);
            let partials = sb("train.partials", n_chunks as u64);
            let counters = sb("train.counters", 4);
            let x0 = sb("train.x0", rows * spec.in_dim() as u64);
            let out = sb("train.out", rows * spec.out_cols() as u64);
            let grad_out = sb("train.grad_out", rows * spec.out_cols() as u64);
            // acts[l] is the input of layer l (acts[0] = x0), pre[l] its pre-activation (l ≥ 1).
            let mut acts = vec![x0.clone()];
            let mut pres = vec![ctx.storage_buffer("train.no_pre", 1)];
            for (l, (_, o)) in dims.iter().enumerate().take(n_layers - 1) {
                acts.push(sb(&format!("train.act{}", l + 1), rows * *o as u64));
                pres.push(sb(&format!("train.pre{}", l + 1), rows * *o as u64));
            }
            let deltas = [sb("train.delta_a", rows * widest), sb("train.delta_b", rows * widest)];
            (params, best, grads, moment1, moment2, partials, counters, x0, out, grad_out, acts, pres, deltas)
        })?;
        let (params, best, grads, moment1, moment2, partials, counters, x0, out, grad_out, acts, pres, deltas) = built;
        fn range(buf: &wgpu::Buffer, off: usize, len: usize) -> wgpu::BindingResource<'_> {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: buf,
                offset: (off * 4) as u64,
                size: wgpu::BufferSize::new((len.max(1) * 4) as u64),
            })
        }
        let dummy = ctx.storage_buffer("train.no_aux", 1);
        let mut ops = Vec::new();
        for (l, &(i, o)) in dims.iter().enumerate() {
            let last = l + 1 == n_layers;
            let lp = LayerParams {
                n_batch: 1,
                local_slots: (e * b) as u32,
                n_members: e as u32,
                in_dim: i as u32,
                out_dim: o as u32,
                activation: if last { Activation::Identity as u32 } else { Activation::Silu as u32 },
                store_pre: (!last) as u32,
                _pad0: 0,
            };
            // backward_input's activation is the previous layer's (SiLU: every layer before the last).
            let lp_back = LayerParams { activation: Activation::Silu as u32, store_pre: 0, ..lp };
            let fwd_u = ctx.uniform_buffer_init(&format!("train.layer{l}.forward"), &[lp]);
            let back_u = ctx.uniform_buffer_init(&format!("train.layer{l}.backward"), &[lp_back]);
            let (w_off, b_off) = (layout.weight[l], layout.bias[l]);
            let (w_len, b_len) = (e * i * o, e * o);
            // The gradient w.r.t. this layer's output: the loss gradient for the last layer,
            // else the delta buffer that layer l + 1's backward_input wrote.
            let gz: &wgpu::Buffer = if last { &grad_out } else { &deltas[(n_layers - 2 - l) % 2] };
            let gz_prev = &deltas[(n_layers - 1 - l) % 2];
            let c_dst = if last { &out } else { &acts[l + 1] };
            let aux_fwd = if last { &dummy } else { &pres[l + 1] };
            let bg = |label: &str, u: &wgpu::Buffer, entries: [wgpu::BindingResource<'_>; 5]| {
                let [a, bb, bias, c, aux] = entries;
                let list = [u.as_entire_binding(), a, bb, bias, c, aux];
                let entries: Vec<wgpu::BindGroupEntry> = list
                    .into_iter()
                    .enumerate()
                    .map(|(k, r)| wgpu::BindGroupEntry { binding: k as u32, resource: r })
                    .collect();
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(label),
                    layout: &mlp.layout,
                    entries: &entries,
                })
            };
            let forward = bg(
                &format!("train.layer{l}.forward"),
                &fwd_u,
                [
                    acts[l].as_entire_binding(),
                    range(&params, w_off, w_len),
                    range(&params, b_off, b_len),
                    c_dst.as_entire_binding(),
                    aux_fwd.as_entire_binding(),
                ],
            );
            let weights = bg(
                &format!("train.layer{l}.backward_weights"),
                &back_u,
                [
                    acts[l].as_entire_binding(),
                    gz.as_entire_binding(),
                    range(&params, b_off, b_len),
                    range(&grads, w_off, w_len),
                    dummy.as_entire_binding(),
                ],
            );
            let bias = bg(
                &format!("train.layer{l}.bias_grad"),
                &back_u,
                [
                    acts[l].as_entire_binding(),
                    gz.as_entire_binding(),
                    range(&params, b_off, b_len),
                    range(&grads, b_off, b_len),
                    dummy.as_entire_binding(),
                ],
            );
            let input = if l > 0 {
                Some((
                    bg(
                        &format!("train.layer{l}.backward_input"),
                        &back_u,
                        [
                            gz.as_entire_binding(),
                            range(&params, w_off, w_len),
                            range(&params, b_off, b_len),
                            gz_prev.as_entire_binding(),
                            pres[l].as_entire_binding(),
                        ],
                    ),
                    lp_back.workgroups_backward_input(ctx)?,
                ))
            } else {
                None
            };
            ops.push(LayerOps {
                forward: (forward, lp.workgroups(ctx)?),
                weights: (weights, lp.workgroups_backward_weights()),
                bias: (bias, lp.workgroups_bias_grad()),
                input,
            });
        }
        ctx.check()?;
        let align_u = limits.min_uniform_buffer_offset_alignment.max(1) as u64;
        let params_stride = (std::mem::size_of::<TrainParams>() as u64).div_ceil(align_u) * align_u;
        let rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        Ok(Self {
            ctx: ctx.clone(),
            elites: (0..cfg.num_elites).collect(),
            cfg,
            ensemble,
            layout,
            mlp,
            layouts,
            pipes,
            params,
            grads,
            moment1,
            moment2,
            best,
            partials,
            counters,
            x0,
            out,
            grad_out,
            ops,
            params_stride,
            n_chunks,
            rng,
        })
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
        let flat = self.ctx.read_buffer::<f32>(&self.params, self.layout.len)?;
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
        Ok(t)
    }

    /// Adam state: (first moments, second moments, steps taken), flat layout.
    pub fn adam_state(&self) -> Result<(Vec<f32>, Vec<f32>, u32)> {
        let m1 = self.ctx.read_buffer::<f32>(&self.moment1, self.layout.len)?;
        let m2 = self.ctx.read_buffer::<f32>(&self.moment2, self.layout.len)?;
        let c = read_u32s(&self.ctx, &self.counters, 4)?;
        Ok((m1, m2, c[0]))
    }

    /// Restores Adam state saved by [`Trainer::adam_state`].
    pub fn set_adam_state(&mut self, m1: &[f32], m2: &[f32], steps: u32) -> Result<()> {
        if m1.len() != self.layout.len || m2.len() != self.layout.len {
            return Err(Error::InvalidInput(format!("Adam moments must have {} values each", self.layout.len)));
        }
        let q = &self.ctx.queue;
        q.write_buffer(&self.moment1, 0, bytemuck::cast_slice(m1));
        q.write_buffer(&self.moment2, 0, bytemuck::cast_slice(m2));
        q.write_buffer(&self.counters, 0, bytemuck::cast_slice(&[steps, 0, 0, 0]));
        Ok(())
    }

    fn base_params(&self, valid: u32, step: usize, n_steps: usize, objective: u32) -> TrainParams {
        let s = &self.ensemble.spec;
        TrainParams {
            n_members: s.n_members as u32,
            batch: self.cfg.batch_size as u32,
            valid_rows: valid,
            in_dim: s.in_dim() as u32,
            model_out: s.model_out() as u32,
            probabilistic: s.probabilistic as u32,
            learn_bounds: (self.cfg.learn_logvar_bounds && s.probabilistic) as u32,
            step: step as u32,
            n_steps: n_steps as u32,
            bounds_offset: self.layout.max_logvar as u32,
            min_offset: self.layout.min_logvar as u32,
            n_params: self.layout.len as u32,
            n_chunks: self.n_chunks as u32,
            lr: self.cfg.lr as f32,
            beta1: self.cfg.beta1 as f32,
            beta2: self.cfg.beta2 as f32,
            eps: self.cfg.eps as f32,
            weight_decay: self.cfg.weight_decay as f32,
            clip_norm: self.cfg.clip_grad_norm.unwrap_or(0.0) as f32,
            logvar_penalty: self.cfg.logvar_penalty as f32,
            objective,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }

    /// Step parameters, indices and statistics for `n_steps` minibatch steps over `rows`
    /// (one list per member; `None` for scoring, where every member sees the same rows).
    fn make_epoch(&self, dataset: &wgpu::Buffer, valid: Vec<u32>, objective: u32) -> Result<Epoch> {
        let ctx = &self.ctx;
        let s = &self.ensemble.spec;
        let (e, b, mo) = (s.n_members, self.cfg.batch_size, s.model_out());
        let n_steps = valid.len();
        let stats_len = n_steps * e + n_steps + e * b * mo * 3;
        let idx_len = n_steps * e * b;
        ctx.check_buffer_size(
            "minibatch indices (steps × members × batch × 4 B)",
            idx_len as u64 * 4,
            true,
            "lower the data size",
        )?;
        let mut bytes = vec![0u8; self.params_stride as usize * n_steps];
        for (step, v) in valid.iter().enumerate() {
            let p = self.base_params(*v, step, n_steps, objective);
            let off = step * self.params_stride as usize;
            bytes[off..off + std::mem::size_of::<TrainParams>()].copy_from_slice(bytemuck::bytes_of(&p));
        }
        ctx.scoped("training epoch", || {
            let uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("train.step_params"),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(&uniform, 0, &bytes);
            let params_bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("train.step_params"),
                layout: &self.layouts.params,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &uniform,
                        offset: 0,
                        size: wgpu::BufferSize::new(std::mem::size_of::<TrainParams>() as u64),
                    }),
                }],
            });
            let indices = ctx.storage_buffer("train.indices", idx_len);
            let stats = ctx.storage_buffer("train.stats", stats_len);
            let loss_bg = kernels::bind_buffers(
                ctx,
                "train.loss",
                &self.layouts.loss,
                &[dataset, &indices, &self.x0, &self.out, &self.grad_out, &self.params, &self.grads, &stats],
            );
            let adam_bg = (objective == 0).then(|| {
                kernels::bind_buffers(
                    ctx,
                    "train.adam",
                    &self.layouts.adam,
                    &[&self.params, &self.grads, &self.moment1, &self.moment2, &self.partials, &stats, &self.counters],
                )
            });
            Epoch { n_steps, indices, stats, stats_len, params_bg, loss_bg, adam_bg, valid }
        })
    }

    /// Records steps `steps` of `ep` (training steps when `ep` has an optimiser bind group).
    fn encode(&self, ep: &Epoch, steps: std::ops::Range<usize>, backward_only: bool) -> Result<wgpu::CommandEncoder> {
        let s = &self.ensemble.spec;
        let (e, b) = (s.n_members as u32, self.cfg.batch_size as u32);
        let max = self.ctx.limits().max_compute_workgroups_per_dimension;
        let grid_x0 = grid_1d(e * b * s.in_dim() as u32, WG_SIZE, max)?;
        let grid_nll = grid_1d(e * b * s.model_out() as u32, WG_SIZE, max)?;
        let grid_reduce = grid_1d(e + s.model_out() as u32, WG_SIZE, max)?;
        let grid_chunks = grid_1d(self.n_chunks as u32, WG_SIZE, max)?;
        let grid_params = grid_1d(self.layout.len as u32, WG_SIZE, max)?;
        let mut encoder =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train") });
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("train"), timestamp_writes: None });
            for step in steps {
                let off = (step as u64 * self.params_stride) as u32;
                let run = |pass: &mut wgpu::ComputePass<'_>,
                           p: &wgpu::ComputePipeline,
                           g: &wgpu::BindGroup,
                           grid: (u32, u32)| {
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, &ep.params_bg, &[off]);
                    pass.set_bind_group(1, g, &[]);
                    pass.dispatch_workgroups(grid.0, grid.1, 1);
                };
                run(&mut pass, &self.pipes.gather, &ep.loss_bg, grid_x0);
                for op in &self.ops {
                    self.mlp.dispatch_with(&mut pass, &self.mlp.forward, &op.forward.0, op.forward.1);
                }
                run(&mut pass, &self.pipes.nll, &ep.loss_bg, grid_nll);
                run(&mut pass, &self.pipes.reduce, &ep.loss_bg, grid_reduce);
                if ep.adam_bg.is_none() && !backward_only {
                    continue;
                }
                for op in self.ops.iter().rev() {
                    self.mlp.dispatch_with(&mut pass, &self.mlp.backward_weights, &op.weights.0, op.weights.1);
                    self.mlp.dispatch_with(&mut pass, &self.mlp.bias_grad, &op.bias.0, op.bias.1);
                    if let Some((bg, groups)) = &op.input {
                        self.mlp.dispatch_with(&mut pass, &self.mlp.backward_input, bg, *groups);
                    }
                }
                let Some(adam_bg) = ep.adam_bg.as_ref().filter(|_| !backward_only) else { continue };
                run(&mut pass, &self.pipes.norm_partial, adam_bg, grid_chunks);
                run(&mut pass, &self.pipes.norm_final, adam_bg, (1, 1));
                run(&mut pass, &self.pipes.adam, adam_bg, grid_params);
            }
        }
        Ok(encoder)
    }

    fn run_steps(&self, ep: &Epoch, backward_only: bool) -> Result<()> {
        let per = self.cfg.steps_per_submission;
        let mut start = 0;
        while start < ep.n_steps {
            let end = (start + per).min(ep.n_steps);
            let encoder = self.encode(ep, start..end, backward_only)?;
            let index = self.ctx.queue.submit(Some(encoder.finish()));
            match self
                .ctx
                .device
                .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: Some(SUBMISSION_TIMEOUT) })
            {
                Ok(_) => {}
                Err(wgpu::PollError::Timeout) => return Err(Error::Timeout { waited: SUBMISSION_TIMEOUT }),
                Err(e) => {
                    self.ctx.check()?;
                    return Err(Error::Gpu(e.to_string()));
                }
            }
            self.ctx.check()?;
            start = end;
        }
        Ok(())
    }

    /// Per-member MSE of `ep` (a scoring epoch), weighting steps by their rows.
    fn member_scores(&self, ep: &Epoch) -> Result<Vec<f64>> {
        self.run_steps(ep, false)?;
        let e = self.ensemble.spec.n_members;
        let stats = self.ctx.read_buffer::<f32>(&ep.stats, ep.n_steps * e)?;
        let total: f64 = ep.valid.iter().map(|v| *v as f64).sum();
        Ok((0..e)
            .map(|m| ep.valid.iter().enumerate().map(|(s, v)| stats[s * e + m] as f64 * *v as f64).sum::<f64>() / total)
            .collect())
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
        self.ctx.queue.write_buffer(&self.grads, 0, bytemuck::cast_slice(&vec![0f32; self.layout.len]));
        self.run_steps(&ep, true)?;
        let stats = self.ctx.read_buffer::<f32>(&ep.stats, e)?;
        let grads = self.ctx.read_buffer::<f32>(&self.grads, self.layout.len)?;
        Ok((stats.iter().map(|v| *v as f64).collect(), grads))
    }

    /// Trains on `buffer` (normaliser from the training part, bootstrap per member, epochs with
    /// early stopping); keeps the best weights seen and selects the elites.
    pub fn train(&mut self, buffer: &ReplayBuffer) -> Result<TrainReport> {
        let spec = self.ensemble.spec.clone();
        if buffer.obs_dim() != spec.obs_dim || buffer.act_dim() != spec.act_dim {
            return Err(Error::InvalidInput(format!(
                "the buffer holds obs {} / act {}, the model expects obs {} / act {}",
                buffer.obs_dim(),
                buffer.act_dim(),
                spec.obs_dim,
                spec.act_dim
            )));
        }
        if buffer.is_empty() {
            return Err(Error::InvalidInput("cannot train on an empty replay buffer".into()));
        }
        let n = buffer.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.rng);
        let n_val = (n as f64 * self.cfg.validation_ratio) as usize;
        let (val_rows, train_rows) = order.split_at(n_val);
        let (val_rows, train_rows) = (val_rows.to_vec(), train_rows.to_vec());
        if train_rows.is_empty() {
            return Err(Error::InvalidInput(format!(
                "validation_ratio {} leaves no training data",
                self.cfg.validation_ratio
            )));
        }
        let (mean, std) = input_statistics(buffer, &train_rows);
        self.ensemble.input_mean = mean.clone();
        self.ensemble.input_std = std.clone();
        // Dataset rows: normalised input, then target.
        let (in_dim, mo) = (spec.in_dim(), spec.model_out());
        let mut data = Vec::with_capacity(n * (in_dim + mo));
        for i in 0..n {
            data.extend(buffer.input(i).iter().enumerate().map(|(k, v)| (v - mean[k]) / std[k]));
            data.extend(buffer.target(i, spec.learned_reward));
        }
        self.ctx.check_buffer_size(
            "training data (transitions × (inputs + targets) × 4 B)",
            data.len() as u64 * 4,
            true,
            "train on fewer transitions",
        )?;
        let dataset = self.ctx.scoped("training data", || self.ctx.storage_buffer_init("train.dataset", &data))?;

        let (e, b) = (spec.n_members, self.cfg.batch_size);
        let steps_for =
            |rows: usize| -> Vec<u32> { (0..rows.div_ceil(b)).map(|s| (rows - s * b).min(b) as u32).collect() };
        // Scoring: every member sees the same rows.
        let eval_rows = if val_rows.is_empty() { train_rows.clone() } else { val_rows.clone() };
        let eval = self.make_epoch(&dataset, steps_for(eval_rows.len()), 1)?;
        let mut eval_idx = vec![0u32; eval.n_steps * e * b];
        for (s, chunk) in eval_rows.chunks(b).enumerate() {
            for m in 0..e {
                for (r, row) in chunk.iter().enumerate() {
                    eval_idx[(s * e + m) * b + r] = *row as u32;
                }
            }
        }
        self.ctx.queue.write_buffer(&eval.indices, 0, bytemuck::cast_slice(&eval_idx));
        // Bootstrap resamples (with replacement) per member.
        let members: Vec<Vec<usize>> = (0..e)
            .map(|_| {
                if self.cfg.bootstrap {
                    (0..train_rows.len()).map(|_| train_rows[self.rng.random_range(0..train_rows.len())]).collect()
                } else {
                    train_rows.clone()
                }
            })
            .collect();
        let train_ep = self.make_epoch(&dataset, steps_for(train_rows.len()), 0)?;
        let _ = train_ep.stats_len;

        let mut report = TrainReport {
            epochs: 0,
            train_loss: Vec::new(),
            val_mse: Vec::new(),
            best_mse: Vec::new(),
            elites: Vec::new(),
            skipped_steps: 0,
            epoch_seconds: Vec::new(),
            n_train: train_rows.len(),
            n_eval: eval_rows.len(),
        };
        let mut best = self.member_scores(&eval)?;
        let mut since_improvement = 0;
        let mut improved_once = false;
        let skipped_before = read_u32s(&self.ctx, &self.counters, 4)?[2];
        // Runs of skipped steps are counted within this call.
        let c = read_u32s(&self.ctx, &self.counters, 4)?;
        self.ctx.queue.write_buffer(&self.counters, 0, bytemuck::cast_slice(&[c[0], 0, c[2], 0]));
        for _epoch in 0..self.cfg.epochs {
            let mut positions: Vec<usize> = (0..train_rows.len()).collect();
            positions.shuffle(&mut self.rng);
            let mut idx = vec![0u32; train_ep.n_steps * e * b];
            for (s, chunk) in positions.chunks(b).enumerate() {
                for (m, rows) in members.iter().enumerate() {
                    for (r, p) in chunk.iter().enumerate() {
                        idx[(s * e + m) * b + r] = rows[*p] as u32;
                    }
                }
            }
            self.ctx.queue.write_buffer(&train_ep.indices, 0, bytemuck::cast_slice(&idx));
            let t0 = Instant::now();
            self.run_steps(&train_ep, false)?;
            report.epoch_seconds.push(t0.elapsed().as_secs_f64());
            report.epochs += 1;
            let counters = read_u32s(&self.ctx, &self.counters, 4)?;
            if counters[3] >= self.cfg.max_nonfinite_steps {
                return Err(Error::Training(format!(
                    "{} consecutive minibatch steps had a non-finite gradient (limit train.max_nonfinite_steps = {}); \
                     check the data for extreme values or lower train.lr",
                    counters[3], self.cfg.max_nonfinite_steps
                )));
            }
            report.skipped_steps = counters[2] - skipped_before;
            let losses = self.ctx.read_buffer::<f32>(&train_ep.stats, train_ep.n_steps * e)?;
            let finite: Vec<f64> = losses.iter().filter(|v| v.is_finite()).map(|v| *v as f64).collect();
            report.train_loss.push(finite.iter().sum::<f64>() / finite.len().max(1) as f64);
            let scores = self.member_scores(&eval)?;
            let improved = scores
                .iter()
                .zip(&best)
                .any(|(s, b)| (b - s) / b.abs().max(f64::MIN_POSITIVE) > self.cfg.improvement_threshold);
            if improved {
                for (b, s) in best.iter_mut().zip(&scores) {
                    *b = b.min(*s);
                }
                let mut enc = self.ctx.device.create_command_encoder(&Default::default());
                enc.copy_buffer_to_buffer(&self.params, 0, &self.best, 0, Some(self.layout.len as u64 * 4));
                self.ctx.queue.submit(Some(enc.finish()));
                since_improvement = 0;
                improved_once = true;
            } else {
                since_improvement += 1;
            }
            report.val_mse.push(scores);
            if self.cfg.patience > 0 && since_improvement >= self.cfg.patience {
                break;
            }
        }
        if improved_once {
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&self.best, 0, &self.params, 0, Some(self.layout.len as u64 * 4));
            self.ctx.queue.submit(Some(enc.finish()));
        }
        let mut ranked: Vec<usize> = (0..e).collect();
        ranked.sort_by(|a, b| best[*a].total_cmp(&best[*b]));
        self.elites = ranked[..self.cfg.num_elites].to_vec();
        report.best_mse = best;
        report.elites = self.elites.clone();
        self.ctx.check()?;
        Ok(report)
    }
}
