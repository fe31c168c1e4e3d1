// cem.wgsl — the sampling-based optimisers on the GPU: the cross-entropy method (PETS's CEM,
// Chua et al. 2018, App. A; the truncated-normal sampling and variance cap follow mbrl-lib's
// CEMOptimizer), random shooting (uniform candidates, one iteration, the best kept), MPPI and
// iCEM (below). They share the bindings and the ranking.
//
// Bindings
//   group 0, 0 params       : PlanParams (uniform, dynamic offset)
//   group 1, 0 mean         : [n_batch, horizon, act_dim]   sampling mean (the plan)
//   group 1, 1 var          : [n_batch, horizon, act_dim]   sampling variance (scratch for shift)
//   group 1, 2 bounds       : [2 + n_batch, act_dim]        lower bounds, upper bounds, then each
//                             plan's previous first action (MPPI's smoothing start)
//   group 1, 3 actions      : [n_batch·population, horizon, act_dim]  candidates; iCEM's elite
//                             archive [n_batch, n_elites, horizon, act_dim] follows at params.archive
//   group 1, 4 track        : [N, 2]  (return, alive) per particle (rollout.wgsl)
//   group 1, 5 cand_returns : [n_batch·population]  return of each candidate averaged over particles
//   group 1, 6 elites       : [n_batch, n_elites] u32   candidate index of rank r at elites[b·n_elites + r]
//   group 1, 7 plan_stats   : [n_batch, 2]  (mean return of the elites, best candidate return)
//
// Entry points, in the order a plan runs them:
//   sample_candidates   : per (b, c, t, a): mean + σ·z, z ~ N(0,1) truncated at ±2 (or clipped to
//                         the bounds), σ² capped at min(((mean − lo)/2)², ((hi − mean)/2)², var);
//                         FLAG_UNIFORM: lo + (hi − lo)·u, u ~ U[0, 1) (random shooting)
//   particle_mean       : per candidate: mean return over its particles (non-finite → −1e30)
//   rank_elites         : per candidate: rank = #better (ties broken by lower index), the n_elites
//                         best written in rank order — deterministic, no atomics
//   update_distribution : per (b, t, a): mean and biased variance of the elites, blended with alpha
//   shift_solution      : per (b, t, a): var ← mean shifted one step left, last step = middle of
//                         the bounds (the host then copies var into mean: warm start)
// CPU reference: kernels::cem::reference (sample_candidates_f64, particle_mean_f64, rank_elites_f64,
// update_distribution_f64, shift_f64, mppi_sample_f64, mppi_update_f64, colored_noise_f64,
// icem_sample_f64, icem_extras_f64).

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
    if ((params.flags & FLAG_UNIFORM) != 0u) {
        let key = vec2<u32>(params.seed_lo, params.seed_hi);
        let w = philox(vec4<u32>(elem, b, params.call, tag(PURPOSE_SAMPLE, params.iteration, 0u)), key);
        x = lo + (hi - lo) * u01(w.x);
    } else if ((params.flags & FLAG_CLIPPED_NORMAL) != 0u) {
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

// ---- MPPI (Williams et al. 2017; mbrl-lib's MPPIOptimizer) ----------------------------------
// mppi_sample : per (b, c, a), over t: x_t = beta·(mean_t + σ_t·z_t) + (1 − beta)·x_(t−1),
//               x_(−1) = the plan's previous first action (bounds[2·act_dim + b·act_dim + a]),
//               z ~ N(0,1) truncated at ±2, σ_t² = min(((mean_t − lo)/2)², ((hi − mean_t)/2)², sigma²);
//               the candidate is x clipped to the bounds (the smoothing runs on the unclipped x).
// mppi_update : per (b, t, a): mean ← Σ_c w_c·x_c / (Σ_c w_c + 1e-10), w_c = exp(gamma·(R_c − max R));
//               plan_stats = (Σ w·R / Σ w, max R).
@compute @workgroup_size(WG_SIZE)
fn mppi_sample(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    if (i >= params.n_batch * params.population * na) {
        return;
    }
    let a = i % na;
    let bc = i / na;
    let b = bc / params.population;
    let c = bc % params.population;
    let lo = bounds[a];
    let hi = bounds[na + a];
    var prev = bounds[2u * na + b * na + a];
    for (var t = 0u; t < h; t = t + 1u) {
        let mu = mean[(b * h + t) * na + a];
        let lb = (mu - lo) * 0.5;
        let ub = (hi - mu) * 0.5;
        let v = min(min(lb * lb, ub * ub), params.sigma * params.sigma);
        let z = truncated_normal((c * h + t) * na + a, b);
        let x = params.beta * (mu + sqrt(v) * z) + (1.0 - params.beta) * prev;
        actions[(bc * h + t) * na + a] = clamp(x, lo, hi);
        prev = x;
    }
}

@compute @workgroup_size(WG_SIZE)
fn mppi_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    if (i >= params.n_batch * h * na) {
        return;
    }
    let a = i % na;
    let t = (i / na) % h;
    let b = i / (na * h);
    let p = params.population;
    var best = cand_returns[b * p];
    for (var c = 1u; c < p; c = c + 1u) {
        best = max(best, cand_returns[b * p + c]);
    }
    var wsum = 0.0;
    var xsum = 0.0;
    var rsum = 0.0;
    for (var c = 0u; c < p; c = c + 1u) {
        let r = cand_returns[b * p + c];
        let w = exp(params.gamma * (r - best));
        wsum = wsum + w;
        xsum = xsum + w * actions[((b * p + c) * h + t) * na + a];
        rsum = rsum + w * r;
    }
    mean[i] = xsum / (wsum + 1e-10);
    if (t == 0u && a == 0u) {
        plan_stats[b * 2u] = rsum / (wsum + 1e-10);
        plan_stats[b * 2u + 1u] = best;
    }
}

// ---- iCEM (Pinneri et al. 2020; mbrl-lib's ICEMOptimizer) -----------------------------------
// icem_sample      : per (b, c < sampled, a): a coloured-noise sequence over the horizon (power
//                    spectrum ∝ f^(−noise_beta), as colorednoise.powerlaw_psd_gaussian: Gaussian
//                    spectrum, inverse real DFT, normalised to unit variance), then
//                    clip(y_t·sqrt(var_t) + mean_t) to the bounds.
// icem_extras      : per (b, e < keep, t, a): candidate sampled + e is an archived elite chosen by a
//                    keyed permutation, shifted one step with a new last action drawn from
//                    N(mean_(H−1), var_(H−1)) and clipped (FLAG_EXTRAS_SHIFTED, first iteration), the
//                    archived elite as it is (FLAG_EXTRAS_KEPT), or the current mean (FLAG_EXTRAS_MEAN).
// icem_save_elites : per (b, e < n_elites, t, a): archive ← this iteration's elites.
const TAU: f32 = 6.283185307179586;

@compute @workgroup_size(WG_SIZE)
fn icem_sample(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    if (i >= params.n_batch * params.sampled * na) {
        return;
    }
    let a = i % na;
    let bc = i / na;
    let b = bc / params.sampled;
    let c = bc % params.sampled;
    let lo = bounds[a];
    let hi = bounds[na + a];
    let key = vec2<u32>(params.seed_lo, params.seed_hi);
    let nf = h / 2u + 1u;
    let even = (h % 2u) == 0u;
    let fmin = 1.0 / f32(h);
    // Unit-variance normalisation of the coloured spectrum (all frequencies but 0).
    var norm = 0.0;
    for (var k = 1u; k < nf; k = k + 1u) {
        var w = pow(max(f32(k) / f32(h), fmin), -0.5 * params.noise_beta);
        if (k == nf - 1u && even) {
            // The Nyquist bin of an even length counts once (colorednoise: w[-1] *= (1 + n % 2) / 2).
            w = w * 0.5;
        }
        norm = norm + w * w;
    }
    let sigma_n = 2.0 * sqrt(norm) / f32(h);
    for (var t = 0u; t < h; t = t + 1u) {
        var y = 0.0;
        for (var k = 0u; k < nf; k = k + 1u) {
            let s = pow(max(f32(k) / f32(h), fmin), -0.5 * params.noise_beta);
            let w = philox(vec4<u32>((c * na + a) * nf + k, b, params.call, tag(PURPOSE_SAMPLE, params.iteration, 0u)), key);
            let z = box_muller(w.x, w.y);
            var re = s * z.x;
            var im = s * z.y;
            let nyquist = even && k == nf - 1u;
            if (k == 0u || nyquist) {
                // Real-valued bins: no imaginary part, the real part scaled by √2.
                re = re * 1.4142135623730951;
                im = 0.0;
            }
            let angle = TAU * f32((k * t) % h) / f32(h);
            let term = re * cos(angle) - im * sin(angle);
            if (k == 0u || nyquist) {
                y = y + term;
            } else {
                y = y + 2.0 * term;
            }
        }
        y = y / f32(h);
        if (h > 1u) {
            y = y / sigma_n;
        } else {
            y = y / 1.4142135623730951;
        }
        let j = (b * h + t) * na + a;
        actions[((b * params.population + c) * h + t) * na + a] = clamp(y * sqrt(var_[j]) + mean[j], lo, hi);
    }
}

@compute @workgroup_size(WG_SIZE)
fn icem_extras(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    if (i >= params.n_batch * params.keep * h * na) {
        return;
    }
    let a = i % na;
    let t = (i / na) % h;
    let be = i / (na * h);
    let b = be / params.keep;
    let e = be % params.keep;
    let dst = ((b * params.population + params.sampled + e) * h + t) * na + a;
    if ((params.flags & FLAG_EXTRAS_MEAN) != 0u) {
        actions[dst] = mean[(b * h + t) * na + a];
        return;
    }
    let key = vec2<u32>(params.seed_lo, params.seed_hi);
    let ne = params.n_elites;
    let ctr_hi = vec3<u32>(b, params.call, tag(PURPOSE_ELITE, params.iteration, 0u));
    let src = permute_index(e, ne, feistel_half_bits(ne), ctr_hi, key);
    let row = params.archive + (b * ne + src) * h * na;
    if ((params.flags & FLAG_EXTRAS_SHIFTED) != 0u) {
        if (t + 1u < h) {
            actions[dst] = actions[row + (t + 1u) * na + a];
        } else {
            let j = (b * h + h - 1u) * na + a;
            let w = philox(vec4<u32>(e * na + a, b, params.call, tag(PURPOSE_ELITE, params.iteration, 1u)), key);
            let x = mean[j] + sqrt(var_[j]) * box_muller(w.x, w.y).x;
            actions[dst] = clamp(x, bounds[a], bounds[na + a]);
        }
    } else {
        actions[dst] = actions[row + t * na + a];
    }
}

@compute @workgroup_size(WG_SIZE)
fn icem_save_elites(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let h = params.horizon;
    let na = params.act_dim;
    let ne = params.n_elites;
    if (i >= params.n_batch * ne * h * na) {
        return;
    }
    let a = i % na;
    let t = (i / na) % h;
    let be = i / (na * h);
    let b = be / ne;
    let c = elites[be];
    actions[params.archive + i] = actions[((b * params.population + c) * h + t) * na + a];
}
