//! The ensemble's file format: tensor names and shapes, the metadata every lookahead file
//! carries, and safetensors serialisation. Training checkpoints (`train::checkpoint`) use the same
//! tensor names and add the optimiser state and a manifest.

use std::collections::BTreeMap;

use safetensors::tensor::{Dtype, TensorView};

use super::{Ensemble, EnsembleSpec};
use crate::error::FormatError;

/// `format` metadata value of training checkpoints (written by `train::checkpoint`); an
/// ensemble can be read from one, as its tensors have the same names.
pub const CHECKPOINT_FORMAT: &str = "lookahead-checkpoint-v1";

/// The ensemble's tensors by name, with shapes.
pub fn ensemble_tensors(e: &Ensemble) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let n = e.spec.n_members;
    let mut t = Vec::new();
    for (l, layer) in e.layers.iter().enumerate() {
        t.push((format!("layers.{l}.weight"), vec![n, layer.in_dim, layer.out_dim], layer.weight.clone()));
        t.push((format!("layers.{l}.bias"), vec![n, layer.out_dim], layer.bias.clone()));
    }
    t.push(("input_mean".into(), vec![e.input_mean.len()], e.input_mean.clone()));
    t.push(("input_std".into(), vec![e.input_std.len()], e.input_std.clone()));
    t.push(("max_logvar".into(), vec![e.max_logvar.len()], e.max_logvar.clone()));
    t.push(("min_logvar".into(), vec![e.min_logvar.len()], e.min_logvar.clone()));
    t
}

/// Tensors by name: shape and values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// The metadata every lookahead file carries: `format` and the model's sizes and flags.
pub fn metadata(spec: &EnsembleSpec, format: &str) -> std::collections::HashMap<String, String> {
    [
        ("format".to_string(), format.to_string()),
        ("obs_dim".to_string(), spec.obs_dim.to_string()),
        ("act_dim".to_string(), spec.act_dim.to_string()),
        ("probabilistic".to_string(), spec.probabilistic.to_string()),
        ("learned_reward".to_string(), spec.learned_reward.to_string()),
    ]
    .into()
}

/// Serialises F32 tensors with `meta` as safetensors.
pub fn serialize(
    tensors: &Tensors,
    meta: std::collections::HashMap<String, String>,
) -> std::result::Result<Vec<u8>, FormatError> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (shape, data))| {
            TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(data))
                .map(|v| (n.clone(), v))
                .map_err(|e| FormatError::Serialize(format!("tensor {n}: {e}")))
        })
        .collect::<std::result::Result<_, _>>()?;
    safetensors::serialize(views, Some(meta)).map_err(|e| FormatError::Serialize(e.to_string()))
}

/// SHA-256 of a checkpoint: every tensor's name, shape and bytes in name order, preceded (manifest
/// version 2 and later) by the manifest's fields other than the checksum itself, so that an edited
/// manifest (elites, configs, generator state) is caught as surely as an altered tensor.
pub fn checkpoint_digest(tensors: &Tensors, manifest: Option<&serde_json::Value>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    if let Some(m) = manifest {
        let field = |k: &str| m.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let fields = serde_json::json!({"version": field("version"), "model": field("model"), "train": field("train"),
            "elites": field("elites"), "adam_steps": field("adam_steps"), "rng": field("rng")});
        h.update(fields.to_string().as_bytes());
        h.update([0u8]);
    }
    for (name, (shape, data)) in tensors {
        h.update(name.as_bytes());
        h.update([0u8]);
        for s in shape {
            h.update((*s as u64).to_le_bytes());
        }
        h.update(bytemuck::cast_slice::<f32, u8>(data));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a training checkpoint's tensors and manifest and verifies its checksum: what every
/// loader of a checkpoint runs first (`Ensemble::load` on a checkpoint included).
pub fn verified_checkpoint(bytes: &[u8]) -> Result<(Tensors, serde_json::Value), FormatError> {
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| FormatError::NotSafetensors(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let text = meta.get("manifest").ok_or_else(|| FormatError::MissingMetadata("manifest".into()))?;
    let manifest: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| FormatError::BadMetadata { key: "manifest".into(), reason: e.to_string() })?;
    let version = manifest.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    let mut tensors = Tensors::new();
    for name in st.names() {
        let t = st.tensor(name).map_err(|e| FormatError::NotSafetensors(format!("tensor {name}: {e}")))?;
        if t.dtype() != Dtype::F32 {
            return Err(FormatError::WrongDtype { name: name.to_string(), dtype: format!("{:?}", t.dtype()) });
        }
        let data: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        tensors.insert(name.to_string(), (t.shape().to_vec(), data));
    }
    let expected = manifest.get("sha256").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let actual = checkpoint_digest(&tensors, (version >= 2).then_some(&manifest));
    if actual != expected {
        return Err(FormatError::Checksum { expected, actual });
    }
    Ok((tensors, manifest))
}
