//! The planner's whole model step in one dispatch (`shaders/model_step.wgsl`): every layer of
//! the ensemble on a block of slots (the fused kernel's `fused_layers` in f32, or the coop16
//! kernel's `coop_layers` on cooperative matrices), then each slot's sampled prediction and its
//! particle's next state, reward, alive flag and next inputs (`particles.wgsl`, the same
//! functions as `rollout.wgsl`'s `propagate`). For TS1 and TS∞, where every slot holds one
//! particle.

use super::family::{FamilyDecl, Part, Requires, TaskWgsl};
use super::mlp_coop::{CoopShape, DIRECTIVES};
use super::mlp_fused::{FusedParams, FusedShape};
use super::{
    uniform_entry, Family, PlanLayouts, COMMON_WGSL, MLP_COOP_WGSL, MLP_FUSED_WGSL, MODEL_STEP_COOP_WGSL,
    MODEL_STEP_FUSED_WGSL, MODEL_STEP_WGSL, PARTICLES_WGSL,
};
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
    /// The network's packed weights (`mlp_fused::pack_network`, or
    /// `mlp_coop::pack_network_f16` for the coop16 layers).
    pub weights: &'a wgpu::Buffer,
}

/// The layers a model step runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepNetwork {
    /// `mlp_fused.wgsl`'s f32 layers, laid out as the shape says (the network kernel's own
    /// layout, so a step's grid is the network dispatch's).
    Fused(FusedShape),
    /// `mlp_coop.wgsl`'s layers on 16×16×16 cooperative matrices.
    Coop(CoopShape),
}

/// The model step on `mlp_fused.wgsl`'s f32 layers, with a task's WGSL functions.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "model_step",
    &[
        Part::Wgsl(COMMON_WGSL),
        Part::Task,
        Part::Wgsl(PARTICLES_WGSL),
        Part::Wgsl(MLP_FUSED_WGSL),
        Part::Wgsl(MODEL_STEP_WGSL),
        Part::Wgsl(MODEL_STEP_FUSED_WGSL),
    ],
    &["model_step"],
);

/// The model step on `mlp_coop.wgsl`'s layers (cooperative matrices), after [`DIRECTIVES`].
pub const COOP_FAMILY: FamilyDecl = FamilyDecl {
    name: "model_step_coop",
    parts: &[
        Part::Wgsl(DIRECTIVES),
        Part::Wgsl(COMMON_WGSL),
        Part::Task,
        Part::Wgsl(PARTICLES_WGSL),
        Part::Wgsl(MLP_COOP_WGSL),
        Part::Wgsl(MODEL_STEP_WGSL),
        Part::Wgsl(MODEL_STEP_COOP_WGSL),
    ],
    entry_points: &["model_step_coop"],
    requires: Requires::Coop16,
    validation_overrides: super::mlp_coop::VALIDATION_SHAPES,
    // The last layer's outputs go to the prediction's workgroup memory.
    fixed_overrides: &[("LAST_TO_PROD", 1.0)],
};

/// The model-step pipeline for one task and one network layout.
pub struct ModelStepKernels {
    /// Group 2: the network's `FusedParams`.
    pub net_layout: wgpu::BindGroupLayout,
    /// `model_step` (f32 layers) or `model_step_coop`.
    pub step: wgpu::ComputePipeline,
    /// The layers and their layout.
    pub network: StepNetwork,
}

impl ModelStepKernels {
    /// Builds (or takes from the context's cache) the pipeline for the task named `task` with
    /// WGSL functions `task_wgsl`, on `network`.
    pub fn new(
        ctx: &GpuContext,
        layouts: &PlanLayouts,
        task: &str,
        task_wgsl: &str,
        network: StepNetwork,
    ) -> Result<Self> {
        let net_layout = ctx.bind_group_layout(
            "model_step.net",
            &[uniform_entry(0, false, std::mem::size_of::<FusedParams>() as u64)],
        )?;
        let groups = [&layouts.params, &layouts.rollout, &net_layout];
        let task = Some(TaskWgsl { name: task, wgsl: task_wgsl });
        let step = match network {
            StepNetwork::Fused(shape) => {
                Family::ModelStep.pipeline(ctx, task, "model_step", &groups, &shape.overrides())?
            }
            StepNetwork::Coop(shape) => {
                Family::ModelStepCoop.pipeline(ctx, task, "model_step_coop", &groups, &shape.overrides())?
            }
        };
        Ok(Self { net_layout, step, network })
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

    /// Group 2: a uniform with `p` (`mlp_coop::params` for the coop16 layers).
    pub fn bind_net(&self, ctx: &GpuContext, label: &str, p: &FusedParams) -> wgpu::BindGroup {
        let ubuf = ctx.uniform_buffer_init(&format!("{label}.params"), std::slice::from_ref(p));
        super::bind_buffers(ctx, label, &self.net_layout, &[&ubuf])
    }
}
