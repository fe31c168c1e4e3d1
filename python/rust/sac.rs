//! SAC through the engine's loop on a Python environment: the config resolved as the command
//! line resolves it (with the schedule of a gymnasium task), the run with the command line's
//! progress bar and Ctrl-C handling, the replay of a run's policy, which Ctrl-C stops too, and
//! the policy itself, acting on the CPU or on the GPU.

use std::path::PathBuf;

use numpy::{PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use lookahead::env::EnvKind;
use lookahead::sac::{self, SacConfig, SacPreset, SacSummary, TaskOrigin};

use crate::arrays::{shaped, values};
use crate::config;
use crate::device::Context;
use crate::env::{take_error, ErrorSlot, PyEnv};
use crate::errors::{ConfigError, LookaheadError, OrPy};
use crate::interrupt::{run_loop, Files, Interrupt, SignalFds};

/// The SAC config of `env_base`'s `preset` for a gymnasium task (its schedule: 5 000 random
/// steps, evaluations every 10 000 steps of 10⁶ in the reference preset), or for the built-in
/// environment itself when `builtin` (the command line's schedule), with a TOML file's text,
/// then the settings of the JSON object `config_json` (sections as nested objects) and the
/// assignments `sets` applied in that order (the same keys as the CLI), as TOML text. Unknown
/// keys and wrong values are all reported at once.
#[pyfunction]
#[pyo3(signature = (env_base, preset="reference", config_toml=None, config_json=None, sets=vec![], builtin=false))]
pub fn resolve_sac_config(
    env_base: &str,
    preset: &str,
    config_toml: Option<&str>,
    config_json: Option<&str>,
    sets: Vec<String>,
    builtin: bool,
) -> PyResult<String> {
    let env: EnvKind = env_base.parse().py()?;
    let preset: SacPreset = preset.parse().py()?;
    let from_json = config_json.map(|j| config::assignments(j, "")).transpose().py()?.unwrap_or_default();
    let all: Vec<String> = from_json.into_iter().chain(sets).collect();
    let origin = if builtin { TaskOrigin::BuiltIn } else { TaskOrigin::Gymnasium };
    Ok(SacConfig::resolve(env, origin, preset, config_toml, &all).py()?.to_toml())
}

/// An evaluation as a dict with every field of the engine's `EvalResult` (the columns of
/// results.csv), NaN where it has none.
fn eval_dict<'py>(py: Python<'py>, e: &sac::EvalResult) -> PyResult<Bound<'py, PyDict>> {
    let value = serde_json::to_value(e).map_err(|err| LookaheadError::new_err(err.to_string()))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(LookaheadError::new_err("an evaluation is not a JSON object"));
    };
    let d = PyDict::new(py);
    // The columns of results.csv first, in their order; then any field they leave out.
    let header: Vec<&str> = sac::LAYOUT.results_header.split(',').collect();
    let rest = fields.keys().filter(|k| !header.contains(&k.as_str()));
    for key in header.iter().copied().chain(rest.map(String::as_str)) {
        match fields.get(key) {
            Some(serde_json::Value::Number(n)) => match n.as_u64() {
                Some(i) => d.set_item(key, i)?,
                None => d.set_item(key, n.as_f64().unwrap_or(f64::NAN))?,
            },
            // nan_as_null: NaN (no training episode or update since the previous evaluation).
            Some(serde_json::Value::Null) => d.set_item(key, f64::NAN)?,
            Some(other) => d.set_item(key, other.to_string())?,
            None => return Err(LookaheadError::new_err(format!("an evaluation has no {key}"))),
        }
    }
    Ok(d)
}

/// A run's summary as a dict: evals (dicts), episodes, env_steps, interrupted, stopped_at,
/// seconds, out_dir.
fn summary_dict<'py>(py: Python<'py>, summary: &SacSummary) -> PyResult<Bound<'py, PyDict>> {
    let evals = PyList::empty(py);
    for e in &summary.evals {
        evals.append(eval_dict(py, e)?)?;
    }
    let d = PyDict::new(py);
    d.set_item("evals", evals)?;
    d.set_item("episodes", summary.episodes)?;
    d.set_item("env_steps", summary.env_steps)?;
    d.set_item("interrupted", summary.interrupted)?;
    d.set_item("stopped_at", &summary.stopped_at)?;
    d.set_item("seconds", summary.seconds)?;
    d.set_item("out_dir", &summary.out_dir)?;
    Ok(d)
}

/// Runs SAC with the config given as TOML text (from `resolve_sac_config`): on the built-in
/// environment of its `env` when `env` is None, else on the Python environment `env` (see
/// PyEnv) of `obs_dim` observations and the action bounds `action_lower`..`action_upper` (the
/// run refuses infinite ones, naming `external_env`), named `external_env` in the run folder's
/// config. Shows the CLI's progress bar when `progress`; returns the evaluations as dicts.
/// SIGINT written to `signal_fds` (see [`SignalFds`]) stops it at its next step.
#[pyfunction]
#[pyo3(signature = (ctx, config_toml, env=None, obs_dim=0, action_lower=vec![], action_upper=vec![], external_env=None, out=None, overwrite=false, resume=false, seed=None, progress=true, signal_fds=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_sac<'py>(
    py: Python<'py>,
    ctx: &Context,
    config_toml: &str,
    env: Option<Py<PyAny>>,
    obs_dim: usize,
    action_lower: Vec<f64>,
    action_upper: Vec<f64>,
    external_env: Option<String>,
    out: Option<PathBuf>,
    overwrite: bool,
    resume: bool,
    seed: Option<u64>,
    progress: bool,
    signal_fds: SignalFds,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cfg: SacConfig =
        toml::from_str(config_toml).map_err(|e| ConfigError::new_err(format!("invalid config: {e}")))?;
    if let Some(s) = seed {
        cfg.seed = s;
    }
    let (c, files) = (ctx.ctx.clone(), Files { out, overwrite, resume });
    match (env, external_env) {
        (None, None) => {
            let mut env = cfg.env.make();
            watched_policy_run(py, &cfg, progress, files, signal_fds, None, |opts| {
                sac::run(&c, &cfg, env.as_mut(), opts)
            })
        }
        (Some(env), Some(name)) => {
            cfg.external_env = Some(name);
            let (mut penv, error) = PyEnv::sized(env, obs_dim, (action_lower, action_upper));
            watched_policy_run(py, &cfg, progress, files, signal_fds, Some(&error), |opts| {
                sac::run(&c, &cfg, &mut penv, opts)
            })
        }
        _ => Err(PyValueError::new_err(
            "a Python environment comes with its name (external_env); both None: the config's built-in environment",
        )),
    }
}

/// Runs a loop on SAC's machinery (SAC, MBPO) through `run` with the GIL released: the run
/// options of `files`, the CLI's progress bar for `progress_cfg` (the SAC settings of the run)
/// when `progress`, stopped at its next step by SIGINT written to `signal_fds` (see
/// [`SignalFds`]). The exception the environment raised (kept in `error`), else one a signal
/// handler raised, is raised in place of the run's result; the summary as a dict.
pub fn watched_policy_run<'py>(
    py: Python<'py>,
    progress_cfg: &SacConfig,
    progress: bool,
    files: Files,
    signal_fds: SignalFds,
    error: Option<&ErrorSlot>,
    run: impl FnOnce(sac::RunOptions<'_>) -> lookahead::error::Result<SacSummary> + Send,
) -> PyResult<Bound<'py, PyDict>> {
    let bar = progress.then(|| sac::ProgressDisplay::new(progress_cfg));
    let (update, finish) = (sac::ProgressDisplay::update, sac::ProgressDisplay::finish);
    let errors = error.map(std::slice::from_ref).unwrap_or_default();
    let summary = run_loop(py, bar, update, finish, files, signal_fds, errors, run)?;
    summary_dict(py, &summary)
}

/// Replays the policy of the SAC (or MBPO) run in `run_dir` on the Python environment `env`
/// (of `obs_dim` observations and the action bounds `action_lower`..`action_upper`, which must
/// be the run's), or with `env` None on the run's built-in environment (the sizes and bounds
/// are then unused), on the CPU: the return of each of `episodes` episodes, and whether SIGINT
/// written to `signal_fds` (see [`SignalFds`]) stopped the replay before its last episode (the
/// returns are then those of the finished ones).
#[pyfunction]
#[pyo3(signature = (env, obs_dim, action_lower, action_upper, run_dir, episodes=5, seed=0, signal_fds=None))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_sac(
    py: Python<'_>,
    env: Option<Py<PyAny>>,
    obs_dim: usize,
    action_lower: Vec<f64>,
    action_upper: Vec<f64>,
    run_dir: PathBuf,
    episodes: usize,
    seed: u64,
    signal_fds: SignalFds,
) -> PyResult<(Vec<f64>, bool)> {
    let mut penv = env.map(|env| PyEnv::sized(env, obs_dim, (action_lower, action_upper)));
    let interrupt = Interrupt::watch(signal_fds);
    let stop = interrupt.flag();
    let result = py.detach(|| {
        let opts = lookahead::run::EvalOptions { interrupt: Some(stop), on_episode: None };
        // An MBPO run's policy is a SAC actor; its folder holds an MBPO config.
        let mbpo = lookahead::run::read_marker(&run_dir).is_some_and(|m| m.kind == lookahead::mbpo::LAYOUT.kind);
        match (penv.as_mut(), mbpo) {
            (Some((penv, _)), false) => sac::evaluate_on(&run_dir, episodes, seed, penv, opts),
            (Some((penv, _)), true) => lookahead::mbpo::evaluate_on(&run_dir, episodes, seed, penv, opts),
            (None, false) => sac::evaluate(&run_dir, episodes, seed, opts),
            (None, true) => lookahead::mbpo::evaluate(&run_dir, episodes, seed, opts),
        }
    });
    drop(interrupt);
    if let Some(e) = penv.as_ref().and_then(|(_, error)| take_error(error)) {
        return Err(e);
    }
    result.py().map(|e| (e.returns, e.interrupted))
}

/// The deterministic policy of a SAC checkpoint (`model.safetensors` of a run folder):
/// `c + h·tanh(μ)` of the actor's mean, within the run's action bounds.
#[pyclass(module = "lookahead._lookahead", frozen)]
pub struct SacPolicy {
    policy: sac::Policy,
}

#[pymethods]
impl SacPolicy {
    /// The policy of the checkpoint at `path` (its checksum verified).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let policy = py.detach(|| sac::Policy::load(&path)).py()?;
        Ok(Self { policy })
    }

    /// Observation width.
    #[getter]
    fn obs_dim(&self) -> usize {
        self.policy.obs_dim()
    }

    /// Action width.
    #[getter]
    fn act_dim(&self) -> usize {
        self.policy.act_dim()
    }

    /// The action for one observation `[obs_dim]`, on the CPU in float64: `[act_dim]`.
    fn act<'py>(&self, py: Python<'py>, obs: PyReadonlyArray1<'py, f64>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let o = values("obs", &obs, &[Some(self.policy.obs_dim())])?;
        Ok(PyArray1::from_vec(py, self.policy.act(&o).py()?))
    }

    /// The actions for observations `[n, obs_dim]`, in one GPU dispatch chain on `ctx`, in
    /// float32: `[n, act_dim]`.
    fn act_batch<'py>(
        &self,
        py: Python<'py>,
        ctx: &Context,
        obs: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (d, a) = (self.policy.obs_dim(), self.policy.act_dim());
        let o = values("obs", &obs, &[None, Some(d)])?;
        let rows = o.len() / d.max(1);
        let (policy, c) = (&self.policy, &ctx.ctx);
        let actions = py.detach(|| policy.act_batch(c, &o)).py()?;
        shaped(py, actions.iter().map(|v| *v as f32).collect(), [rows, a])
    }

    fn __repr__(&self) -> String {
        format!("SacPolicy(obs_dim={}, act_dim={})", self.policy.obs_dim(), self.policy.act_dim())
    }
}
