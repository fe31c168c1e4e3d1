//! Optimiser kernels (`shaders/adam.wgsl`): global gradient norm and Adam. [`AdamKernels`] owns
//! the pipelines and builds the family's bind group; [`reference`] is the f64 twin.

use super::family::{FamilyDecl, Part};
use super::{
    params_layout, storage_layout, Family, TrainParams, ADAM_WGSL, COMMON_WGSL, REDUCE_WGSL, WG_SIZE_OVERRIDE,
};
use crate::error::Result;
use crate::gpu::GpuContext;

/// Values per chunk of the gradient-norm reduction (WGSL `CHUNK`): one workgroup of
/// [`REDUCTION_WORKGROUP`] invocations each.
pub const NORM_CHUNK: usize = 2048;

/// Invocations per workgroup of the reductions (WGSL `RED_SIZE` in `reduce.wgsl`).
pub const REDUCTION_WORKGROUP: usize = 256;

/// The buffers of `adam.wgsl`'s group 1, in binding order.
pub struct AdamBuffers<'a> {
    /// Flat parameters, updated in place.
    pub params: &'a wgpu::Buffer,
    /// Flat gradients.
    pub grads: &'a wgpu::Buffer,
    /// First moments.
    pub moment1: &'a wgpu::Buffer,
    /// Second moments.
    pub moment2: &'a wgpu::Buffer,
    /// `[n_chunks]` partial squared norms.
    pub partials: &'a wgpu::Buffer,
    /// Per-step statistics (the norm and the skip flag are written here).
    pub stats: &'a wgpu::Buffer,
    /// `[4]` u32: Adam steps taken, current run of skipped steps, skipped steps, longest run.
    pub counters: &'a wgpu::Buffer,
}

/// `adam.wgsl` after the fixed-order reduction: the gradient norm and the Adam update.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "adam",
    &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(REDUCE_WGSL), Part::Wgsl(ADAM_WGSL)],
    &["grad_norm_partial", "grad_norm_final", "adam_step"],
);

/// The pipelines of `adam.wgsl` (group 0 `TrainParams`, group 1 [`AdamBuffers`]).
pub struct AdamKernels {
    /// Group 1.
    pub layout: wgpu::BindGroupLayout,
    /// `grad_norm_partial`: one workgroup per chunk of [`NORM_CHUNK`] values.
    pub norm_partial: wgpu::ComputePipeline,
    /// `grad_norm_final`: one workgroup.
    pub norm_final: wgpu::ComputePipeline,
    /// `adam_step`: one invocation per parameter.
    pub adam: wgpu::ComputePipeline,
}

impl AdamKernels {
    /// Builds (or takes from the context's cache) the pipelines.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let params = params_layout::<TrainParams>(ctx, "train.params")?;
        let layout = storage_layout(ctx, "train.adam", &[false, true, false, false, false, false, false])?;
        let pipe = |entry: &str, wg: bool| {
            let constants = if wg { WG_SIZE_OVERRIDE } else { &[] };
            Family::Adam.pipeline(ctx, None, entry, &[&params, &layout], constants)
        };
        Ok(Self {
            norm_partial: pipe("grad_norm_partial", false)?,
            norm_final: pipe("grad_norm_final", false)?,
            adam: pipe("adam_step", true)?,
            layout,
        })
    }

    /// The group-1 bind group over `b`.
    pub fn bind(&self, ctx: &GpuContext, label: &str, b: &AdamBuffers<'_>) -> wgpu::BindGroup {
        super::bind_buffers(
            ctx,
            label,
            &self.layout,
            &[b.params, b.grads, b.moment1, b.moment2, b.partials, b.stats, b.counters],
        )
    }
}

/// f64 CPU reference of `adam.wgsl`.
pub mod reference {
    /// Adam hyper-parameters.
    #[derive(Debug, Clone, Copy)]
    pub struct AdamParams {
        /// Learning rate.
        pub lr: f64,
        /// First-moment decay.
        pub beta1: f64,
        /// Second-moment decay.
        pub beta2: f64,
        /// Denominator guard.
        pub eps: f64,
        /// L2 weight decay added to the gradient (not applied to `decay_end..`).
        pub weight_decay: f64,
        /// Clip the global gradient norm to this (≤ 0: no clipping).
        pub clip_norm: f64,
    }

    /// One Adam step (`grad_norm_*` + `adam_step`) at step count `t` (1-based). Parameters at
    /// `decay_end..` get no weight decay. Returns false (and changes nothing) when the gradient
    /// norm is not finite.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_step_f64(
        p: &AdamParams,
        t: u32,
        params: &mut [f64],
        grads: &[f64],
        m1: &mut [f64],
        m2: &mut [f64],
        decay_end: usize,
    ) -> bool {
        let norm = grads.iter().map(|g| g * g).sum::<f64>().sqrt();
        if !norm.is_finite() {
            return false;
        }
        for i in 0..params.len() {
            let mut g = grads[i];
            if p.clip_norm > 0.0 && norm > p.clip_norm {
                g *= p.clip_norm / (norm + 1e-6);
            }
            if i < decay_end {
                g += p.weight_decay * params[i];
            }
            m1[i] = p.beta1 * m1[i] + (1.0 - p.beta1) * g;
            m2[i] = p.beta2 * m2[i] + (1.0 - p.beta2) * g * g;
            let m_hat = m1[i] / (1.0 - p.beta1.powi(t as i32));
            let v_hat = m2[i] / (1.0 - p.beta2.powi(t as i32));
            params[i] -= p.lr * m_hat / (v_hat.sqrt() + p.eps);
        }
        true
    }
}
