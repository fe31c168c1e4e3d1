//! Probabilistic ensembles of MLPs on the host: made, loaded, saved and read as numpy arrays.

use std::path::PathBuf;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use lookahead::model::{Ensemble as REnsemble, EnsembleSpec};

use crate::arrays::shaped;
use crate::errors::OrPy;

/// A probabilistic ensemble of MLPs (parameters and input normaliser), on the host.
#[pyclass(module = "lookahead._lookahead", frozen)]
#[derive(Clone)]
pub struct Ensemble {
    /// The engine's ensemble.
    pub ens: REnsemble,
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

    /// Every parameter as float32 arrays: dict with layers (list of (weight [members, in, out],
    /// bias [members, out])), input_mean, input_std, max_logvar and min_logvar.
    fn arrays<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let e = &self.ens;
        let m = e.spec.n_members;
        let layers = PyList::empty(py);
        for l in &e.layers {
            let w = shaped(py, l.weight.clone(), [m, l.in_dim, l.out_dim])?;
            let b = shaped(py, l.bias.clone(), [m, l.out_dim])?;
            layers.append((w, b))?;
        }
        let d = PyDict::new(py);
        d.set_item("layers", layers)?;
        d.set_item("input_mean", PyArray1::from_slice(py, &e.input_mean))?;
        d.set_item("input_std", PyArray1::from_slice(py, &e.input_std))?;
        d.set_item("max_logvar", PyArray1::from_slice(py, &e.max_logvar))?;
        d.set_item("min_logvar", PyArray1::from_slice(py, &e.min_logvar))?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let s = &self.ens.spec;
        format!(
            "Ensemble(members={}, obs_dim={}, act_dim={}, hidden={:?})",
            s.n_members, s.obs_dim, s.act_dim, s.hidden
        )
    }
}
