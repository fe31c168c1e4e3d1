//! The probabilistic ensemble dynamics model (PETS): `n_members` MLPs mapping a normalised
//! `(obs, act)` to a Gaussian over the state change `Δ = obs' − obs` (and optionally the reward),
//! with soft-clamped log-variances. This module holds the host-side parameters, their
//! safetensors file format and an f64 reference forward pass; the planner uploads them to the GPU.
//!
//! # File format (safetensors)
//! | tensor | dtype | shape | meaning |
//! | --- | --- | --- | --- |
//! | `layers.{l}.weight` | F32 | `[E, in_l, out_l]` | layer `l` (0-based) computes `x · W[m] + b[m]` |
//! | `layers.{l}.bias` | F32 | `[E, out_l]` | |
//! | `input_mean`, `input_std` | F32 | `[obs_dim + act_dim]` | input normalisation `(x − mean) / std` |
//! | `max_logvar`, `min_logvar` | F32 | `[model_out]` | log-variance soft-clamp bounds (probabilistic models only) |
//!
//! Hidden layers use SiLU; the last layer is linear with `model_out` outputs (means) followed,
//! for probabilistic models, by `model_out` log-variances; `model_out = obs_dim (+1 with a
//! learned reward, the last output)`. Metadata: `format = "lookahead-ensemble-v1"`, `obs_dim`,
//! `act_dim`, `probabilistic`, `learned_reward`, and `sha256` (the digest of every tensor's name,
//! shape and bytes; verified on load when present, so a damaged file is refused; files exported
//! elsewhere may leave it out). The layout of `W` is that of mbrl-lib's
//! `EnsembleLinearLayer` (`[members, in, out]`), so a PyTorch-trained model exports with
//! `safetensors.torch.save_file` after renaming.

pub mod format;

use std::path::Path;

use rand::{Rng, SeedableRng};
use safetensors::tensor::Dtype;

use crate::error::{Error, FormatError, Result};
use crate::kernels::mlp::{reference, Activation};

/// Architecture of an ensemble.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// Ensemble members (default 7).
    pub n_members: usize,
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// Hidden layer widths (default 4 × 200).
    pub hidden: Vec<usize>,
    /// Gaussian outputs (mean and log-variance) rather than a mean only.
    pub probabilistic: bool,
    /// The model also predicts the reward (its last output).
    pub learned_reward: bool,
}

/// `7 members, obs 3 + act 1 → hidden [200, 200] → Gaussian` (the words of error messages).
impl std::fmt::Display for EnsembleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<String> = self.hidden.iter().map(|w| w.to_string()).collect();
        write!(
            f,
            "{} members, obs {} + act {} → hidden [{}] → {}{}",
            self.n_members,
            self.obs_dim,
            self.act_dim,
            widths.join(", "),
            if self.probabilistic { "Gaussian" } else { "mean" },
            if self.learned_reward { " with a learned reward" } else { "" }
        )
    }
}

impl EnsembleSpec {
    /// The PETS reference architecture (7 members, 4 × 200 SiLU, Gaussian) for the given sizes.
    pub fn pets(obs_dim: usize, act_dim: usize) -> Self {
        Self { n_members: 7, obs_dim, act_dim, hidden: vec![200; 4], probabilistic: true, learned_reward: false }
    }

    /// Model input width: `obs_dim + act_dim`.
    pub fn in_dim(&self) -> usize {
        self.obs_dim + self.act_dim
    }

    /// Predicted quantities: `obs_dim (+1 with a learned reward)`.
    pub fn model_out(&self) -> usize {
        self.obs_dim + self.learned_reward as usize
    }

    /// Width of the last layer.
    pub fn out_cols(&self) -> usize {
        self.model_out() * if self.probabilistic { 2 } else { 1 }
    }

    /// The network's widths: the input, then every layer's output (`hidden`, then `out_cols`).
    pub fn widths(&self) -> Vec<usize> {
        let mut widths = vec![self.in_dim()];
        widths.extend(&self.hidden);
        widths.push(self.out_cols());
        widths
    }

    /// `(in, out)` of every layer.
    pub fn layer_dims(&self) -> Vec<(usize, usize)> {
        self.widths().windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Parameters of each layer's weight tensor (`members · in · out`), or `None` when a count
    /// does not fit in 64 bits.
    pub fn weight_counts(&self) -> Option<Vec<u64>> {
        self.layer_dims()
            .iter()
            .map(|(i, o)| (self.n_members as u64).checked_mul(*i as u64)?.checked_mul(*o as u64))
            .collect()
    }

    /// Checks, without allocating anything, that every layer's weights fit the device's storage
    /// buffers (the planner and trainer bind each layer whole).
    pub fn check_fits(&self, ctx: &crate::gpu::GpuContext) -> Result<()> {
        self.validate()?;
        let counts =
            self.weight_counts().ok_or_else(|| Error::config("model.hidden", "the parameter count overflows"))?;
        for (l, n) in counts.iter().enumerate() {
            let bytes =
                n.checked_mul(4).ok_or_else(|| Error::config("model.hidden", "the parameter count overflows"))?;
            ctx.check_buffer_size(
                &format!("layer {l} weights (members × in × out × 4 B)"),
                bytes,
                true,
                "use fewer members or narrower hidden layers (model.members, model.hidden)",
            )?;
        }
        Ok(())
    }

    /// Multiply-adds of one model step of one member (one row).
    pub fn macs_per_step(&self) -> u64 {
        self.layer_dims().iter().map(|(i, o)| (*i * *o) as u64).sum()
    }

    /// Parameters of the whole ensemble (every layer's weights and biases, all members), or
    /// `None` when the count does not fit in 64 bits.
    pub fn param_count(&self) -> Option<u64> {
        let e = self.n_members as u64;
        self.layer_dims().iter().try_fold(0u64, |n, (i, o)| {
            let per_member = (*i as u64).checked_mul(*o as u64)?.checked_add(*o as u64)?;
            n.checked_add(e.checked_mul(per_member)?)
        })
    }

    /// Checks the sizes: members, observation and action sizes within the WGSL limits, at most
    /// [`MAX_HIDDEN_LAYERS`] hidden layers of width ≥ 1, at most [`MAX_PARAMS`] parameters, all
    /// before anything is allocated; every problem at once.
    pub fn validate(&self) -> Result<()> {
        let mut errs = crate::kernels::check_dims("model.", self.obs_dim, self.act_dim);
        if self.n_members == 0 {
            errs.push(Error::config("model.n_members", "must be at least 1"));
        }
        errs.extend(hidden_problems(&self.hidden));
        match self.param_count() {
            Some(n) if n <= MAX_PARAMS => {}
            n => errs.push(Error::config(
                "model.hidden",
                format!(
                    "{} members × {} hidden layers have {} parameters (weights and biases), more than \
                     {MAX_PARAMS} (4 GiB of f32, the most a device binds as one buffer); use fewer members \
                     (model.members) or fewer or narrower hidden layers",
                    self.n_members,
                    self.hidden.len(),
                    n.map_or("over 2^64".to_string(), |n| n.to_string())
                ),
            )),
        }
        Error::collect(errs)
    }
}

/// The problems of a list of hidden widths (`model.hidden`): more than [`MAX_HIDDEN_LAYERS`],
/// or a width of 0.
pub fn hidden_problems(hidden: &[usize]) -> Vec<Error> {
    let mut errs = Vec::new();
    if hidden.len() > MAX_HIDDEN_LAYERS {
        let why = format!("{} hidden layers, more than {MAX_HIDDEN_LAYERS}; use fewer layers", hidden.len());
        errs.push(Error::config("model.hidden", why));
    }
    if hidden.contains(&0) {
        errs.push(Error::config("model.hidden", "every hidden width must be at least 1"));
    }
    errs
}

/// Most hidden layers: 64. A tiled network runs one dispatch per layer and pass (a training
/// step three per layer, a plan one per layer per model step) with buffers and bind groups per
/// layer, so the count sets the cost of everything; without residual connections or
/// normalisation deeper SiLU networks do not train better. PETS uses 4 and the fused kernels
/// take at most 8 layers: 64 leaves room for any model of this kind while a mistyped list is
/// refused before thousands of layers are built.
pub const MAX_HIDDEN_LAYERS: usize = 64;

/// Most parameters of an ensemble (weights and biases of every layer and member): 2^30, 4 GiB
/// of f32. The trainer binds them all as one storage buffer, and no device binds 4 GiB or more
/// (wgpu's binding size is a u32); it also keeps four more copies (best, gradients, two Adam
/// moments), so this is already 20 GiB of device memory.
pub const MAX_PARAMS: u64 = 1 << 30;

/// Ensemble architecture (sizes come from the environment).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Ensemble members (default: 7).
    pub members: usize,
    /// Hidden widths (default: 4 × 200).
    pub hidden: Vec<usize>,
    /// Gaussian outputs (default: true).
    pub probabilistic: bool,
    /// Also predict the reward instead of using the environment's WGSL reward (default: false).
    pub learned_reward: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { members: 7, hidden: vec![200; 4], probabilistic: true, learned_reward: false }
    }
}

impl ModelConfig {
    /// The ensemble architecture for a task of `obs_dim` observations and `act_dim` actions.
    pub fn spec(&self, obs_dim: usize, act_dim: usize) -> EnsembleSpec {
        EnsembleSpec {
            n_members: self.members,
            obs_dim,
            act_dim,
            hidden: self.hidden.clone(),
            probabilistic: self.probabilistic,
            learned_reward: self.learned_reward,
        }
    }
}

/// Weights of one layer for all members.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
    /// `[E, in, out]`.
    pub weight: Vec<f32>,
    /// `[E, out]`.
    pub bias: Vec<f32>,
}

/// An ensemble's parameters on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    /// The architecture.
    pub spec: EnsembleSpec,
    /// Layers, input first.
    pub layers: Vec<Layer>,
    /// Input normalisation mean, `[in_dim]`.
    pub input_mean: Vec<f32>,
    /// Input normalisation standard deviation, `[in_dim]` (all > 0).
    pub input_std: Vec<f32>,
    /// Upper log-variance bounds, `[model_out]` (initially 0.5).
    pub max_logvar: Vec<f32>,
    /// Lower log-variance bounds, `[model_out]` (initially −10).
    pub min_logvar: Vec<f32>,
}

/// Mean and (for probabilistic models) clamped log-variance of one prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// `[model_out]`.
    pub mean: Vec<f64>,
    /// `[model_out]`, empty for deterministic models.
    pub logvar: Vec<f64>,
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The PETS log-variance soft clamp in f64 (WGSL `clamp_logvar`).
pub fn clamp_logvar(lv: f64, max_lv: f64, min_lv: f64) -> f64 {
    let upper = max_lv - softplus(max_lv - lv);
    min_lv + softplus(upper - min_lv)
}

impl Ensemble {
    /// Fresh parameters: weights from a normal truncated at ±2σ with σ = 1/(2·sqrt(in)) (as
    /// mbrl-lib initialises), zero biases, identity normalisation, log-variance bounds 0.5 / −10.
    pub fn random(spec: EnsembleSpec, seed: u64) -> Result<Self> {
        spec.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let e = spec.n_members;
        let layers = spec
            .layer_dims()
            .into_iter()
            .map(|(i, o)| {
                let std = 1.0 / (2.0 * (i as f64).sqrt());
                let weight = (0..e * i * o)
                    .map(|_| loop {
                        let u1: f64 = rng.random::<f64>().max(1e-300);
                        let u2: f64 = rng.random();
                        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                        if z.abs() <= 2.0 {
                            break (z * std) as f32;
                        }
                    })
                    .collect();
                Layer { in_dim: i, out_dim: o, weight, bias: vec![0.0; e * o] }
            })
            .collect();
        let mo = spec.model_out();
        Ok(Self {
            input_mean: vec![0.0; spec.in_dim()],
            input_std: vec![1.0; spec.in_dim()],
            max_logvar: vec![0.5; mo],
            min_logvar: vec![-10.0; mo],
            layers,
            spec,
        })
    }

    /// Checks shapes and values (finite weights, positive standard deviations).
    pub fn validate(&self) -> Result<()> {
        self.spec.validate()?;
        let dims = self.spec.layer_dims();
        if dims.len() != self.layers.len() {
            return Err(Error::InvalidInput(format!("{} layers, the spec needs {}", self.layers.len(), dims.len())));
        }
        let e = self.spec.n_members;
        for (l, (layer, (i, o))) in self.layers.iter().zip(dims).enumerate() {
            if layer.in_dim != i || layer.out_dim != o || layer.weight.len() != e * i * o || layer.bias.len() != e * o {
                return Err(Error::InvalidInput(format!(
                    "layer {l}: weight has {} values and bias {}, expected [{e}, {i}, {o}] and [{e}, {o}]",
                    layer.weight.len(),
                    layer.bias.len()
                )));
            }
            if let Some(p) = layer.weight.iter().chain(&layer.bias).position(|v| !v.is_finite()) {
                return Err(Error::InvalidInput(format!("layer {l}: non-finite parameter at flat index {p}")));
            }
        }
        let ind = self.spec.in_dim();
        if self.input_mean.len() != ind || self.input_std.len() != ind {
            return Err(Error::InvalidInput(format!("input_mean/input_std must have {ind} values")));
        }
        if self.input_std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || self.input_mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::InvalidInput("input_std must be finite and > 0 and input_mean finite".into()));
        }
        let mo = self.spec.model_out();
        if self.max_logvar.len() != mo || self.min_logvar.len() != mo {
            return Err(Error::InvalidInput(format!("max_logvar/min_logvar must have {mo} values")));
        }
        // Learned bounds may cross: the training penalty (as in PETS and mbrl-lib) pulls max down
        // and min up, and on nearly deterministic data they meet. The soft clamp stays finite
        // and continuous for any finite pair (it then returns values just above min), so only
        // finiteness is required.
        if let Some(d) = (0..mo).find(|&d| !(self.min_logvar[d].is_finite() && self.max_logvar[d].is_finite())) {
            return Err(Error::InvalidInput(format!(
                "log-variance bounds of output {d} must be finite, got min {} max {}",
                self.min_logvar[d], self.max_logvar[d]
            )));
        }
        Ok(())
    }

    /// f64 reference prediction of member `m` for the raw (unnormalised) input `x = [obs, act]`.
    pub fn predict_f64(&self, m: usize, x: &[f64]) -> Prediction {
        let mut h: Vec<f64> = x
            .iter()
            .zip(&self.input_mean)
            .zip(&self.input_std)
            .map(|((v, mu), s)| (v - *mu as f64) / *s as f64)
            .collect();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (i, o) = (layer.in_dim, layer.out_dim);
            let w = &layer.weight[m * i * o..(m + 1) * i * o];
            let b = &layer.bias[m * o..(m + 1) * o];
            let act = if l == last { Activation::Identity } else { Activation::Silu };
            h = reference::layer_f64(&h, w, b, i, o, act);
        }
        let mo = self.spec.model_out();
        let mean = h[..mo].to_vec();
        let logvar = if self.spec.probabilistic {
            (0..mo).map(|d| clamp_logvar(h[mo + d], self.max_logvar[d] as f64, self.min_logvar[d] as f64)).collect()
        } else {
            Vec::new()
        };
        Prediction { mean, logvar }
    }

    /// Writes the parameters as safetensors (documented in the module docs), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.validate()?;
        let path = path.as_ref();
        let mut tensors: format::Tensors =
            format::ensemble_tensors(self).into_iter().map(|(n, s, d)| (n, (s, d))).collect();
        if !self.spec.probabilistic {
            tensors.remove("max_logvar");
            tensors.remove("min_logvar");
        }
        let mut meta = format::metadata(&self.spec, FORMAT);
        meta.insert("sha256".into(), format::checkpoint_digest(&tensors, None));
        let bytes = format::serialize(&tensors, meta)
            .map_err(|reason| Error::Weights { path: path.display().to_string(), reason })?;
        crate::util::write_atomic(path, &bytes)
    }

    /// Reads parameters written by [`Ensemble::save`] (or exported elsewhere with the same
    /// names), or the ensemble of a training checkpoint, checking every name, dtype, shape and value.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: p.clone(), source })?;
        Self::from_bytes_any(&bytes).map_err(|reason| Error::Weights { path: p, reason })
    }

    /// A new ensemble made of the given members, in that order (e.g. the elites for planning).
    pub fn select_members(&self, members: &[usize]) -> Result<Self> {
        if members.is_empty() {
            return Err(Error::InvalidInput("select at least one member".into()));
        }
        if let Some(m) = members.iter().find(|m| **m >= self.spec.n_members) {
            return Err(Error::InvalidInput(format!(
                "member {m} does not exist in a {}-member ensemble",
                self.spec.n_members
            )));
        }
        if let Some((i, m)) = members.iter().enumerate().find(|(i, m)| members[..*i].contains(m)) {
            return Err(Error::InvalidInput(format!(
                "member {m} is selected twice (members {members:?}, position {i})"
            )));
        }
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let (i, o) = (l.in_dim, l.out_dim);
                Layer {
                    in_dim: i,
                    out_dim: o,
                    weight: members.iter().flat_map(|m| l.weight[m * i * o..(m + 1) * i * o].to_vec()).collect(),
                    bias: members.iter().flat_map(|m| l.bias[m * o..(m + 1) * o].to_vec()).collect(),
                }
            })
            .collect();
        Ok(Self { spec: EnsembleSpec { n_members: members.len(), ..self.spec.clone() }, layers, ..self.clone() })
    }

    /// Parses a safetensors buffer; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, FormatError> {
        Self::from_bytes_checked(bytes, &[FORMAT])
    }

    /// Like [`Ensemble::from_bytes`], also accepting a training checkpoint (whose ensemble
    /// tensors have the same names).
    pub fn from_bytes_any(bytes: &[u8]) -> std::result::Result<Self, FormatError> {
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
        let is_checkpoint =
            header.metadata().as_ref().and_then(|m| m.get("format")).is_some_and(|f| f == format::CHECKPOINT_FORMAT);
        if is_checkpoint {
            // A checkpoint is verified before its ensemble is trusted.
            format::verified_checkpoint(bytes)?;
        }
        Self::from_bytes_checked(bytes, &[FORMAT, format::CHECKPOINT_FORMAT])
    }

    fn from_bytes_checked(bytes: &[u8], formats: &[&str]) -> std::result::Result<Self, FormatError> {
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
        let st =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get_meta = |k: &str| meta.get(k).cloned().ok_or_else(|| FormatError::MissingMetadata(k.to_string()));
        let format = get_meta("format")?;
        if !formats.contains(&format.as_str()) {
            return Err(FormatError::WrongFormat {
                found: Some(format),
                expected: formats.iter().map(|f| f.to_string()).collect(),
            });
        }
        let bad =
            |k: &str, e: &dyn std::fmt::Display| FormatError::BadMetadata { key: k.to_string(), reason: e.to_string() };
        let parse_usize = |k: &str| get_meta(k)?.parse::<usize>().map_err(|e| bad(k, &e));
        let parse_bool = |k: &str| get_meta(k)?.parse::<bool>().map_err(|e| bad(k, &e));
        let obs_dim = parse_usize("obs_dim")?;
        let act_dim = parse_usize("act_dim")?;
        let probabilistic = parse_bool("probabilistic")?;
        let learned_reward = parse_bool("learned_reward")?;
        let tensor = |name: &str| -> std::result::Result<(Vec<usize>, Vec<f32>), FormatError> {
            let t = st.tensor(name).map_err(|_| FormatError::MissingTensor(name.to_string()))?;
            if t.dtype() != Dtype::F32 {
                return Err(FormatError::WrongDtype { name: name.to_string(), dtype: format!("{:?}", t.dtype()) });
            }
            let data: Vec<f32> =
                t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Ok((t.shape().to_vec(), data))
        };
        let mut layers = Vec::new();
        let mut n_members = 0;
        while st.names().iter().any(|n| *n == format!("layers.{}.weight", layers.len())) {
            let l = layers.len();
            let (ws, weight) = tensor(&format!("layers.{l}.weight"))?;
            let (bs, bias) = tensor(&format!("layers.{l}.bias"))?;
            if ws.len() != 3 || bs.len() != 2 || bs[0] != ws[0] || bs[1] != ws[2] {
                return Err(FormatError::Shape(format!(
                    "layers.{l}: weight shape {ws:?} and bias shape {bs:?} do not form [E, in, out] / [E, out]"
                )));
            }
            n_members = ws[0];
            layers.push(Layer { in_dim: ws[1], out_dim: ws[2], weight, bias });
        }
        if layers.is_empty() {
            return Err(FormatError::MissingTensor("layers.0.weight".into()));
        }
        let hidden: Vec<usize> = layers[..layers.len() - 1].iter().map(|l| l.out_dim).collect();
        let spec = EnsembleSpec { n_members, obs_dim, act_dim, hidden, probabilistic, learned_reward };
        let (_, input_mean) = tensor("input_mean")?;
        let (_, input_std) = tensor("input_std")?;
        let (max_logvar, min_logvar) = if probabilistic {
            (tensor("max_logvar")?.1, tensor("min_logvar")?.1)
        } else {
            (vec![0.5; spec.model_out()], vec![-10.0; spec.model_out()])
        };
        let ens = Self { spec, layers, input_mean, input_std, max_logvar, min_logvar };
        ens.validate().map_err(|e| FormatError::Inconsistent(e.to_string()))?;
        if let (true, Some(expected)) = (format == FORMAT, meta.get("sha256")) {
            // Every tensor the file holds, as written, in name order.
            let mut all = format::Tensors::new();
            for name in st.names() {
                all.insert(name.to_string(), tensor(name)?);
            }
            let actual = format::checkpoint_digest(&all, None);
            if &actual != expected {
                return Err(FormatError::Checksum { expected: expected.clone(), actual });
            }
        }
        Ok(ens)
    }
}

/// `format` metadata value of ensemble files.
pub const FORMAT: &str = "lookahead-ensemble-v1";
