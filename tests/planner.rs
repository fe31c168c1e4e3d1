//! Behavioural planner tests: closed-loop MPC with the true dynamics, CEM on a quadratic,
//! bounds, batching and reset.

mod common;

use common::{assert_close, ctx, Tol};
use lookahead::env::reference::RefTask;
use lookahead::env::{EnvKind, Task};
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::mpc::run_episode;
use lookahead::planner::reference::{analytic_returns_f64, plan_f64};
use lookahead::planner::{CemConfig, Dynamics, Planner, Propagation, Sampling};

#[test]
fn cartpole_true_dynamics_keeps_the_pole_up_for_200_steps_on_10_seeds() {
    let ctx = ctx();
    for seed in 0..10 {
        let ep = run_episode(&ctx, EnvKind::Cartpole, CemConfig::pets_reference(), seed, |_| {}).expect("episode");
        assert_eq!((ep.steps, ep.total_return, ep.terminated), (200, 200.0, false), "seed {seed}");
    }
}

#[test]
fn pendulum_true_dynamics_swings_up_with_mean_return_above_minus_250_on_10_seeds() {
    let ctx = ctx();
    let returns: Vec<f64> = (0..10)
        .map(|seed| {
            run_episode(&ctx, EnvKind::Pendulum, CemConfig::pendulum_mpc(), seed, |_| {}).expect("episode").total_return
        })
        .collect();
    let mean = returns.iter().sum::<f64>() / 10.0;
    assert!(mean > -250.0, "mean return {mean:.1} over seeds, returns {returns:?}");
}

#[test]
fn cem_on_a_quadratic_beats_doing_nothing_and_pushes_towards_the_origin() {
    let ctx = ctx();
    let task = Task::quadratic(2, 2);
    let cfg = CemConfig { horizon: 10, iterations: 6, population: 200, seed: 1, ..CemConfig::default() };
    let mut planner = Planner::new(&ctx, task, Dynamics::Analytic, cfg.clone()).expect("planner");
    let obs = [0.8f32, -0.5];
    let plan = planner.plan(&obs).expect("plan");
    assert!(plan.action[0] < -0.3 && plan.action[1] > 0.3, "first action {:?} should push towards 0", plan.action);
    let obs64 = [0.8, -0.5];
    let zero = analytic_returns_f64(RefTask::Quadratic, &obs64, &vec![0.0; cfg.horizon * 2], cfg.horizon, 2)[0];
    let seq: Vec<f64> = plan.actions.iter().map(|v| *v as f64).collect();
    let achieved = analytic_returns_f64(RefTask::Quadratic, &obs64, &seq, cfg.horizon, 2)[0];
    assert!(achieved > zero + 1.0, "plan return {achieved:.3} vs doing nothing {zero:.3}");
    assert!(
        (plan.predicted_return as f64 - achieved).abs() < 0.5,
        "predicted {} vs achieved {achieved}",
        plan.predicted_return
    );
}

fn ensemble(obs: usize, act: usize, seed: u64) -> Ensemble {
    let spec = EnsembleSpec {
        n_members: 5,
        obs_dim: obs,
        act_dim: act,
        hidden: vec![32, 32],
        probabilistic: true,
        learned_reward: false,
    };
    Ensemble::random(spec, seed).expect("ensemble")
}

#[test]
fn actions_stay_within_configured_bounds() {
    let ctx = ctx();
    for sampling in [Sampling::TruncatedNormal, Sampling::ClippedNormal] {
        let cfg = CemConfig {
            horizon: 5,
            iterations: 3,
            population: 50,
            particles: 2,
            sampling,
            action_lower: Some(vec![-0.3, 0.1]),
            action_upper: Some(vec![0.2, 0.9]),
            ..CemConfig::default()
        };
        let mut planner =
            Planner::new(&ctx, Task::quadratic(3, 2), Dynamics::Ensemble(ensemble(3, 2, 4)), cfg).expect("planner");
        for i in 0..3 {
            let plan = planner.plan(&[0.5, -0.2 * i as f32, 1.0]).expect("plan");
            for (k, a) in plan.actions.iter().enumerate() {
                let (lo, hi) = if k % 2 == 0 { (-0.3, 0.2) } else { (0.1, 0.9) };
                assert!(*a >= lo && *a <= hi, "{sampling:?}: action {k} = {a} outside [{lo}, {hi}]");
            }
        }
    }
}

#[test]
fn plan_batch_gives_each_state_the_plan_it_gets_alone() {
    let ctx = ctx();
    let cfg = CemConfig {
        horizon: 6,
        iterations: 2,
        population: 45,
        particles: 4,
        propagation: Propagation::Ts1,
        seed: 9,
        ..CemConfig::default()
    };
    let ens = ensemble(3, 1, 11);
    let s0 = vec![0.9f32, 0.1, -0.3];
    let s1 = vec![-0.4f32, 0.9, 2.0];
    let mut alone =
        Planner::new(&ctx, EnvKind::Pendulum.task(), Dynamics::Ensemble(ens.clone()), cfg.clone()).expect("planner");
    let mut batched = Planner::new(&ctx, EnvKind::Pendulum.task(), Dynamics::Ensemble(ens), cfg).expect("planner");
    let single = alone.plan(&s0).expect("plan");
    let both = batched.plan_batch(&[s0.clone(), s1.clone()]).expect("batch");
    assert_eq!(both.len(), 2);
    let single64: Vec<f64> = single.actions.iter().map(|v| *v as f64).collect();
    assert_close("batched plan 0", &both[0].actions, &single64, Tol { rel: 1e-6, abs: 1e-6 });
    assert!(
        (both[0].predicted_return - single.predicted_return).abs() <= 1e-4 * single.predicted_return.abs().max(1.0)
    );
    assert_ne!(both[0].actions, both[1].actions, "different states get different plans");
}

#[test]
fn reset_forgets_the_warm_start() {
    let ctx = ctx();
    let task = EnvKind::Pendulum.task();
    let cfg = CemConfig { horizon: 8, iterations: 2, population: 30, seed: 2, ..CemConfig::default() };
    let mut planner = Planner::new(&ctx, task.clone(), Dynamics::Analytic, cfg.clone()).expect("planner");
    let obs = [0.0f32, 1.0, 0.0];
    planner.plan(&obs).expect("plan 0");
    planner.reset().expect("reset");
    let after = planner.plan(&obs).expect("plan 1");
    let cpu = plan_f64(
        RefTask::Pendulum,
        None,
        &cfg,
        &task.action_lower,
        &task.action_upper,
        &[vec![0.0, 1.0, 0.0]],
        &[0.0; 8],
        1,
    );
    assert_close("plan after reset", &after.actions, &cpu.mean, Tol { rel: 2e-3, abs: 2e-4 });
}
