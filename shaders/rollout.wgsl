// rollout.wgsl — trajectory-sampling rollout of a learned ensemble (PETS, Chua et al. 2018,
// §4.2: TS1, TS∞ and expectation propagation): per iteration init_particles, permute_slots
// (every step's slots, TS1 and TS∞) and prepare_inputs (step 0), then per step t the network
// (mlp*.wgsl) and propagate, which also writes the inputs of step t + 1.
//
// Bindings (declared in rollout_layout.wgsl, put before this part)
//   group 0, 0 params       : PlanParams (uniform, dynamic offset: one entry per iteration × t)
//   group 1, 0 obs          : [n_batch, obs_dim]                  the observations planned from
//   group 1, 1 state        : [N, obs_dim]       state[n * obs_dim + d], N = n_batch·population·particles
//   group 1, 2 track        : [N, 2]             (return so far, alive 1/0) per particle
//   group 1, 3 actions      : [n_batch·population, horizon, act_dim]   candidate sequences
//   group 1, 4 model_consts : [in_mean(in_dim) | in_std(in_dim) | max_logvar(model_out) | min_logvar(model_out)]
//   group 1, 5 x0           : [n_slots, in_dim]  normalised model inputs, one row per slot
//   group 1, 6 slot_of      : [horizon, N] u32   slot holding particle n at step t (TS∞: row 0 for every step)
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


fn n_particles_total() -> u32 {
    return params.n_batch * params.population * params.particles;
}

fn load_action(n: u32, t: u32) -> array<f32, MAX_ACT> {
    let cand = n / params.particles;
    var act: array<f32, MAX_ACT>;
    for (var a = 0u; a < params.act_dim; a = a + 1u) {
        act[a] = actions[(cand * params.horizon + t) * params.act_dim + a];
    }
    return act;
}

@compute @workgroup_size(WG_SIZE)
fn init_particles(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    if (n >= n_particles_total()) {
        return;
    }
    let b = n / (params.population * params.particles);
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        state[n * params.obs_dim + d] = obs[b * params.obs_dim + d];
    }
    track[n * 2u] = 0.0;
    track[n * 2u + 1u] = 1.0;
}

// Rows of slot_of per iteration: TS1 draws a permutation per step, TS∞ one for the horizon.
fn slot_rows() -> u32 {
    if (params.propagation == PROP_TSINF) {
        return 1u;
    }
    return params.horizon;
}

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

// Every slot of the iteration, drawn up front (one invocation per step and particle, in
// parallel, instead of one permutation per particle inside every step's propagate):
// slot_of[t · N + n] = slot_at(n, t) for t < slot_rows(). Not dispatched for expectation.
@compute @workgroup_size(WG_SIZE)
fn permute_slots(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let total = n_particles_total();
    if (i >= slot_rows() * total) {
        return;
    }
    slot_of[i] = slot_at(i % total, i / total);
}

// The slot evaluating particle n at step t (permute_slots wrote it).
fn slot_of_step(n: u32, t: u32) -> u32 {
    var row = t;
    if (params.propagation == PROP_TSINF) {
        row = 0u;
    }
    return slot_of[row * n_particles_total() + n];
}

// The model input of particle n at step t (its state and action t, normalised) written to the
// slot that evaluates it at step t.
fn write_inputs(n: u32, t: u32) {
    let total = n_particles_total();
    let act = load_action(n, t);
    let in_dim = params.in_dim;
    var row: array<f32, MAX_OBS + MAX_ACT>;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        row[d] = state[n * params.obs_dim + d];
    }
    for (var a = 0u; a < params.act_dim; a = a + 1u) {
        row[params.obs_dim + a] = act[a];
    }
    for (var i = 0u; i < in_dim; i = i + 1u) {
        row[i] = (row[i] - model_consts[i]) / model_consts[in_dim + i];
    }
    if (params.propagation == PROP_EXPECTATION) {
        for (var m = 0u; m < params.n_members; m = m + 1u) {
            let s = m * total + n;
            for (var i = 0u; i < in_dim; i = i + 1u) {
                x0[s * in_dim + i] = row[i];
            }
        }
        return;
    }
    let s = slot_of_step(n, t);
    for (var i = 0u; i < in_dim; i = i + 1u) {
        x0[s * in_dim + i] = row[i];
    }
}

// The inputs of step params.t (dispatched once per iteration, for t = 0: every later step's
// inputs are written by the previous step's `propagate`).
@compute @workgroup_size(WG_SIZE)
fn prepare_inputs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    if (n >= n_particles_total()) {
        return;
    }
    write_inputs(n, params.t);
}

@compute @workgroup_size(WG_SIZE)
fn propagate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    let total = n_particles_total();
    if (n >= total) {
        return;
    }
    let pk = params.population * params.particles;
    let b = n / pk;
    let j = n % pk;
    let d_out = params.model_out;
    let probabilistic = (params.flags & FLAG_SAMPLE_NOISE) != 0u;
    var cols = d_out;
    if (probabilistic) {
        cols = 2u * d_out;
    }
    let in_dim = params.in_dim;
    let key = vec2<u32>(params.seed_lo, params.seed_hi);
    let noise_tag = tag(PURPOSE_NOISE, params.iteration, params.t);
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
        var v = mu;
        if (probabilistic) {
            let w = philox(vec4<u32>(j * d_out + d, b, params.call, noise_tag), key);
            v = mu + exp(0.5 * lv) * box_muller(w.x, w.y).x;
        }
        pred[d] = v;
    }
    var before: array<f32, MAX_OBS>;
    var next: array<f32, MAX_OBS>;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        before[d] = state[n * params.obs_dim + d];
        next[d] = before[d] + pred[d];
        state[n * params.obs_dim + d] = next[d];
    }
    let act = load_action(n, params.t);
    var reward = 0.0;
    if ((params.flags & FLAG_LEARNED_REWARD) != 0u) {
        reward = pred[params.obs_dim];
    } else {
        reward = env_reward(before, act, next);
    }
    let alive = track[n * 2u + 1u];
    track[n * 2u] = track[n * 2u] + alive * reward;
    if (env_terminated(act, next)) {
        track[n * 2u + 1u] = 0.0;
    }
    // The next step's inputs, from the state just written (saves a dispatch per step).
    if (params.t + 1u < params.horizon) {
        write_inputs(n, params.t + 1u);
    }
}
