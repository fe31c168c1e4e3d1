// sac.wgsl — the Soft Actor-Critic parts around the networks (Haarnoja et al. 2018, with the
// learned temperature of the second paper): the minibatch and its noise drawn from Philox, the
// tanh-squashed Gaussian policy and its log-probability, the critic target and the critic loss
// gradient, the actor loss gradient through the critics' input gradient, the temperature's
// gradient and the update's statistics, Polyak averaging, and the action for the next
// environment step. The networks themselves run on mlp.wgsl (kernels::net::LayeredNet); the
// twin critics are one 2-member network whose rows are member-major ([Q1 rows | Q2 rows]).
// policy.wgsl (the squashed Gaussian's log σ bound and tanh) comes before.
//
// Bindings: group 0 = SacParams (uniform, dynamic offset: one per update of a submission);
// group 1 = the buffers below, each entry point binding only those it uses (its own layout).
//   0 replay     [capacity, row] row = obs | act | reward | next_obs | terminated (read)
//   1 critic_in  [2B, d + a]  the minibatch's (obs, act) for both critics
//   2 next_in    [B, d]       the minibatch's next observations (the actor's input)
//   3 cur_in     [B, d]       the minibatch's observations (the actor's input)
//   4 rows       per-row values, ROW_* regions below
//   5 actor_out  [B, 2a]      the actor's outputs (mean | raw log σ) (read)
//   6 q_in       [2B, d + a]  a critic input written here: (s′, a′) or (s, ã)
//   7 q_a        [2B]         critic outputs (read)
//   8 q_b        [2B]         the target critics' outputs (read)
//   9 dq         [2B]         the loss gradient at the critics' outputs
//  10 dq_in      [2B, d + a]  the gradient at the critics' inputs (read)
//  11 dactor     [B, 2a]      the loss gradient at the actor's outputs
//  12 log_alpha  [1]          (read)
//  13 alpha_grad [1]
//  14 stats      [updates, STATS] per update of a submission
//  15 src        polyak: the online parameters (read)
//  16 dst        polyak: the target parameters
//  17 action     [rows, a]    actions (the next environment action: one row)
//  18 model_ring [capacity, row] MBPO's model transitions, rows as `replay` (read; plain SAC
//                             binds the replay ring here with a fill of 0)
//  19 ring_state [4]          u32: the model ring's head, fill, … (mbpo.wgsl) (read)
// CPU reference: sac::reference (the update, the draws and the policy, in f64).

const HALF_LOG_TAU: f32 = 0.9189385332046727; // ½ log 2π
const LOG_2: f32 = 0.6931471805599453;

// Philox purposes of SAC's streams (after common.wgsl's 1..4).
const PURPOSE_SAC_INDEX: u32 = 5u;
const PURPOSE_SAC_NEXT: u32 = 6u;
const PURPOSE_SAC_CUR: u32 = 7u;
const PURPOSE_SAC_ACT: u32 = 8u;

// Statistics per update: critic loss, actor loss (NaN without an actor step), α, entropy
// (−mean log π(a′|s′)), mean Q.
const STATS: u32 = 8u;

struct SacParams {
    batch: u32,
    obs_dim: u32,
    act_dim: u32,
    n_stored: u32,
    update_lo: u32,     // the update's index (the draws' counter)
    update_hi: u32,
    seed_lo: u32,
    seed_hi: u32,
    gamma: f32,
    tau: f32,
    target_entropy: f32,
    learn_alpha: u32,
    actor_step: u32,    // 1 when this update steps the actor (and α)
    slot: u32,          // this update's row of `stats`
    n_polyak: u32,      // parameters Polyak-averaged
    deterministic: u32, // the action: the policy's mean instead of a sample
    step_lo: u32,       // the environment step (the action noise's counter)
    step_hi: u32,
    n_real_rows: u32,   // minibatch rows drawn from `replay`; the rest from the model ring
    model_window: u32,  // the newest model-ring rows the minibatches draw from
    model_capacity: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    center: array<vec4<f32>, 2>, // the action bounds' centre, MAX_ACT values
    half: array<vec4<f32>, 2>,   // and half width
}

@group(0) @binding(0) var<uniform> p: SacParams;
@group(1) @binding(0) var<storage, read> replay: array<f32>;
@group(1) @binding(1) var<storage, read_write> critic_in: array<f32>;
@group(1) @binding(2) var<storage, read_write> next_in: array<f32>;
@group(1) @binding(3) var<storage, read_write> cur_in: array<f32>;
@group(1) @binding(4) var<storage, read_write> rows: array<f32>;
@group(1) @binding(5) var<storage, read> actor_out: array<f32>;
@group(1) @binding(6) var<storage, read_write> q_in: array<f32>;
@group(1) @binding(7) var<storage, read> q_a: array<f32>;
@group(1) @binding(8) var<storage, read> q_b: array<f32>;
@group(1) @binding(9) var<storage, read_write> dq: array<f32>;
@group(1) @binding(10) var<storage, read> dq_in: array<f32>;
@group(1) @binding(11) var<storage, read_write> dactor: array<f32>;
@group(1) @binding(12) var<storage, read> log_alpha: array<f32>;
@group(1) @binding(13) var<storage, read_write> alpha_grad: array<f32>;
@group(1) @binding(14) var<storage, read_write> stats: array<f32>;
@group(1) @binding(15) var<storage, read> src: array<f32>;
@group(1) @binding(16) var<storage, read_write> dst: array<f32>;
@group(1) @binding(17) var<storage, read_write> action: array<f32>;
@group(1) @binding(18) var<storage, read> model_ring: array<f32>;
@group(1) @binding(19) var<storage, read> ring_state: array<u32>;

// `rows` regions (each B values unless named): reward, terminated, ε′ [B, a], ε [B, a],
// log π(a′|s′), log π(ã|s), the critic loss per row, min Q(s, ã), mean Q(s, a).
fn row_reward(b: u32) -> u32 { return b; }
fn row_terminated(b: u32) -> u32 { return p.batch + b; }
fn row_eps_next(b: u32, i: u32) -> u32 { return 2u * p.batch + b * p.act_dim + i; }
fn row_eps_cur(b: u32, i: u32) -> u32 { return (2u + p.act_dim) * p.batch + b * p.act_dim + i; }
fn row_logp_next(b: u32) -> u32 { return (2u + 2u * p.act_dim) * p.batch + b; }
fn row_logp_cur(b: u32) -> u32 { return (3u + 2u * p.act_dim) * p.batch + b; }
fn row_critic_loss(b: u32) -> u32 { return (4u + 2u * p.act_dim) * p.batch + b; }
fn row_q_min(b: u32) -> u32 { return (5u + 2u * p.act_dim) * p.batch + b; }
fn row_q_mean(b: u32) -> u32 { return (6u + 2u * p.act_dim) * p.batch + b; }

fn center(i: u32) -> f32 { return p.center[i / 4u][i % 4u]; }
fn half_width(i: u32) -> f32 { return p.half[i / 4u][i % 4u]; }

fn key() -> vec2<u32> {
    return vec2<u32>(p.seed_lo, p.seed_hi);
}

// Standard normal `element` of a stream: the first of Box–Muller's pair from the counter
// [element, counter low, counter high, tag(purpose, 0, 0)].
fn normal(purpose: u32, element: u32, ctr_lo: u32, ctr_hi: u32) -> f32 {
    let w = philox(vec4<u32>(element, ctr_lo, ctr_hi, tag(purpose, 0u, 0u)), key());
    return box_muller(w.x, w.y).x;
}

// log(1 − tanh² u) in its stable form 2(log 2 − u − softplus(−2u)).
fn log_one_minus_tanh2(u: f32) -> f32 {
    return 2.0 * (LOG_2 - u - softplus(-2.0 * u));
}

// The squashed sample of output row b with noise eps[i] = ε_i: writes the action into `q_in`
// at `at` (one critic row) and returns log π.
fn policy_row(b: u32, at: u32, cur: bool) -> f32 {
    let a = p.act_dim;
    var logp = 0.0;
    for (var i = 0u; i < a; i = i + 1u) {
        let mean = actor_out[b * 2u * a + i];
        let ls = log_std(actor_out[b * 2u * a + a + i]);
        let eps = select(rows[row_eps_next(b, i)], rows[row_eps_cur(b, i)], cur);
        let u = mean + exp(ls) * eps;
        q_in[at + i] = center(i) + half_width(i) * stable_tanh(u);
        logp = logp - 0.5 * eps * eps - ls - HALF_LOG_TAU - log(half_width(i)) - log_one_minus_tanh2(u);
    }
    return logp;
}

// Value i of the real ring or of the model ring.
fn transition_value(real: bool, i: u32) -> f32 {
    if (real) {
        return replay[i];
    }
    return model_ring[i];
}

// One row per invocation: the row's source (the first n_real_rows rows from the real ring, the
// others from the newest model_window rows of the model ring while it holds any), its index
// from the full 32-bit word (Lemire's multiply-shift; in the model ring counted back from its
// newest row), the row copied into the critics' and the actor's inputs, and the two noise
// streams.
@compute @workgroup_size(WG_SIZE)
fn sample(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.batch) {
        return;
    }
    let d = p.obs_dim;
    let a = p.act_dim;
    let model_n = min(ring_state[1], p.model_window);
    let real = b < p.n_real_rows || model_n == 0u;
    let w = philox(vec4<u32>(b, p.update_lo, p.update_hi, tag(PURPOSE_SAC_INDEX, 0u, 0u)), key());
    let drawn = mulhilo(w.x, select(model_n, p.n_stored, real)).x;
    // The model ring's newest row is the one before its head.
    let idx = select((ring_state[0] + p.model_capacity - 1u - drawn) % max(p.model_capacity, 1u), drawn, real);
    let row = 2u * d + a + 2u;
    let base = idx * row;
    let width = d + a;
    for (var k = 0u; k < width; k = k + 1u) {
        let v = transition_value(real, base + k);
        critic_in[b * width + k] = v;
        critic_in[(p.batch + b) * width + k] = v;
    }
    for (var k = 0u; k < d; k = k + 1u) {
        cur_in[b * d + k] = transition_value(real, base + k);
        next_in[b * d + k] = transition_value(real, base + width + 1u + k);
    }
    rows[row_reward(b)] = transition_value(real, base + width);
    rows[row_terminated(b)] = transition_value(real, base + width + 1u + d);
    for (var i = 0u; i < a; i = i + 1u) {
        rows[row_eps_next(b, i)] = normal(PURPOSE_SAC_NEXT, b * a + i, p.update_lo, p.update_hi);
        rows[row_eps_cur(b, i)] = normal(PURPOSE_SAC_CUR, b * a + i, p.update_lo, p.update_hi);
    }
}

// The critic input of a policy sample: (obs, action) for both critics' rows.
fn write_policy_input(b: u32, obs: u32, cur: bool) -> f32 {
    let d = p.obs_dim;
    let width = d + p.act_dim;
    for (var k = 0u; k < d; k = k + 1u) {
        let v = select(next_in[obs + k], cur_in[obs + k], cur);
        q_in[b * width + k] = v;
        q_in[(p.batch + b) * width + k] = v;
    }
    let logp = policy_row(b, b * width + d, cur);
    for (var i = 0u; i < p.act_dim; i = i + 1u) {
        q_in[(p.batch + b) * width + d + i] = q_in[b * width + d + i];
    }
    return logp;
}

// a′ ~ π(·|s′): the target critics' input and log π(a′|s′).
@compute @workgroup_size(WG_SIZE)
fn policy_next(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.batch) {
        return;
    }
    rows[row_logp_next(b)] = write_policy_input(b, b * p.obs_dim, false);
}

// ã ~ π(·|s) (reparameterised): the critics' input for the actor loss and log π(ã|s).
@compute @workgroup_size(WG_SIZE)
fn policy_cur(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.batch) {
        return;
    }
    rows[row_logp_cur(b)] = write_policy_input(b, b * p.obs_dim, true);
}

// y = r + γ(1 − terminated)(min Q′(s′, a′) − α log π(a′|s′)); the gradient of
// mean (Q1 − y)² + mean (Q2 − y)² at both critics' outputs.
@compute @workgroup_size(WG_SIZE)
fn critic_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let n = p.batch;
    if (b >= n) {
        return;
    }
    let alpha = exp(log_alpha[0]);
    let next_v = min(q_b[b], q_b[n + b]) - alpha * rows[row_logp_next(b)];
    let y = rows[row_reward(b)] + p.gamma * (1.0 - rows[row_terminated(b)]) * next_v;
    let d1 = q_a[b] - y;
    let d2 = q_a[n + b] - y;
    dq[b] = 2.0 * d1 / f32(n);
    dq[n + b] = 2.0 * d2 / f32(n);
    rows[row_critic_loss(b)] = d1 * d1 + d2 * d2;
    rows[row_q_mean(b)] = 0.5 * (q_a[b] + q_a[n + b]);
}

// The gradient of −mean min(Q1, Q2)(s, ã) at the critics' outputs: −1/B to the smaller (Q1 on
// a tie), 0 to the other.
@compute @workgroup_size(WG_SIZE)
fn actor_q_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let n = p.batch;
    if (b >= n) {
        return;
    }
    let first = q_a[b] <= q_a[n + b];
    dq[b] = select(0.0, -1.0 / f32(n), first);
    dq[n + b] = select(-1.0 / f32(n), 0.0, first);
    rows[row_q_min(b)] = min(q_a[b], q_a[n + b]);
}

// The gradient of mean [α log π(ã|s) − min Q(s, ã)] at the actor's outputs (mean, raw log σ),
// through ã = c + h·tanh(μ + σε) and log π, with dQ/dã from the critics' input gradient.
@compute @workgroup_size(WG_SIZE)
fn actor_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let n = p.batch;
    if (b >= n) {
        return;
    }
    let a = p.act_dim;
    let width = p.obs_dim + a;
    let alpha = exp(log_alpha[0]);
    for (var i = 0u; i < a; i = i + 1u) {
        let raw = actor_out[b * 2u * a + a + i];
        let sigma = exp(log_std(raw));
        let eps = rows[row_eps_cur(b, i)];
        let t = stable_tanh(actor_out[b * 2u * a + i] + sigma * eps);
        // dL/dã_i: both critics' input gradients (the one not chosen by the min is zero).
        let g = dq_in[b * width + p.obs_dim + i] + dq_in[(n + b) * width + p.obs_dim + i];
        let du = alpha * 2.0 * t / f32(n) + g * half_width(i) * (1.0 - t * t);
        let dls = du * sigma * eps - alpha / f32(n);
        let tr = stable_tanh(raw);
        dactor[b * 2u * a + i] = du;
        dactor[b * 2u * a + a + i] = dls * 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (1.0 - tr * tr);
    }
}

// Behaviour cloning (distilling a planner into the actor): the gradient of the mean over rows
// and actions of (c + h·tanh(μ) − a*)² at the actor's outputs, a* the minibatch row's action
// (the label); log σ gets none (the deterministic action does not depend on it). Each row's mean
// squared error goes to the critic-loss row, which `update_stats` reduces into the update's
// first statistic.
@compute @workgroup_size(WG_SIZE)
fn imitation_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let n = p.batch;
    if (b >= n) {
        return;
    }
    let a = p.act_dim;
    let width = p.obs_dim + a;
    var sq = 0.0;
    for (var i = 0u; i < a; i = i + 1u) {
        let t = stable_tanh(actor_out[b * 2u * a + i]);
        let diff = center(i) + half_width(i) * t - critic_in[b * width + p.obs_dim + i];
        sq = sq + diff * diff;
        dactor[b * 2u * a + i] = 2.0 * diff * half_width(i) * (1.0 - t * t) / f32(n * a);
        dactor[b * 2u * a + a + i] = 0.0;
    }
    rows[row_critic_loss(b)] = sq / f32(a);
}

// One workgroup: the update's statistics in a fixed order, and α's gradient
// d/d log α of −mean log α (log π(ã|s) + target entropy) when the actor stepped.
@compute @workgroup_size(RED_SIZE)
fn update_stats(@builtin(local_invocation_index) t: u32) {
    let n = p.batch;
    var c = vec2<f32>(0.0);
    var m = vec2<f32>(0.0);
    var e = vec2<f32>(0.0);
    for (var b = t; b < n; b = b + RED_SIZE) {
        c = c + vec2<f32>(rows[row_critic_loss(b)], rows[row_q_mean(b)]);
        m = m + vec2<f32>(rows[row_logp_cur(b)], rows[row_q_min(b)]);
        e.x = e.x + rows[row_logp_next(b)];
    }
    let critic = workgroup_sum(t, c) / f32(n);
    let actor = workgroup_sum(t, m) / f32(n);
    let entropy = -workgroup_sum(t, e).x / f32(n);
    if (t != 0u) {
        return;
    }
    let alpha = exp(log_alpha[0]);
    let at = p.slot * STATS;
    stats[at] = critic.x;
    stats[at + 4u] = critic.y;
    stats[at + 2u] = alpha;
    // No actor step: NaN, which the host reads as "none".
    let none = bitcast<f32>(0x7fc00000u);
    let stepped = p.actor_step == 1u;
    stats[at + 1u] = select(none, alpha * actor.x - actor.y, stepped);
    stats[at + 3u] = entropy;
    if (stepped) {
        alpha_grad[0] = select(0.0, -(actor.x + p.target_entropy), p.learn_alpha == 1u);
    }
}

// θ′ ← τθ + (1 − τ)θ′ over `n_polyak` parameters.
@compute @workgroup_size(WG_SIZE)
fn polyak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n_polyak) {
        return;
    }
    dst[i] = p.tau * src[i] + (1.0 - p.tau) * dst[i];
}

// Actions from the actor's outputs for `batch` observations (one invocation per row and action):
// c + h·tanh(μ) when deterministic, else a sample with noise from the environment step's stream.
@compute @workgroup_size(WG_SIZE)
fn act(@builtin(global_invocation_id) gid: vec3<u32>) {
    let a = p.act_dim;
    let r = gid.x / a;
    let i = gid.x % a;
    if (r >= p.batch) {
        return;
    }
    var u = actor_out[r * 2u * a + i];
    if (p.deterministic == 0u) {
        let ls = log_std(actor_out[r * 2u * a + a + i]);
        u = u + exp(ls) * normal(PURPOSE_SAC_ACT, r * a + i, p.step_lo, p.step_hi);
    }
    action[r * a + i] = center(i) + half_width(i) * stable_tanh(u);
}
