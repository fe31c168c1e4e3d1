//! The ensemble's training state on the GPU: the flat parameters (and a copy of the best seen),
//! gradients, Adam moments, the gradient-norm partials and counters, every layer's activations
//! and pre-activations, and the bind groups of each layer's forward and backward dispatches.
//! Built once per trainer; epochs (`epoch.rs`) bind their data to it.

use super::params::ParamLayout;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::adam::NORM_CHUNK;
use crate::kernels::mlp::{Activation, LayerParams, MlpKernels};
use crate::kernels::mlp_fused::{FusedBuffers, FusedParams, MlpFusedKernels};
use crate::model::Ensemble;

/// The dispatches of one layer: forward (none when the fused kernel runs the whole forward
/// pass), the weight and bias gradients (one dispatch), and (after the first layer) the gradient
/// w.r.t. its input.
pub(super) struct LayerOps {
    pub(super) forward: Option<(wgpu::BindGroup, (u32, u32, u32))>,
    pub(super) weights: (wgpu::BindGroup, (u32, u32, u32)),
    pub(super) input: Option<(wgpu::BindGroup, (u32, u32, u32))>,
}

/// Buffers and per-layer bind groups of the network being trained.
pub(super) struct DeviceNet {
    pub(super) params: wgpu::Buffer,
    pub(super) grads: wgpu::Buffer,
    pub(super) moment1: wgpu::Buffer,
    pub(super) moment2: wgpu::Buffer,
    pub(super) best: wgpu::Buffer,
    pub(super) partials: wgpu::Buffer,
    pub(super) counters: wgpu::Buffer,
    pub(super) x0: wgpu::Buffer,
    /// The network's output rows from its start (with the fused forward pass, the hidden layers'
    /// values follow in the same buffer).
    pub(super) out: wgpu::Buffer,
    pub(super) grad_out: wgpu::Buffer,
    pub(super) ops: Vec<LayerOps>,
    /// The fused forward pass of every layer (`MlpFusedKernels::forward`), when it runs.
    pub(super) fused: Option<(wgpu::BindGroup, (u32, u32, u32))>,
    /// Chunks of the gradient-norm reduction.
    pub(super) n_chunks: usize,
}

/// Where a hidden layer's values live: a buffer of their own (per-layer forward dispatches) or
/// a range of the fused forward pass's output buffer.
#[derive(Clone, Copy)]
struct Region<'a> {
    buffer: &'a wgpu::Buffer,
    /// Offset in floats.
    off: usize,
    len: usize,
}

impl<'a> Region<'a> {
    fn binding(&self) -> wgpu::BindingResource<'a> {
        range(self.buffer, self.off, self.len)
    }
}

fn range(buf: &wgpu::Buffer, off: usize, len: usize) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: buf,
        offset: (off * 4) as u64,
        size: wgpu::BufferSize::new((len.max(1) * 4) as u64),
    })
}

impl DeviceNet {
    /// Uploads `ensemble` in `layout` and binds every layer for minibatches of `b` rows per
    /// member; the forward pass through `fused` when given, else one `mlp` dispatch per layer.
    /// `align` is the storage offset alignment in floats.
    pub(super) fn build(
        ctx: &GpuContext,
        mlp: &MlpKernels,
        fused: Option<&MlpFusedKernels>,
        ensemble: &Ensemble,
        layout: &ParamLayout,
        b: usize,
        align: usize,
    ) -> Result<Self> {
        let spec = &ensemble.spec;
        let e = spec.n_members;
        let rows = e * b;
        let widest = spec.layer_dims().iter().map(|(i, o)| (*i).max(*o)).max().unwrap_or(1);
        let n_chunks = layout.len.div_ceil(NORM_CHUNK);
        let flat = layout.pack(ensemble);
        let dims = spec.layer_dims();
        let n_layers = dims.len();
        // With the fused forward pass, one buffer holds the output rows and then every hidden
        // layer's pre-activations and activations (each at an aligned offset): the kernel writes
        // them all through one binding. Per-layer dispatches write separate buffers (a dispatch
        // may not read one range of a buffer and write another).
        let mut packed = vec![(0usize, 0usize); n_layers];
        let mut total = rows * spec.out_cols();
        for (l, (_, o)) in dims.iter().enumerate().take(n_layers - 1) {
            let pre = total.next_multiple_of(align);
            let act = (pre + rows * o).next_multiple_of(align);
            packed[l + 1] = (pre, act);
            total = act + rows * o;
        }
        if fused.is_some() {
            ctx.check_buffer_size(
                "training activations (every layer's, members × batch × width × 2 × 4 B)",
                total as u64 * 4,
                true,
                "lower train.batch_size, or set train.forward_kernel = \"tiled\"",
            )?;
        }
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
            let out = sb("train.out", if fused.is_some() { total } else { rows * spec.out_cols() });
            let grad_out = sb("train.grad_out", rows * spec.out_cols());
            // Per-layer dispatches: hidden[l] = (pre-activations, activations) of layer l's output.
            let mut hidden = Vec::new();
            if fused.is_none() {
                for (l, (_, o)) in dims.iter().enumerate().take(n_layers - 1) {
                    hidden.push((
                        sb(&format!("train.pre{}", l + 1), rows * o),
                        sb(&format!("train.act{}", l + 1), rows * o),
                    ));
                }
            }
            let deltas = [sb("train.delta_a", rows * widest), sb("train.delta_b", rows * widest)];
            (params, best, grads, moment1, moment2, partials, counters, x0, out, grad_out, hidden, deltas)
        })?;
        let (params, best, grads, moment1, moment2, partials, counters, x0, out, grad_out, hidden, deltas) = built;
        // acts[l] is the input of layer l (acts[0] = x0), pres[l] its pre-activation (l ≥ 1).
        let mut acts = vec![Region { buffer: &x0, off: 0, len: rows * spec.in_dim() }];
        let mut pres = vec![Region { buffer: &x0, off: 0, len: 1 }];
        for (l, (_, o)) in dims.iter().enumerate().take(n_layers - 1) {
            let len = rows * o;
            match hidden.get(l) {
                Some((pre, act)) => {
                    pres.push(Region { buffer: pre, off: 0, len });
                    acts.push(Region { buffer: act, off: 0, len });
                }
                None => {
                    let (pre, act) = packed[l + 1];
                    pres.push(Region { buffer: &out, off: pre, len });
                    acts.push(Region { buffer: &out, off: act, len });
                }
            }
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
                bias_grad_off: 0,
            };
            // backward_input's activation is the previous layer's (SiLU: every layer before the last).
            let lp_back = LayerParams { activation: Activation::Silu as u32, store_pre: 0, ..lp };
            let (w_off, b_off) = (layout.weight[l], layout.bias[l]);
            // backward_weights writes the bias gradients too (an extra column of workgroups),
            // `b_off - w_off` floats after the weights' (each layer's bias follows its weight).
            let lp_grads = LayerParams { bias_grad_off: (b_off - w_off) as u32, ..lp_back };
            let fwd_u = ctx.uniform_buffer_init(&format!("train.layer{l}.forward"), &[lp]);
            let back_u = ctx.uniform_buffer_init(&format!("train.layer{l}.backward"), &[lp_back]);
            let grads_u = ctx.uniform_buffer_init(&format!("train.layer{l}.backward_weights"), &[lp_grads]);
            let (w_len, b_len) = (e * i * o, e * o);
            // The gradient w.r.t. this layer's output: the loss gradient for the last layer,
            // else the delta buffer that layer l + 1's backward_input wrote.
            let gz: &wgpu::Buffer = if last { &grad_out } else { &deltas[(n_layers - 2 - l) % 2] };
            let gz_prev = &deltas[(n_layers - 1 - l) % 2];
            let out_region = Region { buffer: &out, off: 0, len: rows * o };
            let c_dst = if last { out_region } else { acts[l + 1] };
            let aux_fwd = if last { Region { buffer: &dummy, off: 0, len: 1 } } else { pres[l + 1] };
            let bg = |label: &str, u: &wgpu::Buffer, entries: [wgpu::BindingResource<'_>; 5]| {
                let [a, bb, bias, c, aux] = entries;
                mlp.bind(ctx, label, [u.as_entire_binding(), a, bb, bias, c, aux])
            };
            let forward = match fused {
                Some(_) => None,
                None => Some((
                    bg(
                        &format!("train.layer{l}.forward"),
                        &fwd_u,
                        [
                            acts[l].binding(),
                            range(&params, w_off, w_len),
                            range(&params, b_off, b_len),
                            c_dst.binding(),
                            aux_fwd.binding(),
                        ],
                    ),
                    lp.workgroups(ctx)?,
                )),
            };
            let weights = bg(
                &format!("train.layer{l}.backward_weights"),
                &grads_u,
                [
                    acts[l].binding(),
                    gz.as_entire_binding(),
                    range(&params, b_off, b_len),
                    range(&grads, w_off, b_off + b_len - w_off),
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
                            pres[l].binding(),
                        ],
                    ),
                    lp_back.workgroups_backward_input(ctx)?,
                ))
            } else {
                None
            };
            ops.push(LayerOps { forward, weights: (weights, lp_grads.workgroups_backward_weights()), input });
        }
        let fused = match fused {
            None => None,
            Some(k) => {
                // Every layer's weights and biases at their offsets in the flat parameters.
                let what = |w: &str| Error::InvalidInput(format!("the fused forward pass: {w}"));
                let u32_of = |v: usize| u32::try_from(v).map_err(|_| what("offsets past 2^32 floats"));
                let all: Vec<usize> = std::iter::once(spec.in_dim()).chain(dims.iter().map(|d| d.1)).collect();
                let mut p = FusedParams::new(&all, e, 1, rows as u32).ok_or_else(|| what("too many layers"))?;
                for l in 0..n_layers {
                    p.w_off[l] = u32_of(layout.weight[l])?;
                    p.b_off[l] = u32_of(layout.bias[l])?;
                }
                let pre = packed[1..].iter().map(|r| u32_of(r.0)).collect::<Result<Vec<_>>>()?;
                let act = packed[1..].iter().map(|r| u32_of(r.1)).collect::<Result<Vec<_>>>()?;
                let p = p.store_hidden(0, &pre, &act).ok_or_else(|| what("one offset per hidden layer"))?;
                let buffers = FusedBuffers { input: &x0, weights: &params, biases: &params, output: &out };
                let bg = ctx.scoped("fused forward pass", || k.bind(ctx, "train.forward_fused", &p, &buffers))?;
                Some((bg, k.shape.workgroups(ctx, &p)?))
            }
        };
        Ok(Self { params, grads, moment1, moment2, best, partials, counters, x0, out, grad_out, ops, fused, n_chunks })
    }
}
