//! The conformance suite (`lookahead verify`): every kernel family against its f64 CPU reference
//! on an adapter, over ragged sizes, with the tolerances and reasons of the test suite, which
//! runs the same table (`tests/verify.rs`, one test per case), so the two cannot drift apart.
//!
//! A case reports the values compared, the largest absolute and relative errors, its tolerance
//! and whether it passed; a known problem of an adapter (the case's [`ExpectedFailure`]s) is
//! reported as an expected failure with its reason instead of failing the run.
//!
//! The table ([`cases`]) is assembled from one module per family group (`cases/`); the checks
//! of `gate.rs` ([`check_families`], [`check_network_kernel`]) are what `lookahead bench` runs
//! before it times anything.

use serde::Serialize;

use crate::env::EnvKind;
use crate::error::Result;
use crate::gpu::GpuContext;

mod cases;
mod compare;
mod expected;
mod family;
mod gate;
mod report;

pub use cases::plan::{compare_plan, compare_two_plans, kind_cfg};
pub use cases::train::train_buffer;
pub use compare::{seeded, Comparison};
pub use expected::{judge, ExpectedFailure, Verdict};
pub use family::{Family, FAMILIES};
pub use gate::{auto_network_kernel, check_families, check_network_kernel};
pub use report::AdapterReport;

/// `|gpu − cpu| ≤ abs + rel·|cpu|`; `None` in a report: bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tol {
    /// Relative part.
    pub rel: f64,
    /// Absolute floor.
    pub abs: f64,
}

/// f32 forward passes through a few layers: accumulated rounding stays far below 1e-4 relative;
/// the absolute floor covers outputs that cancel to near zero.
pub const FORWARD_TOL: Tol = Tol { rel: 1e-4, abs: 1e-5 };
/// Transcendentals (log, cos, exp) differ between f32 GPU builtins and f64 by a few ulp.
pub const TRANSCENDENTAL_TOL: Tol = Tol { rel: 1e-5, abs: 2e-6 };
/// Member losses of a minibatch (f32 sums of a few dozen rows).
pub const LOSS_TOL: Tol = Tol { rel: 1e-4, abs: 1e-6 };
/// Adam's parameters after each step (f32 arithmetic of the same update).
pub const ADAM_TOL: Tol = Tol { rel: 1e-4, abs: 1e-6 };
/// Whole plans: a few steps of f32 model rollouts with sampled noise, then CEM averages.
pub const PLAN_TOL: Tol = Tol { rel: 2e-3, abs: 2e-4 };
/// Rewards of one step (the environments' WGSL twins against their f64 twins).
pub const REWARD_TOL: Tol = Tol { rel: 1e-5, abs: 1e-5 };
/// Network outputs of the tensor-core kernel: f16 operands, so within a few f16 roundings of the
/// reference that rounds the same operands (an activation converted the other way at a tie, or
/// an f32 sum that rounds to the neighbouring f16, moves an output by ~1e-3 of its terms).
pub const COOP16_TOL: Tol = Tol { rel: 1e-2, abs: 2e-3 };

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// Kernel family (its name in a report, e.g. `mlp.fused`).
    pub family: Family,
    /// Case within the family.
    pub case: String,
    /// Values compared.
    pub values: usize,
    /// Largest |gpu − cpu|.
    pub max_abs: f64,
    /// Largest |gpu − cpu| / |cpu| over values with |cpu| > 0.
    pub max_rel: f64,
    /// Tolerance (`None`: bit for bit, unless `criterion` is given).
    pub tol: Option<Tol>,
    /// How the case decides when no single tolerance describes it.
    pub criterion: Option<String>,
    /// Within tolerance (and every value finite).
    pub passed: bool,
    /// The worst value, or what did not match.
    pub detail: String,
    /// The reason of the case's [`ExpectedFailure`] for this adapter: set when the case failed
    /// as that entry expects, or passed although the entry expects it to fail.
    pub expected_failure: Option<String>,
}

impl CaseResult {
    /// Passed, or failed as expected on this adapter.
    pub fn ok(&self) -> bool {
        self.passed != self.expected_failure.is_some()
    }
}

type CaseFn = Box<dyn Fn(&GpuContext) -> Result<Comparison> + Send + Sync>;

/// One entry of the table: a family, a case and how to run it.
pub struct Case {
    /// Kernel family.
    pub family: Family,
    /// Case within the family.
    pub name: String,
    /// Tolerance of its comparisons (`None`: bit for bit, unless `criterion` says otherwise).
    pub tol: Option<Tol>,
    /// How the case decides when no single tolerance describes it.
    pub criterion: Option<&'static str>,
    /// The failures expected of it on some adapters (none so far: every case passes on every
    /// adapter measured, llvmpipe / Mesa 22.3 and NVIDIA H100 / driver 580 through Vulkan).
    pub expected_failures: &'static [ExpectedFailure],
    run: CaseFn,
}

/// A case of `family` with no criterion and no expected failure.
fn case(
    family: Family,
    name: &str,
    tol: Option<Tol>,
    run: impl Fn(&GpuContext) -> Result<Comparison> + Send + Sync + 'static,
) -> Case {
    Case { family, name: name.to_string(), tol, criterion: None, expected_failures: &[], run: Box::new(run) }
}

/// The table: every portable family ([`Family::PORTABLE`]), in dependency order (random
/// streams, layers, environments, plans, training, SAC updates, MBPO rollouts). `quick` runs smaller sizes of the same cases.
pub fn cases(quick: bool) -> Vec<Case> {
    let mut v = cases::rng::cases(quick);
    v.extend(cases::mlp::cases(quick));
    for kind in EnvKind::ALL {
        v.push(cases::env::env_case(kind, quick));
        v.push(cases::plan::analytic_case(kind));
    }
    v.extend(cases::plan::ensemble_cases(quick));
    v.extend(cases::plan::kind_cases(quick));
    v.extend(cases::train::cases(quick));
    v.extend(cases::sac::cases(quick));
    v.extend(cases::mbpo::cases(quick));
    v
}

/// The cases of the optional families ([`Family::OPTIONAL`]) that `ctx` can run.
pub fn optional_cases(ctx: &GpuContext) -> Vec<Case> {
    cases::coop16::cases(ctx)
}

/// Runs `case` on `ctx`: its result, with a failure to run (e.g. a shader that does not compile
/// on this adapter) reported as a failed case, judged against the case's expected failures.
pub fn run_case(ctx: &GpuContext, case: &Case) -> CaseResult {
    try_case(ctx, case)
        .unwrap_or_else(|e| judged(ctx, case, (0, f64::NAN, f64::NAN, false, format!("could not run: {e}"))))
}

/// Runs `case` on `ctx`: its result judged against the case's expected failures, or why it
/// could not run at all (a setting or size the adapter cannot take, a shader it cannot compile):
/// not a comparison, so not a wrong result.
pub fn try_case(ctx: &GpuContext, case: &Case) -> Result<CaseResult> {
    let c = (case.run)(ctx)?;
    Ok(judged(ctx, case, (c.values, c.max_abs, c.max_rel, c.passed, c.detail)))
}

/// The result of `case` from its (values, max_abs, max_rel, passed, detail).
fn judged(ctx: &GpuContext, case: &Case, outcome: (usize, f64, f64, bool, String)) -> CaseResult {
    let (values, max_abs, max_rel, passed, detail) = outcome;
    let verdict = judge(case.expected_failures, ctx.adapter(), (!passed).then_some(detail.as_str()));
    CaseResult {
        family: case.family,
        case: case.name.clone(),
        values,
        max_abs,
        max_rel,
        tol: case.tol,
        criterion: case.criterion.map(str::to_string),
        passed,
        detail,
        expected_failure: verdict.entry().map(|e| e.reason.to_string()),
    }
}
