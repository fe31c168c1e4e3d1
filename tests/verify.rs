//! The conformance table of `lookahead verify`, run by the test suite, one test per case named
//! `<family>/<case>` (`cargo test --test verify -- mlp.fused` runs one family): every case must
//! pass on the adapter present (or fail as its `verify::ExpectedFailure`s list), so the command
//! and the tests check the same things with the same tolerances. Beside the cases: the table's
//! families, the optional families' report lines and the checks `lookahead bench` runs.
//!
//! Without an adapter every test that needs one fails, saying how to install lavapipe.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use lookahead::gpu::GpuContext;
use lookahead::planner::ModelStep;
use lookahead::verify::{self, AdapterReport, Case, Family};

/// The adapter under test, or why there is none (with the install command).
type Adapter = Arc<Result<GpuContext, String>>;

fn main() {
    let args = Arguments::from_args();
    let adapter: Adapter = Arc::new(common::try_ctx());
    let mut trials = table_trials();
    trials.extend(verify::cases(false).into_iter().map(|c| case_trial(&adapter, c)));
    if let Ok(ctx) = adapter.as_ref() {
        trials.extend(verify::optional_cases(ctx).into_iter().map(|c| case_trial(&adapter, c)));
    }
    trials.extend(adapter_trials(&adapter));
    libtest_mimic::run(&args, trials).exit();
}

/// The context, or a failure saying that there is no adapter and how to install one.
fn ctx(adapter: &Adapter) -> Result<&GpuContext, Failed> {
    adapter.as_ref().as_ref().map_err(Failed::from)
}

/// Fails with `what` unless `holds`.
fn check(holds: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if holds {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// `<family>/<case>`: the case on the adapter present, judged against its expected failures;
/// a case that compares nothing fails too (it could not fail otherwise).
fn case_trial(adapter: &Adapter, case: Case) -> Trial {
    let adapter = adapter.clone();
    Trial::test(format!("{}/{}", case.family, case.name), move || {
        let ctx = ctx(&adapter)?;
        let r = verify::run_case(ctx, &case);
        match (&r.expected_failure, r.passed) {
            (Some(why), true) => {
                return Err(format!(
                    "passed on {} but listed as an expected failure ({why}): remove the entry",
                    ctx.adapter()
                )
                .into())
            }
            (Some(why), false) => eprintln!("{}/{}: expected failure on {}: {why}", r.family, r.case, ctx.adapter()),
            (None, passed) => check(passed, || {
                format!(
                    "failed on {}: {} (max abs {:.2e}, max rel {:.2e})",
                    ctx.adapter(),
                    r.detail,
                    r.max_abs,
                    r.max_rel
                )
            })?,
        }
        check(r.values > 0 || !r.passed, || "compared no values".to_string())
    })
}

/// The table's own checks (no adapter needed): its families are [`Family::PORTABLE`], the quick
/// table has the same ones, and case names are unique.
fn table_trials() -> Vec<Trial> {
    let families = |quick| verify::cases(quick).iter().map(|c| c.family).collect::<BTreeSet<Family>>();
    vec![
        Trial::test("table/the families of the table are Family::PORTABLE", move || {
            let portable: BTreeSet<Family> = Family::PORTABLE.into_iter().collect();
            check(families(false) == portable, || format!("{:?} vs {portable:?}", families(false)))?;
            let both: Vec<&Family> = Family::OPTIONAL.iter().filter(|f| portable.contains(f)).collect();
            check(both.is_empty(), || format!("{both:?} both portable and optional"))
        }),
        Trial::test("table/the quick table has the same families", move || {
            check(families(true) == families(false), || format!("{:?} vs {:?}", families(true), families(false)))
        }),
        Trial::test("table/every case has its own name", || {
            for quick in [false, true] {
                let table = verify::cases(quick);
                let names: BTreeSet<String> = table.iter().map(|c| format!("{}/{}", c.family, c.name)).collect();
                check(names.len() == table.len(), || format!("a name repeats in the table (quick: {quick})"))?;
            }
            Ok(())
        }),
    ]
}

/// The checks that need the adapter beside the cases: the optional families' report lines and
/// the network kernel checks of `lookahead bench`.
fn adapter_trials(adapter: &Adapter) -> Vec<Trial> {
    let (a, b, c) = (adapter.clone(), adapter.clone(), adapter.clone());
    vec![
        Trial::test("report/each optional family's line says whether it runs here", move || {
            let ctx = ctx(&a)?;
            let extra = verify::optional_cases(ctx);
            let lines = AdapterReport::optional_lines(&extra);
            check(lines.len() == Family::OPTIONAL.len(), || format!("{lines:?}"))?;
            for (family, line) in Family::OPTIONAL.iter().zip(&lines) {
                let runs = extra.iter().any(|c| c.family == *family);
                check(line.starts_with(family.name()) && line.ends_with(": run") == runs, || line.clone())?;
            }
            Ok(())
        }),
        Trial::test("bench/the network kernels bench would time are verified", move || {
            let ctx = ctx(&b)?;
            let kernel = verify::auto_network_kernel(ctx).map_err(|e| format!("a network kernel: {e}"))?;
            verify::check_network_kernel(ctx, &kernel, ModelStep::Auto)?;
            // The fused kernel with each model step in one dispatch (TS∞: one per iteration), as
            // `bench plan --mlp-kernel fused` times it.
            verify::check_network_kernel(ctx, "fused", ModelStep::Fused)?;
            Ok(())
        }),
        Trial::test("bench/network kernels that cannot run are named, not timed", move || refusals(&c)),
    ]
}

/// A model step that cannot run with the kernel, an unknown kernel and (where the adapter lacks
/// it) the tensor-core kernel are refused with what is wrong.
fn refusals(adapter: &Adapter) -> Result<(), Failed> {
    let ctx = ctx(adapter)?;
    let refused = |kernel: &str, step: ModelStep, says: &str| -> Result<(), Failed> {
        match verify::check_network_kernel(ctx, kernel, step) {
            Ok(()) => Err(format!("{kernel} with model step {} accepted", step.name()).into()),
            Err(e) => check(e.to_string().contains(says), || format!("{kernel}: {e}")),
        }
    };
    refused("tiled", ModelStep::Fused, "planner.model_step")?;
    refused("nonexistent", ModelStep::Auto, "no case")?;
    // The tensor-core kernel where the adapter lacks it: what is missing, not "no case".
    if !ctx.has_coop16() {
        refused("coop16", ModelStep::Auto, "lacks 16×16×16 cooperative matrices")?;
    }
    Ok(())
}
