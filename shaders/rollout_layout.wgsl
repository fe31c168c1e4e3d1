// rollout_layout.wgsl — the bindings of the rollout layout, shared by the families that use it
// (rollout.wgsl, analytic.wgsl, env_eval.wgsl, each placed after this part); what each binding
// holds is documented in rollout.wgsl. A family that uses only some of them still declares all,
// so that its pipeline matches the one layout (see PlanLayouts in the kernels module).
// CPU reference: none, declarations only (each family's header names its own).

@group(0) @binding(0) var<uniform> params: PlanParams;
@group(1) @binding(0) var<storage, read> obs: array<f32>;
@group(1) @binding(1) var<storage, read_write> state: array<f32>;
@group(1) @binding(2) var<storage, read_write> track: array<f32>;
@group(1) @binding(3) var<storage, read> actions: array<f32>;
@group(1) @binding(4) var<storage, read> model_consts: array<f32>;
@group(1) @binding(5) var<storage, read_write> x0: array<f32>;
@group(1) @binding(6) var<storage, read_write> slot_of: array<u32>;
@group(1) @binding(7) var<storage, read> out: array<f32>;
