//! PETS through the engine's loop on a Python environment: the config resolved as the command
//! line resolves it, the run with the command line's progress bar and Ctrl-C handling, and the
//! replay of a run's checkpoint, which Ctrl-C stops too.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use lookahead::env::EnvKind;
use lookahead::pets::{self, PetsConfig, PetsSummary, Preset};

use crate::config;
use crate::device::Context;
use crate::env::{take_error, PyEnv};
use crate::errors::{ConfigError, OrPy};
use crate::interrupt::{run_loop, Files, Interrupt, SignalFds};
use crate::task::Task;

/// Refuses `size` bytes of config text from `what` past `MAX_CONFIG_BYTES` (1 MiB), as the
/// engine does for every config it parses: for a file Python reads.
#[pyfunction]
pub fn check_config_size(what: &str, size: usize) -> PyResult<()> {
    lookahead::util::check_config_size(what, size).py()
}

/// The PETS config of `env_base`'s `preset` with a TOML file's text, then the `key=value`
/// assignments `task_sets`, the settings of the JSON object `config_json` (sections as nested
/// objects) and the assignments `sets` applied in that order (the same keys as the CLI), as TOML
/// text. Unknown keys and wrong values are all reported at once.
#[pyfunction]
#[pyo3(signature = (env_base, preset="reference", config_toml=None, task_sets=vec![], config_json=None, sets=vec![]))]
pub fn resolve_config(
    env_base: &str,
    preset: &str,
    config_toml: Option<&str>,
    task_sets: Vec<String>,
    config_json: Option<&str>,
    sets: Vec<String>,
) -> PyResult<String> {
    let env: EnvKind = env_base.parse().py()?;
    let preset: Preset = preset.parse().py()?;
    let from_json = config_json.map(|j| config::assignments(j, "")).transpose().py()?.unwrap_or_default();
    let all: Vec<String> = task_sets.into_iter().chain(from_json).chain(sets).collect();
    Ok(PetsConfig::resolve(env, preset, config_toml, &all).py()?.to_toml())
}

/// A run's summary as a dict: trials (dicts), interrupted, stopped_at, seconds, out_dir.
fn summary_dict<'py>(py: Python<'py>, summary: &PetsSummary) -> PyResult<Bound<'py, PyDict>> {
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
    let d = PyDict::new(py);
    d.set_item("trials", trials)?;
    d.set_item("interrupted", summary.interrupted)?;
    d.set_item("stopped_at", &summary.stopped_at)?;
    d.set_item("seconds", summary.seconds)?;
    d.set_item("out_dir", &summary.out_dir)?;
    Ok(d)
}

/// Runs PETS with the config given as TOML text (from `resolve_config`): on the built-in
/// environment of its `env` when `env` and `task` are None, else on the Python environment `env`
/// (see PyEnv) planned with `task`, named `external_env` in the run folder's config. Shows the
/// CLI's progress bar when `progress`; returns the trials as dicts. SIGINT written to
/// `signal_fds` (see [`SignalFds`]) stops it at its next consistent point.
#[pyfunction]
#[pyo3(signature = (ctx, config_toml, env=None, task=None, external_env=None, out=None, overwrite=false, resume=false, seed=None, progress=true, signal_fds=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_pets<'py>(
    py: Python<'py>,
    ctx: &Context,
    config_toml: &str,
    env: Option<Py<PyAny>>,
    task: Option<PyRef<'py, Task>>,
    external_env: Option<String>,
    out: Option<PathBuf>,
    overwrite: bool,
    resume: bool,
    seed: Option<u64>,
    progress: bool,
    signal_fds: SignalFds,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cfg: PetsConfig =
        toml::from_str(config_toml).map_err(|e| ConfigError::new_err(format!("invalid config: {e}")))?;
    if let Some(s) = seed {
        cfg.seed = s;
    }
    let python_env = match (env, task, external_env) {
        (None, None, None) => None,
        (Some(env), Some(task), Some(name)) => {
            cfg.external_env = Some(name);
            Some((env, task.task.clone()))
        }
        _ => {
            return Err(PyValueError::new_err(
                "a Python environment comes with its task and its name (external_env); all three None: the \
                 config's built-in environment",
            ))
        }
    };
    let (c, files) = (ctx.ctx.clone(), Files { out, overwrite, resume });
    let bar = progress.then(|| pets::ProgressDisplay::new(&cfg));
    let (update, finish) = (pets::ProgressDisplay::update, pets::ProgressDisplay::finish);
    let summary = match python_env {
        None => {
            let (mut env, task) = (cfg.env.make(), cfg.env.task());
            run_loop(py, bar, update, finish, files, signal_fds, &[], |opts| {
                pets::run(&c, &cfg, env.as_mut(), task, opts)
            })?
        }
        Some((env, task)) => {
            let (mut penv, error) = PyEnv::new(env, &task);
            run_loop(py, bar, update, finish, files, signal_fds, &[error], |opts| {
                pets::run(&c, &cfg, &mut penv, task, opts)
            })?
        }
    };
    summary_dict(py, &summary)
}

/// Replays the checkpoint of the run in `run_dir` on the Python environment `env` planned with
/// `task`: the return of each of `episodes` episodes, and whether SIGINT written to
/// `signal_fds` (see [`SignalFds`]) stopped the replay before its last episode (the returns are
/// then those of the finished ones).
#[pyfunction]
#[pyo3(signature = (ctx, env, task, run_dir, episodes=5, seed=0, signal_fds=None))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_pets(
    py: Python<'_>,
    ctx: &Context,
    env: Py<PyAny>,
    task: &Task,
    run_dir: PathBuf,
    episodes: usize,
    seed: u64,
    signal_fds: SignalFds,
) -> PyResult<(Vec<f64>, bool)> {
    let t = task.task.clone();
    let (mut penv, error) = PyEnv::new(env, &t);
    let c = ctx.ctx.clone();
    let interrupt = Interrupt::watch(signal_fds);
    let stop = interrupt.flag();
    let result = py.detach(move || {
        let opts = pets::EvalOptions { interrupt: Some(stop), on_episode: None };
        pets::evaluate_on(&c, &run_dir, episodes, seed, &mut penv, t, opts)
    });
    drop(interrupt);
    if let Some(e) = take_error(&error) {
        return Err(e);
    }
    result.py().map(|e| (e.returns, e.interrupted))
}
