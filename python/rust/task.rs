//! Planning tasks: sizes, action bounds and WGSL reward / termination (and dynamics).

use numpy::{PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use lookahead::env::{EnvKind, Task as RTask};

use crate::arrays::values;
use crate::device::Context;
use crate::errors::OrPy;

/// What `Task.evaluate` returns: rewards (float32) and terminated (bool), one per transition.
type Evaluation<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<bool>>);

/// A planning task: sizes, action bounds and WGSL reward / termination (and dynamics).
#[pyclass(module = "lookahead._lookahead", frozen)]
#[derive(Clone)]
pub struct Task {
    /// The engine's task.
    pub task: RTask,
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

    /// The task's WGSL reward and termination on `n` transitions (float32 arrays: before
    /// [n, obs_dim], act [n, act_dim], next [n, obs_dim]), run on the device: (rewards [n]
    /// float32, terminated [n] bool) arrays.
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        ctx: &Context,
        before: PyReadonlyArray2<'py, f32>,
        act: PyReadonlyArray2<'py, f32>,
        next: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Evaluation<'py>> {
        let t = &self.task;
        let n = before.shape()[0];
        let before = values("before", &before, &[Some(n), Some(t.obs_dim)])?;
        let act = values("act", &act, &[Some(n), Some(t.act_dim)])?;
        let next = values("next", &next, &[Some(n), Some(t.obs_dim)])?;
        let c = ctx.ctx.clone();
        let out = py
            .detach(|| {
                lookahead::kernels::rollout::evaluate_env(
                    &c, &t.name, &t.wgsl, t.obs_dim, t.act_dim, &before, &act, &next,
                )
            })
            .py()?;
        let (rewards, terminated): (Vec<f32>, Vec<bool>) = out.into_iter().unzip();
        Ok((PyArray1::from_vec(py, rewards), PyArray1::from_vec(py, terminated)))
    }

    fn __repr__(&self) -> String {
        format!("Task({:?}, obs_dim={}, act_dim={})", self.task.name, self.task.obs_dim, self.task.act_dim)
    }
}
