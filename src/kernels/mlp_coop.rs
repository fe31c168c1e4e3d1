//! The whole ensemble network in one dispatch on tensor cores (`shaders/mlp_coop.wgsl`):
//! [`super::mlp_fused`]'s model step with every layer's product done as 16×16×16
//! cooperative-matrix multiply-adds, f16 operands and f32 accumulators. Offered where the
//! device has them ([`GpuContext::has_coop16`]); chosen only by `planner.mlp_kernel = coop16`,
//! never by `auto`, because its results differ from the f32 kernels' by the rounding of every
//! layer's inputs and weights to f16 (relative 2⁻¹¹ each; checked against
//! [`reference::network_f16_f64`], which rounds the same operands and sums in f64).

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

use super::family::{FamilyDecl, Part, Requires};
use super::mlp_fused::{bind_network, block_grid, network_layout, FusedBuffers, FusedParams, FUSED_MAX_LAYERS};
use super::{Family, COMMON_WGSL, MLP_COOP_NET_WGSL, MLP_COOP_WGSL};

/// The directives `mlp_coop.wgsl` needs, put before `common.wgsl` (WGSL allows directives only
/// at the top of a module).
pub const DIRECTIVES: &str = "enable f16;\nenable wgpu_cooperative_matrix;\n";

/// Side of a cooperative-matrix tile.
pub const TILE: usize = 16;

/// Subgroups per workgroup (WGSL `NS`): each takes every `SUBGROUPS`-th column tile of a layer.
pub const SUBGROUPS: usize = 4;

/// `d` rounded up to a whole tile.
pub fn pad16(d: usize) -> usize {
    d.div_ceil(TILE) * TILE
}

/// A layer's output width in the packed weights: `d` rounded up to whole groups of
/// [`SUBGROUPS`] tiles, so that every subgroup has the same number of column tiles.
pub fn pad_cols(d: usize) -> usize {
    d.div_ceil(TILE * SUBGROUPS) * TILE * SUBGROUPS
}

/// The column groups of [`SUBGROUPS`] tiles that `mlp_coop.wgsl` runs whole for a layer of `d`
/// outputs: one or two tiles left over are split by K among the subgroups instead of making a
/// group with padding tiles (three are a group).
pub fn whole_groups(d: usize) -> usize {
    let tiles = d.div_ceil(TILE);
    match tiles % SUBGROUPS {
        1 | 2 => tiles / SUBGROUPS,
        _ => tiles.div_ceil(SUBGROUPS),
    }
}

/// [`FusedParams`] for `mlp_coop.wgsl`: the same sizes, with `w_off` counting f16 values of
/// [`pack_network_f16`]'s padded layers; `None` as for [`FusedParams::new`].
pub fn params(dims: &[usize], n_members: usize, n_batch: u32, local_slots: u32) -> Option<FusedParams> {
    let mut p = FusedParams::new(dims, n_members, n_batch, local_slots)?;
    let mut w = 0u64;
    for l in 0..dims.len() - 1 {
        p.w_off[l] = u32::try_from(w).ok()?;
        w += (n_members * pad16(dims[l]) * pad_cols(dims[l + 1])) as u64;
    }
    u32::try_from(w).ok()?;
    Some(p)
}

/// Every layer's weights (`[E, in, out]`, f32) as the f16 bits `mlp_coop.wgsl` reads: per layer
/// and member the transpose, `[pad_cols(out), pad16(in)]` row-major (each 16×16 tile of the
/// B operand column-major, as the tensor cores take it), with zeros in the padding, rounded to nearest
/// (ties to even); an even count, so that the buffer is a whole number of 4-byte words.
pub fn pack_network_f16<'a>(layers: impl IntoIterator<Item = (&'a [f32], usize, usize)>, n_members: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for (w, i, o) in layers {
        let (pi, po) = (pad16(i), pad_cols(o));
        for m in 0..n_members {
            let base = out.len();
            out.resize(base + pi * po, 0u16);
            for k in 0..i {
                for c in 0..o {
                    out[base + c * pi + k] = half::f16::from_f32(w[(m * i + k) * o + c]).to_bits();
                }
            }
        }
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// Values added to each row stride in workgroup memory, so that a stride is an odd multiple of
/// 8 values: the 16 rows of a tile then start in different memory banks (a stride that is a
/// multiple of 16 values puts every other or every row of a tile in the same banks, and the
/// tile's loads and stores wait on each other).
pub const BANK_SKEW: usize = 8;

/// How the kernel is laid out for one network on one device (the WGSL overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CoopShape {
    /// Invocations per subgroup: the device's subgroup size (a workgroup is [`SUBGROUPS`] of them).
    pub sg: u32,
    /// Row stride of the f16 activations in workgroup memory: the widest padded layer input
    /// and [`BANK_SKEW`] more.
    pub act_width: u32,
    /// Row stride of the f32 products in workgroup memory: the widest [`pad_cols`] output and
    /// [`BANK_SKEW`] more.
    pub prod_width: u32,
    /// Column groups per pass of a layer's K loop (WGSL `GP`): 3 where no layer has more than
    /// three [`whole_groups`] (so no pass loads a fourth weight tile it leaves unused), else 4.
    /// Either gives the same sums in the same order.
    pub groups_per_pass: u32,
}

impl CoopShape {
    /// The layout for a network of widths `dims` on `ctx`, or why there is none: the device must
    /// have the cooperative matrices ([`GpuContext::has_coop16`]) and one subgroup size; 16 rows
    /// of the widest padded input in f16 and of the widest padded output in f32 must fit the
    /// workgroup memory.
    pub fn for_network(ctx: &GpuContext, dims: &[usize]) -> std::result::Result<Self, String> {
        if !ctx.has_coop16() {
            return Err("this adapter offers no 16×16×16 cooperative matrices with f16 operands and f32 \
                        accumulators (wgpu EXPERIMENTAL_COOPERATIVE_MATRIX with SHADER_F16 and SUBGROUP)"
                .into());
        }
        let sg = ctx.fixed_subgroup_size().ok_or("the adapter has more than one subgroup size")?;
        Self::within(dims, ctx.limits(), sg)
    }

    /// [`CoopShape::for_network`]'s layout for a device with `limits` and subgroups of `sg`.
    pub fn within(dims: &[usize], limits: &wgpu::Limits, sg: u32) -> std::result::Result<Self, String> {
        let n_layers = dims.len().saturating_sub(1);
        if n_layers == 0 || n_layers > FUSED_MAX_LAYERS {
            return Err(format!("the coop16 kernel takes 1 to {FUSED_MAX_LAYERS} layers, this network has {n_layers}"));
        }
        let act_width = (dims[..n_layers].iter().map(|d| pad16(*d)).max().unwrap_or(TILE) + BANK_SKEW) as u64;
        let prod_width = (dims[1..].iter().map(|d| pad_cols(*d)).max().unwrap_or(TILE) + BANK_SKEW) as u64;
        // 16 rows of f16 activations and of f32 products, and `coop_left` and `coop_split` (two
        // u32s; 16 B allowed for their alignment).
        let per_tile = 16 * (act_width * 2 + prod_width * 4) + 16;
        let memory = limits.max_compute_workgroup_storage_size as u64;
        if per_tile > memory {
            return Err(format!(
                "16 rows of {act_width} f16 inputs and {prod_width} f32 outputs (and a counter) need {per_tile} B of workgroup memory, \
                 the device has {memory} B"
            ));
        }
        let invocations = SUBGROUPS as u64 * sg as u64;
        if sg == 0
            || invocations > limits.max_compute_invocations_per_workgroup as u64
            || invocations > limits.max_compute_workgroup_size_x as u64
        {
            return Err(format!(
                "a workgroup of {SUBGROUPS} subgroups ({invocations} invocations) exceeds the device's workgroup limits"
            ));
        }
        let groups_per_pass = if dims[1..].iter().all(|d| whole_groups(*d) <= 3) { 3 } else { 4 };
        Ok(Self { sg, act_width: act_width as u32, prod_width: prod_width as u32, groups_per_pass })
    }

    /// The WGSL overrides of `mlp_coop.wgsl` for this layout.
    pub fn overrides(&self) -> [(&'static str, f64); 4] {
        [
            ("SG", self.sg as f64),
            ("AW", self.act_width as f64),
            ("PW", self.prod_width as f64),
            ("GP", self.groups_per_pass as f64),
        ]
    }

    /// Workgroups of one dispatch over `p`'s rows (16 per workgroup), checked against the device limit.
    pub fn workgroups(&self, ctx: &GpuContext, p: &FusedParams) -> Result<(u32, u32, u32)> {
        block_grid(ctx, p, TILE as u32, "mlp_coop.forward_coop")
    }
}

/// Layouts (`SG`, `AW`, `PW`) the host picks, which naga resolves the coop16 modules with.
pub const VALIDATION_SHAPES: &[&[(&str, f64)]] = &[
    &[("SG", 32.0), ("AW", 216.0), ("PW", 264.0)],
    &[("SG", 32.0), ("AW", 24.0), ("PW", 72.0)],
    &[("SG", 64.0), ("AW", 88.0), ("PW", 136.0)],
];

/// `mlp_coop.wgsl`'s layers on cooperative matrices with the network's dispatch
/// (`mlp_coop_net.wgsl`), after [`DIRECTIVES`].
pub const FAMILY: FamilyDecl = FamilyDecl {
    name: "mlp_coop",
    parts: &[Part::Wgsl(DIRECTIVES), Part::Wgsl(COMMON_WGSL), Part::Wgsl(MLP_COOP_WGSL), Part::Wgsl(MLP_COOP_NET_WGSL)],
    entry_points: &["forward_coop"],
    requires: Requires::Coop16,
    validation_overrides: VALIDATION_SHAPES,
    fixed_overrides: &[],
};

/// The `forward_coop` pipeline for one [`CoopShape`] and its bind group layout (the fused
/// kernel's bindings: net, x, weights as f16, biases, y).
pub struct MlpCoopKernels {
    /// Bindings: net, x, weights (f16), biases, y.
    pub layout: wgpu::BindGroupLayout,
    /// `mlp_coop.forward_coop`.
    pub forward: wgpu::ComputePipeline,
    /// The layout the pipeline was built for.
    pub shape: CoopShape,
}

impl MlpCoopKernels {
    /// Builds (or takes from the context's cache) `mlp_coop.wgsl` for `shape`.
    pub fn new(ctx: &GpuContext, shape: CoopShape) -> Result<Self> {
        if !ctx.has_coop16() {
            return Err(Error::config(
                "planner.mlp_kernel",
                "coop16: this adapter has no 16×16×16 f16 cooperative matrices",
            ));
        }
        let layout = network_layout(ctx, "mlp_coop")?;
        let forward = Family::MlpCoop.pipeline(ctx, None, "forward_coop", &[&layout], &shape.overrides())?;
        Ok(Self { layout, forward, shape })
    }

    /// A uniform with `p` (from [`params`]) and a bind group over `b` (weights from
    /// [`pack_network_f16`]).
    pub fn bind(&self, ctx: &GpuContext, label: &str, p: &FusedParams, b: &FusedBuffers<'_>) -> wgpu::BindGroup {
        bind_network(ctx, &self.layout, label, p, b)
    }
}

/// f64 CPU reference.
pub mod reference {
    /// `v` rounded to the nearest f16 (ties to even), as f64.
    pub fn f16_round(v: f64) -> f64 {
        half::f16::from_f64(v).to_f64()
    }

    /// Member `m`'s network on `x` (`[rows, dims[0]]`) as `mlp_coop.wgsl` computes it: each
    /// layer's inputs and weights rounded to f16, products summed in f64, the f32 bias added,
    /// SiLU after all but the last layer (whose outputs are not rounded).
    pub fn network_f16_f64(x: &[f64], layers: &[(&[f32], &[f32], usize, usize)], m: usize) -> Vec<f64> {
        let rows = x.len() / layers.first().map_or(1, |l| l.2.max(1));
        let mut h = x.to_vec();
        for (l, (w, b, i, o)) in layers.iter().enumerate() {
            let (i, o) = (*i, *o);
            let w = &w[m * i * o..(m + 1) * i * o];
            let b = &b[m * o..(m + 1) * o];
            let mut next = vec![0.0; rows * o];
            for r in 0..rows {
                for c in 0..o {
                    let mut s = 0.0;
                    for k in 0..i {
                        s += f16_round(h[r * i + k]) * f16_round(w[k * o + c] as f64);
                    }
                    let v = s + b[c] as f64;
                    next[r * o + c] = if l + 1 == layers.len() { v } else { v / (1.0 + (-v).exp()) };
                }
            }
            h = next;
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_weights_are_padded_tiles_at_the_offsets_params_give() {
        // Two members, layers 3 → 17 → 2: padded 16×64 and 32×64.
        let dims = [3usize, 17, 2];
        let w0: Vec<f32> = (0..2 * 3 * 17).map(|i| i as f32 * 0.25).collect();
        let w1: Vec<f32> = (0..2 * 17 * 2).map(|i| -(i as f32) * 0.5).collect();
        let packed = pack_network_f16([(w0.as_slice(), 3, 17), (w1.as_slice(), 17, 2)], 2);
        assert_eq!(packed.len(), 2 * 16 * 64 + 2 * 32 * 64);
        let p = params(&dims, 2, 1, 5).expect("params");
        assert_eq!(&p.w_off[..2], &[0, 2 * 16 * 64]);
        // Element [k, c] of member m's layer l at column c, row k of its transposed block.
        let at = |l: usize, m: usize, k: usize, c: usize| {
            let (pi, po) = (pad16(dims[l]), pad_cols(dims[l + 1]));
            half::f16::from_bits(packed[p.w_off[l] as usize + m * pi * po + c * pi + k]).to_f32()
        };
        for m in 0..2 {
            for k in 0..16 {
                for c in 0..64 {
                    let want = if k < 3 && c < 17 { w0[(m * 3 + k) * 17 + c] } else { 0.0 };
                    assert_eq!(at(0, m, k, c), want, "layer 0 member {m} [{k}, {c}]");
                }
            }
            for k in 0..32 {
                for c in 0..64 {
                    let want = if k < 17 && c < 2 { w1[(m * 17 + k) * 2 + c] } else { 0.0 };
                    assert_eq!(at(1, m, k, c), want, "layer 1 member {m} [{k}, {c}]");
                }
            }
        }
        // Biases keep the fused kernel's offsets.
        assert_eq!(&p.b_off[..2], &[0, 2 * 17]);
    }

    #[test]
    fn the_layout_fits_the_workgroup_memory_and_says_what_does_not() {
        let pets = [5usize, 200, 200, 200, 200, 16];
        let h100 = wgpu::Limits { max_compute_workgroup_storage_size: 48 * 1024, ..wgpu::Limits::default() };
        // 16 rows of 208 + 8 f16 inputs and 256 + 8 f32 outputs: 16 · (432 + 1056) = 23 808 B,
        // and 16 B for the two counters, of 49 152.
        let shape = CoopShape { sg: 32, act_width: 216, prod_width: 264, groups_per_pass: 3 };
        assert_eq!(CoopShape::within(&pets, &h100, 32), Ok(shape));
        let exact = wgpu::Limits { max_compute_workgroup_storage_size: 23_824, ..h100.clone() };
        assert_eq!(CoopShape::within(&pets, &exact, 32), Ok(shape));
        let short = wgpu::Limits { max_compute_workgroup_storage_size: 23_823, ..h100.clone() };
        assert!(CoopShape::within(&pets, &short, 32).is_err());
        let tiny = wgpu::Limits { max_compute_workgroup_storage_size: 16 * 1024, ..h100.clone() };
        let e = CoopShape::within(&pets, &tiny, 32).unwrap_err();
        assert!(e.contains("23824 B") && e.contains("16384 B"), "{e}");
        // Inputs set the activation stride, outputs (in groups of 4 tiles) the product stride.
        assert_eq!(CoopShape::within(&[13, 65, 7, 9], &h100, 32).map(|s| (s.act_width, s.prod_width)), Ok((88, 136)));
        // Three column groups per pass unless a layer has more whole groups: 200 outputs are 13
        // tiles, 3 groups and one tile split by K; 256 are 4 groups; 300 are 19 tiles, 5 groups
        // (the last with one padding tile).
        assert_eq!((whole_groups(200), whole_groups(8), whole_groups(96), whole_groups(33)), (3, 0, 1, 1));
        assert_eq!((whole_groups(256), whole_groups(300)), (4, 5));
        let gp = |dims: &[usize]| CoopShape::within(dims, &h100, 32).map(|s| s.groups_per_pass);
        assert_eq!((gp(&pets), gp(&[5, 256, 8]), gp(&[13, 300, 96, 9])), (Ok(3), Ok(4), Ok(4)));
        assert!(CoopShape::within(&[4], &h100, 32).is_err());
        // Four subgroups of 64 fill the default 256 invocations; of 128 they exceed them.
        assert!(CoopShape::within(&pets, &h100, 64).is_ok());
        assert!(CoopShape::within(&pets, &h100, 128).unwrap_err().contains("workgroup limits"));
    }

    #[test]
    fn the_reference_rounds_operands_to_f16_and_nothing_else() {
        use crate::kernels::mlp_fused::reference::network_f64;
        // Values exact in f16 give the f32 reference's result; others differ by the rounding.
        let (i, h, o) = (3usize, 4usize, 2usize);
        let exact_w0: Vec<f32> = (0..i * h).map(|k| (k as f32 - 5.0) * 0.125).collect();
        let exact_w1: Vec<f32> = (0..h * o).map(|k| (k as f32 - 3.0) * 0.25).collect();
        let (b0, b1) = (vec![0.1f32; h], vec![-0.3f32; o]);
        let x = vec![0.5, -1.0, 2.0];
        let layers = [(exact_w0.as_slice(), b0.as_slice(), i, h), (exact_w1.as_slice(), b1.as_slice(), h, o)];
        let a = reference::network_f16_f64(&x, &layers, 0);
        let b = network_f64(&x, &layers, 0);
        // The hidden activations (SiLU outputs) are rounded, so only close, not equal.
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 4e-3 * v.abs().max(1.0), "{u} vs {v}");
        }
        // One layer (no hidden activation) with exact operands: equal.
        let one = [(exact_w0.as_slice(), b0.as_slice(), i, h)];
        assert_eq!(reference::network_f16_f64(&x, &one, 0), network_f64(&x, &one, 0));
        // An input not exact in f16 (1 + 2⁻¹²) is rounded to 1 first.
        let x2 = vec![1.0 + 2f64.powi(-12), 0.0, 0.0];
        let r = reference::network_f16_f64(&x2, &one, 0);
        let x1 = vec![1.0, 0.0, 0.0];
        assert_eq!(r, network_f64(&x1, &one, 0));
    }
}
