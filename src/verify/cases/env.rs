//! `env`: each environment's WGSL reward and termination against its f64 twin over seeded
//! states (Cartpole's up to 1.25× its limits, so that episodes both end and go on).

use crate::env::reference::RefTask;
use crate::env::EnvKind;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels;
use crate::verify::compare::{compare, compare_exact, f32s, seeded, Comparison};
use crate::verify::{case, Case, Family, REWARD_TOL};

/// The environment case of `kind`; `quick` runs fewer states.
pub(in crate::verify) fn env_case(kind: EnvKind, quick: bool) -> Case {
    case(
        Family::Env,
        &format!("{}: WGSL reward and termination vs the f64 twin", kind.name()),
        Some(REWARD_TOL),
        move |c| case_env(c, kind, quick),
    )
}

fn case_env(ctx: &GpuContext, kind: EnvKind, quick: bool) -> Result<Comparison> {
    let task = kind.task();
    let rt = match kind {
        EnvKind::Cartpole => RefTask::Cartpole,
        EnvKind::Pendulum => RefTask::Pendulum,
    };
    let (d, na) = (task.obs_dim, task.act_dim);
    let n = if quick { 101 } else { 301 };
    // Cartpole's x and θ up to 1.25× their limits, so that terminations occur and do not.
    let scale: Vec<f64> =
        if kind == EnvKind::Cartpole { vec![3.0, 1.0, 0.26, 1.0] } else { vec![std::f64::consts::PI, 1.0, 8.0] };
    let states: Vec<f64> = seeded(n * d, 7, 1.0).iter().enumerate().map(|(i, v)| v * scale[i % d]).collect();
    let acts = seeded(n * na, 8, 2.5);
    let (mut before, mut act, mut next, mut rewards, mut ends) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let mut s = states[i * d..(i + 1) * d].to_vec();
        if kind == EnvKind::Pendulum {
            let th = s[0];
            s[0] = th.cos();
            s[1] = th.sin();
        }
        let s: Vec<f64> = s.iter().map(|v| *v as f32 as f64).collect();
        let a: Vec<f64> = acts[i * na..(i + 1) * na].iter().map(|v| *v as f32 as f64).collect();
        let s2: Vec<f64> = rt.step(&s, &a).iter().map(|v| *v as f32 as f64).collect();
        rewards.push(rt.reward(&s, &a, &s2));
        ends.push(rt.terminated(&a, &s2));
        before.extend(f32s(&s));
        act.extend(f32s(&a));
        next.extend(f32s(&s2));
    }
    let out = kernels::rollout::evaluate_env(ctx, &task.name, &task.wgsl, d, na, &before, &act, &next)?;
    let (gpu_r, gpu_t): (Vec<f32>, Vec<bool>) = out.into_iter().unzip();
    let mut c = compare("reward", &gpu_r, &rewards, REWARD_TOL);
    c.merge(compare_exact("terminated", &gpu_t, &ends));
    // The WGSL dynamics (analytic planning) against the twin's step.
    Ok(c)
}
