// rollout.wgsl — trajectory-sampling rollout of a learned ensemble (PETS, Chua et al. 2018,
// §4.2: TS1, TS∞ and expectation propagation): per iteration begin_rollout (every particle's
// start, every step's slots for TS1 and TS∞, step 0's inputs), then per step t either the
// network (mlp*.wgsl) and propagate, which also writes the inputs of step t + 1, or the whole
// step in one model_step.wgsl dispatch (TS1 and TS∞; TS∞: every step in one).
//
// Bindings (declared in rollout_layout.wgsl, put before this part and particles.wgsl)
//   group 0, 0 params       : PlanParams (uniform, dynamic offset: one entry per iteration × t)
//   group 1, 0 obs          : [n_batch, obs_dim]                  the observations planned from
//   group 1, 1 state        : [N, obs_dim]       state[n * obs_dim + d], N = n_batch·population·particles
//   group 1, 2 track        : [N, 2]             (return so far, alive 1/0) per particle
//   group 1, 3 actions      : [n_batch·population, horizon, act_dim]   candidate sequences
//   group 1, 4 model_consts : [in_mean(in_dim) | in_std(in_dim) | max_logvar(model_out) | min_logvar(model_out)]
//   group 1, 5 x0           : [halves, n_slots, in_dim]  normalised model inputs, one row per slot
//                             (particles.wgsl: model_step alternates two halves)
//   group 1, 6 slot_of      : [2, slot_rows, N] u32  slot holding particle n at step t, then the
//                             particle each slot holds (particles.wgsl)
//   group 1, 7 out          : [n_slots, model_out·(2 if probabilistic else 1)]  last layer output
//                             (means, then log-variances)
//
// Particle n = (b · population + c) · particles + k. Slots are member-major (kernels/mod.rs):
// TS1 re-draws the member of every particle at every step through a keyed permutation of the
// plan's local slots, TS∞ keeps one permutation for the whole horizon, expectation evaluates
// every particle on every member (slot = m·N + n) and averages means and log-variances.
// The environment's env_reward / env_terminated (env_*.wgsl) score each step; a terminated
// particle earns nothing afterwards.
// CPU reference: kernels::rollout::reference::member_of (the slot each particle uses) and, for
// whole rollouts, planner::reference::ensemble_returns_f64.

// The slot that evaluates particle n at step t: its plan's local slots permuted by a keyed
// Feistel network (TS1: per step; TS∞: one permutation per iteration), mapped to the global
// member-major layout.
fn slot_at(n: u32, t: u32) -> u32 {
    let pk = params.population * params.particles;
    let b = n / pk;
    let j = n % pk;
    var sub = t;
    if (params.propagation == PROP_TSINF) {
        sub = 0xffffu;
    }
    let key = vec2<u32>(params.seed_lo, params.seed_hi);
    let ctr_hi = vec3<u32>(b, params.call, tag(PURPOSE_PERMUTE, params.iteration, sub));
    let ls = permute_index(j, pk, feistel_half_bits(pk), ctr_hi, key);
    let e = params.n_members;
    let m = ls * e / pk;
    let start = local_block_start(m, pk, e);
    let count = local_block_start(m + 1u, pk, e) - start;
    return params.n_batch * start + b * count + (ls - start);
}

// The start of an iteration's rollout, one invocation per (slot row, particle):
// max(slot_rows, 1) × N, rows as slot_rows() for TS1 and TS∞, none for expectation.
// Invocation (t, n) draws particle n's slot at step t, slot_of[t · N + n] = slot_at(n, t), and
// writes its inverse after the slot rows (every step's slots drawn up front, in parallel,
// rather than one permutation per particle inside every step). Invocation (0, n) also starts
// particle n (the plan's observation, return 0, alive) and writes its step-0 inputs into x0's
// first half, with the slot it has just drawn; every later step's inputs are written by the
// previous step's `propagate` or `model_step`.
@compute @workgroup_size(WG_SIZE)
fn begin_rollout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let total = n_particles_total();
    var rows = 0u;
    if (params.propagation != PROP_EXPECTATION) {
        rows = slot_rows();
    }
    if (i >= max(rows, 1u) * total) {
        return;
    }
    let n = i % total;
    let t = i / total;
    if (rows > 0u) {
        let s = slot_at(n, t);
        slot_of[i] = s;
        slot_of[(rows + t) * total + s] = n;
    }
    if (t == 0u) {
        let b = n / (params.population * params.particles);
        for (var d = 0u; d < params.obs_dim; d = d + 1u) {
            state[n * params.obs_dim + d] = obs[b * params.obs_dim + d];
        }
        track[n * 2u] = 0.0;
        track[n * 2u + 1u] = 1.0;
        write_inputs(n, 0u, 0u);
    }
}

// One particle's step from the network's outputs in `out`.
@compute @workgroup_size(WG_SIZE)
fn propagate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    let total = n_particles_total();
    if (n >= total) {
        return;
    }
    let d_out = params.model_out;
    let probabilistic = (params.flags & FLAG_SAMPLE_NOISE) != 0u;
    var cols = d_out;
    if (probabilistic) {
        cols = 2u * d_out;
    }
    let in_dim = params.in_dim;
    var pred: array<f32, MAX_OBS + 1u>; // + 1: a learned reward
    for (var d = 0u; d < d_out; d = d + 1u) {
        var mu = 0.0;
        var lv = 0.0;
        if (params.propagation == PROP_EXPECTATION) {
            for (var m = 0u; m < params.n_members; m = m + 1u) {
                let s = m * total + n;
                mu = mu + out[s * cols + d];
                if (probabilistic) {
                    lv = lv + clamp_logvar(out[s * cols + d_out + d], model_consts[2u * in_dim + d], model_consts[2u * in_dim + d_out + d]);
                }
            }
            mu = mu / f32(params.n_members);
            lv = lv / f32(params.n_members);
        } else {
            let s = slot_of_step(n, params.t);
            mu = out[s * cols + d];
            if (probabilistic) {
                lv = clamp_logvar(out[s * cols + d_out + d], model_consts[2u * in_dim + d], model_consts[2u * in_dim + d_out + d]);
            }
        }
        pred[d] = sample_prediction(n, d, mu, lv, params.t);
    }
    // The next step's inputs, from the state just written (saves a dispatch per step).
    advance_particle(n, pred, 0u, params.t);
}
