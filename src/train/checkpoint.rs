//! Training checkpoints: one safetensors file holding the ensemble (the tensor names of
//! [`crate::model`]), the Adam moments (`adam.m.<tensor>`, `adam.v.<tensor>`, same shapes) and a
//! JSON manifest in the metadata (`manifest`: format version, model and training config, elites,
//! Adam step count, SHA-256 of every tensor). Writes are atomic (temporary file, fsync, rename),
//! so a crash during a save leaves the previous checkpoint intact; loading verifies the checksum
//! and names what is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::TrainConfig;
use crate::error::{Error, FormatError, Result};
pub use crate::model::format::CHECKPOINT_FORMAT;
use crate::model::format::{checkpoint_digest, ensemble_tensors, metadata, serialize, verified_checkpoint, Tensors};
use crate::model::{Ensemble, EnsembleSpec};
use crate::util::write_atomic;
/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 2;

/// Adam moments per tensor name (the ensemble's names) and the step count.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    /// First moments by tensor name.
    pub m: BTreeMap<String, Vec<f32>>,
    /// Second moments by tensor name.
    pub v: BTreeMap<String, Vec<f32>>,
    /// Adam steps taken.
    pub steps: u32,
}

/// The JSON manifest stored in the file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The architecture.
    pub model: EnsembleSpec,
    /// The training settings.
    pub train: TrainConfig,
    /// Elite members, best first.
    pub elites: Vec<usize>,
    /// Adam steps taken (0 without optimiser state).
    pub adam_steps: u32,
    /// Where the trainer's random generator stands (bootstrap, shuffles, validation split), so
    /// that resumed training continues exactly as uninterrupted training would.
    #[serde(default)]
    pub rng: Option<RngState>,
    /// SHA-256 over every tensor's name, shape and bytes in name order (hex).
    pub sha256: String,
}

/// The state of the trainer's ChaCha12 generator: its seed, stream and position in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngState {
    /// The 32-byte seed, hex.
    pub seed: String,
    /// The stream number.
    pub stream: u64,
    /// The position in the stream (32-bit words), decimal (it can exceed JSON's exact integers).
    pub word_pos: String,
}

impl RngState {
    /// The state of `rng`.
    pub fn of(rng: &rand_chacha::ChaCha12Rng) -> Self {
        Self {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator at this state.
    pub fn restore(&self) -> std::result::Result<rand_chacha::ChaCha12Rng, FormatError> {
        use rand::SeedableRng;
        let bad = |reason: &str| FormatError::BadMetadata { key: "manifest.rng".into(), reason: reason.into() };
        if self.seed.len() != 64 {
            return Err(bad("the seed must be 64 hex digits"));
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad("the seed is not hex"))?;
        }
        let pos: u128 = self.word_pos.parse().map_err(|_| bad("word_pos is not a number"))?;
        let mut rng = rand_chacha::ChaCha12Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Refuses elites that are not distinct members of an `n_members`-member ensemble, or none.
fn check_elites(elites: &[usize], n_members: usize) -> std::result::Result<(), FormatError> {
    if elites.is_empty() {
        return Err(FormatError::Inconsistent("no elites: a trainer always has at least one".into()));
    }
    if let Some(bad) = elites.iter().find(|e| **e >= n_members) {
        return Err(FormatError::Inconsistent(format!("elite {bad} is not a member of a {n_members}-member ensemble")));
    }
    if let Some((i, e)) = elites.iter().enumerate().find(|(i, e)| elites[..*i].contains(e)) {
        return Err(FormatError::Inconsistent(format!("elite {e} is listed twice (elites {elites:?}, position {i})")));
    }
    Ok(())
}

/// Everything needed to resume training and to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Parameters and normaliser.
    pub ensemble: Ensemble,
    /// Training settings.
    pub train: TrainConfig,
    /// Elite members, best first.
    pub elites: Vec<usize>,
    /// Optimiser state, if saved.
    pub adam: Option<AdamState>,
    /// The trainer's random generator, if saved.
    pub rng: Option<RngState>,
}

impl Checkpoint {
    /// Refuses a (resume point's) checkpoint whose ensemble is not of the run's architecture
    /// `spec`.
    pub fn check_architecture(&self, spec: &EnsembleSpec) -> Result<()> {
        if &self.ensemble.spec == spec {
            return Ok(());
        }
        let why = format!("the point's trainer holds ({}), the config asks for ({spec})", self.ensemble.spec);
        Err(Error::config("resume", why))
    }

    /// Serialises and writes atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.ensemble.validate()?;
        check_elites(&self.elites, self.ensemble.spec.n_members).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut tensors: Tensors = ensemble_tensors(&self.ensemble).into_iter().map(|(n, s, d)| (n, (s, d))).collect();
        let shapes: BTreeMap<String, Vec<usize>> = tensors.iter().map(|(n, (s, _))| (n.clone(), s.clone())).collect();
        if let Some(adam) = &self.adam {
            for (prefix, moments) in [("adam.m.", &adam.m), ("adam.v.", &adam.v)] {
                for (name, data) in moments {
                    let shape = shapes
                        .get(name)
                        .ok_or_else(|| Error::InvalidInput(format!("Adam state for unknown tensor {name}")))?;
                    if shape.iter().product::<usize>() != data.len() {
                        return Err(Error::InvalidInput(format!(
                            "Adam state {prefix}{name} has {} values for shape {shape:?}",
                            data.len()
                        )));
                    }
                    tensors.insert(format!("{prefix}{name}"), (shape.clone(), data.clone()));
                }
            }
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            model: self.ensemble.spec.clone(),
            train: self.train.clone(),
            elites: self.elites.clone(),
            adam_steps: self.adam.as_ref().map(|a| a.steps).unwrap_or(0),
            rng: self.rng.clone(),
            sha256: String::new(),
        };
        let value = serde_json::to_value(&manifest).expect("the manifest serialises");
        let manifest = Manifest { sha256: checkpoint_digest(&tensors, Some(&value)), ..manifest };
        let mut meta = metadata(&self.ensemble.spec, CHECKPOINT_FORMAT);
        meta.insert("manifest".to_string(), serde_json::to_string(&manifest).expect("the manifest serialises"));
        let bytes =
            serialize(&tensors, meta).map_err(|reason| Error::Weights { path: path.display().to_string(), reason })?;
        write_atomic(path, &bytes)
    }

    /// Reads and verifies a checkpoint.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: p.clone(), source })?;
        Self::from_bytes(&bytes).map_err(|reason| Error::Weights { path: p, reason })
    }

    /// Parses and verifies a checkpoint buffer; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, FormatError> {
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        match meta.get("format").map(String::as_str) {
            Some(CHECKPOINT_FORMAT) => {}
            other => {
                return Err(FormatError::WrongFormat {
                    found: other.map(str::to_string),
                    expected: vec![CHECKPOINT_FORMAT.to_string()],
                })
            }
        }
        let (tensors, value) = verified_checkpoint(bytes)?;
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| FormatError::BadMetadata { key: "manifest".into(), reason: e.to_string() })?;
        match manifest.version {
            MANIFEST_VERSION => {}
            1 => return Err(FormatError::UncheckedManifest { found: 1 }),
            found => return Err(FormatError::ManifestVersion { found, supported: MANIFEST_VERSION }),
        }
        let ensemble = Ensemble::from_bytes_any(bytes)?;
        if ensemble.spec != manifest.model {
            return Err(FormatError::Inconsistent(format!(
                "the tensors describe ({}), the manifest ({})",
                ensemble.spec, manifest.model
            )));
        }
        let adam = if manifest.adam_steps > 0 || tensors.keys().any(|k| k.starts_with("adam.")) {
            let mut m = BTreeMap::new();
            let mut v = BTreeMap::new();
            for (name, _, _) in ensemble_tensors(&ensemble) {
                for (prefix, map) in [("adam.m.", &mut m), ("adam.v.", &mut v)] {
                    let key = format!("{prefix}{name}");
                    let (_, data) = tensors.get(&key).ok_or_else(|| FormatError::MissingTensor(key.clone()))?;
                    map.insert(name.clone(), data.clone());
                }
            }
            Some(AdamState { m, v, steps: manifest.adam_steps })
        } else {
            None
        };
        check_elites(&manifest.elites, ensemble.spec.n_members)?;
        if let Some(r) = &manifest.rng {
            r.restore()?;
        }
        Ok(Self { ensemble, train: manifest.train, elites: manifest.elites, adam, rng: manifest.rng })
    }
}
