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
