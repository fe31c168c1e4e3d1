//! `mlp.coop16` (optional: adapters with 16×16×16 cooperative matrices): whole networks on
//! the tensor-core kernel against the reference that rounds the same operands to f16, and a
//! plan's candidate returns through it against the fused kernel's.

use super::mlp::NetworkCase;
use super::plan::{small_cem, small_ensemble};
use crate::env::EnvKind;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::mlp_fused::{pack_network, FusedBuffers};
use crate::kernels::{self};
use crate::planner::{Dynamics, MlpKernel, ModelStep, Planner, PlannerConfig, Propagation};
use crate::verify::compare::{compare, f32s, Comparison};
use crate::verify::{case, Case, Family, Tol, COOP16_TOL, FORWARD_TOL};

/// The tensor-core cases, where `ctx` runs the kernel (none elsewhere).
pub(in crate::verify) fn cases(ctx: &GpuContext) -> Vec<Case> {
    if !ctx.has_coop16() {
        return Vec::new();
    }
    vec![
        case(
            Family::MlpCoop16,
            "whole networks on cooperative matrices vs the f16-operand f64 reference; 3 vs 4 column groups per pass bit for bit",
            Some(COOP16_TOL),
            case_mlp_coop16,
        ),
        case(
            Family::MlpCoop16,
            "a plan's candidate returns through coop16 vs fused (TS1, TS∞, same stream); its model step in one dispatch vs two",
            Some(COOP16_TOL),
            case_plan_coop16,
        ),
    ]
}

fn case_mlp_coop16(ctx: &GpuContext) -> Result<Comparison> {
    use crate::kernels::mlp_coop::{self, reference as coop_ref, CoopShape, MlpCoopKernels};
    // Leftover column tiles (past the whole groups of four) split by K: one (65, 7, 200, 16,
    // 130, 201 and 9 outputs) and two (96: two parts each); three (33, 300 outputs) padded to
    // a group; none (64). The 300-wide layer is five column groups: a second pass of the
    // kernel's group loop, with three of its four groups past the layer's last.
    let cases: [(usize, u32, u32, &[usize]); 4] = [
        (3, 2, 37, &[13, 65, 7, 9]),
        (7, 3, 233, &[5, 200, 200, 200, 200, 16]),
        (2, 1, 131, &[70, 64, 33, 130, 201]),
        (2, 2, 29, &[13, 300, 96, 9]),
    ];
    let mut c = Comparison::start();
    for (ci, &(e, nb, ls, dims)) in cases.iter().enumerate() {
        let net = NetworkCase::new(ci, e, nb, ls, dims);
        let wp = mlp_coop::pack_network_f16(
            net.layers.iter().zip(dims.windows(2)).map(|((w, _), io)| (w.as_slice(), io[0], io[1])),
            e,
        );
        let (_, bp) = pack_network(net.layers.iter().map(|(w, b)| (w.as_slice(), b.as_slice())));
        let p =
            mlp_coop::params(dims, e, nb, ls).ok_or_else(|| Error::InvalidInput("coop16: network too large".into()))?;
        let cpu = net.reference(coop_ref::network_f16_f64);
        let shape = CoopShape::for_network(ctx, dims).map_err(|why| Error::InvalidInput(format!("coop16: {why}")))?;
        let run = |shape: CoopShape| -> Result<Vec<f32>> {
            let k = MlpCoopKernels::new(ctx, shape)?;
            let xb = ctx.storage_buffer_init("x", &f32s(&net.x));
            let wb = ctx.storage_buffer_init("w", &wp);
            let bb = ctx.storage_buffer_init("b", &bp);
            let yb = ctx.storage_buffer_init("y", &vec![f32::NAN; net.rows * net.out_dim()]);
            let buffers = FusedBuffers { input: &xb, weights: &wb, biases: &bb, output: &yb };
            let bg = k.bind(ctx, "verify.coop16", &p, &buffers);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                kernels::dispatch(&mut pass, &k.forward, &[(&bg, &[])], shape.workgroups(ctx, &p)?);
            }
            ctx.queue.submit(Some(enc.finish()));
            ctx.read_buffer::<f32>(&yb, net.rows * net.out_dim())
        };
        let gpu = run(shape)?;
        let what = format!("network {dims:?} × {e}, {} rows", net.rows);
        c.merge(compare(&what, &gpu, &cpu, COOP16_TOL));
        // The other number of column groups per pass gives the same sums in the same order.
        let other = CoopShape { groups_per_pass: 7 - shape.groups_per_pass, ..shape };
        let alt = run(other)?;
        let what =
            format!("{what}, {} column groups per pass against {}", other.groups_per_pass, shape.groups_per_pass);
        let gpu64: Vec<f64> = gpu.iter().map(|v| *v as f64).collect();
        c.merge(compare(&what, &alt, &gpu64, Tol { rel: 0.0, abs: 0.0 }));
    }
    Ok(c)
}

fn case_plan_coop16(ctx: &GpuContext) -> Result<Comparison> {
    let ens = small_ensemble(3, 1, true, false, 7)?;
    let obs = vec![vec![0.6f32, -0.8, 0.3], vec![-1.0, 0.05, -2.0]];
    let returns = |mlp_kernel, model_step, propagation| -> Result<Vec<f32>> {
        let cfg = PlannerConfig { iterations: 1, mlp_kernel, model_step, ..small_cem(propagation, mlp_kernel) };
        let mut planner = Planner::new(ctx, EnvKind::Pendulum.task(), Dynamics::Ensemble(ens.clone()), cfg)?;
        planner.plan_batch(&obs)?;
        Ok(planner.last_iteration()?.candidate_returns)
    };
    let f64s = |v: Vec<f32>| -> Vec<f64> { v.iter().map(|x| *x as f64).collect() };
    // Per propagation: the f32 layers (checked against f64 elsewhere), each model step split,
    // against coop16's with each model step in one dispatch (TS∞: one per iteration); then
    // coop16's split step against its one-dispatch step (the same f16 products either way).
    let mut c = Comparison::start();
    for propagation in [Propagation::Ts1, Propagation::Tsinf] {
        let prop = format!("{propagation:?}").to_lowercase();
        let fused = f64s(returns(MlpKernel::Fused, ModelStep::Split, propagation)?);
        let coop_step = returns(MlpKernel::Coop16, ModelStep::Fused, propagation)?;
        let coop_split = returns(MlpKernel::Coop16, ModelStep::Split, propagation)?;
        c.merge(compare(&format!("{prop}: candidate returns, coop16 vs fused"), &coop_step, &fused, COOP16_TOL));
        let what = format!("{prop}: candidate returns, coop16, model step split vs one dispatch");
        c.merge(compare(&what, &coop_split, &f64s(coop_step), FORWARD_TOL));
    }
    Ok(c)
}
