//! Rollout kernels (`shaders/rollout.wgsl`, `shaders/analytic.wgsl`) and the environments'
//! WGSL functions. The pipelines are built by the planner; this module keeps the f64 CPU
//! reference.

/// f64 CPU reference of `rollout.wgsl`, `analytic.wgsl` and the `env_*.wgsl` functions.
pub mod reference {
    use crate::env::{Cartpole, Quadratic};
    use crate::kernels::{purpose, rng};
    use crate::model::{Ensemble, Prediction};
    use crate::planner::Propagation;

    /// The environment functions of a task in f64 (twins of `shaders/env_*.wgsl`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RefTask {
        /// env_cartpole.wgsl
        Cartpole,
        /// env_pendulum.wgsl
        Pendulum,
        /// env_quadratic.wgsl
        Quadratic,
    }

    impl RefTask {
        /// `env_step`.
        pub fn step(self, s: &[f64], a: &[f64]) -> Vec<f64> {
            match self {
                RefTask::Cartpole => Cartpole::dynamics(s, a[0]).to_vec(),
                RefTask::Pendulum => {
                    let u = a[0].clamp(-2.0, 2.0);
                    let th = s[1].atan2(s[0]);
                    let thdot = (s[2] + (15.0 * th.sin() + 3.0 * u) * 0.05).clamp(-8.0, 8.0);
                    let nth = th + thdot * 0.05;
                    vec![nth.cos(), nth.sin(), thdot]
                }
                RefTask::Quadratic => Quadratic::dynamics(s, a),
            }
        }

        /// `env_terminated`.
        pub fn terminated(self, _a: &[f64], next: &[f64]) -> bool {
            match self {
                RefTask::Cartpole => Cartpole::terminated(next),
                _ => false,
            }
        }

        /// `env_reward`.
        pub fn reward(self, s: &[f64], a: &[f64], next: &[f64]) -> f64 {
            match self {
                RefTask::Cartpole => {
                    if Cartpole::terminated(next) {
                        0.0
                    } else {
                        1.0
                    }
                }
                RefTask::Pendulum => {
                    let th = s[1].atan2(s[0]);
                    let u = a[0].clamp(-2.0, 2.0);
                    -(th * th + 0.1 * s[2] * s[2] + 0.001 * u * u)
                }
                RefTask::Quadratic => Quadratic::reward(a, next),
            }
        }
    }

    /// `rollout_analytic`: the return of each candidate sequence from `obs` (one particle).
    /// `actions` is `[population, horizon, act_dim]` for this plan.
    pub fn analytic_returns_f64(
        task: RefTask,
        obs: &[f64],
        actions: &[f64],
        horizon: usize,
        act_dim: usize,
    ) -> Vec<f64> {
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

    /// Member evaluating local particle `j` of plan `b` at step `t` (`prepare_inputs`).
    #[allow(clippy::too_many_arguments)]
    pub fn member_of(
        j: u32,
        pk: u32,
        n_members: u32,
        b: u32,
        call: u32,
        iteration: u32,
        t: u32,
        propagation: Propagation,
        seed: u64,
    ) -> u32 {
        let sub = if propagation == Propagation::Tsinf { 0xffff } else { t };
        let ctr_hi = [b, call, rng::tag(purpose::PERMUTE, iteration, sub)];
        let ls = rng::permute_index(j, pk, rng::feistel_half_bits(pk), ctr_hi, rng::key_of(seed));
        ls * n_members / pk
    }

    /// Random stream position of one rollout (plan `b`, call, iteration, seed).
    #[derive(Debug, Clone, Copy)]
    pub struct Stream {
        /// Plan index in the batch.
        pub b: u32,
        /// Plan call counter.
        pub call: u32,
        /// CEM iteration.
        pub iteration: u32,
        /// Planner seed.
        pub seed: u64,
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
                    let m = member_of(j as u32, pk as u32, e as u32, b, call, iteration, t as u32, propagation, seed);
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
}
