//! `mbpo.rollout`: MBPO's rollout batches on the device (`mbpo::rollout`: start states drawn
//! from the real ring, the actor's sampled actions, every member's prediction through
//! `mlp.wgsl`, the elite drawn per rollout and step, the sampled next state, the task's reward
//! and termination or the learned reward, the FIFO placement of the live transitions) against
//! the f64 reference (`mbpo::reference::rollouts_f64`).
//!
//! Each case runs two batches into one model ring: the first fills part of it, the second
//! (other draws, other length) wraps it, so that the oldest rows are overwritten and the head
//! and fill wrap. The rollouts run in passes smaller than the batch where the case says so.
//! Compared: the ring's state (head, fill, transitions written) exactly, every row of the ring,
//! and every row's termination flag exactly.
//!
//! Tolerances: the rows 1e-4 + 1e-4·|x| (`ROW_TOL`: f32 networks, the normaliser, the
//! log-variance clamp and Box–Muller noise, carried over up to four steps).

use crate::env::reference::RefTask;
use crate::env::{EnvKind, Task};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::family::TaskWgsl;
use crate::kernels::mlp::Activation;
use crate::kernels::net::NetLayout;
use crate::mbpo::reference::{rollouts_f64, Ring, RolloutInputs};
use crate::mbpo::rollout::{RingState, RolloutDevice, RolloutShapes};
use crate::model::{Ensemble, EnsembleSpec};
use crate::sac::device::{SacDevice, SacParamsF32, SacShapes, UpdateSettings};
use crate::sac::reference::{self as r, ActionScale, HiddenActivation, Mlp};
use crate::verify::compare::{compare, compare_exact, f32s, seeded, Comparison};
use crate::verify::{case, Case, Family, Tol};

/// A ring row: f32 networks and sampling carried over up to four steps.
const ROW_TOL: Tol = Tol { rel: 1e-4, abs: 1e-4 };

/// One case's sizes and settings.
#[derive(Debug, Clone)]
struct Dims {
    task: RefTask,
    members: usize,
    elites: Vec<usize>,
    hidden: Vec<usize>,
    probabilistic: bool,
    learned_reward: bool,
    n_rollouts: usize,
    rows: usize,
    /// The two batches' lengths.
    lengths: [usize; 2],
    capacity: usize,
}

impl Dims {
    fn task(&self) -> Task {
        match self.task {
            RefTask::Cartpole => EnvKind::Cartpole.task(),
            RefTask::Pendulum => EnvKind::Pendulum.task(),
            RefTask::Quadratic => Task::quadratic(17, 6),
        }
    }

    fn name(&self) -> String {
        let t = self.task();
        let hidden = self.hidden.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("×");
        let model = match (self.probabilistic, self.learned_reward) {
            (true, false) => "Gaussian, task reward",
            (true, true) => "Gaussian, learned reward",
            (false, true) => "deterministic, learned reward",
            (false, false) => "deterministic, task reward",
        };
        format!(
            "{}: {} rollouts in passes of {}, {}+{} steps, {} members × {hidden} ({model}), elites {:?}, ring {}",
            t.name,
            self.n_rollouts,
            self.rows,
            self.lengths[0],
            self.lengths[1],
            self.members,
            self.elites,
            self.capacity
        )
    }
}

/// The cases: cartpole (terminations, passes of a ragged size, a wrapping ring) and the
/// pendulum (a deterministic model, the task's reward on the state before the step) always; in
/// full, the HalfCheetah sizes (obs 17, act 6, 7 × 4×200, 5 elites, a learned reward) on the
/// quadratic task.
pub(in crate::verify) fn cases(quick: bool) -> Vec<Case> {
    let mut v = vec![
        Dims {
            task: RefTask::Cartpole,
            members: 3,
            elites: vec![2, 0],
            hidden: vec![12, 9],
            probabilistic: true,
            learned_reward: false,
            n_rollouts: 37,
            rows: 16,
            lengths: [3, 2],
            capacity: 90,
        },
        Dims {
            task: RefTask::Pendulum,
            members: 2,
            elites: vec![1],
            hidden: vec![8],
            probabilistic: false,
            learned_reward: false,
            n_rollouts: 5,
            rows: 5,
            lengths: [4, 3],
            capacity: 23,
        },
    ];
    if !quick {
        v.push(Dims {
            task: RefTask::Quadratic,
            members: 7,
            elites: vec![6, 1, 3, 0, 4],
            hidden: vec![200; 4],
            probabilistic: true,
            learned_reward: true,
            n_rollouts: 300,
            rows: 128,
            lengths: [1, 1],
            capacity: 500,
        });
    }
    v.into_iter()
        .enumerate()
        .map(|(i, d)| case(Family::MbpoRollout, &d.name(), Some(ROW_TOL), move |c| case_rollouts(c, &d, 31 + i as u64)))
        .collect()
}

/// The real ring's rows: seeded states near the task's start (so that some rollouts run a few
/// steps before they terminate), actions within the bounds.
fn real_rows(task: &Task, n: usize, seed: u64) -> Vec<f64> {
    let (d, a) = (task.obs_dim, task.act_dim);
    let row = 2 * d + a + 2;
    let mut out = Vec::with_capacity(n * row);
    for t in 0..n {
        let v = seeded(row, 500 + seed * 131 + t as u64, 1.0);
        let state: Vec<f64> = v[..d].iter().map(|x| 0.05 * x).collect();
        let act: Vec<f64> =
            (0..a).map(|i| 0.5 * (task.action_lower[i] + task.action_upper[i]) + 0.1 * v[d + i]).collect();
        let next: Vec<f64> = state.iter().zip(&v[d + a + 1..]).map(|(s, x)| s + 0.01 * x).collect();
        out.extend(state.iter().chain(&act).chain(&[v[d + a]]).chain(&next).chain(&[0.0]));
    }
    out
}

/// An ensemble of `d`'s architecture with a normaliser and log-variance bounds that are not
/// the identity, every value rounded to f32 as the device holds it.
fn ensemble(d: &Dims, task: &Task, seed: u64) -> Result<Ensemble> {
    let spec = EnsembleSpec {
        n_members: d.members,
        obs_dim: task.obs_dim,
        act_dim: task.act_dim,
        hidden: d.hidden.clone(),
        probabilistic: d.probabilistic,
        learned_reward: d.learned_reward,
    };
    let mut e = Ensemble::random(spec, seed)?;
    let ind = e.spec.in_dim();
    let v = seeded(2 * ind + 2 * e.spec.model_out(), seed + 7, 1.0);
    for i in 0..ind {
        e.input_mean[i] = (0.02 * v[i]) as f32;
        e.input_std[i] = (0.5 + 0.25 * (v[ind + i] + 1.0)) as f32;
    }
    for q in 0..e.spec.model_out() {
        e.max_logvar[q] = (-1.0 + 0.5 * v[2 * ind + q]) as f32;
        e.min_logvar[q] = (-8.0 + 0.5 * v[2 * ind + e.spec.model_out() + q]) as f32;
    }
    Ok(e)
}

/// The SAC device holding the real ring (`n_real` rows) and the model ring, and the actor as the
/// device holds it (f32-rounded) for the reference.
fn sac_device(ctx: &GpuContext, d: &Dims, task: &Task, real: &[f64], seed: u64) -> Result<(SacDevice, Mlp)> {
    use rand::SeedableRng;
    let (o, a) = (task.obs_dim, task.act_dim);
    let row = 2 * o + a + 2;
    let shapes = SacShapes {
        obs_dim: o,
        act_dim: a,
        batch: 4,
        capacity: real.len() / row,
        actor_hidden: vec![10, 7],
        critic_hidden: vec![5],
        actor_activation: Activation::Relu,
        critic_activation: Activation::Relu,
        max_updates: 1,
        model_capacity: d.capacity,
        real_rows: 0,
    };
    let scale = ActionScale::from_bounds(&task.action_lower, &task.action_upper)?;
    let settings = UpdateSettings {
        gamma: 0.99,
        tau: 0.005,
        target_entropy: -(a as f64),
        learn_alpha: true,
        lr: [1e-3; 3],
        adam: [0.9, 0.999, 1e-8],
        seed,
        center: scale.center.clone(),
        half: scale.half.clone(),
    };
    let align = NetLayout::alignment(ctx);
    let al = NetLayout::new(&shapes.actor_widths(), 1, align);
    let cl = NetLayout::new(&shapes.critic_widths(), 2, align);
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    let mut actor = Mlp::torch_default(&shapes.actor_widths(), HiddenActivation::Relu, &mut rng);
    let critic = cl.init_uniform(seed + 1);
    let init = SacParamsF32 { actor: r::to_layout(&al, &[&actor]), target: critic.clone(), critic, log_alpha: 0.0 };
    actor.set_flat(&r::from_layout(&al, &init.actor, 0));
    let mut dev = SacDevice::new(ctx, shapes, settings, &init)?;
    for t in real.chunks(row) {
        let v = f32s(t);
        dev.push(&v[..o], &v[o..o + a], v[o + a], &v[o + a + 1..2 * o + a + 1], v[row - 1] != 0.0)?;
    }
    Ok((dev, actor))
}

fn case_rollouts(ctx: &GpuContext, d: &Dims, seed: u64) -> Result<Comparison> {
    let task = d.task();
    let row = 2 * task.obs_dim + task.act_dim + 2;
    let real = real_rows(&task, 29, seed);
    let (sac, actor) = sac_device(ctx, d, &task, &real, seed)?;
    let e = ensemble(d, &task, seed + 3)?;
    let spec = e.spec.clone();
    let shapes = RolloutShapes { spec, n_rollouts: d.n_rollouts, max_length: 4, rows: d.rows };
    let mut dev = RolloutDevice::new(ctx, &sac, TaskWgsl { name: &task.name, wgsl: &task.wgsl }, shapes, seed)?;
    dev.set_model(&e, &d.elites)?;
    let scale = ActionScale::from_bounds(&task.action_lower, &task.action_upper)?;
    let real64: Vec<f64> = real.iter().map(|v| *v as f32 as f64).collect();
    let inputs = RolloutInputs {
        real: &real64,
        actor: &actor,
        scale: &scale,
        ensemble: &e,
        elites: &d.elites,
        task: d.task,
        seed,
    };
    let mut ring = Ring::new(d.capacity, row);
    let mut state = RingState { head: 0, fill: 0, written: 0 };
    for (batch, length) in d.lengths.iter().enumerate() {
        state = dev.run(batch as u64 + 5, *length, real.len() / row)?;
        rollouts_f64(&inputs, &mut ring, batch as u64 + 5, d.n_rollouts, d.rows, *length);
    }
    let (model_ring, _) = sac.model_ring().expect("built with a model ring");
    let gpu = ctx.read_buffer::<f32>(model_ring, d.capacity * row)?;
    let words = |s: RingState| [s.head as u64, s.fill as u64, s.written];
    let mut c = compare_exact(
        "ring state (head, fill, written)",
        &words(state),
        &[ring.head as u64, ring.fill as u64, ring.written],
    );
    let terminated = |rows: &[f64]| rows.chunks(row).map(|x| x[row - 1] != 0.0).collect::<Vec<bool>>();
    let gpu64: Vec<f64> = gpu.iter().map(|v| *v as f64).collect();
    c.merge(compare_exact("terminated flags", &terminated(&gpu64), &terminated(&ring.rows)));
    c.merge(compare("ring rows (obs, act, reward, next obs, terminated)", &gpu, &ring.rows, ROW_TOL));
    Ok(c)
}
