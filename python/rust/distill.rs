//! Distilling a PETS run's planner into a policy (`lookahead.distill`): the config resolved as
//! the command line resolves it, and the run with the GIL released, its progress bar and Ctrl-C.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use lookahead::distill::{self, DistillConfig, DistillSummary};
use lookahead::env::Env;

use crate::config;
use crate::device::Context;
use crate::env::{ErrorSlot, PyEnv};
use crate::errors::{ConfigError, OrPy};
use crate::interrupt::{run_loop, Files, SignalFds};
use crate::task::Task;

/// The distillation config: the defaults, a TOML file's text, then the settings of the JSON
/// object `config_json` (sections as nested objects) and the assignments `sets`, as TOML text.
/// Unknown keys and wrong values are all reported at once.
#[pyfunction]
#[pyo3(signature = (config_toml=None, config_json=None, sets=vec![]))]
pub fn resolve_distill_config(
    config_toml: Option<&str>,
    config_json: Option<&str>,
    sets: Vec<String>,
) -> PyResult<String> {
    let from_json = config_json.map(|j| config::assignments(j, "")).transpose().py()?.unwrap_or_default();
    let all: Vec<String> = from_json.into_iter().chain(sets).collect();
    Ok(DistillConfig::resolve(config_toml, &all).py()?.to_toml())
}

/// Distils the planner of the PETS run in `run_dir` with the config given as TOML text (from
/// `resolve_distill_config`) into the folder `out` (None writes nothing): on the run's built-in
/// environment when `envs` is empty, else on the Python environments `envs` (made alike, one per
/// episode side by side; see PyEnv) of `obs_dim` observations and the action bounds
/// `action_lower`..`action_upper`, planned with `task` (the PETS run's). The CLI's progress bar
/// when `progress`; SIGINT written to `signal_fds` (see [`SignalFds`]) stops it at its next step.
/// The summary as a dict: `iterations` (one dict per iteration with the columns of
/// results.csv), `planner_returns`, `interrupted`, `stopped_at`, `seconds`, `out_dir`.
#[pyfunction]
#[pyo3(signature = (ctx, run_dir, config_toml, envs=vec![], obs_dim=0, task=None, action_lower=vec![], action_upper=vec![], out=None, overwrite=false, resume=false, progress=true, signal_fds=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_distill<'py>(
    py: Python<'py>,
    ctx: &Context,
    run_dir: PathBuf,
    config_toml: &str,
    envs: Vec<Py<PyAny>>,
    obs_dim: usize,
    task: Option<PyRef<'py, Task>>,
    action_lower: Vec<f64>,
    action_upper: Vec<f64>,
    out: Option<PathBuf>,
    overwrite: bool,
    resume: bool,
    progress: bool,
    signal_fds: SignalFds,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg: DistillConfig =
        toml::from_str(config_toml).map_err(|e| ConfigError::new_err(format!("invalid config: {e}")))?;
    let task = match (envs.is_empty(), task) {
        (true, None) => None,
        (false, Some(t)) => Some(t.task.clone()),
        _ => return Err(PyValueError::new_err("Python environments and their task come together")),
    };
    let (penvs, errors): (Vec<PyEnv>, Vec<ErrorSlot>) =
        envs.into_iter().map(|e| PyEnv::sized(e, obs_dim, (action_lower.clone(), action_upper.clone()))).unzip();
    let c = ctx.ctx.clone();
    let bar = progress.then(|| distill::ProgressDisplay::new(&cfg));
    let (update, finish) = (distill::ProgressDisplay::update, distill::ProgressDisplay::finish);
    let files = Files { out, overwrite, resume };
    let summary = run_loop(py, bar, update, finish, files, signal_fds, &errors, |opts| match task {
        None => distill::run(&c, &cfg, &run_dir, opts),
        Some(task) => {
            let envs = penvs.into_iter().map(|e| -> Box<dyn Env + '_> { Box::new(e) }).collect();
            distill::run_on(&c, &cfg, &run_dir, envs, task, opts)
        }
    })?;
    summary_dict(py, &summary)
}

/// A distillation's summary as a dict.
fn summary_dict<'py>(py: Python<'py>, s: &DistillSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let rows = s
        .iterations
        .iter()
        .map(|r| {
            let row = PyDict::new(py);
            row.set_item("iteration", r.iteration)?;
            row.set_item("labels", r.labels)?;
            row.set_item("new_labels", r.new_labels)?;
            row.set_item("updates", r.updates)?;
            row.set_item("imitation_loss", r.imitation_loss)?;
            row.set_item("policy_return", r.policy_return)?;
            row.set_item("policy_std", r.policy_std)?;
            row.set_item("planner_return", r.planner_return)?;
            row.set_item("seconds", r.seconds)?;
            Ok(row)
        })
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("iterations", rows)?;
    d.set_item("planner_returns", &s.planner_returns)?;
    d.set_item("interrupted", s.interrupted)?;
    d.set_item("stopped_at", &s.stopped_at)?;
    d.set_item("seconds", s.seconds)?;
    d.set_item("out_dir", &s.out_dir)?;
    Ok(d)
}
