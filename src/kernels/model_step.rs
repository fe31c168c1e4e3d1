//! The planner's whole model step in one dispatch (`shaders/model_step.wgsl`): every layer of
//! the ensemble on a block of slots (the fused kernel's `fused_layers`), then each slot's
//! sampled prediction and its particle's next state, reward, alive flag and next inputs
//! (`particles.wgsl`, the same functions as `rollout.wgsl`'s `propagate`). For TS1 and TS∞,
//! where every slot holds one particle.

use super::mlp_fused::{FusedParams, FusedShape};
use super::{pipeline_with, uniform_entry, PlanLayouts, COMMON_WGSL, MLP_FUSED_WGSL, MODEL_STEP_WGSL, PARTICLES_WGSL};
use crate::error::Result;
use crate::gpu::GpuContext;

/// The buffers of group 1 of `model_step.wgsl`, in binding order (the rollout layout's
/// binding types).
pub struct StepBuffers<'a> {
    /// Every layer's biases, concatenated (`mlp_fused::pack_network`).
    pub biases: &'a wgpu::Buffer,
    /// `[N, obs_dim]` particle states.
    pub state: &'a wgpu::Buffer,
    /// `[N, 2]`: return and alive flag of each particle.
    pub track: &'a wgpu::Buffer,
    /// Candidate actions.
    pub actions: &'a wgpu::Buffer,
    /// Input mean, input std, max and min log-variance of the model, concatenated.
    pub model_consts: &'a wgpu::Buffer,
    /// `[2, N, in_dim]`: two halves of model inputs (step t reads half t mod 2).
    pub x0: &'a wgpu::Buffer,
    /// `[2, slot rows, N]`: each step's slots, then their inverse.
    pub slot_of: &'a wgpu::Buffer,
    /// Every layer's weights, concatenated (`mlp_fused::pack_network`).
    pub weights: &'a wgpu::Buffer,
}

/// The `model_step` pipeline for one task and one [`FusedShape`].
pub struct ModelStepKernels {
    /// Group 2: the network's `FusedParams`.
    pub net_layout: wgpu::BindGroupLayout,
    /// `model_step.model_step`.
    pub step: wgpu::ComputePipeline,
    /// The layout the pipeline was built for.
    pub shape: FusedShape,
}

impl ModelStepKernels {
    /// Builds (or takes from the context's cache) the pipeline for the task named `task` with
    /// WGSL functions `task_wgsl`, laid out as `shape` (which must keep the last layer's
    /// outputs: [`FusedShape::keeping_outputs`]).
    pub fn new(
        ctx: &GpuContext,
        layouts: &PlanLayouts,
        task: &str,
        task_wgsl: &str,
        shape: FusedShape,
    ) -> Result<Self> {
        let net_layout = ctx.bind_group_layout(
            "model_step.net",
            &[uniform_entry(0, false, std::mem::size_of::<FusedParams>() as u64)],
        )?;
        let constants = [
            ("ROWS4", shape.rows4 as f64),
            ("COLS", shape.cols as f64),
            ("FUSED_WG", shape.wg as f64),
            ("SPLIT", shape.split as f64),
            ("WIDTH", shape.width as f64),
            ("LAST_TO_ACT", 1.0),
        ];
        let step = pipeline_with(
            ctx,
            &format!("model_step/{task}"),
            &[COMMON_WGSL, task_wgsl, PARTICLES_WGSL, MLP_FUSED_WGSL, MODEL_STEP_WGSL],
            "model_step",
            &[&layouts.params, &layouts.rollout, &net_layout],
            &constants,
        )?;
        Ok(Self { net_layout, step, shape })
    }

    /// Group 1 over `b`.
    pub fn bind(&self, ctx: &GpuContext, layouts: &PlanLayouts, label: &str, b: &StepBuffers<'_>) -> wgpu::BindGroup {
        super::bind_buffers(
            ctx,
            label,
            &layouts.rollout,
            &[b.biases, b.state, b.track, b.actions, b.model_consts, b.x0, b.slot_of, b.weights],
        )
    }

    /// Group 2: a uniform with `p`.
    pub fn bind_net(&self, ctx: &GpuContext, label: &str, p: &FusedParams) -> wgpu::BindGroup {
        let ubuf = ctx.uniform_buffer_init(&format!("{label}.params"), std::slice::from_ref(p));
        super::bind_buffers(ctx, label, &self.net_layout, &[&ubuf])
    }
}
