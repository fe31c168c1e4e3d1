//! Optimiser kernels (`shaders/adam.wgsl`): global gradient norm and Adam. Pipelines are built
//! by `crate::train`.

/// f64 CPU reference of `adam.wgsl`.
pub mod reference {
    /// Adam hyper-parameters.
    #[derive(Debug, Clone, Copy)]
    pub struct AdamParams {
        /// Learning rate.
        pub lr: f64,
        /// First-moment decay.
        pub beta1: f64,
        /// Second-moment decay.
        pub beta2: f64,
        /// Denominator guard.
        pub eps: f64,
        /// L2 weight decay added to the gradient (not applied to `decay_end..`).
        pub weight_decay: f64,
        /// Clip the global gradient norm to this (≤ 0: no clipping).
        pub clip_norm: f64,
    }

    /// One Adam step (`grad_norm_*` + `adam_step`) at step count `t` (1-based). Parameters at
    /// `decay_end..` get no weight decay. Returns false (and changes nothing) when the gradient
    /// norm is not finite.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_step_f64(
        p: &AdamParams,
        t: u32,
        params: &mut [f64],
        grads: &[f64],
        m1: &mut [f64],
        m2: &mut [f64],
        decay_end: usize,
    ) -> bool {
        let norm = grads.iter().map(|g| g * g).sum::<f64>().sqrt();
        if !norm.is_finite() {
            return false;
        }
        for i in 0..params.len() {
            let mut g = grads[i];
            if p.clip_norm > 0.0 && norm > p.clip_norm {
                g *= p.clip_norm / (norm + 1e-6);
            }
            if i < decay_end {
                g += p.weight_decay * params[i];
            }
            m1[i] = p.beta1 * m1[i] + (1.0 - p.beta1) * g;
            m2[i] = p.beta2 * m2[i] + (1.0 - p.beta2) * g * g;
            let m_hat = m1[i] / (1.0 - p.beta1.powi(t as i32));
            let v_hat = m2[i] / (1.0 - p.beta2.powi(t as i32));
            params[i] -= p.lr * m_hat / (v_hat.sqrt() + p.eps);
        }
        true
    }
}
