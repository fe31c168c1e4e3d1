//! Planners: CEM and its relatives over an ensemble or a task's own WGSL dynamics, planning from
//! float32 observations and returning float32 action arrays.

use std::sync::Mutex;
use std::time::Duration;

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use lookahead::planner::{Budget, Dynamics, Plan, Planner as RPlanner, PlannerConfig};
use lookahead::util::short_float;

use crate::arrays::{shaped, values};
use crate::config::{self, PLANNER_OPTIONAL};
use crate::device::Context;
use crate::ensemble::Ensemble;
use crate::errors::{lock, with_unlocked, InputError, LookaheadError, OrPy};
use crate::task::Task;

/// A plan as a dict: action [act_dim] and actions [horizon, act_dim] (float32 arrays),
/// predicted_return, best_return, iterations.
fn plan_dict<'py>(py: Python<'py>, p: &Plan, act_dim: usize) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let steps = p.actions.len() / act_dim.max(1);
    d.set_item("action", PyArray1::from_slice(py, &p.action))?;
    d.set_item("actions", shaped(py, p.actions.clone(), [steps, act_dim])?)?;
    d.set_item("predicted_return", p.predicted_return)?;
    d.set_item("best_return", p.best_return)?;
    d.set_item("iterations", p.iterations)?;
    Ok(d)
}

/// The budget of `plan_with`: exactly one of at most `iterations` iterations and `seconds`
/// (finite, positive and short enough for the clock).
fn budget(iterations: Option<usize>, seconds: Option<f64>) -> PyResult<Budget> {
    match (iterations, seconds) {
        (Some(n), None) => Ok(Budget::Iterations(n)),
        (None, Some(s)) if s.is_finite() && s > 0.0 => match Duration::try_from_secs_f64(s) {
            Ok(d) => Ok(Budget::Time(d)),
            Err(_) => Err(InputError::new_err(format!(
                "invalid input: seconds = {} is longer than a time budget can be",
                short_float(s)
            ))),
        },
        (None, Some(s)) => {
            Err(InputError::new_err(format!("invalid input: seconds = {} must be finite and positive", short_float(s))))
        }
        _ => Err(InputError::new_err("invalid input: give exactly one of iterations and seconds")),
    }
}

/// A planner bound to a device, a task and its dynamics (an ensemble, or the task's own WGSL
/// dynamics when `ensemble` is None).
#[pyclass(module = "lookahead._lookahead", frozen)]
pub struct Planner {
    planner: Mutex<RPlanner>,
    /// The task's observation and action sizes.
    dims: (usize, usize),
}

#[pymethods]
impl Planner {
    /// `config_json`: a JSON object of `[planner]` settings over the defaults; unknown keys and
    /// wrong values are all reported at once.
    #[new]
    #[pyo3(signature = (ctx, task, ensemble=None, config_json=None))]
    fn new(
        py: Python<'_>,
        ctx: &Context,
        task: &Task,
        ensemble: Option<&Ensemble>,
        config_json: Option<&str>,
    ) -> PyResult<Self> {
        let cfg = config::section(&PlannerConfig::default(), "planner", PLANNER_OPTIONAL, config_json).py()?;
        cfg.validate().py()?;
        let dynamics = match ensemble {
            Some(e) => Dynamics::Ensemble(e.ens.clone()),
            None => Dynamics::Analytic,
        };
        let (c, t) = (ctx.ctx.clone(), task.task.clone());
        let dims = (t.obs_dim, t.act_dim);
        let planner = py.detach(|| RPlanner::new(&c, t, dynamics, cfg)).py()?;
        Ok(Self { planner: Mutex::new(planner), dims })
    }

    /// One plan from `obs` (float32 [obs_dim]): dict with action, actions (float32 arrays),
    /// predicted_return, best_return, iterations.
    fn plan<'py>(&self, py: Python<'py>, obs: PyReadonlyArray1<'py, f32>) -> PyResult<Bound<'py, PyDict>> {
        let obs = values("observation", &obs, &[Some(self.dims.0)])?;
        let plan = with_unlocked(py, &self.planner, |p| p.plan(&obs))?;
        plan_dict(py, &plan, self.dims.1)
    }

    /// Plans for `n` observations (float32 [n, obs_dim]) in the same dispatches.
    fn plan_batch<'py>(&self, py: Python<'py>, obs: PyReadonlyArray2<'py, f32>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let n = obs.shape()[0];
        let flat = values("observations", &obs, &[Some(n), Some(self.dims.0)])?;
        let rows: Vec<&[f32]> = flat.chunks(self.dims.0.max(1)).collect();
        let plans = with_unlocked(py, &self.planner, |p| p.plan_batch(&rows))?;
        plans.iter().map(|pl| plan_dict(py, pl, self.dims.1)).collect()
    }

    /// A plan within a budget: `iterations` (at most that many) or `seconds` (return within that
    /// long); dict as `plan` plus iterations_done, timed_out, status, elapsed_s.
    #[pyo3(signature = (obs, iterations=None, seconds=None))]
    fn plan_with<'py>(
        &self,
        py: Python<'py>,
        obs: PyReadonlyArray1<'py, f32>,
        iterations: Option<usize>,
        seconds: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let budget = budget(iterations, seconds)?;
        let obs = values("observation", &obs, &[Some(self.dims.0)])?;
        let out = with_unlocked(py, &self.planner, |p| p.plan_with(&obs, budget))?;
        let d = plan_dict(py, &out.plan, self.dims.1)?;
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
