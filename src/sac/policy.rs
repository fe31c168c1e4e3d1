//! The deployable policy of a SAC checkpoint: the actor's deterministic action `c + h·tanh(μ)`
//! on one observation on the CPU (no GPU round trip: the real-time path), or on a batch of
//! observations on the GPU (`mlp.wgsl` and `sac.wgsl`'s `act`), the two checked against each
//! other by the tests.

use std::path::Path;

use super::checkpoint::SacCheckpoint;
use super::reference::{deterministic_action, ActionScale, Mlp};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Recorder};
use crate::kernels::mlp::{Activation, MlpKernels};
use crate::kernels::net::{LayeredNet, NetBuffers, NetLayout};
use crate::kernels::sac::SacParams;
use crate::kernels::{bind_params, WG_SIZE};

/// A SAC actor acting deterministically.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    actor: Mlp,
    scale: ActionScale,
}

impl Policy {
    /// The actor of `ckpt`.
    pub fn from_checkpoint(ckpt: &SacCheckpoint) -> Result<Self> {
        let m = &ckpt.manifest;
        let layers = ckpt.actor_layers().map_err(|reason| Error::Weights { path: "the checkpoint".into(), reason })?;
        let f64s = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<f64>>();
        let actor = Mlp {
            layers: layers.iter().map(|(i, o, w, b)| (*i, *o, f64s(w), f64s(b))).collect(),
            hidden_activation: m.config.sac.actor_activation,
        };
        Ok(Self { actor, scale: ActionScale::from_bounds(&m.lower, &m.upper)? })
    }

    /// The actor in a flat buffer of `layout` (a device's), with its hidden activation and the
    /// action bounds `(lower, upper)`.
    pub fn from_flat(
        layout: &NetLayout,
        flat: &[f32],
        hidden: super::HiddenActivation,
        (lower, upper): &(Vec<f64>, Vec<f64>),
    ) -> Result<Self> {
        let f64s = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<f64>>();
        let layers = (0..layout.n_layers())
            .map(|l| {
                let (i, o) = layout.layer_dims()[l];
                let (w, b) = layout.unpack_layer(flat, l);
                (i, o, f64s(w), f64s(b))
            })
            .collect();
        Ok(Self { actor: Mlp { layers, hidden_activation: hidden }, scale: ActionScale::from_bounds(lower, upper)? })
    }

    /// The actor of the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_checkpoint(&SacCheckpoint::load(path)?)
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.actor.in_dim()
    }

    /// Action width.
    pub fn act_dim(&self) -> usize {
        self.scale.act_dim()
    }

    fn check_rows(&self, obs: &[f64]) -> Result<usize> {
        let d = self.obs_dim();
        if obs.is_empty() || !obs.len().is_multiple_of(d) {
            return Err(Error::InvalidInput(format!("{} observation values; the policy takes rows of {d}", obs.len())));
        }
        if let Some(i) = obs.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!("observation value {i} is {}", obs[i])));
        }
        Ok(obs.len() / d)
    }

    /// The action for one observation, on the CPU (f64).
    pub fn act(&self, obs: &[f64]) -> Result<Vec<f64>> {
        if self.check_rows(obs)? != 1 {
            return Err(Error::InvalidInput(format!("act takes one observation of {} values", self.obs_dim())));
        }
        Ok(deterministic_action(&self.actor, &self.scale, obs))
    }

    /// The actions for `obs` (`[rows, obs_dim]`) on the GPU: `[rows, act_dim]`.
    pub fn act_batch(&self, ctx: &GpuContext, obs: &[f64]) -> Result<Vec<f64>> {
        let rows = self.check_rows(obs)?;
        let (a, d) = (self.act_dim(), self.obs_dim());
        let widths: Vec<usize> = std::iter::once(d).chain(self.actor.layers.iter().map(|l| l.1)).collect();
        let layout = NetLayout::new(&widths, 1, NetLayout::alignment(ctx));
        let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
        let layers: Vec<(Vec<f32>, Vec<f32>)> =
            self.actor.layers.iter().map(|(_, _, w, b)| (f32s(w), f32s(b))).collect();
        let flat = layout.pack(layers.iter().map(|(w, b)| (w.as_slice(), b.as_slice())))?;
        let params = ctx.storage_buffer_init("policy.params", &flat);
        let input = ctx.storage_buffer_init("policy.obs", &f32s(obs));
        let out = ctx.storage_buffer("policy.out", rows * 2 * a);
        let actions = ctx.storage_buffer("policy.actions", rows * a);
        let mlp = MlpKernels::new(ctx)?;
        let hidden = match self.actor.hidden_activation {
            super::HiddenActivation::Relu => Activation::Relu,
            super::HiddenActivation::Silu => Activation::Silu,
        };
        let b = NetBuffers {
            params: &params,
            grads: None,
            input: &input,
            output: &out,
            grad_output: None,
            grad_input: None,
        };
        let net = LayeredNet::bind(ctx, &mlp, "policy", &layout, hidden, rows, &b)?;
        let sac = crate::kernels::sac::sac_kernels(ctx)?;
        let p = SacParams {
            batch: u32::try_from(rows).map_err(|_| Error::InvalidInput(format!("{rows} observations")))?,
            obs_dim: d as u32,
            deterministic: 1,
            ..SacParams::with_bounds(&self.scale.center, &self.scale.half)
        };
        let u = ctx.uniform_buffer_init("policy.sac_params", &[p]);
        let params_bg = bind_params::<SacParams>(ctx, "policy.sac_params", &sac.params, &u);
        let act_bg = sac.bind(ctx, "act", &[&out, &actions]);
        let n = rows * a;
        let groups = crate::gpu::grid_1d(n as u32, WG_SIZE, ctx.limits().max_compute_workgroups_per_dimension)?;
        if groups.1 > 1 {
            return Err(Error::InvalidInput(format!("{rows} observations exceed one dispatch row; act in chunks")));
        }
        let mut rec = Recorder::new(ctx, "policy", None);
        net.record_forward(&mut rec, &mlp);
        rec.dispatch("act", &sac.get("act").pipeline, &[(&params_bg, &[0]), (&act_bg, &[])], (groups.0, 1, 1));
        let (encoder, _) = rec.finish();
        ctx.queue.submit(Some(encoder.finish()));
        let got: Vec<f32> = ctx.read_buffer(&actions, n)?;
        Ok(got.iter().map(|v| *v as f64).collect())
    }
}
