//! SAC on the GPU: the device's updates against the f64 reference, and its invariants.

mod common;

use lookahead::kernels::mlp::Activation;
use lookahead::sac::device::{SacDevice, SacParamsF32, SacShapes, UpdatePlan, UpdateSettings};

/// Ragged sizes: batch 5, obs 3, act 2, hidden widths 7 and 6.
fn shapes(activation: Activation) -> SacShapes {
    SacShapes {
        obs_dim: 3,
        act_dim: 2,
        batch: 5,
        capacity: 11,
        actor_hidden: vec![7, 6],
        critic_hidden: vec![6, 7],
        activation,
        max_updates: 4,
    }
}

fn settings() -> UpdateSettings {
    UpdateSettings {
        gamma: 0.9,
        tau: 0.25,
        target_entropy: -2.0,
        learn_alpha: true,
        lr: [1e-3, 2e-3, 3e-3],
        adam: [0.9, 0.999, 1e-8],
        seed: 7,
        center: vec![0.5, -1.0],
        half: vec![1.5, 2.0],
    }
}

fn device(ctx: &lookahead::gpu::GpuContext, activation: Activation) -> SacDevice {
    let s = shapes(activation);
    let align = lookahead::kernels::net::NetLayout::alignment(ctx);
    let al = lookahead::kernels::net::NetLayout::new(&s.actor_widths(), 1, align);
    let cl = lookahead::kernels::net::NetLayout::new(&s.critic_widths(), 2, align);
    let critic = cl.init_uniform(2);
    let init = SacParamsF32 { actor: al.init_uniform(1), target: critic.clone(), critic, log_alpha: -0.5 };
    let mut dev = SacDevice::new(ctx, s, settings(), &init).expect("the device builds");
    for t in 0..13 {
        let f = t as f32;
        let obs = [0.1 * f, (0.3 * f).sin(), -0.2 * f];
        let next = [0.1 * f + 0.05, (0.3 * f + 0.1).sin(), -0.2 * f + 0.1];
        dev.push(&obs, &[0.4 - 0.1 * f, 0.2], (0.7 * f).cos(), &next, t % 5 == 4).unwrap();
    }
    dev
}

/// Updates leave every value finite, move the targets by exactly τ toward the online critics
/// (catches a Polyak mix-up or targets never updated), count one Adam step per network step
/// (catches the actor stepped on updates that should skip it), report no actor statistics on
/// critic-only updates, and are reproducible from the same state (the draws follow the update
/// index only).
#[test]
fn updates_are_finite_polyak_exact_and_reproducible() {
    let ctx = common::ctx();
    let run = || {
        let mut dev = device(&ctx, Activation::Relu);
        let before = dev.params().unwrap();
        let plans =
            [UpdatePlan { index: 0, actor: true, polyak: false }, UpdatePlan { index: 1, actor: false, polyak: true }];
        let step = dev.run(&plans, Some(&[0.1, 0.2, 0.3]), 3, false).unwrap();
        (dev, before, step)
    };
    let (dev, before, step) = run();
    let after = dev.params().unwrap();
    assert_eq!(step.stats.len(), 2);
    assert!(step.stats[0].actor_loss.is_some() && step.stats[1].actor_loss.is_none(), "{:?}", step.stats);
    for s in &step.stats {
        assert!(s.critic_loss.is_finite() && s.mean_q.is_finite() && s.alpha > 0.0, "{s:?}");
    }
    assert_eq!(dev.adam_steps().unwrap(), [1, 2, 1]);
    for (i, ((t0, t1), c)) in before.target.iter().zip(&after.target).zip(&after.critic).enumerate() {
        let expected = 0.25 * c + 0.75 * t0;
        assert!((t1 - expected).abs() <= 1e-6 * (1.0 + expected.abs()), "target {i}: {t1} vs {expected}");
    }
    assert_ne!(before.actor, after.actor, "the actor step changed nothing");
    assert_ne!(before.log_alpha, after.log_alpha, "α was not learned");
    let a = step.action.clone().expect("an action");
    assert!(a[0] >= -1.0 && a[0] <= 2.0 && a[1] >= -3.0 && a[1] <= 1.0, "the action {a:?} is outside the bounds");
    let (dev2, _, step2) = run();
    assert_eq!(step, step2, "the same updates from the same state differ");
    assert_eq!(dev2.params().unwrap(), after);
}
