// common.wgsl — shared by every lookahead kernel family (concatenated in front of each family).
//
// Contents
//   * WG_SIZE and flat_index: the workgroup size of one-dimensional kernels and their index.
//   * MAX_OBS / MAX_ACT: the largest observation and action sizes an environment function sees;
//     the host refuses bigger tasks with `Error::LimitExceeded` (kernels::MAX_OBS, MAX_ACT).
//   * PlanParams: the uniform shared by the rollout, analytic and CEM families. Mirrors
//     `kernels::PlanParams` field for field (checked by a naga layout test).
//   * Philox4x32-10 (`philox`), uniform and normal draws, the keyed Feistel permutation used to
//     assign particles to ensemble members, softplus and the PETS log-variance soft clamp.
//     CPU twins: `kernels::rng` (Philox bit for bit) and `model::clamp_logvar`.
//   * Global slot layout: `local_block_start` (see kernels/mod.rs, "Slots").

// Invocations per workgroup of the one-dimensional kernels (set by the host: kernels::WG_SIZE).
override WG_SIZE: u32 = 64u;

const MAX_OBS: u32 = 32u;
const MAX_ACT: u32 = 8u;

// Purposes: the top 4 bits of the fourth Philox counter word separate the random streams.
const PURPOSE_SAMPLE: u32 = 1u;
const PURPOSE_NOISE: u32 = 2u;
const PURPOSE_PERMUTE: u32 = 3u;
const PURPOSE_ELITE: u32 = 4u;
const PURPOSE_SAC_BATCH: u32 = 5u;
const PURPOSE_SAC_NEXT_NOISE: u32 = 6u;
const PURPOSE_SAC_NOISE: u32 = 7u;

// propagation
const PROP_TS1: u32 = 0u;
const PROP_TSINF: u32 = 1u;
const PROP_EXPECTATION: u32 = 2u;

// PlanParams.flags bits
const FLAG_SAMPLE_NOISE: u32 = 1u;      // model is probabilistic: next = state + mean + σ·ε
const FLAG_LEARNED_REWARD: u32 = 2u;    // the model's last output is the reward
const FLAG_CLIPPED_NORMAL: u32 = 4u;    // clipped instead of truncated candidate sampling
const FLAG_UNIFORM: u32 = 8u;           // random shooting: candidates uniform within the bounds
const FLAG_EXTRAS_SHIFTED: u32 = 16u;   // iCEM: extras are archived elites shifted one step
const FLAG_EXTRAS_KEPT: u32 = 32u;      // iCEM: extras are archived elites as they are
const FLAG_EXTRAS_MEAN: u32 = 64u;      // iCEM: the one extra is the current mean

struct PlanParams {
    n_batch: u32,       // independent plans solved together (plan_batch)
    population: u32,    // candidates per plan
    particles: u32,     // particles per candidate
    horizon: u32,       // time steps per candidate
    obs_dim: u32,
    act_dim: u32,
    n_members: u32,     // ensemble members (1 for analytic dynamics)
    local_slots: u32,   // model rows per plan and step: population·particles (× members for expectation)
    n_elites: u32,
    iteration: u32,     // CEM iteration of this dispatch
    t: u32,             // time step of this dispatch
    call: u32,          // plan call counter (advances the random stream between plans)
    seed_lo: u32,
    seed_hi: u32,
    propagation: u32,   // PROP_*
    flags: u32,         // FLAG_*
    alpha: f32,         // CEM smoothing: new = alpha·old + (1 − alpha)·elite
    model_out: u32,     // predicted quantities per row: obs_dim (+1 with a learned reward)
    in_dim: u32,        // model input width: obs_dim + act_dim
    sampled: u32,       // candidates drawn this iteration (= population but for iCEM's extras)
    keep: u32,          // iCEM: extra candidates after the sampled ones (population = sampled + keep)
    archive: u32,       // iCEM: offset in `actions` of the elite archive [n_batch, n_elites, horizon, act_dim]
    sigma: f32,         // MPPI: noise scale
    gamma: f32,         // MPPI: reward scaling (inverse temperature)
    beta: f32,          // MPPI: smoothing of the noise across time steps
    noise_beta: f32,    // iCEM: exponent of the noise's power spectrum (0 white, 2 as the paper)
    _pad0: u32,
}

// Uniform of the whole-network kernels (mlp_fused.wgsl, mlp_coop.wgsl): sizes, layer widths,
// where each layer's parameters start and where the results go. Mirrors
// `kernels::mlp_fused::FusedParams`.
struct FusedParams {
    n_batch: u32,
    local_slots: u32,
    n_members: u32,
    n_layers: u32,
    // dims[l] = input width of layer l; dims[n_layers] = output width. Index i: [i / 4][i % 4].
    dims: array<vec4<u32>, 3>,
    w_off: array<vec4<u32>, 2>,
    b_off: array<vec4<u32>, 2>,
    // Where the output rows start in y (floats); mlp_fused.wgsl's backward chain reads its
    // input gradient from there.
    y_off: u32,
    // 1: the input rows are copied to y from in_off, and every layer l but the last also writes
    // its pre-activations [rows, dims[l + 1]] to y from pre_off[l] and its activations from
    // act_off[l] (training keeps them for the backward pass; mlp_fused.wgsl's forward pass only).
    store_hidden: u32,
    in_off: u32,
    // 1: the forward pass also writes every layer l but the first transposed,
    // [E, dims[l + 1], dims[l]], to y from t_off[l] (the backward chain's weights).
    transpose: u32,
    // mlp_fused.wgsl's backward chain: where product l reads its output's pre-activations (in x)
    // and writes its gradients (in y).
    pre_off: array<vec4<u32>, 2>,
    act_off: array<vec4<u32>, 2>,
    t_off: array<vec4<u32>, 2>,
}

// Uniform of the training families (loss.wgsl, adam.wgsl), one entry per minibatch step.
// Mirrors `kernels::TrainParams`.
struct TrainParams {
    n_members: u32,      // E
    batch: u32,          // rows per member in the batch buffers
    valid_rows: u32,     // rows of this step that carry data (≤ batch)
    in_dim: u32,
    model_out: u32,
    probabilistic: u32,
    learn_bounds: u32,
    step: u32,           // minibatch step within the submitted epoch
    n_steps: u32,        // steps of the epoch (sizes the stats layout)
    bounds_offset: u32,  // max_logvar in the flat parameter buffer (everything from here is a bound)
    min_offset: u32,     // min_logvar in the flat parameter buffer
    n_params: u32,
    n_chunks: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    clip_norm: f32,      // ≤ 0: no clipping
    logvar_penalty: f32,
    objective: u32,      // 0: the model's loss (NLL or MSE); 1: MSE of the means (evaluation)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Flat index of a one-dimensional dispatch folded into (x, y) workgroups (gpu::grid_1d).
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG_SIZE;
}

fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    // 32×32 → 64-bit product from 16-bit halves; WGSL has no mul-high.
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + lo_hi;
    let hi = hi_hi + (hi_lo >> 16u) + (cross >> 16u);
    return vec2<u32>(hi, a * b);
}

// Philox4x32-10 (Salmon et al., SC'11). Returns 4 independent 32-bit words for the counter.
fn philox(ctr_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var c = ctr_in;
    var k = key_in;
    for (var round = 0u; round < 10u; round = round + 1u) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// Uniform in (0, 1): the top 24 bits, centred in their cell, exact in f32.
fn u01(x: u32) -> f32 {
    return (f32(x >> 8u) + 0.5) * 5.9604644775390625e-8;
}

// Two standard normals from two uniform words (Box–Muller).
fn box_muller(a: u32, b: u32) -> vec2<f32> {
    let r = sqrt(-2.0 * log(u01(a)));
    let theta = 6.283185307179586 * u01(b);
    return vec2<f32>(r * cos(theta), r * sin(theta));
}

// Fourth counter word: purpose (4 bits) | iteration (12 bits) | sub-stream (16 bits).
fn tag(purpose: u32, iteration: u32, sub: u32) -> u32 {
    return (purpose << 28u) | ((iteration & 0xfffu) << 16u) | (sub & 0xffffu);
}

fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

// PETS soft clamp of a log-variance between learned bounds (Chua et al. 2018, App. A.1).
fn clamp_logvar(lv: f32, max_lv: f32, min_lv: f32) -> f32 {
    let upper = max_lv - softplus(max_lv - lv);
    return min_lv + softplus(upper - min_lv);
}

fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Bits of the smallest even-width power of two domain that holds n values (n ≥ 1).
fn feistel_half_bits(n: u32) -> u32 {
    var bits = 2u;
    while (bits < 32u && (1u << bits) < n) {
        bits = bits + 2u;
    }
    return bits / 2u;
}

// Keyed bijection of [0, n) (4-round Feistel network with cycle walking).
fn permute_index(j: u32, n: u32, half: u32, ctr_hi: vec3<u32>, key: vec2<u32>) -> u32 {
    let mask = (1u << half) - 1u;
    var x = j;
    loop {
        var left = x >> half;
        var right = x & mask;
        for (var round = 0u; round < 4u; round = round + 1u) {
            let f = philox(vec4<u32>(right | (round << 24u), ctr_hi.x, ctr_hi.y, ctr_hi.z), key).x & mask;
            let next_right = left ^ f;
            left = right;
            right = next_right;
        }
        x = (left << half) | right;
        if (x < n) {
            break;
        }
    }
    return x;
}

// First global slot of member m. Slots are member-major: member m owns the local slots
// [ceil(m·L/E), ceil((m+1)·L/E)) of every plan, laid out plan after plan.
fn local_block_start(m: u32, local_slots: u32, n_members: u32) -> u32 {
    return (m * local_slots + n_members - 1u) / n_members;
}
