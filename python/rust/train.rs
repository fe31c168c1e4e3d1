//! Training: replay buffers of transitions and the ensemble trainer (the PETS recipe:
//! bootstrap, Gaussian NLL, Adam, early stopping), fed with float32 arrays.

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use lookahead::train::checkpoint::Checkpoint;
use lookahead::train::{ReplayBuffer as RReplayBuffer, TrainConfig, TrainReport, Trainer as RTrainer};

use crate::arrays::values;
use crate::config::{self, TRAIN_OPTIONAL};
use crate::device::Context;
use crate::ensemble::Ensemble;
use crate::errors::{lock, with_unlocked, OrPy};
use crate::interrupt::{Interrupt, SignalFds};

/// `n` transitions copied out of their arrays, shapes checked.
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
    /// The rows of obs [n, d], act [n, a], next_obs [n, d], reward [n] and terminated [n] for
    /// `(d, a)` = `dims`.
    fn parse(
        dims: (usize, usize),
        obs: &PyReadonlyArray2<'_, f32>,
        act: &PyReadonlyArray2<'_, f32>,
        next_obs: &PyReadonlyArray2<'_, f32>,
        reward: &PyReadonlyArray1<'_, f32>,
        terminated: &PyReadonlyArray1<'_, bool>,
    ) -> PyResult<Self> {
        let ((d, a), n) = (dims, obs.shape()[0]);
        Ok(Self {
            n,
            d,
            a,
            obs: values("obs", obs, &[Some(n), Some(d)])?,
            act: values("act", act, &[Some(n), Some(a)])?,
            next: values("next_obs", next_obs, &[Some(n), Some(d)])?,
            reward: values("reward", reward, &[Some(n)])?,
            terminated: values("terminated", terminated, &[Some(n)])?,
        })
    }

    /// Appends every row to `b` (each checked by the buffer: sizes and finite values).
    fn push_into(&self, b: &mut RReplayBuffer) -> PyResult<()> {
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

/// Transitions for training: (obs, act, next_obs, reward, terminated), checked on the way in.
#[pyclass(module = "lookahead._lookahead", frozen)]
pub struct ReplayBuffer {
    buffer: Mutex<RReplayBuffer>,
}

#[pymethods]
impl ReplayBuffer {
    #[new]
    fn new(obs_dim: usize, act_dim: usize) -> PyResult<Self> {
        Ok(Self { buffer: Mutex::new(RReplayBuffer::checked(obs_dim, act_dim).py()?) })
    }

    /// Reads a buffer written by `save` (or a PETS run folder's `replay.*.safetensors`).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf, obs_dim: usize, act_dim: usize) -> PyResult<Self> {
        let b = py.detach(|| RReplayBuffer::load(&path, obs_dim, act_dim)).py()?;
        Ok(Self { buffer: Mutex::new(b) })
    }

    /// Appends `n` transitions (arrays as `Trainer.train`); all or none are stored.
    fn extend(
        &self,
        obs: PyReadonlyArray2<'_, f32>,
        act: PyReadonlyArray2<'_, f32>,
        next_obs: PyReadonlyArray2<'_, f32>,
        reward: PyReadonlyArray1<'_, f32>,
        terminated: PyReadonlyArray1<'_, bool>,
    ) -> PyResult<()> {
        let mut b = lock(&self.buffer)?;
        let dims = (b.obs_dim(), b.act_dim());
        let rows = Transitions::parse(dims, &obs, &act, &next_obs, &reward, &terminated)?;
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

/// A training report as a dict.
fn report_dict<'py>(py: Python<'py>, r: &TrainReport) -> PyResult<Bound<'py, PyDict>> {
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

/// Trains an ensemble on transitions (the PETS recipe: bootstrap, NLL, Adam, early stopping).
#[pyclass(module = "lookahead._lookahead", frozen)]
pub struct Trainer {
    trainer: Mutex<RTrainer>,
    /// The ensemble's observation and action sizes.
    dims: (usize, usize),
}

#[pymethods]
impl Trainer {
    /// `config_json`: a JSON object of `[train]` settings over the defaults; unknown keys and
    /// wrong values are all reported at once.
    #[new]
    #[pyo3(signature = (ctx, ensemble, config_json=None))]
    fn new(py: Python<'_>, ctx: &Context, ensemble: &Ensemble, config_json: Option<&str>) -> PyResult<Self> {
        let cfg = config::section(&TrainConfig::default(), "train", TRAIN_OPTIONAL, config_json).py()?;
        let (c, e) = (ctx.ctx.clone(), ensemble.ens.clone());
        let dims = (e.spec.obs_dim, e.spec.act_dim);
        let trainer = py.detach(|| RTrainer::new(&c, e, cfg)).py()?;
        Ok(Self { trainer: Mutex::new(trainer), dims })
    }

    /// Resumes from a checkpoint written by `save_checkpoint` (with the settings of the JSON
    /// object `config_json` over the defaults instead of the saved ones, when given).
    #[staticmethod]
    #[pyo3(signature = (ctx, path, config_json=None))]
    fn load_checkpoint(py: Python<'_>, ctx: &Context, path: PathBuf, config_json: Option<&str>) -> PyResult<Self> {
        let cfg = config_json
            .map(|j| config::section(&TrainConfig::default(), "train", TRAIN_OPTIONAL, Some(j)))
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

    /// Trains on `n` transitions given as arrays: obs [n, obs_dim], act [n, act_dim],
    /// next_obs [n, obs_dim], reward [n] (float32) and terminated [n] (bool); returns the report
    /// dict. Ctrl-C: see `train_buffer`.
    #[pyo3(signature = (obs, act, next_obs, reward, terminated, signal_fds=None))]
    #[allow(clippy::too_many_arguments)]
    fn train<'py>(
        &self,
        py: Python<'py>,
        obs: PyReadonlyArray2<'py, f32>,
        act: PyReadonlyArray2<'py, f32>,
        next_obs: PyReadonlyArray2<'py, f32>,
        reward: PyReadonlyArray1<'py, f32>,
        terminated: PyReadonlyArray1<'py, bool>,
        signal_fds: SignalFds,
    ) -> PyResult<Bound<'py, PyDict>> {
        let rows = Transitions::parse(self.dims, &obs, &act, &next_obs, &reward, &terminated)?;
        let mut buffer = RReplayBuffer::new(self.dims.0, self.dims.1);
        rows.push_into(&mut buffer)?;
        let report = self.train_watched(py, &buffer, signal_fds)?;
        report_dict(py, &report)
    }

    /// Trains on every transition of `buffer`; returns the report dict. SIGINT written to
    /// `signal_fds` (see [`SignalFds`]) stops the training between submissions with the best
    /// weights kept; then Python's handler runs (KeyboardInterrupt by default).
    #[pyo3(signature = (buffer, signal_fds=None))]
    fn train_buffer<'py>(
        &self,
        py: Python<'py>,
        buffer: &ReplayBuffer,
        signal_fds: SignalFds,
    ) -> PyResult<Bound<'py, PyDict>> {
        let b = lock(&buffer.buffer)?.clone();
        let report = self.train_watched(py, &b, signal_fds)?;
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

impl Trainer {
    /// Trains on `buffer` with the GIL released until SIGINT arrives on `signal_fds`, leaving
    /// the trainer consistent; then runs Python's signal handlers, so that Ctrl-C raises
    /// KeyboardInterrupt (unless a handler says otherwise).
    fn train_watched(&self, py: Python<'_>, buffer: &RReplayBuffer, signal_fds: SignalFds) -> PyResult<TrainReport> {
        let interrupt = Interrupt::watch(signal_fds);
        let flag = interrupt.flag();
        let report = with_unlocked(py, &self.trainer, |t| {
            t.set_interrupt(Some(flag));
            let report = t.train(buffer);
            t.set_interrupt(None);
            report
        });
        drop(interrupt);
        let report = report?;
        py.check_signals()?;
        Ok(report)
    }
}
