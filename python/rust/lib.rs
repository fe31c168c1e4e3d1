//! `lookahead._lookahead`: the engine's Python bindings. Arrays cross as little-endian f32
//! bytes with their shapes checked here (the Python package turns numpy arrays into them and
//! back); every engine error becomes a Python exception carrying the engine's own message; the
//! GIL is released while the GPU works.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use lookahead::env::{Env, EnvKind, Step, Task as RTask};
use lookahead::error::Error;
use lookahead::gpu::{self, AdapterOptions, Backend, GpuContext, ShaderChecks};
use lookahead::model::{Ensemble as REnsemble, EnsembleSpec};
use lookahead::pets::{self, PetsConfig, Preset};
use lookahead::planner::{Budget, Dynamics, Plan, Planner as RPlanner, PlannerConfig};
use lookahead::train::checkpoint::Checkpoint;
use lookahead::train::{TrainConfig, Trainer as RTrainer};

create_exception!(_lookahead, LookaheadError, pyo3::exceptions::PyException, "Any error of the engine.");
create_exception!(_lookahead, ConfigError, LookaheadError, "An unknown key or an impossible setting.");
create_exception!(_lookahead, InputError, LookaheadError, "Wrong sizes, non-finite values or other bad input.");
create_exception!(_lookahead, LimitError, LookaheadError, "A size beyond what the device allows.");
create_exception!(_lookahead, GpuError, LookaheadError, "No adapter, a shader, the device or a timeout.");
create_exception!(_lookahead, FileError, LookaheadError, "A file that cannot be read, written or trusted.");

/// Keys of `[planner]` / `[train]` that their defaults leave unset.
const PLANNER_OPTIONAL: &[&str] = &["planner.action_lower", "planner.action_upper"];
const TRAIN_OPTIONAL: &[&str] = &["train.clip_grad_norm"];

/// The engine's error as the matching Python exception, with the engine's message.
fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidConfig { .. } | Error::InvalidConfigs(_) => ConfigError::new_err(msg),
        Error::InvalidInput(_) => InputError::new_err(msg),
        Error::LimitExceeded { .. } => LimitError::new_err(msg),
        Error::NoAdapter { .. }
        | Error::RequestDevice(_)
        | Error::ShaderCompile { .. }
        | Error::Gpu(_)
        | Error::OutOfMemory { .. }
        | Error::DeviceLost { .. }
        | Error::Timeout { .. } => GpuError::new_err(msg),
        Error::Weights { .. } | Error::Io { .. } | Error::Plot { .. } => FileError::new_err(msg),
        _ => LookaheadError::new_err(msg),
    }
}

trait OrPy<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> OrPy<T> for lookahead::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(py_err)
    }
}

/// `bytes` as `n` f32 values (little endian), or an InputError naming `what`.
fn f32s(what: &str, bytes: &[u8], n: usize) -> PyResult<Vec<f32>> {
    if bytes.len() != 4 * n {
        return Err(InputError::new_err(format!(
            "invalid input: {what}: {} values, expected {n}",
            bytes.len() as f64 / 4.0
        )));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn to_bytes<'py>(py: Python<'py>, v: &[f32]) -> Bound<'py, PyBytes> {
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    PyBytes::new(py, &raw)
}

/// Runs `f` on the object behind `m` with the GIL released, taking the lock only once the GIL is
/// released (so two Python threads sharing the object take turns instead of deadlocking).
fn with_unlocked<T: Send, U: Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    f: impl FnOnce(&mut T) -> lookahead::Result<U> + Send,
) -> PyResult<U> {
    py.detach(|| match m.lock() {
        Ok(mut g) => Ok(f(&mut g)),
        Err(_) => Err(()),
    })
    .map_err(|_| LookaheadError::new_err("an earlier call panicked while holding this object"))?
    .py()
}

fn lock<T>(m: &Mutex<T>) -> PyResult<std::sync::MutexGuard<'_, T>> {
    m.lock().map_err(|_| LookaheadError::new_err("an earlier call panicked while holding this object"))
}

/// The adapters wgpu sees: a list of dicts with name, backend, driver and device_type.
#[pyfunction]
#[pyo3(signature = (backend=None))]
fn adapters(py: Python<'_>, backend: Option<&str>) -> PyResult<Vec<Py<PyDict>>> {
    let backend = backend.map(|b| b.parse::<Backend>()).transpose().py()?;
    let list = py.detach(|| gpu::list_adapters(backend));
    list.into_iter()
        .map(|a| {
            let d = PyDict::new(py);
            d.set_item("name", a.name)?;
            d.set_item("backend", a.backend)?;
            d.set_item("driver", a.driver)?;
            d.set_item("device_type", a.device_type)?;
            Ok(d.unbind())
        })
        .collect()
}

/// An open GPU device.
#[pyclass(module = "lookahead._lookahead", frozen)]
struct Context {
    ctx: GpuContext,
}

#[pymethods]
impl Context {
    #[new]
    #[pyo3(signature = (adapter=None, backend=None, shader_checks="policy"))]
    fn new(py: Python<'_>, adapter: Option<String>, backend: Option<&str>, shader_checks: &str) -> PyResult<Self> {
        let opts = AdapterOptions {
            name: adapter,
            backend: backend.map(|b| b.parse::<Backend>()).transpose().py()?,
            shader_checks: shader_checks.parse::<ShaderChecks>().py()?,
        };
        let ctx = py.detach(|| GpuContext::new(&opts)).py()?;
        Ok(Self { ctx })
    }

    /// The adapter: dict with name, backend, driver and device_type.
    fn adapter<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let a = self.ctx.adapter();
        let d = PyDict::new(py);
        d.set_item("name", &a.name)?;
        d.set_item("backend", &a.backend)?;
        d.set_item("driver", &a.driver)?;
        d.set_item("device_type", &a.device_type)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("Context({})", self.ctx.adapter())
    }
}

/// A planning task: sizes, action bounds and WGSL reward / termination (and dynamics).
#[pyclass(module = "lookahead._lookahead", frozen)]
#[derive(Clone)]
struct Task {
    task: RTask,
}

#[pymethods]
impl Task {
    /// A built-in task: "cartpole" or "pendulum".
    #[staticmethod]
    fn builtin(name: &str) -> PyResult<Self> {
        Ok(Self { task: name.parse::<EnvKind>().py()?.task() })
    }

    /// A task from WGSL source defining `env_reward` and `env_terminated` (and `env_step` when
    /// `has_dynamics`); checked for sizes and bounds here and compiled when a planner is made.
    #[staticmethod]
    #[pyo3(signature = (name, obs_dim, act_dim, action_lower, action_upper, wgsl, has_dynamics=false))]
    fn custom(
        name: String,
        obs_dim: usize,
        act_dim: usize,
        action_lower: Vec<f64>,
        action_upper: Vec<f64>,
        wgsl: String,
        has_dynamics: bool,
    ) -> PyResult<Self> {
        let task = RTask { name, obs_dim, act_dim, action_lower, action_upper, wgsl, has_dynamics };
        task.validate().py()?;
        Ok(Self { task })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.task.name
    }
    #[getter]
    fn obs_dim(&self) -> usize {
        self.task.obs_dim
    }
    #[getter]
    fn act_dim(&self) -> usize {
        self.task.act_dim
    }
    #[getter]
    fn action_lower(&self) -> Vec<f64> {
        self.task.action_lower.clone()
    }
    #[getter]
    fn action_upper(&self) -> Vec<f64> {
        self.task.action_upper.clone()
    }
    #[getter]
    fn wgsl(&self) -> &str {
        &self.task.wgsl
    }

    /// The task's WGSL reward and termination on `n` transitions (f32 bytes: before [n, obs_dim],
    /// act [n, act_dim], next [n, obs_dim]), run on the device: (rewards, terminated) lists.
    fn evaluate(
        &self,
        py: Python<'_>,
        ctx: &Context,
        n: usize,
        before: &[u8],
        act: &[u8],
        next: &[u8],
    ) -> PyResult<(Vec<f32>, Vec<bool>)> {
        let t = &self.task;
        let before = f32s("before", before, n * t.obs_dim)?;
        let act = f32s("act", act, n * t.act_dim)?;
        let next = f32s("next", next, n * t.obs_dim)?;
        let c = ctx.ctx.clone();
        let out = py
            .detach(|| {
                lookahead::kernels::rollout::evaluate_env(
                    &c, &t.name, &t.wgsl, t.obs_dim, t.act_dim, &before, &act, &next,
                )
            })
            .py()?;
        Ok(out.into_iter().unzip())
    }

    fn __repr__(&self) -> String {
        format!("Task({:?}, obs_dim={}, act_dim={})", self.task.name, self.task.obs_dim, self.task.act_dim)
    }
}

/// A probabilistic ensemble of MLPs (parameters and input normaliser), on the host.
#[pyclass(module = "lookahead._lookahead", frozen)]
#[derive(Clone)]
struct Ensemble {
    ens: REnsemble,
}

#[pymethods]
impl Ensemble {
    /// Randomly initialised ensemble (PETS initialisation), identity normaliser.
    #[staticmethod]
    #[pyo3(signature = (obs_dim, act_dim, members=7, hidden=vec![200, 200, 200, 200], seed=0, probabilistic=true, learned_reward=false))]
    fn random(
        obs_dim: usize,
        act_dim: usize,
        members: usize,
        hidden: Vec<usize>,
        seed: u64,
        probabilistic: bool,
        learned_reward: bool,
    ) -> PyResult<Self> {
        let spec = EnsembleSpec { n_members: members, obs_dim, act_dim, hidden, probabilistic, learned_reward };
        Ok(Self { ens: REnsemble::random(spec, seed).py()? })
    }

    /// Reads an ensemble file or a training checkpoint (safetensors; checksums verified).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        Ok(Self { ens: py.detach(|| REnsemble::load(&path)).py()? })
    }

    /// Writes the ensemble (safetensors, atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.ens.save(&path)).py()
    }

    /// The ensemble of the given members, in that order.
    fn select_members(&self, members: Vec<usize>) -> PyResult<Self> {
        Ok(Self { ens: self.ens.select_members(&members).py()? })
    }

    /// Architecture: dict with members, obs_dim, act_dim, hidden, probabilistic, learned_reward.
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.ens.spec;
        let d = PyDict::new(py);
        d.set_item("members", s.n_members)?;
        d.set_item("obs_dim", s.obs_dim)?;
        d.set_item("act_dim", s.act_dim)?;
        d.set_item("hidden", s.hidden.clone())?;
        d.set_item("probabilistic", s.probabilistic)?;
        d.set_item("learned_reward", s.learned_reward)?;
        Ok(d)
    }

    /// Every layer as (weight bytes [members, in, out], bias bytes [members, out], in, out),
    /// then the normaliser and log-variance bounds as bytes: (layers, input_mean, input_std,
    /// max_logvar, min_logvar).
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let layers = PyList::empty(py);
        for l in &self.ens.layers {
            layers.append((to_bytes(py, &l.weight), to_bytes(py, &l.bias), l.in_dim, l.out_dim))?;
        }
        let e = &self.ens;
        PyList::new(
            py,
            [
                layers.into_any(),
                to_bytes(py, &e.input_mean).into_any(),
                to_bytes(py, &e.input_std).into_any(),
                to_bytes(py, &e.max_logvar).into_any(),
                to_bytes(py, &e.min_logvar).into_any(),
            ],
        )
    }

    fn __repr__(&self) -> String {
        let s = &self.ens.spec;
        format!(
            "Ensemble(members={}, obs_dim={}, act_dim={}, hidden={:?})",
            s.n_members, s.obs_dim, s.act_dim, s.hidden
        )
    }
}

fn plan_dict<'py>(py: Python<'py>, p: &Plan) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("action", to_bytes(py, &p.action))?;
    d.set_item("actions", to_bytes(py, &p.actions))?;
    d.set_item("predicted_return", p.predicted_return)?;
    d.set_item("best_return", p.best_return)?;
    d.set_item("iterations", p.iterations)?;
    Ok(d)
}

/// A planner bound to a device, a task and its dynamics (an ensemble, or the task's own WGSL
/// dynamics when `ensemble` is None).
#[pyclass(module = "lookahead._lookahead", frozen)]
struct Planner {
    planner: Mutex<RPlanner>,
    obs_dim: usize,
}

#[pymethods]
impl Planner {
    #[new]
    #[pyo3(signature = (ctx, task, ensemble=None, sets=vec![]))]
    fn new(
        py: Python<'_>,
        ctx: &Context,
        task: &Task,
        ensemble: Option<&Ensemble>,
        sets: Vec<String>,
    ) -> PyResult<Self> {
        let cfg: PlannerConfig =
            lookahead::util::with_assignments(&PlannerConfig::default(), "planner", PLANNER_OPTIONAL, &sets).py()?;
        cfg.validate().py()?;
        let dynamics = match ensemble {
            Some(e) => Dynamics::Ensemble(e.ens.clone()),
            None => Dynamics::Analytic,
        };
        let (c, t) = (ctx.ctx.clone(), task.task.clone());
        let planner = py.detach(|| RPlanner::new(&c, t, dynamics, cfg)).py()?;
        Ok(Self { obs_dim: task.task.obs_dim, planner: Mutex::new(planner) })
    }

    /// One plan from `obs` (obs_dim f32 bytes): dict with action, actions (bytes), predicted_return,
    /// best_return, iterations.
    fn plan<'py>(&self, py: Python<'py>, obs: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let obs = f32s("observation", obs, self.obs_dim)?;
        let plan = with_unlocked(py, &self.planner, |p| p.plan(&obs))?;
        plan_dict(py, &plan)
    }

    /// Plans for `n` observations (n × obs_dim f32 bytes) in the same dispatches.
    fn plan_batch<'py>(&self, py: Python<'py>, obs: &[u8], n: usize) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let flat = f32s("observations", obs, n * self.obs_dim)?;
        let rows: Vec<&[f32]> = flat.chunks(self.obs_dim.max(1)).collect();
        let plans = with_unlocked(py, &self.planner, |p| p.plan_batch(&rows))?;
        plans.iter().map(|pl| plan_dict(py, pl)).collect()
    }

    /// A plan within a budget: `iterations` (at most that many) or `seconds` (return within that
    /// long); dict as `plan` plus iterations_done, timed_out, status, elapsed_s.
    #[pyo3(signature = (obs, iterations=None, seconds=None))]
    fn plan_with<'py>(
        &self,
        py: Python<'py>,
        obs: &[u8],
        iterations: Option<usize>,
        seconds: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let budget = match (iterations, seconds) {
            (Some(n), None) => Budget::Iterations(n),
            (None, Some(s)) if s.is_finite() && s > 0.0 => match Duration::try_from_secs_f64(s) {
                Ok(d) => Budget::Time(d),
                Err(_) => {
                    return Err(InputError::new_err(format!(
                        "invalid input: seconds = {} is longer than a time budget can be",
                        lookahead::util::short_float(s)
                    )))
                }
            },
            (None, Some(s)) => {
                return Err(InputError::new_err(format!(
                    "invalid input: seconds = {} must be finite and positive",
                    lookahead::util::short_float(s)
                )))
            }
            _ => return Err(InputError::new_err("invalid input: give exactly one of iterations and seconds")),
        };
        let obs = f32s("observation", obs, self.obs_dim)?;
        let out = with_unlocked(py, &self.planner, |p| p.plan_with(&obs, budget))?;
        let d = plan_dict(py, &out.plan)?;
        d.set_item("iterations_done", out.iterations_done)?;
        d.set_item("timed_out", out.timed_out)?;
        d.set_item("status", out.status.to_string())?;
        d.set_item("elapsed_s", out.elapsed.as_secs_f64())?;
        Ok(d)
    }

    /// Forgets the warm start (a new episode).
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        with_unlocked(py, &self.planner, |p| p.reset())
    }

    /// Replaces the ensemble's parameters (same architecture), e.g. after training.
    fn set_ensemble(&self, py: Python<'_>, ensemble: &Ensemble) -> PyResult<()> {
        let ens = &ensemble.ens;
        with_unlocked(py, &self.planner, |p| p.set_ensemble(ens))
    }

    /// The resolved configuration as JSON.
    fn config_json(&self) -> PyResult<String> {
        let p = lock(&self.planner)?;
        serde_json::to_string(p.config()).map_err(|e| LookaheadError::new_err(e.to_string()))
    }

    /// The network kernel in use ("fused", "tiled", "rows"), or None for analytic dynamics.
    fn network_kernel(&self) -> PyResult<Option<&'static str>> {
        Ok(lock(&self.planner)?.network_kernel())
    }

    /// How a model step is dispatched ("fused": one dispatch, "split": the network then
    /// propagate), or None for analytic dynamics.
    fn model_step(&self) -> PyResult<Option<&'static str>> {
        Ok(lock(&self.planner)?.model_step())
    }
}

/// Transitions for training: (obs, act, next_obs, reward, terminated), checked on the way in.
#[pyclass(module = "lookahead._lookahead", frozen)]
struct ReplayBuffer {
    buffer: Mutex<lookahead::train::ReplayBuffer>,
}

#[pymethods]
impl ReplayBuffer {
    #[new]
    fn new(obs_dim: usize, act_dim: usize) -> PyResult<Self> {
        if obs_dim == 0 || act_dim == 0 {
            return Err(InputError::new_err(format!(
                "invalid input: obs_dim {obs_dim} and act_dim {act_dim} must be at least 1"
            )));
        }
        Ok(Self { buffer: Mutex::new(lookahead::train::ReplayBuffer::new(obs_dim, act_dim)) })
    }

    /// Reads a buffer written by `save` (or a PETS run folder's `replay.*.safetensors`).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf, obs_dim: usize, act_dim: usize) -> PyResult<Self> {
        let b = py.detach(|| lookahead::train::ReplayBuffer::load(&path, obs_dim, act_dim)).py()?;
        Ok(Self { buffer: Mutex::new(b) })
    }

    /// Appends `n` transitions (f32 bytes, as `Trainer.train`); all or none are stored.
    fn extend(
        &self,
        n: usize,
        obs: &[u8],
        act: &[u8],
        next_obs: &[u8],
        reward: &[u8],
        terminated: Vec<bool>,
    ) -> PyResult<()> {
        let mut b = lock(&self.buffer)?;
        let (d, a) = (b.obs_dim(), b.act_dim());
        let rows = Transitions::parse(n, d, a, obs, act, next_obs, reward, terminated)?;
        // Checked into a copy first, so a bad row leaves the buffer as it was.
        let mut staged = b.clone();
        rows.push_into(&mut staged)?;
        *b = staged;
        Ok(())
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(lock(&self.buffer)?.len())
    }

    /// Writes the buffer as safetensors (atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let b = lock(&self.buffer)?.clone();
        py.detach(move || b.save(&path)).py()
    }

    #[getter]
    fn obs_dim(&self) -> PyResult<usize> {
        Ok(lock(&self.buffer)?.obs_dim())
    }

    #[getter]
    fn act_dim(&self) -> PyResult<usize> {
        Ok(lock(&self.buffer)?.act_dim())
    }
}

/// `n` transitions decoded from f32 bytes, sizes checked.
struct Transitions {
    n: usize,
    d: usize,
    a: usize,
    obs: Vec<f32>,
    act: Vec<f32>,
    next: Vec<f32>,
    reward: Vec<f32>,
    terminated: Vec<bool>,
}

impl Transitions {
    #[allow(clippy::too_many_arguments)]
    fn parse(
        n: usize,
        d: usize,
        a: usize,
        obs: &[u8],
        act: &[u8],
        next_obs: &[u8],
        reward: &[u8],
        terminated: Vec<bool>,
    ) -> PyResult<Self> {
        if terminated.len() != n {
            return Err(InputError::new_err(format!(
                "invalid input: terminated: {} values, expected {n}",
                terminated.len()
            )));
        }
        Ok(Self {
            n,
            d,
            a,
            obs: f32s("obs", obs, n * d)?,
            act: f32s("act", act, n * a)?,
            next: f32s("next_obs", next_obs, n * d)?,
            reward: f32s("reward", reward, n)?,
            terminated,
        })
    }

    fn push_into(&self, b: &mut lookahead::train::ReplayBuffer) -> PyResult<()> {
        let (d, a) = (self.d, self.a);
        for i in 0..self.n {
            b.push(
                &self.obs[i * d..(i + 1) * d],
                &self.act[i * a..(i + 1) * a],
                &self.next[i * d..(i + 1) * d],
                self.reward[i],
                self.terminated[i],
            )
            .py()?;
        }
        Ok(())
    }
}

/// Trains an ensemble on transitions (the PETS recipe: bootstrap, NLL, Adam, early stopping).
#[pyclass(module = "lookahead._lookahead", frozen)]
struct Trainer {
    trainer: Mutex<RTrainer>,
    /// The ensemble's observation and action sizes.
    dims: (usize, usize),
}

fn report_dict<'py>(py: Python<'py>, r: &lookahead::train::TrainReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("epochs", r.epochs)?;
    d.set_item("interrupted", r.interrupted)?;
    d.set_item("train_loss", r.train_loss.clone())?;
    d.set_item("val_mse", r.val_mse.clone())?;
    d.set_item("best_mse", r.best_mse.clone())?;
    d.set_item("elites", r.elites.clone())?;
    d.set_item("skipped_steps", r.skipped_steps)?;
    d.set_item("n_train", r.n_train)?;
    d.set_item("n_eval", r.n_eval)?;
    Ok(d)
}

#[pymethods]
impl Trainer {
    #[new]
    #[pyo3(signature = (ctx, ensemble, sets=vec![]))]
    fn new(py: Python<'_>, ctx: &Context, ensemble: &Ensemble, sets: Vec<String>) -> PyResult<Self> {
        let cfg: TrainConfig =
            lookahead::util::with_assignments(&TrainConfig::default(), "train", TRAIN_OPTIONAL, &sets).py()?;
        let (c, e) = (ctx.ctx.clone(), ensemble.ens.clone());
        let dims = (e.spec.obs_dim, e.spec.act_dim);
        let trainer = py.detach(|| RTrainer::new(&c, e, cfg)).py()?;
        Ok(Self { trainer: Mutex::new(trainer), dims })
    }

    /// Resumes from a checkpoint written by `save_checkpoint` (optionally with new settings).
    #[staticmethod]
    #[pyo3(signature = (ctx, path, sets=None))]
    fn load_checkpoint(py: Python<'_>, ctx: &Context, path: PathBuf, sets: Option<Vec<String>>) -> PyResult<Self> {
        let cfg: Option<TrainConfig> = sets
            .map(|s| lookahead::util::with_assignments(&TrainConfig::default(), "train", TRAIN_OPTIONAL, &s))
            .transpose()
            .py()?;
        let c = ctx.ctx.clone();
        let (trainer, dims) = py
            .detach(|| {
                Checkpoint::load(&path).and_then(|ck| {
                    let dims = (ck.ensemble.spec.obs_dim, ck.ensemble.spec.act_dim);
                    RTrainer::from_checkpoint(&c, &ck, cfg).map(|t| (t, dims))
                })
            })
            .py()?;
        Ok(Self { trainer: Mutex::new(trainer), dims })
    }

    #[allow(clippy::too_many_arguments)]
    /// Trains on `n` transitions given as f32 bytes: obs [n, obs_dim], act [n, act_dim],
    /// next_obs [n, obs_dim], reward [n] and terminated (n booleans); returns the report dict.
    fn train<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        obs: &[u8],
        act: &[u8],
        next_obs: &[u8],
        reward: &[u8],
        terminated: Vec<bool>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (d, a) = self.dims;
        let rows = Transitions::parse(n, d, a, obs, act, next_obs, reward, terminated)?;
        let mut buffer = lookahead::train::ReplayBuffer::new(d, a);
        rows.push_into(&mut buffer)?;
        let report = with_unlocked(py, &self.trainer, |t| t.train(&buffer))?;
        report_dict(py, &report)
    }

    /// Trains on every transition of `buffer`; returns the report dict.
    fn train_buffer<'py>(&self, py: Python<'py>, buffer: &ReplayBuffer) -> PyResult<Bound<'py, PyDict>> {
        let b = lock(&buffer.buffer)?.clone();
        let report = with_unlocked(py, &self.trainer, |t| t.train(&b))?;
        report_dict(py, &report)
    }

    /// The current parameters.
    fn ensemble(&self, py: Python<'_>) -> PyResult<Ensemble> {
        Ok(Ensemble { ens: with_unlocked(py, &self.trainer, |t| t.ensemble())? })
    }

    /// The elite members of the last training, best first.
    fn elites(&self) -> PyResult<Vec<usize>> {
        Ok(lock(&self.trainer)?.elites().to_vec())
    }

    /// Writes everything needed to resume training (parameters, Adam state, step count, random
    /// stream, settings) to a safetensors checkpoint.
    fn save_checkpoint(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        with_unlocked(py, &self.trainer, |t| t.checkpoint().and_then(|c| c.save(&path)))
    }
}

/// A gymnasium-style environment object driven from the PETS loop: `reset(seed) -> obs` and
/// `step(action) -> (obs, reward, terminated, truncated)` with lists of floats.
struct PyEnv {
    obj: Py<PyAny>,
    obs_dim: usize,
    act_dim: usize,
    bounds: (Vec<f64>, Vec<f64>),
    /// The first Python exception raised by the environment, re-raised after the loop stops.
    error: Arc<Mutex<Option<PyErr>>>,
}

impl PyEnv {
    /// `obj` stepped as `task`'s environment, and the slot its first exception is kept in.
    fn new(obj: Py<PyAny>, task: &RTask) -> (Self, Arc<Mutex<Option<PyErr>>>) {
        let error = Arc::new(Mutex::new(None));
        let env = PyEnv {
            obj,
            obs_dim: task.obs_dim,
            act_dim: task.act_dim,
            bounds: (task.action_lower.clone(), task.action_upper.clone()),
            error: error.clone(),
        };
        (env, error)
    }

    fn fail(&self, e: PyErr) -> Error {
        let msg = e.to_string();
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        Error::InvalidInput(format!("the environment raised: {msg}"))
    }

    fn obs(&self, what: &str, v: Vec<f64>) -> Result<Vec<f64>, Error> {
        if v.len() != self.obs_dim {
            return Err(Error::InvalidInput(format!(
                "{what} returned {} values, the task has obs_dim {}",
                v.len(),
                self.obs_dim
            )));
        }
        Ok(v)
    }
}

impl Env for PyEnv {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    fn act_dim(&self) -> usize {
        self.act_dim
    }
    fn action_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        self.bounds.clone()
    }
    fn reset(&mut self, seed: u64) -> Vec<f64> {
        // `Env::reset` cannot fail: an exception is kept and the loop is stopped at the next step.
        let out =
            Python::attach(|py| -> PyResult<Vec<f64>> { self.obj.bind(py).call_method1("reset", (seed,))?.extract() });
        match out {
            Ok(v) if v.len() == self.obs_dim => v,
            Ok(v) => {
                let e = InputError::new_err(format!(
                    "invalid input: reset returned {} values, the task has obs_dim {}",
                    v.len(),
                    self.obs_dim
                ));
                self.fail(e);
                vec![0.0; self.obs_dim]
            }
            Err(e) => {
                self.fail(e);
                vec![0.0; self.obs_dim]
            }
        }
    }
    fn step(&mut self, action: &[f64]) -> Result<Step, Error> {
        if let Ok(slot) = self.error.lock() {
            if let Some(e) = slot.as_ref() {
                return Err(Error::InvalidInput(format!("the environment raised: {e}")));
            }
        }
        let out = Python::attach(|py| -> PyResult<(Vec<f64>, f64, bool, bool)> {
            self.obj.bind(py).call_method1("step", (action.to_vec(),))?.extract()
        });
        let (obs, reward, terminated, truncated) = out.map_err(|e| self.fail(e))?;
        let obs = self.obs("step", obs)?;
        if !reward.is_finite() || obs.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput("the environment returned a non-finite observation or reward".into()));
        }
        Ok(Step { obs, reward, terminated, truncated })
    }
}

/// The PETS config of `env_base`'s `preset` with a TOML file's text and `key=value` assignments
/// applied (the same keys as the CLI), as TOML text.
#[pyfunction]
#[pyo3(signature = (env_base, preset="reference", config_toml=None, sets=vec![]))]
fn resolve_config(env_base: &str, preset: &str, config_toml: Option<&str>, sets: Vec<String>) -> PyResult<String> {
    let env: EnvKind = env_base.parse().py()?;
    let preset: Preset = preset.parse().py()?;
    Ok(PetsConfig::resolve(env, preset, config_toml, &sets).py()?.to_toml())
}

/// Runs PETS on a Python environment `env` (see PyEnv) planned with `task`, with the config
/// given as TOML text (from `resolve_config`); `external_env` names the environment in the run
/// folder's config. Shows the CLI's progress bar when `progress`; returns the trials as dicts.
#[pyfunction]
#[pyo3(signature = (ctx, env, task, config_toml, external_env, out=None, overwrite=false, resume=false, seed=None, progress=true))]
#[allow(clippy::too_many_arguments)]
fn run_pets<'py>(
    py: Python<'py>,
    ctx: &Context,
    env: Py<PyAny>,
    task: &Task,
    config_toml: &str,
    external_env: String,
    out: Option<PathBuf>,
    overwrite: bool,
    resume: bool,
    seed: Option<u64>,
    progress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cfg: PetsConfig =
        toml::from_str(config_toml).map_err(|e| ConfigError::new_err(format!("invalid config: {e}")))?;
    if let Some(s) = seed {
        cfg.seed = s;
    }
    cfg.external_env = Some(external_env);
    let t = &task.task;
    let (mut penv, error) = PyEnv::new(env, t);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    STOP_REQUESTED.store(false, Ordering::SeqCst);
    let (c, task) = (ctx.ctx.clone(), t.clone());
    // A signal handler that raised (pets.run's on a second Ctrl-C): raised again once the run
    // has stopped with its files consistent.
    let mut raised: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut bar = progress.then(|| pets::ProgressDisplay::new(&cfg));
        let mut on_step = |p: &pets::Progress| {
            if let Some(b) = bar.as_mut() {
                b.update(p);
            }
            // Ctrl-C in Python (pets.run's handler calls request_stop): stop after this step.
            if let Err(e) = Python::attach(|py| py.check_signals()) {
                raised.get_or_insert(e);
                flag.store(true, Ordering::SeqCst);
            }
            if STOP_REQUESTED.load(Ordering::SeqCst) {
                flag.store(true, Ordering::SeqCst);
            }
        };
        let r = pets::run(
            &c,
            &cfg,
            &mut penv,
            task,
            pets::RunOptions { out_dir: out, interrupt: Some(stop), progress: Some(&mut on_step), overwrite, resume },
        );
        if let Some(b) = bar {
            b.finish();
        }
        r
    });
    if let Some(e) = error.lock().ok().and_then(|mut s| s.take()) {
        return Err(e);
    }
    if let Some(e) = raised {
        return Err(e);
    }
    let summary = result.py()?;
    let d = PyDict::new(py);
    let trials = PyList::empty(py);
    for tr in &summary.trials {
        let td = PyDict::new(py);
        td.set_item("trial", tr.trial)?;
        td.set_item("env_step", tr.env_step)?;
        td.set_item("return", tr.total_return)?;
        td.set_item("steps", tr.steps)?;
        td.set_item("model_loss", tr.model_loss)?;
        td.set_item("plan_ms", tr.plan_ms)?;
        td.set_item("step_ms", tr.step_ms)?;
        trials.append(td)?;
    }
    d.set_item("trials", trials)?;
    d.set_item("interrupted", summary.interrupted)?;
    d.set_item("stopped_at", summary.stopped_at)?;
    d.set_item("seconds", summary.seconds)?;
    d.set_item("out_dir", summary.out_dir)?;
    Ok(d)
}

/// Replays the checkpoint of the run in `run_dir` on the Python environment `env` planned with
/// `task`: the return of each of `episodes` episodes.
#[pyfunction]
#[pyo3(signature = (ctx, env, task, run_dir, episodes=5, seed=0))]
fn evaluate_pets(
    py: Python<'_>,
    ctx: &Context,
    env: Py<PyAny>,
    task: &Task,
    run_dir: PathBuf,
    episodes: usize,
    seed: u64,
) -> PyResult<Vec<f64>> {
    let t = task.task.clone();
    let (mut penv, error) = PyEnv::new(env, &t);
    let c = ctx.ctx.clone();
    let result = py.detach(move || pets::evaluate_on(&c, &run_dir, episodes, seed, &mut penv, t));
    if let Some(e) = error.lock().ok().and_then(|mut s| s.take()) {
        return Err(e);
    }
    result.py()
}

/// Set by `lookahead.pets.run`'s SIGINT handler (the first Ctrl-C); the running PETS loop stops
/// after its current step with every file consistent. Cleared when a run starts.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the running `run_pets` to stop after its current step (what Ctrl-C does).
#[pyfunction]
fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

#[pymodule]
fn _lookahead(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(adapters, m)?)?;
    m.add_function(wrap_pyfunction!(request_stop, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_config, m)?)?;
    m.add_function(wrap_pyfunction!(run_pets, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_pets, m)?)?;
    m.add_class::<Context>()?;
    m.add_class::<Task>()?;
    m.add_class::<Ensemble>()?;
    m.add_class::<Planner>()?;
    m.add_class::<Trainer>()?;
    m.add_class::<ReplayBuffer>()?;
    m.add("LookaheadError", py.get_type::<LookaheadError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("GpuError", py.get_type::<GpuError>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    m.add("MAX_OBS", lookahead::kernels::MAX_OBS)?;
    m.add("MAX_ACT", lookahead::kernels::MAX_ACT)?;
    Ok(())
}
