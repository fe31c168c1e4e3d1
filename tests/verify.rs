//! The conformance table of `lookahead verify`, run by the test suite: every case must pass on
//! the adapter present (or fail as listed in `verify::EXPECTED_FAILURES`), so the command and
//! the tests check the same things with the same tolerances.

mod common;

use lookahead::planner::ModelStep;
use lookahead::verify::{self, AdapterReport};

#[test]
fn every_conformance_case_passes_on_the_adapter_present() {
    let ctx = common::ctx();
    let cases = verify::cases(false);
    let families: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.family).collect();
    let listed: std::collections::BTreeSet<&str> = verify::FAMILIES.into_iter().collect();
    assert_eq!(families, listed, "the table's families and verify::FAMILIES differ");
    let report = AdapterReport::run(&ctx, &cases, |_| {});
    let bad: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.ok())
        .map(|r| format!("{}: {}: {} (max abs {:.2e})", r.family, r.case, r.detail, r.max_abs))
        .collect();
    assert!(bad.is_empty(), "verification failed on {}:\n{}", ctx.adapter(), bad.join("\n"));
    // Every case compared values (a case that compares nothing cannot fail).
    for r in &report.results {
        assert!(r.values > 0, "{}: {} compared no values", r.family, r.case);
    }
    // The adapter-dependent families are listed, and said to be run exactly when they were.
    assert_eq!(report.optional.len(), verify::OPTIONAL_FAMILIES.len());
    for ((family, _), line) in verify::OPTIONAL_FAMILIES.iter().zip(&report.optional) {
        let ran = report.results.iter().any(|r| r.family == *family);
        assert_eq!(line.ends_with(": run"), ran, "{line}");
        assert!(!families.contains(family), "{family} is both portable and optional");
    }
}

#[test]
fn the_quick_table_has_the_same_families_and_the_network_check_passes() {
    let ctx = common::ctx();
    let full: std::collections::BTreeSet<&str> = verify::cases(false).iter().map(|c| c.family).collect();
    let quick: std::collections::BTreeSet<&str> = verify::cases(true).iter().map(|c| c.family).collect();
    assert_eq!(full, quick);
    let kernel = verify::auto_network_kernel(&ctx).expect("a network kernel");
    verify::check_network_kernel(&ctx, &kernel, ModelStep::Auto).expect("the kernel bench would time is verified");
    // The fused kernel with each model step in one dispatch (TS∞: one per iteration), as
    // `bench plan --mlp-kernel fused` times it.
    verify::check_network_kernel(&ctx, "fused", ModelStep::Fused).expect("fused, one dispatch per step");
    // A model step that cannot run with the kernel is named, not timed.
    let err = verify::check_network_kernel(&ctx, "tiled", ModelStep::Fused).unwrap_err().to_string();
    assert!(err.contains("planner.model_step"), "{err}");
    let err = verify::check_network_kernel(&ctx, "nonexistent", ModelStep::Auto).unwrap_err().to_string();
    assert!(err.contains("no case"), "{err}");
    // The tensor-core kernel where the adapter lacks it: what is missing, not "no case".
    if !ctx.has_coop16() {
        let err = verify::check_network_kernel(&ctx, "coop16", ModelStep::Auto).unwrap_err().to_string();
        assert!(err.contains("lacks 16×16×16 cooperative matrices"), "{err}");
    }
}
