//! CEM model-predictive control on the GPU (PETS, Chua et al. 2018): candidate sampling,
//! trajectory-sampling rollouts through a learned ensemble (or the task's true dynamics),
//! elite selection and the distribution update — a whole plan recorded into one command buffer,
//! submitted once, with one small readback (the plan's mean sequence and its predicted return).

mod config;
mod realtime;
pub mod reference;

pub use config::{CemConfig, MlpKernel, Propagation, Sampling, MAX_HORIZON, MAX_ITERATIONS};
pub use realtime::{AsyncPlanner, Budget, PlanOutcome, PlanStatus};

use std::time::Duration;

use wgpu::util::DeviceExt;

use crate::env::Task;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, GpuContext};
use crate::kernels::mlp::{self as mlp_k, Activation, LayerParams, MlpKernels, MlpRowsKernels, RowsParams};
use crate::kernels::{self, PlanLayouts, PlanParams, WG_SIZE};
use crate::model::Ensemble;

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
    /// Mean return (over particles) of the last iteration's elites: the predicted return.
    pub predicted_return: f32,
    /// Return of the best candidate of the last iteration.
    pub best_return: f32,
    /// CEM iterations run.
    pub iterations: usize,
}

struct PlanPipelines {
    sample: wgpu::ComputePipeline,
    particle_mean: wgpu::ComputePipeline,
    rank: wgpu::ComputePipeline,
    update: wgpu::ComputePipeline,
    shift: wgpu::ComputePipeline,
    init: Option<wgpu::ComputePipeline>,
    prepare: Option<wgpu::ComputePipeline>,
    propagate: Option<wgpu::ComputePipeline>,
    analytic: Option<wgpu::ComputePipeline>,
}

struct GpuModel {
    ensemble: Ensemble,
    weights: Vec<wgpu::Buffer>,
    biases: Vec<wgpu::Buffer>,
    consts: wgpu::Buffer,
    /// Per layer, the row kernel's uniform weight windows (`mlp_kernel` = rows).
    rows: Option<Vec<wgpu::Buffer>>,
}

/// One layer's dispatches: a tiled product over all members, or one row dispatch per member.
enum LayerDispatch {
    Tiled(wgpu::BindGroup, (u32, u32, u32)),
    Rows(wgpu::ComputePipeline, Vec<(wgpu::BindGroup, u32)>),
}

fn rows_windows(e: &Ensemble) -> Option<Vec<Vec<f32>>> {
    e.layers
        .iter()
        .map(|l| {
            let mut all = Vec::new();
            for m in 0..e.spec.n_members {
                all.extend(mlp_k::pack_rows_windows(&l.weight, m, l.in_dim, l.out_dim)?);
            }
            Some(all)
        })
        .collect()
}

/// Buffers and bind groups for one batch size, built once and reused by every plan.
struct Workspace {
    n_batch: usize,
    params_stride: u64,
    params: wgpu::Buffer,
    params_bg: wgpu::BindGroup,
    rollout_bg: wgpu::BindGroup,
    cem_bg: wgpu::BindGroup,
    layers: Vec<LayerDispatch>,
    obs: wgpu::Buffer,
    mean: wgpu::Buffer,
    var: wgpu::Buffer,
    cand_returns: wgpu::Buffer,
    elites: wgpu::Buffer,
    plan_stats: wgpu::Buffer,
    staging: wgpu::Buffer,
    grid_particles: (u32, u32),
    grid_candidates: (u32, u32),
    grid_elements: (u32, u32),
    grid_plan: (u32, u32),
}

/// A CEM planner bound to a GPU, a task and its dynamics.
pub struct Planner {
    ctx: GpuContext,
    task: Task,
    cfg: CemConfig,
    lower: Vec<f32>,
    upper: Vec<f32>,
    n_elites: usize,
    particles: usize,
    layouts: PlanLayouts,
    mlp: Option<MlpKernels>,
    mlp_rows: Option<MlpRowsKernels>,
    pipelines: PlanPipelines,
    model: Option<GpuModel>,
    bounds: wgpu::Buffer,
    ws: Option<Workspace>,
    call: u32,
    /// Smoothed wall time of one CEM iteration (submission to readback), for budgets.
    iteration_time: Option<Duration>,
    /// A submission abandoned at a deadline, waited for before the workspace is reused.
    inflight: Option<wgpu::SubmissionIndex>,
    /// Host copy of the warm start per plan (what a plan returns when nothing fits its budget).
    warm_start: Vec<f32>,
}

fn check_u32(what: &str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::LimitExceeded {
        what: what.to_string(),
        requested: v,
        limit: "u32 index range",
        max: u32::MAX as u64,
        hint: "lower population, particles or batch size",
    })
}

impl Planner {
    /// Builds a planner: validates the config against the task and the model, compiles the
    /// kernels and uploads the model. Buffers are sized on the first `plan`.
    pub fn new(ctx: &GpuContext, task: Task, dynamics: Dynamics, cfg: CemConfig) -> Result<Self> {
        task.validate()?;
        cfg.validate()?;
        let lower = cfg.action_lower.clone().unwrap_or_else(|| task.action_lower.clone());
        let upper = cfg.action_upper.clone().unwrap_or_else(|| task.action_upper.clone());
        if lower.len() != task.act_dim || upper.len() != task.act_dim {
            return Err(Error::config(
                "planner.action_lower/action_upper",
                format!("need {} values each", task.act_dim),
            ));
        }
        if lower.iter().zip(&upper).any(|(l, u)| !(l.is_finite() && u.is_finite() && l < u)) {
            return Err(Error::config(
                "planner.action_lower/action_upper",
                "every lower bound must be finite and below its finite upper bound",
            ));
        }
        let (model, particles) = match &dynamics {
            Dynamics::Ensemble(ens) => {
                ens.validate()?;
                if ens.spec.obs_dim != task.obs_dim || ens.spec.act_dim != task.act_dim {
                    return Err(Error::InvalidInput(format!(
                        "the ensemble maps obs {} + act {}, the task {} has obs {} and act {}",
                        ens.spec.obs_dim, ens.spec.act_dim, task.name, task.obs_dim, task.act_dim
                    )));
                }
                (Some(ens.clone()), cfg.particles)
            }
            Dynamics::Analytic => {
                if !task.has_dynamics {
                    return Err(Error::InvalidInput(format!(
                        "task {} has no WGSL env_step for analytic planning",
                        task.name
                    )));
                }
                (None, 1)
            }
        };
        let layouts = PlanLayouts::new(ctx)?;
        let cem_module = kernels::create_module(ctx, "cem", &[kernels::COMMON_WGSL, kernels::CEM_WGSL].concat())?;
        let cem = |entry: &str| {
            kernels::create_pipeline(ctx, &format!("cem.{entry}"), &layouts.cem_pipeline, &cem_module, entry, true)
        };
        let mut pipelines = PlanPipelines {
            sample: cem("sample_candidates")?,
            particle_mean: cem("particle_mean")?,
            rank: cem("rank_elites")?,
            update: cem("update_distribution")?,
            shift: cem("shift_solution")?,
            init: None,
            prepare: None,
            propagate: None,
            analytic: None,
        };
        let rollout_pipe = |module: &wgpu::ShaderModule, entry: &str| {
            kernels::create_pipeline(ctx, &format!("rollout.{entry}"), &layouts.rollout_pipeline, module, entry, true)
        };
        let mut mlp = None;
        let mut mlp_rows = None;
        let gpu_model = match model {
            Some(ensemble) => {
                let module = kernels::create_module(
                    ctx,
                    &format!("rollout/{}", task.name),
                    &[kernels::COMMON_WGSL, &task.wgsl, kernels::ROLLOUT_WGSL].concat(),
                )?;
                pipelines.init = Some(rollout_pipe(&module, "init_particles")?);
                pipelines.prepare = Some(rollout_pipe(&module, "prepare_inputs")?);
                pipelines.propagate = Some(rollout_pipe(&module, "propagate")?);
                mlp = Some(MlpKernels::new(ctx)?);
                let fits = rows_windows(&ensemble).is_some();
                let use_rows = match cfg.mlp_kernel {
                    MlpKernel::Tiled => false,
                    MlpKernel::Rows if !fits => {
                        return Err(Error::config(
                            "planner.mlp_kernel",
                            "rows needs every layer to have at most 256 outputs and fit four 64 KiB weight windows; use tiled",
                        ))
                    }
                    MlpKernel::Rows => true,
                    MlpKernel::Auto => fits && ctx.is_software(),
                };
                if use_rows {
                    mlp_rows = Some(MlpRowsKernels::new(ctx)?);
                }
                Some(Self::upload(ctx, ensemble, use_rows)?)
            }
            None => {
                let module = kernels::create_module(
                    ctx,
                    &format!("analytic/{}", task.name),
                    &[kernels::COMMON_WGSL, &task.wgsl, kernels::ANALYTIC_WGSL].concat(),
                )?;
                pipelines.analytic = Some(rollout_pipe(&module, "rollout_analytic")?);
                None
            }
        };
        let lower: Vec<f32> = lower.iter().map(|v| *v as f32).collect();
        let upper: Vec<f32> = upper.iter().map(|v| *v as f32).collect();
        let bounds = ctx.storage_buffer_init("planner.bounds", &[lower.clone(), upper.clone()].concat());
        Ok(Self {
            ctx: ctx.clone(),
            n_elites: cfg.n_elites(),
            particles,
            task,
            cfg,
            lower,
            upper,
            layouts,
            mlp,
            mlp_rows,
            pipelines,
            model: gpu_model,
            bounds,
            ws: None,
            call: 0,
            iteration_time: None,
            inflight: None,
            warm_start: Vec::new(),
        })
    }

    fn upload(ctx: &GpuContext, ensemble: Ensemble, use_rows: bool) -> Result<GpuModel> {
        for (l, layer) in ensemble.layers.iter().enumerate() {
            ctx.check_buffer_size(
                &format!("layer {l} weights"),
                (layer.weight.len() * 4) as u64,
                true,
                "use a smaller network",
            )?;
        }
        ctx.scoped("model upload", || {
            let weights = ensemble
                .layers
                .iter()
                .enumerate()
                .map(|(l, layer)| ctx.storage_buffer_init(&format!("model.layer{l}.weight"), &layer.weight))
                .collect();
            let biases = ensemble
                .layers
                .iter()
                .enumerate()
                .map(|(l, layer)| ctx.storage_buffer_init(&format!("model.layer{l}.bias"), &layer.bias))
                .collect();
            let consts: Vec<f32> =
                [ensemble.input_mean.as_slice(), &ensemble.input_std, &ensemble.max_logvar, &ensemble.min_logvar]
                    .concat();
            let consts = ctx.storage_buffer_init("model.consts", &consts);
            let rows = use_rows.then(|| {
                rows_windows(&ensemble)
                    .expect("checked to fit when the row kernel was chosen")
                    .iter()
                    .enumerate()
                    .map(|(l, w)| {
                        ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(&format!("model.layer{l}.rows")),
                            contents: bytemuck::cast_slice(w),
                            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                        })
                    })
                    .collect()
            });
            GpuModel { ensemble, weights, biases, consts, rows }
        })
    }

    /// Replaces the ensemble's parameters and normaliser (same architecture), keeping the
    /// compiled kernels, the workspace and the warm start: the step after retraining.
    pub fn set_ensemble(&mut self, ensemble: &Ensemble) -> Result<()> {
        ensemble.validate()?;
        let model =
            self.model.as_mut().ok_or_else(|| Error::InvalidInput("this planner uses analytic dynamics".into()))?;
        if ensemble.spec != model.ensemble.spec {
            return Err(Error::InvalidInput(format!(
                "the new ensemble {:?} differs from the planner's {:?}; build a new planner",
                ensemble.spec, model.ensemble.spec
            )));
        }
        let q = &self.ctx.queue;
        for (l, layer) in ensemble.layers.iter().enumerate() {
            q.write_buffer(&model.weights[l], 0, bytemuck::cast_slice(&layer.weight));
            q.write_buffer(&model.biases[l], 0, bytemuck::cast_slice(&layer.bias));
        }
        let consts: Vec<f32> =
            [ensemble.input_mean.as_slice(), &ensemble.input_std, &ensemble.max_logvar, &ensemble.min_logvar].concat();
        q.write_buffer(&model.consts, 0, bytemuck::cast_slice(&consts));
        if let Some(rows) = &model.rows {
            let windows = rows_windows(ensemble).expect("same architecture as the one that fitted");
            for (buf, w) in rows.iter().zip(&windows) {
                q.write_buffer(buf, 0, bytemuck::cast_slice(w));
            }
        }
        model.ensemble = ensemble.clone();
        Ok(())
    }

    /// The configuration in use.
    pub fn config(&self) -> &CemConfig {
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
        (self.cfg.population * self.particles * self.cfg.horizon * self.cfg.iterations) as u64
    }

    /// The ensemble, if planning with a learned model.
    pub fn ensemble(&self) -> Option<&Ensemble> {
        self.model.as_ref().map(|m| &m.ensemble)
    }

    /// Forgets the warm start: the next plan starts from the middle of the action bounds.
    pub fn reset(&mut self) -> Result<()> {
        if let Some(ws) = &self.ws {
            let init = self.initial_mean(ws.n_batch);
            self.ctx.queue.write_buffer(&ws.mean, 0, bytemuck::cast_slice(&init));
            self.warm_start = init;
        }
        Ok(())
    }

    /// The warm start after a plan whose mean sequences are `mean` (`[n_batch, horizon, act_dim]`):
    /// shifted one step, the last step at the middle of the bounds (host twin of `shift_solution`).
    fn shifted(&self, mean: &[f32]) -> Vec<f32> {
        let (h, a) = (self.cfg.horizon, self.task.act_dim);
        let mut out = mean.to_vec();
        for (i, v) in out.iter_mut().enumerate() {
            let (t, k) = ((i / a) % h, i % a);
            *v = if t + 1 < h { mean[i + a] } else { 0.5 * (self.lower[k] + self.upper[k]) };
        }
        out
    }

    /// Reads back the last iteration's candidate returns and elites.
    pub fn last_iteration(&self) -> Result<LastIteration> {
        let ws = self.ws.as_ref().ok_or_else(|| Error::InvalidInput("no plan has run yet".into()))?;
        Ok(LastIteration {
            candidate_returns: self.ctx.read_buffer(&ws.cand_returns, ws.n_batch * self.cfg.population)?,
            elites: self.ctx.read_buffer(&ws.elites, ws.n_batch * self.n_elites)?,
        })
    }

    fn initial_mean(&self, n_batch: usize) -> Vec<f32> {
        let step: Vec<f32> = self.lower.iter().zip(&self.upper).map(|(l, u)| 0.5 * (l + u)).collect();
        step.repeat(n_batch * self.cfg.horizon)
    }

    fn initial_var(&self, n_batch: usize) -> Vec<f32> {
        let step: Vec<f32> = self.lower.iter().zip(&self.upper).map(|(l, u)| (u - l) * (u - l) / 16.0).collect();
        step.repeat(n_batch * self.cfg.horizon)
    }

    /// Plans from one observation.
    pub fn plan(&mut self, obs: &[f32]) -> Result<Plan> {
        let mut plans = self.plan_batch(&[obs])?;
        Ok(plans.remove(0))
    }

    /// Plans for several independent states in the same dispatches (vectorised environments,
    /// several agents). Plan `b` keeps its own warm start and random stream; the plan of
    /// `observations[b]` is the same whether it is planned alone (as `b = 0`) or in a batch at
    /// position 0. Changing the batch size rebuilds the workspace and resets the warm start.
    pub fn plan_batch<O: AsRef<[f32]>>(&mut self, observations: &[O]) -> Result<Vec<Plan>> {
        let flat = self.flatten(observations)?;
        let n_batch = self.prepare(&flat, observations.len())?;
        let ws = self.ws.as_ref().expect("prepare built the workspace");
        let (h, a) = (self.cfg.horizon, self.task.act_dim);
        let encoder = self.encode(ws, 0..self.cfg.iterations, self.cfg.keep_last_solution);
        let timeout = Duration::from_secs_f64(self.cfg.gpu_timeout_s);
        let out = self.ctx.submit_and_read(encoder, &ws.staging, n_batch * h * a + 2 * n_batch, timeout)?;
        self.call = self.call.wrapping_add(1);
        self.warm_start = if self.cfg.keep_last_solution {
            self.shifted(&out[..n_batch * h * a])
        } else {
            self.initial_mean(n_batch)
        };
        let stats = &out[n_batch * h * a..];
        Ok((0..n_batch)
            .map(|b| {
                let actions = out[b * h * a..(b + 1) * h * a].to_vec();
                Plan {
                    action: actions[..a].to_vec(),
                    actions,
                    predicted_return: stats[2 * b],
                    best_return: stats[2 * b + 1],
                    iterations: self.cfg.iterations,
                }
            })
            .collect())
    }

    /// Checks observations (flattened, `n_batch` of them), sizes the workspace and writes the
    /// per-plan inputs: observations, the initial variance, the warm start and the parameters.
    fn prepare(&mut self, flat: &[f32], n_batch: usize) -> Result<usize> {
        let timeout = Duration::from_secs_f64(self.cfg.gpu_timeout_s);
        if !self.settle_inflight(timeout)? {
            return Err(Error::Timeout { waited: timeout });
        }
        if self.ws.as_ref().map(|w| w.n_batch) != Some(n_batch) {
            self.ws = None;
            self.ws = Some(self.build_workspace(n_batch)?);
            self.reset()?;
        }
        self.ctx.check()?;
        let ws = self.ws.as_ref().expect("workspace was built above");
        let q = &self.ctx.queue;
        q.write_buffer(&ws.obs, 0, bytemuck::cast_slice(flat));
        q.write_buffer(&ws.var, 0, bytemuck::cast_slice(&self.initial_var(n_batch)));
        if !self.cfg.keep_last_solution {
            q.write_buffer(&ws.mean, 0, bytemuck::cast_slice(&self.initial_mean(n_batch)));
        }
        q.write_buffer(&ws.params, 0, &self.params_bytes(n_batch, ws.params_stride));
        Ok(n_batch)
    }

    /// Waits at most `limit` for a submission abandoned at a deadline (it still owns the
    /// workspace); true when none is left.
    fn settle_inflight(&mut self, limit: Duration) -> Result<bool> {
        let Some(index) = self.inflight.take() else { return Ok(true) };
        match self.ctx.device.poll(wgpu::PollType::Wait { submission_index: Some(index.clone()), timeout: Some(limit) })
        {
            Ok(_) => {
                self.ctx.check()?;
                Ok(true)
            }
            Err(wgpu::PollError::Timeout) => {
                self.inflight = Some(index);
                Ok(false)
            }
            Err(e) => {
                self.ctx.check()?;
                Err(Error::Gpu(e.to_string()))
            }
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

    fn base_params(&self, n_batch: usize) -> PlanParams {
        let (local_slots, n_members, model_out, in_dim, flags) = match &self.model {
            Some(m) => {
                let s = &m.ensemble.spec;
                let e = s.n_members;
                let pk = self.cfg.population * self.particles;
                let ls = if self.cfg.propagation == Propagation::Expectation { pk * e } else { pk };
                let mut flags = 0;
                if s.probabilistic {
                    flags |= kernels::FLAG_SAMPLE_NOISE;
                }
                if s.learned_reward {
                    flags |= kernels::FLAG_LEARNED_REWARD;
                }
                (ls, e, s.model_out(), s.in_dim(), flags)
            }
            None => (self.cfg.population, 1, self.task.obs_dim, self.task.obs_dim + self.task.act_dim, 0),
        };
        let mut flags = flags;
        if self.cfg.sampling == Sampling::ClippedNormal {
            flags |= kernels::FLAG_CLIPPED_NORMAL;
        }
        PlanParams {
            n_batch: n_batch as u32,
            population: self.cfg.population as u32,
            particles: self.particles as u32,
            horizon: self.cfg.horizon as u32,
            obs_dim: self.task.obs_dim as u32,
            act_dim: self.task.act_dim as u32,
            n_members: n_members as u32,
            local_slots: local_slots as u32,
            n_elites: self.n_elites as u32,
            iteration: 0,
            t: 0,
            call: self.call,
            seed_lo: self.cfg.seed as u32,
            seed_hi: (self.cfg.seed >> 32) as u32,
            propagation: match self.cfg.propagation {
                Propagation::Ts1 => 0,
                Propagation::Tsinf => 1,
                Propagation::Expectation => 2,
            },
            flags,
            alpha: self.cfg.alpha as f32,
            model_out: model_out as u32,
            in_dim: in_dim as u32,
            _pad0: 0,
        }
    }

    fn params_bytes(&self, n_batch: usize, stride: u64) -> Vec<u8> {
        let base = self.base_params(n_batch);
        let (iters, h) = (self.cfg.iterations, self.cfg.horizon);
        let mut bytes = vec![0u8; stride as usize * iters * h];
        for it in 0..iters {
            for t in 0..h {
                let p = PlanParams { iteration: it as u32, t: t as u32, ..base };
                let off = (it * h + t) * stride as usize;
                bytes[off..off + std::mem::size_of::<PlanParams>()].copy_from_slice(bytemuck::bytes_of(&p));
            }
        }
        bytes
    }

    fn build_workspace(&self, n_batch: usize) -> Result<Workspace> {
        let ctx = &self.ctx;
        let limits = ctx.limits();
        let cfg = &self.cfg;
        let (p, h, a, d) =
            (cfg.population as u64, cfg.horizon as u64, self.task.act_dim as u64, self.task.obs_dim as u64);
        let b = n_batch as u64;
        let k = self.particles as u64;
        let n = b * p * k;
        let base = self.base_params(n_batch);
        let hint = "lower population, particles, horizon or the batch size";
        // Every quantity below is checked before any buffer is created.
        let n32 = check_u32("particles in flight (batch × population × particles)", n)?;
        let (slots, max_width, in_dim, out_cols) = match &self.model {
            Some(m) => {
                let s = &m.ensemble.spec;
                let slots = b * base.local_slots as u64;
                check_u32("local slots × members", base.local_slots as u64 * s.n_members as u64)?;
                let widest = s.hidden.iter().copied().max().unwrap_or(0) as u64;
                (slots, widest, s.in_dim() as u64, s.out_cols() as u64)
            }
            None => (0, 0, 0, 0),
        };
        let sizes = [
            ("state (batch × population × particles × obs_dim × 4 B)", n * d * 4),
            ("candidate actions (batch × population × horizon × act_dim × 4 B)", b * p * h * a * 4),
            ("model inputs (slots × in_dim × 4 B)", slots * in_dim * 4),
            ("hidden activations (slots × widest hidden layer × 4 B)", slots * max_width * 4),
            ("model outputs (slots × outputs × 4 B)", slots * out_cols * 4),
        ];
        for (what, bytes) in sizes {
            ctx.check_buffer_size(what, bytes, true, hint)?;
            check_u32(what, bytes / 4)?;
        }
        let max_wg = limits.max_compute_workgroups_per_dimension;
        let grid_particles = grid_1d(n32, WG_SIZE, max_wg)?;
        let grid_candidates = grid_1d(check_u32("candidates", b * p)?, WG_SIZE, max_wg)?;
        let grid_elements = grid_1d(check_u32("candidate action values", b * p * h * a)?, WG_SIZE, max_wg)?;
        let grid_plan = grid_1d(check_u32("plan values", b * h * a)?, WG_SIZE, max_wg)?;
        let align = limits.min_uniform_buffer_offset_alignment.max(1) as u64;
        let params_stride = (std::mem::size_of::<PlanParams>() as u64).div_ceil(align) * align;
        let params_len = params_stride * (cfg.iterations * cfg.horizon) as u64;
        ctx.check_buffer_size(
            "plan parameters (iterations × horizon × 256 B)",
            params_len,
            false,
            "lower iterations or horizon",
        )?;
        let layer_params: Vec<LayerParams> = match &self.model {
            Some(m) => {
                let last = m.ensemble.layers.len() - 1;
                m.ensemble
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(l, layer)| LayerParams {
                        n_batch: n_batch as u32,
                        local_slots: base.local_slots,
                        n_members: base.n_members,
                        in_dim: layer.in_dim as u32,
                        out_dim: layer.out_dim as u32,
                        activation: if l == last { Activation::Identity as u32 } else { Activation::Silu as u32 },
                        store_pre: 0,
                        _pad0: 0,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let mut layer_groups = Vec::new();
        for lp in &layer_params {
            layer_groups.push(lp.workgroups(ctx)?);
        }
        ctx.scoped("planner workspace", || {
            let sb = |label: &str, len: u64| ctx.storage_buffer(label, len as usize);
            let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("planner.params"),
                size: params_len,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let params_bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("planner.params"),
                layout: &self.layouts.params,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &params,
                        offset: 0,
                        size: wgpu::BufferSize::new(std::mem::size_of::<PlanParams>() as u64),
                    }),
                }],
            });
            let obs = sb("planner.obs", b * d);
            let state = sb("planner.state", n * d);
            let track = sb("planner.track", n * 2);
            let actions = sb("planner.actions", b * p * h * a);
            let x0 = sb("planner.x0", slots * in_dim);
            let slot_of = sb("planner.slot_of", n);
            let h_a = sb("planner.hidden_a", slots * max_width);
            let h_b = sb("planner.hidden_b", slots * max_width);
            let out = sb("planner.out", slots * out_cols);
            let mean = sb("planner.mean", b * h * a);
            let var = sb("planner.var", b * h * a);
            let cand_returns = sb("planner.cand_returns", b * p);
            let elites = sb("planner.elites", b * self.n_elites as u64);
            let plan_stats = sb("planner.plan_stats", b * 2);
            let staging = ctx.staging_buffer("planner.readback", (2 * b * h * a + 2 * b) * 4);
            let dummy_consts;
            let consts = match &self.model {
                Some(m) => &m.consts,
                None => {
                    dummy_consts = sb("planner.no_model", 1);
                    &dummy_consts
                }
            };
            let rollout_bg = kernels::bind_buffers(
                ctx,
                "planner.rollout",
                &self.layouts.rollout,
                &[&obs, &state, &track, &actions, consts, &x0, &slot_of, &out],
            );
            let cem_bg = kernels::bind_buffers(
                ctx,
                "planner.cem",
                &self.layouts.cem,
                &[&mean, &var, &self.bounds, &actions, &track, &cand_returns, &elites, &plan_stats],
            );
            let mut layers = Vec::new();
            let no_aux = sb("planner.no_aux", 1);
            if let (Some(m), Some(mlp)) = (&self.model, &self.mlp) {
                let n_layers = layer_params.len();
                for (l, lp) in layer_params.iter().enumerate() {
                    let input = if l == 0 {
                        &x0
                    } else if l % 2 == 1 {
                        &h_a
                    } else {
                        &h_b
                    };
                    let output = if l + 1 == n_layers {
                        &out
                    } else if l % 2 == 0 {
                        &h_a
                    } else {
                        &h_b
                    };
                    if let (Some(rows), Some(rk)) = (&m.rows, &self.mlp_rows) {
                        let (i, o) = (lp.in_dim as usize, lp.out_dim as usize);
                        let (out4, rpc, chunks) = mlp_k::rows_chunking(i, o).expect("checked to fit");
                        let window = (mlp_k::ROWS_WINDOW * 16) as u64;
                        let mut per_member = Vec::new();
                        for member in 0..lp.n_members {
                            let rp = RowsParams {
                                n_batch: lp.n_batch,
                                local_slots: lp.local_slots,
                                n_members: lp.n_members,
                                in_dim: lp.in_dim,
                                out_dim: lp.out_dim,
                                out4: out4 as u32,
                                rows_per_chunk: rpc as u32,
                                activation: lp.activation,
                                member,
                                _pad0: 0,
                                _pad1: 0,
                                _pad2: 0,
                            };
                            let ubuf = ctx.uniform_buffer_init(&format!("mlp_rows.layer{l}.member{member}"), &[rp]);
                            let mut entries = vec![
                                wgpu::BindGroupEntry { binding: 0, resource: ubuf.as_entire_binding() },
                                wgpu::BindGroupEntry { binding: 1, resource: input.as_entire_binding() },
                                wgpu::BindGroupEntry { binding: 2, resource: m.biases[l].as_entire_binding() },
                                wgpu::BindGroupEntry { binding: 3, resource: output.as_entire_binding() },
                            ];
                            for c in 0..mlp_k::ROWS_CHUNKS {
                                // Windows past the layer's chunks repeat its first (never read).
                                let which = if c < chunks { c } else { 0 };
                                let offset = (member as u64 * chunks as u64 + which as u64) * window;
                                entries.push(wgpu::BindGroupEntry {
                                    binding: 4 + c as u32,
                                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                        buffer: &rows[l],
                                        offset,
                                        size: wgpu::BufferSize::new(window),
                                    }),
                                });
                            }
                            let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                                label: Some(&format!("mlp_rows.layer{l}.member{member}")),
                                layout: &rk.layout,
                                entries: &entries,
                            });
                            let block = lp.n_batch
                                * (kernels::local_block_start(member + 1, lp.local_slots, lp.n_members)
                                    - kernels::local_block_start(member, lp.local_slots, lp.n_members));
                            per_member.push((bg, block.div_ceil(WG_SIZE)));
                        }
                        layers.push(LayerDispatch::Rows(rk.forward_rows.clone(), per_member));
                    } else {
                        let ubuf = ctx.uniform_buffer_init(&format!("mlp.layer{l}.params"), std::slice::from_ref(lp));
                        let bg = kernels::bind_buffers(
                            ctx,
                            &format!("mlp.layer{l}"),
                            &mlp.layout,
                            &[&ubuf, input, &m.weights[l], &m.biases[l], output, &no_aux],
                        );
                        layers.push(LayerDispatch::Tiled(bg, layer_groups[l]));
                    }
                }
            }
            Workspace {
                n_batch,
                params_stride,
                params,
                params_bg,
                rollout_bg,
                cem_bg,
                layers,
                obs,
                mean,
                var,
                cand_returns,
                elites,
                plan_stats,
                staging,
                grid_particles,
                grid_candidates,
                grid_elements,
                grid_plan,
            }
        })
    }

    /// Records CEM iterations `its`, then copies the mean, the plan statistics and the variance
    /// to the staging buffer, then (with `shift`) the warm start for the next plan.
    fn encode(&self, ws: &Workspace, its: std::ops::Range<usize>, shift: bool) -> wgpu::CommandEncoder {
        let pl = &self.pipelines;
        let mut encoder =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("planner.plan") });
        let h = self.cfg.horizon;
        let offset = |it: usize, t: usize| ((it * h + t) as u64 * ws.params_stride) as u32;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("planner.cem"),
                timestamp_writes: None,
            });
            let run = |pass: &mut wgpu::ComputePass<'_>,
                       pipe: &wgpu::ComputePipeline,
                       bg: &wgpu::BindGroup,
                       off: u32,
                       grid: (u32, u32)| {
                pass.set_pipeline(pipe);
                pass.set_bind_group(0, &ws.params_bg, &[off]);
                pass.set_bind_group(1, bg, &[]);
                pass.dispatch_workgroups(grid.0, grid.1, 1);
            };
            for it in its {
                let off0 = offset(it, 0);
                run(&mut pass, &pl.sample, &ws.cem_bg, off0, ws.grid_elements);
                if let Some(analytic) = &pl.analytic {
                    run(&mut pass, analytic, &ws.rollout_bg, off0, ws.grid_particles);
                } else if let (Some(init), Some(prepare), Some(propagate), Some(mlp)) =
                    (&pl.init, &pl.prepare, &pl.propagate, &self.mlp)
                {
                    run(&mut pass, init, &ws.rollout_bg, off0, ws.grid_particles);
                    for t in 0..h {
                        run(&mut pass, prepare, &ws.rollout_bg, offset(it, t), ws.grid_particles);
                        for layer in &ws.layers {
                            match layer {
                                LayerDispatch::Tiled(bg, groups) => mlp.dispatch(&mut pass, bg, *groups),
                                LayerDispatch::Rows(pipeline, members) => {
                                    pass.set_pipeline(pipeline);
                                    for (bg, groups) in members {
                                        if *groups > 0 {
                                            pass.set_bind_group(0, bg, &[]);
                                            pass.dispatch_workgroups(*groups, 1, 1);
                                        }
                                    }
                                }
                            }
                        }
                        run(&mut pass, propagate, &ws.rollout_bg, offset(it, t), ws.grid_particles);
                    }
                }
                run(&mut pass, &pl.particle_mean, &ws.cem_bg, off0, ws.grid_candidates);
                run(&mut pass, &pl.rank, &ws.cem_bg, off0, ws.grid_candidates);
                run(&mut pass, &pl.update, &ws.cem_bg, off0, ws.grid_plan);
            }
        }
        let plan_bytes = (ws.n_batch * h * self.task.act_dim * 4) as u64;
        encoder.copy_buffer_to_buffer(&ws.mean, 0, &ws.staging, 0, Some(plan_bytes));
        encoder.copy_buffer_to_buffer(&ws.plan_stats, 0, &ws.staging, plan_bytes, Some((ws.n_batch * 8) as u64));
        encoder.copy_buffer_to_buffer(&ws.var, 0, &ws.staging, plan_bytes + (ws.n_batch * 8) as u64, Some(plan_bytes));
        if shift {
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("planner.shift"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pl.shift);
                pass.set_bind_group(0, &ws.params_bg, &[0]);
                pass.set_bind_group(1, &ws.cem_bg, &[]);
                pass.dispatch_workgroups(ws.grid_plan.0, ws.grid_plan.1, 1);
            }
            encoder.copy_buffer_to_buffer(&ws.var, 0, &ws.mean, 0, Some(plan_bytes));
        }
        encoder
    }
}
