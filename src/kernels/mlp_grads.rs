//! Every layer's weight and bias gradients in one dispatch (`shaders/mlp_grads.wgsl`, with
//! `shaders/tile.wgsl`'s product): the trainer's fused path, after the input-gradient chain has
//! written every layer's output gradient.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

use super::family::{FamilyDecl, Part};
use super::mlp::{TILE_M, TILE_N};
use super::mlp_fused::FUSED_MAX_LAYERS;
use super::{bind_buffers, check_grid, storage_entry, uniform_entry, Family, COMMON_WGSL, MLP_GRADS_WGSL, TILE_WGSL};

/// Uniform of `mlp_grads.wgsl` (WGSL `GradsParams`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct GradsParams {
    pub n_batch: u32,
    pub local_slots: u32,
    pub n_members: u32,
    pub n_layers: u32,
    /// `dims[l]`: input width of layer `l`; `dims[n_layers]`: output width.
    pub dims: [u32; 12],
    /// Where layer `l`'s input rows `[rows, dims[l]]` start in `a_src` (floats).
    pub x_off: [u32; 8],
    /// Where layer `l`'s output gradients `[rows, dims[l + 1]]` start in `b_src`.
    pub d_off: [u32; 8],
    /// Where layer `l`'s weight gradients `[E, dims[l], dims[l + 1]]` start in `c_dst`.
    pub w_off: [u32; 8],
    /// Where layer `l`'s bias gradients `[E, dims[l + 1]]` start in `c_dst`.
    pub b_off: [u32; 8],
}

/// One layer's operands and results for [`GradsParams::new`] (offsets in floats).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradsLayer {
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
    /// Where the layer's input rows start in `a_src`.
    pub x_off: usize,
    /// Where the gradient at its output starts in `b_src`.
    pub d_off: usize,
    /// Where its weight gradients start in `c_dst`.
    pub w_off: usize,
    /// Where its bias gradients start in `c_dst`.
    pub b_off: usize,
}

impl GradsParams {
    /// Parameters for `layers` (each layer's input width the previous one's output width) of
    /// `n_members` members over `n_batch` plans of `local_slots` member-major rows.
    pub fn new(layers: &[GradsLayer], n_members: usize, n_batch: u32, local_slots: u32) -> Result<Self> {
        let bad = |why: String| Error::InvalidInput(format!("mlp_grads: {why}"));
        if layers.is_empty() || layers.len() > FUSED_MAX_LAYERS {
            return Err(bad(format!("1 to {FUSED_MAX_LAYERS} layers, got {}", layers.len())));
        }
        let u = |v: usize| u32::try_from(v).map_err(|_| bad(format!("{v} does not fit in 32 bits")));
        let mut p = GradsParams {
            n_batch,
            local_slots,
            n_members: u(n_members)?,
            n_layers: layers.len() as u32,
            ..Default::default()
        };
        for (l, g) in layers.iter().enumerate() {
            if l > 0 && layers[l - 1].out_dim != g.in_dim {
                return Err(bad(format!(
                    "layer {l} takes {} inputs after {} outputs",
                    g.in_dim,
                    layers[l - 1].out_dim
                )));
            }
            p.dims[l] = u(g.in_dim)?;
            p.dims[l + 1] = u(g.out_dim)?;
            p.x_off[l] = u(g.x_off)?;
            p.d_off[l] = u(g.d_off)?;
            p.w_off[l] = u(g.w_off)?;
            p.b_off[l] = u(g.b_off)?;
        }
        Ok(p)
    }

    /// Workgroups of the dispatch: (tiles of the widest input + the bias column, tiles of the
    /// widest output, members × layers), checked against the device limit.
    pub fn workgroups(&self, ctx: &GpuContext) -> Result<(u32, u32, u32)> {
        let n = self.n_layers as usize;
        if n == 0 || n > FUSED_MAX_LAYERS {
            return Err(Error::InvalidInput(format!("mlp_grads: 1 to {FUSED_MAX_LAYERS} layers, got {n}")));
        }
        let widest_in = self.dims[..n].iter().copied().max().unwrap_or(1);
        let widest_out = self.dims[1..=n].iter().copied().max().unwrap_or(1);
        let x = widest_in.div_ceil(TILE_M).max(1) + 1;
        let y = widest_out.div_ceil(TILE_N).max(1);
        let z = self
            .n_members
            .checked_mul(self.n_layers)
            .ok_or_else(|| Error::InvalidInput(format!("mlp_grads: {} members × {n} layers", self.n_members)))?;
        check_grid(ctx, "mlp_grads.weight_grads", &[("input tiles", x), ("output tiles", y), ("members × layers", z)])?;
        Ok((x, y, z))
    }
}

/// `mlp_grads.wgsl` after the tiled product: every layer's weight and bias gradients.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "mlp_grads",
    &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(TILE_WGSL), Part::Wgsl(MLP_GRADS_WGSL)],
    &["weight_grads"],
);

/// The `weight_grads` pipeline and its bind group layout.
pub struct MlpGradsKernels {
    /// Bindings: params, a_src, b_src, c_dst.
    pub layout: wgpu::BindGroupLayout,
    /// `mlp_grads.weight_grads`.
    pub weight_grads: wgpu::ComputePipeline,
}

impl MlpGradsKernels {
    /// Builds (or takes from the context's cache) `mlp_grads.wgsl`.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let layout = ctx.bind_group_layout(
            "mlp_grads",
            &[
                uniform_entry(0, false, std::mem::size_of::<GradsParams>() as u64),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
            ],
        )?;
        let weight_grads = Family::MlpGrads.pipeline(ctx, None, "weight_grads", &[&layout], &[])?;
        Ok(Self { layout, weight_grads })
    }

    /// A uniform with `p` and a bind group over (inputs, output gradients, gradients).
    pub fn bind(
        &self,
        ctx: &GpuContext,
        label: &str,
        p: &GradsParams,
        inputs: &wgpu::Buffer,
        deltas: &wgpu::Buffer,
        grads: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        let ubuf = ctx.uniform_buffer_init(&format!("{label}.params"), std::slice::from_ref(p));
        bind_buffers(ctx, label, &self.layout, &[&ubuf, inputs, deltas, grads])
    }
}
