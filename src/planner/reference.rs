//! f64 CPU references of whole rollouts and of a whole CEM plan, composed from the kernels'
//! references (`kernels::cem::reference`, `kernels::rollout::reference`), the environments'
//! twins (`env::reference`) and the model's f64 forward pass, in the order the planner records
//! the dispatches. Used by the tests and for debugging; slow by design.

use crate::env::reference::RefTask;
use crate::kernels::cem::reference::{self as cem, CemDims};
use crate::kernels::rollout::reference::{self as rollout, Stream};
use crate::kernels::{purpose, rng};
use crate::model::{Ensemble, Prediction};

use super::{CemConfig, Propagation};

/// `rollout_analytic`: the return of each candidate sequence from `obs` (one particle).
/// `actions` is `[population, horizon, act_dim]` for this plan.
pub fn analytic_returns_f64(task: RefTask, obs: &[f64], actions: &[f64], horizon: usize, act_dim: usize) -> Vec<f64> {
    actions
        .chunks(horizon * act_dim)
        .map(|seq| {
            let mut s = obs.to_vec();
            let (mut ret, mut alive) = (0.0, 1.0);
            for a in seq.chunks(act_dim) {
                let next = task.step(&s, a);
                ret += alive * task.reward(&s, a, &next);
                if task.terminated(a, &next) {
                    alive = 0.0;
                }
                s = next;
            }
            ret
        })
        .collect()
}

/// `init_particles` + `horizon` × (`prepare_inputs`, ensemble, `propagate`): the return of
/// every particle (`[population · particles]`) of one plan.
#[allow(clippy::too_many_arguments)]
pub fn ensemble_returns_f64(
    task: RefTask,
    ens: &Ensemble,
    obs: &[f64],
    actions: &[f64],
    horizon: usize,
    particles: usize,
    propagation: Propagation,
    stream: Stream,
) -> Vec<f64> {
    let Stream { b, call, iteration, seed } = stream;
    let key = rng::key_of(seed);
    let na = ens.spec.act_dim;
    let d = ens.spec.obs_dim;
    let e = ens.spec.n_members;
    let mo = ens.spec.model_out();
    let pop = actions.len() / (horizon * na);
    let pk = pop * particles;
    let mut states = vec![obs.to_vec(); pk];
    let mut alive = vec![1.0; pk];
    let mut ret = vec![0.0; pk];
    for t in 0..horizon {
        for j in 0..pk {
            let c = j / particles;
            let a = &actions[(c * horizon + t) * na..(c * horizon + t + 1) * na];
            let x: Vec<f64> = states[j].iter().chain(a.iter()).copied().collect();
            let Prediction { mean, logvar } = if propagation == Propagation::Expectation {
                let preds: Vec<Prediction> = (0..e).map(|m| ens.predict_f64(m, &x)).collect();
                let avg = |v: Vec<&Vec<f64>>| -> Vec<f64> {
                    (0..v[0].len()).map(|q| v.iter().map(|p| p[q]).sum::<f64>() / e as f64).collect()
                };
                Prediction {
                    mean: avg(preds.iter().map(|p| &p.mean).collect()),
                    logvar: avg(preds.iter().map(|p| &p.logvar).collect()),
                }
            } else {
                let m =
                    rollout::member_of(j as u32, pk as u32, e as u32, b, call, iteration, t as u32, propagation, seed);
                ens.predict_f64(m as usize, &x)
            };
            let pred: Vec<f64> = (0..mo)
                .map(|q| {
                    if ens.spec.probabilistic {
                        let ctr = [(j * mo + q) as u32, b, call, rng::tag(purpose::NOISE, iteration, t as u32)];
                        let w = rng::philox(ctr, key);
                        mean[q] + (0.5 * logvar[q]).exp() * rng::box_muller(w[0], w[1]).0
                    } else {
                        mean[q]
                    }
                })
                .collect();
            let next: Vec<f64> = (0..d).map(|q| states[j][q] + pred[q]).collect();
            let r = if ens.spec.learned_reward { pred[d] } else { task.reward(&states[j], a, &next) };
            ret[j] += alive[j] * r;
            if task.terminated(a, &next) {
                alive[j] = 0.0;
            }
            states[j] = next;
        }
    }
    ret
}

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
                None => analytic_returns_f64(task, o, acts, h, na),
                Some(ens) => {
                    let stream = Stream { b: b as u32, call, iteration: it, seed: cfg.seed };
                    ensemble_returns_f64(task, ens, o, acts, h, particles, cfg.propagation, stream)
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
