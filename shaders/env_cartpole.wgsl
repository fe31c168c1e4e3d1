// env_cartpole.wgsl — continuous cartpole (docs/DESIGN.md): obs [x, ẋ, θ, θ̇], action a ∈ [−1, 1],
// force 10·a, explicit Euler with τ = 0.02. Twin of env::cartpole (f64).
//   env_step       : the true dynamics (used by analytic planning)
//   env_terminated : |x| > 2.4 or |θ| > 12°
//   env_reward     : 1 while the next state is not terminal, else 0, so that a planner sees the
//                    cost of falling (as mbrl-lib's cartpole reward function does)
// CPU reference: env::reference::RefTask (the cartpole twin, built on env::Cartpole).

fn env_step(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>) -> array<f32, MAX_OBS> {
    let gravity = 9.8;
    let masscart = 1.0;
    let masspole = 0.1;
    let total_mass = masspole + masscart;
    let length = 0.5;
    let polemass_length = masspole * length;
    let tau = 0.02;
    let force = 10.0 * clamp(act[0], -1.0, 1.0);
    let x = s[0];
    let x_dot = s[1];
    let theta = s[2];
    let theta_dot = s[3];
    let costheta = cos(theta);
    let sintheta = sin(theta);
    let temp = (force + polemass_length * theta_dot * theta_dot * sintheta) / total_mass;
    let thetaacc = (gravity * sintheta - costheta * temp)
        / (length * (4.0 / 3.0 - masspole * costheta * costheta / total_mass));
    let xacc = temp - polemass_length * thetaacc * costheta / total_mass;
    var next: array<f32, MAX_OBS>;
    next[0] = x + tau * x_dot;
    next[1] = x_dot + tau * xacc;
    next[2] = theta + tau * theta_dot;
    next[3] = theta_dot + tau * thetaacc;
    return next;
}

fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    let theta_limit = 12.0 * 2.0 * 3.141592653589793 / 360.0;
    let ok = abs(next[0]) <= 2.4 && abs(next[2]) <= theta_limit;
    return !ok;
}

fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    if (env_terminated(act, next)) {
        return 0.0;
    }
    return 1.0;
}
