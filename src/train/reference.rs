//! f64 CPU reference of a whole member network as training sees it: forward, loss and
//! backward (the maths of `mlp.wgsl`'s `forward`, `loss.wgsl` and `mlp.wgsl`'s `backward_*`
//! together), used to check the GPU gradients and, against finite differences, itself.
use crate::kernels::loss::reference::member_loss_f64;
use crate::kernels::mlp::reference::silu;
use crate::model::Ensemble;
use crate::train::{ParamLayout, ReplayBuffer};

/// One member's parameters in f64 (weights `[in, out]` row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberNet {
    /// `(in, out, weight, bias)` per layer.
    pub layers: Vec<(usize, usize, Vec<f64>, Vec<f64>)>,
    /// Upper log-variance bounds.
    pub max_logvar: Vec<f64>,
    /// Lower log-variance bounds.
    pub min_logvar: Vec<f64>,
    /// Gaussian outputs.
    pub probabilistic: bool,
    /// Predicted quantities per row.
    pub model_out: usize,
}

impl MemberNet {
    /// Member `m` of `e`.
    pub fn of(e: &Ensemble, m: usize) -> Self {
        let layers = e
            .layers
            .iter()
            .map(|l| {
                let (i, o) = (l.in_dim, l.out_dim);
                let w = l.weight[m * i * o..(m + 1) * i * o].iter().map(|v| *v as f64).collect();
                let b = l.bias[m * o..(m + 1) * o].iter().map(|v| *v as f64).collect();
                (i, o, w, b)
            })
            .collect();
        Self {
            layers,
            max_logvar: e.max_logvar.iter().map(|v| *v as f64).collect(),
            min_logvar: e.min_logvar.iter().map(|v| *v as f64).collect(),
            probabilistic: e.spec.probabilistic,
            model_out: e.spec.model_out(),
        }
    }

    /// The same shape with every value zero (gradient accumulator).
    pub fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        for l in &mut z.layers {
            l.2.iter_mut().for_each(|v| *v = 0.0);
            l.3.iter_mut().for_each(|v| *v = 0.0);
        }
        z.max_logvar.iter_mut().for_each(|v| *v = 0.0);
        z.min_logvar.iter_mut().for_each(|v| *v = 0.0);
        z
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Loss of the member on normalised inputs `x` (`[rows, in]`) and `targets`
/// (`[rows, model_out]`), and its gradient w.r.t. every parameter (bounds without penalty).
pub fn loss_and_grads_f64(net: &MemberNet, x: &[f64], targets: &[f64]) -> (f64, MemberNet) {
    let rows = targets.len() / net.model_out;
    let n = net.layers.len();
    let mut acts = vec![x.to_vec()];
    let mut pres = vec![Vec::new()];
    for (l, (i, o, w, b)) in net.layers.iter().enumerate() {
        let a = &acts[l];
        let mut z = vec![0.0; rows * o];
        for r in 0..rows {
            for q in 0..*o {
                let mut s = b[q];
                for k in 0..*i {
                    s += a[r * i + k] * w[k * o + q];
                }
                z[r * o + q] = s;
            }
        }
        let act = if l + 1 == n { z.clone() } else { z.iter().map(|v| silu(*v)).collect() };
        pres.push(z);
        acts.push(act);
    }
    let bounds = net.probabilistic.then_some((net.max_logvar.as_slice(), net.min_logvar.as_slice()));
    let ml = member_loss_f64(&acts[n], targets, net.model_out, bounds);
    let mut g = net.zeros_like();
    g.max_logvar = ml.grad_max.clone();
    g.min_logvar = ml.grad_min.clone();
    let mut gz = ml.grad_out;
    for l in (0..n).rev() {
        let (i, o, w, _) = &net.layers[l];
        let a = &acts[l];
        for r in 0..rows {
            for q in 0..*o {
                g.layers[l].3[q] += gz[r * o + q];
                for k in 0..*i {
                    g.layers[l].2[k * o + q] += a[r * i + k] * gz[r * o + q];
                }
            }
        }
        if l > 0 {
            let mut prev = vec![0.0; rows * i];
            for r in 0..rows {
                for k in 0..*i {
                    let mut s = 0.0;
                    for q in 0..*o {
                        s += gz[r * o + q] * w[k * o + q];
                    }
                    let zv = pres[l][r * i + k];
                    let sg = sigmoid(zv);
                    prev[r * i + k] = s * sg * (1.0 + zv * (1.0 - sg));
                }
            }
            gz = prev;
        }
    }
    (ml.loss, g)
}

/// The whole ensemble's minibatch loss per member and its gradient in the trainer's flat layout
/// (`layout`), for `rows` of `buffer`: each member's [`loss_and_grads_f64`] on the normalised
/// inputs, plus the log-variance bounds' penalty `penalty · (Σ max_logvar − Σ min_logvar)`.
pub fn flat_loss_and_grads_f64(
    e: &Ensemble,
    buffer: &ReplayBuffer,
    rows: &[usize],
    penalty: f64,
    layout: &ParamLayout,
) -> (Vec<f64>, Vec<f64>) {
    let mut flat = vec![0.0; layout.len];
    let mut losses = Vec::new();
    let mo = e.spec.model_out();
    for m in 0..e.spec.n_members {
        let net = MemberNet::of(e, m);
        let x: Vec<f64> = rows
            .iter()
            .flat_map(|&i| {
                buffer
                    .input(i)
                    .into_iter()
                    .enumerate()
                    .map(|(k, v)| (v as f64 - e.input_mean[k] as f64) / e.input_std[k] as f64)
                    .collect::<Vec<_>>()
            })
            .collect();
        let t: Vec<f64> =
            rows.iter().flat_map(|&i| buffer.target(i, e.spec.learned_reward)).map(|v| v as f64).collect();
        let (loss, g) = loss_and_grads_f64(&net, &x, &t);
        losses.push(loss);
        for (l, (i, o, w, b)) in g.layers.iter().enumerate() {
            for (k, v) in w.iter().enumerate() {
                flat[layout.weight[l] + m * i * o + k] = *v;
            }
            for (k, v) in b.iter().enumerate() {
                flat[layout.bias[l] + m * o + k] = *v;
            }
        }
        if e.spec.probabilistic {
            for d in 0..mo {
                flat[layout.max_logvar + d] += g.max_logvar[d];
                flat[layout.min_logvar + d] += g.min_logvar[d];
            }
        }
    }
    if e.spec.probabilistic {
        for d in 0..mo {
            flat[layout.max_logvar + d] += penalty;
            flat[layout.min_logvar + d] -= penalty;
        }
    }
    (losses, flat)
}
