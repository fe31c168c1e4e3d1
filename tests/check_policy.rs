//! The runtime-check policy (gpu::ShaderChecks) changes speed, never results: plans (learned
//! ensemble and known dynamics) and training on the same random stream are bit-identical with
//! every naga check compiled in and with the policy's trusted kernels. An out-of-range index
//! that the checked build clamps would read other memory in the trusted one and show up here.

mod common;

use common::ctx_with;

use lookahead::env::EnvKind;
use lookahead::gpu::{GpuContext, ShaderChecks};
use lookahead::model::{Ensemble, EnsembleSpec};
use lookahead::planner::{Dynamics, MlpKernel, Planner, PlannerConfig, Propagation};
use lookahead::train::{ReplayBuffer, TrainConfig, Trainer};

fn plans(ctx: &GpuContext) -> Vec<Vec<f32>> {
    // Ragged sizes (population 37, 3 particles, hidden 33) so tiles and workgroups are partial.
    let spec = EnsembleSpec {
        n_members: 3,
        obs_dim: 3,
        act_dim: 1,
        hidden: vec![33, 20],
        probabilistic: true,
        learned_reward: false,
    };
    let ens = Ensemble::random(spec, 4).expect("ensemble");
    let obs = [0.6f32, 0.8, -0.3];
    let mut out = Vec::new();
    for (propagation, kernel) in [
        (Propagation::Ts1, MlpKernel::Tiled),
        (Propagation::Tsinf, MlpKernel::Rows),
        (Propagation::Expectation, MlpKernel::Tiled),
        (Propagation::Ts1, MlpKernel::Fused),
        // The one-dispatch model step, TS∞: every step of an iteration in one dispatch.
        (Propagation::Tsinf, MlpKernel::Fused),
    ] {
        let cfg = PlannerConfig {
            horizon: 5,
            iterations: 2,
            population: 37,
            particles: 3,
            propagation,
            mlp_kernel: kernel,
            seed: 8,
            ..PlannerConfig::default()
        };
        let mut p = Planner::new(ctx, EnvKind::Pendulum.task(), Dynamics::Ensemble(ens.clone()), cfg).expect("planner");
        for _ in 0..2 {
            let plan = p.plan(&obs).expect("plan");
            out.push([plan.actions, vec![plan.predicted_return, plan.best_return]].concat());
        }
    }
    let cfg = PlannerConfig { horizon: 12, population: 45, ..PlannerConfig::pendulum_mpc() };
    let mut p = Planner::new(ctx, EnvKind::Pendulum.task(), Dynamics::Analytic, cfg).expect("planner");
    out.push(p.plan(&obs).expect("plan").actions);
    out
}

fn training(ctx: &GpuContext) -> (Vec<f64>, Vec<f32>) {
    let spec = EnsembleSpec {
        n_members: 3,
        obs_dim: 4,
        act_dim: 1,
        hidden: vec![24, 17],
        probabilistic: true,
        learned_reward: false,
    };
    let mut env = EnvKind::Cartpole.make();
    let mut buffer = ReplayBuffer::new(4, 1);
    let mut obs = env.reset(0);
    for i in 0..300 {
        let a = [((i * 37 % 17) as f64 / 8.0) - 1.0];
        let s = env.step(&a).expect("step");
        let f = |v: &[f64]| -> Vec<f32> { v.iter().map(|x| *x as f32).collect() };
        buffer.push(&f(&obs), &f(&a), &f(&s.obs), s.reward as f32, s.terminated).expect("push");
        obs = if s.terminated || s.truncated { env.reset(i as u64) } else { s.obs };
    }
    let cfg = TrainConfig { epochs: 3, batch_size: 29, num_elites: 2, seed: 5, ..TrainConfig::default() };
    let mut t = Trainer::new(ctx, Ensemble::random(spec, 2).expect("ensemble"), cfg).expect("trainer");
    let report = t.train(&buffer).expect("train");
    let flat = t.layout().pack(&t.ensemble().expect("read back"));
    (report.train_loss, flat)
}

#[test]
fn plans_and_training_are_identical_with_full_checks_and_with_the_policy() {
    let full = ctx_with(ShaderChecks::Full);
    let policy = ctx_with(ShaderChecks::Policy);
    assert_eq!(plans(&full), plans(&policy), "plans differ between check settings");
    let (loss_full, params_full) = training(&full);
    let (loss_policy, params_policy) = training(&policy);
    assert_eq!(loss_full, loss_policy, "training losses differ between check settings");
    assert_eq!(params_full, params_policy, "trained parameters differ between check settings");
}

#[test]
fn only_the_crates_own_wgsl_is_compiled_without_checks() {
    let ctx = ctx_with(ShaderChecks::Policy);
    use lookahead::kernels::runtime_checks_off;
    // A family without a task slot, and one holding a built-in task's WGSL: the crate's own.
    assert!(runtime_checks_off(&ctx, None));
    let task = EnvKind::Cartpole.task();
    assert!(runtime_checks_off(&ctx, Some(&task.wgsl)));
    // A user's change to a task's WGSL keeps every check.
    let custom = format!("{}\n// a user's change\n", task.wgsl);
    assert!(!runtime_checks_off(&ctx, Some(&custom)));
    let full = ctx_with(ShaderChecks::Full);
    assert!(!runtime_checks_off(&full, None));
}

/// A family compiles only its declared entry points, and takes a task's WGSL exactly where its
/// declaration has a task slot.
#[test]
fn a_family_compiles_only_what_its_declaration_says() {
    use lookahead::kernels::{Family, PlanLayouts, TaskWgsl, WG_SIZE_OVERRIDE};
    let ctx = ctx_with(ShaderChecks::Policy);
    let layouts = PlanLayouts::new(&ctx).expect("layouts");
    let groups = [&layouts.params, &layouts.cem];
    let err = Family::Cem.pipeline(&ctx, None, "no_such_entry", &groups, WG_SIZE_OVERRIDE).expect_err("refused");
    assert!(err.to_string().contains("no_such_entry is not a declared entry point"), "{err}");
    let task = EnvKind::Cartpole.task();
    let with_task = Some(TaskWgsl { name: "cartpole", wgsl: &task.wgsl });
    let err = Family::Cem.pipeline(&ctx, with_task, "sample_candidates", &groups, WG_SIZE_OVERRIDE).err();
    assert!(err.expect("refused").to_string().contains("has no task slot"));
    let rollout = [&layouts.params, &layouts.rollout];
    let err = Family::Rollout.pipeline(&ctx, None, "propagate", &rollout, WG_SIZE_OVERRIDE).err();
    assert!(err.expect("refused").to_string().contains("needs a task's WGSL"));
    assert!(Family::Rollout.pipeline(&ctx, with_task, "propagate", &rollout, WG_SIZE_OVERRIDE).is_ok());
}
