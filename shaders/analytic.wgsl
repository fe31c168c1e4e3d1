// analytic.wgsl — rollout with known dynamics: the environment's own env_step (env_*.wgsl),
// the whole horizon in one dispatch (MPC with a known model).
//
// Bindings: the rollout layout (rollout.wgsl); this family reads obs and actions and writes track.
//   group 0, 0 params  : PlanParams (uniform, dynamic offset)
//   group 1, 0 obs     : [n_batch, obs_dim]
//   group 1, 2 track   : [N, 2] (return, alive) per particle n = (b · population + c) · particles + k
//   group 1, 3 actions : [n_batch·population, horizon, act_dim]
// The declarations are rollout_layout.wgsl's (put before this part); the others are unused here.
// CPU reference: planner::reference::analytic_returns_f64 (task functions: env::reference::RefTask).


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
