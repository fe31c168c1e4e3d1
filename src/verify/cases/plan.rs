//! `plan.*`: whole plans on the adapter against the f64 reference from the same start: the
//! analytic dynamics of each environment, learned ensembles under each propagation and network
//! kernel, and two consecutive plans of each planner kind.

use crate::env::reference::RefTask;
use crate::env::{EnvKind, Task};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::cem::reference::shift_f64;
use crate::model::{Ensemble, EnsembleSpec};
use crate::planner::reference::{plan_f64_after, Prior};
use crate::planner::{Dynamics, MlpKernel, ModelStep, Planner, PlannerConfig, PlannerKind, Propagation};
use crate::verify::compare::{compare, compare_exact, Comparison};
use crate::verify::{case, Case, Family, PLAN_TOL};

/// The analytic-dynamics plan case of `kind`.
pub(in crate::verify) fn analytic_case(kind: EnvKind) -> Case {
    case(Family::PlanAnalytic, &format!("{}: CEM with the WGSL dynamics", kind.name()), Some(PLAN_TOL), move |c| {
        case_plan_analytic(c, kind)
    })
}

/// A plan through a learned ensemble with `kernel` and `step` under `propagation`, named `name`.
pub(in crate::verify) fn ensemble_case(
    name: &str,
    propagation: Propagation,
    kernel: MlpKernel,
    step: ModelStep,
) -> Case {
    case(Family::PlanEnsemble, name, Some(PLAN_TOL), move |c| case_plan(c, propagation, kernel, step))
}

/// The learned-ensemble plan cases: each propagation with each network kernel (in quick, the
/// one `auto` picks) and model step, then a deterministic ensemble with a learned reward.
pub(in crate::verify) fn ensemble_cases(quick: bool) -> Vec<Case> {
    let mut v = Vec::new();
    let kernels: &[MlpKernel] =
        if quick { &[MlpKernel::Auto] } else { &[MlpKernel::Tiled, MlpKernel::Rows, MlpKernel::Fused] };
    for propagation in [Propagation::Ts1, Propagation::Tsinf, Propagation::Expectation] {
        for &k in kernels {
            let prop = format!("{propagation:?}").to_lowercase();
            // The fused network kernel runs each model step in one dispatch where it can (TS1,
            // TS∞), and as the network's dispatch then `propagate` with model_step = split.
            let steps: &[ModelStep] = if k == MlpKernel::Fused && propagation != Propagation::Expectation {
                &[ModelStep::Fused, ModelStep::Split]
            } else {
                &[ModelStep::Auto]
            };
            for &step in steps {
                let name = match step {
                    ModelStep::Auto => format!("{prop}, network kernel {}", k.name()),
                    _ => format!("{prop}, network kernel {}, model step {}", k.name(), step.name()),
                };
                v.push(ensemble_case(&name, propagation, k, step));
            }
        }
    }
    v.push(case(Family::PlanEnsemble, "deterministic ensemble with a learned reward", Some(PLAN_TOL), |c| {
        case_plan_learned_reward(c, MlpKernel::Auto, ModelStep::Auto)
    }));
    if !quick {
        let name = "deterministic ensemble with a learned reward, network kernel fused, model step fused";
        v.push(case(Family::PlanEnsemble, name, Some(PLAN_TOL), |c| {
            case_plan_learned_reward(c, MlpKernel::Fused, ModelStep::Fused)
        }));
    }
    v
}

/// Two consecutive plans of each planner kind, with known dynamics and (in full) an ensemble.
pub(in crate::verify) fn kind_cases(quick: bool) -> Vec<Case> {
    let mut v = Vec::new();
    for kind in PlannerKind::ALL {
        for ensemble in [false, true] {
            if quick && ensemble {
                continue;
            }
            let name =
                format!("{}, two plans, {}", kind.name(), if ensemble { "ensemble (TS1)" } else { "known dynamics" });
            v.push(case(Family::PlanKinds, &name, Some(PLAN_TOL), move |c| case_kind(c, kind, ensemble)));
        }
    }
    v
}

/// A small seeded ensemble (three members, hidden 24 and 17) with spread biases, input
/// normalisation and log-variance bounds.
pub(super) fn small_ensemble(
    obs: usize,
    act: usize,
    probabilistic: bool,
    learned_reward: bool,
    seed: u64,
) -> Result<Ensemble> {
    let spec =
        EnsembleSpec { n_members: 3, obs_dim: obs, act_dim: act, hidden: vec![24, 17], probabilistic, learned_reward };
    let mut e = Ensemble::random(spec, seed)?;
    for l in &mut e.layers {
        for (i, b) in l.bias.iter_mut().enumerate() {
            *b = 0.05 * ((i % 7) as f32 - 3.0);
        }
    }
    let ind = obs + act;
    e.input_mean = (0..ind).map(|i| 0.1 * i as f32).collect();
    e.input_std = (0..ind).map(|i| 0.5 + 0.25 * i as f32).collect();
    e.max_logvar = vec![-1.0; e.spec.model_out()];
    e.min_logvar = vec![-6.0; e.spec.model_out()];
    Ok(e)
}

/// One plan on the adapter and with the f64 reference from the same start: the last iteration's
/// elites (exactly), its candidate returns, the plan's mean and statistics (within PLAN_TOL).
pub fn compare_plan(
    ctx: &GpuContext,
    task: Task,
    rt: RefTask,
    ens: Option<Ensemble>,
    cfg: PlannerConfig,
    obs: &[Vec<f32>],
) -> Result<Comparison> {
    compare_plans(ctx, task, rt, ens, cfg, obs, 1)
}

/// A small CEM configuration (horizon 4, two iterations, 37 candidates of 3 particles).
pub(super) fn small_cem(propagation: Propagation, kernel: MlpKernel) -> PlannerConfig {
    PlannerConfig {
        horizon: 4,
        iterations: 2,
        population: 37,
        particles: 3,
        elite_ratio: 0.2,
        alpha: 0.1,
        propagation,
        seed: 42,
        mlp_kernel: kernel,
        ..PlannerConfig::default()
    }
}

fn case_plan(ctx: &GpuContext, propagation: Propagation, kernel: MlpKernel, step: ModelStep) -> Result<Comparison> {
    let ens = small_ensemble(3, 1, true, false, 7)?;
    let obs = vec![vec![0.6f32, -0.8, 0.3], vec![-1.0, 0.05, -2.0]];
    let cfg = PlannerConfig { model_step: step, ..small_cem(propagation, kernel) };
    compare_plan(ctx, EnvKind::Pendulum.task(), RefTask::Pendulum, Some(ens), cfg, &obs)
}

fn case_plan_learned_reward(ctx: &GpuContext, kernel: MlpKernel, step: ModelStep) -> Result<Comparison> {
    let ens = small_ensemble(5, 2, false, true, 10)?;
    let obs = vec![vec![0.1f32, -0.2, 0.3, 0.0, 0.5]];
    let cfg = PlannerConfig { model_step: step, ..small_cem(Propagation::Ts1, kernel) };
    compare_plan(ctx, Task::quadratic(5, 2), RefTask::Quadratic, Some(ens), cfg, &obs)
}

fn case_plan_analytic(ctx: &GpuContext, kind: EnvKind) -> Result<Comparison> {
    let cfg = PlannerConfig {
        horizon: 7,
        iterations: 3,
        population: 65,
        elite_ratio: 0.1,
        seed: 5,
        ..PlannerConfig::default()
    };
    // Cartpole from states near its limits, so that candidates terminate at different steps.
    let (rt, obs) = match kind {
        EnvKind::Cartpole => (RefTask::Cartpole, vec![vec![0.3f32, 0.5, 0.15, 0.6], vec![-2.1, -0.4, -0.1, -0.3]]),
        EnvKind::Pendulum => (RefTask::Pendulum, vec![vec![-0.9f32, 0.43, 0.7]]),
    };
    compare_plan(ctx, kind.task(), rt, None, cfg, &obs)
}

/// The settings of each planner kind for the kind cases (MPPI and iCEM off their defaults so
/// that every term of their updates matters), with `propagation`.
pub fn kind_cfg(kind: PlannerKind, propagation: Propagation) -> PlannerConfig {
    let mut cfg = PlannerConfig {
        horizon: 5,
        iterations: 3,
        population: 29,
        particles: 3,
        elite_ratio: 0.2,
        propagation,
        seed: 11,
        ..PlannerConfig::default()
    }
    .with_kind(kind);
    if kind == PlannerKind::Mppi {
        cfg.sigma = 0.6;
        cfg.gamma = 2.0;
        cfg.beta = 0.7;
    }
    if kind == PlannerKind::Icem {
        cfg.population_decay = 1.5;
        cfg.noise_beta = 1.5;
        cfg.keep_elite_fraction = 0.5;
    }
    cfg
}

/// Two consecutive plans of `kind` (the second warm-started from the first, with MPPI's
/// previous action and iCEM's elite archive) against the f64 reference.
fn case_kind(ctx: &GpuContext, kind: PlannerKind, ensemble: bool) -> Result<Comparison> {
    let ens = if ensemble {
        Some(Ensemble::random(
            EnsembleSpec {
                n_members: 3,
                obs_dim: 3,
                act_dim: 1,
                hidden: vec![24, 17],
                probabilistic: true,
                learned_reward: false,
            },
            5,
        )?)
    } else {
        None
    };
    let cfg = kind_cfg(kind, Propagation::Ts1);
    let cfg = if ensemble { cfg } else { PlannerConfig { particles: 1, ..cfg } };
    let obs = vec![vec![0.6f32, -0.8, 0.3], vec![-1.0, 0.05, -2.0]];
    compare_two_plans(ctx, EnvKind::Pendulum.task(), RefTask::Pendulum, ens, cfg, &obs)
}

/// Two consecutive plans on the adapter against the f64 reference, the second warm-started from
/// the first (with MPPI's previous action and iCEM's elite archive).
pub fn compare_two_plans(
    ctx: &GpuContext,
    task: Task,
    rt: RefTask,
    ens: Option<Ensemble>,
    cfg: PlannerConfig,
    obs: &[Vec<f32>],
) -> Result<Comparison> {
    compare_plans(ctx, task, rt, ens, cfg, obs, 2)
}

/// `calls` consecutive plans on the adapter against the f64 reference (`plan_f64_after`), each
/// after the first warm-started from the one before: each plan's last-iteration elites exactly,
/// candidate returns, mean and statistics within [`PLAN_TOL`], and every planned action within
/// the task's bounds.
fn compare_plans(
    ctx: &GpuContext,
    task: Task,
    rt: RefTask,
    ens: Option<Ensemble>,
    cfg: PlannerConfig,
    obs: &[Vec<f32>],
    calls: u32,
) -> Result<Comparison> {
    let dynamics = match &ens {
        Some(e) => Dynamics::Ensemble(e.clone()),
        None => Dynamics::Analytic,
    };
    // The planner's bounds: its own where the configuration narrows the task's.
    let lower = cfg.action_lower.clone().unwrap_or_else(|| task.action_lower.clone());
    let upper = cfg.action_upper.clone().unwrap_or_else(|| task.action_upper.clone());
    let mut planner = Planner::new(ctx, task, dynamics, cfg.clone())?;
    let obs64: Vec<Vec<f64>> = obs.iter().map(|o| o.iter().map(|v| *v as f64).collect()).collect();
    let na = lower.len();
    let mut c = Comparison::start();
    let mut mean: Vec<f64> =
        (0..obs.len() * cfg.horizon).flat_map(|_| lower.iter().zip(&upper).map(|(l, u)| 0.5 * (l + u))).collect();
    let mut prior = Prior::default();
    for call in 0..calls {
        let plans = planner.plan_batch(obs)?;
        let last = planner.last_iteration()?;
        let cpu = plan_f64_after(rt, ens.as_ref(), &cfg, &lower, &upper, &obs64, &mean, call, &prior);
        let it = cfg.effective_iterations() - 1;
        c.merge(compare_exact(&format!("plan {call}: elites of the last iteration"), &last.elites, &cpu.elites[it]));
        c.merge(compare(
            &format!("plan {call}: candidate returns"),
            &last.candidate_returns,
            &cpu.returns[it],
            PLAN_TOL,
        ));
        let gpu_mean: Vec<f32> = plans.iter().flat_map(|p| p.actions.clone()).collect();
        c.merge(compare(&format!("plan {call}: plan"), &gpu_mean, &cpu.mean, PLAN_TOL));
        let outside = gpu_mean
            .iter()
            .enumerate()
            .filter(|(i, a)| !((lower[i % na] as f32)..=(upper[i % na] as f32)).contains(*a))
            .count();
        c.merge(compare_exact(&format!("plan {call}: actions outside the bounds"), &[outside], &[0]));
        let gpu_stats: Vec<f32> = plans.iter().flat_map(|p| [p.predicted_return, p.best_return]).collect();
        let cpu_stats: Vec<f64> = cpu.stats.iter().flat_map(|(a, b)| [*a, *b]).collect();
        c.merge(compare(&format!("plan {call}: statistics"), &gpu_stats, &cpu_stats, PLAN_TOL));
        // The reference follows the device's plan into the next one.
        let returned: Vec<f64> = gpu_mean.iter().map(|v| *v as f64).collect();
        mean = shift_f64(&returned, cfg.horizon, &lower, &upper);
        prior = Prior {
            past: Some(returned.chunks(cfg.horizon * na).flat_map(|s| s[..na].to_vec()).collect()),
            archive: cpu.archive.clone(),
        };
    }
    Ok(c)
}
