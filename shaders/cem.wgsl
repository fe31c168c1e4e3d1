// cem.wgsl — the cross-entropy method on the GPU (PETS's CEM, Chua et al. 2018, App. A; the
// truncated-normal sampling and variance cap follow mbrl-lib's CEMOptimizer).
//
// Bindings
//   group 0, 0 params       : PlanParams (uniform, dynamic offset)
//   group 1, 0 mean         : [n_batch, horizon, act_dim]   sampling mean (the plan)
//   group 1, 1 var          : [n_batch, horizon, act_dim]   sampling variance (scratch for shift)
//   group 1, 2 bounds       : [2, act_dim]                  lower bounds, then upper bounds
//   group 1, 3 actions      : [n_batch·population, horizon, act_dim]  candidates
//   group 1, 4 track        : [N, 2]  (return, alive) per particle (rollout.wgsl)
//   group 1, 5 cand_returns : [n_batch·population]  return of each candidate averaged over particles
//   group 1, 6 elites       : [n_batch, n_elites] u32   candidate index of rank r at elites[b·n_elites + r]
//   group 1, 7 plan_stats   : [n_batch, 2]  (mean return of the elites, best candidate return)
//
// Entry points, in the order a plan runs them:
//   sample_candidates   : per (b, c, t, a): mean + σ·z, z ~ N(0,1) truncated at ±2 (or clipped to
//                         the bounds), σ² capped at min(((mean − lo)/2)², ((hi − mean)/2)², var)
//   particle_mean       : per candidate: mean return over its particles (non-finite → −1e30)
//   rank_elites         : per candidate: rank = #better (ties broken by lower index), the n_elites
//                         best written in rank order — deterministic, no atomics
//   update_distribution : per (b, t, a): mean and biased variance of the elites, blended with alpha
//   shift_solution      : per (b, t, a): var ← mean shifted one step left, last step = middle of
//                         the bounds (the host then copies var into mean: warm start)
// CPU reference: kernels::cem::reference (sample_candidates_f64, particle_mean_f64, rank_elites_f64,
// update_distribution_f64, shift_f64).

@group(0) @binding(0) var<uniform> params: PlanParams;
@group(1) @binding(0) var<storage, read_write> mean: array<f32>;
@group(1) @binding(1) var<storage, read_write> var_: array<f32>;
@group(1) @binding(2) var<storage, read> bounds: array<f32>;
@group(1) @binding(3) var<storage, read_write> actions: array<f32>;
@group(1) @binding(4) var<storage, read> track: array<f32>;
@group(1) @binding(5) var<storage, read_write> cand_returns: array<f32>;
@group(1) @binding(6) var<storage, read_write> elites: array<u32>;
@group(1) @binding(7) var<storage, read_write> plan_stats: array<f32>;

const MAX_TRUNCATION_ATTEMPTS: u32 = 8u;
const NON_FINITE_RETURN: f32 = -1e30;

// Standard normal truncated at ±2 by rejection; each attempt draws two candidates from its own
// counter. After MAX_TRUNCATION_ATTEMPTS (probability 0.0455^16 ≈ 3e-22) the last draw is clamped.
fn truncated_normal(elem: u32, b: u32) -> f32 {
    let key = vec2<u32>(params.seed_lo, params.seed_hi);
    var z = 0.0;
    for (var attempt = 0u; attempt < MAX_TRUNCATION_ATTEMPTS; attempt = attempt + 1u) {
        let w = philox(vec4<u32>(elem, b, params.call, tag(PURPOSE_SAMPLE, params.iteration, attempt)), key);
        let pair = box_muller(w.x, w.y);
        if (abs(pair.x) <= 2.0) {
            return pair.x;
        }
        if (abs(pair.y) <= 2.0) {
            return pair.y;
        }
        z = pair.y;
    }
    return clamp(z, -2.0, 2.0);
}

@compute @workgroup_size(WG_SIZE)
fn sample_candidates(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    if (i >= params.n_batch * params.population * h * na) {
        return;
    }
    let a = i % na;
    let t = (i / na) % h;
    let bc = i / (na * h);
    let b = bc / params.population;
    let c = bc % params.population;
    let mu = mean[(b * h + t) * na + a];
    let lo = bounds[a];
    let hi = bounds[na + a];
    let elem = (c * h + t) * na + a;
    var x = 0.0;
    if ((params.flags & FLAG_CLIPPED_NORMAL) != 0u) {
        let key = vec2<u32>(params.seed_lo, params.seed_hi);
        let w = philox(vec4<u32>(elem, b, params.call, tag(PURPOSE_SAMPLE, params.iteration, 0u)), key);
        x = mu + sqrt(var_[(b * h + t) * na + a]) * box_muller(w.x, w.y).x;
    } else {
        let lb = (mu - lo) * 0.5;
        let ub = (hi - mu) * 0.5;
        let v = min(min(lb * lb, ub * ub), var_[(b * h + t) * na + a]);
        x = mu + sqrt(v) * truncated_normal(elem, b);
    }
    actions[i] = clamp(x, lo, hi);
}

@compute @workgroup_size(WG_SIZE)
fn particle_mean(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= params.n_batch * params.population) {
        return;
    }
    var sum = 0.0;
    for (var k = 0u; k < params.particles; k = k + 1u) {
        sum = sum + track[(i * params.particles + k) * 2u];
    }
    var r = sum / f32(params.particles);
    if (!is_finite(r)) {
        r = NON_FINITE_RETURN;
    }
    cand_returns[i] = r;
}

@compute @workgroup_size(WG_SIZE)
fn rank_elites(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let p = params.population;
    if (i >= params.n_batch * p) {
        return;
    }
    let b = i / p;
    let c = i % p;
    let r = cand_returns[i];
    var rank = 0u;
    for (var j = 0u; j < p; j = j + 1u) {
        let rj = cand_returns[b * p + j];
        if (rj > r || (rj == r && j < c)) {
            rank = rank + 1u;
        }
    }
    if (rank < params.n_elites) {
        elites[b * params.n_elites + rank] = c;
    }
}

@compute @workgroup_size(WG_SIZE)
fn update_distribution(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    if (i >= params.n_batch * h * na) {
        return;
    }
    let a = i % na;
    let t = (i / na) % h;
    let b = i / (na * h);
    let ne = params.n_elites;
    var sum = 0.0;
    for (var e = 0u; e < ne; e = e + 1u) {
        let c = elites[b * ne + e];
        sum = sum + actions[((b * params.population + c) * h + t) * na + a];
    }
    let elite_mean = sum / f32(ne);
    var sq = 0.0;
    for (var e = 0u; e < ne; e = e + 1u) {
        let c = elites[b * ne + e];
        let d = actions[((b * params.population + c) * h + t) * na + a] - elite_mean;
        sq = sq + d * d;
    }
    let elite_var = sq / f32(ne);
    mean[i] = params.alpha * mean[i] + (1.0 - params.alpha) * elite_mean;
    var_[i] = params.alpha * var_[i] + (1.0 - params.alpha) * elite_var;
    if (t == 0u && a == 0u) {
        var ret = 0.0;
        for (var e = 0u; e < ne; e = e + 1u) {
            ret = ret + cand_returns[b * params.population + elites[b * ne + e]];
        }
        plan_stats[b * 2u] = ret / f32(ne);
        plan_stats[b * 2u + 1u] = cand_returns[b * params.population + elites[b * ne]];
    }
}

@compute @workgroup_size(WG_SIZE)
fn shift_solution(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    if (i >= params.n_batch * h * na) {
        return;
    }
    let a = i % na;
    let t = (i / na) % h;
    if (t + 1u < h) {
        var_[i] = mean[i + na];
    } else {
        var_[i] = 0.5 * (bounds[a] + bounds[na + a]);
    }
}
