//! The ensemble's training state on the GPU: the flat parameters (and a copy of the best seen),
//! gradients, Adam moments, the gradient-norm partials and counters, every layer's activations
//! and pre-activations, and the bind groups of the forward and backward dispatches — one per
//! layer and pass (`mlp.wgsl`), or the fused path's three (`mlp_fused.wgsl` forward and
//! backward chain, `mlp_grads.wgsl`). Built once per trainer; epochs (`epoch.rs`) bind their
//! data to it.

use super::params::ParamLayout;
use super::{TrainConfig, TrainKernel};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::adam::NORM_CHUNK;
use crate::kernels::mlp::{Activation, MlpKernels};
use crate::kernels::mlp_fused::{FusedBuffers, FusedParams, FusedShape, MlpFusedKernels};
use crate::kernels::mlp_grads::{GradsLayer, GradsParams, MlpGradsKernels};
use crate::kernels::net::{LayeredNet, NetBuffers, NetLayout};
use crate::model::{Ensemble, EnsembleSpec};

/// A bind group and its grid.
pub(super) type Bound = (wgpu::BindGroup, (u32, u32, u32));

/// The fused path's dispatches: every layer's forward pass, the input-gradient chain from the
/// output back to the first hidden layer (none for a network of one layer), every layer's
/// weight and bias gradients.
pub(super) struct FusedOps {
    /// The forward pass of a step that trains: it also writes the chain's transposed weights.
    pub(super) forward: Bound,
    /// The forward pass of a step that only scores.
    pub(super) score: Bound,
    pub(super) chain: Option<Bound>,
    pub(super) grads: Bound,
}

/// How a minibatch step runs the network.
pub(super) enum NetOps {
    /// One `mlp.wgsl` dispatch per layer and pass.
    Layers(LayeredNet),
    /// Three dispatches for every layer, with their kernels.
    Fused(FusedKernels, FusedOps),
}

/// The fused path's kernels.
pub(super) struct FusedKernels {
    pub(super) forward: MlpFusedKernels,
    pub(super) chain: Option<MlpFusedKernels>,
    pub(super) grads: MlpGradsKernels,
}

impl FusedKernels {
    /// The kernels `cfg.mlp_kernel` asks for with minibatches of `b` rows per member: built
    /// for `fused` (an error when the network or its stored values do not fit them) and `auto`
    /// (when they fit); none for `tiled`. Row blocks from `cfg.fused_blocks` when given (an
    /// error when the kernels cannot take them).
    pub(super) fn for_config(
        ctx: &GpuContext,
        spec: &EnsembleSpec,
        cfg: &TrainConfig,
        b: usize,
    ) -> Result<Option<Self>> {
        let kind = cfg.mlp_kernel;
        if kind == TrainKernel::Tiled {
            return Ok(None);
        }
        let dims = spec.widths();
        // Every layer's values in one buffer (the per-layer path keeps one buffer per layer).
        let values = FusedRegions::new(&dims, spec.n_members, spec.n_members * b).values_len as u64 * 4;
        let hint = "lower train.batch_size, or set train.mlp_kernel = \"tiled\"";
        let what = "training values of every layer (members × batch × (in + out + 2 × Σ hidden) × 4 B, and the \
                    weights of every layer but the first transposed)";
        match (kind, ctx.check_buffer_size(what, values, true, hint)) {
            (TrainKernel::Auto, Err(_)) => return Ok(None),
            (_, Err(e)) => return Err(e),
            (_, Ok(())) => {}
        }
        let limits = ctx.limits();
        // The chain's widths: the network's from the output back to the first hidden layer.
        let chain: Vec<usize> = dims[1..].iter().rev().copied().collect();
        // The rule's layout, or its columns per invocation with the row blocks asked for.
        let shape = |dims: &[usize]| {
            let s = FusedShape::for_training(dims, limits)?;
            match cfg.fused_blocks {
                None => Ok(s),
                Some(fb) if fb.rows % 4 == 0 => FusedShape::with_layout(dims, limits, fb.rows / 4, s.cols, fb.split),
                Some(fb) => Err(format!("{} rows per workgroup: a multiple of 4", fb.rows)),
            }
        };
        let shapes = shape(&dims).and_then(|forward| {
            let chain = if chain.len() > 1 { Some(shape(&chain)?) } else { None };
            Ok((forward, chain))
        });
        match (kind, shapes) {
            (_, Ok((forward, chain))) => Ok(Some(Self {
                forward: MlpFusedKernels::new(ctx, forward)?,
                chain: chain.map(|s| MlpFusedKernels::backward_chain(ctx, s)).transpose()?,
                grads: MlpGradsKernels::new(ctx)?,
            })),
            (_, Err(why)) if kind == TrainKernel::Fused || cfg.fused_blocks.is_some() => {
                Err(Error::config("train.mlp_kernel", format!("fused: {why}")))
            }
            (_, Err(_)) => Ok(None),
        }
    }
}

/// Buffers and bind groups of the network being trained.
pub(super) struct DeviceNet {
    pub(super) params: wgpu::Buffer,
    pub(super) grads: wgpu::Buffer,
    pub(super) moment1: wgpu::Buffer,
    pub(super) moment2: wgpu::Buffer,
    pub(super) best: wgpu::Buffer,
    pub(super) partials: wgpu::Buffer,
    pub(super) counters: wgpu::Buffer,
    pub(super) x0: wgpu::Buffer,
    /// The network's output rows from its start (on the fused path, the hidden layers' values
    /// follow in the same buffer).
    pub(super) out: wgpu::Buffer,
    /// The loss gradient at the output from its start (on the fused path, every hidden layer's
    /// output gradient follows).
    pub(super) grad_out: wgpu::Buffer,
    /// The dispatches (set once the buffers exist): see [`DeviceNet::ops`].
    ops: Option<NetOps>,
    /// Chunks of the gradient-norm reduction.
    pub(super) n_chunks: usize,
}

/// Where the fused path keeps every layer's values, in floats: `values` = [output rows | input
/// rows | per hidden layer h: pre-activations, activations | per layer l ≥ 1: its weights
/// transposed, `[E, out, in]`, written by the forward pass for the backward chain], `deltas` =
/// [gradient at the output | per hidden layer h: gradient at its output]; each row region
/// `[rows, width]`.
struct FusedRegions {
    input: usize,
    pre: Vec<usize>,
    act: Vec<usize>,
    /// Every layer but the first's weights transposed, `[E, out, in]` (the backward chain's).
    transposed: Vec<usize>,
    delta: Vec<usize>,
    values_len: usize,
    deltas_len: usize,
}

impl FusedRegions {
    fn new(dims: &[usize], n_members: usize, rows: usize) -> Self {
        let n_layers = dims.len() - 1;
        let input = rows * dims[n_layers];
        let mut at = input + rows * dims[0];
        let mut d_at = rows * dims[n_layers];
        let (mut pre, mut act, mut delta) = (Vec::new(), Vec::new(), Vec::new());
        for w in &dims[1..n_layers] {
            pre.push(at);
            act.push(at + rows * w);
            at += 2 * rows * w;
            delta.push(d_at);
            d_at += rows * w;
        }
        let mut transposed = Vec::new();
        for l in 1..n_layers {
            transposed.push(at);
            at += n_members * dims[l] * dims[l + 1];
        }
        Self { input, pre, act, transposed, delta, values_len: at, deltas_len: d_at }
    }
}

impl DeviceNet {
    /// Uploads `ensemble` in `layout` and binds every layer for minibatches of `b` rows per
    /// member: through `fused` when given, else one `mlp` dispatch per layer and pass.
    pub(super) fn build(
        ctx: &GpuContext,
        mlp: &MlpKernels,
        fused: Option<FusedKernels>,
        ensemble: &Ensemble,
        layout: &ParamLayout,
        b: usize,
    ) -> Result<Self> {
        let spec = &ensemble.spec;
        let rows = spec.n_members * b;
        let n_chunks = layout.len.div_ceil(NORM_CHUNK);
        let flat = layout.pack(ensemble);
        // Sized for the fused path (FusedKernels::for_config checked them against the device).
        let regions = FusedRegions::new(&spec.widths(), spec.n_members, rows);
        let built = ctx.scoped("trainer buffers", || {
            let sb = |label: &str, len: usize| ctx.storage_buffer(label, len);
            let params = ctx.storage_buffer_init("train.params", &flat);
            let best = ctx.storage_buffer_init("train.best", &flat);
            let grads = sb("train.grads", layout.len);
            let moment1 = sb("train.moment1", layout.len);
            let moment2 = sb("train.moment2", layout.len);
            let partials = sb("train.partials", n_chunks);
            let counters = sb("train.counters", 4);
            let x0 = sb("train.x0", rows * spec.in_dim());
            let (out_len, grad_len) = match fused {
                Some(_) => (regions.values_len, regions.deltas_len),
                None => (rows * spec.out_cols(), rows * spec.out_cols()),
            };
            let out = sb("train.out", out_len);
            let grad_out = sb("train.grad_out", grad_len);
            (params, best, grads, moment1, moment2, partials, counters, x0, out, grad_out)
        })?;
        let (params, best, grads, moment1, moment2, partials, counters, x0, out, grad_out) = built;
        let mut net =
            Self { params, grads, moment1, moment2, best, partials, counters, x0, out, grad_out, ops: None, n_chunks };
        net.ops = Some(match fused {
            Some(k) => {
                let ops = net.bind_fused(ctx, &k, spec, layout, rows, &regions)?;
                NetOps::Fused(k, ops)
            }
            None => NetOps::Layers(net.bind_layers(ctx, mlp, spec, layout, b)?),
        });
        Ok(net)
    }

    /// How a minibatch step runs the network.
    pub(super) fn ops(&self) -> &NetOps {
        self.ops.as_ref().expect("bound when the trainer was built")
    }

    /// The fused path's three bind groups over `regions` of `out` and `grad_out`.
    fn bind_fused(
        &self,
        ctx: &GpuContext,
        k: &FusedKernels,
        spec: &EnsembleSpec,
        layout: &ParamLayout,
        rows: usize,
        regions: &FusedRegions,
    ) -> Result<FusedOps> {
        let e = spec.n_members;
        let dims = spec.widths();
        let n_layers = dims.len() - 1;
        let what = |w: &str| Error::InvalidInput(format!("the fused training path: {w}"));
        let u = |v: usize| u32::try_from(v).map_err(|_| what("offsets past 2^32 floats"));
        let us = |v: &[usize]| v.iter().map(|x| u(*x)).collect::<Result<Vec<u32>>>();
        let (w_off, b_off) = (us(&layout.weight)?, us(&layout.bias)?);
        let rows32 = u(rows)?;
        // Forward: every layer's weights and biases at their offsets in the flat parameters.
        let mut p = FusedParams::new(&dims, e, 1, rows32).ok_or_else(|| what("too many layers"))?;
        p.w_off[..n_layers].copy_from_slice(&w_off);
        p.b_off[..n_layers].copy_from_slice(&b_off);
        let (pre, act, delta) = (us(&regions.pre)?, us(&regions.act)?, us(&regions.delta)?);
        let t_off = us(&regions.transposed)?;
        let p = p.store_hidden(0, u(regions.input)?, &pre, &act).ok_or_else(|| what("hidden layer offsets"))?;
        let net = FusedBuffers { input: &self.x0, weights: &self.params, biases: &self.params, output: &self.out };
        let groups = k.forward.shape.workgroups(ctx, &p)?;
        let score = (k.forward.bind(ctx, "train.forward_score", &p, &net), groups);
        let p = p.write_transposed(&t_off).ok_or_else(|| what("transposed weight offsets"))?;
        let forward = (k.forward.bind(ctx, "train.forward_fused", &p, &net), groups);
        let chain = match &k.chain {
            None => None,
            Some(kc) => {
                // The weights are the forward pass's transposed copy in `out`.
                let p = FusedParams::backward_chain(&dims, e, 1, rows32, &t_off, 0, &pre, &delta)
                    .ok_or_else(|| what("backward chain offsets"))?;
                let b =
                    FusedBuffers { input: &self.out, weights: &self.out, biases: &self.params, output: &self.grad_out };
                Some((kc.bind(ctx, "train.backward_chain", &p, &b), kc.shape.workgroups(ctx, &p)?))
            }
        };
        // Weight gradients: layer l's input rows (the input copy, then the hidden activations)
        // and the gradient at its output (the loss gradient for the last layer).
        let layers: Vec<GradsLayer> = (0..n_layers)
            .map(|l| GradsLayer {
                in_dim: dims[l],
                out_dim: dims[l + 1],
                x_off: if l == 0 { regions.input } else { regions.act[l - 1] },
                d_off: if l + 1 == n_layers { 0 } else { regions.delta[l] },
                w_off: layout.weight[l],
                b_off: layout.bias[l],
            })
            .collect();
        let gp = GradsParams::new(&layers, e, 1, rows32)?;
        let grads =
            (k.grads.bind(ctx, "train.weight_grads", &gp, &self.out, &self.grad_out, &self.grads), gp.workgroups(ctx)?);
        ctx.check()?;
        Ok(FusedOps { forward, score, chain, grads })
    }

    /// One forward, weight-gradient and input-gradient dispatch per layer (`mlp.wgsl`, through
    /// [`LayeredNet`]), SiLU after every layer but the last.
    fn bind_layers(
        &self,
        ctx: &GpuContext,
        mlp: &MlpKernels,
        spec: &EnsembleSpec,
        layout: &ParamLayout,
        b: usize,
    ) -> Result<LayeredNet> {
        let net = NetLayout {
            widths: spec.widths(),
            n_members: spec.n_members,
            weight: layout.weight.clone(),
            bias: layout.bias.clone(),
            len: layout.max_logvar,
        };
        let buffers = NetBuffers {
            params: &self.params,
            grads: Some(&self.grads),
            input: &self.x0,
            output: &self.out,
            grad_output: Some(&self.grad_out),
            grad_input: None,
        };
        LayeredNet::bind(ctx, mlp, "train", &net, Activation::Silu, b, &buffers)
    }
}
