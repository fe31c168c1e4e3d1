//! The whole ensemble network in one dispatch (`shaders/mlp_fused.wgsl`): every layer of a
//! block of rows with the activations kept in workgroup memory, for the planner's model step
//! (one dispatch instead of one per layer, and no hidden activations through global memory).

use crate::error::Result;
use crate::gpu::GpuContext;

use super::family::{FamilyDecl, Part};
use super::{check_grid, storage_entry, uniform_entry, Family, COMMON_WGSL, MLP_FUSED_NET_WGSL, MLP_FUSED_WGSL};

/// Most layers the fused kernel takes (WGSL `FUSED_MAX_LAYERS`).
pub const FUSED_MAX_LAYERS: usize = 8;
/// Most vec4 accumulators per invocation (WGSL `FUSED_MAX_ACC`).
pub const FUSED_MAX_ACC: u32 = 16;
/// Most output columns per invocation (WGSL `FUSED_MAX_COLS`).
pub const FUSED_MAX_COLS: u32 = 4;
/// Most rows per workgroup / 4 (the accumulators of a column).
const MAX_ROWS4: u32 = 8;
/// Rows per model step from which workgroups take half as many rows ([`FusedShape::for_network`]).
pub const MANY_ROWS: u64 = 16_384;

/// Uniform of `mlp_fused.wgsl` (WGSL `FusedParams`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct FusedParams {
    pub n_batch: u32,
    pub local_slots: u32,
    pub n_members: u32,
    pub n_layers: u32,
    /// `dims[l]`: input width of layer `l`; `dims[n_layers]`: output width.
    pub dims: [u32; 12],
    /// Where layer `l`'s weights start in the packed weights (floats).
    pub w_off: [u32; 8],
    /// Where layer `l`'s biases start in the packed biases (floats).
    pub b_off: [u32; 8],
    /// Where the output rows start in `y` (floats); the backward chain reads its input
    /// gradient from there.
    pub y_off: u32,
    /// 1: the input rows are copied to `y` from `in_off`, and every layer but the last also
    /// writes its pre-activations and activations to `y` (from `pre_off[l]` and `act_off[l]`);
    /// `mlp_fused.wgsl`'s forward pass only ([`FusedParams::store_hidden`]).
    pub store_hidden: u32,
    /// Where the input rows are copied in `y` with `store_hidden`.
    pub in_off: u32,
    /// 1: the forward pass also writes every layer but the first transposed to `y` from
    /// `t_off[l]` (`[E, dims[l + 1], dims[l]]`), which the backward chain reads coalesced
    /// ([`FusedParams::write_transposed`]).
    pub transpose: u32,
    /// Forward: where layer `l`'s pre-activations `[rows, dims[l + 1]]` start in `y`; backward
    /// chain: where product `l` reads its output's pre-activations in `x` (floats).
    pub pre_off: [u32; 8],
    /// Forward: where layer `l`'s activations `[rows, dims[l + 1]]` start in `y`; backward
    /// chain: where product `l` writes its gradients in `y` (floats).
    pub act_off: [u32; 8],
    /// Forward with `transpose`: where layer `l`'s transposed weights start in `y` (l ≥ 1).
    pub t_off: [u32; 8],
}

impl FusedParams {
    /// Parameters for a network of widths `dims` (`dims[0]` in, then every layer's output)
    /// and `n_members` members, over `n_batch` plans of `local_slots` slots; `None` when the
    /// network has more than [`FUSED_MAX_LAYERS`] layers or the packed sizes overflow u32.
    pub fn new(dims: &[usize], n_members: usize, n_batch: u32, local_slots: u32) -> Option<Self> {
        let n_layers = dims.len().checked_sub(1)?;
        if n_layers == 0 || n_layers > FUSED_MAX_LAYERS {
            return None;
        }
        let mut p = FusedParams {
            n_batch,
            local_slots,
            n_members: u32::try_from(n_members).ok()?,
            n_layers: n_layers as u32,
            ..Default::default()
        };
        let (mut w, mut b) = (0u64, 0u64);
        for (l, d) in dims.iter().enumerate() {
            p.dims[l] = u32::try_from(*d).ok()?;
            if l < n_layers {
                p.w_off[l] = u32::try_from(w).ok()?;
                p.b_off[l] = u32::try_from(b).ok()?;
                w += (n_members * d * dims[l + 1]) as u64;
                b += (n_members * dims[l + 1]) as u64;
            }
        }
        u32::try_from(w).ok()?;
        Some(p)
    }

    /// The same with the output rows at `y_off` in `y`, a copy of the input rows at `in_off`,
    /// and every hidden layer `l` (all but the last) writing its pre-activations at `pre_off[l]`
    /// and its activations at `act_off[l]`, each `[rows, dims[l + 1]]`; `None` unless there is
    /// one offset of each per hidden layer.
    pub fn store_hidden(mut self, y_off: u32, in_off: u32, pre_off: &[u32], act_off: &[u32]) -> Option<Self> {
        let hidden = (self.n_layers as usize).checked_sub(1)?;
        if hidden >= FUSED_MAX_LAYERS || pre_off.len() != hidden || act_off.len() != hidden {
            return None;
        }
        self.y_off = y_off;
        self.in_off = in_off;
        self.store_hidden = 1;
        self.pre_off[..hidden].copy_from_slice(pre_off);
        self.act_off[..hidden].copy_from_slice(act_off);
        Some(self)
    }

    /// The forward pass also writing forward layer `l`'s weights transposed,
    /// `[E, dims[l + 1], dims[l]]`, to `y` from `t_off[l − 1]`, for every layer but the first
    /// (the backward chain's weights, [`FusedParams::backward_chain`]); `None` unless there is
    /// one offset per layer but the first.
    pub fn write_transposed(mut self, t_off: &[u32]) -> Option<Self> {
        let n = (self.n_layers as usize).checked_sub(1)?;
        if t_off.len() != n {
            return None;
        }
        self.transpose = 1;
        self.t_off[1..=n].copy_from_slice(t_off);
        Some(self)
    }

    /// Parameters of the backward chain (`mlp_fused.wgsl` with `BACKWARD`) through a network
    /// of widths `dims` (forward order, L = `dims.len() − 1` ≥ 2 layers) of `n_members`
    /// members: product j is forward layer L − 1 − j transposed, its weights the forward
    /// pass's transposed copy from `t_off[L − 2 − j]` (the offsets given to
    /// [`FusedParams::write_transposed`], in the buffer the chain binds as its weights),
    /// taking the gradient at its output from `grad_off` in `y` (j = 0) and writing the
    /// gradient at forward hidden layer h's output (h = L − 2 − j) to `delta_off[h]` in `y`,
    /// with SiLU′ of its pre-activations read from `pre_off[h]` in `x`. `None` for fewer than 2
    /// or more than [`FUSED_MAX_LAYERS`] layers, or offsets that are not one per layer but the
    /// first / hidden layer.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_chain(
        dims: &[usize],
        n_members: usize,
        n_batch: u32,
        local_slots: u32,
        t_off: &[u32],
        grad_off: u32,
        pre_off: &[u32],
        delta_off: &[u32],
    ) -> Option<Self> {
        let l = dims.len().checked_sub(1)?;
        if l < 2 || t_off.len() != l - 1 || pre_off.len() != l - 1 || delta_off.len() != l - 1 {
            return None;
        }
        let reversed: Vec<usize> = dims[1..].iter().rev().copied().collect();
        let mut p = Self::new(&reversed, n_members, n_batch, local_slots)?;
        p.b_off = [0; 8];
        p.y_off = grad_off;
        for j in 0..l - 1 {
            p.w_off[j] = t_off[l - 2 - j];
            p.pre_off[j] = pre_off[l - 2 - j];
            p.act_off[j] = delta_off[l - 2 - j];
        }
        Some(p)
    }

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
}

/// How the fused kernel is laid out for one network on one device (the WGSL overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FusedShape {
    /// Rows per workgroup / 4.
    pub rows4: u32,
    /// Output columns per invocation.
    pub cols: u32,
    /// Invocations per workgroup.
    pub wg: u32,
    /// Groups of invocations that split the rows (1 or 2).
    pub split: u32,
    /// Widest layer input or output (floats per row in workgroup memory, which also holds the
    /// last layer's outputs).
    pub width: u32,
}

impl FusedShape {
    /// The layout for a network of widths `dims` within `limits`, or why there is none.
    ///
    /// Columns: one invocation per output column up to 64 outputs, two per invocation above
    /// (each weight then feeds twice the multiply-adds per workgroup-memory read), rounded to
    /// whole subgroups of 32. Rows: as many as the workgroup memory holds for the widest input or output,
    /// at most 32 (the accumulators are `cols · rows / 4` vec4 registers), and 16 when a step
    /// has [`MANY_ROWS`] rows or more (`rows_per_step`): measured on an H100 (PETS reference
    /// network, Vulkan), 32-row blocks are faster at 7 000 rows per step and 16-row blocks at
    /// 20 000 and more, where twice the workgroups keep more of the GPU busy.
    pub fn for_network(dims: &[usize], limits: &wgpu::Limits, rows_per_step: u64) -> std::result::Result<Self, String> {
        let n_layers = dims.len().saturating_sub(1);
        if n_layers == 0 || n_layers > FUSED_MAX_LAYERS {
            return Err(format!("the fused kernel takes 1 to {FUSED_MAX_LAYERS} layers, this network has {n_layers}"));
        }
        let width = row_width(dims);
        let max_out = dims[1..].iter().copied().max().unwrap_or(0).max(1) as u64;
        let max_wg =
            (limits.max_compute_invocations_per_workgroup.min(limits.max_compute_workgroup_size_x) as u64).min(256);
        let mut cols = if max_out > 64 { 2 } else { 1 };
        let mut wg = max_out.div_ceil(cols).div_ceil(32) * 32;
        if wg > max_wg {
            wg = max_wg / 32 * 32;
            if wg == 0 {
                return Err(format!("the device allows {max_wg} invocations per workgroup"));
            }
            cols = max_out.div_ceil(wg);
        }
        if cols > FUSED_MAX_COLS as u64 {
            return Err(format!(
                "{max_out} outputs need {cols} columns per invocation (at most {FUSED_MAX_COLS}) with {wg} invocations"
            ));
        }
        let most = if rows_per_step >= MANY_ROWS { MAX_ROWS4 / 2 } else { MAX_ROWS4 };
        let memory = limits.max_compute_workgroup_storage_size as u64;
        let rows4 = (1..=(most as u64).min(FUSED_MAX_ACC as u64 / cols))
            .rev()
            .find(|&r| act_bytes(width, r as u32) <= memory)
            .unwrap_or(0);
        if rows4 == 0 {
            return Err(format!(
                "4 rows of {width} floats need {} B of workgroup memory, the device has {} B",
                width * 16,
                limits.max_compute_workgroup_storage_size
            ));
        }
        // Below MANY_ROWS a step has few workgroups: two groups of invocations share each
        // block's rows, so that each workgroup has twice the warps to hide latency with.
        let split = if rows4 == MAX_ROWS4 as u64 && 2 * wg <= max_wg { 2 } else { 1 };
        Ok(Self {
            rows4: rows4 as u32,
            cols: cols as u32,
            wg: (wg * split) as u32,
            split: split as u32,
            width: width as u32,
        })
    }

    /// An explicit layout for a network of widths `dims` within `limits`: `rows4 · 4` rows per
    /// workgroup, `cols` output columns per invocation, the rows split between `split` groups of
    /// invocations, each group as many whole subgroups of 32 as `cols` columns per invocation
    /// need to cover the widest layer; or why the kernel cannot take it (every layout it takes
    /// computes the same sums in the same order: only the speed differs).
    pub fn with_layout(
        dims: &[usize],
        limits: &wgpu::Limits,
        rows4: u32,
        cols: u32,
        split: u32,
    ) -> std::result::Result<Self, String> {
        let n_layers = dims.len().saturating_sub(1);
        if n_layers == 0 || n_layers > FUSED_MAX_LAYERS {
            return Err(format!("the fused kernel takes 1 to {FUSED_MAX_LAYERS} layers, this network has {n_layers}"));
        }
        if cols == 0 || cols > FUSED_MAX_COLS {
            return Err(format!("{cols} columns per invocation: 1 to {FUSED_MAX_COLS}"));
        }
        let (rows4_64, split_64) = (rows4 as u64, split as u64);
        if split == 0 || rows4 == 0 || !rows4.is_multiple_of(split) {
            return Err(format!("{} rows per workgroup do not split into {split} groups of quads", 4 * rows4_64));
        }
        if cols as u64 * (rows4_64 / split_64) > FUSED_MAX_ACC as u64 {
            return Err(format!(
                "{cols} columns × {} rows per invocation need more than {FUSED_MAX_ACC} vec4 accumulators",
                4 * rows4_64 / split_64
            ));
        }
        let width = row_width(dims);
        let max_out = dims[1..].iter().copied().max().unwrap_or(0).max(1) as u64;
        let lanes = max_out.div_ceil(cols as u64).div_ceil(32) * 32;
        let wg = lanes * split_64;
        let max_wg =
            (limits.max_compute_invocations_per_workgroup.min(limits.max_compute_workgroup_size_x) as u64).min(1024);
        if wg > max_wg {
            return Err(format!("{wg} invocations per workgroup, at most {max_wg} here"));
        }
        let bytes = act_bytes(width, rows4);
        if bytes > limits.max_compute_workgroup_storage_size as u64 {
            return Err(format!(
                "{} rows of {width} floats need {bytes} B of workgroup memory, the device has {} B",
                4 * rows4_64,
                limits.max_compute_workgroup_storage_size
            ));
        }
        Ok(Self { rows4, cols, wg: wg as u32, split, width: width as u32 })
    }

    /// Every layout [`FusedShape::with_layout`] accepts for `dims` on `limits` with 4 to 64
    /// rows per workgroup, 1, 2 or 4 columns per invocation and the rows in 1, 2 or 4 groups:
    /// the candidates of `lookahead bench plan --fused-layouts`.
    pub fn candidates(dims: &[usize], limits: &wgpu::Limits) -> Vec<Self> {
        let mut out = Vec::new();
        for rows4 in [1, 2, 4, 6, 8, 12, 16] {
            for cols in [1, 2, 4] {
                for split in [1, 2, 4] {
                    if let Ok(s) = Self::with_layout(dims, limits, rows4, cols, split) {
                        if !out.contains(&s) {
                            out.push(s);
                        }
                    }
                }
            }
        }
        out
    }

    /// The layout for the trainer's forward pass (a few thousand rows per minibatch step, every
    /// hidden layer also written out): 16-row blocks, as [`FusedShape::for_network`] gives for
    /// [`MANY_ROWS`], so that a step of 7 members × 256 rows makes 112 workgroups rather than 56,
    /// with two groups of invocations sharing each block's rows where the device allows twice
    /// the invocations (twice the warps per workgroup to hide latency with). A prediction for
    /// GPUs with ~100 or more multiprocessors, not yet measured (docs/PERFORMANCE.md).
    pub fn for_training(dims: &[usize], limits: &wgpu::Limits) -> std::result::Result<Self, String> {
        let mut s = Self::for_network(dims, limits, MANY_ROWS)?;
        let max_wg = limits.max_compute_invocations_per_workgroup.min(limits.max_compute_workgroup_size_x);
        if s.split == 1 && s.rows4 % 2 == 0 && 2 * s.wg <= max_wg.min(256) {
            s.split = 2;
            s.wg *= 2;
        }
        Ok(s)
    }

    /// The WGSL overrides of `mlp_fused.wgsl` for this layout (every module built on
    /// `fused_layers` sets them).
    pub fn overrides(&self) -> [(&'static str, f64); 6] {
        [
            ("ROWS4", self.rows4 as f64),
            ("COLS", self.cols as f64),
            ("FUSED_WG", self.wg as f64),
            ("SPLIT", self.split as f64),
            ("WIDTH", self.width as f64),
            // The stride the workgroup memory was counted with (the WGSL default is the same).
            ("ACT_STRIDE", act_stride(self.rows4) as f64),
        ]
    }

    /// Rows per workgroup.
    pub fn rows(&self) -> u32 {
        4 * self.rows4
    }

    /// Workgroups of one dispatch over `p`'s rows, checked against the device limit.
    pub fn workgroups(&self, ctx: &GpuContext, p: &FusedParams) -> Result<(u32, u32, u32)> {
        block_grid(ctx, p, self.rows(), "mlp_fused.forward_fused")
    }
}

/// Vec4 elements between consecutive features of a block's activations in workgroup memory
/// (`mlp_fused.wgsl`'s ACT_STRIDE): `rows4` made odd, so that consecutive columns stored by
/// consecutive invocations fall on different memory banks.
pub fn act_stride(rows4: u32) -> u32 {
    rows4 | 1
}

/// Bytes of workgroup memory a block of `rows4` row quads of `width` features takes.
fn act_bytes(width: u64, rows4: u32) -> u64 {
    width * 16 * act_stride(rows4) as u64
}

/// Floats per row a workgroup keeps for a network of widths `dims`: every layer's input, and the
/// outputs, which the forward pass keeps in workgroup memory too.
fn row_width(dims: &[usize]) -> u64 {
    dims.iter().copied().max().unwrap_or(0).max(1) as u64
}

/// The grid of a whole-network kernel taking `rows` rows of one member per workgroup:
/// (row blocks of the largest member block, members, 1), checked against the device limit.
pub fn block_grid(ctx: &GpuContext, p: &FusedParams, rows: u32, kernel: &str) -> Result<(u32, u32, u32)> {
    let x = p.max_block_rows().div_ceil(rows).max(1);
    check_grid(ctx, kernel, &[("row blocks of one member", x), ("ensemble members", p.n_members)])?;
    Ok((x, p.n_members, 1))
}

/// `mlp_fused.wgsl`'s layers with the network's dispatch (`mlp_fused_net.wgsl`): the forward
/// pass, or with `BACKWARD` the trainer's input-gradient chain.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "mlp_fused",
    &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(MLP_FUSED_WGSL), Part::Wgsl(MLP_FUSED_NET_WGSL)],
    &["forward_fused"],
);

/// The `forward_fused` pipeline for one [`FusedShape`] (the forward pass, or the backward
/// chain) and its bind group layout.
pub struct MlpFusedKernels {
    /// Bindings: net, x, weights, biases, y.
    pub layout: wgpu::BindGroupLayout,
    /// `mlp_fused.forward_fused`.
    pub forward: wgpu::ComputePipeline,
    /// The layout the pipeline was built for.
    pub shape: FusedShape,
}

/// The buffers of one fused dispatch.
#[derive(Clone, Copy)]
pub struct FusedBuffers<'a> {
    /// `[rows, dims[0]]` network input.
    pub input: &'a wgpu::Buffer,
    /// Every layer's weights, concatenated ([`pack_network`]).
    pub weights: &'a wgpu::Buffer,
    /// Every layer's biases, concatenated ([`pack_network`]).
    pub biases: &'a wgpu::Buffer,
    /// `[rows, dims[n_layers]]` network output.
    pub output: &'a wgpu::Buffer,
}

impl MlpFusedKernels {
    /// Builds (or takes from the context's cache) `mlp_fused.wgsl` for `shape`.
    pub fn new(ctx: &GpuContext, shape: FusedShape) -> Result<Self> {
        Self::build(ctx, shape, false)
    }

    /// The backward chain (`BACKWARD`) for `shape`, made by [`FusedShape::for_training`] from
    /// the chain's widths (a network's widths from the output back to the first hidden layer).
    pub fn backward_chain(ctx: &GpuContext, shape: FusedShape) -> Result<Self> {
        Self::build(ctx, shape, true)
    }

    fn build(ctx: &GpuContext, shape: FusedShape, backward: bool) -> Result<Self> {
        let layout = network_layout(ctx, "mlp_fused")?;
        let mut constants = shape.overrides().to_vec();
        constants.push(("BACKWARD", f64::from(u8::from(backward))));
        let forward = Family::MlpFused.pipeline(ctx, None, "forward_fused", &[&layout], &constants)?;
        Ok(Self { layout, forward, shape })
    }

    /// A uniform with `p` and a bind group over `b`.
    pub fn bind(&self, ctx: &GpuContext, label: &str, p: &FusedParams, b: &FusedBuffers<'_>) -> wgpu::BindGroup {
        bind_network(ctx, &self.layout, label, p, b)
    }
}

/// The bind group layout of the whole-network kernels (`mlp_fused.wgsl`, `mlp_coop.wgsl`): net,
/// x, weights, biases, y.
pub(super) fn network_layout(ctx: &GpuContext, name: &str) -> Result<wgpu::BindGroupLayout> {
    ctx.bind_group_layout(
        name,
        &[
            uniform_entry(0, false, std::mem::size_of::<FusedParams>() as u64),
            storage_entry(1, true),
            storage_entry(2, true),
            storage_entry(3, true),
            storage_entry(4, false),
        ],
    )
}

/// A uniform with `p` and a bind group of `layout` ([`network_layout`]) over `b`.
pub(super) fn bind_network(
    ctx: &GpuContext,
    layout: &wgpu::BindGroupLayout,
    label: &str,
    p: &FusedParams,
    b: &FusedBuffers<'_>,
) -> wgpu::BindGroup {
    let ubuf = ctx.uniform_buffer_init(&format!("{label}.params"), std::slice::from_ref(p));
    super::bind_buffers(ctx, label, layout, &[&ubuf, b.input, b.weights, b.biases, b.output])
}

/// Every layer's weights and biases concatenated in layer order, as `mlp_fused.wgsl` reads them
/// (the offsets are [`FusedParams::new`]'s).
pub fn pack_network<'a>(layers: impl IntoIterator<Item = (&'a [f32], &'a [f32])>) -> (Vec<f32>, Vec<f32>) {
    let (mut w, mut b) = (Vec::new(), Vec::new());
    for (lw, lb) in layers {
        w.extend_from_slice(lw);
        b.extend_from_slice(lb);
    }
    (w, b)
}

/// f64 CPU reference.
pub mod reference {
    use crate::kernels::mlp::reference::layer_f64;
    use crate::kernels::mlp::Activation;

    /// Member `m`'s network on `x` (`[rows, dims[0]]`): every layer of `layers` (weights
    /// `[E, in, out]`, biases `[E, out]`, in, out) with SiLU after all but the last.
    pub fn network_f64(x: &[f64], layers: &[(&[f32], &[f32], usize, usize)], m: usize) -> Vec<f64> {
        let mut h = x.to_vec();
        for (l, (w, b, i, o)) in layers.iter().enumerate() {
            let act = if l + 1 == layers.len() { Activation::Identity } else { Activation::Silu };
            h = layer_f64(&h, &w[m * i * o..(m + 1) * i * o], &b[m * o..(m + 1) * o], *i, *o, act);
        }
        h
    }
}
