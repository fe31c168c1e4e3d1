//! MBPO through the engine's loop: the config resolved as the command line resolves it (with
//! mbrl-lib's settings for a gymnasium task), and the run on a built-in environment or on a
//! Python one with a task's WGSL reward and termination for the model rollouts, with SAC's
//! progress bar, Ctrl-C handling and summary (an MBPO run is SAC's loop with the model's part).
//! Its policy is a SAC actor: `evaluate_sac` and `SacPolicy` read an MBPO run folder.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use lookahead::env::EnvKind;
use lookahead::mbpo::{self, MbpoConfig, MbpoPreset};
use lookahead::sac::TaskOrigin;

use crate::config;
use crate::device::Context;
use crate::env::PyEnv;
use crate::errors::{ConfigError, OrPy};
use crate::interrupt::{Files, SignalFds};
use crate::sac::watched_policy_run;
use crate::task::Task;

/// The preset that `env` starts from: a built-in environment's name (`cartpole`, `pendulum`)
/// or `gymnasium:<id>` (mbrl-lib's settings for that task; an empty id for an environment
/// without one, which starts from the generic MuJoCo settings).
fn base(env: &str, preset: MbpoPreset) -> PyResult<MbpoConfig> {
    Ok(match env.strip_prefix("gymnasium:") {
        Some(id) => MbpoConfig::preset_for_gymnasium(id, preset),
        None => MbpoConfig::preset(env.parse::<EnvKind>().py()?, TaskOrigin::BuiltIn, preset),
    })
}

/// The MBPO config of `env`'s `preset` (`env`: a built-in environment's name, or
/// `gymnasium:<id>` for mbrl-lib's settings of that task) with a TOML file's text, then the
/// settings of the JSON object `config_json` (sections as nested objects) and the assignments
/// `sets` applied in that order (the same keys as the CLI), as TOML text. Unknown keys and
/// wrong values are all reported at once.
#[pyfunction]
#[pyo3(signature = (env, preset="reference", config_toml=None, config_json=None, sets=vec![]))]
pub fn resolve_mbpo_config(
    env: &str,
    preset: &str,
    config_toml: Option<&str>,
    config_json: Option<&str>,
    sets: Vec<String>,
) -> PyResult<String> {
    let preset: MbpoPreset = preset.parse().py()?;
    let base = base(env, preset)?;
    let from_json = config_json.map(|j| config::assignments(j, "")).transpose().py()?.unwrap_or_default();
    let all: Vec<String> = from_json.into_iter().chain(sets).collect();
    Ok(MbpoConfig::resolve(base, config_toml, &all).py()?.to_toml())
}

/// Runs MBPO with the config given as TOML text (from `resolve_mbpo_config`): on the built-in
/// environment of its `env` when `env` is None, else on the Python environment `env` (see
/// PyEnv) of `obs_dim` observations and the action bounds `action_lower`..`action_upper` (the run refuses infinite ones,
/// naming `external_env`), whose model rollouts take `task`'s WGSL termination (and reward,
/// unless the model learns it) and whose name in the run folder's config is `external_env`.
/// Shows the CLI's progress bar when `progress`; returns the summary as `run_sac` does. SIGINT
/// written to `signal_fds` (see [`SignalFds`]) stops it within a second, in a model training
/// too; `resume` continues the run in `out` from its last consistent point.
#[pyfunction]
#[pyo3(signature = (ctx, config_toml, env=None, obs_dim=0, task=None, action_lower=vec![], action_upper=vec![], external_env=None, out=None, overwrite=false, resume=false, seed=None, progress=true, signal_fds=None))]
#[allow(clippy::too_many_arguments)]
pub fn run_mbpo<'py>(
    py: Python<'py>,
    ctx: &Context,
    config_toml: &str,
    env: Option<Py<PyAny>>,
    obs_dim: usize,
    task: Option<PyRef<'py, Task>>,
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
    let mut cfg: MbpoConfig =
        toml::from_str(config_toml).map_err(|e| ConfigError::new_err(format!("invalid config: {e}")))?;
    if let Some(s) = seed {
        cfg.seed = s;
    }
    let (c, files) = (ctx.ctx.clone(), Files { out, overwrite, resume });
    match (env, task) {
        (None, None) => {
            if external_env.is_some() {
                return Err(PyValueError::new_err("external_env names a Python environment; none was given"));
            }
            let (mut env, task) = (cfg.env.make(), cfg.env.task());
            let progress_cfg = cfg.sac_config();
            watched_policy_run(py, &progress_cfg, progress, files, signal_fds, None, |opts| {
                mbpo::run(&c, &cfg, env.as_mut(), &task, opts)
            })
        }
        (Some(env), Some(task)) => {
            let Some(name) = external_env else {
                return Err(PyValueError::new_err("a Python environment needs its name (external_env)"));
            };
            cfg.external_env = Some(name);
            let task = task.task.clone();
            let (mut penv, error) = PyEnv::sized(env, obs_dim, (action_lower, action_upper));
            let progress_cfg = cfg.sac_config();
            watched_policy_run(py, &progress_cfg, progress, files, signal_fds, Some(&error), |opts| {
                mbpo::run(&c, &cfg, &mut penv, &task, opts)
            })
        }
        _ => Err(PyValueError::new_err(
            "a Python environment and its task come together (both None: the config's built-in environment)",
        )),
    }
}
