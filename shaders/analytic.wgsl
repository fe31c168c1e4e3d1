// analytic.wgsl — rollout with known dynamics: the environment's own env_step (env_*.wgsl),
// the whole horizon in one dispatch (MPC with a known model).
//
// Bindings: the rollout layout (rollout.wgsl); this family reads obs and actions and writes track.
//   group 0, 0 params  : PlanParams (uniform, dynamic offset)
//   group 1, 0 obs     : [n_batch, obs_dim]
//   group 1, 2 track   : [N, 2] (return, alive) per particle n = (b · population + c) · particles + k
//   group 1, 3 actions : [n_batch·population, horizon, act_dim]
// The other bindings of the layout are declared so that the layouts match and are unused here.
// CPU reference: planner::reference::analytic_returns_f64 (task functions: env::reference::RefTask).

@group(0) @binding(0) var<uniform> params: PlanParams;
@group(1) @binding(0) var<storage, read> obs: array<f32>;
@group(1) @binding(1) var<storage, read_write> state: array<f32>;
@group(1) @binding(2) var<storage, read_write> track: array<f32>;
@group(1) @binding(3) var<storage, read> actions: array<f32>;
@group(1) @binding(4) var<storage, read> model_consts: array<f32>;
@group(1) @binding(5) var<storage, read_write> x0: array<f32>;
@group(1) @binding(6) var<storage, read_write> slot_of: array<u32>;
@group(1) @binding(7) var<storage, read> out: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn rollout_analytic(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    let total = params.n_batch * params.population * params.particles;
    if (n >= total) {
        return;
    }
    let b = n / (params.population * params.particles);
    let cand = n / params.particles;
    var s: array<f32, MAX_OBS>;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        s[d] = obs[b * params.obs_dim + d];
    }
    var ret = 0.0;
    var alive = 1.0;
    for (var t = 0u; t < params.horizon; t = t + 1u) {
        var act: array<f32, MAX_ACT>;
        for (var a = 0u; a < params.act_dim; a = a + 1u) {
            act[a] = actions[(cand * params.horizon + t) * params.act_dim + a];
        }
        let next = env_step(s, act);
        ret = ret + alive * env_reward(s, act, next);
        if (env_terminated(act, next)) {
            alive = 0.0;
        }
        s = next;
    }
    track[n * 2u] = ret;
    track[n * 2u + 1u] = alive;
}
