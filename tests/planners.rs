//! Every planner kind (CEM, random shooting, MPPI, iCEM) against its f64 reference on the same
//! random stream — two consecutive plans, so that what a plan inherits (the shifted mean, MPPI's
//! previous action, iCEM's elite archive) is compared too — with known dynamics and with a
//! learned ensemble under each propagation, at ragged sizes; and the kinds' own rules.

mod common;

use lookahead::env::reference::RefTask;
use lookahead::env::{EnvKind, Task};
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::planner::{Dynamics, MlpKernel, Planner, PlannerConfig, PlannerKind, Propagation};
use lookahead::verify::{self, kind_cfg};

fn f64v(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

fn ensemble(obs: usize, seed: u64) -> Ensemble {
    let spec = EnsembleSpec {
        n_members: 3,
        obs_dim: obs,
        act_dim: 1,
        hidden: vec![24, 17],
        probabilistic: true,
        learned_reward: false,
    };
    Ensemble::random(spec, seed).expect("valid spec")
}

/// Two plans on the GPU and in f64, the second warm-started from the first
/// (`verify::compare_two_plans`, the conformance suite's comparison).
fn compare_two_plans(task: Task, rt: RefTask, ens: Option<Ensemble>, cfg: PlannerConfig, obs: &[Vec<f32>]) {
    let ctx = common::ctx();
    let what = format!("{:?}/{:?}/{}", cfg.kind, cfg.propagation, if ens.is_some() { "ensemble" } else { "analytic" });
    let c = verify::compare_two_plans(&ctx, task, rt, ens, cfg, obs).expect("plans");
    assert!(c.passed, "{what}: {} (max abs {:.2e})", c.detail, c.max_abs);
    assert!(c.values > 0, "{what}: nothing compared");
}

#[test]
fn every_kind_matches_its_reference_with_known_dynamics() {
    let obs = vec![vec![0.6f32, -0.8, 0.3], vec![-1.0, 0.05, -2.0]];
    for kind in PlannerKind::ALL {
        let cfg = PlannerConfig { particles: 1, ..kind_cfg(kind, Propagation::Ts1) };
        compare_two_plans(EnvKind::Pendulum.task(), RefTask::Pendulum, None, cfg, &obs);
    }
    // Cartpole, from a state whose candidates terminate within the horizon.
    let obs = vec![vec![0.0f32, 0.0, 0.18, 1.0]];
    for kind in PlannerKind::ALL {
        let cfg = PlannerConfig { horizon: 12, particles: 1, ..kind_cfg(kind, Propagation::Ts1) };
        compare_two_plans(EnvKind::Cartpole.task(), RefTask::Cartpole, None, cfg, &obs);
    }
}

#[test]
fn every_kind_matches_its_reference_with_a_learned_ensemble_under_each_propagation() {
    let obs = vec![vec![0.6f32, -0.8, 0.3]];
    for (ki, kind) in PlannerKind::ALL.into_iter().enumerate() {
        for (pi, propagation) in
            [Propagation::Ts1, Propagation::Tsinf, Propagation::Expectation].into_iter().enumerate()
        {
            // Both GPU network kernels meet every propagation and every kind.
            let mlp_kernel = [MlpKernel::Tiled, MlpKernel::Fused][(ki + pi) % 2];
            let cfg = PlannerConfig { mlp_kernel, ..kind_cfg(kind, propagation) };
            compare_two_plans(EnvKind::Pendulum.task(), RefTask::Pendulum, Some(ensemble(3, 5)), cfg, &obs);
        }
    }
}

#[test]
fn icem_populations_decay_and_carry_elites_and_the_mean() {
    let cfg = PlannerConfig {
        kind: PlannerKind::Icem,
        population: 100,
        iterations: 4,
        elite_ratio: 0.1,
        ..PlannerConfig::default()
    };
    // ceil(100 / 1.25^i), at least 2 · 10 elites; 3 kept elites (0.3 · 10) except the mean last.
    let shapes: Vec<(usize, usize)> = (0..4).map(|i| cfg.iteration_shape(i, true)).map(|(s, e, _)| (s, e)).collect();
    assert_eq!(shapes, [(100, 3), (80, 3), (64, 3), (52, 1)]);
    assert_eq!(cfg.iteration_shape(0, false).1, 0, "no archive before the first plan");
    assert_eq!(cfg.candidates_per_plan(), 103 + 83 + 67 + 53);
    let floor = PlannerConfig { population: 30, population_decay: 4.0, ..cfg.clone() };
    assert_eq!(floor.iteration_shape(3, true).0, 6, "never below 2 × elites");
}

#[test]
fn random_shooting_returns_its_best_uniform_candidate() {
    let ctx = common::ctx();
    let task = EnvKind::Pendulum.task();
    let cfg = PlannerConfig {
        kind: PlannerKind::RandomShooting,
        horizon: 6,
        population: 64,
        ..PlannerConfig::pendulum_mpc()
    };
    assert_eq!(cfg.effective_iterations(), 1);
    let mut planner = Planner::new(&ctx, task.clone(), Dynamics::Analytic, cfg.clone()).expect("planner");
    let obs = [0.3f32, -0.95, 0.5];
    let plan = planner.plan(&obs).expect("plan");
    let last = planner.last_iteration().expect("readback");
    let best = last.candidate_returns.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(plan.best_return, best);
    assert_eq!(plan.predicted_return, best, "one elite: the best");
    // The plan is that candidate's sequence: its return, replayed in f64, is the best return.
    let ret =
        lookahead::planner::reference::analytic_returns_f64(RefTask::Pendulum, &f64v(&obs), &f64v(&plan.actions), 6, 1)
            [0];
    assert!((ret - best as f64).abs() < 1e-3 * best.abs().max(1.0) as f64, "{ret} vs {best}");
}

#[test]
fn keys_of_another_kind_are_refused_and_named() {
    let cfg = PlannerConfig { sigma: 0.3, noise_beta: 1.0, ..PlannerConfig::default() };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("planner.sigma") && e.contains("mppi"), "{e}");
    assert!(e.contains("planner.noise_beta") && e.contains("icem"), "{e}");
    let mut cfg = PlannerConfig::default();
    cfg.set("kind=mppi").expect("a kind");
    cfg.set("sigma=0.3").expect("its key");
    cfg.validate().expect("valid");
    assert!(cfg.set("kind=mppx").unwrap_err().to_string().contains("planner.kind"));
    let bad = PlannerConfig { kind: PlannerKind::Mppi, beta: 0.0, gamma: -1.0, ..PlannerConfig::default() };
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("planner.beta") && e.contains("planner.gamma"), "{e}");
}

/// Random shooting ignores `iterations`, `alpha` and `elite_ratio`, and a key set away from its
/// default for a kind that ignores it is an error naming it (docs/DESIGN.md); they were accepted.
/// A preset's own value (the demo's 3 iterations) is not the user's setting.
#[test]
fn random_shooting_refuses_the_keys_it_ignores_naming_them() {
    use lookahead::pets::{PetsConfig, Preset};
    let rs = PlannerConfig {
        kind: PlannerKind::RandomShooting,
        iterations: 3,
        alpha: 0.5,
        elite_ratio: 0.2,
        ..PlannerConfig::default()
    };
    let e = rs.validate().unwrap_err().to_string();
    for key in ["planner.iterations", "planner.alpha", "planner.elite_ratio"] {
        assert!(e.contains(key) && e.contains("random_shooting"), "{key}: {e}");
    }
    rs.with_kind(PlannerKind::RandomShooting).validate().expect("the ignored keys back at their defaults");
    PlannerConfig { kind: PlannerKind::Cem, ..rs.clone() }.validate().expect("CEM takes them");
    let kind = ["planner.kind=random_shooting".to_string()];
    let cfg = PetsConfig::resolve(EnvKind::Pendulum, Preset::Demo, None, &kind).expect("the demo preset");
    assert_eq!(cfg.planner.iterations, PlannerConfig::default().iterations);
    let file = "[planner]\nkind = \"random_shooting\"\niterations = 3\n";
    let e = PetsConfig::resolve(EnvKind::Pendulum, Preset::Demo, Some(file), &["planner.alpha=0.5".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("planner.iterations") && e.contains("planner.alpha"), "{e}");
}

/// Known-model targets (issue 10) at a fifth of the CEM reference's model steps per plan
/// (350 candidates per plan: MPPI 70 × 5, iCEM 100 decaying over 5 iterations): cartpole kept up
/// for 200 steps on every seed 0–9, and the pendulum swung up with a mean return above −200,
/// far from doing nothing on the same seeds (measured here, and required below −600).
#[test]
fn mppi_and_icem_balance_cartpole_and_swing_up_the_pendulum_on_ten_seeds() {
    let ctx = common::ctx();
    for kind in [PlannerKind::Mppi, PlannerKind::Icem] {
        let population = if kind == PlannerKind::Icem { 100 } else { 70 };
        for env in EnvKind::ALL {
            let horizon = if env == EnvKind::Pendulum { 30 } else { 15 };
            let cfg = PlannerConfig { kind, horizon, population, particles: 1, ..PlannerConfig::default() };
            assert!(cfg.candidates_per_plan() <= 350, "{kind:?}: {} candidates", cfg.candidates_per_plan());
            let returns: Vec<f64> = (0..10)
                .map(|seed| {
                    lookahead::mpc::run_episode(&ctx, env, cfg.clone(), seed, |_| {}).expect("episode").total_return
                })
                .collect();
            let mean = returns.iter().sum::<f64>() / 10.0;
            match env {
                EnvKind::Cartpole => assert!(returns.iter().all(|r| *r == 200.0), "{kind:?} cartpole: {returns:?}"),
                EnvKind::Pendulum => {
                    let nothing = (0..10).map(|seed| idle_return(env, seed)).sum::<f64>() / 10.0;
                    assert!(nothing < -600.0, "doing nothing scores {nothing}: the margin means little");
                    assert!(mean > -200.0, "{kind:?} pendulum: mean {mean} of {returns:?} (doing nothing: {nothing})");
                }
            }
        }
    }
}

/// The return of an episode with the action held at zero.
fn idle_return(env: EnvKind, seed: u64) -> f64 {
    let mut e = env.make();
    e.reset(seed);
    let mut total = 0.0;
    loop {
        let s = e.step(&[0.0]).expect("step");
        total += s.reward;
        if s.terminated || s.truncated {
            return total;
        }
    }
}

/// Trajectory sampling's member assignment (the reference that every GPU plan comparison
/// checks the shader against): TS∞ keeps a particle's member for the whole horizon, TS1 redraws
/// it, and at every step each member evaluates floor or ceil of particles / members.
#[test]
fn ts_infinity_keeps_members_ts1_redraws_them_and_loads_are_balanced() {
    use lookahead::kernels::rollout::reference::member_of;
    for (pk, e) in [(60u32, 7u32), (37, 5), (7, 7), (100, 3)] {
        let member = |j, t, prop| member_of(j, pk, e, 0, 4, 1, t, prop, 99);
        let mut redrawn = 0;
        for t in 0..6 {
            let mut load = vec![0u32; e as usize];
            for j in 0..pk {
                load[member(j, t, Propagation::Ts1) as usize] += 1;
                assert_eq!(
                    member(j, t, Propagation::Tsinf),
                    member(j, 0, Propagation::Tsinf),
                    "TS∞ changed particle {j}'s member"
                );
                if t > 0 && member(j, t, Propagation::Ts1) != member(j, t - 1, Propagation::Ts1) {
                    redrawn += 1;
                }
            }
            let (lo, hi) = (pk / e, pk.div_ceil(e));
            assert!(load.iter().all(|l| (lo..=hi).contains(l)), "{pk} particles on {e} members: loads {load:?}");
        }
        // With e members a redraw keeps the member with probability about 1/e.
        let expected = 5.0 * pk as f64 * (1.0 - 1.0 / e as f64);
        assert!(redrawn as f64 > 0.5 * expected, "TS1 redrew {redrawn} of about {expected:.0} times");
    }
}

/// The propagation modes are different algorithms: from the same state, stream and ensemble,
/// TS1, TS∞ and expectation score the candidates differently (a planner that ignored the setting
/// would score them alike). The plans themselves may coincide when the elites do.
#[test]
fn the_three_propagation_modes_score_candidates_differently() {
    let ctx = common::ctx();
    let plans: Vec<Vec<f32>> = [Propagation::Ts1, Propagation::Tsinf, Propagation::Expectation]
        .into_iter()
        .map(|propagation| {
            let cfg = PlannerConfig {
                horizon: 6,
                iterations: 2,
                population: 30,
                particles: 4,
                propagation,
                seed: 2,
                ..PlannerConfig::default()
            };
            let mut p =
                Planner::new(&ctx, EnvKind::Pendulum.task(), Dynamics::Ensemble(ensemble(3, 8)), cfg).expect("planner");
            p.plan(&[0.6, -0.8, 0.3]).expect("plan");
            p.last_iteration().expect("readback").candidate_returns
        })
        .collect();
    assert_ne!(plans[0], plans[1], "TS1 and TS∞ scored alike");
    assert_ne!(plans[0], plans[2], "TS1 and expectation scored alike");
    assert_ne!(plans[1], plans[2], "TS∞ and expectation scored alike");
}
