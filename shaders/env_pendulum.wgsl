// env_pendulum.wgsl — pendulum swing-up with Pendulum-v1 semantics (docs/DESIGN.md): g 10, m 1, l 1,
// dt 0.05, torque u ∈ [−2, 2], obs [cos θ, sin θ, θ̇]. Twin of env::pendulum (f64).
//   env_step       : θ̇ ← clip(θ̇ + (3g/(2l)·sin θ + 3/(m l²)·u)·dt, ±8), then θ ← θ + θ̇·dt
//   env_reward     : −(norm(θ)² + 0.1 θ̇² + 0.001 u²) on the state before the step
//   env_terminated : never
// CPU reference: env::reference::RefTask (the pendulum twin, built on env::Pendulum).

fn env_step(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>) -> array<f32, MAX_OBS> {
    let g = 10.0;
    let m = 1.0;
    let l = 1.0;
    let dt = 0.05;
    let u = clamp(act[0], -2.0, 2.0);
    let th = atan2(s[1], s[0]);
    let thdot = s[2];
    let new_thdot = clamp(thdot + (3.0 * g / (2.0 * l) * sin(th) + 3.0 / (m * l * l) * u) * dt, -8.0, 8.0);
    let new_th = th + new_thdot * dt;
    var next: array<f32, MAX_OBS>;
    next[0] = cos(new_th);
    next[1] = sin(new_th);
    next[2] = new_thdot;
    return next;
}

fn env_terminated(act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> bool {
    return false;
}

fn env_reward(s: array<f32, MAX_OBS>, act: array<f32, MAX_ACT>, next: array<f32, MAX_OBS>) -> f32 {
    let th = atan2(s[1], s[0]);
    let u = clamp(act[0], -2.0, 2.0);
    return -(th * th + 0.1 * s[2] * s[2] + 0.001 * u * u);
}
