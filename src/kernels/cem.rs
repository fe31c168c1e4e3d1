//! CEM kernels (`shaders/cem.wgsl`). The pipelines are built by the planner, which owns the
//! workspace; this module keeps the f64 CPU reference of each entry point.

use serde::{Deserialize, Serialize};

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

    /// `particle_mean`: mean over particles, non-finite → −1e30.
    pub fn particle_mean_f64(returns: &[f64], particles: usize) -> Vec<f64> {
        returns
            .chunks(particles)
            .map(|r| {
                let m = r.iter().sum::<f64>() / particles as f64;
                if m.is_finite() {
                    m
                } else {
                    -1e30
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

    /// `shift_solution`: the mean shifted one step left, the last step at the middle of the bounds.
    pub fn shift_f64(mean: &[f64], horizon: usize, lower: &[f64], upper: &[f64]) -> Vec<f64> {
        let na = lower.len();
        let mut out = mean.to_vec();
        for b in 0..mean.len() / (horizon * na) {
            for t in 0..horizon {
                for a in 0..na {
                    let i = (b * horizon + t) * na + a;
                    out[i] = if t + 1 < horizon { mean[i + na] } else { 0.5 * (lower[a] + upper[a]) };
                }
            }
        }
        out
    }
}
