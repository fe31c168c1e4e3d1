//! CEM model-predictive control on the GPU (PETS, Chua et al. 2018): candidate sampling,
//! trajectory-sampling rollouts through a learned ensemble (or the task's true dynamics),
//! elite selection and the distribution update — a whole plan recorded into one command buffer,
//! submitted once, with one small readback (the plan's mean sequence and its predicted return).
//!
//! The planner is an assembly of kernel owners (`kernels::cem`, `kernels::rollout`,
//! `kernels::mlp`) split along its seams: the model on the device (`device_model`), the
//! workspace and the recording of a plan (`workspace`), the warm start (`warm_start`) and
//! budgeted, anytime planning (`realtime`).
//!
//! # Which plan is returned
//! One rule serves [`Planner::plan`], [`Planner::plan_batch`] and the budgeted
//! [`Planner::plan_with`]: with `return_best_iteration = false` (the default, mbrl-lib's
//! `return_mean_elites`) the result is the sampling mean after the last iteration that ran; with
//! `true` it is the mean after the iteration whose elites had the highest mean return, so more
//! iterations never lower the predicted return. `plan` with the default rule records every
//! iteration into one submission; with `return_best_iteration` it runs one submission per
//! iteration (it must read each iteration's statistics). Either way the same observations, seed
//! and iteration count give the same plan from `plan` and from `plan_with(Budget::Iterations(n))`,
//! and the next plan warm-starts from the returned sequence shifted by one step.

mod config;
mod device_model;
mod realtime;
pub mod reference;
mod warm_start;
mod workspace;

pub use config::{
    MlpKernel, ModelStep, PlannerConfig, PlannerKind, Propagation, Sampling, MAX_HORIZON, MAX_ITERATIONS,
};
pub use realtime::{AsyncPlanner, Budget, FallbackCount, PlanOutcome, PlanStatus};

use std::time::Duration;

use crate::env::Task;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Profiler, RecordStats};
use crate::kernels::cem::CemKernels;
use crate::kernels::mlp::{MlpKernels, MlpRowsKernels};
use crate::kernels::mlp_coop::{CoopShape, MlpCoopKernels};
use crate::kernels::mlp_fused::{FusedShape, MlpFusedKernels};
use crate::kernels::model_step::{ModelStepKernels, StepNetwork};
use crate::kernels::rollout::{AnalyticKernels, RolloutKernels};
use crate::kernels::PlanLayouts;
use crate::model::Ensemble;
use device_model::{rows_windows, DeviceModel, Packing};
use warm_start::WarmStart;
use workspace::Workspace;

/// What the planner rolls out.
#[derive(Debug, Clone)]
pub enum Dynamics {
    /// A learned ensemble (PETS).
    Ensemble(Ensemble),
    /// The task's own WGSL `env_step` (MPC with a known model).
    Analytic,
}

/// Candidate returns and elites of the last CEM iteration of the last plan (for inspection
/// and tests; reading them costs a GPU round trip).
#[derive(Debug, Clone, PartialEq)]
pub struct LastIteration {
    /// `[n_batch · population]`: return of each candidate averaged over its particles.
    pub candidate_returns: Vec<f32>,
    /// `[n_batch · n_elites]`: candidate indices, best first.
    pub elites: Vec<u32>,
}

/// The result of one plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The action to execute now: the first step of `actions`.
    pub action: Vec<f32>,
    /// The optimised mean action sequence, `[horizon, act_dim]` row-major.
    pub actions: Vec<f32>,
    /// Mean return (over particles) of the returned iteration's elites: the predicted return.
    pub predicted_return: f32,
    /// Return of the best candidate of the returned iteration.
    pub best_return: f32,
    /// CEM iterations run.
    pub iterations: usize,
}

/// The kernels that roll candidates out.
enum DynamicsKernels {
    /// The task's own dynamics.
    Analytic(AnalyticKernels),
    /// A learned ensemble: the rollout family, the kernel that runs the network and, where a
    /// model step is one dispatch (`planner.model_step`), that dispatch's kernel.
    Ensemble { rollout: RolloutKernels, net: NetKernels, step: Option<ModelStepKernels> },
}

/// The kernel that runs the ensemble's network in a model step (`planner.mlp_kernel`).
enum NetKernels {
    /// One tiled dispatch per layer.
    Tiled(MlpKernels),
    /// One row dispatch per layer and member (CPU rasterisers).
    Rows(MlpRowsKernels),
    /// One dispatch for the whole network.
    Fused(MlpFusedKernels),
    /// One dispatch for the whole network on cooperative matrices (f16 operands).
    Coop(MlpCoopKernels),
}

impl NetKernels {
    /// The kernel `choice` asks for on `ctx` for `ensemble`, with a configuration error where
    /// the network does not fit the one named.
    fn choose(ctx: &GpuContext, cfg: &PlannerConfig, ensemble: &Ensemble) -> Result<Self> {
        let rows_fit = rows_windows(ensemble).is_some();
        let dims: Vec<usize> = ensemble.spec.widths();
        // Rows through the network per step of one plan.
        let members = if cfg.propagation == Propagation::Expectation { ensemble.spec.n_members } else { 1 };
        let rows = (cfg.max_population() * cfg.particles * members) as u64;
        let fused = match cfg.fused_layout {
            Some(s) => FusedShape::with_layout(&dims, ctx.limits(), s.rows4, s.cols, s.split),
            None => FusedShape::for_network(&dims, ctx.limits(), rows),
        };
        Ok(match (cfg.mlp_kernel, fused) {
            (MlpKernel::Tiled, _) => NetKernels::Tiled(MlpKernels::new(ctx)?),
            (MlpKernel::Rows, _) if !rows_fit => {
                return Err(Error::config(
                    "planner.mlp_kernel",
                    "rows needs every layer to have at most 256 outputs and fit four 64 KiB weight windows; use tiled",
                ))
            }
            (MlpKernel::Rows, _) => NetKernels::Rows(MlpRowsKernels::new(ctx)?),
            (MlpKernel::Fused, Err(why)) => {
                return Err(Error::config("planner.mlp_kernel", format!("fused: {why}; use tiled")))
            }
            (MlpKernel::Fused, Ok(shape)) => NetKernels::Fused(MlpFusedKernels::new(ctx, shape)?),
            (MlpKernel::Coop16, _) => {
                let shape = CoopShape::for_network(ctx, &dims)
                    .map_err(|why| Error::config("planner.mlp_kernel", format!("coop16: {why}; use fused or auto")))?;
                NetKernels::Coop(MlpCoopKernels::new(ctx, shape)?)
            }
            (MlpKernel::Auto, _) if rows_fit && ctx.is_software() => NetKernels::Rows(MlpRowsKernels::new(ctx)?),
            (MlpKernel::Auto, Ok(shape)) if !ctx.is_software() => NetKernels::Fused(MlpFusedKernels::new(ctx, shape)?),
            (MlpKernel::Auto, _) => NetKernels::Tiled(MlpKernels::new(ctx)?),
        })
    }

    /// The model step's one-dispatch kernel where `cfg.model_step` asks for it and it can run:
    /// the network on the fused or coop16 kernel, TS1 or TS∞ (every slot holds one particle), and, for
    /// `auto`, the crate's own task WGSL (a custom task's is compiled with every runtime check,
    /// which the network's products should not pay). A configuration error where `fused` was
    /// asked for and cannot run.
    fn model_step(
        &self,
        ctx: &GpuContext,
        layouts: &PlanLayouts,
        cfg: &PlannerConfig,
        task: &Task,
    ) -> Result<Option<ModelStepKernels>> {
        let explicit = match cfg.model_step {
            ModelStep::Split => return Ok(None),
            ModelStep::Fused => true,
            ModelStep::Auto => false,
        };
        let refuse = |why: String| {
            if explicit {
                Err(Error::config("planner.model_step", format!("fused: {why}; use split or auto")))
            } else {
                Ok(None)
            }
        };
        let network = match self {
            NetKernels::Fused(fk) => StepNetwork::Fused(fk.shape),
            NetKernels::Coop(ck) => StepNetwork::Coop(ck.shape),
            _ => return refuse(format!("needs the fused or coop16 network kernel, this planner runs {}", self.name())),
        };
        if cfg.propagation == Propagation::Expectation {
            return refuse("expectation propagation averages every member's outputs: needs ts1 or tsinf".into());
        }
        if !explicit && !crate::kernels::is_builtin_task(&task.wgsl) {
            return Ok(None);
        }
        Ok(Some(ModelStepKernels::new(ctx, layouts, &task.name, &task.wgsl, network)?))
    }

    /// The name used in configs.
    fn name(&self) -> &'static str {
        match self {
            NetKernels::Tiled(_) => "tiled",
            NetKernels::Rows(_) => "rows",
            NetKernels::Fused(_) => "fused",
            NetKernels::Coop(_) => "coop16",
        }
    }
}

/// Every kernel a plan records.
struct PlanKernels {
    cem: CemKernels,
    dynamics: DynamicsKernels,
}

/// A CEM planner bound to a GPU, a task and its dynamics.
pub struct Planner {
    ctx: GpuContext,
    task: Task,
    cfg: PlannerConfig,
    lower: Vec<f32>,
    upper: Vec<f32>,
    n_elites: usize,
    particles: usize,
    kernels: PlanKernels,
    model: Option<DeviceModel>,
    ws: Option<Workspace>,
    call: u32,
    /// Smoothed wall time of one CEM iteration (submission to readback), for budgets.
    iteration_time: Option<Duration>,
    /// A submission abandoned at a deadline, waited for before the workspace is reused.
    inflight: Option<wgpu::SubmissionIndex>,
    warm: WarmStart,
    /// Dispatches of the last plan's submission.
    last_dispatches: u64,
    /// iCEM: a previous plan left elites in the archive (its first iteration appends them).
    have_archive: bool,
    /// Candidates per plan of the last iteration that ran (iCEM's vary).
    last_population: usize,
}

/// The planner's action bounds: the config's where given (which may only narrow the task's),
/// else the task's; every pair finite and ordered.
fn action_bounds(task: &Task, cfg: &PlannerConfig) -> Result<(Vec<f64>, Vec<f64>)> {
    let lower = cfg.action_lower.clone().unwrap_or_else(|| task.action_lower.clone());
    let upper = cfg.action_upper.clone().unwrap_or_else(|| task.action_upper.clone());
    if lower.len() != task.act_dim || upper.len() != task.act_dim {
        return Err(Error::config("planner.action_lower/action_upper", format!("need {} values each", task.act_dim)));
    }
    if lower.iter().zip(&upper).any(|(l, u)| !(l.is_finite() && u.is_finite() && l < u)) {
        return Err(Error::config(
            "planner.action_lower/action_upper",
            "every lower bound must be finite and below its finite upper bound",
        ));
    }
    // Actions outside the task's bounds would be planned with but never applied (the
    // environment clips them), and a learned model would be trained on actions never taken.
    let outside = |v: &[f64], l: &[f64], u: &[f64]| v.iter().zip(l.iter().zip(u)).any(|(x, (l, u))| x < l || x > u);
    if outside(&lower, &task.action_lower, &task.action_upper)
        || outside(&upper, &task.action_lower, &task.action_upper)
    {
        return Err(Error::config(
            "planner.action_lower/action_upper",
            format!(
                "{lower:?}..{upper:?} lies outside the task's bounds {:?}..{:?}; planner bounds may only narrow them",
                task.action_lower, task.action_upper
            ),
        ));
    }
    Ok((lower, upper))
}

/// The kernels of `dynamics` for `task` (a learned ensemble: the rollout family, the network's
/// kernels and the one-dispatch model step where it applies, and the uploaded model; or the
/// task's own WGSL dynamics), with the particles per candidate.
fn dynamics_kernels(
    ctx: &GpuContext,
    cem: &CemKernels,
    task: &Task,
    cfg: &PlannerConfig,
    dynamics: Dynamics,
) -> Result<(DynamicsKernels, Option<DeviceModel>, usize)> {
    Ok(match dynamics {
        Dynamics::Ensemble(ensemble) => {
            ensemble.validate()?;
            if ensemble.spec.obs_dim != task.obs_dim || ensemble.spec.act_dim != task.act_dim {
                return Err(Error::InvalidInput(format!(
                    "the ensemble maps obs {} + act {}, the task {} has obs {} and act {}",
                    ensemble.spec.obs_dim, ensemble.spec.act_dim, task.name, task.obs_dim, task.act_dim
                )));
            }
            let rollout = RolloutKernels::new(ctx, &cem.layouts, &task.name, &task.wgsl)?;
            let net = NetKernels::choose(ctx, cfg, &ensemble)?;
            let step = net.model_step(ctx, &cem.layouts, cfg, task)?;
            let packing = match &net {
                NetKernels::Tiled(_) => Packing::Layers,
                NetKernels::Rows(_) => Packing::RowsWindows,
                NetKernels::Fused(_) => Packing::Network,
                NetKernels::Coop(_) => Packing::NetworkF16,
            };
            let model = DeviceModel::upload(ctx, ensemble, packing)?;
            (DynamicsKernels::Ensemble { rollout, net, step }, Some(model), cfg.particles)
        }
        Dynamics::Analytic => {
            if !task.has_dynamics {
                return Err(Error::InvalidInput(format!(
                    "task {} has no WGSL env_step for analytic planning",
                    task.name
                )));
            }
            (DynamicsKernels::Analytic(AnalyticKernels::new(ctx, &cem.layouts, &task.name, &task.wgsl)?), None, 1)
        }
    })
}

impl Planner {
    /// Builds a planner: validates the config against the task and the model, builds (or takes
    /// from the context's cache) the kernels, uploads the model and reserves the workspace of
    /// one plan, so that size limits surface here rather than in a control loop.
    pub fn new(ctx: &GpuContext, task: Task, dynamics: Dynamics, cfg: PlannerConfig) -> Result<Self> {
        task.validate()?;
        cfg.validate()?;
        let (lower, upper) = action_bounds(&task, &cfg)?;
        let cem = CemKernels::new(ctx)?;
        let (kernels, model, particles) = dynamics_kernels(ctx, &cem, &task, &cfg, dynamics)?;
        let lower: Vec<f32> = lower.iter().map(|v| *v as f32).collect();
        let upper: Vec<f32> = upper.iter().map(|v| *v as f32).collect();
        let mut planner = Self {
            ctx: ctx.clone(),
            n_elites: cfg.n_elites(),
            particles,
            warm: WarmStart::new(&lower, &upper, cfg.horizon, cfg.keep_last_solution),
            task,
            cfg,
            lower,
            upper,
            kernels: PlanKernels { cem, dynamics: kernels },
            model,
            have_archive: false,
            last_population: 0,
            ws: None,
            call: 0,
            iteration_time: None,
            inflight: None,
            last_dispatches: 0,
        };
        planner.reserve(1)?;
        Ok(planner)
    }

    /// Sizes the workspace for batches of `n_batch` plans: checks every buffer and grid against
    /// the device's limits, allocates, and binds. [`Planner::new`] reserves one plan; call this
    /// before a control loop that plans batches, so that a limit surfaces before planning
    /// starts. A different size forgets the warm start; the same size does nothing; a size the
    /// device cannot hold is refused and leaves the planner as it was.
    pub fn reserve(&mut self, n_batch: usize) -> Result<()> {
        if n_batch == 0 {
            return Err(Error::InvalidInput("reserve at least one plan".into()));
        }
        if self.ws.as_ref().map(|w| w.n_batch) == Some(n_batch) {
            return Ok(());
        }
        let timeout = Duration::from_secs_f64(self.cfg.gpu_timeout_s);
        if !self.settle_inflight(timeout)? {
            return Err(Error::Timeout { waited: timeout });
        }
        // Built before the old one is dropped: a refused size leaves the planner as it was.
        let ws = self.build_workspace(n_batch)?;
        self.ws = Some(ws);
        self.reset()?;
        self.ctx.check()
    }

    /// Replaces the ensemble's parameters and normaliser (same architecture), keeping the
    /// compiled kernels, the workspace and the warm start: the step after retraining.
    pub fn set_ensemble(&mut self, ensemble: &Ensemble) -> Result<()> {
        let model =
            self.model.as_mut().ok_or_else(|| Error::InvalidInput("this planner uses analytic dynamics".into()))?;
        model.write(&self.ctx, ensemble)
    }

    /// The kernel that runs the learned network (`tiled`, `rows` or `fused`, as
    /// `planner.mlp_kernel` resolved on this adapter); `None` for analytic dynamics.
    pub fn network_kernel(&self) -> Option<&'static str> {
        match &self.kernels.dynamics {
            DynamicsKernels::Ensemble { net, .. } => Some(net.name()),
            DynamicsKernels::Analytic(_) => None,
        }
    }

    /// How a model step is dispatched (`fused`: one dispatch; `split`: the network, then
    /// `propagate`), as `planner.model_step` resolved; `None` for analytic dynamics.
    pub fn model_step(&self) -> Option<&'static str> {
        match &self.kernels.dynamics {
            DynamicsKernels::Ensemble { step: Some(_), .. } => Some(ModelStep::Fused.name()),
            DynamicsKernels::Ensemble { step: None, .. } => Some(ModelStep::Split.name()),
            DynamicsKernels::Analytic(_) => None,
        }
    }

    /// The fused kernel's layout, when the fused kernel runs the network.
    pub fn fused_layout(&self) -> Option<FusedShape> {
        match &self.kernels.dynamics {
            DynamicsKernels::Ensemble { net: NetKernels::Fused(k), .. } => Some(k.shape),
            _ => None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &PlannerConfig {
        &self.cfg
    }

    /// The task planned for.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// Number of elites per iteration.
    pub fn n_elites(&self) -> usize {
        self.n_elites
    }

    /// Particles evaluated per candidate (1 for analytic dynamics).
    pub fn particles(&self) -> usize {
        self.particles
    }

    /// Model steps (rows through the network or the true dynamics) per plan of one state.
    pub fn model_steps_per_plan(&self) -> u64 {
        (self.cfg.candidates_per_plan() * self.particles * self.cfg.horizon) as u64
    }

    /// The ensemble, if planning with a learned model.
    pub fn ensemble(&self) -> Option<&Ensemble> {
        self.model.as_ref().map(|m| &m.ensemble)
    }

    /// Forgets the warm start: the next plan starts from the middle of the action bounds.
    pub fn reset(&mut self) -> Result<()> {
        if let Some(ws) = &self.ws {
            let init = self.warm.reset(ws.n_batch);
            self.ctx.queue.write_buffer(&ws.mean, 0, bytemuck::cast_slice(&init));
        }
        self.have_archive = false;
        Ok(())
    }

    /// Reads back the last iteration's candidate returns and elites (MPPI ranks no elites).
    pub fn last_iteration(&self) -> Result<LastIteration> {
        let ws = self.ws.as_ref().ok_or_else(|| Error::InvalidInput("no plan has run yet".into()))?;
        if self.last_population == 0 {
            return Err(Error::InvalidInput("no plan has run yet".into()));
        }
        let elites = if self.cfg.kind == PlannerKind::Mppi {
            Vec::new()
        } else {
            self.ctx.read_buffer(&ws.elites, ws.n_batch * self.n_elites)?
        };
        Ok(LastIteration {
            candidate_returns: self.ctx.read_buffer(&ws.cand_returns, ws.n_batch * self.last_population)?,
            elites,
        })
    }

    /// Plans from one observation.
    pub fn plan(&mut self, obs: &[f32]) -> Result<Plan> {
        let mut plans = self.plan_batch(&[obs])?;
        Ok(plans.remove(0))
    }

    /// Plans for several independent states in the same dispatches (vectorised environments,
    /// several agents). Plan `b` keeps its own warm start and random stream; the plan of
    /// `observations[b]` is the same whether it is planned alone (as `b = 0`) or in a batch at
    /// position 0. A batch size other than the reserved one re-reserves (see
    /// [`Planner::reserve`]) and so resets the warm start.
    pub fn plan_batch<O: AsRef<[f32]>>(&mut self, observations: &[O]) -> Result<Vec<Plan>> {
        if self.cfg.return_best_iteration {
            let all = self.cfg.effective_iterations();
            return Ok(self.plan_batch_with(observations, Budget::Iterations(all))?.batch);
        }
        Ok(self.plan_recorded(observations, None)?.0)
    }

    /// Plans from `obs` with every dispatch timed on the GPU (see [`Profiler`]): the plan, the
    /// dispatches by kernel and the GPU milliseconds by kernel. Always one submission, whatever
    /// `return_best_iteration` says; per-dispatch passes make it slightly slower than `plan`.
    pub fn plan_profiled(&mut self, obs: &[f32], profiler: &Profiler) -> Result<(Plan, RecordStats)> {
        let (mut plans, stats) = self.plan_recorded(&[obs], Some(profiler))?;
        Ok((plans.remove(0), stats))
    }

    /// Plans made so far: the position of the planner's random stream (each plan draws from its
    /// own part of it).
    pub fn calls(&self) -> u32 {
        self.call
    }

    /// Moves the random stream to `calls` plans made (to continue a saved run exactly).
    pub fn set_calls(&mut self, calls: u32) {
        self.call = calls;
    }

    /// Dispatches recorded by the last plan (all iterations of one submission).
    pub fn last_dispatches(&self) -> u64 {
        self.last_dispatches
    }

    fn plan_recorded<O: AsRef<[f32]>>(
        &mut self,
        observations: &[O],
        profiler: Option<&Profiler>,
    ) -> Result<(Vec<Plan>, RecordStats)> {
        let flat = self.flatten(observations)?;
        let n_batch = self.prepare(&flat, observations.len())?;
        let ws = self.ws.as_ref().expect("prepare reserved the workspace");
        let (h, a) = (self.cfg.horizon, self.task.act_dim);
        let iterations = self.cfg.effective_iterations();
        let (encoder, profile) = self.encode(ws, 0..iterations, self.cfg.keep_last_solution, profiler);
        self.last_population = self.iteration_params(n_batch, iterations - 1).population as usize;
        let timeout = Duration::from_secs_f64(self.cfg.gpu_timeout_s);
        let out = self.ctx.submit_and_read(encoder, &ws.staging, n_batch * h * a + 2 * n_batch, timeout)?;
        let stats = profile.read(&self.ctx, profiler, timeout)?;
        self.last_dispatches = stats.dispatches;
        self.call = self.call.wrapping_add(1);
        self.have_archive = self.cfg.kind == PlannerKind::Icem;
        // The GPU shifted its copy of the mean in the same submission; the host copy follows.
        self.warm.advance(&out[..n_batch * h * a]);
        let plan_stats = &out[n_batch * h * a..];
        let plans = (0..n_batch)
            .map(|b| {
                let actions = out[b * h * a..(b + 1) * h * a].to_vec();
                Plan {
                    action: actions[..a].to_vec(),
                    actions,
                    predicted_return: plan_stats[2 * b],
                    best_return: plan_stats[2 * b + 1],
                    iterations,
                }
            })
            .collect();
        Ok((plans, stats))
    }

    /// Checks observations (flattened, `n_batch` of them), reserves the workspace and writes the
    /// per-plan inputs: observations, the initial variance, the warm start and the parameters.
    fn prepare(&mut self, flat: &[f32], n_batch: usize) -> Result<usize> {
        let timeout = Duration::from_secs_f64(self.cfg.gpu_timeout_s);
        if !self.settle_inflight(timeout)? {
            return Err(Error::Timeout { waited: timeout });
        }
        self.reserve(n_batch)?;
        self.ctx.check()?;
        let ws = self.ws.as_ref().expect("reserve built the workspace");
        let q = &self.ctx.queue;
        q.write_buffer(&ws.obs, 0, bytemuck::cast_slice(flat));
        q.write_buffer(&ws.var, 0, bytemuck::cast_slice(&self.warm.initial_var(n_batch)));
        if !self.cfg.keep_last_solution {
            q.write_buffer(&ws.mean, 0, bytemuck::cast_slice(&self.warm.initial_mean(n_batch)));
        }
        if self.cfg.kind == PlannerKind::Mppi {
            // MPPI smooths its first step towards the action the previous plan chose.
            let offset = (2 * self.task.act_dim * 4) as u64;
            q.write_buffer(&ws.bounds, offset, bytemuck::cast_slice(&self.warm.past(n_batch)));
        }
        q.write_buffer(&ws.params, 0, &self.params_bytes(n_batch, ws.params_stride));
        Ok(n_batch)
    }

    /// Waits at most `limit` for a submission abandoned at a deadline (it still owns the
    /// workspace); true when none is left.
    fn settle_inflight(&mut self, limit: Duration) -> Result<bool> {
        let Some(index) = self.inflight.take() else { return Ok(true) };
        match self.ctx.wait(Some(index.clone()), limit) {
            Ok(()) => Ok(true),
            Err(Error::Timeout { .. }) => {
                self.inflight = Some(index);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Checks a batch of observations and flattens it.
    fn flatten<O: AsRef<[f32]>>(&self, observations: &[O]) -> Result<Vec<f32>> {
        if observations.is_empty() {
            return Err(Error::InvalidInput("plan_batch needs at least one observation".into()));
        }
        let d = self.task.obs_dim;
        let mut flat = Vec::with_capacity(observations.len() * d);
        for (b, o) in observations.iter().enumerate() {
            let o = o.as_ref();
            if o.len() != d {
                return Err(Error::InvalidInput(format!(
                    "observation {b} has {} values, task {} expects {d}",
                    o.len(),
                    self.task.name
                )));
            }
            if let Some(i) = o.iter().position(|v| !v.is_finite()) {
                return Err(Error::InvalidInput(format!(
                    "observation {b} has a non-finite value {} at index {i}",
                    o[i]
                )));
            }
            flat.extend_from_slice(o);
        }
        Ok(flat)
    }
}
