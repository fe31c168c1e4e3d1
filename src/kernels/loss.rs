//! Loss kernels (`shaders/loss.wgsl`): minibatch gathering and the Gaussian NLL (or MSE) with
//! its gradient through the log-variance soft clamp. Pipelines are built by `crate::train`.

/// f64 CPU reference of `loss.wgsl`.
pub mod reference {
    fn softplus(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Loss of one member's batch and its gradients.
    #[derive(Debug, Clone)]
    pub struct MemberLoss {
        /// Mean over rows and outputs of `(μ − y)²·e^(−lv) + lv` (NLL) or `(μ − y)²` (MSE).
        pub loss: f64,
        /// ∂loss/∂out, `[rows, out_cols]` (means, then raw log-variances).
        pub grad_out: Vec<f64>,
        /// ∂loss/∂max_logvar, `[model_out]` (without the penalty).
        pub grad_max: Vec<f64>,
        /// ∂loss/∂min_logvar, `[model_out]` (without the penalty).
        pub grad_min: Vec<f64>,
    }

    /// `nll_grad` + `reduce_loss` for one member: `out` is `[rows, out_cols]`, `targets`
    /// `[rows, model_out]`; `bounds` is `Some((max, min))` for a probabilistic model.
    pub fn member_loss_f64(
        out: &[f64],
        targets: &[f64],
        model_out: usize,
        bounds: Option<(&[f64], &[f64])>,
    ) -> MemberLoss {
        let rows = targets.len() / model_out;
        let cols = if bounds.is_some() { 2 * model_out } else { model_out };
        let scale = 1.0 / (rows * model_out) as f64;
        let mut r = MemberLoss {
            loss: 0.0,
            grad_out: vec![0.0; rows * cols],
            grad_max: vec![0.0; model_out],
            grad_min: vec![0.0; model_out],
        };
        for row in 0..rows {
            for d in 0..model_out {
                let diff = out[row * cols + d] - targets[row * model_out + d];
                match bounds {
                    None => {
                        r.loss += diff * diff * scale;
                        r.grad_out[row * cols + d] = 2.0 * diff * scale;
                    }
                    Some((max, min)) => {
                        let raw = out[row * cols + model_out + d];
                        let s2 = sigmoid(max[d] - raw);
                        let u = max[d] - softplus(max[d] - raw);
                        let s1 = sigmoid(u - min[d]);
                        let lv = min[d] + softplus(u - min[d]);
                        let inv = (-lv).exp();
                        r.loss += (diff * diff * inv + lv) * scale;
                        let d_lv = (1.0 - diff * diff * inv) * scale;
                        r.grad_out[row * cols + d] = 2.0 * diff * inv * scale;
                        r.grad_out[row * cols + model_out + d] = d_lv * s1 * s2;
                        r.grad_max[d] += d_lv * s1 * (1.0 - s2);
                        r.grad_min[d] += d_lv * (1.0 - s1);
                    }
                }
            }
        }
        r
    }
}
