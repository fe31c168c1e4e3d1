//! The flat parameter layout of the trainer: every layer's weight and bias, then the
//! log-variance bounds, each tensor starting at an offset aligned for buffer bindings, so that
//! one buffer holds all parameters (and one each their gradients and Adam moments) while each
//! layer binds its own slice.

use crate::model::{Ensemble, EnsembleSpec};

/// Where each tensor lives in the flat parameter buffer (starts aligned for buffer bindings).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    /// Offset of each layer's weight `[E, in, out]`.
    pub weight: Vec<usize>,
    /// Offset of each layer's bias `[E, out]`.
    pub bias: Vec<usize>,
    /// Offset of `max_logvar` (everything from here on is a log-variance bound).
    pub max_logvar: usize,
    /// Offset of `min_logvar`.
    pub min_logvar: usize,
    /// Total length including padding.
    pub len: usize,
}

impl ParamLayout {
    /// Layout for `spec` with tensor starts aligned to `align` floats.
    pub fn new(spec: &EnsembleSpec, align: usize) -> Self {
        let up = |x: usize| x.div_ceil(align) * align;
        let e = spec.n_members;
        let (mut weight, mut bias) = (Vec::new(), Vec::new());
        let mut at = 0;
        for (i, o) in spec.layer_dims() {
            weight.push(at);
            at = up(at + e * i * o);
            bias.push(at);
            at = up(at + e * o);
        }
        let mo = spec.model_out();
        let max_logvar = at;
        let min_logvar = up(at + mo);
        Self { weight, bias, max_logvar, min_logvar, len: up(min_logvar + mo) }
    }

    /// The ensemble's parameters in this layout.
    pub fn pack(&self, e: &Ensemble) -> Vec<f32> {
        let mut flat = vec![0.0; self.len];
        for (l, layer) in e.layers.iter().enumerate() {
            flat[self.weight[l]..self.weight[l] + layer.weight.len()].copy_from_slice(&layer.weight);
            flat[self.bias[l]..self.bias[l] + layer.bias.len()].copy_from_slice(&layer.bias);
        }
        flat[self.max_logvar..self.max_logvar + e.max_logvar.len()].copy_from_slice(&e.max_logvar);
        flat[self.min_logvar..self.min_logvar + e.min_logvar.len()].copy_from_slice(&e.min_logvar);
        flat
    }

    /// Writes `flat` back into the ensemble's tensors.
    pub fn unpack(&self, flat: &[f32], e: &mut Ensemble) {
        for (l, layer) in e.layers.iter_mut().enumerate() {
            let (w, b) = (layer.weight.len(), layer.bias.len());
            layer.weight.copy_from_slice(&flat[self.weight[l]..self.weight[l] + w]);
            layer.bias.copy_from_slice(&flat[self.bias[l]..self.bias[l] + b]);
        }
        let mo = e.max_logvar.len();
        e.max_logvar.copy_from_slice(&flat[self.max_logvar..self.max_logvar + mo]);
        e.min_logvar.copy_from_slice(&flat[self.min_logvar..self.min_logvar + mo]);
    }
}
