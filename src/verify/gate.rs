//! What `lookahead bench` checks before it times anything: the quick cases of the families a
//! benchmark runs, and the network kernel it would time, so that no timing of wrong maths is
//! reported.

use super::cases::plan::ensemble_case;
use super::{cases, optional_cases, run_case, try_case, Case, Family};
use crate::env::EnvKind;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::{Ensemble, EnsembleSpec};
use crate::planner::{Dynamics, MlpKernel, ModelStep, Planner, PlannerConfig, Propagation};

/// Checks the quick cases of `families` on `ctx` (what `lookahead bench train` times): an
/// error naming the first family that fails and its worst value.
pub fn check_families(ctx: &GpuContext, families: &[Family]) -> Result<()> {
    let failed =
        cases(true).into_iter().filter(|c| families.contains(&c.family)).map(|c| run_case(ctx, &c)).find(|r| !r.passed);
    match failed {
        None => Ok(()),
        Some(r) => Err(Error::InvalidInput(format!(
            "{}: {} fails verification on this adapter ({}); no timing is reported for wrong maths \
             (`lookahead verify` shows every case; --force times it anyway)",
            r.family, r.case, r.detail
        ))),
    }
}

/// The network kernel `mlp_kernel = auto` picks on `ctx` for the PETS reference network.
pub fn auto_network_kernel(ctx: &GpuContext) -> Result<String> {
    let p = Planner::new(
        ctx,
        EnvKind::Cartpole.task(),
        Dynamics::Ensemble(Ensemble::random(EnsembleSpec::pets(4, 1), 0)?),
        PlannerConfig { population: 8, particles: 2, iterations: 1, horizon: 2, ..PlannerConfig::default() },
    )?;
    Ok(p.network_kernel().unwrap_or("").to_string())
}

/// Checks that the network kernel `kernel` computes the right network on `ctx` (the quick
/// cases of its family and whole plans through it under TS1 and TS∞ with `model_step`), for
/// `lookahead bench` before it times it: an error naming the family and the worst value when it
/// does not.
pub fn check_network_kernel(ctx: &GpuContext, kernel: &str, model_step: ModelStep) -> Result<()> {
    let mut table = network_cases(ctx, kernel)?;
    // Whole plans through the f32 kernels against the f64 reference (coop16's family compares
    // its plans with the fused kernel's instead), each model step as the benchmark runs it.
    if let Some(k) = MlpKernel::from_name(kernel).filter(|k| *k != MlpKernel::Coop16) {
        for propagation in [Propagation::Ts1, Propagation::Tsinf] {
            let prop = format!("{propagation:?}").to_lowercase();
            let name = format!("{prop}, network kernel {kernel}, model step {}", model_step.name());
            table.push(ensemble_case(&name, propagation, k, model_step));
        }
    }
    let mut failed = Vec::new();
    for c in &table {
        match try_case(ctx, c) {
            Ok(r) if !r.passed => failed.push(r),
            Ok(_) => {}
            Err(e) => return Err(cannot_run(kernel, model_step, c, e)),
        }
    }
    match failed.first() {
        None => Ok(()),
        Some(r) => Err(Error::InvalidInput(format!(
            "the {kernel} network kernel fails verification on this adapter ({}: {}: {}); \
             no timing is reported for wrong maths (`lookahead verify` shows every case; --force times it anyway)",
            r.family, r.case, r.detail
        ))),
    }
}

/// Why the benchmark cannot time `kernel` with `model_step` on this adapter: a case could not
/// run at all (a setting or size it cannot take, a shader it cannot compile), which is not
/// wrong maths.
fn cannot_run(kernel: &str, model_step: ModelStep, case: &Case, e: Error) -> Error {
    Error::InvalidInput(format!(
        "this adapter cannot run the {kernel} network kernel with model step {} ({}: {}): {e}; \
         choose another --mlp-kernel or --model-step (`lookahead verify` shows what runs here)",
        model_step.name(),
        case.family,
        case.name
    ))
}

/// The quick cases of the family `mlp.<kernel>` that `ctx` runs: an error naming what the
/// adapter lacks for an optional family it cannot run, or that there is no such family.
fn network_cases(ctx: &GpuContext, kernel: &str) -> Result<Vec<Case>> {
    let family = format!("mlp.{kernel}").parse::<Family>().ok();
    let mut table = cases(true);
    table.extend(optional_cases(ctx));
    table.retain(|c| Some(c.family) == family);
    match (family.and_then(Family::needs), table.is_empty()) {
        (_, false) => Ok(table),
        (Some(needs), true) => {
            Err(Error::config("planner.mlp_kernel", format!("{kernel}: this adapter lacks {needs}")))
        }
        (None, true) => {
            Err(Error::InvalidInput(format!("verification has no case for a network kernel named {kernel:?}")))
        }
    }
}
