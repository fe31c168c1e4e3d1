//! f64 CPU reference of a whole CEM plan, composed from the kernels' references
//! (`kernels::cem::reference`, `kernels::rollout::reference`) in the order the planner records
//! the dispatches. Used by the tests and for debugging; slow by design.

use crate::kernels::cem::reference::{self as cem, CemDims};
use crate::kernels::rollout::reference::{self as rollout, RefTask, Stream};
use crate::model::Ensemble;

use super::CemConfig;

/// What the reference plan returns.
#[derive(Debug, Clone)]
pub struct RefPlan {
    /// Final mean sequence per plan, `[n_batch, horizon, act_dim]`.
    pub mean: Vec<f64>,
    /// Elite indices of every iteration: `elites[iteration][b · n_elites + rank]`.
    pub elites: Vec<Vec<u32>>,
    /// Candidate returns of every iteration, `[iteration][b · population + c]`.
    pub returns: Vec<Vec<f64>>,
    /// (mean elite return, best return) per plan, last iteration.
    pub stats: Vec<(f64, f64)>,
}

/// Runs one plan on the CPU. `mean` is the starting mean `[n_batch, horizon, act_dim]`;
/// `ensemble` None means analytic dynamics (one particle).
#[allow(clippy::too_many_arguments)]
pub fn plan_f64(
    task: RefTask,
    ensemble: Option<&Ensemble>,
    cfg: &CemConfig,
    lower: &[f64],
    upper: &[f64],
    obs: &[Vec<f64>],
    mean: &[f64],
    call: u32,
) -> RefPlan {
    let dims = CemDims { n_batch: obs.len(), population: cfg.population, horizon: cfg.horizon, act_dim: lower.len() };
    let (h, na, pop) = (dims.horizon, dims.act_dim, dims.population);
    let particles = if ensemble.is_some() { cfg.particles } else { 1 };
    let mut mu = mean.to_vec();
    let mut var: Vec<f64> =
        (0..dims.n_batch * h).flat_map(|_| (0..na).map(|a| (upper[a] - lower[a]).powi(2) / 16.0)).collect();
    let mut out = RefPlan { mean: Vec::new(), elites: Vec::new(), returns: Vec::new(), stats: Vec::new() };
    for it in 0..cfg.iterations as u32 {
        let actions = cem::sample_candidates_f64(dims, &mu, &var, lower, upper, cfg.sampling, cfg.seed, call, it);
        let mut cand = Vec::with_capacity(dims.n_batch * pop);
        for (b, o) in obs.iter().enumerate() {
            let acts = &actions[b * pop * h * na..(b + 1) * pop * h * na];
            let returns = match ensemble {
                None => rollout::analytic_returns_f64(task, o, acts, h, na),
                Some(ens) => {
                    let stream = Stream { b: b as u32, call, iteration: it, seed: cfg.seed };
                    rollout::ensemble_returns_f64(task, ens, o, acts, h, particles, cfg.propagation, stream)
                }
            };
            cand.extend(cem::particle_mean_f64(&returns, particles));
        }
        let elites = cem::rank_elites_f64(&cand, pop, cfg.n_elites());
        out.stats = cem::update_distribution_f64(dims, &actions, &elites, &cand, cfg.alpha, &mut mu, &mut var);
        out.elites.push(elites);
        out.returns.push(cand);
    }
    out.mean = mu;
    out
}
