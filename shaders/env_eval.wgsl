// env_eval.wgsl — a task's env_reward and env_terminated on given transitions, one invocation
// each: checks a task's WGSL against its environment (gymnasium's reward functions, the native
// twins) outside a rollout.
//
// Bindings: the rollout layout (rollout.wgsl), read as
//   group 0, 0 params  : PlanParams (population = n transitions, obs_dim, act_dim)
//   group 1, 0 obs     : [n, obs_dim]  states before the steps
//   group 1, 1 state   : [n, obs_dim]  states after the steps
//   group 1, 2 track   : [n, 2]        written: (reward, 1 if terminated else 0)
//   group 1, 3 actions : [n, act_dim]  actions
// The declarations are rollout_layout.wgsl's (put before this part); the others are unused here.
// CPU reference: env::reference::RefTask (built-in tasks); gymnasium's own rewards for the
// Python package's tasks (python/tests).


@compute @workgroup_size(WG_SIZE)
fn evaluate_env(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    if (n >= params.population) {
        return;
    }
    var before: array<f32, MAX_OBS>;
    var next: array<f32, MAX_OBS>;
    var act: array<f32, MAX_ACT>;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        before[d] = obs[n * params.obs_dim + d];
        next[d] = state[n * params.obs_dim + d];
    }
    for (var a = 0u; a < params.act_dim; a = a + 1u) {
        act[a] = actions[n * params.act_dim + a];
    }
    track[n * 2u] = env_reward(before, act, next);
    track[n * 2u + 1u] = select(0.0, 1.0, env_terminated(act, next));
}
