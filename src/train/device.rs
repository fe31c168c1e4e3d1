//! The ensemble's training state on the GPU: the flat parameters (and a copy of the best seen),
//! gradients, Adam moments, the gradient-norm partials and counters, every layer's activations
//! and pre-activations, and the bind groups of each layer's forward and backward dispatches.
//! Built once per trainer; epochs (`epoch.rs`) bind their data to it.

use super::params::ParamLayout;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::adam::NORM_CHUNK;
use crate::kernels::mlp::{Activation, LayerParams, MlpKernels};
use crate::model::Ensemble;

/// The dispatches of one layer: forward, the weight and bias gradients (one dispatch), and
/// (after the first layer) the gradient w.r.t. its input.
pub(super) struct LayerOps {
    pub(super) forward: (wgpu::BindGroup, (u32, u32, u32)),
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
    pub(super) out: wgpu::Buffer,
    pub(super) grad_out: wgpu::Buffer,
    pub(super) ops: Vec<LayerOps>,
    /// Chunks of the gradient-norm reduction.
    pub(super) n_chunks: usize,
}

impl DeviceNet {
    /// Uploads `ensemble` in `layout` and binds every layer for minibatches of `b` rows per member.
    pub(super) fn build(
        ctx: &GpuContext,
        mlp: &MlpKernels,
        ensemble: &Ensemble,
        layout: &ParamLayout,
        b: usize,
    ) -> Result<Self> {
        let spec = &ensemble.spec;
        let e = spec.n_members;
        let rows = (e * b) as u64;
        let widest = spec.layer_dims().iter().map(|(i, o)| (*i).max(*o)).max().unwrap_or(1) as u64;
        let n_chunks = layout.len.div_ceil(NORM_CHUNK);
        let flat = layout.pack(ensemble);
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
            let c_dst = if last { &out } else { &acts[l + 1] };
            let aux_fwd = if last { &dummy } else { &pres[l + 1] };
            let bg = |label: &str, u: &wgpu::Buffer, entries: [wgpu::BindingResource<'_>; 5]| {
                let [a, bb, bias, c, aux] = entries;
                mlp.bind(ctx, label, [u.as_entire_binding(), a, bb, bias, c, aux])
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
                &grads_u,
                [
                    acts[l].as_entire_binding(),
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
                weights: (weights, lp_grads.workgroups_backward_weights()),
                input,
            });
        }
        Ok(Self { params, grads, moment1, moment2, best, partials, counters, x0, out, grad_out, ops, n_chunks })
    }
}
