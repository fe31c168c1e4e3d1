//! A Python environment object (gymnasium-style) as the engine's [`Env`], so that the engine's
//! PETS and SAC loops can step it; the first exception it raises is kept and raised again once
//! the loop has stopped.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use lookahead::env::{Env, Step, Task as RTask};
use lookahead::error::Error;

use crate::errors::InputError;

/// The slot that keeps the first Python exception an environment raised.
pub type ErrorSlot = Arc<Mutex<Option<PyErr>>>;

/// A gymnasium-style environment object driven from the PETS or SAC loop: `reset(seed) -> obs`
/// and `step(action) -> (obs, reward, terminated, truncated)` with lists of floats.
pub struct PyEnv {
    obj: Py<PyAny>,
    obs_dim: usize,
    act_dim: usize,
    bounds: (Vec<f64>, Vec<f64>),
    /// The first Python exception raised by the environment, re-raised after the loop stops.
    error: ErrorSlot,
}

impl PyEnv {
    /// `obj` stepped as `task`'s environment, and the slot its first exception is kept in.
    pub fn new(obj: Py<PyAny>, task: &RTask) -> (Self, ErrorSlot) {
        Self::sized(obj, task.obs_dim, (task.action_lower.clone(), task.action_upper.clone()))
    }

    /// `obj` stepped as an environment of `obs_dim` observations and the action bounds
    /// `(lower, upper)` (whose length is the action width; the loop checks them), and the slot
    /// its first exception is kept in.
    pub fn sized(obj: Py<PyAny>, obs_dim: usize, bounds: (Vec<f64>, Vec<f64>)) -> (Self, ErrorSlot) {
        let error = Arc::new(Mutex::new(None));
        let env = PyEnv { obj, obs_dim, act_dim: bounds.0.len(), bounds, error: error.clone() };
        (env, error)
    }

    /// Keeps `e` (unless an earlier exception is kept) and returns the engine's error for it.
    fn fail(&self, e: PyErr) -> Error {
        let msg = e.to_string();
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        Error::InvalidInput(format!("the environment raised: {msg}"))
    }

    /// `v` when it holds obs_dim values, or an error naming `what` returned it.
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

/// The exception kept in `slot`, taken out of it.
pub fn take_error(slot: &ErrorSlot) -> Option<PyErr> {
    slot.lock().ok().and_then(|mut s| s.take())
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
