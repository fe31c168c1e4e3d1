// env_quadratic.wgsl — a synthetic task of any size (obs_dim ≤ MAX_OBS, act_dim ≤ MAX_ACT) used
// by benchmarks and planner tests. Twin of env::quadratic (f64).
//   env_step       : next_d = s_d + 0.1·a_(d mod act_dim)    (a single integrator per state)
//   env_reward     : −(Σ next_d² + 0.01·Σ a²)
//   env_terminated : never
// CPU reference: env::reference::RefTask (the quadratic twin, built on env::Quadratic).

fn env_step(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>) -> array<f32, MAX_OBS> {
    var next: array<f32, MAX_OBS>;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        next[d] = s[d] + 0.1 * act[d % params.act_dim];
    }
    return next;
}

fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    return false;
}

fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    var cost = 0.0;
    for (var d = 0u; d < params.obs_dim; d = d + 1u) {
        cost = cost + next[d] * next[d];
    }
    for (var a = 0u; a < params.act_dim; a = a + 1u) {
        cost = cost + 0.01 * act[a] * act[a];
    }
    return -cost;
}
