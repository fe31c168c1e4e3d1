//! `sac`: whole SAC updates on the device (`sac::device`: the draws, the policy, the critic and
//! actor losses' gradients through `mlp.wgsl`, Adam, α, Polyak) against the f64 reference
//! (`sac::reference`), over ragged batches, widths and both hidden activations.
//!
//! Each case runs two updates. The first, on a replay ring filled to two thirds of its capacity,
//! steps the critics, the actor and log α; the second, after the ring has wrapped (its oldest
//! rows overwritten), steps the critics and Polyak-averages the targets, from the device's own
//! state after the first (so that it is checked on its own). After each: the minibatch the
//! device drew (its rows bit for bit, hence the indices; both noise streams), the update's
//! statistics, every gradient (both critics, the actor, log α), every parameter after the step
//! (the targets included) and Adam's step counts. The reference follows the update phase by
//! phase: the actor's phase and the Polyak averages start from the critics as the device stepped
//! them, since Adam's first step is ±lr whatever a gradient's size and a gradient within f32
//! rounding of zero may step either way.
//!
//! The imitation cases (behaviour cloning, `SacDevice::imitate`: planner distillation) run two
//! imitation updates the same way and check the draws, the actor's gradient, the loss and the
//! actor after its step against `reference::imitation_loss_and_grads`, and that nothing else moved.
//!
//! Tolerances: the drawn rows bit for bit; the noise 1e-5 + 1e-5·|x|; the statistics and the
//! parameters after a step 1e-6 + 1e-4·|x| (`LOSS_TOL`, `ADAM_TOL`; a parameter whose reference
//! gradient lies within its tolerance of zero 2·lr more); the gradients 1e-3 relative with a
//! floor of 1e-5 of the network's largest (as `train.loss`); log α's gradient 1e-5 + 1e-4·|x|.

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::mlp::Activation;
use crate::kernels::net::NetLayout;
use crate::sac::device::{Minibatch, SacDevice, SacParamsF32, SacShapes, UpdatePlan, UpdateSettings};
use crate::sac::reference::{self as r, ActionScale, Batch, HiddenActivation, Mlp, SacAdam, SacNets};
use crate::verify::compare::{compare, compare_exact, f32s, seeded, Comparison};
use crate::verify::{case, Case, Family, Tol, ADAM_TOL, LOSS_TOL};

/// The sizes of one case.
#[derive(Debug, Clone)]
struct Dims {
    batch: usize,
    obs: usize,
    act: usize,
    actor_hidden: Vec<usize>,
    critic_hidden: Vec<usize>,
    activation: HiddenActivation,
}

impl Dims {
    fn name(&self) -> String {
        let act = match self.activation {
            HiddenActivation::Relu => "ReLU",
            HiddenActivation::Silu => "SiLU",
        };
        let widths = |h: &[usize]| h.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("×");
        let hidden = match self.actor_hidden == self.critic_hidden {
            true => widths(&self.actor_hidden),
            false => format!("{}/{}", widths(&self.actor_hidden), widths(&self.critic_hidden)),
        };
        let (b, o, a) = (self.batch, self.obs, self.act);
        format!("batch {b}, obs {o}, act {a}, {hidden} {act}: two updates; gradients to 1e-3")
    }
}

fn dims(batch: usize, obs: usize, act: usize, hidden: (&[usize], &[usize]), activation: HiddenActivation) -> Dims {
    Dims { batch, obs, act, actor_hidden: hidden.0.to_vec(), critic_hidden: hidden.1.to_vec(), activation }
}

/// The SAC cases: in full, batches of 1, 5, 33 and 257 rows (one row, a partial workgroup, more
/// than one workgroup) through networks of 7×6 (the actor) and 6×7 (the critics), 64×64 and
/// 256×256, at pendulum (3, 1) and HalfCheetah (17, 6) sizes and a two-action task; in quick,
/// the small ones and a 32×32 network.
pub(in crate::verify) fn cases(quick: bool) -> Vec<Case> {
    use HiddenActivation::{Relu, Silu};
    let ragged: (&[usize], &[usize]) = (&[7, 6], &[6, 7]);
    let mut v = vec![dims(1, 3, 1, ragged, Relu), dims(5, 3, 2, ragged, Silu)];
    if quick {
        v.push(dims(33, 17, 6, (&[32, 32], &[32, 32]), Relu));
    } else {
        v.push(dims(33, 17, 6, (&[64, 64], &[64, 64]), Silu));
        v.push(dims(257, 17, 6, (&[256, 256], &[256, 256]), Relu));
        v.push(dims(257, 3, 1, (&[256, 256], &[256, 256]), Silu));
    }
    let mut imitation = vec![dims(1, 3, 1, ragged, Relu), dims(33, 17, 6, (&[32, 32], &[32, 32]), Silu)];
    if !quick {
        imitation.push(dims(257, 17, 6, (&[256, 256], &[256, 256]), Relu));
    }
    let updates = v
        .into_iter()
        .enumerate()
        .map(|(i, d)| case(Family::Sac, &d.name(), Some(LOSS_TOL), move |c| case_updates(c, &d, 11 + i as u64)));
    let imitations = imitation.into_iter().enumerate().map(|(i, d)| {
        let name = format!("imitation: {}", d.name().replace("two updates", "an update each side of the wrap"));
        case(Family::Sac, &name, Some(LOSS_TOL), move |c| case_imitation(c, &d, 41 + i as u64))
    });
    updates.chain(imitations).collect()
}

/// The statistics (critic and actor losses, mean Q, entropy, α): f32 sums over the batch of
/// values through three networks.
const STATS_TOL: Tol = LOSS_TOL;

/// The noise: Box–Muller in f32, where the angle's rounding (2π·2⁻²⁴) times a radius of up to
/// ~6 and the f32 cosine's own error reach a few 1e-6 near the cosine's zeros.
const NOISE_TOL: Tol = Tol { rel: 1e-5, abs: 1e-5 };

/// A gradient: 1e-3 relative, with a floor of 1e-5 of the network's largest gradient (f32 sums
/// over the batch and the widths, through the squashing and the critics' input gradient).
fn grad_tol(reference: &[f64]) -> Tol {
    Tol { rel: 1e-3, abs: 1e-5 * max_abs(reference).max(1e-30) }
}

/// log α's gradient: −(mean log π + target entropy), an f32 mean of sums of logarithms.
const ALPHA_GRAD_TOL: Tol = Tol { rel: 1e-4, abs: 1e-5 };

/// A parameter after its Adam step (f32 arithmetic of the same step).
const PARAM_TOL: Tol = ADAM_TOL;

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |a, x| a.max(x.abs()))
}

fn activation(a: HiddenActivation) -> Activation {
    match a {
        HiddenActivation::Relu => Activation::Relu,
        HiddenActivation::Silu => Activation::Silu,
    }
}

/// The device, the reference and the replay ring they share.
struct Setup {
    dev: SacDevice,
    nets: SacNets,
    adam: SacAdam,
    settings: r::UpdateSettings,
    seed: u64,
    /// The ring as the device holds it, `[capacity, row]` (rows past those stored are zero).
    ring: Vec<f32>,
    stored: usize,
    capacity: usize,
    al: NetLayout,
    cl: NetLayout,
    d: Dims,
}

impl Setup {
    fn new(ctx: &GpuContext, d: &Dims, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        let hidden = d.activation;
        let ns = r::NetShapes {
            obs_dim: d.obs,
            act_dim: d.act,
            actor_hidden: d.actor_hidden.clone(),
            actor_activation: hidden,
            critic_hidden: d.critic_hidden.clone(),
            critic_activation: hidden,
        };
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
        let mut nets = SacNets::new(&ns, 0.6, &mut rng);
        // Targets unlike the critics, so that a target read from the online critics shows.
        let critic_widths = [vec![d.obs + d.act], d.critic_hidden.clone(), vec![1]].concat();
        nets.q1_target = Mlp::torch_default(&critic_widths, hidden, &mut rng);
        nets.q2_target = Mlp::torch_default(&critic_widths, hidden, &mut rng);
        let center: Vec<f64> = (0..d.act).map(|i| 0.5 - 0.3 * i as f64).collect();
        let half: Vec<f64> = (0..d.act).map(|i| 1.5 + 0.25 * i as f64).collect();
        // More rows than the batch (a batch of 1 still samples from several), fewer than twice.
        let capacity = d.batch + 10;
        let shapes = SacShapes {
            obs_dim: d.obs,
            act_dim: d.act,
            batch: d.batch,
            capacity,
            actor_hidden: d.actor_hidden.clone(),
            critic_hidden: d.critic_hidden.clone(),
            actor_activation: activation(hidden),
            critic_activation: activation(hidden),
            max_updates: 1,
            model_capacity: 0,
            real_rows: d.batch,
        };
        let us = UpdateSettings {
            gamma: 0.9,
            tau: 0.25,
            target_entropy: -(d.act as f64),
            learn_alpha: true,
            lr: [1e-3, 2e-3, 3e-3],
            adam: [0.9, 0.999, 1e-8],
            seed,
            center: center.clone(),
            half: half.clone(),
        };
        let align = NetLayout::alignment(ctx);
        let al = NetLayout::new(&shapes.actor_widths(), 1, align);
        let cl = NetLayout::new(&shapes.critic_widths(), 2, align);
        let init = SacParamsF32::of_reference(&nets, &al, &cl);
        // The reference starts from the device's f32 values.
        init.set_reference(&mut nets, &al, &cl);
        let settings = r::UpdateSettings {
            gamma: us.gamma,
            tau: us.tau,
            lr_actor: us.lr[0],
            lr_critic: us.lr[1],
            lr_alpha: us.lr[2],
            // The actor on even updates, the targets after odd ones: update 0 steps the actor,
            // update 1 the targets.
            target_update_interval: 2,
            actor_update_frequency: 2,
            learn_alpha: us.learn_alpha,
            target_entropy: us.target_entropy,
            scale: ActionScale { center, half },
        };
        let dev = SacDevice::new(ctx, shapes.clone(), us, &init)?;
        let adam = SacAdam::new(&nets);
        let ring = vec![0.0; capacity * shapes.row_len()];
        Ok(Self { dev, nets, adam, settings, seed, ring, stored: 0, capacity, al, cl, d: d.clone() })
    }

    /// Pushes `n` seeded transitions (every value distinct, so that a row names its index;
    /// actions within the bounds; every fourth terminal) into the device's ring and its copy.
    fn push(&mut self, n: usize) -> Result<()> {
        let (o, a) = (self.d.obs, self.d.act);
        let row = 2 * o + a + 2;
        for _ in 0..n {
            let t = self.stored;
            let v = f32s(&seeded(row, 1000 + self.seed * 7919 + t as u64, 1.5));
            let obs = &v[..o];
            let act: Vec<f32> = (0..a)
                .map(|i| {
                    let s = &self.settings.scale;
                    (s.center[i] + s.half[i] * 0.6 * v[o + i] as f64) as f32
                })
                .collect();
            let reward = v[o + a];
            let next = &v[o + a + 1..2 * o + a + 1];
            let terminated = t % 4 == 3;
            self.dev.push(obs, &act, reward, next, terminated)?;
            let slot = t % self.capacity;
            let stored: Vec<f32> = [obs, &act, &[reward], next, &[f32::from(u8::from(terminated))]].concat();
            self.ring[slot * row..(slot + 1) * row].copy_from_slice(&stored);
            self.stored += 1;
        }
        Ok(())
    }

    /// Runs update `index` on the device (the actor on even updates, Polyak after odd ones) and
    /// phase by phase in the reference, comparing everything it computes; `what` names the
    /// comparisons. The actor's phase and the Polyak averages start from the critics the device
    /// stepped (Adam's first step is ±lr whatever a gradient's size, so a gradient within f32
    /// rounding of zero may step either way and move the later phases by more than rounding).
    fn update(&mut self, index: u64, what: &str) -> Result<Comparison> {
        let (b, a) = (self.d.batch, self.d.act);
        let n_stored = self.stored.min(self.capacity);
        let plan = UpdatePlan { index, actor: index.is_multiple_of(2), polyak: !index.is_multiple_of(2) };
        let step = self.dev.run(&[plan], None, 0, false)?;
        let g = step.stats[0];
        let p = self.dev.params()?;
        let [ga, gc, galpha] = self.dev.grads()?;
        let (al, cl) = (&self.al, &self.cl);
        let label = |x: &str| format!("{what}: {x}");
        // The draws.
        let (indices, noise) = r::draw(self.seed, index, n_stored, b, a)?;
        let batch = Batch::gather(&self.ring, self.d.obs, a, &indices);
        let mut c = self.compare_draws(&self.dev.last_minibatch()?, &batch, Some(&noise), what);
        // The critics' phase.
        let s = &self.settings;
        let before = self.nets.clone();
        let target = r::critic_target(&before, &s.scale, s.gamma, &batch, &noise.eps_next);
        let critic = r::critic_loss_and_grads(&before.q1, &before.q2, &batch, &target.y);
        let (gq1, gq2) = (critic.grad_q1.flat(), critic.grad_q2.flat());
        c.merge(compare(&label("Q1 gradient"), &f32s(&r::from_layout(cl, &gc, 0)), &gq1, grad_tol(&gq1)));
        c.merge(compare(&label("Q2 gradient"), &f32s(&r::from_layout(cl, &gc, 1)), &gq2, grad_tol(&gq2)));
        self.adam.q1.step_net(s.lr_critic, &mut self.nets.q1, &critic.grad_q1);
        self.adam.q2.step_net(s.lr_critic, &mut self.nets.q2, &critic.grad_q2);
        for (m, net, grad) in [(0, &self.nets.q1, &gq1), (1, &self.nets.q2, &gq2)] {
            let q = r::from_layout(cl, &p.critic, m);
            c.merge(after(&label(&format!("Q{} after", m + 1)), &q, &net.flat(), Some(grad), s.lr_critic));
        }
        let n = b as f64;
        let mean_q = critic.q1.iter().zip(&critic.q2).map(|(x, y)| 0.5 * (x + y)).sum::<f64>() / n;
        let entropy = -target.next_log_prob.iter().sum::<f64>() / n;
        let mut stats =
            vec![(g.critic_loss, critic.loss), (g.mean_q, mean_q), (g.entropy, entropy), (g.alpha, before.alpha())];
        // The actor's and α's phase, through the critics as the device stepped them.
        let mut stepped = before.clone();
        p.set_reference(&mut stepped, al, cl);
        let mut actor_grad = None;
        if plan.actor {
            let ag = r::actor_loss_and_grads(
                &before.actor,
                &stepped.q1,
                &stepped.q2,
                &s.scale,
                before.alpha(),
                &batch.obs,
                &noise.eps_cur,
            );
            let flat = ag.grad.flat();
            c.merge(compare(&label("actor gradient"), &f32s(&r::from_layout(al, &ga, 0)), &flat, grad_tol(&flat)));
            let (_, alpha_grad) = r::alpha_loss_and_grad(before.log_alpha, &ag.log_prob, s.target_entropy);
            c.merge(compare(&label("log α gradient"), &galpha, &[alpha_grad], ALPHA_GRAD_TOL));
            self.adam.actor.step_net(s.lr_actor, &mut self.nets.actor, &ag.grad);
            let mut la = [self.nets.log_alpha];
            self.adam.log_alpha.step(s.lr_alpha, &mut la, &[alpha_grad]);
            self.nets.log_alpha = la[0];
            stats.extend(g.actor_loss.map(|l| (l, ag.loss)));
            actor_grad = Some(flat);
        }
        let (gpu, cpu): (Vec<f32>, Vec<f64>) = stats.iter().map(|(g, c)| (*g as f32, *c)).unzip();
        c.merge(compare(&label("critic loss, mean Q, entropy, α, actor loss"), &gpu, &cpu, STATS_TOL));
        c.merge(compare_exact(&label("actor loss reported"), &[g.actor_loss.is_some()], &[plan.actor]));
        let actor_after = r::from_layout(al, &p.actor, 0);
        let lr = s.lr_actor;
        c.merge(after(&label("actor after"), &actor_after, &self.nets.actor.flat(), actor_grad.as_deref(), lr));
        c.merge(compare(&label("log α after"), &[p.log_alpha], &[self.nets.log_alpha], PARAM_TOL));
        // The targets, averaged towards the critics as the device stepped them.
        if plan.polyak {
            r::polyak(&mut self.nets.q1_target, &stepped.q1, s.tau);
            r::polyak(&mut self.nets.q2_target, &stepped.q2, s.tau);
        }
        for (m, net) in [(0, &self.nets.q1_target), (1, &self.nets.q2_target)] {
            let t = f32s(&r::from_layout(cl, &p.target, m));
            c.merge(compare(&label(&format!("Q{} target after", m + 1)), &t, &net.flat(), PARAM_TOL));
        }
        let steps = [self.adam.actor.t, self.adam.q1.t, self.adam.log_alpha.t];
        c.merge(compare_exact(&label("Adam steps (actor, critics, log α)"), &self.dev.adam_steps()?, &steps));
        Ok(c)
    }

    /// Imitation update `index` (behaviour cloning of the ring's actions) on the device and in
    /// the reference: the draws, the actor's gradient, the loss, the actor after its Adam step,
    /// the critics, targets and log α bit for bit unmoved, Adam's step counts.
    fn imitate(&mut self, index: u64, what: &str) -> Result<Comparison> {
        let (b, a) = (self.d.batch, self.d.act);
        let n_stored = self.stored.min(self.capacity);
        let before = self.dev.params()?;
        let losses = self.dev.imitate(index, 1)?;
        let p = self.dev.params()?;
        let [ga, _, _] = self.dev.grads()?;
        let label = |x: &str| format!("{what}: {x}");
        let (indices, _) = r::draw(self.seed, index, n_stored, b, a)?;
        let batch = Batch::gather(&self.ring, self.d.obs, a, &indices);
        // The rows only: an imitation update draws noise it never reads.
        let mut c = self.compare_draws(&self.dev.last_minibatch()?, &batch, None, what);
        let s = &self.settings;
        let (loss, grad) = r::imitation_loss_and_grads(&self.nets.actor, &s.scale, &batch.obs, &batch.act);
        let flat = grad.flat();
        let al = &self.al;
        c.merge(compare(&label("actor gradient"), &f32s(&r::from_layout(al, &ga, 0)), &flat, grad_tol(&flat)));
        c.merge(compare(&label("imitation loss"), &[losses[0] as f32], &[loss], STATS_TOL));
        self.adam.actor.step_net(s.lr_actor, &mut self.nets.actor, &grad);
        let actor_after = r::from_layout(al, &p.actor, 0);
        c.merge(after(&label("actor after"), &actor_after, &self.nets.actor.flat(), Some(&flat), s.lr_actor));
        let fixed = |q: &SacParamsF32| [&q.critic[..], &q.target, &[q.log_alpha]].concat();
        c.merge(compare_exact(&label("critics, targets and log α unmoved"), &fixed(&p), &fixed(&before)));
        let steps = [self.adam.actor.t, self.adam.q1.t, self.adam.log_alpha.t];
        c.merge(compare_exact(&label("Adam steps (actor, critics, log α)"), &self.dev.adam_steps()?, &steps));
        Ok(c)
    }

    /// The minibatch the device drew against the reference's draw of the same update: the
    /// rows bit for bit, the noise (when given) within the Box–Muller tolerance.
    fn compare_draws(&self, m: &Minibatch, batch: &Batch, noise: Option<&r::Noise>, what: &str) -> Comparison {
        let (o, a) = (self.d.obs, self.d.act);
        let pairs: Vec<f64> =
            batch.obs.chunks(o).zip(batch.act.chunks(a)).flat_map(|(x, y)| x.iter().chain(y).copied()).collect();
        let critic_in = f32s(&[pairs.clone(), pairs].concat());
        let label = |x: &str| format!("{what}: {x}");
        let mut c = compare_exact(&label("drawn rows (obs, act) of both critics"), &m.critic_in, &critic_in);
        c.merge(compare_exact(&label("drawn observations"), &m.obs, &f32s(&batch.obs)));
        c.merge(compare_exact(&label("drawn next observations"), &m.next_obs, &f32s(&batch.next_obs)));
        c.merge(compare_exact(&label("drawn rewards"), &m.reward, &f32s(&batch.rew)));
        c.merge(compare_exact(&label("drawn terminations"), &m.terminated, &f32s(&batch.terminated)));
        if let Some(noise) = noise {
            c.merge(compare(&label("noise ε′"), &m.eps_next, &noise.eps_next, NOISE_TOL));
            c.merge(compare(&label("noise ε"), &m.eps_cur, &noise.eps_cur, NOISE_TOL));
        }
        c
    }
}

/// Parameters after a step against the reference's. Where the reference gradient `grad` lies
/// within its tolerance of zero its sign is not settled in f32, and Adam's first step (±`lr`
/// whatever the gradient's size) may go either way: those parameters may differ by up to
/// 2·`lr`. Without `grad` the parameters did not move: to [`PARAM_TOL`].
fn after(what: &str, gpu: &[f64], cpu: &[f64], grad: Option<&[f64]>, lr: f64) -> Comparison {
    let Some(grad) = grad else { return compare(what, &f32s(gpu), cpu, PARAM_TOL) };
    let tol = grad_tol(grad);
    let unsettled = |i: usize| grad[i] != 0.0 && grad[i].abs() <= tol.abs + tol.rel * grad[i].abs();
    let (mut settled, mut loose) = ((vec![], vec![]), (vec![], vec![]));
    for i in 0..cpu.len().min(gpu.len()) {
        let to = if unsettled(i) { &mut loose } else { &mut settled };
        to.0.push(gpu[i] as f32);
        to.1.push(cpu[i]);
    }
    if gpu.len() != cpu.len() {
        return compare(what, &f32s(gpu), cpu, PARAM_TOL);
    }
    let mut c = compare(what, &settled.0, &settled.1, PARAM_TOL);
    let wide = Tol { abs: 2.0 * lr + PARAM_TOL.abs, ..PARAM_TOL };
    c.merge(compare(&format!("{what} (gradient within its tolerance of 0)"), &loose.0, &loose.1, wide));
    c
}

/// Two imitation updates of case `d`, on a ring filled to two thirds and after it wrapped, the
/// second from the device's state after the first.
fn case_imitation(ctx: &GpuContext, d: &Dims, seed: u64) -> Result<Comparison> {
    let mut s = Setup::new(ctx, d, seed)?;
    s.push(s.capacity * 2 / 3)?;
    let mut c = s.imitate(0, "imitation 0 (ring partly filled)")?;
    s.push(s.capacity / 2 + 1)?;
    let state = s.dev.snapshot()?;
    state.params.set_reference(&mut s.nets, &s.al, &s.cl);
    s.adam = state.reference_adam(&s.al, &s.cl);
    c.merge(s.imitate(1, "imitation 1 (ring wrapped)")?);
    Ok(c)
}

/// Two updates of case `d` (see the module's docs).
fn case_updates(ctx: &GpuContext, d: &Dims, seed: u64) -> Result<Comparison> {
    let mut s = Setup::new(ctx, d, seed)?;
    // Two thirds of the ring: indices from fewer rows than the capacity.
    s.push(s.capacity * 2 / 3)?;
    let mut c = s.update(0, "update 0 (critics, actor, α; ring partly filled)")?;
    // Past the capacity: the oldest rows overwritten, indices over the whole ring.
    s.push(s.capacity / 2 + 1)?;
    // The second update from the device's state, so that it is checked on its own.
    let state = s.dev.snapshot()?;
    state.params.set_reference(&mut s.nets, &s.al, &s.cl);
    s.adam = state.reference_adam(&s.al, &s.cl);
    c.merge(s.update(1, "update 1 (critics, Polyak; ring wrapped)")?);
    Ok(c)
}
