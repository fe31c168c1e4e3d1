//! The planner's copy of a learned ensemble on the GPU: per-layer weights and biases, the
//! normaliser and log-variance bounds (`model_consts`), and, for the row kernel, the weights
//! packed into uniform windows, or for the fused kernels every layer in one buffer (f32, or f16
//! padded to 16×16 tiles for the cooperative-matrix kernel). Uploaded once; [`DeviceModel::write`] replaces the values in
//! place after retraining, so compiled kernels and bound workspaces stay valid.

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::mlp::pack_rows_windows;
use crate::kernels::mlp_coop::pack_network_f16;
use crate::kernels::mlp_fused::pack_network;
use crate::model::Ensemble;

pub(super) struct DeviceModel {
    pub(super) ensemble: Ensemble,
    pub(super) weights: Vec<wgpu::Buffer>,
    pub(super) biases: Vec<wgpu::Buffer>,
    /// Input mean, input std, max and min log-variance, concatenated (rollout.wgsl `model_consts`).
    pub(super) consts: wgpu::Buffer,
    /// Per layer, the row kernel's uniform weight windows (when the row kernel is used).
    pub(super) rows: Option<Vec<wgpu::Buffer>>,
    /// Every layer's weights, then every layer's biases, each in one buffer (the fused kernels;
    /// the weights as padded f16 with [`Packing::NetworkF16`]).
    pub(super) network: Option<(wgpu::Buffer, wgpu::Buffer)>,
    packing: Packing,
}

/// The extra copies of the parameters a network kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packing {
    /// Per-layer buffers only (the tiled kernel).
    Layers,
    /// Also the row kernel's uniform windows.
    RowsWindows,
    /// Also all layers in one weight and one bias buffer (the fused kernel).
    Network,
    /// As `Network` with the weights as f16 in 16×16 tiles (the cooperative-matrix kernel).
    NetworkF16,
}

fn network_of(e: &Ensemble) -> (Vec<f32>, Vec<f32>) {
    pack_network(e.layers.iter().map(|l| (l.weight.as_slice(), l.bias.as_slice())))
}

/// The weights and biases buffers' contents for `packing` (None when it packs no network).
fn network_bytes(e: &Ensemble, packing: Packing) -> Option<(Vec<u8>, Vec<u8>)> {
    let (w, b) = network_of(e);
    let b = bytemuck::cast_slice(&b).to_vec();
    match packing {
        Packing::Network => Some((bytemuck::cast_slice(&w).to_vec(), b)),
        Packing::NetworkF16 => {
            let layers = e.layers.iter().map(|l| (l.weight.as_slice(), l.in_dim, l.out_dim));
            Some((bytemuck::cast_slice(&pack_network_f16(layers, e.spec.n_members)).to_vec(), b))
        }
        Packing::Layers | Packing::RowsWindows => None,
    }
}

/// Every layer's weights packed as the row kernel's windows (all members), or `None` when some
/// layer does not fit them.
pub(super) fn rows_windows(e: &Ensemble) -> Option<Vec<Vec<f32>>> {
    e.layers
        .iter()
        .map(|l| {
            let mut all = Vec::new();
            for m in 0..e.spec.n_members {
                all.extend(pack_rows_windows(&l.weight, m, l.in_dim, l.out_dim)?);
            }
            Some(all)
        })
        .collect()
}

fn consts_of(e: &Ensemble) -> Vec<f32> {
    [e.input_mean.as_slice(), &e.input_std, &e.max_logvar, &e.min_logvar].concat()
}

impl DeviceModel {
    /// Uploads `ensemble` (sizes checked first) with the copies `packing` asks for.
    pub(super) fn upload(ctx: &GpuContext, ensemble: Ensemble, packing: Packing) -> Result<Self> {
        for (l, layer) in ensemble.layers.iter().enumerate() {
            ctx.check_buffer_size(
                &format!("layer {l} weights"),
                (layer.weight.len() * 4) as u64,
                true,
                "use a smaller network",
            )?;
        }
        let network = network_bytes(&ensemble, packing);
        if let Some((w, _)) = &network {
            ctx.check_buffer_size(
                "all layers' weights",
                w.len() as u64,
                true,
                "use a smaller network or mlp_kernel = \"tiled\"",
            )?;
        }
        let windows = if packing == Packing::RowsWindows {
            Some(rows_windows(&ensemble).ok_or_else(|| {
                Error::config("planner.mlp_kernel", "rows needs every layer to fit its uniform windows; use tiled")
            })?)
        } else {
            None
        };
        ctx.scoped("model upload", || {
            let weights = ensemble
                .layers
                .iter()
                .enumerate()
                .map(|(l, layer)| ctx.storage_buffer_init(&format!("model.layer{l}.weight"), &layer.weight))
                .collect();
            let biases = ensemble
                .layers
                .iter()
                .enumerate()
                .map(|(l, layer)| ctx.storage_buffer_init(&format!("model.layer{l}.bias"), &layer.bias))
                .collect();
            let consts = ctx.storage_buffer_init("model.consts", &consts_of(&ensemble));
            let rows = windows.map(|windows| {
                windows
                    .iter()
                    .enumerate()
                    .map(|(l, w)| {
                        ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(&format!("model.layer{l}.rows")),
                            contents: bytemuck::cast_slice(w),
                            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                        })
                    })
                    .collect()
            });
            let network = network.map(|(w, b)| {
                (
                    ctx.storage_buffer_init("model.network.weights", &w),
                    ctx.storage_buffer_init("model.network.biases", &b),
                )
            });
            Self { ensemble, weights, biases, consts, rows, network, packing }
        })
    }

    /// Replaces parameters and normaliser with those of `ensemble` (same architecture).
    pub(super) fn write(&mut self, ctx: &GpuContext, ensemble: &Ensemble) -> Result<()> {
        ensemble.validate()?;
        if ensemble.spec != self.ensemble.spec {
            return Err(Error::InvalidInput(format!(
                "the new ensemble ({}) differs from the planner's ({}); build a new planner",
                ensemble.spec, self.ensemble.spec
            )));
        }
        let q = &ctx.queue;
        for (l, layer) in ensemble.layers.iter().enumerate() {
            q.write_buffer(&self.weights[l], 0, bytemuck::cast_slice(&layer.weight));
            q.write_buffer(&self.biases[l], 0, bytemuck::cast_slice(&layer.bias));
        }
        q.write_buffer(&self.consts, 0, bytemuck::cast_slice(&consts_of(ensemble)));
        if let Some(rows) = &self.rows {
            let windows = rows_windows(ensemble).expect("same architecture as the one that fitted");
            for (buf, w) in rows.iter().zip(&windows) {
                q.write_buffer(buf, 0, bytemuck::cast_slice(w));
            }
        }
        if let (Some((wb, bb)), Some((w, b))) = (&self.network, network_bytes(ensemble, self.packing)) {
            q.write_buffer(wb, 0, &w);
            q.write_buffer(bb, 0, &b);
        }
        self.ensemble = ensemble.clone();
        Ok(())
    }
}
