//! A whole network of `mlp.wgsl` layers over flat parameter and gradient buffers, for any
//! widths and number of members: the per-layer forward, weight-gradient and input-gradient
//! dispatches, with every hidden layer's activations and pre-activations in buffers of their
//! own. The ensemble trainer's per-layer path, the SAC actor and the SAC twin critics (a
//! 2-member network) are bound through it.
//!
//! Rows are member-major: with `rows` rows per member, member `m` owns rows
//! `[m · rows, (m + 1) · rows)` of the input, output and gradient buffers.

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Recorder};
use crate::kernels::mlp::{Activation, LayerParams, MlpKernels};

/// A bind group and its grid.
pub type Bound = (wgpu::BindGroup, (u32, u32, u32));

/// Where each layer's weight `[E, in, out]` and bias `[E, out]` start in a flat parameter
/// buffer (floats; every start aligned for buffer bindings).
#[derive(Debug, Clone, PartialEq)]
pub struct NetLayout {
    /// The input width, then every layer's output width.
    pub widths: Vec<usize>,
    /// Members (independent networks of the same widths).
    pub n_members: usize,
    /// Offset of each layer's weight.
    pub weight: Vec<usize>,
    /// Offset of each layer's bias.
    pub bias: Vec<usize>,
    /// Floats up to the end of the last bias, padding included.
    pub len: usize,
}

impl NetLayout {
    /// The layout of `n_members` networks of `widths` with tensor starts aligned to `align`
    /// floats.
    pub fn new(widths: &[usize], n_members: usize, align: usize) -> Self {
        let up = |x: usize| x.div_ceil(align) * align;
        let (mut weight, mut bias, mut at) = (Vec::new(), Vec::new(), 0);
        for w in widths.windows(2) {
            weight.push(at);
            at = up(at + n_members * w[0] * w[1]);
            bias.push(at);
            at = up(at + n_members * w[1]);
        }
        Self { widths: widths.to_vec(), n_members, weight, bias, len: at }
    }

    /// The floats of a binding offset on this device.
    pub fn alignment(ctx: &GpuContext) -> usize {
        ctx.limits().min_storage_buffer_offset_alignment as usize / 4
    }

    /// Every layer's `(in, out)`.
    pub fn layer_dims(&self) -> Vec<(usize, usize)> {
        self.widths.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Layers.
    pub fn n_layers(&self) -> usize {
        self.widths.len() - 1
    }

    /// Packs per-layer `(weight, bias)` tensors (`[E, in, out]`, `[E, out]`) into a flat buffer
    /// of this layout; an error when a tensor has another length.
    pub fn pack<'a>(&self, layers: impl IntoIterator<Item = (&'a [f32], &'a [f32])>) -> Result<Vec<f32>> {
        let mut flat = vec![0.0; self.len];
        let dims = self.layer_dims();
        let mut n = 0;
        for (l, (w, b)) in layers.into_iter().enumerate() {
            let Some((i, o)) = dims.get(l) else { break };
            if w.len() != self.n_members * i * o || b.len() != self.n_members * o {
                return Err(Error::InvalidInput(format!(
                    "layer {l}: {} weights and {} biases for {} members × {i} × {o}",
                    w.len(),
                    b.len(),
                    self.n_members
                )));
            }
            flat[self.weight[l]..self.weight[l] + w.len()].copy_from_slice(w);
            flat[self.bias[l]..self.bias[l] + b.len()].copy_from_slice(b);
            n += 1;
        }
        if n != dims.len() {
            return Err(Error::InvalidInput(format!("{n} layers for a network of {}", dims.len())));
        }
        Ok(flat)
    }

    /// PyTorch's default initialisation of `nn.Linear` (weights and biases uniform in
    /// ±1/√in), every layer and member, from `seed`; zero padding.
    pub fn init_uniform(&self, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
        let mut flat = vec![0.0; self.len];
        for (l, (i, o)) in self.layer_dims().into_iter().enumerate() {
            let bound = 1.0 / (i as f64).sqrt();
            let e = self.n_members;
            for (at, n) in [(self.weight[l], e * i * o), (self.bias[l], e * o)] {
                for v in &mut flat[at..at + n] {
                    *v = rng.random_range(-bound..bound) as f32;
                }
            }
        }
        flat
    }

    /// Layer `l`'s weight and bias from a flat buffer of this layout.
    pub fn unpack_layer<'a>(&self, flat: &'a [f32], l: usize) -> (&'a [f32], &'a [f32]) {
        let (i, o) = self.layer_dims()[l];
        let e = self.n_members;
        (&flat[self.weight[l]..self.weight[l] + e * i * o], &flat[self.bias[l]..self.bias[l] + e * o])
    }
}

/// The buffers a network reads and writes; `[E · rows, width]` each, member-major.
pub struct NetBuffers<'a> {
    /// The flat parameters (a [`NetLayout`]).
    pub params: &'a wgpu::Buffer,
    /// The flat parameter gradients, written by the backward pass (none: no weight gradients).
    pub grads: Option<&'a wgpu::Buffer>,
    /// The input rows.
    pub input: &'a wgpu::Buffer,
    /// The output rows (identity output layer).
    pub output: &'a wgpu::Buffer,
    /// The gradient of the loss at the output rows (none: forward only).
    pub grad_output: Option<&'a wgpu::Buffer>,
    /// Where the backward pass writes the gradient at the input rows (none: not computed).
    pub grad_input: Option<&'a wgpu::Buffer>,
}

/// One layer's dispatches.
struct LayerOps {
    forward: Bound,
    weights: Option<Bound>,
    input: Option<Bound>,
}

/// A network bound to its buffers: record its forward pass, then its backward pass.
pub struct LayeredNet {
    ops: Vec<LayerOps>,
    /// `acts[l]`: the output of hidden layer `l` (the input of layer `l + 1`).
    acts: Vec<wgpu::Buffer>,
}

fn range(buf: &wgpu::Buffer, off: usize, len: usize) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: buf,
        offset: (off * 4) as u64,
        size: wgpu::BufferSize::new((len.max(1) * 4) as u64),
    })
}

/// The hidden layers' value buffers: outputs, pre-activations, two alternating gradients.
struct Hidden {
    acts: Vec<wgpu::Buffer>,
    pres: Vec<wgpu::Buffer>,
    deltas: [wgpu::Buffer; 2],
    dummy: wgpu::Buffer,
}

impl Hidden {
    fn new(ctx: &GpuContext, label: &str, layout: &NetLayout, rows: usize) -> Result<Self> {
        let w = &layout.widths;
        let n = w.len() - 1;
        let widest = w.iter().copied().max().unwrap_or(1);
        let total = layout.n_members * rows;
        let bytes = (total as u64).saturating_mul(widest as u64).saturating_mul(4);
        ctx.check_buffer_size("a hidden layer's values", bytes, true, "lower the batch size or the widths")?;
        ctx.scoped(label, || {
            let sb = |name: String, len: usize| ctx.storage_buffer(&format!("{label}.{name}"), len);
            Self {
                acts: (1..n).map(|l| sb(format!("act{l}"), total * w[l])).collect(),
                pres: (1..n).map(|l| sb(format!("pre{l}"), total * w[l])).collect(),
                deltas: [sb("delta_a".into(), total * widest), sb("delta_b".into(), total * widest)],
                dummy: sb("no_aux".into(), 1),
            }
        })
    }
}

impl LayeredNet {
    /// Binds `layout`'s layers to `b` for `rows` rows per member, with `hidden` after every
    /// layer but the last: forward always; weight gradients when `b.grads` and
    /// `b.grad_output` are given; the input gradient when `b.grad_input` is too.
    pub fn bind(
        ctx: &GpuContext,
        mlp: &MlpKernels,
        label: &str,
        layout: &NetLayout,
        hidden: Activation,
        rows: usize,
        b: &NetBuffers<'_>,
    ) -> Result<Self> {
        let h = Hidden::new(ctx, label, layout, rows)?;
        let ops = (0..layout.n_layers())
            .map(|l| bind_layer(ctx, mlp, label, layout, hidden, rows, b, &h, l))
            .collect::<Result<Vec<_>>>()?;
        ctx.check()?;
        Ok(Self { ops, acts: h.acts })
    }

    /// Records the forward pass.
    pub fn record_forward(&self, rec: &mut Recorder<'_>, mlp: &MlpKernels) {
        for op in &self.ops {
            rec.dispatch("forward", &mlp.forward, &[(&op.forward.0, &[])], op.forward.1);
        }
    }

    /// Records the backward pass from the output gradient: each layer's weight and bias
    /// gradients (when bound) and the gradient at its input (down to the network's input when
    /// bound).
    pub fn record_backward(&self, rec: &mut Recorder<'_>, mlp: &MlpKernels) {
        for op in self.ops.iter().rev() {
            if let Some((bg, groups)) = &op.weights {
                rec.dispatch("backward_weights", &mlp.backward_weights, &[(bg, &[])], *groups);
            }
            if let Some((bg, groups)) = &op.input {
                rec.dispatch("backward_input", &mlp.backward_input, &[(bg, &[])], *groups);
            }
        }
    }

    /// Hidden layer `l`'s output buffer (`[E · rows, widths[l + 1]]`).
    pub fn hidden_output(&self, l: usize) -> &wgpu::Buffer {
        &self.acts[l]
    }
}

/// Layer `l`'s dispatches.
#[allow(clippy::too_many_arguments)]
fn bind_layer(
    ctx: &GpuContext,
    mlp: &MlpKernels,
    label: &str,
    layout: &NetLayout,
    hidden: Activation,
    rows: usize,
    b: &NetBuffers<'_>,
    h: &Hidden,
    l: usize,
) -> Result<LayerOps> {
    let (e, n) = (layout.n_members, layout.n_layers());
    let (i, o) = layout.layer_dims()[l];
    let last = l + 1 == n;
    let (w_off, b_off) = (layout.weight[l], layout.bias[l]);
    let lp = LayerParams {
        n_batch: 1,
        local_slots: u32::try_from(e * rows).map_err(|_| Error::InvalidInput(format!("{label}: rows past 2^32")))?,
        n_members: e as u32,
        in_dim: i as u32,
        out_dim: o as u32,
        activation: if last { Activation::Identity as u32 } else { hidden as u32 },
        store_pre: (!last) as u32,
        bias_grad_off: 0,
    };
    // backward_input's activation is the previous layer's (none before the first layer).
    let lp_back = LayerParams { activation: if l == 0 { 0 } else { hidden as u32 }, store_pre: 0, ..lp };
    // backward_weights writes the bias gradients `b_off - w_off` floats after the weights'.
    let lp_grads = LayerParams { bias_grad_off: (b_off - w_off) as u32, ..lp_back };
    let (w_len, b_len) = (e * i * o, e * o);
    let input = if l == 0 { b.input } else { &h.acts[l - 1] };
    // The gradient at this layer's output: the loss gradient for the last layer, else what
    // layer l + 1's backward_input wrote.
    let gz = if last { b.grad_output } else { Some(&h.deltas[(n - 2 - l) % 2]) };
    let (c_dst, aux) = if last { (b.output, &h.dummy) } else { (&h.acts[l], &h.pres[l]) };
    let name = |pass: &str| format!("{label}.layer{l}.{pass}");
    let bg = |pass: &str, p: LayerParams, r: [wgpu::BindingResource<'_>; 5]| {
        let u = ctx.uniform_buffer_init(&name(pass), &[p]);
        let [a, bb, bias, c, x] = r;
        mlp.bind(ctx, &name(pass), [u.as_entire_binding(), a, bb, bias, c, x])
    };
    let weights_r = || range(b.params, w_off, w_len);
    let bias_r = || range(b.params, b_off, b_len);
    let forward = bg(
        "forward",
        lp,
        [input.as_entire_binding(), weights_r(), bias_r(), c_dst.as_entire_binding(), aux.as_entire_binding()],
    );
    let weights = match (b.grads, gz) {
        (Some(grads), Some(gz)) => Some((
            bg(
                "backward_weights",
                lp_grads,
                [
                    input.as_entire_binding(),
                    gz.as_entire_binding(),
                    bias_r(),
                    range(grads, w_off, b_off + b_len - w_off),
                    h.dummy.as_entire_binding(),
                ],
            ),
            lp_grads.workgroups_backward_weights(),
        )),
        _ => None,
    };
    // The gradient at this layer's input: into the previous layer's delta, or the network's
    // input gradient for the first layer.
    let target = if l == 0 { b.grad_input } else { Some(&h.deltas[(n - 1 - l) % 2]) };
    let pre_in = if l == 0 { &h.dummy } else { &h.pres[l - 1] };
    let input_grad = match (gz, target) {
        (Some(gz), Some(dst)) => Some((
            bg(
                "backward_input",
                lp_back,
                [gz.as_entire_binding(), weights_r(), bias_r(), dst.as_entire_binding(), pre_in.as_entire_binding()],
            ),
            lp_back.workgroups_backward_input(ctx)?,
        )),
        _ => None,
    };
    Ok(LayerOps { forward: (forward, lp.workgroups(ctx)?), weights, input: input_grad })
}
