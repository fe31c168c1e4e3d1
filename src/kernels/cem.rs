//! CEM kernels (`shaders/cem.wgsl`): candidate sampling, the particle mean of returns, elite
//! ranking, the distribution update and the warm-start shift. [`CemKernels`] owns the
//! pipelines and builds the family's bind group; the f64 reference of each entry point is in
//! [`reference`].

use serde::{Deserialize, Serialize};

use super::{pipeline, PlanLayouts, CEM_WGSL, COMMON_WGSL};
use crate::error::Result;
use crate::gpu::GpuContext;

/// The return given to a candidate whose particles' mean return is not finite (WGSL
/// `NON_FINITE_RETURN`): ranked below every finite return.
pub const NON_FINITE_RETURN: f32 = -1e30;

/// The buffers of `cem.wgsl`'s group 1, in binding order.
#[allow(missing_docs)]
pub struct CemBuffers<'a> {
    /// `[n_batch, horizon, act_dim]` sampling mean (the plan).
    pub mean: &'a wgpu::Buffer,
    /// `[n_batch, horizon, act_dim]` sampling variance.
    pub var: &'a wgpu::Buffer,
    /// `[2, act_dim]`: lower then upper action bounds.
    pub bounds: &'a wgpu::Buffer,
    /// `[n_batch · population, horizon, act_dim]` candidate actions.
    pub actions: &'a wgpu::Buffer,
    /// `[n_particles, 2]`: return and alive flag of each particle (written by the rollout).
    pub track: &'a wgpu::Buffer,
    /// `[n_batch · population]` particle-mean returns.
    pub cand_returns: &'a wgpu::Buffer,
    /// `[n_batch · n_elites]` elite indices, best first.
    pub elites: &'a wgpu::Buffer,
    /// `[n_batch, 2]`: mean elite return, best return.
    pub plan_stats: &'a wgpu::Buffer,
}

/// The pipelines of `cem.wgsl` (group 0 `PlanParams`, group 1 [`CemBuffers`]).
pub struct CemKernels {
    /// The shared plan layouts.
    pub layouts: PlanLayouts,
    /// `sample_candidates`: one invocation per candidate action value.
    pub sample: wgpu::ComputePipeline,
    /// `particle_mean`: one invocation per candidate.
    pub particle_mean: wgpu::ComputePipeline,
    /// `rank_elites`: one invocation per candidate.
    pub rank: wgpu::ComputePipeline,
    /// `update_distribution`: one invocation per plan value.
    pub update: wgpu::ComputePipeline,
    /// `shift_solution`: one invocation per plan value.
    pub shift: wgpu::ComputePipeline,
}

impl CemKernels {
    /// Builds (or takes from the context's cache) the pipelines.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let layouts = PlanLayouts::new(ctx)?;
        let pipe =
            |entry: &str| pipeline(ctx, "cem", &[COMMON_WGSL, CEM_WGSL], entry, &[&layouts.params, &layouts.cem], true);
        Ok(Self {
            sample: pipe("sample_candidates")?,
            particle_mean: pipe("particle_mean")?,
            rank: pipe("rank_elites")?,
            update: pipe("update_distribution")?,
            shift: pipe("shift_solution")?,
            layouts,
        })
    }

    /// The group-1 bind group over `b`.
    pub fn bind(&self, ctx: &GpuContext, label: &str, b: &CemBuffers<'_>) -> wgpu::BindGroup {
        super::bind_buffers(
            ctx,
            label,
            &self.layouts.cem,
            &[b.mean, b.var, b.bounds, b.actions, b.track, b.cand_returns, b.elites, b.plan_stats],
        )
    }
}

/// How CEM draws candidate actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Normal truncated at ±2σ with the variance capped so samples stay in bounds (default; mbrl-lib).
    #[default]
    TruncatedNormal,
    /// Normal sample clipped to the action bounds.
    ClippedNormal,
}

/// f64 CPU reference of `cem.wgsl`.
pub mod reference {
    use super::Sampling;
    use crate::kernels::{purpose, rng};

    /// Sizes shared by the CEM references.
    #[derive(Debug, Clone, Copy)]
    pub struct CemDims {
        /// Plans in the batch.
        pub n_batch: usize,
        /// Candidates per plan.
        pub population: usize,
        /// Steps per candidate.
        pub horizon: usize,
        /// Action size.
        pub act_dim: usize,
    }

    /// `sample_candidates`: `[n_batch · population, horizon, act_dim]`.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_candidates_f64(
        dims: CemDims,
        mean: &[f64],
        var: &[f64],
        lower: &[f64],
        upper: &[f64],
        sampling: Sampling,
        seed: u64,
        call: u32,
        iteration: u32,
    ) -> Vec<f64> {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let key = rng::key_of(seed);
        let mut actions = vec![0.0; n_batch * pop * h * na];
        for b in 0..n_batch {
            for c in 0..pop {
                for t in 0..h {
                    for a in 0..na {
                        let i = (b * h + t) * na + a;
                        let elem = ((c * h + t) * na + a) as u32;
                        let m = mean[i];
                        let x = match sampling {
                            Sampling::ClippedNormal => {
                                let w =
                                    rng::philox([elem, b as u32, call, rng::tag(purpose::SAMPLE, iteration, 0)], key);
                                m + var[i].sqrt() * rng::box_muller(w[0], w[1]).0
                            }
                            Sampling::TruncatedNormal => {
                                let lb = (m - lower[a]) / 2.0;
                                let ub = (upper[a] - m) / 2.0;
                                let v = (lb * lb).min(ub * ub).min(var[i]);
                                m + v.sqrt() * rng::truncated_normal(elem, b as u32, call, iteration, key)
                            }
                        };
                        actions[((b * pop + c) * h + t) * na + a] = x.clamp(lower[a], upper[a]);
                    }
                }
            }
        }
        actions
    }

    /// `particle_mean`: mean over particles, non-finite → [`super::NON_FINITE_RETURN`].
    pub fn particle_mean_f64(returns: &[f64], particles: usize) -> Vec<f64> {
        returns
            .chunks(particles)
            .map(|r| {
                let m = r.iter().sum::<f64>() / particles as f64;
                if m.is_finite() {
                    m
                } else {
                    super::NON_FINITE_RETURN as f64
                }
            })
            .collect()
    }

    /// `rank_elites`: the `n_elites` best candidates of each plan, best first, ties to the lower index.
    pub fn rank_elites_f64(cand_returns: &[f64], population: usize, n_elites: usize) -> Vec<u32> {
        let mut elites = Vec::new();
        for r in cand_returns.chunks(population) {
            let mut idx: Vec<usize> = (0..population).collect();
            idx.sort_by(|&x, &y| r[y].total_cmp(&r[x]).then(x.cmp(&y)));
            elites.extend(idx[..n_elites].iter().map(|&i| i as u32));
        }
        elites
    }

    /// `update_distribution`: blends mean and variance towards the elites' in place; returns
    /// (mean elite return, best return) per plan.
    pub fn update_distribution_f64(
        dims: CemDims,
        actions: &[f64],
        elites: &[u32],
        cand_returns: &[f64],
        alpha: f64,
        mean: &mut [f64],
        var: &mut [f64],
    ) -> Vec<(f64, f64)> {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let ne = elites.len() / n_batch;
        let mut stats = Vec::new();
        for b in 0..n_batch {
            let el = &elites[b * ne..(b + 1) * ne];
            for t in 0..h {
                for a in 0..na {
                    let xs: Vec<f64> = el.iter().map(|&c| actions[((b * pop + c as usize) * h + t) * na + a]).collect();
                    let em = xs.iter().sum::<f64>() / ne as f64;
                    let ev = xs.iter().map(|x| (x - em).powi(2)).sum::<f64>() / ne as f64;
                    let i = (b * h + t) * na + a;
                    mean[i] = alpha * mean[i] + (1.0 - alpha) * em;
                    var[i] = alpha * var[i] + (1.0 - alpha) * ev;
                }
            }
            let er: Vec<f64> = el.iter().map(|&c| cand_returns[b * pop + c as usize]).collect();
            stats.push((er.iter().sum::<f64>() / ne as f64, er[0]));
        }
        stats
    }

    /// `shift_solution` on any element type: each plan's sequence `[horizon, act_dim]` moved
    /// one step earlier, the last step set to `last` (`[act_dim]`, the middle of the bounds).
    /// The planner's host copy of the warm start uses this same function.
    pub fn shift_sequence<T: Copy>(mean: &[T], horizon: usize, last: &[T]) -> Vec<T> {
        let na = last.len();
        let mut out = mean.to_vec();
        for (i, v) in out.iter_mut().enumerate() {
            let (t, a) = ((i / na) % horizon, i % na);
            *v = if t + 1 < horizon { mean[i + na] } else { last[a] };
        }
        out
    }

    /// `shift_solution`: the mean shifted one step left, the last step at the middle of the bounds.
    pub fn shift_f64(mean: &[f64], horizon: usize, lower: &[f64], upper: &[f64]) -> Vec<f64> {
        let mid: Vec<f64> = lower.iter().zip(upper).map(|(l, u)| 0.5 * (l + u)).collect();
        shift_sequence(mean, horizon, &mid)
    }
}
