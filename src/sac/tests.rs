//! The SAC reference held to finite differences, to the naive formulas it replaces, and to the
//! algorithm's rules. Ragged sizes throughout: batch 3, obs 5, act 2, hidden widths 7 and 4.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::reference::*;
use crate::kernels::purpose;
use crate::kernels::rng::{key_of, philox};

const OBS: usize = 5;
const ACT: usize = 2;
const ROWS: usize = 3;

fn values(n: usize, scale: f64, rng: &mut StdRng) -> Vec<f64> {
    (0..n).map(|_| (2.0 * rng.random::<f64>() - 1.0) * scale).collect()
}

fn shapes(act: HiddenActivation) -> NetShapes {
    NetShapes {
        obs_dim: OBS,
        act_dim: ACT,
        actor_hidden: vec![7, 4],
        actor_activation: act,
        critic_hidden: vec![7, 4],
        critic_activation: act,
    }
}

/// Asymmetric bounds, so that a missing centre or half-width shows.
fn scale() -> ActionScale {
    ActionScale::from_bounds(&[-2.0, -0.5], &[2.0, 1.5]).unwrap()
}

/// Networks with α = 0.3, the targets perturbed away from the critics, and a batch.
fn setup(act: HiddenActivation, seed: u64) -> (SacNets, Batch, Noise) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nets = SacNets::new(&shapes(act), 0.3, &mut rng);
    for t in [&mut nets.q1_target, &mut nets.q2_target] {
        let p: Vec<f64> = t.flat().iter().map(|v| v + 0.05 * (2.0 * rng.random::<f64>() - 1.0)).collect();
        t.set_flat(&p);
    }
    let batch = Batch {
        obs: values(ROWS * OBS, 1.5, &mut rng),
        act: values(ROWS * ACT, 1.0, &mut rng),
        rew: values(ROWS, 2.0, &mut rng),
        next_obs: values(ROWS * OBS, 1.5, &mut rng),
        terminated: vec![0.0, 1.0, 0.0],
    };
    let noise = Noise { eps_next: values(ROWS * ACT, 1.5, &mut rng), eps_cur: values(ROWS * ACT, 1.5, &mut rng) };
    (nets, batch, noise)
}

fn settings() -> UpdateSettings {
    UpdateSettings {
        gamma: 0.9,
        tau: 0.05,
        lr_actor: 1e-2,
        lr_critic: 2e-2,
        lr_alpha: 3e-2,
        target_update_interval: 1,
        actor_update_frequency: 1,
        learn_alpha: true,
        target_entropy: -(ACT as f64),
        scale: scale(),
    }
}

/// Central differences of `f` at `params` against `analytic`, every coordinate.
fn assert_matches_finite_differences(what: &str, params: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
    assert_eq!(params.len(), analytic.len(), "{what}: one gradient value per parameter");
    let h = 1e-6;
    for i in 0..params.len() {
        let (mut up, mut down) = (params.to_vec(), params.to_vec());
        up[i] += h;
        down[i] -= h;
        let numeric = (f(&up) - f(&down)) / (2.0 * h);
        let tol = 1e-6 * (1.0 + analytic[i].abs());
        assert!((numeric - analytic[i]).abs() <= tol, "{what}[{i}]: analytic {} vs numeric {numeric}", analytic[i]);
    }
}

const BOTH: [HiddenActivation; 2] = [HiddenActivation::Relu, HiddenActivation::Silu];

/// An MLP's parameter and input gradients against finite differences of `Σ c·out`. Catches a
/// transposed weight in the backward pass, a missing activation derivative (or ReLU's and SiLU's
/// swapped), the bias gradient not summed over rows, and an input gradient taken before the
/// first layer's weights.
#[test]
fn sac_mlp_gradients_match_finite_differences() {
    for act in BOTH {
        let mut rng = StdRng::seed_from_u64(11);
        let net = Mlp::torch_default(&[OBS, 7, 4, 3], act, &mut rng);
        let x = values(ROWS * OBS, 2.0, &mut rng);
        let c = values(ROWS * 3, 1.0, &mut rng);
        let loss = |net: &Mlp, x: &[f64]| net.forward(x).out.iter().zip(&c).map(|(o, c)| o * c).sum::<f64>();
        let (g, gx) = net.backward(&net.forward(&x), &c);
        let with = |p: &[f64]| {
            let mut n = net.clone();
            n.set_flat(p);
            n
        };
        assert_matches_finite_differences("mlp params", &net.flat(), &g.flat(), |p| loss(&with(p), &x));
        assert_matches_finite_differences("mlp input", &x, &gx, |x| loss(&net, x));
    }
}

/// The critic loss's gradient w.r.t. each critic's parameters (target fixed). Catches a missing
/// factor 2 or 1/B, a loss with ½, the target's sign, and one critic's gradient given to both.
#[test]
fn sac_critic_loss_gradients_match_finite_differences() {
    for act in BOTH {
        let (nets, batch, noise) = setup(act, 21);
        let y = critic_target(&nets, &scale(), 0.9, &batch, &noise.eps_next).y;
        let g = critic_loss_and_grads(&nets.q1, &nets.q2, &batch, &y);
        let loss_with = |which: usize, p: &[f64]| {
            let (mut q1, mut q2) = (nets.q1.clone(), nets.q2.clone());
            [&mut q1, &mut q2][which].set_flat(p);
            critic_loss_and_grads(&q1, &q2, &batch, &y).loss
        };
        assert_matches_finite_differences("q1", &nets.q1.flat(), &g.grad_q1.flat(), |p| loss_with(0, p));
        assert_matches_finite_differences("q2", &nets.q2.flat(), &g.grad_q2.flat(), |p| loss_with(1, p));
    }
}

/// The actor loss's gradient w.r.t. the actor's parameters, through the sampled action into the
/// critics. Catches a missing tanh or half-width Jacobian, the log-σ bound's derivative, the
/// σ·ε path of log σ, `dQ/da` read from the observation columns of the critic's input
/// gradient, α left out of the log-probability's gradient, and a gradient through ε.
#[test]
fn sac_actor_loss_gradient_through_the_critics_matches_finite_differences() {
    for act in BOTH {
        let (nets, batch, noise) = setup(act, 31);
        let loss_with = |p: &[f64]| {
            let mut actor = nets.actor.clone();
            actor.set_flat(p);
            actor_loss_and_grads(&actor, &nets.q1, &nets.q2, &scale(), 0.3, &batch.obs, &noise.eps_cur).loss
        };
        let g = actor_loss_and_grads(&nets.actor, &nets.q1, &nets.q2, &scale(), 0.3, &batch.obs, &noise.eps_cur);
        assert_matches_finite_differences("actor", &nets.actor.flat(), &g.grad.flat(), loss_with);
    }
}

/// Behaviour cloning's gradient w.r.t. the actor's parameters, with labels inside the
/// asymmetric bounds; the loss is the plain mean squared error of the deterministic actions.
/// Catches a missing tanh or half-width Jacobian, a missing centre, a sum where the mean over
/// rows and actions belongs, and a gradient through log σ.
#[test]
fn imitation_loss_gradient_matches_finite_differences() {
    for act in BOTH {
        let (nets, batch, _) = setup(act, 37);
        let s = scale();
        let labels: Vec<f64> =
            batch.act.chunks(ACT).flat_map(|r| (0..ACT).map(|d| s.center[d] + 0.9 * s.half[d] * r[d])).collect();
        let loss_with = |p: &[f64]| {
            let mut actor = nets.actor.clone();
            actor.set_flat(p);
            imitation_loss_and_grads(&actor, &s, &batch.obs, &labels).0
        };
        let (loss, g) = imitation_loss_and_grads(&nets.actor, &s, &batch.obs, &labels);
        assert_matches_finite_differences("imitation", &nets.actor.flat(), &g.flat(), loss_with);
        let actions = deterministic_action(&nets.actor, &s, &batch.obs);
        let mse = actions.iter().zip(&labels).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / labels.len() as f64;
        assert!((loss - mse).abs() < 1e-12, "{loss} vs {mse}");
    }
}

/// The temperature loss's derivative w.r.t. `log α`, at two values of `log α`. Catches α in
/// place of `log α` (CleanRL's form, whose derivative carries a factor α) and a dropped sign.
#[test]
fn sac_alpha_loss_gradient_matches_finite_differences() {
    let log_prob = [0.7, -1.9, 2.4];
    for log_alpha in [-0.4, 1.3] {
        let (_, grad) = alpha_loss_and_grad(log_alpha, &log_prob, -2.0);
        assert_matches_finite_differences("log alpha", &[log_alpha], &[grad], |p| {
            alpha_loss_and_grad(p[0], &log_prob, -2.0).0
        });
    }
}

/// `log(1 − tanh² u)` in its stable form equals the naive formula at moderate `u` and stays
/// finite (at its asymptote `2(log 2 − |u|)`) at `|u| = 30`; the whole log-probability equals
/// the naive change-of-variables density. Catches an ε inside the logarithm (1e-6, as the
/// PyTorch implementations: off by more than 1e-12 at moderate `u`, near log 1e-6 at 30), the
/// naive form (−∞ at 30), and a missing `log half` or Gaussian term.
#[test]
fn sac_log_prob_stable_form_matches_naive_and_stays_finite() {
    for k in -12..=12 {
        let u = k as f64 * 0.25;
        let naive = (1.0 - u.tanh().powi(2)).ln();
        assert!((log_one_minus_tanh_sq(u) - naive).abs() < 1e-12, "u = {u}");
    }
    for u in [30.0, -30.0] {
        let v = log_one_minus_tanh_sq(u);
        assert!((v - 2.0 * (std::f64::consts::LN_2 - 30.0)).abs() < 1e-12, "u = {u}: {v}");
    }
    let (nets, batch, noise) = setup(HiddenActivation::Silu, 41);
    let s = actor_sample(&nets.actor, &scale(), &batch.obs, &noise.eps_cur);
    let sc = scale();
    for r in 0..ROWS {
        let naive: f64 = (0..ACT)
            .map(|d| {
                let e = r * ACT + d;
                let (mean, sigma) = (s.fwd.out[r * 2 * ACT + d], s.log_std[e].exp());
                let gauss =
                    -(s.u[e] - mean).powi(2) / (2.0 * sigma * sigma) - sigma.ln() - 0.5 * std::f64::consts::TAU.ln();
                gauss - (sc.half[d] * (1.0 - s.u[e].tanh().powi(2))).ln()
            })
            .sum();
        assert!((s.log_prob[r] - naive).abs() < 1e-10, "row {r}: {} vs {naive}", s.log_prob[r]);
    }
    // A saturated actor (u ≈ ±30) still has a finite log-probability and gradient.
    let mut saturated = nets.actor.clone();
    let last = saturated.layers.len() - 1;
    saturated.layers[last].3[0] = 30.0;
    saturated.layers[last].3[1] = -30.0;
    let g = actor_loss_and_grads(&saturated, &nets.q1, &nets.q2, &sc, 0.3, &batch.obs, &noise.eps_cur);
    assert!(g.loss.is_finite() && g.log_prob.iter().all(|v| v.is_finite()));
    assert!(g.grad.flat().iter().all(|v| v.is_finite()));
}

/// A terminated transition's target is its reward, exactly; a live one bootstraps with
/// `γ(min Q′ − α log π′)`. Catches a missing `(1 − terminated)` and a target built from the
/// online critics or without the entropy term.
#[test]
fn sac_terminated_target_is_the_reward() {
    let (mut nets, batch, noise) = setup(HiddenActivation::Relu, 51);
    // The online critics far below the targets: a target built from them would show.
    for q in [&mut nets.q1, &mut nets.q2] {
        let last = q.layers.len() - 1;
        q.layers[last].3[0] -= 100.0;
    }
    let t = critic_target(&nets, &scale(), 0.9, &batch, &noise.eps_next);
    assert_eq!(t.y[1], batch.rew[1]);
    let next = actor_sample(&nets.actor, &scale(), &batch.next_obs, &noise.eps_next);
    let x = critic_input(&batch.next_obs, &next.action, OBS, ACT);
    let (q1, q2) = (nets.q1_target.forward(&x).out, nets.q2_target.forward(&x).out);
    for r in [0, 2] {
        let expected = batch.rew[r] + 0.9 * (q1[r].min(q2[r]) - 0.3 * next.log_prob[r]);
        assert!((t.y[r] - expected).abs() < 1e-12, "row {r}: {} vs {expected}", t.y[r]);
        assert!((t.y[r] - batch.rew[r]).abs() > 1e-3, "row {r} must bootstrap");
    }
}

/// The minimum of the twin critics takes its value and gradient from the smaller one (Q1 on
/// ties): with Q1 lifted far above Q2, replacing Q1 by another network changes nothing, and the
/// other way round. Catches the maximum, the mean, or a gradient sent to both twins.
#[test]
fn sac_min_of_twins_goes_to_the_smaller() {
    assert_eq!(twin_min(1.0, 1.0), (1.0, true));
    assert_eq!(twin_min(2.0, -1.0), (-1.0, false));
    let (nets, batch, noise) = setup(HiddenActivation::Silu, 61);
    let (other, _, _) = setup(HiddenActivation::Silu, 62);
    let lifted = |q: &Mlp| {
        let mut q = q.clone();
        let last = q.layers.len() - 1;
        q.layers[last].3[0] += 100.0;
        q
    };
    let run = |q1: &Mlp, q2: &Mlp| actor_loss_and_grads(&nets.actor, q1, q2, &scale(), 0.3, &batch.obs, &noise.eps_cur);
    let a = run(&lifted(&nets.q1), &nets.q2);
    let b = run(&lifted(&other.q1), &nets.q2);
    assert!(a.picked_q1.iter().all(|p| !p));
    assert_eq!((a.loss, a.grad.flat()), (b.loss, b.grad.flat()));
    let c = run(&nets.q1, &lifted(&nets.q2));
    let d = run(&nets.q1, &lifted(&other.q2));
    assert!(c.picked_q1.iter().all(|p| *p));
    assert_eq!((c.loss, c.grad.flat()), (d.loss, d.grad.flat()));
    // The target's minimum too: lifting one target twin leaves y as the other gives it.
    let mut high = nets.clone();
    high.q1_target = lifted(&nets.q1_target);
    let y_high = critic_target(&high, &scale(), 0.9, &batch, &noise.eps_next).y;
    high.q1_target = lifted(&other.q1_target);
    assert_eq!(y_high, critic_target(&high, &scale(), 0.9, &batch, &noise.eps_next).y);
}

/// After an update with averaging, each target parameter is `τ·online + (1 − τ)·old` with the
/// critics after their step; with `target_update_interval = 2` the targets move only on odd
/// update indices. Catches τ and 1 − τ swapped, averaging with the critics before their step,
/// and the interval tested on `update_index` instead of `update_index + 1`.
#[test]
fn sac_targets_move_by_exactly_tau() {
    let (mut nets, batch, noise) = setup(HiddenActivation::Relu, 71);
    let mut adam = SacAdam::new(&nets);
    let s = settings();
    let before = nets.clone();
    update_f64(&mut nets, &mut adam, &s, &batch, &noise, 0);
    assert_ne!(nets.q1.flat(), before.q1.flat());
    for (t, q, old) in [(&nets.q1_target, &nets.q1, &before.q1_target), (&nets.q2_target, &nets.q2, &before.q2_target)]
    {
        for ((t, q), o) in t.flat().iter().zip(q.flat()).zip(old.flat()) {
            let expected = s.tau * q + (1.0 - s.tau) * o;
            assert!((t - expected).abs() <= 1e-15 * (1.0 + expected.abs()), "{t} vs {expected}");
        }
    }
    let s2 = UpdateSettings { target_update_interval: 2, ..settings() };
    let (mut nets, batch, noise) = setup(HiddenActivation::Relu, 71);
    let mut adam = SacAdam::new(&nets);
    let t0 = nets.q1_target.clone();
    update_f64(&mut nets, &mut adam, &s2, &batch, &noise, 0);
    assert_eq!(nets.q1_target, t0, "index 0 with interval 2 leaves the targets");
    update_f64(&mut nets, &mut adam, &s2, &batch, &noise, 1);
    assert_ne!(nets.q1_target, t0, "index 1 with interval 2 averages them");
}

/// α rises when the policy's entropy is below the target and falls when above; a fixed α stays.
/// Catches the temperature loss's sign and a learned α updated when `learn_alpha` is false.
#[test]
fn sac_alpha_rises_when_entropy_is_below_target() {
    for (target, rises) in [(50.0, true), (-50.0, false)] {
        let (mut nets, batch, noise) = setup(HiddenActivation::Silu, 81);
        let mut adam = SacAdam::new(&nets);
        let before = nets.log_alpha;
        let s = UpdateSettings { target_entropy: target, ..settings() };
        let stats = update_f64(&mut nets, &mut adam, &s, &batch, &noise, 0);
        assert!(stats.alpha_loss.is_some());
        assert_eq!(nets.log_alpha > before, rises, "target entropy {target}: log α {before} → {}", nets.log_alpha);
    }
    let (mut nets, batch, noise) = setup(HiddenActivation::Silu, 81);
    let mut adam = SacAdam::new(&nets);
    let fixed = UpdateSettings { learn_alpha: false, target_entropy: 50.0, ..settings() };
    let stats = update_f64(&mut nets, &mut adam, &fixed, &batch, &noise, 0);
    assert_eq!((nets.log_alpha, stats.alpha_loss), (0.3f64.ln(), None));
}

/// The order of one update: the actor loss is computed with the critics after their step and the
/// α of the update's start, the stats are the phases' values, and with
/// `actor_update_frequency = 2` the actor and α move on even indices only while the critics
/// move on every one (Adam counts 3, 2, 2 after three updates). Catches the actor updated before
/// the critics or with their old parameters, and a wrong gate or step count.
#[test]
fn sac_update_runs_critic_then_actor_then_alpha() {
    let (mut nets, batch, noise) = setup(HiddenActivation::Relu, 91);
    let mut adam = SacAdam::new(&nets);
    let s = UpdateSettings { actor_update_frequency: 2, ..settings() };
    let start = nets.clone();
    let y = critic_target(&start, &s.scale, s.gamma, &batch, &noise.eps_next);
    let critic = critic_loss_and_grads(&start.q1, &start.q2, &batch, &y.y);
    let (mut q1, mut q2) = (start.q1.clone(), start.q2.clone());
    let mut fresh = SacAdam::new(&start);
    fresh.q1.step_net(s.lr_critic, &mut q1, &critic.grad_q1);
    fresh.q2.step_net(s.lr_critic, &mut q2, &critic.grad_q2);
    let expected = actor_loss_and_grads(&start.actor, &q1, &q2, &s.scale, start.alpha(), &batch.obs, &noise.eps_cur);
    let stale = actor_loss_and_grads(&start.actor, &start.q1, &start.q2, &s.scale, 0.3, &batch.obs, &noise.eps_cur);
    let stats = update_f64(&mut nets, &mut adam, &s, &batch, &noise, 0);
    assert_eq!(stats.critic_loss, critic.loss);
    assert_eq!(stats.actor_loss, Some(expected.loss));
    assert_ne!(stats.actor_loss, Some(stale.loss));
    assert_eq!(stats.alpha, 0.3f64.ln().exp());
    assert_eq!(stats.entropy, -y.next_log_prob.iter().sum::<f64>() / ROWS as f64);
    assert_eq!((nets.q1.clone(), stats.refused_steps), (q1, 0));
    let (actor, log_alpha) = (nets.actor.clone(), nets.log_alpha);
    let skipped = update_f64(&mut nets, &mut adam, &s, &batch, &noise, 1);
    assert_eq!((skipped.actor_loss, skipped.alpha_loss), (None, None));
    assert_eq!((&nets.actor, nets.log_alpha), (&actor, log_alpha));
    update_f64(&mut nets, &mut adam, &s, &batch, &noise, 2);
    assert_ne!(nets.actor, actor);
    assert_eq!((adam.q1.t, adam.q2.t, adam.actor.t, adam.log_alpha.t), (3, 3, 2, 2));
}

/// Sampled actions lie inside the bounds and the deterministic action is
/// `center + half·tanh(mean)`; bounds that are not finite are refused. Catches a missing centre
/// or half-width and the mean read from the log-σ outputs.
#[test]
fn sac_actions_respect_the_bounds() {
    let (nets, batch, noise) = setup(HiddenActivation::Relu, 101);
    let sc = scale();
    let s = actor_sample(&nets.actor, &sc, &batch.obs, &noise.eps_cur);
    for (e, a) in s.action.iter().enumerate() {
        let d = e % ACT;
        assert!((a - sc.center[d]).abs() < sc.half[d], "action {a} outside dimension {d}'s bounds");
        assert_eq!(*a, sc.center[d] + sc.half[d] * s.u[e].tanh());
    }
    let det = deterministic_action(&nets.actor, &sc, &batch.obs);
    let out = nets.actor.forward(&batch.obs).out;
    for (e, a) in det.iter().enumerate() {
        let (r, d) = (e / ACT, e % ACT);
        assert_eq!(*a, sc.center[d] + sc.half[d] * out[r * 2 * ACT + d].tanh());
    }
    assert!(ActionScale::from_bounds(&[-1.0], &[f64::INFINITY]).is_err());
    assert!(ActionScale::from_bounds(&[1.0], &[1.0]).is_err());
}

/// Two updates' draws differ (also when the indices differ only above 32 bits), ε′ differs
/// from ε, and the same arguments give the same draw. Catches the update index left out of the
/// counter or truncated to 32 bits, and both noise streams under one purpose.
#[test]
fn sac_draws_differ_by_update_and_stream() {
    let (i0, n0) = draw(7, 0, 1000, 64, ACT).unwrap();
    let (i1, n1) = draw(7, 1, 1000, 64, ACT).unwrap();
    let (ih, nh) = draw(7, 1 << 32, 1000, 64, ACT).unwrap();
    assert_ne!(i0, i1);
    assert_ne!(n0.eps_cur, n1.eps_cur);
    assert_ne!(n0.eps_next, n1.eps_next);
    assert_ne!((&i0, &n0.eps_cur), (&ih, &nh.eps_cur));
    assert!(n0.eps_next.iter().zip(&n0.eps_cur).all(|(a, b)| a != b));
    assert_eq!(draw(7, 0, 1000, 64, ACT).unwrap(), (i0, n0));
    assert_ne!(draw(8, 0, 1000, 64, ACT).unwrap().0, draw(7, 0, 1000, 64, ACT).unwrap().0);
    assert!(draw(7, 0, 0, 64, ACT).is_err());
}

/// Replay indices lie in `[0, n)`, are Lemire's multiply-shift of the full first Philox word
/// (the GPU's formula), and are roughly uniform; the noise is roughly standard normal. Catches
/// the 24-bit uniform (`floor(u01·n)` differs from the multiply-shift by up to n/2²⁴), a
/// modulo, and a noise transform with the wrong scale.
#[test]
fn sac_replay_indices_are_uniform_in_range() {
    assert_eq!((replay_index(u32::MAX, 10), replay_index(1 << 31, 10), replay_index(0, 10)), (9, 5, 0));
    let n = 3_000_000_000usize;
    let (big, _) = draw(3, 5, n, 200, 1).unwrap();
    for (i, v) in big.iter().enumerate() {
        let w = philox(counter(i as u32, 5, purpose::SAC_INDEX), key_of(3))[0];
        assert_eq!(*v, ((w as u64 * n as u64) >> 32) as usize);
    }
    let (idx, noise) = draw(3, 9, 7, 70_000, 1).unwrap();
    let mut counts = [0usize; 7];
    idx.iter().for_each(|i| counts[*i] += 1);
    assert!(counts.iter().all(|c| c.abs_diff(10_000) < 500), "{counts:?}");
    assert!(draw(3, 9, 1, 50, 1).unwrap().0.iter().all(|i| *i == 0));
    for z in [&noise.eps_cur, &noise.eps_next] {
        let mean = z.iter().sum::<f64>() / z.len() as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "mean {mean}, variance {var}");
    }
}

/// The ReLU's derivative is 0 at 0 and the flat layout round-trips. Catches ReLU′(0) = 1 and a
/// flat order that mixes weights and biases across layers.
#[test]
fn sac_relu_derivative_and_flat_layout() {
    assert_eq!(HiddenActivation::Relu.derivative(0.0), 0.0);
    assert_eq!(HiddenActivation::Relu.derivative(1e-300), 1.0);
    let mut rng = StdRng::seed_from_u64(5);
    let mut net = Mlp::torch_default(&[3, 2, 1], HiddenActivation::Relu, &mut rng);
    let flat: Vec<f64> = (0..11).map(f64::from).collect();
    net.set_flat(&flat);
    assert_eq!(net.layers[0].2, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(
        (net.layers[0].3.clone(), net.layers[1].2.clone(), net.layers[1].3.clone()),
        (vec![6.0, 7.0], vec![8.0, 9.0], vec![10.0])
    );
    assert_eq!(net.flat(), flat);
}
