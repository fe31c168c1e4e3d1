// particles.wgsl — a particle's bookkeeping through a learned ensemble, shared by rollout.wgsl
// (the model step as network dispatch + `propagate`) and model_step.wgsl (the whole model step
// in one dispatch): which slot evaluates a particle, its normalised model inputs, the sampled
// prediction and the step from a prediction to the next state, reward and inputs.
//
// Uses the globals params, state, track, actions, model_consts, x0 and slot_of, declared by the
// layout part in front (rollout_layout.wgsl, model_step.wgsl); what each holds is documented in
// rollout.wgsl. The task's env_reward / env_terminated (env_*.wgsl) come before.
//
// slot_of: [2, slot_rows, N] u32 — first slot_of[t · N + n], the slot holding particle n at
// step t (TS∞: row 0 for every step), then from slot_rows · N the inverse,
// slot_of[slot_rows · N + t · N + s], the particle in slot s (model_step reads it).
// x0: [halves, n_slots, in_dim] — the split step uses half 0 only; model_step reads step t's
// inputs from half t mod 2 while it writes step t + 1's into the other.
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

// Rows of slot_of per iteration: TS1 draws a permutation per step, TS∞ one for the horizon.
fn slot_rows() -> u32 {
    if (params.propagation == PROP_TSINF) {
        return 1u;
    }
    return params.horizon;
}

// The row of slot_of for step t.
fn slot_row(t: u32) -> u32 {
    if (params.propagation == PROP_TSINF) {
        return 0u;
    }
    return t;
}

// The slot evaluating particle n at step t (begin_rollout wrote it).
fn slot_of_step(n: u32, t: u32) -> u32 {
    return slot_of[slot_row(t) * n_particles_total() + n];
}

// The particle that slot s evaluates at step t (begin_rollout wrote the inverse).
fn particle_in_slot(s: u32, t: u32) -> u32 {
    let total = n_particles_total();
    return slot_of[(slot_rows() + slot_row(t)) * total + s];
}

// The model input of particle n at step t (its state and action t, normalised) written to the
// slot that evaluates it at step t, in x0 from `base`.
fn write_inputs(n: u32, t: u32, base: u32) {
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
                x0[base + s * in_dim + i] = row[i];
            }
        }
        return;
    }
    let s = slot_of_step(n, t);
    for (var i = 0u; i < in_dim; i = i + 1u) {
        x0[base + s * in_dim + i] = row[i];
    }
}

// Predicted quantity d of particle n at step t from the model's mean `mu` and clamped
// log-variance `lv`: mu + exp(lv / 2)·ε for a probabilistic model (ε from the particle's noise
// stream), else mu.
fn sample_prediction(n: u32, d: u32, mu: f32, lv: f32, t: u32) -> f32 {
    if ((params.flags & FLAG_SAMPLE_NOISE) == 0u) {
        return mu;
    }
    let pk = params.population * params.particles;
    let key = vec2<u32>(params.seed_lo, params.seed_hi);
    let w = philox(vec4<u32>((n % pk) * params.model_out + d, n / pk, params.call, tag(PURPOSE_NOISE, params.iteration, t)), key);
    return mu + exp(0.5 * lv) * box_muller(w.x, w.y).x;
}

// Particle n's step t from its sampled prediction `pred` (state deltas, then the reward with a
// learned reward): the next state, the return and alive flag, and (before the horizon) the next
// step's inputs, written to x0 from `next_base`.
fn advance_particle(n: u32, pred: array<f32, MAX_OBS + 1u>, next_base: u32, t: u32) {
    var before: array<f32, MAX_OBS>;
    var next: array<f32, MAX_OBS>;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        before[d] = state[n * params.obs_dim + d];
        next[d] = before[d] + pred[d];
        state[n * params.obs_dim + d] = next[d];
    }
    let act = load_action(n, t);
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
    if (t + 1u < params.horizon) {
        write_inputs(n, t + 1u, next_base);
    }
}
