//! `mlp.*`: the network kernels against the f64 reference: ragged single layers through the
//! tiled and the row kernel, whole networks through the fused kernel in every layout this
//! adapter gets, and the seeded whole-network inputs the tensor-core cases share.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::mlp::{reference as mlp_ref, Activation, LayerParams, MlpKernels, MlpRowsKernels, RowsBuffers};
use crate::kernels::mlp_fused::{
    pack_network, reference as fused_ref, FusedBuffers, FusedParams, FusedShape, MlpFusedKernels,
};
use crate::kernels::{self};
use crate::verify::compare::{compare, f32s, seeded, Comparison};
use crate::verify::{case, Case, Family, FORWARD_TOL};

/// The network kernels' cases; `quick` runs fewer shapes.
pub(in crate::verify) fn cases(quick: bool) -> Vec<Case> {
    vec![
        case(Family::MlpTiled, "ragged layers, every member block", Some(FORWARD_TOL), move |c| {
            case_mlp_tiled(c, quick)
        }),
        case(Family::MlpRows, "ragged layers, uniform weight windows", Some(FORWARD_TOL), move |c| {
            case_mlp_rows(c, quick)
        }),
        case(
            Family::MlpFused,
            "whole networks, the layouts this adapter gets (in full: every layout)",
            Some(FORWARD_TOL),
            move |c| case_mlp_fused(c, quick),
        ),
    ]
}

/// Ragged layer shapes: (members, batch, local slots, in, out, activation).
fn layer_cases(quick: bool) -> Vec<LayerParams> {
    let mut v = vec![(3u32, 2u32, 37u32, 13u32, 65u32, Activation::Silu), (1, 1, 1, 5, 8, Activation::Identity)];
    if !quick {
        v.extend([(7, 3, 233, 200, 8, Activation::Identity), (2, 1, 131, 17, 200, Activation::Silu)]);
    }
    v.into_iter()
        .map(|(e, nb, ls, ind, outd, act)| LayerParams {
            n_batch: nb,
            local_slots: ls,
            n_members: e,
            in_dim: ind,
            out_dim: outd,
            activation: act as u32,
            store_pre: 0,
            bias_grad_off: 0,
        })
        .collect()
}

/// Every ragged layer case through `run` (one layer kernel: the layer's parameters, its input
/// `x`, weights `w` and biases `b`, returning the output) against the f64 reference over every
/// member block.
fn case_layers(
    quick: bool,
    mut run: impl FnMut(&LayerParams, &[f64], &[f64], &[f64]) -> Result<Vec<f32>>,
) -> Result<Comparison> {
    let mut c = Comparison::start();
    for (ci, lp) in layer_cases(quick).iter().enumerate() {
        let (e, nb, ls) = (lp.n_members, lp.n_batch, lp.local_slots);
        let (ind, outd) = (lp.in_dim as usize, lp.out_dim as usize);
        let rows = (nb * ls) as usize;
        let x = seeded(rows * ind, 10 + ci as u64, 2.0);
        let w = seeded(e as usize * ind * outd, 20 + ci as u64, 0.3);
        let b = seeded(e as usize * outd, 30 + ci as u64, 0.5);
        let gpu = run(lp, &x, &w, &b)?;
        let act = if lp.activation == Activation::Silu as u32 { Activation::Silu } else { Activation::Identity };
        let mut cpu = vec![0.0; rows * outd];
        for m in 0..e {
            let r0 = (nb * kernels::local_block_start(m, ls, e)) as usize;
            let r1 = (nb * kernels::local_block_start(m + 1, ls, e)) as usize;
            let wm = f32s(&w[m as usize * ind * outd..(m as usize + 1) * ind * outd]);
            let bm = f32s(&b[m as usize * outd..(m as usize + 1) * outd]);
            let xm: Vec<f64> = x[r0 * ind..r1 * ind].iter().map(|v| *v as f32 as f64).collect();
            cpu[r0 * outd..r1 * outd].copy_from_slice(&mlp_ref::layer_f64(&xm, &wm, &bm, ind, outd, act));
        }
        c.merge(compare(&format!("layer {e}×{ind}→{outd}, {rows} rows"), &gpu, &cpu, FORWARD_TOL));
    }
    Ok(c)
}

fn case_mlp_tiled(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let mlp = MlpKernels::new(ctx)?;
    case_layers(quick, |lp, x, w, b| {
        let n = (lp.n_batch * lp.local_slots * lp.out_dim) as usize;
        let xb = ctx.storage_buffer_init("x", &f32s(x));
        let wb = ctx.storage_buffer_init("w", &f32s(w));
        let bb = ctx.storage_buffer_init("b", &f32s(b));
        let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; n]);
        let ub = ctx.uniform_buffer_init("lp", &[*lp]);
        let aux = ctx.storage_buffer("aux", 1);
        let bg = kernels::bind_buffers(ctx, "verify.layer", &mlp.layout, &[&ub, &xb, &wb, &bb, &yb, &aux]);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            mlp.dispatch(&mut pass, &bg, lp.workgroups(ctx)?);
        }
        ctx.queue.submit(Some(enc.finish()));
        ctx.read_buffer::<f32>(&yb, n)
    })
}

fn case_mlp_rows(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let rk = MlpRowsKernels::new(ctx)?;
    case_layers(quick, |lp, x, w, b| {
        let (ind, outd) = (lp.in_dim as usize, lp.out_dim as usize);
        let n = (lp.n_batch * lp.local_slots) as usize * outd;
        let wf = f32s(w);
        let mut windows = Vec::new();
        for m in 0..lp.n_members as usize {
            windows.extend(kernels::mlp::pack_rows_windows(&wf, m, ind, outd).ok_or_else(|| {
                Error::InvalidInput(format!("a {ind} × {outd} layer does not fit the row kernel's windows"))
            })?);
        }
        let xb = ctx.storage_buffer_init("x", &f32s(x));
        let bb = ctx.storage_buffer_init("b", &f32s(b));
        let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; n]);
        let wb = wgpu::util::DeviceExt::create_buffer_init(
            &ctx.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("verify.rows.windows"),
                contents: bytemuck::cast_slice(&windows),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let layer =
            rk.bind_layer(ctx, "verify.rows", lp, &RowsBuffers { input: &xb, bias: &bb, output: &yb, windows: &wb })?;
        let mut rec = crate::gpu::Recorder::new(ctx, "verify.rows", None);
        rk.record(&mut rec, "rows", &layer);
        let (enc, _) = rec.finish();
        ctx.queue.submit(Some(enc.finish()));
        ctx.read_buffer::<f32>(&yb, n)
    })
}

fn case_mlp_fused(ctx: &GpuContext, quick: bool) -> Result<Comparison> {
    let cases: Vec<(usize, u32, u32, &[usize])> = if quick {
        vec![(3, 2, 37, &[13, 65, 7, 9]), (2, 1, 131, &[70, 33, 130, 201])]
    } else {
        vec![
            (3, 2, 37, &[13, 65, 7, 9]),
            (1, 1, 1, &[5, 8]),
            (7, 3, 233, &[5, 200, 200, 200, 200, 16]),
            (2, 1, 131, &[70, 33, 130, 201]),
            (5, 2, 50, &[24, 200, 200, 200, 200, 38]),
        ]
    };
    let full = ctx.limits().clone();
    let mut c = Comparison::start();
    for (ci, &(e, nb, ls, dims)) in cases.iter().enumerate() {
        // The shapes this adapter gets for few and for many rows per step, and narrower ones.
        let widest = dims.iter().copied().max().unwrap_or(1);
        let tight = wgpu::Limits { max_compute_workgroup_storage_size: (widest * 16) as u32, ..full.clone() };
        let narrow = wgpu::Limits { max_compute_invocations_per_workgroup: 64, ..full.clone() };
        let mut shapes = Vec::new();
        for (l, rows) in [(&full, 1), (&full, kernels::mlp_fused::MANY_ROWS), (&tight, 1), (&narrow, 1)] {
            let s =
                FusedShape::for_network(dims, l, rows).map_err(|why| Error::InvalidInput(format!("fused: {why}")))?;
            if !shapes.contains(&s) {
                shapes.push(s);
            }
        }
        // In full: every layout `bench plan --fused-layouts` can time, on the first (ragged) network.
        if !quick && ci == 0 {
            for s in FusedShape::candidates(dims, &full) {
                if !shapes.contains(&s) {
                    shapes.push(s);
                }
            }
        }
        let net = NetworkCase::new(ci, e, nb, ls, dims);
        let (wp, bp) = pack_network(net.layers.iter().map(|(w, b)| (w.as_slice(), b.as_slice())));
        let p =
            FusedParams::new(dims, e, nb, ls).ok_or_else(|| Error::InvalidInput("fused: network too large".into()))?;
        let (rows, outd, x) = (net.rows, net.out_dim(), &net.x);
        let cpu = net.reference(fused_ref::network_f64);
        for shape in shapes {
            let fk = MlpFusedKernels::new(ctx, shape)?;
            let xb = ctx.storage_buffer_init("x", &f32s(x));
            let wb = ctx.storage_buffer_init("w", &wp);
            let bb = ctx.storage_buffer_init("b", &bp);
            let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; rows * outd]);
            let bg =
                fk.bind(ctx, "verify.fused", &p, &FusedBuffers { input: &xb, weights: &wb, biases: &bb, output: &yb });
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                kernels::dispatch(&mut pass, &fk.forward, &[(&bg, &[])], shape.workgroups(ctx, &p)?);
            }
            ctx.queue.submit(Some(enc.finish()));
            let gpu = ctx.read_buffer::<f32>(&yb, rows * outd)?;
            let what = format!(
                "network {dims:?} × {e}, {rows} rows, {} rows × {} columns per workgroup",
                shape.rows(),
                shape.cols
            );
            c.merge(compare(&what, &gpu, &cpu, FORWARD_TOL));
        }
    }
    Ok(c)
}

/// One member's network on its rows: `(x, [(weights, biases, in, out)], member) → outputs`.
pub(super) type NetworkRef = fn(&[f64], &[(&[f32], &[f32], usize, usize)], usize) -> Vec<f64>;

/// A whole-network case: seeded weights and biases of `dims` for `e` members and inputs of
/// `nb × ls` rows, member-major ("Slots").
pub(super) struct NetworkCase {
    e: usize,
    nb: u32,
    ls: u32,
    dims: Vec<usize>,
    /// Each layer's weights and biases, every member's in turn.
    pub(super) layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// Rows of the input.
    pub(super) rows: usize,
    /// The input, f32 values as f64.
    pub(super) x: Vec<f64>,
}

impl NetworkCase {
    /// Case `ci`'s seeded network and inputs.
    pub(super) fn new(ci: usize, e: usize, nb: u32, ls: u32, dims: &[usize]) -> Self {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(l, io)| {
                let w = seeded(e * io[0] * io[1], 40 + (ci * 10 + l) as u64, 1.5 / (io[0] as f64).sqrt());
                (f32s(&w), f32s(&seeded(e * io[1], 60 + (ci * 10 + l) as u64, 0.5)))
            })
            .collect();
        let rows = (nb * ls) as usize;
        let x = seeded(rows * dims[0], 10 + ci as u64, 2.0).iter().map(|v| *v as f32 as f64).collect();
        Self { e, nb, ls, dims: dims.to_vec(), layers, rows, x }
    }

    /// Outputs per row.
    pub(super) fn out_dim(&self) -> usize {
        self.dims[self.dims.len() - 1]
    }

    /// Every member's block through `network` (a reference of one member's network).
    pub(super) fn reference(&self, network: NetworkRef) -> Vec<f64> {
        let (ind, outd, e) = (self.dims[0], self.out_dim(), self.e as u32);
        let refs: Vec<(&[f32], &[f32], usize, usize)> = self
            .layers
            .iter()
            .zip(self.dims.windows(2))
            .map(|((w, b), io)| (w.as_slice(), b.as_slice(), io[0], io[1]))
            .collect();
        let mut cpu = vec![0.0; self.rows * outd];
        for m in 0..e {
            let r0 = (self.nb * kernels::local_block_start(m, self.ls, e)) as usize;
            let r1 = (self.nb * kernels::local_block_start(m + 1, self.ls, e)) as usize;
            cpu[r0 * outd..r1 * outd].copy_from_slice(&network(&self.x[r0 * ind..r1 * ind], &refs, m as usize));
        }
        cpu
    }
}
