//! The report of one adapter (`lookahead verify --json`): its description, the features and
//! limits the kernels use, which optional families ran, and every case's result.

use serde::Serialize;

use super::{auto_network_kernel, optional_cases, run_case, Case, CaseResult, Family};
use crate::gpu::GpuContext;

/// The adapter a report describes, with the features and limits the kernels use.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterReport {
    /// Name, backend, driver and device type.
    pub adapter: crate::gpu::AdapterSummary,
    /// Features the kernels look at.
    pub features: Vec<String>,
    /// Limits the kernels are sized against.
    pub limits: std::collections::BTreeMap<String, u64>,
    /// The network kernel `mlp_kernel = auto` picks for the PETS reference network.
    pub network_kernel: String,
    /// Each of [`Family::OPTIONAL`]: run here, or not and what it needs.
    pub optional: Vec<String>,
    /// The cooperative-matrix configurations the adapter lists (`M×N×K A/B→C`), if any.
    pub cooperative_matrices: Vec<String>,
    /// Every case (those of the optional families the adapter has after the others).
    pub results: Vec<CaseResult>,
}

impl AdapterReport {
    /// Every case of `cases` on `ctx`, then the [`optional_cases`] it can run, with the
    /// adapter's description.
    pub fn run(ctx: &GpuContext, cases: &[Case], mut on_case: impl FnMut(&CaseResult)) -> Self {
        let features = features(ctx);
        let limits = limits(ctx);
        let network_kernel = auto_network_kernel(ctx).unwrap_or_else(|e| format!("none ({e})"));
        let extra = optional_cases(ctx);
        let optional = Self::optional_lines(&extra);
        let results = cases
            .iter()
            .chain(&extra)
            .map(|c| {
                let r = run_case(ctx, c);
                on_case(&r);
                r
            })
            .collect();
        Self {
            adapter: ctx.adapter().clone(),
            features,
            limits,
            network_kernel,
            optional,
            cooperative_matrices: cooperative_matrices(ctx),
            results,
        }
    }

    /// A line per optional family: `"<family>: run"` where `extra` (the [`optional_cases`] of
    /// the adapter) has its cases, else what the adapter lacks.
    pub fn optional_lines(extra: &[Case]) -> Vec<String> {
        Family::OPTIONAL
            .iter()
            .map(|family| match extra.iter().any(|c| c.family == *family) {
                true => format!("{family}: run"),
                false => format!("{family}: not run, this adapter lacks {}", family.needs().unwrap_or("nothing")),
            })
            .collect()
    }

    /// Every case passed or failed as expected.
    pub fn ok(&self) -> bool {
        self.results.iter().all(CaseResult::ok)
    }
}

/// The features the kernels look at that the adapter has.
fn features(ctx: &GpuContext) -> Vec<String> {
    let f = ctx.wgpu_adapter().features();
    [
        (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
        (wgpu::Features::SHADER_F16, "SHADER_F16"),
        (wgpu::Features::SUBGROUP, "SUBGROUP"),
        (wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX, "EXPERIMENTAL_COOPERATIVE_MATRIX"),
    ]
    .iter()
    .filter(|(flag, _)| f.contains(*flag))
    .map(|(_, n)| n.to_string())
    .collect()
}

/// The limits the kernels are sized against, by name.
fn limits(ctx: &GpuContext) -> std::collections::BTreeMap<String, u64> {
    let l = ctx.limits();
    [
        ("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size as u64),
        ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup as u64),
        ("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension as u64),
        ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
        ("max_uniform_buffer_binding_size", l.max_uniform_buffer_binding_size),
        ("max_buffer_size", l.max_buffer_size),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

/// The cooperative-matrix configurations the adapter lists, as `M×N×K A/B→C`.
fn cooperative_matrices(ctx: &GpuContext) -> Vec<String> {
    ctx.wgpu_adapter()
        .cooperative_matrix_properties()
        .iter()
        .map(|p| format!("{}×{}×{} {:?}→{:?}", p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type))
        .collect()
}
