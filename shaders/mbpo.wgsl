// mbpo.wgsl — MBPO's branched model rollouts (Janner et al. 2019): R rollouts start from states
// drawn from the real replay ring and run k steps of the current policy through the learned
// ensemble, every step through an elite member drawn per rollout (mbrl-lib's `random_model`
// propagation), each step's transitions appended in rollout order to the model ring (a FIFO
// of fixed capacity) that SAC's minibatches are drawn from. A rollout that terminates adds
// its terminating transition and nothing after it.
//
// The batch's rollouts run in passes of at most `rows` rollouts (the buffers' size), each pass
// every step; a pass's transitions go to the ring step by step in rollout order, and the
// draws follow the rollout's index in the batch. One step k of a pass, as mbpo::rollout
// records it: the actor's forward pass on `state` (mlp.wgsl via
// kernels::net::LayeredNet) → `rollout_policy` (the sampled action and every member's
// normalised input) → the ensemble's forward pass on `model_in` (all members, every rollout)
// → `rollout_model` (the chosen elite's sampled prediction: next state, reward, termination,
// the transition into `trans`, the state advanced) → `rollout_rank` (one workgroup: each live
// rollout's ring position, in rollout order, and the ring's head and fill) → `rollout_store`
// (the live rollouts' transitions into the ring; a terminated rollout dies). `rollout_start`
// runs once before step 0.
//
// Parts, in order: common.wgsl, the task's env_*.wgsl (env_reward, env_terminated, which may
// read params.obs_dim and params.act_dim), policy.wgsl, this.
//
// Bindings: group 0 = RolloutParams (uniform, dynamic offset: one per step k);
// group 1 = the buffers below, each entry point binding only those it uses (its own layout).
//   0 replay      [n_real, row] the real ring, row = obs | act | reward | next_obs | terminated (read)
//   1 state       [R, d]        each rollout's current state
//   2 alive       [R]           1 while the rollout runs, else 0
//   3 actor_out   [R, 2a]       the actor's outputs at `state` (mean | raw log σ) (read)
//   4 actions     [R, a]        the step's actions
//   (R below: the pass's `rows`)
//   5 model_in    [E·R, d + a]  the ensemble's input rows, member-major, normalised (written)
//   6 model_consts [2(d + a) + 2·model_out] input mean, input std, max and min log-variance (read)
//   7 model_out   [E·R, out]    the ensemble's outputs: means | raw log-variances (read)
//   8 elites      [n_elites]    u32 member indices (read)
//   9 trans       [R, row]      the step's transition of every rollout
//  10 rank        [R]           u32: the ring position of a live rollout's transition
//  11 ring_state  [4]           u32: head (next position), fill, transitions written (low, high)
//  12 ring        [capacity, row] the model ring
// CPU reference: mbpo::reference::rollouts_f64 (a whole rollout batch: start states, member
// choice, actions, sampled predictions, rewards, termination, ring placement).

// Philox purposes of the rollouts' streams (after sac.wgsl's 5..8).
const PURPOSE_MBPO_START: u32 = 9u;
const PURPOSE_MBPO_ACT: u32 = 10u;
const PURPOSE_MBPO_MEMBER: u32 = 11u;
const PURPOSE_MBPO_NOISE: u32 = 12u;

struct RolloutParams {
    n_rollouts: u32, // rollouts of this pass
    obs_dim: u32,
    act_dim: u32,
    model_out: u32,  // obs_dim, + 1 with a learned reward
    out_cols: u32,   // the ensemble's output width: model_out, or 2·model_out when probabilistic
    n_members: u32,
    n_elites: u32,
    flags: u32,      // FLAG_SAMPLE_NOISE | FLAG_LEARNED_REWARD (common.wgsl)
    n_real: u32,     // transitions in the real ring (start states are drawn among them)
    capacity: u32,   // the model ring's rows
    batch_lo: u32,   // the rollout batch's index (the draws' counter)
    batch_hi: u32,
    step: u32,       // k within the batch
    seed_lo: u32,
    seed_hi: u32,
    first: u32,      // the batch's index of this pass's first rollout (the draws' element)
    rows: u32,       // rows per member of the pass's buffers (n_rollouts ≤ rows)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    center: array<vec4<f32>, 2>, // the action bounds' centre, MAX_ACT values
    half: array<vec4<f32>, 2>,   // and half width
}

@group(0) @binding(0) var<uniform> params: RolloutParams;
@group(1) @binding(0) var<storage, read> replay: array<f32>;
@group(1) @binding(1) var<storage, read_write> state: array<f32>;
@group(1) @binding(2) var<storage, read_write> alive: array<f32>;
@group(1) @binding(3) var<storage, read> actor_out: array<f32>;
@group(1) @binding(4) var<storage, read_write> actions: array<f32>;
@group(1) @binding(5) var<storage, read_write> model_in: array<f32>;
@group(1) @binding(6) var<storage, read> model_consts: array<f32>;
@group(1) @binding(7) var<storage, read> model_out: array<f32>;
@group(1) @binding(8) var<storage, read> elites: array<u32>;
@group(1) @binding(9) var<storage, read_write> trans: array<f32>;
@group(1) @binding(10) var<storage, read_write> rank: array<u32>;
@group(1) @binding(11) var<storage, read_write> ring_state: array<u32>;
@group(1) @binding(12) var<storage, read_write> ring: array<f32>;

const RANK_WG: u32 = 256u;
var<workgroup> counts: array<u32, RANK_WG>;

fn center(i: u32) -> f32 { return params.center[i / 4u][i % 4u]; }
fn half_width(i: u32) -> f32 { return params.half[i / 4u][i % 4u]; }

fn row_len() -> u32 {
    return 2u * params.obs_dim + params.act_dim + 2u;
}

// Four words of a stream: [element, batch low, batch high, tag(purpose, step, 0)].
fn draw(purpose: u32, element: u32) -> vec4<u32> {
    return philox(vec4<u32>(element, params.batch_lo, params.batch_hi, tag(purpose, params.step, 0u)), vec2<u32>(params.seed_lo, params.seed_hi));
}

fn normal(purpose: u32, element: u32) -> f32 {
    let w = draw(purpose, element);
    return box_muller(w.x, w.y).x;
}

// Rollout r's start: a state drawn uniformly among the real transitions' observations (the
// full 32-bit word, Lemire's multiply-shift); the rollout is alive.
@compute @workgroup_size(WG_SIZE)
fn rollout_start(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_index(gid, nwg);
    if (r >= params.n_rollouts) {
        return;
    }
    let idx = mulhilo(draw(PURPOSE_MBPO_START, params.first + r).x, params.n_real).x;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        state[r * params.obs_dim + d] = replay[idx * row_len() + d];
    }
    alive[r] = 1.0;
}

// Rollout r's action, c + h·tanh(mean + σ·ε) with ε from the step's stream, and the model's
// normalised input (state, action) in every member's block.
@compute @workgroup_size(WG_SIZE)
fn rollout_policy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_index(gid, nwg);
    if (r >= params.n_rollouts) {
        return;
    }
    let d = params.obs_dim;
    let a = params.act_dim;
    let in_dim = d + a;
    var row: array<f32, MAX_OBS + MAX_ACT>;
    for (var k = 0u; k < d; k = k + 1u) {
        row[k] = state[r * d + k];
    }
    for (var i = 0u; i < a; i = i + 1u) {
        let mean = actor_out[r * 2u * a + i];
        let sigma = exp(log_std(actor_out[r * 2u * a + a + i]));
        let act = center(i) + half_width(i) * stable_tanh(mean + sigma * normal(PURPOSE_MBPO_ACT, (params.first + r) * a + i));
        actions[r * a + i] = act;
        row[d + i] = act;
    }
    for (var k = 0u; k < in_dim; k = k + 1u) {
        row[k] = (row[k] - model_consts[k]) / model_consts[in_dim + k];
    }
    for (var m = 0u; m < params.n_members; m = m + 1u) {
        for (var k = 0u; k < in_dim; k = k + 1u) {
            model_in[(m * params.rows + r) * in_dim + k] = row[k];
        }
    }
}

// Rollout r's model step through an elite drawn for it: each predicted quantity sampled from
// the member's Gaussian (the mean for a deterministic model), the next state (state + delta),
// the reward (the model's, or the task's on (state, action, next)), the termination (the
// task's); the transition into `trans`, the state advanced. A dead rollout is left alone.
@compute @workgroup_size(WG_SIZE)
fn rollout_model(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_index(gid, nwg);
    if (r >= params.n_rollouts || alive[r] == 0.0) {
        return;
    }
    let d = params.obs_dim;
    let a = params.act_dim;
    let mo = params.model_out;
    let in_dim = d + a;
    let m = elites[mulhilo(draw(PURPOSE_MBPO_MEMBER, params.first + r).x, params.n_elites).x];
    let out = (m * params.rows + r) * params.out_cols;
    var pred: array<f32, MAX_OBS + 1u>;
    for (var q = 0u; q < mo; q = q + 1u) {
        var v = model_out[out + q];
        if ((params.flags & FLAG_SAMPLE_NOISE) != 0u) {
            let lv = clamp_logvar(model_out[out + mo + q], model_consts[2u * in_dim + q], model_consts[2u * in_dim + mo + q]);
            v = v + exp(0.5 * lv) * normal(PURPOSE_MBPO_NOISE, (params.first + r) * mo + q);
        }
        pred[q] = v;
    }
    var s: array<f32, MAX_OBS>;
    var next: array<f32, MAX_OBS>;
    var act: array<f32, MAX_ACT>;
    for (var k = 0u; k < d; k = k + 1u) {
        s[k] = state[r * d + k];
        next[k] = s[k] + pred[k];
    }
    for (var i = 0u; i < a; i = i + 1u) {
        act[i] = actions[r * a + i];
    }
    var reward = 0.0;
    if ((params.flags & FLAG_LEARNED_REWARD) != 0u) {
        reward = pred[d];
    } else {
        reward = env_reward(s, act, next);
    }
    let t = r * row_len();
    for (var k = 0u; k < d; k = k + 1u) {
        trans[t + k] = s[k];
        trans[t + in_dim + 1u + k] = next[k];
        state[r * d + k] = next[k];
    }
    for (var i = 0u; i < a; i = i + 1u) {
        trans[t + d + i] = act[i];
    }
    trans[t + in_dim] = reward;
    trans[t + in_dim + 1u + d] = select(0.0, 1.0, env_terminated(act, next));
}

// One workgroup: the ring position of every live rollout's transition, in rollout order
// (each invocation counts a contiguous block, an exclusive scan of the counts, then the
// positions), and the ring's head and fill after the step.
@compute @workgroup_size(RANK_WG)
fn rollout_rank(@builtin(local_invocation_index) t: u32) {
    // Read before the barriers below; invocation 0 writes it after them.
    let head = ring_state[0];
    let per = (params.n_rollouts + RANK_WG - 1u) / RANK_WG;
    let lo = min(t * per, params.n_rollouts);
    let hi = min(lo + per, params.n_rollouts);
    var n = 0u;
    for (var r = lo; r < hi; r = r + 1u) {
        n = n + select(0u, 1u, alive[r] != 0.0);
    }
    counts[t] = n;
    workgroupBarrier();
    // Hillis–Steele inclusive scan of the counts.
    for (var off = 1u; off < RANK_WG; off = off * 2u) {
        var v = counts[t];
        if (t >= off) {
            v = v + counts[t - off];
        }
        workgroupBarrier();
        counts[t] = v;
        workgroupBarrier();
    }
    var at = counts[t] - n;
    for (var r = lo; r < hi; r = r + 1u) {
        if (alive[r] != 0.0) {
            rank[r] = (head + at) % params.capacity;
            at = at + 1u;
        }
    }
    let total = counts[RANK_WG - 1u];
    if (t == 0u) {
        ring_state[0] = (head + total) % params.capacity;
        ring_state[1] = min(ring_state[1] + total, params.capacity);
        let lo_sum = ring_state[2] + total;
        ring_state[3] = ring_state[3] + select(0u, 1u, lo_sum < total);
        ring_state[2] = lo_sum;
    }
}

// A live rollout's transition into the ring at its position; a terminated rollout dies.
@compute @workgroup_size(WG_SIZE)
fn rollout_store(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_index(gid, nwg);
    if (r >= params.n_rollouts || alive[r] == 0.0) {
        return;
    }
    let n = row_len();
    let at = rank[r] * n;
    for (var k = 0u; k < n; k = k + 1u) {
        ring[at + k] = trans[r * n + k];
    }
    if (trans[r * n + n - 1u] != 0.0) {
        alive[r] = 0.0;
    }
}
