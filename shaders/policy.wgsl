// policy.wgsl — the squashed Gaussian policy's pieces shared by sac.wgsl (the updates, the next
// action) and mbpo.wgsl (the policy's step of a model rollout): the actor's raw output
// (mean | raw log σ per action) gives log σ within [LOG_STD_MIN, LOG_STD_MAX] through a smooth
// bound, and an action is c + h·tanh(mean + σ·ε) within the bounds' centre c and half width h.
// CPU reference: sac::reference (`bounded_log_std`, `actor_sample`).

const LOG_STD_MIN: f32 = -5.0;
const LOG_STD_MAX: f32 = 2.0;

// tanh without the overflow of exp for large |x|.
fn stable_tanh(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// log σ from the actor's raw output, within [LOG_STD_MIN, LOG_STD_MAX] (a smooth bound).
fn log_std(raw: f32) -> f32 {
    return LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (stable_tanh(raw) + 1.0);
}
