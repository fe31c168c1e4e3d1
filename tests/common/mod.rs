//! Shared test helpers: the GPU context (failing loudly without an adapter), tolerance
//! comparison, a small harness that runs one WGSL entry point over plain buffers, and the GPU
//! test runner with its expected failures (`verify::ExpectedFailure`, as the conformance cases).
#![allow(dead_code)]

use lookahead::gpu::{AdapterOptions, GpuContext, ShaderChecks};
use lookahead::verify::{judge, ExpectedFailure, Verdict};

/// The adapter under test: `LOOKAHEAD_ADAPTER` if set, else the best one. Panics with the
/// install command when there is none, so a green run always means the shaders ran.
pub fn ctx() -> GpuContext {
    ctx_with(AdapterOptions::default().shader_checks)
}

/// [`ctx`] with the given runtime-check policy.
pub fn ctx_with(shader_checks: ShaderChecks) -> GpuContext {
    try_ctx_with(shader_checks).unwrap_or_else(|why| panic!("{why}"))
}

/// The adapter under test, or why there is none with the install command (for a harness that
/// reports it as a failing test rather than panicking).
pub fn try_ctx() -> Result<GpuContext, String> {
    try_ctx_with(AdapterOptions::default().shader_checks)
}

fn try_ctx_with(shader_checks: ShaderChecks) -> Result<GpuContext, String> {
    let name = std::env::var("LOOKAHEAD_ADAPTER").ok();
    GpuContext::new(&AdapterOptions { name, shader_checks, ..AdapterOptions::default() }).map_err(|e| {
        format!(
            "GPU tests need an adapter and none was found: {e}\n\
             Install lavapipe with: apt-get update && apt-get install -y mesa-vulkan-drivers"
        )
    })
}

/// `|gpu − cpu| ≤ abs + rel·|cpu|` (the conformance table's, with its named tolerances).
pub use lookahead::verify::Tol;

/// Compares element-wise; NaN or infinity on either side fails; reports the worst element.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f64], tol: Tol) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length {} vs reference {}", gpu.len(), cpu.len());
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(g.is_finite() && c.is_finite(), "{what}[{i}]: gpu {g} vs cpu {c} (non-finite)");
        let err = (g as f64 - c).abs();
        let allowed = tol.abs + tol.rel * c.abs();
        if err / allowed > worst.1 {
            worst = (i, err / allowed);
        }
        assert!(
            err <= allowed,
            "{what}[{i}]: gpu {g} vs cpu {c}: error {err:.3e} > {allowed:.3e} (tolerance {tol:?}, {} values)",
            gpu.len()
        );
    }
}

/// Deterministic pseudo-random values in [-scale, scale) (the conformance table's generator).
#[allow(unused_imports)] // not every test binary draws seeded values
pub use lookahead::verify::seeded;

/// Runs `entry` of `source` with storage buffers bound at group 0, bindings 0..n, in that
/// order (`read_write`), over `groups` workgroups; returns every buffer's final contents.
pub fn run_storage_kernel(
    ctx: &GpuContext,
    source: &str,
    entry: &str,
    buffers: &[Vec<u32>],
    groups: (u32, u32, u32),
) -> Vec<Vec<u32>> {
    let read_only = vec![false; buffers.len()];
    let layout = lookahead::kernels::storage_layout(ctx, "test", &read_only).expect("test layout");
    let pipeline =
        lookahead::kernels::custom_pipeline(ctx, "test", source, entry, &[&layout], &[]).expect("test pipeline");
    let bufs: Vec<wgpu::Buffer> = buffers.iter().map(|b| ctx.storage_buffer_init("test", b)).collect();
    let refs: Vec<&wgpu::Buffer> = bufs.iter().collect();
    let bg = lookahead::kernels::bind_buffers(ctx, "test", &layout, &refs);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }
    ctx.queue.submit(Some(enc.finish()));
    bufs.iter().zip(buffers).map(|(b, v)| ctx.read_buffer::<u32>(b, v.len().max(1)).expect("readback")).collect()
}

pub fn f32_bits(v: &[f64]) -> Vec<u32> {
    v.iter().map(|x| (*x as f32).to_bits()).collect()
}

pub fn from_bits(v: &[u32]) -> Vec<f32> {
    v.iter().map(|x| f32::from_bits(*x)).collect()
}

/// Runs a GPU test body on the adapter under test, judged against its `expected` failures
/// (`verify::ExpectedFailure`, the conformance table's): a listed failure (adapter and panic
/// message matching) is reported and passes, any other failure fails, and a pass where a failure
/// is listed fails too (so the entry is removed when the driver is fixed). Never a silent skip.
pub fn run_gpu_test(name: &str, expected: &[ExpectedFailure], body: impl FnOnce(&GpuContext)) {
    let ctx = ctx();
    let c = ctx.clone();
    // The context is not used after a panic, so observing it half-updated is impossible.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || body(&c)));
    let message = outcome.as_ref().err().map(|p| panic_message(p.as_ref()));
    let adapter = ctx.adapter();
    match judge(expected, adapter, message.as_deref()) {
        Verdict::Passed => {}
        Verdict::Failed => {
            if let Err(p) = outcome {
                std::panic::resume_unwind(p)
            }
        }
        Verdict::ExpectedFailure(e) => eprintln!("{name}: expected failure on {adapter}: {}", e.reason),
        Verdict::PassedButListed(e) => {
            panic!("{name} passed on {adapter} but is listed as an expected failure ({}); remove the entry", e.reason)
        }
    }
}

/// The text of a panic's payload (a `&str` or `String` message; else empty).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => String::new(),
    }
}

/// `gpu_test!(name, |ctx| { ... })`: a `#[test]` run through [`run_gpu_test`];
/// `gpu_test!(name, expected = &[ExpectedFailure { .. }], |ctx| { ... })` lists its known
/// failures.
#[macro_export]
macro_rules! gpu_test {
    ($name:ident, |$ctx:ident| $body:block) => {
        #[test]
        fn $name() {
            common::run_gpu_test(stringify!($name), &[], |$ctx: &lookahead::gpu::GpuContext| $body)
        }
    };
    ($name:ident, expected = $expected:expr, |$ctx:ident| $body:block) => {
        #[test]
        fn $name() {
            common::run_gpu_test(stringify!($name), $expected, |$ctx: &lookahead::gpu::GpuContext| $body)
        }
    };
}
