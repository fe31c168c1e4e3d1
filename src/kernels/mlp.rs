//! Ensemble linear layers (`shaders/mlp.wgsl`): `y = act(x · W[m] + b[m])` for every member at
//! once over member-major rows (see "Slots" in the module above).

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Recorder};

use super::family::{FamilyDecl, Part};
use super::{
    check_grid, storage_entry, uniform_entry, Family, COMMON_WGSL, MLP_ROWS_WGSL, MLP_WGSL, TILE_WGSL, WG_SIZE,
    WG_SIZE_OVERRIDE,
};

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
    /// ReLU, `max(x, 0)` (its derivative at 0 is 0).
    Relu = 2,
}

impl Activation {
    /// The activation in f64.
    pub fn apply_f64(self, v: f64) -> f64 {
        match self {
            Activation::Identity => v,
            Activation::Silu => reference::silu(v),
            Activation::Relu => v.max(0.0),
        }
    }

    /// Its derivative at the pre-activation `v` in f64.
    pub fn grad_f64(self, v: f64) -> f64 {
        match self {
            Activation::Identity => 1.0,
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-v).exp());
                s * (1.0 + v * (1.0 - s))
            }
            Activation::Relu => f64::from(u8::from(v > 0.0)),
        }
    }
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
    /// `backward_weights`: where the bias gradients start in its output (0: weights only).
    pub bias_grad_off: u32,
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
        let x = self.max_block_rows().div_ceil(TILE_M).max(1);
        let y = self.out_dim.div_ceil(TILE_N).max(1);
        check_grid(ctx, "mlp.forward", &[("row tiles of one member", x), ("ensemble members", self.n_members)])?;
        Ok((x, y, self.n_members))
    }

    /// Workgroups of `backward_input` (rows × in_dim tiles per member).
    pub fn workgroups_backward_input(&self, ctx: &GpuContext) -> Result<(u32, u32, u32)> {
        let (x, _, z) = self.workgroups(ctx)?;
        Ok((x, self.in_dim.div_ceil(TILE_N).max(1), z))
    }

    /// Workgroups of `backward_weights`: in_dim × out_dim tiles per member, and one more column
    /// of workgroups for the bias gradients when `bias_grad_off > 0`.
    pub fn workgroups_backward_weights(&self) -> (u32, u32, u32) {
        let p = self.in_dim.div_ceil(TILE_M).max(1) + u32::from(self.bias_grad_off > 0);
        (p, self.out_dim.div_ceil(TILE_N).max(1), self.n_members)
    }
}

/// `mlp.wgsl` after the tiled product: per-layer forward and backward passes.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "mlp",
    &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(TILE_WGSL), Part::Wgsl(MLP_WGSL)],
    &["forward", "backward_input", "backward_weights"],
);

/// `mlp_rows.wgsl`: an ensemble layer with one invocation per row (CPU rasterisers).
pub const ROWS_FAMILY: FamilyDecl =
    FamilyDecl::portable("mlp_rows", &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(MLP_ROWS_WGSL)], &["forward_rows"]);

/// The pipelines of `mlp.wgsl` and their bind group layout.
pub struct MlpKernels {
    /// Bindings: layer, a_src, b_src, bias, c_dst, aux.
    pub layout: wgpu::BindGroupLayout,
    /// `mlp.forward`.
    pub forward: wgpu::ComputePipeline,
    /// `mlp.backward_input`.
    pub backward_input: wgpu::ComputePipeline,
    /// `mlp.backward_weights` (with the bias gradients).
    pub backward_weights: wgpu::ComputePipeline,
}

impl MlpKernels {
    /// Builds (or takes from the context's cache) the pipelines of `mlp.wgsl`.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let layout = ctx.bind_group_layout(
            "mlp",
            &[
                uniform_entry(0, false, std::mem::size_of::<LayerParams>() as u64),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, true),
                storage_entry(4, false),
                storage_entry(5, false),
            ],
        )?;
        // The tiled entry points have a fixed 16 × 16 workgroup (TILE_M × TILE_N outputs).
        let pipe = |entry: &str| Family::Mlp.pipeline(ctx, None, entry, &[&layout], &[]);
        Ok(Self {
            forward: pipe("forward")?,
            backward_input: pipe("backward_input")?,
            backward_weights: pipe("backward_weights")?,
            layout,
        })
    }

    /// A bind group of (params, a_src, b_src, bias, c_dst, aux), in binding order.
    pub fn bind(&self, ctx: &GpuContext, label: &str, resources: [wgpu::BindingResource<'_>; 6]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(k, resource)| wgpu::BindGroupEntry { binding: k as u32, resource })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.layout,
            entries: &entries,
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
        super::dispatch(pass, pipeline, &[(bind_group, &[])], groups);
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
                y[r * out_dim + o] = act.apply_f64(acc);
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

/// The buffers of one row-kernel layer.
#[derive(Clone, Copy)]
pub struct RowsBuffers<'a> {
    /// `[rows, in_dim]` layer input.
    pub input: &'a wgpu::Buffer,
    /// `[members, out_dim]` biases.
    pub bias: &'a wgpu::Buffer,
    /// `[rows, out_dim]` layer output.
    pub output: &'a wgpu::Buffer,
    /// Uniform buffer of every member's packed weight windows.
    pub windows: &'a wgpu::Buffer,
}

/// One layer of the row kernel, ready to record: a bind group and a grid per member.
pub struct RowsLayer {
    members: Vec<(wgpu::BindGroup, u32)>,
}

impl MlpRowsKernels {
    /// Builds (or takes from the context's cache) `mlp_rows.wgsl`; fails with a clear error
    /// where uniform windows of 64 KiB are not available.
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
        let mut entries = vec![
            uniform_entry(0, false, std::mem::size_of::<RowsParams>() as u64),
            storage_entry(1, true),
            storage_entry(2, true),
            storage_entry(3, false),
        ];
        for b in 4..4 + ROWS_CHUNKS as u32 {
            entries.push(uniform_entry(b, false, window));
        }
        let layout = ctx.bind_group_layout("mlp_rows", &entries)?;
        let forward_rows = Family::MlpRows.pipeline(ctx, None, "forward_rows", &[&layout], WG_SIZE_OVERRIDE)?;
        Ok(Self { layout, forward_rows })
    }

    /// Binds one layer described by `lp` (weights packed by [`pack_rows_windows`] for every
    /// member, one after another, in `b.windows`): a uniform and a bind group per member.
    pub fn bind_layer(
        &self,
        ctx: &GpuContext,
        label: &str,
        lp: &LayerParams,
        b: &RowsBuffers<'_>,
    ) -> Result<RowsLayer> {
        let RowsBuffers { input, bias, output, windows } = *b;
        let (i, o) = (lp.in_dim as usize, lp.out_dim as usize);
        let (out4, rpc, chunks) = rows_chunking(i, o).ok_or_else(|| Error::LimitExceeded {
            what: format!("{label}: a {i} × {o} layer in the row kernel's uniform windows"),
            requested: (i * o) as u64,
            limit: "four 64 KiB uniform windows, at most 256 outputs",
            max: (ROWS_CHUNKS * ROWS_WINDOW * 4) as u64,
            hint: "use mlp_kernel = \"tiled\"",
        })?;
        let window = (ROWS_WINDOW * 16) as u64;
        let mut members = Vec::new();
        for member in 0..lp.n_members {
            let rp = RowsParams {
                n_batch: lp.n_batch,
                local_slots: lp.local_slots,
                n_members: lp.n_members,
                in_dim: lp.in_dim,
                out_dim: lp.out_dim,
                out4: out4 as u32,
                rows_per_chunk: rpc as u32,
                activation: lp.activation,
                member,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            };
            let ubuf = ctx.uniform_buffer_init(&format!("{label}.member{member}"), &[rp]);
            let mut entries = vec![
                wgpu::BindGroupEntry { binding: 0, resource: ubuf.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: input.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: bias.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 3, resource: output.as_entire_binding() },
            ];
            for c in 0..ROWS_CHUNKS {
                // Windows past the layer's chunks repeat its first (never read).
                let which = if c < chunks { c } else { 0 };
                let offset = (member as u64 * chunks as u64 + which as u64) * window;
                entries.push(wgpu::BindGroupEntry {
                    binding: 4 + c as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: windows,
                        offset,
                        size: wgpu::BufferSize::new(window),
                    }),
                });
            }
            let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("{label}.member{member}")),
                layout: &self.layout,
                entries: &entries,
            });
            let block = lp.n_batch
                * (super::local_block_start(member + 1, lp.local_slots, lp.n_members)
                    - super::local_block_start(member, lp.local_slots, lp.n_members));
            members.push((bg, block.div_ceil(WG_SIZE)));
        }
        Ok(RowsLayer { members })
    }

    /// Records a layer bound by [`MlpRowsKernels::bind_layer`]: one dispatch per member,
    /// named `kernel` in the recorder's counts.
    pub fn record(&self, rec: &mut Recorder<'_>, kernel: &'static str, layer: &RowsLayer) {
        for (bg, groups) in &layer.members {
            if *groups > 0 {
                rec.dispatch(kernel, &self.forward_rows, &[(bg, &[])], (*groups, 1, 1));
            }
        }
    }
}
