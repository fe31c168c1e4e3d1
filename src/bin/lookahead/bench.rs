//! `bench plan`, `bench train`, `bench sac` and `bench mbpo`: the library's benchmarks as tables on
//! stdout (the row types of `lookahead::bench`), and as a JSON report with `--json`. No figure
//! is timed through kernels that fail verification on the adapter unless `--force`.

use std::path::Path;

use lookahead::bench::{
    self, LayoutHeader, MbpoHeader, PlanHeader, ProfileTable, SacHeader, TrainHeader, TrainLayoutHeader,
};
use lookahead::gpu::{GpuContext, Profiler};
use lookahead::planner::MlpKernel;
use lookahead::verify::Family;

use crate::args::{BenchMbpoArgs, BenchPlanArgs, BenchSacArgs, BenchTrainArgs, GpuArgs};

/// Timed plans per layout of `bench plan --fused-layouts`.
const FUSED_LAYOUT_PLANS: usize = 5;

/// `lookahead bench plan`: times full CEM plans of every case of the suite.
pub fn cmd_bench_plan(gpu: &GpuArgs, args: BenchPlanArgs) -> anyhow::Result<()> {
    let ctx = start_bench(gpu, "plan", args.json.as_deref(), args.quick, args.profile)?;
    let l = ctx.limits();
    println!(
        "limits: max_storage_buffer_binding_size {} B, max_buffer_size {} B, max_compute_workgroups_per_dimension {}",
        l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_workgroups_per_dimension
    );
    let cases = plan_cases(&args)?;
    verify_plan_kernels(&ctx, &args)?;
    println!("{PlanHeader}");
    let mut results = Vec::new();
    for c in &cases {
        let mut r = bench::run_case(&ctx, c, args.profile)?;
        println!("{r}");
        print_profile(r.profile.as_ref(), "plan");
        if args.fused_layouts {
            let layouts = bench::sweep_layouts(&ctx, c, FUSED_LAYOUT_PLANS)?;
            println!("{}", LayoutHeader { plans: FUSED_LAYOUT_PLANS });
            for l in &layouts {
                println!("{l}");
            }
            r.layouts = Some(layouts);
        }
        results.push(r);
    }
    write_report(&ctx, results, args.json.as_deref())
}

/// The plan cases of `--quick` / `--only`, with the network kernel and model step of the
/// command line.
fn plan_cases(args: &BenchPlanArgs) -> anyhow::Result<Vec<bench::PlanCase>> {
    let mut cases = if args.quick { bench::quick_suite() } else { bench::full_suite() };
    if let Some(only) = &args.only {
        cases.retain(|c| c.name.contains(only.as_str()));
        if cases.is_empty() {
            anyhow::bail!("no bench case name contains {only:?}");
        }
    }
    for c in &mut cases {
        c.cem.mlp_kernel = args.mlp_kernel;
        c.cem.model_step = args.model_step;
    }
    Ok(cases)
}

/// No speed figure from wrong maths: the network kernel the cases will use (and with
/// `--fused-layouts` the fused one) is checked against its f64 reference, and a whole plan
/// through it, first.
fn verify_plan_kernels(ctx: &GpuContext, args: &BenchPlanArgs) -> anyhow::Result<()> {
    let kernel = match args.mlp_kernel {
        MlpKernel::Auto => lookahead::verify::auto_network_kernel(ctx)?,
        k => k.name().to_string(),
    };
    let mut kernels = vec![kernel];
    if args.fused_layouts && !kernels.contains(&"fused".to_string()) {
        kernels.push("fused".into());
    }
    for kernel in &kernels {
        let checked = lookahead::verify::check_network_kernel(ctx, kernel, args.model_step);
        let verified = format!("verified: the {kernel} network kernel matches its f64 reference on this adapter");
        unless_forced(checked, args.force, &verified)?;
    }
    Ok(())
}

/// `lookahead bench train`: times training epochs of every case of the suite.
pub fn cmd_bench_train(gpu: &GpuArgs, args: BenchTrainArgs) -> anyhow::Result<()> {
    let ctx = start_bench(gpu, "train", args.json.as_deref(), args.quick, args.profile)?;
    unless_forced(
        lookahead::verify::check_families(
            &ctx,
            &[Family::MlpTiled, Family::MlpFused, Family::TrainLoss, Family::TrainAdam],
        ),
        args.force,
        "verified: the training kernels match their f64 references on this adapter",
    )?;
    let cases = if args.quick { bench::train_quick_suite() } else { bench::train_full_suite() };
    println!("{TrainHeader}");
    let mut results = Vec::new();
    for c in &cases {
        let mut r = bench::run_train_case(&ctx, c, args.profile)?;
        println!("{r}");
        print_profile(r.profile.as_ref(), "one-epoch train call");
        if args.fused_layouts {
            let layouts = bench::sweep_train_layouts(&ctx, c)?;
            println!("{TrainLayoutHeader}");
            for l in &layouts {
                println!("{l}");
            }
            r.layouts = Some(layouts);
        }
        results.push(r);
    }
    write_report(&ctx, results, args.json.as_deref())
}

/// `lookahead bench sac`: times submissions of SAC updates and the next action, as a run makes
/// them, for every case of the suite.
pub fn cmd_bench_sac(gpu: &GpuArgs, args: BenchSacArgs) -> anyhow::Result<()> {
    let ctx = start_bench(gpu, "sac", args.json.as_deref(), args.quick, args.profile)?;
    let mut cases = if args.quick { bench::sac_quick_suite() } else { bench::sac_full_suite() };
    if let Some(only) = &args.only {
        cases.retain(|c| c.name.contains(only.as_str()));
        if cases.is_empty() {
            anyhow::bail!("no bench case name contains {only:?}");
        }
    }
    unless_forced(
        lookahead::verify::check_families(&ctx, &[Family::MlpTiled, Family::TrainAdam, Family::Sac]),
        args.force,
        "verified: the SAC update's kernels match their f64 references on this adapter",
    )?;
    println!("{SacHeader}");
    let mut results = Vec::new();
    for c in &cases {
        let r = bench::run_sac_case(&ctx, c, args.profile)?;
        println!("{r}");
        print_profile(r.profile.as_ref(), "submission");
        results.push(r);
    }
    write_report(&ctx, results, args.json.as_deref())
}

/// `lookahead bench policy`: times a SAC actor's action for one observation on the CPU.
pub fn cmd_bench_policy() -> anyhow::Result<()> {
    println!("{}", lookahead::bench::PolicyHeader);
    for c in bench::policy_suite() {
        println!("{}", bench::run_policy_case(&c)?);
    }
    Ok(())
}

/// `lookahead bench mbpo`: times the parts of an MBPO environment step (acting and updates,
/// rollouts, model training) and their amortised sum.
pub fn cmd_bench_mbpo(gpu: &GpuArgs, args: BenchMbpoArgs) -> anyhow::Result<()> {
    let case = args.case();
    // The sizes are refused before the adapter opens.
    case.check()?;
    let ctx = start_bench(gpu, "mbpo", args.json.as_deref(), false, args.profile)?;
    unless_forced(
        lookahead::verify::check_families(
            &ctx,
            &[
                Family::MlpTiled,
                Family::MlpFused,
                Family::TrainLoss,
                Family::TrainAdam,
                Family::Sac,
                Family::MbpoRollout,
            ],
        ),
        args.force,
        "verified: the rollouts', SAC update's and training's kernels match their f64 references on this adapter",
    )?;
    println!("{case}");
    let r = bench::run_mbpo_case(&ctx, &case, args.profile)?;
    println!("{MbpoHeader}");
    println!("{r}");
    print_profile(r.rollout_profile.as_ref(), "rollout batch");
    print_profile(r.sac_profile.as_ref(), "SAC submission");
    write_report(&ctx, vec![r], args.json.as_deref())
}

/// The start of `bench plan`, `bench train`, `bench sac` and `bench mbpo`: checks the report path before any work, opens
/// the adapter and prints the header (version, adapter, check policy, timestamp support).
fn start_bench(
    gpu: &GpuArgs,
    what: &str,
    json: Option<&Path>,
    quick: bool,
    profile: bool,
) -> anyhow::Result<GpuContext> {
    if let Some(path) = json {
        lookahead::util::check_writable(path)?;
    }
    let ctx = gpu.open()?;
    println!("lookahead {} bench {what}{}", env!("CARGO_PKG_VERSION"), if quick { " --quick" } else { "" });
    println!("adapter: {}", ctx.adapter());
    let timestamps = Profiler::new(&ctx).is_some();
    println!("shader checks: {:?}; timestamp queries: {}", ctx.shader_checks(), if timestamps { "yes" } else { "no" });
    if profile && !timestamps {
        println!("--profile: this adapter has no timestamp queries; no per-kernel times");
    }
    Ok(ctx)
}

/// Goes on after a verification (`verified` printed) or, with `--force`, after its failure
/// (printed as UNVERIFIED); fails with it otherwise.
fn unless_forced(checked: lookahead::Result<()>, force: bool, verified: &str) -> anyhow::Result<()> {
    match (checked, force) {
        (Ok(()), _) => println!("{verified}"),
        (Err(e), true) => println!("UNVERIFIED (--force): {e}"),
        (Err(e), false) => return Err(e.into()),
    }
    Ok(())
}

/// Prints GPU milliseconds per kernel, largest first (with `--profile`).
fn print_profile(gpu_ms: Option<&std::collections::BTreeMap<String, f64>>, per: &str) {
    if let Some(gpu_ms) = gpu_ms {
        println!("{}", ProfileTable { gpu_ms, per });
    }
}

/// With `--json`, the report of `results` on `ctx`'s adapter, written there.
fn write_report<T: serde::Serialize>(ctx: &GpuContext, results: Vec<T>, json: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = json {
        bench::Report::new(ctx, results).write(path)?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
