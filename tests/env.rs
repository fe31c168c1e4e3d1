//! Environments against hand-computed values, and the planners' f64 twins against the native
//! environments.

use lookahead::env::reference::RefTask;
use lookahead::env::{Cartpole, Env, EnvKind, Pendulum};

#[test]
fn cartpole_step_matches_hand_computed_euler_update() {
    let mut env = Cartpole::new();
    env.set_state([0.0; 4]);
    let s = env.step(&[1.0]).unwrap();
    // force 10: temp = 10/1.1, θ̈ = −temp / (0.5·(4/3 − 0.1/1.1)), ẍ = temp − 0.05·θ̈/1.1
    let temp = 10.0 / 1.1;
    let thetaacc = -temp / (0.5 * (4.0 / 3.0 - 0.1 / 1.1));
    let xacc = temp - 0.05 * thetaacc / 1.1;
    assert_eq!(s.obs, vec![0.0, 0.02 * xacc, 0.0, 0.02 * thetaacc]);
    assert!((s.obs[1] - 0.195122).abs() < 1e-6 && (s.obs[3] + 0.292683).abs() < 1e-6);
    assert_eq!((s.reward, s.terminated, s.truncated), (1.0, false, false));
    // Explicit Euler: x moves with the old velocity.
    let s2 = env.step(&[0.0]).unwrap();
    assert!((s2.obs[0] - 0.02 * s.obs[1]).abs() < 1e-15);
}

#[test]
fn cartpole_terminates_past_the_limits_and_truncates_at_200() {
    let mut env = Cartpole::new();
    env.set_state([2.39, 1.0, 0.0, 0.0]);
    let s = env.step(&[1.0]).unwrap();
    assert!(s.terminated && s.reward == 1.0, "terminating step still pays 1");
    let mut env = Cartpole::new();
    let mut obs = env.reset(0);
    let mut n = 0;
    loop {
        // A linear state feedback keeps it up for 200 steps.
        let a = (0.1 * obs[0] + 0.5 * obs[1] + 10.0 * obs[2] + 2.0 * obs[3]).clamp(-1.0, 1.0);
        let s = env.step(&[a]).unwrap();
        obs = s.obs.clone();
        n += 1;
        if s.terminated || s.truncated {
            assert!(s.truncated && n == 200, "stopped at {n}");
            break;
        }
    }
}

#[test]
fn pendulum_step_matches_pendulum_v1() {
    let mut env = Pendulum::new();
    env.set_state(0.0, 0.0);
    let s = env.step(&[2.0]).unwrap();
    // θ̇ = (15·sin 0 + 3·2)·0.05 = 0.3, θ = 0.015, reward on the old state: −0.001·4
    assert!((s.obs[2] - 0.3).abs() < 1e-12);
    assert!((s.obs[0] - 0.015f64.cos()).abs() < 1e-12 && (s.obs[1] - 0.015f64.sin()).abs() < 1e-12);
    assert!((s.reward + 0.004).abs() < 1e-12);
    // Torque is clipped to ±2, velocity to ±8, and the reward uses the wrapped angle.
    env.set_state(3.0 * std::f64::consts::PI, 7.9);
    let s = env.step(&[5.0]).unwrap();
    assert_eq!(s.obs[2], 8.0);
    let th = std::f64::consts::PI; // 3π wraps to ±π
    assert!((s.reward + (th * th + 0.1 * 7.9 * 7.9 + 0.004)).abs() < 1e-9, "{}", s.reward);
}

#[test]
fn planning_twins_agree_with_the_native_environments() {
    for kind in EnvKind::ALL {
        let mut env = kind.make();
        let rt = match kind {
            EnvKind::Cartpole => RefTask::Cartpole,
            EnvKind::Pendulum => RefTask::Pendulum,
        };
        let mut obs = env.reset(4);
        for i in 0..50 {
            let a = vec![((i * 37) % 17) as f64 / 8.0 - 1.0];
            let next = rt.step(&obs, &a);
            let s = env.step(&a).unwrap();
            for (x, y) in next.iter().zip(&s.obs) {
                assert!((x - y).abs() < 1e-9, "{kind:?} step {i}: {next:?} vs {:?}", s.obs);
            }
            if kind == EnvKind::Pendulum {
                assert!((rt.reward(&obs, &a, &next) - s.reward).abs() < 1e-9);
            }
            obs = s.obs;
            if s.terminated {
                break;
            }
        }
    }
}

mod common;

#[test]
fn evaluate_env_refuses_non_finite_and_ragged_transitions() {
    // The comparison of every built-in task's WGSL reward and termination with its f64 twin is
    // the conformance case `env` (`lookahead verify`, tests/verify.rs); here the bad input.
    let ctx = common::ctx();
    let task = EnvKind::Cartpole.task();
    let err = lookahead::kernels::rollout::evaluate_env(&ctx, "c", &task.wgsl, 4, 1, &[0.0; 4], &[f32::NAN], &[0.0; 4]);
    assert!(matches!(err, Err(lookahead::Error::InvalidInput(_))), "{err:?}");
    let err = lookahead::kernels::rollout::evaluate_env(&ctx, "c", &task.wgsl, 4, 1, &[0.0; 5], &[0.0], &[0.0; 4]);
    assert!(matches!(err, Err(lookahead::Error::InvalidInput(_))), "{err:?}");
}
