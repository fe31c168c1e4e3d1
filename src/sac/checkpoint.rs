//! SAC checkpoints: one safetensors file holding every network (`actor.*`, the twin critics
//! `critic.*` as 2-member tensors, their targets `target.*`, `log_alpha`), Adam's moments of the
//! trained ones (`adam.m.<tensor>`, `adam.v.<tensor>`, same shapes) and a JSON manifest in the
//! metadata: the run's config, the task's sizes and action bounds, Adam's step counts, the
//! generator of the random actions and resets, and a SHA-256 over the manifest and every
//! tensor. Tensors are stored per layer (`[members, in, out]`, `[members, out]`), so a file
//! written on one adapter loads on any other. Writes are atomic; a load verifies the checksum
//! and every tensor's shape against the config.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::device::{DeviceState, SacParamsF32};
use super::SacConfig;
use crate::error::{Error, FormatError, Result};
use crate::kernels::net::NetLayout;
use crate::model::format::{checkpoint_digest, serialize, Tensors};
use crate::train::checkpoint::RngState;
use crate::util::write_atomic;

/// `format` metadata of a SAC checkpoint.
pub const SAC_FORMAT: &str = "lookahead-sac-checkpoint";
/// Version of the manifest layout.
pub const SAC_MANIFEST_VERSION: u32 = 1;

/// The manifest stored in the file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SacManifest {
    /// [`SAC_MANIFEST_VERSION`].
    pub version: u32,
    /// The run's config (the architecture included).
    pub config: SacConfig,
    /// Observation width.
    pub obs_dim: usize,
    /// Action width.
    pub act_dim: usize,
    /// The action bounds.
    pub lower: Vec<f64>,
    /// See `lower`.
    pub upper: Vec<f64>,
    /// Adam's steps: actor, critics, log α.
    pub adam_steps: [u32; 3],
    /// The host generator (random actions, resets) where the checkpoint was written.
    pub rng: Option<RngState>,
    /// SHA-256 of the consistent point's counters and evaluations (`SacResumeState::digest`)
    /// when the checkpoint belongs to one, so that an edited `resume.json` is caught; empty
    /// otherwise.
    pub point_sha256: String,
    /// SHA-256 over this manifest (with this field empty) and every tensor.
    pub sha256: String,
}

/// One layer of an actor: `(in, out, weight [in·out], bias [out])`.
pub type ActorLayer = (usize, usize, Vec<f32>, Vec<f32>);

/// A SAC checkpoint: the manifest and the device state it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct SacCheckpoint {
    /// Config, sizes, bounds, counters.
    pub manifest: SacManifest,
    /// Parameters and Adam moments, as tensors.
    pub tensors: Tensors,
}

/// The networks' layouts without padding (the checkpoint's tensors are unpadded).
fn layouts(cfg: &SacConfig, obs_dim: usize, act_dim: usize) -> (NetLayout, NetLayout) {
    let s = cfg.net_shapes(obs_dim, act_dim);
    let actor = [vec![obs_dim], s.actor_hidden, vec![2 * act_dim]].concat();
    let critic = [vec![obs_dim + act_dim], s.critic_hidden, vec![1]].concat();
    (NetLayout::new(&actor, 1, 1), NetLayout::new(&critic, 2, 1))
}

/// `flat` (in `layout`) as `prefix.layers.{l}.weight` / `.bias` tensors.
fn net_tensors(t: &mut Tensors, prefix: &str, layout: &NetLayout, flat: &[f32]) {
    let e = layout.n_members;
    for (l, (i, o)) in layout.layer_dims().into_iter().enumerate() {
        let (w, b) = layout.unpack_layer(flat, l);
        let (ws, bs) = if e == 1 { (vec![i, o], vec![o]) } else { (vec![e, i, o], vec![e, o]) };
        t.insert(format!("{prefix}.layers.{l}.weight"), (ws, w.to_vec()));
        t.insert(format!("{prefix}.layers.{l}.bias"), (bs, b.to_vec()));
    }
}

/// The `prefix` tensors in `layout` (with its padding); an error naming a missing tensor or a
/// wrong shape.
fn net_flat(t: &Tensors, prefix: &str, layout: &NetLayout) -> std::result::Result<Vec<f32>, FormatError> {
    let mut parts = Vec::new();
    let e = layout.n_members;
    for (l, (i, o)) in layout.layer_dims().into_iter().enumerate() {
        let (ws, bs) = if e == 1 { (vec![i, o], vec![o]) } else { (vec![e, i, o], vec![e, o]) };
        for (kind, shape) in [("weight", ws), ("bias", bs)] {
            let name = format!("{prefix}.layers.{l}.{kind}");
            let (s, d) = t.get(&name).ok_or_else(|| FormatError::MissingTensor(name.clone()))?;
            if *s != shape {
                return Err(FormatError::Inconsistent(format!("{name} has shape {s:?}; the config gives {shape:?}")));
            }
            parts.push(d.as_slice());
        }
    }
    let pairs: Vec<(&[f32], &[f32])> = parts.chunks(2).map(|c| (c[0], c[1])).collect();
    layout.pack(pairs).map_err(|e| FormatError::Inconsistent(e.to_string()))
}

impl SacCheckpoint {
    /// The checkpoint of `state` (in `layouts`: actor, critics) for a run of `cfg` on a task
    /// of these sizes and bounds.
    pub fn of(
        cfg: &SacConfig,
        (lower, upper): (&[f64], &[f64]),
        state: &DeviceState,
        (actor, critic): (&NetLayout, &NetLayout),
        rng: Option<RngState>,
        point_sha256: String,
    ) -> Self {
        let (obs_dim, act_dim) = (actor.widths[0], lower.len());
        let mut t = Tensors::new();
        let p = &state.params;
        net_tensors(&mut t, "actor", actor, &p.actor);
        net_tensors(&mut t, "critic", critic, &p.critic);
        net_tensors(&mut t, "target", critic, &p.target);
        t.insert("log_alpha".into(), (vec![1], vec![p.log_alpha]));
        for (m, (which, layout)) in
            [("actor", Some(actor)), ("critic", Some(critic)), ("log_alpha", None)].iter().enumerate()
        {
            let (m1, m2) = &state.moments[m];
            for (moment, values) in [("m", m1), ("v", m2)] {
                let prefix = format!("adam.{moment}.{which}");
                match layout {
                    Some(l) => net_tensors(&mut t, &prefix, l, values),
                    None => {
                        t.insert(prefix, (vec![1], values.clone()));
                    }
                }
            }
        }
        let manifest = SacManifest {
            version: SAC_MANIFEST_VERSION,
            config: cfg.clone(),
            obs_dim,
            act_dim,
            lower: lower.to_vec(),
            upper: upper.to_vec(),
            adam_steps: state.adam_steps,
            rng,
            point_sha256,
            sha256: String::new(),
        };
        let sha256 = digest(&t, &manifest);
        Self { manifest: SacManifest { sha256, ..manifest }, tensors: t }
    }

    /// The device state in `layouts` (the device's, with its padding).
    pub fn state(&self, (actor, critic): (&NetLayout, &NetLayout)) -> std::result::Result<DeviceState, FormatError> {
        let t = &self.tensors;
        let one = |name: &str| -> std::result::Result<Vec<f32>, FormatError> {
            match t.get(name) {
                Some((s, d)) if *s == [1] => Ok(d.clone()),
                Some((s, _)) => Err(FormatError::Inconsistent(format!("{name} has shape {s:?}; expected [1]"))),
                None => Err(FormatError::MissingTensor(name.into())),
            }
        };
        let params = SacParamsF32 {
            actor: net_flat(t, "actor", actor)?,
            critic: net_flat(t, "critic", critic)?,
            target: net_flat(t, "target", critic)?,
            log_alpha: one("log_alpha")?[0],
        };
        let moments = [
            (net_flat(t, "adam.m.actor", actor)?, net_flat(t, "adam.v.actor", actor)?),
            (net_flat(t, "adam.m.critic", critic)?, net_flat(t, "adam.v.critic", critic)?),
            (one("adam.m.log_alpha")?, one("adam.v.log_alpha")?),
        ];
        Ok(DeviceState { params, moments, adam_steps: self.manifest.adam_steps })
    }

    /// The actor as the flat parameters of `layout` (a device's), refusing an actor of other
    /// widths, hidden activation or action bounds than the run it starts (`cfg` on a task of
    /// these bounds), naming each difference.
    pub fn actor_for(&self, layout: &NetLayout, cfg: &SacConfig, (lower, upper): (&[f64], &[f64])) -> Result<Vec<f32>> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        let (theirs, ours) = (layouts(&m.config, m.obs_dim, m.act_dim).0.widths, &layout.widths);
        if &theirs != ours {
            problems.push(format!("widths {theirs:?}, the run's actor {ours:?}"));
        }
        if m.config.sac.actor_activation != cfg.sac.actor_activation {
            let (a, b) = (m.config.sac.actor_activation, cfg.sac.actor_activation);
            problems.push(format!("hidden activation {a:?}, the run's {b:?}"));
        }
        if m.lower != lower || m.upper != upper {
            problems.push(format!("action bounds {:?}..{:?}, the task's {lower:?}..{upper:?}", m.lower, m.upper));
        }
        if !problems.is_empty() {
            return Err(Error::config("sac.init_policy", format!("an actor of {}", problems.join("; "))));
        }
        let flat = net_flat(&self.tensors, "actor", layout)
            .map_err(|reason| Error::Weights { path: "sac.init_policy".into(), reason })?;
        Ok(flat)
    }

    /// The actor's layers as `(in, out, weight, bias)`.
    pub fn actor_layers(&self) -> std::result::Result<Vec<ActorLayer>, FormatError> {
        let (actor, _) = layouts(&self.manifest.config, self.manifest.obs_dim, self.manifest.act_dim);
        let flat = net_flat(&self.tensors, "actor", &actor)?;
        Ok(actor
            .layer_dims()
            .into_iter()
            .enumerate()
            .map(|(l, (i, o))| {
                let (w, b) = actor.unpack_layer(&flat, l);
                (i, o, w.to_vec(), b.to_vec())
            })
            .collect())
    }

    /// Serialises and writes atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = std::collections::HashMap::new();
        meta.insert("format".to_string(), SAC_FORMAT.to_string());
        meta.insert("manifest".to_string(), serde_json::to_string(&self.manifest).expect("the manifest serialises"));
        let bytes = serialize(&self.tensors, meta)
            .map_err(|reason| Error::Weights { path: path.display().to_string(), reason })?;
        write_atomic(path, &bytes)
    }

    /// Reads and verifies a checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: p.clone(), source })?;
        Self::from_bytes(&bytes).map_err(|reason| Error::Weights { path: p, reason })
    }

    /// Parses and verifies a checkpoint: its format, manifest version, checksum, and every
    /// tensor's presence and shape for the config's networks.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, FormatError> {
        let st =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(SAC_FORMAT) {
            return Err(FormatError::WrongFormat {
                found: meta.get("format").cloned(),
                expected: vec![SAC_FORMAT.into()],
            });
        }
        let text = meta.get("manifest").ok_or_else(|| FormatError::MissingMetadata("manifest".into()))?;
        let manifest: SacManifest = serde_json::from_str(text)
            .map_err(|e| FormatError::BadMetadata { key: "manifest".into(), reason: e.to_string() })?;
        if manifest.version != SAC_MANIFEST_VERSION {
            return Err(FormatError::ManifestVersion { found: manifest.version, supported: SAC_MANIFEST_VERSION });
        }
        let mut tensors = Tensors::new();
        for name in st.names() {
            let t = st.tensor(name).map_err(|e| FormatError::NotSafetensors(format!("tensor {name}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(FormatError::WrongDtype { name: name.to_string(), dtype: format!("{:?}", t.dtype()) });
            }
            let data = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            tensors.insert(name.to_string(), (t.shape().to_vec(), data));
        }
        let actual = digest(&tensors, &manifest);
        if actual != manifest.sha256 {
            return Err(FormatError::Checksum { expected: manifest.sha256.clone(), actual });
        }
        let ckpt = Self { manifest, tensors };
        ckpt.check_shapes()?;
        Ok(ckpt)
    }

    /// Every tensor the config's networks need, with its shape; sizes and bounds consistent.
    fn check_shapes(&self) -> std::result::Result<(), FormatError> {
        let m = &self.manifest;
        m.config.validate().map_err(|e| FormatError::Inconsistent(format!("the config: {e}")))?;
        let bounds_ok = m.lower.len() == m.act_dim
            && m.upper.len() == m.act_dim
            && m.lower.iter().zip(&m.upper).all(|(l, u)| l.is_finite() && u.is_finite() && l < u);
        if m.obs_dim == 0 || m.act_dim == 0 || !bounds_ok {
            return Err(FormatError::Inconsistent(format!(
                "obs {} / act {} with bounds {:?}..{:?}",
                m.obs_dim, m.act_dim, m.lower, m.upper
            )));
        }
        let (actor, critic) = layouts(&m.config, m.obs_dim, m.act_dim);
        self.state((&actor, &critic)).map(|_| ())
    }
}

/// SHA-256 over `manifest` (its `sha256` emptied) and the tensors.
fn digest(tensors: &Tensors, manifest: &SacManifest) -> String {
    use sha2::{Digest, Sha256};
    let unsigned = SacManifest { sha256: String::new(), ..manifest.clone() };
    let mut h = Sha256::new();
    h.update(serde_json::to_string(&unsigned).expect("the manifest serialises").as_bytes());
    h.update([0u8]);
    h.update(checkpoint_digest(tensors, None).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
