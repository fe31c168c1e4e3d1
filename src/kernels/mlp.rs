//! Ensemble linear layers (`shaders/mlp.wgsl`): `y = act(x · W[m] + b[m])` for every member at
//! once over member-major rows (see "Slots" in the module above).

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

use super::{create_module, create_pipeline, storage_entry, uniform_entry, COMMON_WGSL, MLP_WGSL};

/// Output rows per workgroup tile (WGSL `TILE_M`).
pub const TILE_M: u32 = 64;
/// Output columns per workgroup tile (WGSL `TILE_N`).
pub const TILE_N: u32 = 64;

/// Activation applied after a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// No activation (the output layer).
    Identity = 0,
    /// SiLU, `x · sigmoid(x)`.
    Silu = 1,
}

/// Uniform of one layer (WGSL `LayerParams`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct LayerParams {
    pub n_batch: u32,
    pub local_slots: u32,
    pub n_members: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub activation: u32,
    pub store_pre: u32,
    pub _pad0: u32,
}

impl LayerParams {
    /// Rows of the largest member block.
    pub fn max_block_rows(&self) -> u32 {
        (0..self.n_members)
            .map(|m| {
                self.n_batch
                    * (super::local_block_start(m + 1, self.local_slots, self.n_members)
                        - super::local_block_start(m, self.local_slots, self.n_members))
            })
            .max()
            .unwrap_or(0)
    }

    /// Workgroups of a dispatch of this layer, checked against the device limit.
    pub fn workgroups(&self, ctx: &GpuContext) -> Result<(u32, u32, u32)> {
        let max = ctx.limits().max_compute_workgroups_per_dimension;
        let x = self.max_block_rows().div_ceil(TILE_M).max(1);
        let y = self.out_dim.div_ceil(TILE_N).max(1);
        for (what, v) in [("row tiles of one member", x), ("ensemble members", self.n_members)] {
            if v > max {
                return Err(Error::LimitExceeded {
                    what: format!("mlp.forward: {what}"),
                    requested: v as u64,
                    limit: "max_compute_workgroups_per_dimension",
                    max: max as u64,
                    hint: "lower population × particles × batch size",
                });
            }
        }
        Ok((x, y, self.n_members))
    }

    /// Workgroups of `backward_input` (rows × in_dim tiles per member).
    pub fn workgroups_backward_input(&self, ctx: &GpuContext) -> Result<(u32, u32, u32)> {
        let (x, _, z) = self.workgroups(ctx)?;
        Ok((x, self.in_dim.div_ceil(TILE_N).max(1), z))
    }

    /// Workgroups of `backward_weights` (in_dim × out_dim tiles per member).
    pub fn workgroups_backward_weights(&self) -> (u32, u32, u32) {
        (self.in_dim.div_ceil(TILE_M).max(1), self.out_dim.div_ceil(TILE_N).max(1), self.n_members)
    }

    /// Workgroups of `bias_grad` (one invocation per output and member).
    pub fn workgroups_bias_grad(&self) -> (u32, u32, u32) {
        (self.out_dim.div_ceil(super::WG_SIZE).max(1), self.n_members, 1)
    }
}

/// The pipelines of `mlp.wgsl` and their bind group layout.
pub struct MlpKernels {
    /// Bindings: layer, a_src, b_src, bias, c_dst, aux.
    pub layout: wgpu::BindGroupLayout,
    /// `mlp.forward`.
    pub forward: wgpu::ComputePipeline,
    /// `mlp.backward_input`.
    pub backward_input: wgpu::ComputePipeline,
    /// `mlp.backward_weights`.
    pub backward_weights: wgpu::ComputePipeline,
    /// `mlp.bias_grad`.
    pub bias_grad: wgpu::ComputePipeline,
}

impl MlpKernels {
    /// Compiles `mlp.wgsl`.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let module = create_module(ctx, "mlp", &[COMMON_WGSL, MLP_WGSL].concat())?;
        let layout = ctx.scoped("mlp layout", || {
            ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("mlp"),
                entries: &[
                    uniform_entry(0, false, std::mem::size_of::<LayerParams>() as u64),
                    storage_entry(1, true),
                    storage_entry(2, true),
                    storage_entry(3, true),
                    storage_entry(4, false),
                    storage_entry(5, false),
                ],
            })
        })?;
        let pl = ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("mlp"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipe = |entry: &str, wg: bool| create_pipeline(ctx, &format!("mlp.{entry}"), &pl, &module, entry, wg);
        Ok(Self {
            forward: pipe("forward", false)?,
            backward_input: pipe("backward_input", false)?,
            backward_weights: pipe("backward_weights", false)?,
            bias_grad: pipe("bias_grad", true)?,
            layout,
        })
    }

    /// Records one `forward` (or `backward_input`, same grid) of a layer: `bind_group` holds
    /// (params, a_src, b_src, bias, c_dst, aux).
    pub fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, bind_group: &wgpu::BindGroup, groups: (u32, u32, u32)) {
        self.dispatch_with(pass, &self.forward, bind_group, groups);
    }

    /// Records `pipeline` over `groups` workgroups.
    pub fn dispatch_with(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        groups: (u32, u32, u32),
    ) {
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }
}

/// f64 CPU reference.
pub mod reference {
    use super::Activation;

    /// SiLU in f64.
    pub fn silu(v: f64) -> f64 {
        v / (1.0 + (-v).exp())
    }

    /// One layer for one member: `x` is `[rows, in_dim]`, `w` is `[in_dim, out_dim]`, `b` is `[out_dim]`.
    pub fn layer_f64(x: &[f64], w: &[f32], b: &[f32], in_dim: usize, out_dim: usize, act: Activation) -> Vec<f64> {
        let rows = x.len() / in_dim;
        let mut y = vec![0.0; rows * out_dim];
        for r in 0..rows {
            for o in 0..out_dim {
                let mut acc = b[o] as f64;
                for k in 0..in_dim {
                    acc += x[r * in_dim + k] * w[k * out_dim + o] as f64;
                }
                y[r * out_dim + o] = match act {
                    Activation::Identity => acc,
                    Activation::Silu => silu(acc),
                };
            }
        }
        y
    }
}

/// Uniform of `mlp_rows.wgsl` (WGSL `RowsParams`), one per layer and member.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct RowsParams {
    pub n_batch: u32,
    pub local_slots: u32,
    pub n_members: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub out4: u32,
    pub rows_per_chunk: u32,
    pub activation: u32,
    pub member: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// vec4 values in one uniform weight window (WGSL `WINDOW`, 64 KiB).
pub const ROWS_WINDOW: usize = 4096;
/// Weight windows per layer (WGSL bindings w0..w3).
pub const ROWS_CHUNKS: usize = 4;
/// Largest `out_dim / 4` of the row kernel (WGSL `MAX_OUT4`).
pub const ROWS_MAX_OUT4: usize = 64;

/// How the uniform-weight row kernel splits a layer: `(out4, rows_per_chunk, chunks)`, or
/// `None` when the layer does not fit its windows.
pub fn rows_chunking(in_dim: usize, out_dim: usize) -> Option<(usize, usize, usize)> {
    let out4 = out_dim.div_ceil(4);
    if out4 == 0 || out4 > ROWS_MAX_OUT4 {
        return None;
    }
    let rpc = ROWS_WINDOW / out4;
    let chunks = in_dim.div_ceil(rpc).max(1);
    (chunks <= ROWS_CHUNKS).then_some((out4, rpc, chunks))
}

/// Member `m`'s weights of a `[E, in, out]` tensor laid out as the row kernel's windows
/// (`chunks` windows of [`ROWS_WINDOW`] vec4 each).
pub fn pack_rows_windows(weight: &[f32], m: usize, in_dim: usize, out_dim: usize) -> Option<Vec<f32>> {
    let (out4, rpc, chunks) = rows_chunking(in_dim, out_dim)?;
    let mut w = vec![0.0f32; chunks * ROWS_WINDOW * 4];
    for k in 0..in_dim {
        let (c, kl) = (k / rpc, k % rpc);
        for o in 0..out_dim {
            w[(c * ROWS_WINDOW + kl * out4) * 4 + o] = weight[(m * in_dim + k) * out_dim + o];
        }
    }
    Some(w)
}

/// The `forward_rows` pipeline and its bind group layout.
pub struct MlpRowsKernels {
    /// Bindings: rows, x, bias, y, w0..w3.
    pub layout: wgpu::BindGroupLayout,
    /// `mlp_rows.forward_rows`.
    pub forward_rows: wgpu::ComputePipeline,
}

impl MlpRowsKernels {
    /// Compiles `mlp_rows.wgsl`; fails with a clear error where uniform windows of 64 KiB are
    /// not available.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let l = ctx.limits();
        let window = (ROWS_WINDOW * 16) as u64;
        if l.max_uniform_buffer_binding_size < window || l.max_uniform_buffers_per_shader_stage < 5 {
            return Err(Error::LimitExceeded {
                what: "mlp_rows: four 64 KiB uniform weight windows".into(),
                requested: window,
                limit: "max_uniform_buffer_binding_size",
                max: l.max_uniform_buffer_binding_size,
                hint: "use mlp_kernel = \"tiled\"",
            });
        }
        let module = create_module(ctx, "mlp_rows", &[COMMON_WGSL, super::MLP_ROWS_WGSL].concat())?;
        let layout = ctx.scoped("mlp_rows layout", || {
            let mut entries = vec![
                uniform_entry(0, false, std::mem::size_of::<RowsParams>() as u64),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
            ];
            for b in 4..8 {
                entries.push(uniform_entry(b, false, window));
            }
            ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("mlp_rows"),
                entries: &entries,
            })
        })?;
        let pl = ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("mlp_rows"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let forward_rows = create_pipeline(ctx, "mlp_rows.forward_rows", &pl, &module, "forward_rows", true)?;
        Ok(Self { layout, forward_rows })
    }
}
