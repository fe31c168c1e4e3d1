//! CEM kernels (`shaders/cem.wgsl`): candidate sampling, the particle mean of returns, elite
//! ranking, the distribution update and the warm-start shift. [`CemKernels`] owns the
//! pipelines and builds the family's bind group; the f64 reference of each entry point is in
//! [`reference`].

use serde::{Deserialize, Serialize};

use super::family::{FamilyDecl, Part};
use super::{Family, PlanLayouts, CEM_WGSL, COMMON_WGSL, WG_SIZE_OVERRIDE};
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

/// `cem.wgsl`: sampling and the distribution updates of CEM, random shooting, MPPI and iCEM.
pub const FAMILY: FamilyDecl = FamilyDecl::portable(
    "cem",
    &[Part::Wgsl(COMMON_WGSL), Part::Wgsl(CEM_WGSL)],
    &[
        "sample_candidates",
        "particle_mean",
        "rank_elites",
        "update_distribution",
        "shift_solution",
        "mppi_sample",
        "mppi_update",
        "icem_sample",
        "icem_extras",
        "icem_save_elites",
    ],
);

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
    /// `mppi_sample`: one invocation per (candidate, action dimension).
    pub mppi_sample: wgpu::ComputePipeline,
    /// `mppi_update`: one invocation per plan value.
    pub mppi_update: wgpu::ComputePipeline,
    /// `icem_sample`: one invocation per (sampled candidate, action dimension).
    pub icem_sample: wgpu::ComputePipeline,
    /// `icem_extras`: one invocation per extra candidate value.
    pub icem_extras: wgpu::ComputePipeline,
    /// `icem_save_elites`: one invocation per archived value.
    pub icem_save_elites: wgpu::ComputePipeline,
}

impl CemKernels {
    /// Builds (or takes from the context's cache) the pipelines.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let layouts = PlanLayouts::new(ctx)?;
        let pipe =
            |entry: &str| Family::Cem.pipeline(ctx, None, entry, &[&layouts.params, &layouts.cem], WG_SIZE_OVERRIDE);
        Ok(Self {
            sample: pipe("sample_candidates")?,
            particle_mean: pipe("particle_mean")?,
            rank: pipe("rank_elites")?,
            update: pipe("update_distribution")?,
            shift: pipe("shift_solution")?,
            mppi_sample: pipe("mppi_sample")?,
            mppi_update: pipe("mppi_update")?,
            icem_sample: pipe("icem_sample")?,
            icem_extras: pipe("icem_extras")?,
            icem_save_elites: pipe("icem_save_elites")?,
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
        let (h, na) = (dims.horizon, dims.act_dim);
        let key = rng::key_of(seed);
        per_candidate_step(dims, |b, c, t, a| {
            let i = (b * h + t) * na + a;
            let elem = ((c * h + t) * na + a) as u32;
            let m = mean[i];
            let x = match sampling {
                Sampling::ClippedNormal => {
                    let w = sample_word(elem, b, call, iteration, key);
                    m + var[i].sqrt() * rng::box_muller(w[0], w[1]).0
                }
                Sampling::TruncatedNormal => {
                    let lb = (m - lower[a]) / 2.0;
                    let ub = (upper[a] - m) / 2.0;
                    let v = (lb * lb).min(ub * ub).min(var[i]);
                    m + v.sqrt() * rng::truncated_normal(elem, b as u32, call, iteration, key)
                }
            };
            x.clamp(lower[a], upper[a])
        })
    }

    /// `[n_batch · population, horizon, act_dim]` with element `(b, c, t, a)` from `f`.
    fn per_candidate_step(dims: CemDims, mut f: impl FnMut(usize, usize, usize, usize) -> f64) -> Vec<f64> {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let mut actions = Vec::with_capacity(n_batch * pop * h * na);
        for b in 0..n_batch {
            for c in 0..pop {
                for t in 0..h {
                    for a in 0..na {
                        actions.push(f(b, c, t, a));
                    }
                }
            }
        }
        actions
    }

    /// The Philox block of `sample_candidates` for element `elem` of plan `b`.
    fn sample_word(elem: u32, b: usize, call: u32, iteration: u32, key: [u32; 2]) -> [u32; 4] {
        rng::philox([elem, b as u32, call, rng::tag(purpose::SAMPLE, iteration, 0)], key)
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

    /// `sample_candidates` with `FLAG_UNIFORM` (random shooting): `lo + (hi − lo)·u`.
    pub fn sample_uniform_f64(
        dims: CemDims,
        lower: &[f64],
        upper: &[f64],
        seed: u64,
        call: u32,
        iteration: u32,
    ) -> Vec<f64> {
        let (h, na) = (dims.horizon, dims.act_dim);
        let key = rng::key_of(seed);
        per_candidate_step(dims, |b, c, t, a| {
            let w = sample_word(((c * h + t) * na + a) as u32, b, call, iteration, key);
            lower[a] + (upper[a] - lower[a]) * rng::u01(w[0])
        })
    }

    /// MPPI's settings.
    #[derive(Debug, Clone, Copy)]
    pub struct MppiParams {
        /// Noise scale σ.
        pub sigma: f64,
        /// Reward scaling γ.
        pub gamma: f64,
        /// Smoothing β across time.
        pub beta: f64,
    }

    /// `mppi_sample`: `[n_batch · population, horizon, act_dim]`; `past` is `[n_batch, act_dim]`.
    #[allow(clippy::too_many_arguments)]
    pub fn mppi_sample_f64(
        dims: CemDims,
        mean: &[f64],
        lower: &[f64],
        upper: &[f64],
        past: &[f64],
        p: MppiParams,
        seed: u64,
        call: u32,
        iteration: u32,
    ) -> Vec<f64> {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let key = rng::key_of(seed);
        let mut actions = vec![0.0; n_batch * pop * h * na];
        for b in 0..n_batch {
            for c in 0..pop {
                for a in 0..na {
                    let mut prev = past[b * na + a];
                    for t in 0..h {
                        let mu = mean[(b * h + t) * na + a];
                        let (lb, ub) = ((mu - lower[a]) / 2.0, (upper[a] - mu) / 2.0);
                        let v = (lb * lb).min(ub * ub).min(p.sigma * p.sigma);
                        let elem = ((c * h + t) * na + a) as u32;
                        let z = rng::truncated_normal(elem, b as u32, call, iteration, key);
                        let x = p.beta * (mu + v.sqrt() * z) + (1.0 - p.beta) * prev;
                        actions[((b * pop + c) * h + t) * na + a] = x.clamp(lower[a], upper[a]);
                        prev = x;
                    }
                }
            }
        }
        actions
    }

    /// `mppi_update`: the new mean (returned) and (weighted mean return, best return) per plan.
    pub fn mppi_update_f64(
        dims: CemDims,
        actions: &[f64],
        cand_returns: &[f64],
        gamma: f64,
    ) -> (Vec<f64>, Vec<(f64, f64)>) {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let mut mean = vec![0.0; n_batch * h * na];
        let mut stats = Vec::new();
        for b in 0..n_batch {
            let r = &cand_returns[b * pop..(b + 1) * pop];
            let best = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = r.iter().map(|x| (gamma * (x - best)).exp()).collect();
            let wsum: f64 = w.iter().sum();
            for t in 0..h {
                for a in 0..na {
                    let x: f64 = (0..pop).map(|c| w[c] * actions[((b * pop + c) * h + t) * na + a]).sum();
                    mean[(b * h + t) * na + a] = x / (wsum + 1e-10);
                }
            }
            let rsum: f64 = w.iter().zip(r).map(|(w, x)| w * x).sum();
            stats.push((rsum / (wsum + 1e-10), best));
        }
        (mean, stats)
    }

    /// One coloured-noise sequence of `h` values for sequence index `seq` (= `c · act_dim + a`) of
    /// plan `b`: a Gaussian spectrum scaled by `max(f, 1/h)^(−noise_beta/2)`, inverse real DFT,
    /// divided by its expected standard deviation (colorednoise.powerlaw_psd_gaussian).
    pub fn colored_noise_f64(
        h: usize,
        noise_beta: f64,
        seq: u32,
        b: u32,
        call: u32,
        iteration: u32,
        key: [u32; 2],
    ) -> Vec<f64> {
        let nf = h / 2 + 1;
        let even = h.is_multiple_of(2);
        let scale = |k: usize| (k as f64 / h as f64).max(1.0 / h as f64).powf(-noise_beta / 2.0);
        let norm: f64 = (1..nf)
            .map(|k| {
                let w = if k == nf - 1 && even { scale(k) * 0.5 } else { scale(k) };
                w * w
            })
            .sum();
        let sigma = 2.0 * norm.sqrt() / h as f64;
        let spectrum: Vec<(f64, f64, bool)> = (0..nf)
            .map(|k| {
                let w =
                    rng::philox([seq * nf as u32 + k as u32, b, call, rng::tag(purpose::SAMPLE, iteration, 0)], key);
                let (z0, z1) = rng::box_muller(w[0], w[1]);
                let real_bin = k == 0 || (even && k == nf - 1);
                if real_bin {
                    (scale(k) * z0 * std::f64::consts::SQRT_2, 0.0, true)
                } else {
                    (scale(k) * z0, scale(k) * z1, false)
                }
            })
            .collect();
        (0..h)
            .map(|t| {
                let y: f64 = spectrum
                    .iter()
                    .enumerate()
                    .map(|(k, (re, im, real_bin))| {
                        let angle = std::f64::consts::TAU * ((k * t) % h) as f64 / h as f64;
                        let term = re * angle.cos() - im * angle.sin();
                        if *real_bin {
                            term
                        } else {
                            2.0 * term
                        }
                    })
                    .sum::<f64>()
                    / h as f64;
                if h > 1 {
                    y / sigma
                } else {
                    y / std::f64::consts::SQRT_2
                }
            })
            .collect()
    }

    /// `icem_sample`: candidates `0..sampled` of each plan, written into `actions`
    /// (`[n_batch · population, horizon, act_dim]`, population = sampled + extras).
    #[allow(clippy::too_many_arguments)]
    pub fn icem_sample_f64(
        dims: CemDims,
        sampled: usize,
        mean: &[f64],
        var: &[f64],
        lower: &[f64],
        upper: &[f64],
        noise_beta: f64,
        seed: u64,
        call: u32,
        iteration: u32,
        actions: &mut [f64],
    ) {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let key = rng::key_of(seed);
        for b in 0..n_batch {
            for c in 0..sampled {
                for a in 0..na {
                    let y = colored_noise_f64(h, noise_beta, (c * na + a) as u32, b as u32, call, iteration, key);
                    for t in 0..h {
                        let j = (b * h + t) * na + a;
                        actions[((b * pop + c) * h + t) * na + a] =
                            (y[t] * var[j].sqrt() + mean[j]).clamp(lower[a], upper[a]);
                    }
                }
            }
        }
    }

    /// What iCEM appends after the sampled candidates of an iteration.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Extras {
        /// Archived elites (of the previous plan) shifted one step, a new last action drawn.
        Shifted,
        /// Archived elites (of the previous iteration) as they are.
        Kept,
        /// The current mean.
        Mean,
    }

    /// `icem_extras`: candidates `sampled..sampled + keep` of each plan from the archive
    /// (`[n_batch, n_elites, horizon, act_dim]`) or the mean.
    #[allow(clippy::too_many_arguments)]
    pub fn icem_extras_f64(
        dims: CemDims,
        sampled: usize,
        keep: usize,
        kind: Extras,
        archive: &[f64],
        n_elites: usize,
        mean: &[f64],
        var: &[f64],
        lower: &[f64],
        upper: &[f64],
        seed: u64,
        call: u32,
        iteration: u32,
        actions: &mut [f64],
    ) {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let key = rng::key_of(seed);
        for b in 0..n_batch {
            for e in 0..keep {
                let src = rng::permute_index(
                    e as u32,
                    n_elites as u32,
                    rng::feistel_half_bits(n_elites as u32),
                    [b as u32, call, rng::tag(purpose::ELITE, iteration, 0)],
                    key,
                ) as usize;
                let row = (b * n_elites + src) * h * na;
                for t in 0..h {
                    for a in 0..na {
                        let v = match kind {
                            Extras::Mean => mean[(b * h + t) * na + a],
                            Extras::Kept => archive[row + t * na + a],
                            Extras::Shifted if t + 1 < h => archive[row + (t + 1) * na + a],
                            Extras::Shifted => {
                                let j = (b * h + h - 1) * na + a;
                                let w = rng::philox(
                                    [(e * na + a) as u32, b as u32, call, rng::tag(purpose::ELITE, iteration, 1)],
                                    key,
                                );
                                (mean[j] + var[j].sqrt() * rng::box_muller(w[0], w[1]).0).clamp(lower[a], upper[a])
                            }
                        };
                        actions[((b * pop + sampled + e) * h + t) * na + a] = v;
                    }
                }
            }
        }
    }

    /// `icem_save_elites`: the elites' sequences, `[n_batch, n_elites, horizon, act_dim]`.
    pub fn icem_archive_f64(dims: CemDims, actions: &[f64], elites: &[u32]) -> Vec<f64> {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let ne = elites.len() / n_batch;
        let mut out = Vec::with_capacity(n_batch * ne * h * na);
        for b in 0..n_batch {
            for e in 0..ne {
                let c = elites[b * ne + e] as usize;
                out.extend_from_slice(&actions[(b * pop + c) * h * na..(b * pop + c + 1) * h * na]);
            }
        }
        out
    }
}
