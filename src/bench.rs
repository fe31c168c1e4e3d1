//! The benchmarks behind `lookahead bench plan`, `bench train`, `bench sac` and `bench mbpo`:
//! fixed, documented configurations timed end to end (upload, one submission, readback),
//! reported as a table and as JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use serde::Serialize;

use crate::env::{EnvKind, Task};
use crate::error::{Error, Result};
use crate::gpu::{AdapterSummary, GpuContext, Profiler, RecordStats, ShaderChecks};
use crate::kernels::mlp_fused::FusedShape;
use crate::mbpo::{MbpoConfig, MbpoPreset};
use crate::model::{Ensemble, EnsembleSpec};
use crate::planner::{Dynamics, MlpKernel, Planner, PlannerConfig, PlannerKind, Propagation};

/// One benchmark configuration.
#[derive(Debug, Clone, Serialize)]
pub struct PlanCase {
    /// Name in reports.
    pub name: String,
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// Planner settings.
    #[serde(skip)]
    pub cem: PlannerConfig,
    /// Model architecture.
    #[serde(skip)]
    pub model: EnsembleSpec,
    /// Timed plans.
    pub repeats: usize,
}

/// Timing of one case.
#[derive(Debug, Clone, Serialize)]
pub struct PlanResult {
    /// Case name.
    pub name: String,
    /// Planner kind.
    pub kind: String,
    /// Candidates per iteration.
    pub population: usize,
    /// Particles per candidate.
    pub particles: usize,
    /// Horizon.
    pub horizon: usize,
    /// CEM iterations.
    pub iterations: usize,
    /// Median plan latency.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Model steps (rows through the ensemble) per second at the median.
    pub model_steps_per_s: f64,
    /// Linear-layer GFLOP/s (2 × multiply-adds) at the median.
    pub gflops: f64,
    /// Timed plans.
    pub repeats: usize,
    /// The network kernel the planner chose (`tiled`, `rows` or `fused`; empty for analytic dynamics).
    pub mlp_kernel: String,
    /// How a model step was dispatched (`fused`: one dispatch, `split`: the network, then
    /// `propagate`; empty for analytic dynamics).
    pub model_step: String,
    /// Compute dispatches per plan (one submission).
    pub dispatches_per_plan: u64,
    /// With `--profile`: GPU milliseconds per kernel per plan (mean of the profiled plans),
    /// measured with timestamp queries around each dispatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<BTreeMap<String, f64>>,
    /// With `--fused-layouts`: the case through every layout of the fused kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layouts: Option<Vec<LayoutResult>>,
}

/// The JSON report of a benchmark: `{"adapter": {...}, "version", "results": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Report<T> {
    /// The adapter measured.
    pub adapter: AdapterJson,
    /// lookahead version.
    pub version: String,
    /// The runtime-check setting the shaders were compiled with (`policy` or `full`).
    pub shader_checks: ShaderChecks,
    /// The adapter has timestamp queries (`--profile` works).
    pub timestamps: bool,
    /// One entry per case.
    pub results: Vec<T>,
}

impl<T: Serialize> Report<T> {
    /// A report of `results` measured on `ctx`'s adapter.
    pub fn new(ctx: &GpuContext, results: Vec<T>) -> Self {
        Self {
            adapter: ctx.adapter().into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            shader_checks: ctx.shader_checks(),
            timestamps: Profiler::new(ctx).is_some(),
            results,
        }
    }

    /// Writes the report as pretty JSON, atomically.
    pub fn write(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("reports serialise");
        crate::util::write_atomic(path, text.as_bytes())
    }
}

/// Adapter identity in reports.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterJson {
    /// Adapter name.
    pub name: String,
    /// Backend.
    pub backend: String,
    /// Driver.
    pub driver: String,
}

impl From<&AdapterSummary> for AdapterJson {
    fn from(a: &AdapterSummary) -> Self {
        Self { name: a.name.clone(), backend: a.backend.clone(), driver: a.driver.clone() }
    }
}

fn case(name: &str, obs: usize, act: usize, cem: PlannerConfig, repeats: usize) -> PlanCase {
    PlanCase { name: name.into(), obs_dim: obs, act_dim: act, model: EnsembleSpec::pets(obs, act), cem, repeats }
}

/// The full suite: the PETS cartpole reference plan (7 × 4×200 ensemble, population 350,
/// 20 particles, horizon 15, 5 iterations, TS1), its TS∞ variant, a 5-member ensemble, a
/// population sweep, population 2000 × horizon 30 and HalfCheetah-sized dimensions (obs 18,
/// act 6, horizon 30).
pub fn full_suite() -> Vec<PlanCase> {
    let r = PlannerConfig::pets_reference();
    let mut v = vec![
        case("pets_cartpole_ts1", 4, 1, r.clone(), 30),
        case("pets_cartpole_tsinf", 4, 1, PlannerConfig { propagation: Propagation::Tsinf, ..r.clone() }, 30),
        PlanCase {
            model: EnsembleSpec { n_members: 5, ..EnsembleSpec::pets(4, 1) },
            ..case("pets_cartpole_5_members", 4, 1, r.clone(), 30)
        },
    ];
    for pop in [100, 350, 1000, 5000] {
        v.push(case(
            &format!("population_{pop}"),
            4,
            1,
            PlannerConfig { population: pop, ..r.clone() },
            if pop >= 5000 { 10 } else { 20 },
        ));
    }
    v.push(case("population_2000_h30", 4, 1, PlannerConfig { population: 2000, horizon: 30, ..r.clone() }, 10));
    v.extend(kind_cases(&r, 30));
    v.push(case("halfcheetah_dims_h30", 18, 6, PlannerConfig { horizon: 30, ..r }, 10));
    v
}

/// One case per planner kind other than CEM at the settings of `base`, each at its default
/// keys: random shooting with the whole candidate budget of `base` (population × iterations) in
/// its one iteration, MPPI and iCEM at `base`'s population and iterations.
pub fn kind_cases(base: &PlannerConfig, repeats: usize) -> Vec<PlanCase> {
    let budget = base.population * base.iterations;
    [PlannerKind::RandomShooting, PlannerKind::Mppi, PlannerKind::Icem]
        .into_iter()
        .map(|kind| {
            let population = if kind == PlannerKind::RandomShooting { budget } else { base.population };
            let name = format!("{}kind_{}", if base.population < 100 { "quick_" } else { "" }, kind.name());
            case(&name, 4, 1, PlannerConfig { population, ..base.with_kind(kind) }, repeats)
        })
        .collect()
}

/// A reduced suite that finishes within minutes on lavapipe: the reference network and
/// horizon with population 50 and 4 particles, 2 iterations, and each planner kind.
pub fn quick_suite() -> Vec<PlanCase> {
    let small = PlannerConfig { population: 50, particles: 4, iterations: 2, ..PlannerConfig::pets_reference() };
    vec![
        case("quick_cartpole_ts1", 4, 1, small.clone(), 3),
        case("quick_cartpole_tsinf", 4, 1, PlannerConfig { propagation: Propagation::Tsinf, ..small.clone() }, 3),
        case("quick_halfcheetah_dims", 18, 6, PlannerConfig { horizon: 10, ..small.clone() }, 2),
    ]
    .into_iter()
    .chain(kind_cases(&small, 2))
    .collect()
}

/// Plans profiled per case with `--profile` (their per-kernel times are averaged).
const PROFILED_PLANS: usize = 3;

/// The planner of case `c` with planner settings `cem`: the cartpole task for cartpole
/// dimensions, else a quadratic task of the case's dimensions; the case's ensemble with seeded
/// random weights.
fn case_planner(ctx: &GpuContext, c: &PlanCase, cem: PlannerConfig) -> Result<Planner> {
    let task =
        if (c.obs_dim, c.act_dim) == (4, 1) { EnvKind::Cartpole.task() } else { Task::quadratic(c.obs_dim, c.act_dim) };
    let ens = Ensemble::random(c.model.clone(), 1)?;
    Planner::new(ctx, task, Dynamics::Ensemble(ens), cem)
}

/// The `i`-th state a case plans from.
fn case_obs(c: &PlanCase, i: usize) -> Vec<f32> {
    (0..c.obs_dim).map(|d| 0.01 * ((i * 7 + d) % 11) as f32 - 0.05).collect()
}

/// One layout of the fused kernel timed on one case ([`sweep_layouts`]).
#[derive(Debug, Clone, Serialize)]
pub struct LayoutResult {
    /// Rows per workgroup.
    pub rows: u32,
    /// Output columns per invocation.
    pub cols: u32,
    /// Groups of invocations sharing a workgroup's rows.
    pub split: u32,
    /// Invocations per workgroup.
    pub invocations: u32,
    /// Median plan latency.
    pub p50_ms: f64,
    /// Largest difference of the first plan's actions and predicted return from those of the
    /// layout the planner picks itself (every layout sums in the same order: 0 expected).
    pub max_abs_diff: f64,
    /// Why the planner refused the layout on this case (the time and difference are then NaN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Times case `c` through the fused kernel with every layout it can take on this adapter
/// ([`FusedShape::candidates`]): a warm-up plan, then `repeats` plans each.
pub fn sweep_layouts(ctx: &GpuContext, c: &PlanCase, repeats: usize) -> Result<Vec<LayoutResult>> {
    let dims: Vec<usize> = c.model.widths();
    let fused = PlannerConfig { mlp_kernel: MlpKernel::Fused, ..c.cem.clone() };
    let values = |p: &crate::planner::Plan| -> Vec<f64> {
        p.actions.iter().chain([&p.predicted_return]).map(|v| *v as f64).collect()
    };
    let reference = values(&case_planner(ctx, c, fused.clone())?.plan(&case_obs(c, 0))?);
    let mut out = Vec::new();
    for shape in FusedShape::candidates(&dims, ctx.limits()) {
        let timed = |shape: FusedShape| -> Result<(f64, f64)> {
            let mut planner = case_planner(ctx, c, PlannerConfig { fused_layout: Some(shape), ..fused.clone() })?;
            if planner.fused_layout() != Some(shape) {
                return Err(Error::InvalidInput(format!("the planner runs {:?}", planner.fused_layout())));
            }
            let first = values(&planner.plan(&case_obs(c, 0))?);
            let max_abs_diff = first.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let mut ms = Vec::with_capacity(repeats);
            for i in 0..repeats {
                let t0 = Instant::now();
                planner.plan(&case_obs(c, i + 1))?;
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            Ok((crate::util::percentile(&ms, 0.5).unwrap_or(f64::NAN), max_abs_diff))
        };
        // A layout this case cannot take (e.g. too many workgroups for a large batch) is
        // recorded with the reason, and the sweep goes on.
        let (p50_ms, max_abs_diff, refused) = match timed(shape) {
            Ok((p50, diff)) => (p50, diff, None),
            Err(e) => (f64::NAN, f64::NAN, Some(e.to_string())),
        };
        out.push(LayoutResult {
            rows: shape.rows(),
            cols: shape.cols,
            split: shape.split,
            invocations: shape.wg,
            p50_ms,
            max_abs_diff,
            refused,
        });
    }
    Ok(out)
}

/// Times one case: one warm-up plan, then `repeats` plans from varying states; with `profile`
/// (and timestamp queries on the adapter) then [`PROFILED_PLANS`] plans with every dispatch timed.
pub fn run_case(ctx: &GpuContext, c: &PlanCase, profile: bool) -> Result<PlanResult> {
    let macs = c.model.macs_per_step();
    let mut planner = case_planner(ctx, c, c.cem.clone())?;
    let obs = |i: usize| case_obs(c, i);
    planner.plan(&obs(0))?;
    let mut ms = Vec::with_capacity(c.repeats);
    for i in 0..c.repeats {
        let t0 = Instant::now();
        planner.plan(&obs(i + 1))?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let pct = |q: f64| crate::util::percentile(&ms, q).unwrap_or(f64::NAN);
    let p50 = pct(0.5);
    let steps = planner.model_steps_per_plan() as f64;
    let dispatches_per_plan = planner.last_dispatches();
    let profile = match (profile, Profiler::new(ctx)) {
        (true, Some(profiler)) => {
            let mut total = RecordStats::default();
            for i in 0..PROFILED_PLANS {
                total.add(&planner.plan_profiled(&obs(c.repeats + 1 + i), &profiler)?.1);
            }
            Some(total.gpu_ms.into_iter().map(|(k, v)| (k, v / PROFILED_PLANS as f64)).collect())
        }
        _ => None,
    };
    Ok(PlanResult {
        name: c.name.clone(),
        kind: c.cem.kind.name().to_string(),
        population: c.cem.population,
        particles: c.cem.particles,
        horizon: c.cem.horizon,
        iterations: c.cem.effective_iterations(),
        p50_ms: p50,
        p90_ms: pct(0.9),
        p99_ms: pct(0.99),
        model_steps_per_s: steps / (p50 / 1e3),
        gflops: 2.0 * macs as f64 * steps / (p50 / 1e3) / 1e9,
        repeats: c.repeats,
        dispatches_per_plan,
        mlp_kernel: planner.network_kernel().unwrap_or("").to_string(),
        model_step: planner.model_step().unwrap_or("").to_string(),
        profile,
        layouts: None,
    })
}

/// One training benchmark configuration.
#[derive(Debug, Clone)]
pub struct TrainCase {
    /// Name in reports.
    pub name: String,
    /// Model architecture.
    pub model: EnsembleSpec,
    /// Transitions in the buffer (one epoch visits each once per member).
    pub transitions: usize,
    /// Rows per member per minibatch.
    pub batch_size: usize,
}

/// Timing of one training case.
#[derive(Debug, Clone, Serialize)]
pub struct TrainResult {
    /// Case name.
    pub name: String,
    /// Transitions per epoch.
    pub transitions: usize,
    /// Ensemble members.
    pub members: usize,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Rows per member per minibatch.
    pub batch_size: usize,
    /// Minibatch steps per epoch.
    pub steps: usize,
    /// Wall time of one epoch (the faster of two; scoring excluded).
    pub seconds_per_epoch: f64,
    /// Transitions per second.
    pub transitions_per_s: f64,
    /// Compute dispatches of the timed `train` call (2 epochs, each scored, and the scoring
    /// before the first).
    pub dispatches_per_call: u64,
    /// The kernels the network's passes ran on (`fused` or `tiled`, `train.mlp_kernel`).
    pub mlp_kernel: String,
    /// With `--fused-layouts`: the case through each row-block layout of the fused kernels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layouts: Option<Vec<TrainLayoutResult>>,
    /// With `--profile`: GPU milliseconds per kernel of a `train` call of one epoch (its two
    /// scoring passes included), measured with timestamp queries around each dispatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<BTreeMap<String, f64>>,
}

/// One epoch of the PETS reference model (7 × 4×200, batch 256) on 10k and 100k transitions.
pub fn train_full_suite() -> Vec<TrainCase> {
    [10_000, 100_000]
        .into_iter()
        .map(|n| TrainCase {
            name: format!("pets_reference_{}k", n / 1000),
            model: EnsembleSpec::pets(4, 1),
            transitions: n,
            batch_size: 256,
        })
        .collect()
}

/// A reduced set for lavapipe: the reference model on 2k transitions, a 5 × 2×64 model on 10k.
pub fn train_quick_suite() -> Vec<TrainCase> {
    vec![
        TrainCase {
            name: "pets_reference_2k".into(),
            model: EnsembleSpec::pets(4, 1),
            transitions: 2000,
            batch_size: 256,
        },
        TrainCase {
            name: "small_5x2x64_10k".into(),
            model: EnsembleSpec { n_members: 5, hidden: vec![64, 64], ..EnsembleSpec::pets(4, 1) },
            transitions: 10_000,
            batch_size: 256,
        },
    ]
}

/// Random-action cartpole transitions (restarting after each episode).
pub fn cartpole_transitions(n: usize, seed: u64) -> Result<crate::train::ReplayBuffer> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut env = EnvKind::Cartpole.make();
    let mut buffer = crate::train::ReplayBuffer::new(4, 1);
    let mut obs = env.reset(seed);
    while buffer.len() < n {
        let a: f64 = rng.random_range(-1.0..1.0);
        let s = env.step(&[a])?;
        let o: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
        let next: Vec<f32> = s.obs.iter().map(|v| *v as f32).collect();
        buffer.push(&o, &[a as f32], &next, s.reward as f32, s.terminated)?;
        obs = if s.terminated || s.truncated { env.reset(rng.random()) } else { s.obs };
    }
    Ok(buffer)
}

/// One row-block layout of the fused training kernels timed on one case
/// ([`sweep_train_layouts`]).
#[derive(Debug, Clone, Serialize)]
pub struct TrainLayoutResult {
    /// Rows per workgroup.
    pub rows: u32,
    /// Groups of invocations sharing a workgroup's rows.
    pub split: u32,
    /// Wall time of one epoch (the faster of two; scoring excluded).
    pub seconds_per_epoch: f64,
    /// Largest difference of the trained parameters from those of the rule's layout (every
    /// layout sums in the same order: 0 expected).
    pub max_abs_diff: f64,
    /// Why the trainer refused the layout (the time and difference are then NaN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The trainer settings of a timed case: two epochs, no early stopping, the case's batch.
fn case_train_config(c: &TrainCase) -> crate::train::TrainConfig {
    crate::train::TrainConfig { epochs: 2, patience: 0, batch_size: c.batch_size, num_elites: 1, ..Default::default() }
}

/// Row blocks of `bench train --fused-layouts`: rows per workgroup × row groups.
pub const TRAIN_LAYOUTS: [(u32, u32); 7] = [(8, 1), (8, 2), (16, 1), (16, 2), (32, 1), (32, 2), (48, 2)];

/// Trains case `c` for two epochs through the fused kernels with each of [`TRAIN_LAYOUTS`],
/// and with the rule's layout for the trained weights they must all reach.
pub fn sweep_train_layouts(ctx: &GpuContext, c: &TrainCase) -> Result<Vec<TrainLayoutResult>> {
    let buffer = cartpole_transitions(c.transitions, 7)?;
    let base = crate::train::TrainConfig { mlp_kernel: crate::train::TrainKernel::Fused, ..case_train_config(c) };
    let train = |cfg: crate::train::TrainConfig| -> Result<(f64, Vec<f32>)> {
        let mut trainer = crate::train::Trainer::new(ctx, Ensemble::random(c.model.clone(), 3)?, cfg.clone())?;
        if let Some(fb) = cfg.fused_blocks {
            let used = trainer.fused_layout().map(|s| (s.rows(), s.split));
            if used != Some((fb.rows, fb.split)) {
                return Err(Error::InvalidInput(format!("the trainer runs {used:?}")));
            }
        }
        let report = trainer.train(&buffer)?;
        let secs = report.epoch_seconds.iter().copied().fold(f64::INFINITY, f64::min);
        let params: Vec<f32> =
            trainer.ensemble()?.layers.iter().flat_map(|l| l.weight.iter().chain(&l.bias)).copied().collect();
        Ok((secs, params))
    };
    let (_, reference) = train(base.clone())?;
    let mut out = Vec::new();
    for (rows, split) in TRAIN_LAYOUTS {
        let cfg =
            crate::train::TrainConfig { fused_blocks: Some(crate::train::FusedBlocks { rows, split }), ..base.clone() };
        let (seconds_per_epoch, max_abs_diff, refused) = match train(cfg) {
            Ok((secs, params)) => {
                let diff = params.iter().zip(&reference).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
                (secs, diff, None)
            }
            Err(e) => (f64::NAN, f64::NAN, Some(e.to_string())),
        };
        out.push(TrainLayoutResult { rows, split, seconds_per_epoch, max_abs_diff, refused });
    }
    Ok(out)
}

/// Times one training case: two epochs, the faster reported; with `profile` (and timestamp
/// queries) then one more epoch with every dispatch timed.
pub fn run_train_case(ctx: &GpuContext, c: &TrainCase, profile: bool) -> Result<TrainResult> {
    let buffer = cartpole_transitions(c.transitions, 7)?;
    let mut trainer = crate::train::Trainer::new(ctx, Ensemble::random(c.model.clone(), 3)?, case_train_config(c))?;
    let report = trainer.train(&buffer)?;
    let secs = report.epoch_seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let steps = c.transitions.div_ceil(c.batch_size);
    let dispatches_per_call = trainer.take_record().dispatches;
    // Profiled: a separate call of one epoch (its scoring before and after included).
    let profile = if profile && Profiler::new(ctx).is_some() {
        let one = crate::train::TrainConfig { epochs: 1, ..trainer.config().clone() };
        let mut t = crate::train::Trainer::new(ctx, Ensemble::random(c.model.clone(), 3)?, one)?;
        t.set_profiling(true);
        t.train(&buffer)?;
        Some(t.take_record().gpu_ms)
    } else {
        None
    };
    Ok(TrainResult {
        name: c.name.clone(),
        transitions: c.transitions,
        members: c.model.n_members,
        hidden: c.model.hidden.clone(),
        batch_size: c.batch_size,
        steps,
        seconds_per_epoch: secs,
        transitions_per_s: c.transitions as f64 / secs,
        dispatches_per_call,
        mlp_kernel: trainer.mlp_kernel().name().to_string(),
        layouts: None,
        profile,
    })
}

/// One SAC benchmark configuration: updates of batch `batch` through an actor and twin critics
/// of `hidden` (ReLU), `updates` per submission plus the next action, as a run records them.
#[derive(Debug, Clone, Serialize)]
pub struct SacCase {
    /// Name in reports (`sac_<dims>_u<N>`, the names of `torch_sac_bench.py`).
    pub name: String,
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// Hidden widths of the actor and of each critic.
    pub hidden: Vec<usize>,
    /// Minibatch rows.
    pub batch: usize,
    /// Updates per submission.
    pub updates: usize,
    /// Replay capacity, filled with random transitions before the timing.
    pub capacity: usize,
    /// Submissions before the timing.
    pub warmup: usize,
    /// Timed submissions.
    pub repeats: usize,
    /// Submissions profiled with `--profile`.
    pub profiled: usize,
}

/// Timing of one SAC case.
#[derive(Debug, Clone, Serialize)]
pub struct SacResult {
    /// Case name.
    pub name: String,
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// Hidden widths of the actor and of each critic.
    pub hidden: Vec<usize>,
    /// Minibatch rows.
    pub batch: usize,
    /// Updates per submission (each submission also computes the next action).
    pub updates_per_submission: usize,
    /// Timed submissions.
    pub repeats: usize,
    /// Median wall time of a submission (upload, the updates and the action, readback).
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Updates per second at the median.
    pub updates_per_s: f64,
    /// Compute dispatches per submission.
    pub dispatches_per_submission: u64,
    /// With `--profile` (and timestamp queries): GPU milliseconds per update, the sum of every
    /// dispatch's time in the profiled submissions over their updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_ms_per_update: Option<f64>,
    /// With `--profile`: GPU milliseconds per kernel per submission (mean of the profiled ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<BTreeMap<String, f64>>,
}

/// The dimensions of the SAC cases: the pendulum's (obs 3, act 1) and HalfCheetah's (17, 6).
pub const SAC_DIMS: [(&str, usize, usize); 2] = [("pendulum", 3, 1), ("halfcheetah", 17, 6)];

fn sac_case(dims: (&str, usize, usize), updates: usize, (warmup, repeats, profiled): (usize, usize, usize)) -> SacCase {
    let (env, obs_dim, act_dim) = dims;
    SacCase {
        name: format!("sac_{env}_u{updates}"),
        obs_dim,
        act_dim,
        hidden: vec![256, 256],
        batch: 256,
        updates,
        capacity: 100_000,
        warmup,
        repeats,
        profiled,
    }
}

/// Batch 256 through 2×256 ReLU networks at each of [`SAC_DIMS`], with 1, 20 and 40 updates
/// per submission, from a ring of 100 000 random transitions (`torch_sac_bench.py`'s cases).
pub fn sac_full_suite() -> Vec<SacCase> {
    let mut v = Vec::new();
    for dims in SAC_DIMS {
        for (updates, repeats) in [(1, 50), (20, 20), (40, 10)] {
            v.push(sac_case(dims, updates, (3, repeats, 3)));
        }
    }
    v
}

/// The same networks with 1 and 20 updates per submission (the cases of
/// `torch_sac_bench.py --quick`), one warm-up, three and two timed submissions, one profiled:
/// about a minute and a half on lavapipe (≈ 0.6 s an update on two cores).
pub fn sac_quick_suite() -> Vec<SacCase> {
    let mut v = Vec::new();
    for dims in SAC_DIMS {
        v.push(sac_case(dims, 1, (1, 3, 1)));
        v.push(sac_case(dims, 20, (1, 2, 1)));
    }
    v
}

/// The device of case `c`: PyTorch's initialisation, α = 1, γ 0.99, τ 0.005, learning rates
/// 3e-4, actions in [−1, 1] (the settings of `torch_sac_bench.py`), its ring filled with
/// random transitions.
fn sac_device(ctx: &GpuContext, c: &SacCase) -> Result<crate::sac::device::SacDevice> {
    use crate::kernels::mlp::Activation;
    use crate::kernels::net::NetLayout;
    use crate::sac::device::{SacDevice, SacParamsF32, SacShapes, UpdateSettings};
    use rand::{Rng, SeedableRng};
    let shapes = SacShapes {
        obs_dim: c.obs_dim,
        act_dim: c.act_dim,
        batch: c.batch,
        capacity: c.capacity,
        actor_hidden: c.hidden.clone(),
        critic_hidden: c.hidden.clone(),
        actor_activation: Activation::Relu,
        critic_activation: Activation::Relu,
        max_updates: c.updates,
        model_capacity: 0,
        real_rows: c.batch,
    };
    let settings = UpdateSettings {
        gamma: 0.99,
        tau: 0.005,
        target_entropy: -(c.act_dim as f64),
        learn_alpha: true,
        lr: [3e-4; 3],
        adam: [0.9, 0.999, 1e-8],
        seed: 1,
        center: vec![0.0; c.act_dim],
        half: vec![1.0; c.act_dim],
    };
    let align = NetLayout::alignment(ctx);
    let al = NetLayout::new(&shapes.actor_widths(), 1, align);
    let cl = NetLayout::new(&shapes.critic_widths(), 2, align);
    let critic = cl.init_uniform(3);
    let init = SacParamsF32 { actor: al.init_uniform(2), target: critic.clone(), critic, log_alpha: 0.0 };
    let row = shapes.row_len();
    let (d, a) = (c.obs_dim, c.act_dim);
    let mut dev = SacDevice::new(ctx, shapes, settings, &init)?;
    // The ring in one write: the device's own state back, with random transitions
    // (observations and rewards in ±2, actions in ±1, none terminal).
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(4);
    let mut ring = vec![0.0f32; c.capacity * row];
    for r in ring.chunks_mut(row) {
        for (k, v) in r[..row - 1].iter_mut().enumerate() {
            let bound = if (d..d + a).contains(&k) { 1.0 } else { 2.0 };
            *v = rng.random_range(-bound..bound);
        }
    }
    let state = dev.snapshot()?;
    dev.restore(&state, &ring, c.capacity as u64)?;
    Ok(dev)
}

/// Times one SAC case: `warmup` submissions, then `repeats` timed ones, each `updates` updates
/// (the actor, α and the targets on every one, as `torch_sac_bench.py`) and the next action;
/// with `profile` (and timestamp queries) then `profiled` more with every dispatch timed.
pub fn run_sac_case(ctx: &GpuContext, c: &SacCase, profile: bool) -> Result<SacResult> {
    let mut dev = sac_device(ctx, c)?;
    let mut next_update = 0u64;
    let mut plans = |n: usize| -> Vec<crate::sac::device::UpdatePlan> {
        let v = (next_update..next_update + n as u64)
            .map(|index| crate::sac::device::UpdatePlan { index, actor: true, polyak: true })
            .collect();
        next_update += n as u64;
        v
    };
    let obs = |i: usize| -> Vec<f32> { (0..c.obs_dim).map(|k| 0.1 * ((i * 7 + k) % 13) as f32 - 0.6).collect() };
    for i in 0..c.warmup {
        dev.run(&plans(c.updates), Some(&obs(i)), i as u64, false)?;
    }
    let mut ms = Vec::with_capacity(c.repeats);
    for i in 0..c.repeats {
        let p = plans(c.updates);
        let o = obs(c.warmup + i);
        let t0 = Instant::now();
        let step = dev.run(&p, Some(&o), (c.warmup + i) as u64, false)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if step.stats.iter().any(|s| !s.critic_loss.is_finite()) {
            return Err(Error::InvalidInput(format!("{}: a critic loss is not finite", c.name)));
        }
    }
    let pct = |q: f64| crate::util::percentile(&ms, q).unwrap_or(f64::NAN);
    let dispatches_per_submission = dev.last_dispatches();
    let (gpu_ms_per_update, profile) = match (profile, Profiler::new(ctx)) {
        (true, Some(profiler)) => {
            let mut total = RecordStats::default();
            for i in 0..c.profiled {
                let at = c.warmup + c.repeats + i;
                total.add(&dev.run_profiled(&plans(c.updates), Some(&obs(at)), at as u64, false, &profiler)?.1);
            }
            if total.untimed > 0 {
                return Err(Error::InvalidInput(format!(
                    "{}: {} dispatches of the profiled submissions were not timed (the query set is full)",
                    c.name, total.untimed
                )));
            }
            let n = c.profiled.max(1) as f64;
            let per_update = total.gpu_ms.values().sum::<f64>() / (n * c.updates as f64);
            (Some(per_update), Some(total.gpu_ms.into_iter().map(|(k, v)| (k, v / n)).collect()))
        }
        _ => (None, None),
    };
    let p50 = pct(0.5);
    Ok(SacResult {
        name: c.name.clone(),
        obs_dim: c.obs_dim,
        act_dim: c.act_dim,
        hidden: c.hidden.clone(),
        batch: c.batch,
        updates_per_submission: c.updates,
        repeats: c.repeats,
        p50_ms: p50,
        p90_ms: pct(0.9),
        updates_per_s: c.updates as f64 / (p50 / 1e3),
        dispatches_per_submission,
        gpu_ms_per_update,
        profile,
    })
}

/// One policy case (`lookahead bench policy`): the deterministic action of a SAC actor (a
/// distilled policy's network) for one observation on one CPU core (`sac::Policy::act`, f64),
/// the real-time path that needs no GPU round trip.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyCase {
    /// Name in reports.
    pub name: String,
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Timed calls (after as many untimed ones).
    pub calls: usize,
}

/// Timing of one policy case.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    /// The case.
    pub case: PolicyCase,
    /// Median wall time of one action, microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

/// A 2×64 actor at the pendulum's and the cartpole's sizes (the distillation's default) and a
/// 2×256 one at HalfCheetah's, 20 000 calls each.
pub fn policy_suite() -> Vec<PolicyCase> {
    let case = |name: &str, obs_dim, act_dim, hidden: &[usize]| PolicyCase {
        name: name.into(),
        obs_dim,
        act_dim,
        hidden: hidden.to_vec(),
        calls: 20_000,
    };
    vec![
        case("policy_pendulum_2x64", 3, 1, &[64, 64]),
        case("policy_cartpole_2x64", 4, 1, &[64, 64]),
        case("policy_halfcheetah_2x256", 17, 6, &[256, 256]),
    ]
}

/// Times `c`: each call on its own, on observations that change every call.
pub fn run_policy_case(c: &PolicyCase) -> Result<PolicyResult> {
    let widths = [vec![c.obs_dim], c.hidden.clone(), vec![2 * c.act_dim]].concat();
    let layout = crate::kernels::net::NetLayout::new(&widths, 1, 1);
    let bounds = (vec![-1.0; c.act_dim], vec![1.0; c.act_dim]);
    let policy =
        crate::sac::Policy::from_flat(&layout, &layout.init_uniform(7), crate::sac::HiddenActivation::Relu, &bounds)?;
    let obs = |i: usize| -> Vec<f64> { (0..c.obs_dim).map(|k| 0.1 * ((i * 7 + k) % 13) as f64 - 0.6).collect() };
    let mut checksum = 0.0;
    for i in 0..c.calls {
        checksum += policy.act(&obs(i))?[0];
    }
    let mut us = Vec::with_capacity(c.calls);
    for i in 0..c.calls {
        let o = obs(i);
        let t0 = Instant::now();
        let a = policy.act(&o)?;
        us.push(t0.elapsed().as_secs_f64() * 1e6);
        checksum += a[0];
    }
    if !checksum.is_finite() {
        return Err(Error::InvalidInput(format!("{}: an action is not finite", c.name)));
    }
    let pct = |q: f64| crate::util::percentile(&us, q).unwrap_or(f64::NAN);
    Ok(PolicyResult { case: c.clone(), p50_us: pct(0.5), p90_us: pct(0.9), p99_us: pct(0.99) })
}

/// The header line of `bench policy`'s table.
pub struct PolicyHeader;

impl fmt::Display for PolicyHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<26} {:>4} {:>4} {:>11} {:>7} {:>9} {:>9} {:>9}",
            "case", "obs", "act", "hidden", "calls", "p50 µs", "p90 µs", "p99 µs"
        )
    }
}

/// A row of `bench policy`'s table, under [`PolicyHeader`].
impl fmt::Display for PolicyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.case;
        write!(
            f,
            "{:<26} {:>4} {:>4} {:>11} {:>7} {:>9.2} {:>9.2} {:>9.2}",
            c.name,
            c.obs_dim,
            c.act_dim,
            format!("{:?}", c.hidden),
            c.calls,
            self.p50_us,
            self.p90_us,
            self.p99_us
        )
    }
}

/// One MBPO benchmark configuration (`lookahead bench mbpo`): what an MBPO run does per
/// environment step, on synthetic data. Every step: `updates` SAC updates of batch `batch`
/// (drawn from the model ring) and the next action, one submission; every `freq` steps: the
/// ensemble retrained on `dataset` real transitions for `train_epochs` epochs, and a batch of
/// `rollouts` branched rollouts of `length` steps into the model ring. The other settings are
/// mbrl-lib's HalfCheetah MBPO reference ([`MbpoConfig::preset_for_gymnasium`]).
#[derive(Debug, Clone, Serialize)]
pub struct MbpoCase {
    /// Name in reports.
    pub name: String,
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// Rollouts per batch (`rollouts_per_step × freq`, all started at once).
    pub rollouts: usize,
    /// Steps per rollout.
    pub length: usize,
    /// SAC updates per environment step.
    pub updates: usize,
    /// SAC minibatch rows.
    pub batch: usize,
    /// Width of the two hidden layers of the SAC actor and of each critic.
    pub hidden: usize,
    /// Ensemble members.
    pub members: usize,
    /// Elites the rollouts draw from.
    pub elites: usize,
    /// Width of the ensemble's hidden layers.
    pub model_hidden: usize,
    /// The ensemble's hidden layers.
    pub model_layers: usize,
    /// Environment steps per model training and rollout batch (`freq_train_model`).
    pub freq: usize,
    /// Real transitions the ensemble trains on (and the rollouts start from).
    pub dataset: usize,
    /// Epochs of one training call (no early stopping, so every call trains as many).
    pub train_epochs: usize,
    /// Untimed calls of each part before its timing.
    pub warmup: usize,
    /// Timed calls of each part (the median is reported).
    pub repeats: usize,
    /// Calls of the rollouts and of the SAC submission profiled with `--profile`.
    pub profiled: usize,
}

impl Default for MbpoCase {
    /// HalfCheetah's sizes (obs 17, act 6) at mbrl-lib's MBPO reference: 400 rollouts per step
    /// × `freq_train_model` 250 = 100 000 rollouts of length 1 per batch; a 7 × 4×200 ensemble
    /// with 5 elites, trained for 5 epochs (the fewest a reference call with patience 5 runs)
    /// on 10 000 transitions (5 000 random steps and 5 epochs of 1 000); 40 SAC updates per
    /// step of batch 256 through 2×256 networks (mbrl-lib's HalfCheetah override has 10 updates
    /// and 512-wide networks; the flags change both).
    fn default() -> Self {
        Self {
            name: "mbpo_halfcheetah".into(),
            obs_dim: 17,
            act_dim: 6,
            rollouts: 100_000,
            length: 1,
            updates: 40,
            batch: 256,
            hidden: 256,
            members: 7,
            elites: 5,
            model_hidden: 200,
            model_layers: 4,
            freq: 250,
            dataset: 10_000,
            train_epochs: 5,
            warmup: 1,
            repeats: 5,
            profiled: 2,
        }
    }
}

impl MbpoCase {
    /// Checks the sizes, naming the `bench mbpo` flag of each problem (all at once), then the
    /// MBPO config they make ([`MbpoCase::config`]).
    pub fn check(&self) -> Result<()> {
        let mut errs = Vec::new();
        for (flag, v) in [
            ("--rollouts", self.rollouts),
            ("--length", self.length),
            ("--updates", self.updates),
            ("--batch", self.batch),
            ("--hidden", self.hidden),
            ("--members", self.members),
            ("--elites", self.elites),
            ("--model-hidden", self.model_hidden),
            ("--model-layers", self.model_layers),
            ("--freq", self.freq),
            ("--dataset", self.dataset),
            ("--train-epochs", self.train_epochs),
            ("--repeats", self.repeats),
        ] {
            if v == 0 {
                errs.push(Error::config(flag, "must be at least 1"));
            }
        }
        if self.freq > 0 && !self.rollouts.is_multiple_of(self.freq) {
            errs.push(Error::config(
                "--rollouts",
                format!(
                    "{} is no multiple of --freq {}: a batch is rollouts_per_step × freq_train_model rollouts",
                    self.rollouts, self.freq
                ),
            ));
        }
        if self.elites > self.members {
            errs.push(Error::config("--elites", format!("{} of {} members", self.elites, self.members)));
        }
        if self.updates > crate::sac::MAX_UPDATES_PER_STEP {
            errs.push(Error::config(
                "--updates",
                format!("{} is above {} per submission", self.updates, crate::sac::MAX_UPDATES_PER_STEP),
            ));
        }
        if self.length > crate::mbpo::MAX_ROLLOUT_LENGTH {
            errs.push(Error::config(
                "--length",
                format!("{} is above {}", self.length, crate::mbpo::MAX_ROLLOUT_LENGTH),
            ));
        }
        Error::collect(errs)?;
        self.config().validate()
    }

    /// The MBPO config of these sizes: mbrl-lib's HalfCheetah reference with the SAC networks,
    /// batch and updates, the ensemble, the rollouts (`rollouts / freq` per step, a fixed
    /// length), `freq_train_model`, training for exactly `train_epochs` epochs (patience 0) and
    /// a real buffer of `dataset` transitions.
    pub fn config(&self) -> MbpoConfig {
        let mut cfg = MbpoConfig::preset_for_gymnasium("HalfCheetah-v5", MbpoPreset::Reference);
        cfg.sac.actor_hidden = vec![self.hidden; 2];
        cfg.sac.critic_hidden = vec![self.hidden; 2];
        cfg.sac.batch_size = self.batch;
        cfg.sac.updates_per_step = self.updates;
        cfg.model.members = self.members;
        cfg.model.hidden = vec![self.model_hidden; self.model_layers];
        cfg.train.num_elites = self.elites;
        cfg.train.epochs = self.train_epochs;
        cfg.train.patience = 0;
        cfg.rollout.rollouts_per_step = self.rollouts / self.freq.max(1);
        cfg.rollout.freq_train_model = self.freq;
        cfg.rollout.rollout_schedule = [1, 1, self.length, self.length];
        cfg.schedule.buffer_capacity = self.dataset;
        cfg
    }
}

/// One part of an MBPO environment step: the wall time of one call and its share of a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MbpoPart {
    /// Median wall time of a call.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Calls per environment step (1, or 1 / freq_train_model).
    pub calls_per_step: f64,
    /// Milliseconds per environment step at the median: `p50_ms × calls_per_step`.
    pub ms_per_step: f64,
}

impl MbpoPart {
    /// A part of `calls_per_step` calls per step whose calls took `ms`.
    fn of(ms: &[f64], calls_per_step: f64) -> Self {
        let pct = |q: f64| crate::util::percentile(ms, q).unwrap_or(f64::NAN);
        Self { p50_ms: pct(0.5), p90_ms: pct(0.9), calls_per_step, ms_per_step: pct(0.5) * calls_per_step }
    }
}

/// The parts of an MBPO environment step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MbpoParts {
    /// The SAC updates and the next action (one submission, every step).
    pub act_update: MbpoPart,
    /// A rollout batch (one submission every `freq_train_model` steps).
    pub rollouts: MbpoPart,
    /// A model training (every `freq_train_model` steps).
    pub training: MbpoPart,
}

impl MbpoParts {
    /// The parts from the wall times of their calls: the submission of updates and action once
    /// per step, the rollout batch and the training once per `freq` steps.
    pub fn amortise(act_update_ms: &[f64], rollout_ms: &[f64], train_ms: &[f64], freq: usize) -> Self {
        let every = 1.0 / freq.max(1) as f64;
        Self {
            act_update: MbpoPart::of(act_update_ms, 1.0),
            rollouts: MbpoPart::of(rollout_ms, every),
            training: MbpoPart::of(train_ms, every),
        }
    }

    /// Milliseconds per environment step: acting and updates + (rollouts + training) / freq.
    pub fn ms_per_step(&self) -> f64 {
        self.act_update.ms_per_step + self.rollouts.ms_per_step + self.training.ms_per_step
    }
}

/// Timing of the MBPO case.
#[derive(Debug, Clone, Serialize)]
pub struct MbpoResult {
    /// Case name.
    pub name: String,
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// Hidden widths of the SAC actor and of each critic.
    pub sac_hidden: Vec<usize>,
    /// SAC minibatch rows.
    pub batch: usize,
    /// SAC updates per environment step (each submission also computes the next action).
    pub updates_per_step: usize,
    /// Ensemble members.
    pub members: usize,
    /// The ensemble's hidden widths.
    pub model_hidden: Vec<usize>,
    /// Elites the rollouts draw from.
    pub elites: usize,
    /// Rollouts per batch.
    pub rollouts: usize,
    /// Rollouts per environment step (`rollouts / freq_train_model`).
    pub rollouts_per_step: usize,
    /// Steps per rollout.
    pub length: usize,
    /// Rollouts per pass (what fits the adapter's storage bindings).
    pub rows_per_pass: usize,
    /// Passes per batch.
    pub passes: usize,
    /// Rows of the model ring the updates draw from.
    pub model_capacity: usize,
    /// Environment steps per model training and rollout batch.
    pub freq_train_model: usize,
    /// Real transitions the ensemble trains on.
    pub dataset: usize,
    /// Epochs per training call.
    pub train_epochs: usize,
    /// The ensemble's minibatch rows.
    pub train_batch: usize,
    /// Untimed calls of each part.
    pub warmup: usize,
    /// Timed calls of each part.
    pub repeats: usize,
    /// Each part: one call's wall time and its amortised share of an environment step.
    pub parts: MbpoParts,
    /// Milliseconds per environment step: the sum of the parts' `ms_per_step`.
    pub ms_per_step: f64,
    /// Environment steps per second (`1000 / ms_per_step`; the environment itself excluded).
    pub env_steps_per_s: f64,
    /// Rollouts per second of a batch at its median.
    pub rollouts_per_s: f64,
    /// Model steps (rollouts × length) per second of a batch at its median.
    pub model_steps_per_s: f64,
    /// SAC updates per second of the submission at its median.
    pub updates_per_s: f64,
    /// Wall time of one training epoch (median over the timed calls; scoring excluded).
    pub train_seconds_per_epoch: f64,
    /// The kernels the ensemble trained on (`fused` or `tiled`).
    pub train_kernel: String,
    /// Compute dispatches per SAC submission.
    pub sac_dispatches_per_submission: u64,
    /// With `--profile` (and timestamp queries): compute dispatches per rollout batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_dispatches_per_batch: Option<u64>,
    /// With `--profile`: GPU milliseconds per kernel per rollout batch (mean of the profiled
    /// batches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_profile: Option<BTreeMap<String, f64>>,
    /// With `--profile`: GPU milliseconds per kernel per SAC submission (mean of the profiled
    /// ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sac_profile: Option<BTreeMap<String, f64>>,
}

/// The real transitions of the MBPO case: seeded observations and rewards in ±2, actions in
/// ±1, the next observation a small step from the observation, none terminal; as the trainer's
/// buffer and as SAC's ring rows.
fn mbpo_transitions(c: &MbpoCase, seed: u64) -> Result<(crate::train::ReplayBuffer, Vec<f32>)> {
    use rand::{Rng, SeedableRng};
    let (d, a) = (c.obs_dim, c.act_dim);
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    let mut buffer = crate::train::ReplayBuffer::checked(d, a)?;
    let mut ring = Vec::with_capacity(c.dataset * (2 * d + a + 2));
    for _ in 0..c.dataset {
        let obs: Vec<f32> = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
        let act: Vec<f32> = (0..a).map(|_| rng.random_range(-1.0..1.0)).collect();
        let reward: f32 = rng.random_range(-2.0..2.0);
        let next: Vec<f32> = obs.iter().map(|o| o + rng.random_range(-0.1..0.1)).collect();
        buffer.push(&obs, &act, &next, reward, false)?;
        ring.extend(obs.iter().chain(&act).chain(&[reward]).chain(&next).chain(&[0.0]));
    }
    Ok((buffer, ring))
}

/// The SAC device of `cfg` as an MBPO run builds it (its settings and networks; PyTorch's
/// initialisation), with a model ring of `cfg`'s capacity and `ring` as its real transitions.
fn mbpo_sac_device(
    ctx: &GpuContext,
    cfg: &MbpoConfig,
    task: &Task,
    ring: &[f32],
    stored: usize,
) -> Result<crate::sac::device::SacDevice> {
    let bounds = (&task.action_lower[..], &task.action_upper[..]);
    let ring_shape = Some((cfg.model_buffer_capacity(), cfg.real_rows()));
    let mut dev = crate::sac::build_device(ctx, &cfg.sac_config(), task.obs_dim, bounds, ring_shape)?;
    let state = dev.snapshot()?;
    dev.restore(&state, ring, stored as u64)?;
    Ok(dev)
}

/// Wall milliseconds of `repeats` calls of `f` after `warmup` untimed ones; `f` gets the call's
/// index (from 0, warm-ups included).
fn time_calls(warmup: usize, repeats: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<Vec<f64>> {
    for i in 0..warmup {
        f(i)?;
    }
    let mut ms = Vec::with_capacity(repeats);
    for i in warmup..warmup + repeats {
        let t0 = Instant::now();
        f(i)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(ms)
}

/// Per-kernel GPU milliseconds of `n` profiled calls, averaged; an error when the query set
/// could not time every dispatch.
fn mean_profile(name: &str, what: &str, total: RecordStats, n: usize) -> Result<(u64, BTreeMap<String, f64>)> {
    if total.untimed > 0 {
        return Err(Error::InvalidInput(format!(
            "{name}: {} dispatches of the profiled {what} were not timed (the query set is full)",
            total.untimed
        )));
    }
    let n = n.max(1) as f64;
    Ok(((total.dispatches as f64 / n).round() as u64, total.gpu_ms.into_iter().map(|(k, v)| (k, v / n)).collect()))
}

/// Times the MBPO case `c` on synthetic data: the SAC device of its config with `dataset`
/// seeded transitions in its real ring, a rollout device (passes of what fits the adapter) on
/// its actor and model ring with a random ensemble (its first `elites` members as elites), the
/// quadratic task's termination; then, each `warmup` untimed and `repeats` timed calls:
///
/// 1. rollout batches ([`RolloutDevice::run`] from every real transition), which fill the
///    model ring;
/// 2. SAC submissions of `updates` updates (the actor, α and the targets on each, as the
///    reference's intervals of 1) and the next action ([`SacDevice::run`]), drawing from the
///    model ring;
/// 3. model trainings ([`Trainer::train`] of `train_epochs` epochs on the transitions, then the
///    trained ensemble and its elites handed to the rollouts, as the MBPO loop does);
///
/// and with `profile` (and timestamp queries) `profiled` rollout batches and SAC submissions
/// with every dispatch timed.
///
/// [`RolloutDevice::run`]: crate::mbpo::rollout::RolloutDevice::run
/// [`SacDevice::run`]: crate::sac::device::SacDevice::run
/// [`Trainer::train`]: crate::train::Trainer::train
pub fn run_mbpo_case(ctx: &GpuContext, c: &MbpoCase, profile: bool) -> Result<MbpoResult> {
    c.check()?;
    let mut b = MbpoBench::new(ctx, c)?;
    let rollout_ms = b.time_rollouts(c)?;
    let act_update_ms = b.time_steps(c)?;
    let sac_dispatches_per_submission = b.sac.last_dispatches();
    let (train_ms, epoch_seconds, train_kernel) = b.time_trainings(ctx, c)?;
    let profiles = match (profile, Profiler::new(ctx)) {
        (true, Some(profiler)) => Some(b.profile(c, &profiler)?),
        _ => None,
    };
    let parts = MbpoParts::amortise(&act_update_ms, &rollout_ms, &train_ms, c.freq);
    let ms_per_step = parts.ms_per_step();
    let rollout_s = parts.rollouts.p50_ms / 1e3;
    let (cfg, shapes) = (&b.cfg, b.rollouts.shapes());
    Ok(MbpoResult {
        name: c.name.clone(),
        obs_dim: c.obs_dim,
        act_dim: c.act_dim,
        sac_hidden: cfg.sac.actor_hidden.clone(),
        batch: c.batch,
        updates_per_step: c.updates,
        members: c.members,
        model_hidden: cfg.model.hidden.clone(),
        elites: c.elites,
        rollouts: c.rollouts,
        rollouts_per_step: cfg.rollout.rollouts_per_step,
        length: c.length,
        rows_per_pass: shapes.rows,
        passes: shapes.passes(),
        model_capacity: b.sac.shapes().model_capacity,
        freq_train_model: c.freq,
        dataset: c.dataset,
        train_epochs: c.train_epochs,
        train_batch: cfg.train.batch_size,
        warmup: c.warmup,
        repeats: c.repeats,
        parts,
        ms_per_step,
        env_steps_per_s: 1e3 / ms_per_step,
        rollouts_per_s: c.rollouts as f64 / rollout_s,
        model_steps_per_s: (c.rollouts * c.length) as f64 / rollout_s,
        updates_per_s: c.updates as f64 / (parts.act_update.p50_ms / 1e3),
        train_seconds_per_epoch: crate::util::percentile(&epoch_seconds, 0.5).unwrap_or(f64::NAN),
        train_kernel,
        sac_dispatches_per_submission,
        rollout_dispatches_per_batch: profiles.as_ref().map(|p| p.0),
        rollout_profile: profiles.as_ref().map(|p| p.1.clone()),
        sac_profile: profiles.map(|p| p.2),
    })
}

/// A profile of `bench mbpo`: dispatches per rollout batch, GPU ms per kernel of a batch and
/// of a SAC submission.
type MbpoProfiles = (u64, BTreeMap<String, f64>, BTreeMap<String, f64>);

/// What `bench mbpo` times: the SAC device over a filled real ring, the rollouts on it (a
/// random ensemble until the first training), the replay buffer the model trains on, and the
/// counters that keep every call's draws fresh.
struct MbpoBench {
    cfg: crate::mbpo::MbpoConfig,
    sac: crate::sac::device::SacDevice,
    rollouts: crate::mbpo::rollout::RolloutDevice,
    buffer: crate::train::ReplayBuffer,
    n_real: usize,
    batches: u64,
    steps: u64,
    next_update: u64,
}

impl MbpoBench {
    fn new(ctx: &GpuContext, c: &MbpoCase) -> Result<Self> {
        use crate::kernels::family::TaskWgsl;
        use crate::mbpo::rollout::{RolloutDevice, RolloutShapes};
        let cfg = c.config();
        let task = Task::quadratic(c.obs_dim, c.act_dim);
        let (buffer, ring) = mbpo_transitions(c, 11)?;
        let sac = mbpo_sac_device(ctx, &cfg, &task, &ring, c.dataset)?;
        let spec = cfg.model.spec(c.obs_dim, c.act_dim);
        let rows = RolloutShapes::rows_that_fit(ctx, &spec, c.rollouts).min(sac.shapes().model_capacity);
        let shapes = RolloutShapes { spec: spec.clone(), n_rollouts: c.rollouts, max_length: c.length, rows };
        let wgsl = TaskWgsl { name: &task.name, wgsl: &task.wgsl };
        let mut rollouts = RolloutDevice::new(ctx, &sac, wgsl, shapes, cfg.seed)?;
        let elites: Vec<usize> = (0..c.elites).collect();
        rollouts.set_model(&Ensemble::random(spec, 5)?, &elites)?;
        let n_real = sac.n_stored();
        Ok(Self { cfg, sac, rollouts, buffer, n_real, batches: 0, steps: 0, next_update: 0 })
    }

    /// Rollout batches: every rollout lives its whole length (the quadratic task never
    /// terminates), so each batch writes rollouts × length transitions.
    fn time_rollouts(&mut self, c: &MbpoCase) -> Result<Vec<f64>> {
        let (rollouts, n_real) = (&self.rollouts, self.n_real);
        let ms = time_calls(c.warmup, c.repeats, |i| {
            let state = rollouts.run(i as u64, c.length, n_real)?;
            let expected = ((i + 1) * c.rollouts * c.length) as u64;
            if state.written != expected {
                return Err(Error::InvalidInput(format!(
                    "{}: the model ring holds {} transitions written after {} batches; expected {expected}",
                    c.name,
                    state.written,
                    i + 1
                )));
            }
            Ok(())
        })?;
        self.batches = (c.warmup + c.repeats) as u64;
        Ok(ms)
    }

    /// The next `n` updates' plans.
    fn plans(&mut self, n: usize) -> Vec<crate::sac::device::UpdatePlan> {
        let first = self.next_update;
        self.next_update += n as u64;
        (first..first + n as u64)
            .map(|index| crate::sac::device::UpdatePlan { index, actor: true, polyak: true })
            .collect()
    }

    /// The observation of environment step `i`.
    fn obs(c: &MbpoCase, i: u64) -> Vec<f32> {
        (0..c.obs_dim).map(|k| 0.1 * ((i as usize * 7 + k) % 13) as f32 - 0.6).collect()
    }

    /// The updates and the next action, from the filled model ring.
    fn time_steps(&mut self, c: &MbpoCase) -> Result<Vec<f64>> {
        let ms = time_calls(c.warmup, c.repeats, |i| {
            let plans = self.plans(c.updates);
            let step = self.sac.run(&plans, Some(&Self::obs(c, i as u64)), i as u64, false)?;
            if step.stats.iter().any(|s| !s.critic_loss.is_finite()) {
                return Err(Error::InvalidInput(format!("{}: a critic loss is not finite", c.name)));
            }
            Ok(())
        })?;
        self.steps = (c.warmup + c.repeats) as u64;
        Ok(ms)
    }

    /// Model trainings, each handing its ensemble and elites to the rollouts: their times, the
    /// timed calls' epoch seconds and the training kernel's name.
    fn time_trainings(&mut self, ctx: &GpuContext, c: &MbpoCase) -> Result<(Vec<f64>, Vec<f64>, String)> {
        let cfg = &self.cfg;
        let train = crate::train::TrainConfig { seed: cfg.seed, ..cfg.train.clone() };
        let spec = cfg.model.spec(c.obs_dim, c.act_dim);
        let mut trainer = crate::train::Trainer::new(ctx, Ensemble::random(spec, cfg.seed)?, train)?;
        trainer.check_transitions(c.dataset, "a smaller --dataset")?;
        let mut epoch_seconds = Vec::new();
        let (rollouts, buffer) = (&mut self.rollouts, &self.buffer);
        let ms = time_calls(c.warmup, c.repeats, |i| {
            let report = trainer.train(buffer)?;
            rollouts.set_model(&trainer.ensemble()?, &report.elites)?;
            if i >= c.warmup {
                epoch_seconds.extend(report.epoch_seconds);
            }
            Ok(())
        })?;
        Ok((ms, epoch_seconds, trainer.mlp_kernel().name().to_string()))
    }

    /// `profiled` rollout batches and SAC submissions with every dispatch timed: dispatches per
    /// rollout batch, GPU ms per kernel of a batch and of a SAC submission.
    fn profile(&mut self, c: &MbpoCase, profiler: &Profiler) -> Result<MbpoProfiles> {
        let mut total = RecordStats::default();
        for _ in 0..c.profiled {
            total.add(&self.rollouts.run_profiled(self.batches, c.length, self.n_real, profiler)?.1);
            self.batches += 1;
        }
        let (dispatches, rollout_ms) = mean_profile(&c.name, "rollout batches", total, c.profiled)?;
        let mut total = RecordStats::default();
        for _ in 0..c.profiled {
            let plans = self.plans(c.updates);
            let obs = Self::obs(c, self.steps);
            total.add(&self.sac.run_profiled(&plans, Some(&obs), self.steps, false, profiler)?.1);
            self.steps += 1;
        }
        let (_, sac_ms) = mean_profile(&c.name, "SAC submissions", total, c.profiled)?;
        Ok((dispatches, rollout_ms, sac_ms))
    }
}

// The tables of `lookahead bench plan`, `bench train`, `bench sac` and `bench mbpo`: each header
// and row type prints one line (`println!("{row}")`), in the same columns; `bench mbpo`'s result
// prints its parts' rows and rates, as `ProfileTable` several lines.

/// The header line of `bench plan`'s table, in the columns of [`PlanResult`]'s rows.
pub struct PlanHeader;

impl fmt::Display for PlanHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:>6} {:>4} {:>3} {:>3} {:>10} {:>10} {:>10} {:>14} {:>9} {:>6} {:>6} {:>5}",
            "case",
            "pop",
            "part",
            "H",
            "it",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "model steps/s",
            "GFLOP/s",
            "disp",
            "net",
            "step"
        )
    }
}

/// A row of `bench plan`'s table, under [`PlanHeader`].
impl fmt::Display for PlanResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:>6} {:>4} {:>3} {:>3} {:>10.2} {:>10.2} {:>10.2} {:>14.3e} {:>9.1} {:>6} {:>6} {:>5}",
            self.name,
            self.population,
            self.particles,
            self.horizon,
            self.iterations,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.model_steps_per_s,
            self.gflops,
            self.dispatches_per_plan,
            self.mlp_kernel,
            self.model_step
        )
    }
}

/// The heading of a plan case's fused layouts ([`sweep_layouts`] with `plans` timed plans each),
/// in the columns of [`LayoutResult`]'s rows.
pub struct LayoutHeader {
    /// Timed plans per layout.
    pub plans: usize,
}

impl fmt::Display for LayoutHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "    fused layouts ({} plans each): rows × cols/invocation × row groups (invocations)  p50 ms  max |Δ| vs the planner's own",
            self.plans
        )
    }
}

/// A row of a plan case's fused layouts, under [`LayoutHeader`].
impl fmt::Display for LayoutResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "    {:>3} × {} × {} ({:>4})  ", self.rows, self.cols, self.split, self.invocations)?;
        match &self.refused {
            None => write!(f, "{:>10.2}  {:.1e}", self.p50_ms, self.max_abs_diff),
            Some(why) => write!(f, "refused: {why}"),
        }
    }
}

/// The header line of `bench train`'s table, in the columns of [`TrainResult`]'s rows.
pub struct TrainHeader;

impl fmt::Display for TrainHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<22} {:>11} {:>8} {:>12} {:>6} {:>6} {:>12} {:>14} {:>10} {:>6}",
            "case",
            "transitions",
            "members",
            "hidden",
            "batch",
            "steps",
            "s/epoch",
            "transitions/s",
            "disp/call",
            "net"
        )
    }
}

/// A row of `bench train`'s table, under [`TrainHeader`].
impl fmt::Display for TrainResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<22} {:>11} {:>8} {:>12} {:>6} {:>6} {:>12.3} {:>14.0} {:>10} {:>6}",
            self.name,
            self.transitions,
            self.members,
            format!("{:?}", self.hidden),
            self.batch_size,
            self.steps,
            self.seconds_per_epoch,
            self.transitions_per_s,
            self.dispatches_per_call,
            self.mlp_kernel
        )
    }
}

/// The header line of `bench sac`'s table, in the columns of [`SacResult`]'s rows.
pub struct SacHeader;

impl fmt::Display for SacHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<20} {:>4} {:>4} {:>11} {:>6} {:>8} {:>10} {:>10} {:>10} {:>12} {:>6}",
            "case", "obs", "act", "hidden", "batch", "updates", "p50 ms", "p90 ms", "updates/s", "GPU ms/upd", "disp"
        )
    }
}

/// A row of `bench sac`'s table, under [`SacHeader`].
impl fmt::Display for SacResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gpu = self.gpu_ms_per_update.map_or("—".to_string(), |v| format!("{v:.3}"));
        write!(
            f,
            "{:<20} {:>4} {:>4} {:>11} {:>6} {:>8} {:>10.2} {:>10.2} {:>10.1} {:>12} {:>6}",
            self.name,
            self.obs_dim,
            self.act_dim,
            format!("{:?}", self.hidden),
            self.batch,
            self.updates_per_submission,
            self.p50_ms,
            self.p90_ms,
            self.updates_per_s,
            gpu,
            self.dispatches_per_submission
        )
    }
}

/// The sizes of an MBPO case, one line (printed before its timing).
impl fmt::Display for MbpoCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: obs {}, act {} | SAC 2×{}, batch {}, {} updates/step | ensemble {} × {}×{}, {} elites | \
             {} rollouts × {} step{} every {} steps ({}/step) | training on {} transitions, {} epochs | \
             {} warm-up, {} timed calls of each part",
            self.name,
            self.obs_dim,
            self.act_dim,
            self.hidden,
            self.batch,
            self.updates,
            self.members,
            self.model_layers,
            self.model_hidden,
            self.elites,
            self.rollouts,
            self.length,
            if self.length == 1 { "" } else { "s" },
            self.freq,
            self.rollouts / self.freq.max(1),
            self.dataset,
            self.train_epochs,
            self.warmup,
            self.repeats
        )
    }
}

/// The header line of `bench mbpo`'s table, in the columns of [`MbpoResult`]'s rows.
pub struct MbpoHeader;

impl fmt::Display for MbpoHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<26} {:>11} {:>11} {:>9} {:>10} {:>7}", "part", "p50 ms", "p90 ms", "per step", "ms/step", "share")
    }
}

/// The rows of `bench mbpo`'s table under [`MbpoHeader`] (each part, the total per environment
/// step), then the rates: several lines, the last without a line break.
impl fmt::Display for MbpoResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.parts;
        let every = format!("1/{}", self.freq_train_model);
        for (name, part, calls) in [
            (format!("acting + {} updates", self.updates_per_step), &p.act_update, "1"),
            ("model rollouts".to_string(), &p.rollouts, every.as_str()),
            ("model training".to_string(), &p.training, every.as_str()),
        ] {
            writeln!(
                f,
                "{:<26} {:>11.2} {:>11.2} {:>9} {:>10.3} {:>5.1} %",
                name,
                part.p50_ms,
                part.p90_ms,
                calls,
                part.ms_per_step,
                100.0 * part.ms_per_step / self.ms_per_step.max(f64::MIN_POSITIVE)
            )?;
        }
        writeln!(
            f,
            "{:<26} {:>11} {:>11} {:>9} {:>10.3} {:>5.1} %",
            "total per env step", "", "", "", self.ms_per_step, 100.0
        )?;
        writeln!(
            f,
            "env steps/s {:.1} | rollouts/s {:.3e} (model steps/s {:.3e}; {} pass{} of ≤ {} rollouts) | SAC updates/s {:.1}",
            self.env_steps_per_s,
            self.rollouts_per_s,
            self.model_steps_per_s,
            self.passes,
            if self.passes == 1 { "" } else { "es" },
            self.rows_per_pass,
            self.updates_per_s
        )?;
        write!(
            f,
            "training {:.3} s/epoch ({} kernels) | model ring {} rows | {} dispatches per SAC submission{}",
            self.train_seconds_per_epoch,
            self.train_kernel,
            self.model_capacity,
            self.sac_dispatches_per_submission,
            self.rollout_dispatches_per_batch.map_or(String::new(), |d| format!(", {d} per rollout batch"))
        )
    }
}

/// The heading of a training case's fused layouts ([`sweep_train_layouts`]), in the columns of
/// [`TrainLayoutResult`]'s rows.
pub struct TrainLayoutHeader;

impl fmt::Display for TrainLayoutHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "    fused layouts: rows × row groups  s/epoch  max |Δ| of the trained weights vs the rule's layout",
        )
    }
}

/// A row of a training case's fused layouts, under [`TrainLayoutHeader`].
impl fmt::Display for TrainLayoutResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "    {:>3} × {}  ", self.rows, self.split)?;
        match &self.refused {
            None => write!(f, "{:>10.4}  {:.1e}", self.seconds_per_epoch, self.max_abs_diff),
            Some(why) => write!(f, "refused: {why}"),
        }
    }
}

/// GPU milliseconds per kernel (`--profile`), largest first, under a line with their total:
/// several lines, the last without a line break.
pub struct ProfileTable<'a> {
    /// Milliseconds per kernel.
    pub gpu_ms: &'a BTreeMap<String, f64>,
    /// What the times are per (`plan`, `one-epoch train call`).
    pub per: &'a str,
}

impl fmt::Display for ProfileTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: f64 = self.gpu_ms.values().sum();
        let mut rows: Vec<_> = self.gpu_ms.iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(a.1));
        write!(f, "    GPU time per {}: {total:.3} ms", self.per)?;
        for (k, v) in rows {
            write!(f, "\n    {k:<22} {v:>10.3} ms {:>5.1} %", 100.0 * v / total.max(f64::MIN_POSITIVE))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are the HalfCheetah reference sizes of `bench mbpo`'s documentation, and
    /// the config they make is the reference's with those sizes.
    #[test]
    fn mbpo_defaults_are_the_halfcheetah_reference() {
        let c = MbpoCase::default();
        c.check().unwrap();
        assert_eq!((c.obs_dim, c.act_dim, c.rollouts, c.length, c.freq), (17, 6, 100_000, 1, 250));
        assert_eq!((c.updates, c.batch, c.hidden), (40, 256, 256));
        assert_eq!((c.members, c.model_layers, c.model_hidden, c.elites), (7, 4, 200, 5));
        let cfg = c.config();
        assert_eq!(cfg.rollout.rollouts_per_step, 400);
        assert_eq!(cfg.rollouts_per_batch(), 100_000);
        // mbrl-lib's HalfCheetah buffer: 400 × 250 rollouts × 4 trainings per 1 000-step epoch.
        assert_eq!(cfg.model_buffer_capacity(), 400_000);
        assert_eq!(cfg.model.hidden, vec![200; 4]);
        assert_eq!((cfg.train.epochs, cfg.train.patience, cfg.train.num_elites), (5, 0, 5));
        assert_eq!(cfg.sac.actor_hidden, vec![256, 256]);
    }

    /// Every impossible size is refused naming its flag, all at once. Catches a check that is
    /// missing or names another flag.
    #[test]
    fn mbpo_case_refuses_bad_sizes_naming_the_flag() {
        let bad = |edit: &dyn Fn(&mut MbpoCase), flag: &str| {
            let mut c = MbpoCase::default();
            edit(&mut c);
            let e = c.check().expect_err(flag).to_string();
            assert!(e.contains(flag), "{flag}: {e}");
        };
        bad(&|c| c.rollouts = 0, "--rollouts");
        bad(&|c| c.rollouts = 1100, "--rollouts"); // not a multiple of 250
        bad(&|c| c.length = 0, "--length");
        bad(&|c| c.length = crate::mbpo::MAX_ROLLOUT_LENGTH + 1, "--length");
        bad(&|c| c.updates = 0, "--updates");
        bad(&|c| c.updates = crate::sac::MAX_UPDATES_PER_STEP + 1, "--updates");
        bad(&|c| c.batch = 0, "--batch");
        bad(&|c| c.hidden = 0, "--hidden");
        bad(&|c| c.members = 0, "--members");
        bad(&|c| c.elites = 0, "--elites");
        bad(&|c| c.elites = 8, "--elites");
        bad(&|c| c.model_hidden = 0, "--model-hidden");
        bad(&|c| c.model_layers = 0, "--model-layers");
        bad(&|c| c.freq = 0, "--freq");
        bad(&|c| c.dataset = 0, "--dataset");
        bad(&|c| c.train_epochs = 0, "--train-epochs");
        bad(&|c| c.repeats = 0, "--repeats");
        let mut c = MbpoCase { freq: 0, repeats: 0, ..MbpoCase::default() };
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("--freq") && e.contains("--repeats"), "all at once: {e}");
        // A minibatch larger than the model ring (250 × 4 trainings per 1 000-step epoch) is
        // the MBPO config's own refusal.
        c = MbpoCase { rollouts: 250, batch: 2000, ..MbpoCase::default() };
        assert!(c.check().unwrap_err().to_string().contains("sac.batch_size"));
        // The small lavapipe sizes of the help text are fine.
        let small = MbpoCase {
            rollouts: 2000,
            updates: 2,
            hidden: 64,
            model_hidden: 64,
            dataset: 1000,
            train_epochs: 2,
            repeats: 3,
            ..MbpoCase::default()
        };
        small.check().unwrap();
    }

    /// Per environment step: the submission of updates and action every step, the rollouts and
    /// the training once per `freq` steps, each at its median.
    #[test]
    fn mbpo_parts_amortise_over_freq_train_model() {
        let p = MbpoParts::amortise(&[12.0, 10.0, 30.0], &[500.0, 250.0, 260.0, 240.0, 900.0], &[2500.0], 250);
        assert_eq!((p.act_update.p50_ms, p.act_update.p90_ms, p.act_update.calls_per_step), (12.0, 30.0, 1.0));
        assert_eq!(p.act_update.ms_per_step, 12.0);
        assert_eq!((p.rollouts.p50_ms, p.rollouts.p90_ms), (260.0, 900.0));
        assert_eq!(p.rollouts.calls_per_step, 1.0 / 250.0);
        assert!((p.rollouts.ms_per_step - 1.04).abs() < 1e-12);
        assert!((p.training.ms_per_step - 10.0).abs() < 1e-12);
        assert!((p.ms_per_step() - (12.0 + (260.0 + 2500.0) / 250.0)).abs() < 1e-12);
        // Every step trains and rolls out at freq 1.
        let p = MbpoParts::amortise(&[1.0], &[2.0], &[3.0], 1);
        assert_eq!(p.ms_per_step(), 6.0);
    }
}
