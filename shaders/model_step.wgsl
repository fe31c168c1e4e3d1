// model_step.wgsl — one whole model step of the planner in one dispatch (`model_step`, TS1 and
// TS∞): each workgroup takes a block of slots of one member, reads their inputs, runs every
// layer of the network (mlp_fused.wgsl, the last layer's outputs kept in workgroup memory),
// samples each row's prediction and advances the particle the slot holds (particles.wgsl:
// next state, reward, alive flag, the next step's inputs) — what the network dispatch and
// rollout.wgsl's `propagate` do in two, without the outputs going through global memory.
// Parts, in order: common.wgsl, the task's env_*.wgsl, particles.wgsl, mlp_fused.wgsl, this.
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
//   group 1, 7 weights      : every layer's [E, in, out] weights, concatenated (mlp_fused.wgsl)
//   group 2, 0 net          : FusedParams (uniform)
//
// Dispatch: (ceil(rows of the largest member block / ROWS), members), as forward_fused.
// Every slot holds exactly one particle (TS1 and TS∞ permute the plan's slots), so each
// particle's state, track and next inputs are written by one invocation.
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
@group(1) @binding(7) var<storage, read> weights: array<f32>;
@group(2) @binding(0) var<uniform> net: FusedParams;

// The model step runs the forward pass without stored values (net.store_hidden = 0, no
// BACKWARD): mlp_fused.wgsl never calls these here.
fn hidden_read(i: u32) -> f32 {
    return x0[i];
}

fn hidden_write(i: u32, v: f32) {
    x0[i] = v;
}

@compute @workgroup_size(FUSED_WG)
fn model_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let block = fused_block(wg);
    let r0 = block.x;
    let n_rows = block.y;
    if (n_rows == 0u) {
        return;
    }
    let in_dim = params.in_dim;
    let half = n_particles_total() * in_dim;
    let cur = (params.t % 2u) * half;
    // The block's inputs, four rows per vec4, zero past the block.
    for (var i = li; i < ROWS4 * in_dim; i = i + FUSED_WG) {
        let q = i / in_dim;
        let k = i % in_dim;
        var v = vec4<f32>(0.0);
        for (var e = 0u; e < 4u; e = e + 1u) {
            let r = 4u * q + e;
            if (r < n_rows) {
                v[e] = x0[cur + (r0 + r) * in_dim + k];
            }
        }
        act[k * ROWS4 + q] = v;
    }
    workgroupBarrier();
    fused_layers(wg.y, r0, n_rows, li);
    // act[c · ROWS4 + q] holds output c (means, then log-variances) of rows 4q..4q+3. Each
    // (row quad, quantity) is sampled by one invocation, written over its means.
    let d_out = params.model_out;
    let probabilistic = (params.flags & FLAG_SAMPLE_NOISE) != 0u;
    let quads = (n_rows + 3u) / 4u;
    for (var i = li; i < quads * d_out; i = i + FUSED_WG) {
        let q = i / d_out;
        let d = i % d_out;
        let mu = act[d * ROWS4 + q];
        var lv = vec4<f32>(0.0);
        if (probabilistic) {
            lv = act[(d_out + d) * ROWS4 + q];
        }
        var v = vec4<f32>(0.0);
        for (var e = 0u; e < 4u; e = e + 1u) {
            let r = 4u * q + e;
            if (r < n_rows) {
                var l = 0.0;
                if (probabilistic) {
                    l = clamp_logvar(lv[e], model_consts[2u * in_dim + d], model_consts[2u * in_dim + d_out + d]);
                }
                v[e] = sample_prediction(particle_in_slot(r0 + r, params.t), d, mu[e], l);
            }
        }
        act[d * ROWS4 + q] = v;
    }
    workgroupBarrier();
    for (var r = li; r < n_rows; r = r + FUSED_WG) {
        var pred: array<f32, MAX_OBS + 1u>; // + 1: a learned reward
        for (var d = 0u; d < d_out; d = d + 1u) {
            pred[d] = act[d * ROWS4 + r / 4u][r % 4u];
        }
        advance_particle(particle_in_slot(r0 + r, params.t), pred, half - cur);
    }
}
