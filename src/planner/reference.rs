//! f64 CPU references of whole rollouts and of a whole CEM plan, composed from the kernels'
//! references (`kernels::cem::reference`, `kernels::rollout::reference`), the environments'
//! twins (`env::reference`) and the model's f64 forward pass, in the order the planner records
//! the dispatches. Used by the tests and for debugging; slow by design.

use crate::env::reference::RefTask;
use crate::kernels::cem::reference::{self as cem, CemDims};
use crate::kernels::rollout::reference::{self as rollout, Stream};
use crate::kernels::{purpose, rng};
use crate::model::{Ensemble, Prediction};

use super::{PlannerConfig, PlannerKind, Propagation};

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

/// `begin_rollout`, then `horizon` × (ensemble, `propagate`): the return of
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
    /// Elite indices of every iteration: `elites[iteration][b · n_elites + rank]` (empty for MPPI).
    pub elites: Vec<Vec<u32>>,
    /// Candidate returns of every iteration, `[iteration][b · population + c]`.
    pub returns: Vec<Vec<f64>>,
    /// (mean elite return, best return) per plan, last iteration (MPPI: weighted mean return).
    pub stats: Vec<(f64, f64)>,
    /// iCEM: the elites' sequences after the last iteration, `[n_batch, n_elites, horizon, act_dim]`.
    pub archive: Option<Vec<f64>>,
}

/// What a plan inherits from the plan before it besides the warm-start mean.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// MPPI: each plan's previous first action, `[n_batch, act_dim]` (default: middle of the bounds).
    pub past: Option<Vec<f64>>,
    /// iCEM: the previous plan's elite archive.
    pub archive: Option<Vec<f64>>,
}

/// Runs one plan on the CPU. `mean` is the starting mean `[n_batch, horizon, act_dim]`;
/// `ensemble` None means analytic dynamics (one particle).
#[allow(clippy::too_many_arguments)]
pub fn plan_f64(
    task: RefTask,
    ensemble: Option<&Ensemble>,
    cfg: &PlannerConfig,
    lower: &[f64],
    upper: &[f64],
    obs: &[Vec<f64>],
    mean: &[f64],
    call: u32,
) -> RefPlan {
    plan_f64_after(task, ensemble, cfg, lower, upper, obs, mean, call, &Prior::default())
}

/// [`plan_f64`] for a plan that follows another (`prior`), for every planner kind: per
/// iteration, as the planner records it, the kind's sampling, the rollout of every candidate and
/// the update of the distribution.
#[allow(clippy::too_many_arguments)]
pub fn plan_f64_after(
    task: RefTask,
    ensemble: Option<&Ensemble>,
    cfg: &PlannerConfig,
    lower: &[f64],
    upper: &[f64],
    obs: &[Vec<f64>],
    mean: &[f64],
    call: u32,
    prior: &Prior,
) -> RefPlan {
    let (n_batch, h, na) = (obs.len(), cfg.horizon, lower.len());
    let problem = Problem { task, ensemble, cfg, lower, upper, call };
    let mut search = Search::start(cfg, lower, upper, mean, n_batch, prior);
    let mut out =
        RefPlan { mean: Vec::new(), elites: Vec::new(), returns: Vec::new(), stats: Vec::new(), archive: None };
    for it in 0..cfg.effective_iterations() {
        let shape = cfg.iteration_shape(it, prior.archive.is_some());
        let dims = CemDims { n_batch, population: shape.0 + shape.1, horizon: h, act_dim: na };
        let actions = problem.sample(&search, dims, shape, it as u32);
        let cand = problem.rollout(obs, &actions, dims, it as u32);
        problem.update(&mut search, &mut out, dims, &actions, cand);
    }
    out.mean = search.mu;
    out.archive = search.archive;
    out
}

/// What a reference plan plans with: the task, its model (none: known dynamics), the
/// configuration, the bounds and the call's index in the random stream.
struct Problem<'a> {
    task: RefTask,
    ensemble: Option<&'a Ensemble>,
    cfg: &'a PlannerConfig,
    lower: &'a [f64],
    upper: &'a [f64],
    call: u32,
}

/// The optimiser's state between iterations: the mean and variance of the sampling
/// distribution, each plan's previous first action (MPPI) and the elites' sequences (iCEM).
struct Search {
    mu: Vec<f64>,
    var: Vec<f64>,
    past: Vec<f64>,
    archive: Option<Vec<f64>>,
}

impl Search {
    /// The state a plan starts from: `mean`, the initial variance (range² / 16) and `prior`'s
    /// previous actions (default: the middle of the bounds) and archive.
    fn start(cfg: &PlannerConfig, lower: &[f64], upper: &[f64], mean: &[f64], n_batch: usize, prior: &Prior) -> Self {
        let (h, na) = (cfg.horizon, lower.len());
        let var: Vec<f64> =
            (0..n_batch * h).flat_map(|_| (0..na).map(|a| (upper[a] - lower[a]).powi(2) / 16.0)).collect();
        let mid: Vec<f64> = lower.iter().zip(upper).map(|(l, u)| 0.5 * (l + u)).collect();
        let past = prior.past.clone().unwrap_or_else(|| mid.repeat(n_batch));
        Self { mu: mean.to_vec(), var, past, archive: prior.archive.clone() }
    }
}

impl Problem<'_> {
    /// The kind's sampling of iteration `it`: every candidate's sequence, `[n_batch,
    /// population, horizon, act_dim]` (`shape`: sampled candidates, iCEM's extras and their
    /// kind's flag).
    fn sample(&self, search: &Search, dims: CemDims, shape: (usize, usize, u32), it: u32) -> Vec<f64> {
        let (cfg, lower, upper, call) = (self.cfg, self.lower, self.upper, self.call);
        let (sampled, extras, flag) = shape;
        let (mu, var) = (&search.mu, &search.var);
        match cfg.kind {
            PlannerKind::Cem => {
                cem::sample_candidates_f64(dims, mu, var, lower, upper, cfg.sampling, cfg.seed, call, it)
            }
            PlannerKind::RandomShooting => cem::sample_uniform_f64(dims, lower, upper, cfg.seed, call, it),
            PlannerKind::Mppi => {
                let p = cem::MppiParams { sigma: cfg.sigma, gamma: cfg.gamma, beta: cfg.beta };
                cem::mppi_sample_f64(dims, mu, lower, upper, &search.past, p, cfg.seed, call, it)
            }
            PlannerKind::Icem => {
                let CemDims { n_batch, population, horizon, act_dim } = dims;
                let mut actions = vec![0.0; n_batch * population * horizon * act_dim];
                let (beta, seed) = (cfg.noise_beta, cfg.seed);
                cem::icem_sample_f64(dims, sampled, mu, var, lower, upper, beta, seed, call, it, &mut actions);
                if extras > 0 {
                    let kind = match flag {
                        crate::kernels::FLAG_EXTRAS_SHIFTED => cem::Extras::Shifted,
                        crate::kernels::FLAG_EXTRAS_KEPT => cem::Extras::Kept,
                        _ => cem::Extras::Mean,
                    };
                    let arch = search.archive.as_deref().unwrap_or(&[]);
                    let ne = cfg.n_elites();
                    cem::icem_extras_f64(
                        dims,
                        sampled,
                        extras,
                        kind,
                        arch,
                        ne,
                        mu,
                        var,
                        lower,
                        upper,
                        seed,
                        call,
                        it,
                        &mut actions,
                    );
                }
                actions
            }
        }
    }

    /// The rollout of iteration `it`: every candidate's return averaged over its particles,
    /// `[n_batch · population]`.
    fn rollout(&self, obs: &[Vec<f64>], actions: &[f64], dims: CemDims, it: u32) -> Vec<f64> {
        let CemDims { n_batch, population: pop, horizon: h, act_dim: na } = dims;
        let cfg = self.cfg;
        let particles = if self.ensemble.is_some() { cfg.particles } else { 1 };
        let mut cand = Vec::with_capacity(n_batch * pop);
        for (b, o) in obs.iter().enumerate() {
            let acts = &actions[b * pop * h * na..(b + 1) * pop * h * na];
            let returns = match self.ensemble {
                None => analytic_returns_f64(self.task, o, acts, h, na),
                Some(ens) => {
                    let stream = Stream { b: b as u32, call: self.call, iteration: it, seed: cfg.seed };
                    ensemble_returns_f64(self.task, ens, o, acts, h, particles, cfg.propagation, stream)
                }
            };
            cand.extend(cem::particle_mean_f64(&returns, particles));
        }
        cand
    }

    /// The update from the candidates' returns `cand`: MPPI's weighted mean, or the elites'
    /// mean and variance (and iCEM's archive); records the iteration in `out`.
    fn update(&self, search: &mut Search, out: &mut RefPlan, dims: CemDims, actions: &[f64], cand: Vec<f64>) {
        let cfg = self.cfg;
        if cfg.kind == PlannerKind::Mppi {
            let (m, stats) = cem::mppi_update_f64(dims, actions, &cand, cfg.gamma);
            search.mu = m;
            out.stats = stats;
            out.elites.push(Vec::new());
        } else {
            let elites = cem::rank_elites_f64(&cand, dims.population, cfg.n_elites());
            let alpha = if cfg.kind == PlannerKind::RandomShooting { 0.0 } else { cfg.alpha };
            out.stats =
                cem::update_distribution_f64(dims, actions, &elites, &cand, alpha, &mut search.mu, &mut search.var);
            if cfg.kind == PlannerKind::Icem {
                search.archive = Some(cem::icem_archive_f64(dims, actions, &elites));
            }
            out.elites.push(elites);
        }
        out.returns.push(cand);
    }
}
