//! Loss kernels (`shaders/loss.wgsl`): minibatch gathering and the Gaussian NLL (or MSE) with
//! its gradient through the log-variance soft clamp. [`LossKernels`] owns the pipelines and
//! builds the family's bind group; [`reference`] is the f64 twin.

use super::family::{FamilyDecl, Part};
use super::{
    params_layout, storage_layout, Family, TrainParams, COMMON_WGSL, LOSS_WGSL, REDUCE_WGSL, WG_SIZE_OVERRIDE,
};
use crate::error::Result;
use crate::gpu::GpuContext;

/// The buffers of `loss.wgsl`'s group 1, in binding order.
pub struct LossBuffers<'a> {
    /// `[rows, in_dim + model_out]`: normalised inputs then targets.
    pub dataset: &'a wgpu::Buffer,
    /// `[steps, members, batch]` dataset rows of each minibatch.
    pub indices: &'a wgpu::Buffer,
    /// `[members · batch, in_dim]` gathered inputs.
    pub x0: &'a wgpu::Buffer,
    /// `[members · batch, out_cols]` network outputs.
    pub out: &'a wgpu::Buffer,
    /// `[members · batch, out_cols]` gradient of the loss w.r.t. the outputs.
    pub grad_out: &'a wgpu::Buffer,
    /// Flat parameters (read for the log-variance bounds).
    pub params: &'a wgpu::Buffer,
    /// Flat gradients (written for the log-variance bounds).
    pub grads: &'a wgpu::Buffer,
    /// Per-step statistics (losses, row errors).
    pub stats: &'a wgpu::Buffer,
}

/// `loss.wgsl` after the fixed-order reduction: minibatch gathering, the loss and its gradient.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "loss",
    &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(REDUCE_WGSL), Part::Wgsl(LOSS_WGSL)],
    &["gather_batch", "nll_grad", "reduce_loss"],
);

/// The pipelines of `loss.wgsl` (group 0 `TrainParams`, group 1 [`LossBuffers`]).
pub struct LossKernels {
    /// Group 0: `TrainParams` with a dynamic offset (shared with `adam.wgsl`).
    pub params_layout: wgpu::BindGroupLayout,
    /// Group 1.
    pub layout: wgpu::BindGroupLayout,
    /// `gather_batch`: one invocation per gathered input value.
    pub gather: wgpu::ComputePipeline,
    /// `nll_grad`: one invocation per predicted value.
    pub nll: wgpu::ComputePipeline,
    /// `reduce_loss`: one workgroup per member and per output dimension (its two bounds).
    pub reduce: wgpu::ComputePipeline,
}

impl LossKernels {
    /// Builds (or takes from the context's cache) the pipelines.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let params_layout = params_layout::<TrainParams>(ctx, "train.params")?;
        let layout = storage_layout(ctx, "train.loss", &[true, true, false, true, false, true, false, false])?;
        let pipe = |entry: &str, wg: bool| {
            let constants = if wg { WG_SIZE_OVERRIDE } else { &[] };
            Family::Loss.pipeline(ctx, None, entry, &[&params_layout, &layout], constants)
        };
        Ok(Self {
            gather: pipe("gather_batch", true)?,
            nll: pipe("nll_grad", true)?,
            reduce: pipe("reduce_loss", false)?,
            params_layout,
            layout,
        })
    }

    /// The group-1 bind group over `b`.
    pub fn bind(&self, ctx: &GpuContext, label: &str, b: &LossBuffers<'_>) -> wgpu::BindGroup {
        super::bind_buffers(
            ctx,
            label,
            &self.layout,
            &[b.dataset, b.indices, b.x0, b.out, b.grad_out, b.params, b.grads, b.stats],
        )
    }
}

/// f64 CPU reference of `loss.wgsl`.
pub mod reference {
    fn softplus(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Loss of one member's batch and its gradients.
    #[derive(Debug, Clone)]
    pub struct MemberLoss {
        /// Mean over rows and outputs of `(μ − y)²·e^(−lv) + lv` (NLL) or `(μ − y)²` (MSE).
        pub loss: f64,
        /// ∂loss/∂out, `[rows, out_cols]` (means, then raw log-variances).
        pub grad_out: Vec<f64>,
        /// ∂loss/∂max_logvar, `[model_out]` (without the penalty).
        pub grad_max: Vec<f64>,
        /// ∂loss/∂min_logvar, `[model_out]` (without the penalty).
        pub grad_min: Vec<f64>,
    }

    /// `nll_grad` + `reduce_loss` for one member: `out` is `[rows, out_cols]`, `targets`
    /// `[rows, model_out]`; `bounds` is `Some((max, min))` for a probabilistic model.
    pub fn member_loss_f64(
        out: &[f64],
        targets: &[f64],
        model_out: usize,
        bounds: Option<(&[f64], &[f64])>,
    ) -> MemberLoss {
        let rows = targets.len() / model_out;
        let cols = if bounds.is_some() { 2 * model_out } else { model_out };
        let scale = 1.0 / (rows * model_out) as f64;
        let mut r = MemberLoss {
            loss: 0.0,
            grad_out: vec![0.0; rows * cols],
            grad_max: vec![0.0; model_out],
            grad_min: vec![0.0; model_out],
        };
        for row in 0..rows {
            for d in 0..model_out {
                let diff = out[row * cols + d] - targets[row * model_out + d];
                match bounds {
                    None => {
                        r.loss += diff * diff * scale;
                        r.grad_out[row * cols + d] = 2.0 * diff * scale;
                    }
                    Some((max, min)) => {
                        let raw = out[row * cols + model_out + d];
                        let s2 = sigmoid(max[d] - raw);
                        let u = max[d] - softplus(max[d] - raw);
                        let s1 = sigmoid(u - min[d]);
                        let lv = min[d] + softplus(u - min[d]);
                        let inv = (-lv).exp();
                        r.loss += (diff * diff * inv + lv) * scale;
                        let d_lv = (1.0 - diff * diff * inv) * scale;
                        r.grad_out[row * cols + d] = 2.0 * diff * inv * scale;
                        r.grad_out[row * cols + model_out + d] = d_lv * s1 * s2;
                        r.grad_max[d] += d_lv * s1 * (1.0 - s2);
                        r.grad_min[d] += d_lv * (1.0 - s1);
                    }
                }
            }
        }
        r
    }
}
