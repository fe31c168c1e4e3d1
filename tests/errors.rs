//! Bad input gets a clear, typed error, never a panic, and the planner keeps working.

mod common;

use common::ctx;
use lookahead::env::{EnvKind, Task};
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::planner::{Dynamics, Planner, PlannerConfig};
use lookahead::Error;

fn small() -> PlannerConfig {
    PlannerConfig { horizon: 5, iterations: 2, population: 20, particles: 2, ..PlannerConfig::default() }
}

#[test]
fn observation_of_wrong_length_or_with_nan_is_rejected_and_the_planner_still_works() {
    let ctx = ctx();
    let mut planner = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Analytic, small()).expect("planner");
    let e = planner.plan(&[0.0, 0.0, 0.0]).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)) && e.to_string().contains("expects 4"), "{e}");
    let e = planner.plan(&[0.0, f32::NAN, 0.0, 0.0]).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let e = planner.plan_batch::<Vec<f32>>(&[]).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    let plan = planner.plan(&[0.0, 0.0, 0.01, 0.0]).expect("a good observation still plans");
    assert_eq!(plan.actions.len(), 5);
}

#[test]
fn impossible_settings_are_all_reported_before_any_gpu_work() {
    let cfg = PlannerConfig { horizon: 0, elite_ratio: 1.5, alpha: 1.0, ..PlannerConfig::default() };
    let e = cfg.validate().unwrap_err();
    let text = e.to_string();
    for key in ["planner.horizon", "planner.elite_ratio", "planner.alpha"] {
        assert!(text.contains(key), "{key} missing from: {text}");
    }
    assert!(text.contains("elites > population"), "{text}");
    // A submission wait the clock cannot hold (it panicked converting to a Duration), or one no
    // submission could meet, is refused with the value written short.
    for (t, shown) in [(1e300, "1e300"), (1e-300, "1e-300"), (f64::NAN, "NaN")] {
        let e = PlannerConfig { gpu_timeout_s: t, ..PlannerConfig::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("planner.gpu_timeout_s") && e.contains(shown), "{e}");
    }
    PlannerConfig { gpu_timeout_s: 86_400.0, ..PlannerConfig::default() }.validate().expect("a day is a valid wait");
    let ctx = ctx();
    let e = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Analytic, cfg).err().expect("rejected");
    assert!(matches!(e, Error::InvalidConfigs(_)), "{e}");
}

#[test]
fn unknown_config_keys_are_named() {
    let e = PlannerConfig::from_toml("population = 10\npopulaton = 3\n").unwrap_err();
    assert!(e.to_string().contains("populaton"), "{e}");
    let mut cfg = PlannerConfig::default();
    let e = cfg.set("horizn=3").unwrap_err();
    assert!(e.to_string().contains("planner.horizn"), "{e}");
    cfg.set("propagation=tsinf").expect("bare words are strings");
    cfg.set("population = 500").expect("spaces are fine");
    assert_eq!(cfg.population, 500);
    let e = cfg.set("propagation=ts2").unwrap_err();
    assert!(e.to_string().contains("planner.propagation"), "{e}");
    cfg.set("model_step=split").expect("a model step kind");
    assert_eq!(cfg.model_step, lookahead::planner::ModelStep::Split);
    let e = cfg.set("model_step=both").unwrap_err();
    assert!(e.to_string().contains("planner.model_step"), "{e}");
}

#[test]
fn plans_too_large_for_the_device_are_refused_with_the_limit_named() {
    let ctx = ctx();
    let cfg = PlannerConfig { population: 2_000_000, particles: 1000, ..small() };
    let spec = EnsembleSpec {
        n_members: 2,
        obs_dim: 4,
        act_dim: 1,
        hidden: vec![8],
        probabilistic: true,
        learned_reward: false,
    };
    let ens = Ensemble::random(spec, 0).expect("ensemble");
    // Sizes are checked when the planner is built (it reserves one plan), not in a control loop.
    let e = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Ensemble(ens.clone()), cfg)
        .err()
        .expect("refused at construction");
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
    assert!(e.to_string().contains("lower population"), "{e}");
    // A batch too large for the device is refused by reserve, and the planner keeps planning.
    let cfg = PlannerConfig { population: 2_000, particles: 10, ..small() };
    let mut planner =
        Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Ensemble(ens), cfg).expect("one plan fits");
    let first = planner.plan(&[0.0, 0.0, 0.01, 0.0]).expect("plans");
    let e = planner.reserve(100_000).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
    let again = planner.plan(&[0.0, 0.0, 0.01, 0.0]).expect("still plans after the refused reserve");
    assert_eq!(again.actions.len(), first.actions.len());
}

#[test]
fn mismatched_model_and_task_are_rejected() {
    let ctx = ctx();
    let spec = EnsembleSpec {
        n_members: 2,
        obs_dim: 3,
        act_dim: 1,
        hidden: vec![8],
        probabilistic: true,
        learned_reward: false,
    };
    let ens = Ensemble::random(spec, 0).expect("ensemble");
    let e = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Ensemble(ens), small()).err().expect("rejected");
    assert!(e.to_string().contains("obs 4"), "{e}");
    let mut task = Task::quadratic(2, 1);
    task.has_dynamics = false;
    let e = Planner::new(&ctx, task, Dynamics::Analytic, small()).err().expect("rejected");
    assert!(e.to_string().contains("env_step"), "{e}");
    let e = Planner::new(&ctx, Task::quadratic(40, 1), Dynamics::Analytic, small()).err().expect("rejected");
    assert!(e.to_string().contains("task.obs_dim"), "{e}");
}

#[test]
fn broken_task_wgsl_is_a_shader_error_not_a_panic() {
    let ctx = ctx();
    let mut task = Task::quadratic(2, 1);
    task.wgsl = "fn env_reward(this is not wgsl".into();
    let e = Planner::new(&ctx, task, Dynamics::Analytic, small()).err().expect("rejected");
    assert!(matches!(e, Error::ShaderCompile { .. }), "{e}");
}

/// A custom task's WGSL is compiled inside a family's module; an error in it gave the line of
/// the combined module (`wgsl:232:5` for the task's line 5). It is reported in the task's own
/// lines, under the task's name, whichever family holds it; an error in the crate's code (a
/// function the task does not define) says so.
#[test]
fn an_error_in_a_custom_tasks_wgsl_is_reported_at_its_own_line() {
    let ctx = ctx();
    let mut lines: Vec<String> = Task::quadratic(2, 1).wgsl.lines().map(String::from).collect();
    lines.insert(6, "    let broken = ;".into());
    let task = Task { name: "mytask".into(), wgsl: lines.join("\n"), ..Task::quadratic(2, 1) };
    let ens = Ensemble::random(EnsembleSpec { hidden: vec![8], ..EnsembleSpec::pets(2, 1) }, 0).unwrap();
    for dynamics in [Dynamics::Analytic, Dynamics::Ensemble(ens)] {
        let e = Planner::new(&ctx, task.clone(), dynamics, small()).err().expect("rejected").to_string();
        assert!(e.contains("mytask:7:5") && e.contains("7 │     let broken = ;"), "{e}");
        assert!(!e.contains("wgsl:"), "{e}");
    }
    let missing =
        Task { wgsl: task.wgsl.replace("fn env_reward", "fn env_rewrd").replace("let broken = ;", ""), ..task };
    let e = Planner::new(&ctx, missing, Dynamics::Analytic, small()).err().expect("rejected").to_string();
    assert!(e.contains("env_reward") && e.contains("the crate's code around task mytask's functions"), "{e}");
}

#[test]
fn planner_bounds_wider_than_the_tasks_are_refused() {
    let ctx = ctx();
    let cfg = PlannerConfig { action_lower: Some(vec![-100.0]), action_upper: Some(vec![100.0]), ..small() };
    let e = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Analytic, cfg).err().expect("refused").to_string();
    assert!(e.contains("outside the task's bounds"), "{e}");
    // Narrower bounds are fine, and every planned action stays within them.
    let cfg = PlannerConfig { action_lower: Some(vec![-0.5]), action_upper: Some(vec![0.25]), ..small() };
    let mut p = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Analytic, cfg).expect("narrower bounds");
    let plan = p.plan(&[0.0, 0.0, 0.1, 0.0]).unwrap();
    assert!(plan.actions.iter().all(|a| (-0.5..=0.25).contains(a)), "{:?}", plan.actions);
}

/// The tensor-core kernel is asked for by name only; where the adapter lacks cooperative
/// matrices (lavapipe, most CPUs and older GPUs) that is a configuration error naming the key
/// and what is missing, and `auto` never picks it.
#[test]
fn coop16_without_cooperative_matrices_is_a_config_error_and_auto_never_picks_it() {
    use lookahead::planner::MlpKernel;
    let ctx = ctx();
    let ens = Ensemble::random(EnsembleSpec::pets(4, 1), 1).expect("ensemble");
    let cfg = PlannerConfig { mlp_kernel: MlpKernel::Coop16, ..small() };
    let auto = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Ensemble(ens.clone()), small()).expect("auto");
    assert_ne!(auto.network_kernel(), Some("coop16"));
    match Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Ensemble(ens), cfg) {
        Ok(p) => {
            assert!(ctx.has_coop16(), "coop16 built on an adapter without cooperative matrices");
            assert_eq!(p.network_kernel(), Some("coop16"));
        }
        Err(e) => {
            assert!(!ctx.has_coop16(), "{e}");
            let text = e.to_string();
            assert!(matches!(e, Error::InvalidConfig { .. }), "{text}");
            assert!(text.contains("planner.mlp_kernel") && text.contains("cooperative matrices"), "{text}");
        }
    }
    assert_eq!(MlpKernel::from_name("coop16"), Some(MlpKernel::Coop16));
}
