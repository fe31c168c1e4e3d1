//! `verify`: every kernel family against its f64 CPU reference, on one adapter or on all.

use lookahead::gpu::{self, AdapterOptions, GpuContext};
use lookahead::verify::{AdapterReport, Case, CaseResult};

use crate::args::{GpuArgs, VerifyArgs};

/// `lookahead verify`: a table per adapter, the reports as JSON with `--json`; fails when any
/// case failed.
pub fn cmd_verify(gpu: &GpuArgs, args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        lookahead::util::check_writable(path)?;
    }
    let targets = targets(gpu, args.all_adapters)?;
    let cases = lookahead::verify::cases(args.quick);
    let mut reports = Vec::new();
    for opts in &targets {
        let ctx = GpuContext::new(opts)?;
        reports.push(verify_adapter(&ctx, &cases));
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "lookahead": env!("CARGO_PKG_VERSION"),
            "quick": args.quick,
            "shader_checks": gpu.shader_checks,
            "adapters": reports,
        }))?;
        lookahead::util::write_atomic(path, text.as_bytes())?;
        println!("report written to {}", path.display());
    }
    let failed: usize = reports.iter().map(|r| r.results.iter().filter(|c| !c.ok()).count()).sum();
    if failed > 0 {
        anyhow::bail!("{failed} case(s) failed verification: these kernels compute wrong results on this adapter");
    }
    Ok(())
}

/// The adapters to verify: the one of `--adapter` / `--backend`, or with `--all-adapters`
/// every adapter wgpu sees (of `--backend`, if given).
fn targets(gpu: &GpuArgs, all_adapters: bool) -> anyhow::Result<Vec<AdapterOptions>> {
    let backend = gpu.backend()?;
    let shader_checks = gpu.shader_checks.parse()?;
    Ok(if all_adapters {
        gpu::list_adapters(backend)
            .into_iter()
            .map(|a| AdapterOptions { name: Some(a.name.clone()), backend: a.backend.parse().ok(), shader_checks })
            .collect()
    } else {
        vec![AdapterOptions { name: gpu.adapter.clone(), backend, shader_checks }]
    })
}

/// Runs the verification table on `ctx`, printing a line per case and a summary.
fn verify_adapter(ctx: &GpuContext, cases: &[Case]) -> AdapterReport {
    let a = ctx.adapter();
    println!("adapter: {a}");
    println!("shader checks: {:?}", ctx.shader_checks());
    println!(
        "{:<14} {:<62} {:>7} {:>10} {:>10} {:>17}  result",
        "family", "case", "values", "max abs", "max rel", "tolerance"
    );
    let started = std::time::Instant::now();
    let report = AdapterReport::run(ctx, cases, print_case);
    println!(
        "features: {}; network kernel for the reference network: {}",
        if report.features.is_empty() { "none of those used".to_string() } else { report.features.join(", ") },
        report.network_kernel
    );
    if !report.cooperative_matrices.is_empty() {
        println!("cooperative matrices: {}", report.cooperative_matrices.join(", "));
    }
    for line in &report.optional {
        println!("optional family {line}");
    }
    let failed = report.results.iter().filter(|r| !r.ok()).count();
    println!(
        "{} cases, {} failed, in {:.1} s on {}",
        report.results.len(),
        failed,
        started.elapsed().as_secs_f64(),
        a.name
    );
    report
}

/// One line of the verification table.
fn print_case(r: &CaseResult) {
    let tol = match (&r.criterion, r.tol) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => format!("{:.0e} + {:.0e}·|x|", t.abs, t.rel),
        (None, None) => "bit for bit".to_string(),
    };
    let verdict = match (&r.expected_failure, r.passed) {
        (Some(why), false) => format!("expected failure: {why}"),
        (Some(why), true) => format!("PASSED but listed as an expected failure ({why}): remove the entry"),
        (None, true) => "pass".to_string(),
        (None, false) => format!("FAIL: {}", r.detail),
    };
    println!(
        "{:<14} {:<62} {:>7} {:>10.2e} {:>10.2e} {:>17}  {verdict}",
        r.family, r.case, r.values, r.max_abs, r.max_rel, tol
    );
}
