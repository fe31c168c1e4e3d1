// model_step.wgsl — one whole model step of the planner in one dispatch (TS1 and TS∞): each
// workgroup takes a block of slots of one member, reads their inputs, runs every layer of the
// network with the last layer's outputs kept in workgroup memory, samples each row's
// prediction and advances the particle the slot holds (particles.wgsl: next state, reward,
// alive flag, the next step's inputs) — what the network dispatch and rollout.wgsl's
// `propagate` do in two, without the outputs going through global memory.
// This part: the bindings every network shares and `finish_step`, the sampling and the
// particles' step after the layers. The part after it runs the network and owns the entry
// point, the `weights` binding (group 1, 7) and the hooks `step_out` / `step_set` (the last
// layer's output c of row r in workgroup memory):
//   model_step_fused.wgsl  `model_step`, on mlp_fused.wgsl's layers (f32);
//   model_step_coop.wgsl   `model_step_coop`, on mlp_coop.wgsl's layers (f16 operands).
// Parts, in order: [mlp_coop's directives], common.wgsl, the task's env_*.wgsl, particles.wgsl,
// the network's layers, this, the network's step part.
//
// Bindings (group 1 has the rollout layout's binding types, kernels::PlanLayouts::rollout)
//   group 0, 0 params       : PlanParams (uniform, dynamic offset: one entry per iteration × t)
//   group 1, 0 biases       : every layer's [E, out] biases, concatenated (mlp_fused.wgsl)
//   group 1, 1 state        : [N, obs_dim]           as in rollout.wgsl
//   group 1, 2 track        : [N, 2]                 as in rollout.wgsl
//   group 1, 3 actions      : [n_batch·population, horizon, act_dim]
//   group 1, 4 model_consts : as in rollout.wgsl
//   group 1, 5 x0           : [2, N, in_dim]  step t reads half t mod 2 and writes half (t + 1) mod 2
//   group 1, 6 slot_of      : [2, slot_rows, N] u32  slots and their inverse (particles.wgsl)
//   group 1, 7 weights      : the network's packed weights (declared by the network's part)
//   group 2, 0 net          : FusedParams (uniform)
//
// Dispatch: (ceil(rows of the largest member block / rows per workgroup), members), as the
// network's own dispatch; one per step from params.t, or under TS∞ one per iteration for every
// step (steps_end). Every slot holds exactly one particle (TS1 and TS∞ permute the plan's
// slots), so each particle's state, track and next inputs are written by one invocation — the
// same one at every step of a TS∞ dispatch.
// CPU reference: planner::reference::ensemble_returns_f64 (whole rollouts); the same values as
// the network dispatch followed by `propagate` (tests/planner.rs).

@group(0) @binding(0) var<uniform> params: PlanParams;
@group(1) @binding(0) var<storage, read> biases: array<f32>;
@group(1) @binding(1) var<storage, read_write> state: array<f32>;
@group(1) @binding(2) var<storage, read_write> track: array<f32>;
@group(1) @binding(3) var<storage, read> actions: array<f32>;
@group(1) @binding(4) var<storage, read> model_consts: array<f32>;
@group(1) @binding(5) var<storage, read_write> x0: array<f32>;
@group(1) @binding(6) var<storage, read_write> slot_of: array<u32>;
@group(2) @binding(0) var<uniform> net: FusedParams;

// The model step runs the forward pass without stored values (net.store_hidden = 0, no
// BACKWARD): the layers never call these here.
fn hidden_read(i: u32) -> f32 {
    return x0[i];
}

fn hidden_write(i: u32, v: f32) {
    x0[i] = v;
}

// Where step t's inputs start in x0 (its half); the next step's are in the other.
fn step_inputs(t: u32) -> u32 {
    return (t % 2u) * n_particles_total() * params.in_dim;
}

// The end of the steps one dispatch runs, from params.t: one step, or under TS∞, where a block
// of slots holds the same particles at every step (so the next step's inputs are the block's
// own rows), every step to the horizon.
fn steps_end() -> u32 {
    if (params.propagation == PROP_TSINF) {
        return params.horizon;
    }
    return params.t + 1u;
}

// Step t after the layers (a barrier after the last layer's outputs reached step_out): each
// quantity d < model_out of the block's rows [r0, r0 + n_rows) sampled (one invocation per
// four rows and quantity, written over its means with step_set), then each row's particle
// advanced (one invocation per row), its next inputs into x0's other half; then barriers, so
// that a next step in the same dispatch (TS∞) reads those inputs and may overwrite the
// workgroup memory. `n_inv` invocations; call in uniform control flow.
fn finish_step(r0: u32, n_rows: u32, li: u32, n_inv: u32, t: u32) {
    let in_dim = params.in_dim;
    let d_out = params.model_out;
    let probabilistic = (params.flags & FLAG_SAMPLE_NOISE) != 0u;
    let quads = (n_rows + 3u) / 4u;
    for (var i = li; i < quads * d_out; i = i + n_inv) {
        let q = i / d_out;
        let d = i % d_out;
        for (var r = 4u * q; r < min(4u * q + 4u, n_rows); r = r + 1u) {
            var lv = 0.0;
            if (probabilistic) {
                lv = clamp_logvar(step_out(d_out + d, r), model_consts[2u * in_dim + d], model_consts[2u * in_dim + d_out + d]);
            }
            step_set(d, r, sample_prediction(particle_in_slot(r0 + r, t), d, step_out(d, r), lv, t));
        }
    }
    workgroupBarrier();
    let next = step_inputs(t + 1u);
    for (var r = li; r < n_rows; r = r + n_inv) {
        var pred: array<f32, MAX_OBS + 1u>; // + 1: a learned reward
        for (var d = 0u; d < d_out; d = d + 1u) {
            pred[d] = step_out(d, r);
        }
        advance_particle(particle_in_slot(r0 + r, t), pred, next, t);
    }
    storageBarrier();
    workgroupBarrier();
}
