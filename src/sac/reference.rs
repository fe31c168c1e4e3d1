//! One whole Soft Actor-Critic update in f64, deterministic given its random inputs: the CPU
//! reference the GPU update is checked against, phase by phase ([`critic_target`],
//! [`critic_loss_and_grads`], [`actor_loss_and_grads`], [`alpha_loss_and_grad`], [`polyak`]) and
//! whole ([`update_f64`]), with the random inputs drawn as the GPU draws them ([`draw`]).
//!
//! The algorithm is Haarnoja et al. 2018 (*Soft Actor-Critic: Off-Policy Maximum Entropy Deep
//! Reinforcement Learning with a Stochastic Actor*) with the learned temperature of the second
//! paper (*Soft Actor-Critic Algorithms and Applications*). The choices the papers leave open:
//!
//! - **Networks** are plain MLPs ([`Mlp`]): weights `[in, out]` row-major, hidden layers ReLU
//!   (ReLU′(0) = 0) or SiLU, the output layer linear. Initial weights and biases are uniform in
//!   ±1/√in, PyTorch's `nn.Linear` default, which Stable-Baselines3 and CleanRL keep.
//! - **Actor**: obs → `2·A` outputs per row, the means then the raw log standard deviations.
//!   `log σ = LOG_STD_MIN + ½(LOG_STD_MAX − LOG_STD_MIN)(tanh(raw) + 1)` with bounds −5 and 2,
//!   CleanRL's smooth bound (pranz24 and SB3 clamp instead, which has no gradient outside).
//!   `u = mean + σ·ε`, `action = center + half·tanh(u)` with `center`, `half` from the task's
//!   finite action bounds (CleanRL's and pranz24's `action_scale`, `action_bias`).
//! - **Log-probability**: `log π = Σᵢ(−½εᵢ² − log σᵢ − ½ log 2π) − Σᵢ[log halfᵢ +
//!   log(1 − tanh² uᵢ)]`, with `log(1 − tanh² u) = 2(log 2 − u − softplus(−2u))`, exact at any
//!   `u` (the form of TensorFlow Probability's tanh bijector), where pranz24, SB3 and CleanRL add
//!   an ε of 1e-6 inside the logarithm. Writing the Gaussian term as `−½ε²` gives the gradient
//!   PyTorch's `Normal(mean, σ).log_prob(rsample())` gives: `(u − mean)/σ = ε` at every parameter.
//! - **Deterministic action** (evaluation): `center + half·tanh(mean)`, as all three.
//! - **Critics** see the action in the task's units, `concat(obs, action) → 1` (pranz24,
//!   CleanRL; SB3 stores actions rescaled to [−1, 1]). Twin critics and target copies; the
//!   minimum of the twins takes its gradient from the smaller one, Q1 on ties ([`twin_min`]).
//! - **Update order** ([`update_f64`]), critic then actor as pranz24 and SB3:
//!   1. critic target `y = r + γ(1 − terminated)(min(Q1′, Q2′)(s′, a′) − α log π(a′|s′))`,
//!      `a′` from the current actor at `s′` with noise ε′, no gradient through `y`; critic loss
//!      `mean_b (Q1 − y)² + mean_b (Q2 − y)²` (pranz24, CleanRL: no ½); one Adam step on each
//!      critic;
//!   2. when `update_index % actor_update_frequency == 0`: actor loss
//!      `mean_b [α log π(ã|s) − min(Q1, Q2)(s, ã)]` with `ã` from noise ε (another draw than ε′)
//!      and the critics *after* step 1, its gradient through the reparameterised action and the
//!      squashing into the actor; one Adam step on the actor. Then, when α is learned,
//!      `loss_α = −mean_b [log α · (log π(ã|s) + target_entropy)]` with that same `log π`,
//!      detached (pranz24 and SB3 put `log α` there, CleanRL `α`); one Adam step on `log α`.
//!      A skipped actor update is not made up later (CleanRL's delayed policy updates run
//!      `actor_update_frequency` of them at once; pranz24 and SB3 have no delay);
//!   3. when `(update_index + 1) % target_update_interval == 0`: `θ′ ← τθ + (1 − τ)θ′` for both
//!      critics (pranz24's `target_update_interval`).
//!
//!   Both losses of one update use the α of its start, `exp(log α)`.
//! - **Adam**: `kernels::adam::reference::adam_step_f64` with PyTorch's defaults (β 0.9, 0.999,
//!   ε 1e-8), no weight decay and no clipping; one state per network, the critics' step counts
//!   counting every update, the actor's and `log α`'s the actor updates. A step whose gradient is
//!   not finite changes nothing and is not counted (as the GPU's `adam.wgsl`).
//! - **Random inputs** ([`draw`]): Philox under `key_of(seed)`, counter `[element, update_index
//!   low, update_index high, tag(purpose, 0, 0)]`, one purpose per stream
//!   (`kernels::purpose::SAC_INDEX`, `SAC_NEXT`, `SAC_CUR`). Replay indices, with
//!   replacement as all three sample, from the full first word by Lemire's multiply-shift
//!   `(word · n) >> 32`; each noise value is the first output of `box_muller` on the first two
//!   words of its own counter.
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernels::adam::reference::{adam_step_f64, AdamParams};
use crate::kernels::net::NetLayout;
use crate::kernels::purpose;
use crate::kernels::rng::{box_muller, key_of, philox, tag};

/// Lower bound of the actor's log standard deviation.
pub const LOG_STD_MIN: f64 = -5.0;
/// Upper bound of the actor's log standard deviation.
pub const LOG_STD_MAX: f64 = 2.0;

/// The activation of an MLP's hidden layers (its output layer is linear).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HiddenActivation {
    /// `max(0, z)`, derivative 0 at 0.
    Relu,
    /// `z · sigmoid(z)`.
    Silu,
}

impl HiddenActivation {
    /// The activation of `z`.
    pub fn apply(self, z: f64) -> f64 {
        match self {
            HiddenActivation::Relu => z.max(0.0),
            HiddenActivation::Silu => z * sigmoid(z),
        }
    }

    /// Its derivative at `z`.
    pub fn derivative(self, z: f64) -> f64 {
        match self {
            HiddenActivation::Relu => f64::from(u8::from(z > 0.0)),
            HiddenActivation::Silu => {
                let s = sigmoid(z);
                s * (1.0 + z * (1.0 - s))
            }
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `log(1 + eˣ)` without overflow.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `log(1 − tanh² u) = 2(log 2 − u − softplus(−2u))`, finite wherever `u` is.
pub fn log_one_minus_tanh_sq(u: f64) -> f64 {
    2.0 * (std::f64::consts::LN_2 - u - softplus(-2.0 * u))
}

/// An MLP in f64: `(in, out, weight [in·out] row-major, bias [out])` per layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<(usize, usize, Vec<f64>, Vec<f64>)>,
    /// Activation after every layer but the last.
    pub hidden_activation: HiddenActivation,
}

/// The values of one forward pass that the backward pass needs.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Rows of the pass.
    pub rows: usize,
    /// Each layer's input `[rows, in]`: the network's input, then every hidden activation.
    pub inputs: Vec<Vec<f64>>,
    /// Each layer's pre-activation `[rows, out]`.
    pub pre: Vec<Vec<f64>>,
    /// The output `[rows, out]` (the last pre-activation).
    pub out: Vec<f64>,
}

impl Mlp {
    /// Widths `sizes` (input, hidden…, output), PyTorch's default initialisation: every weight
    /// and bias uniform in ±1/√in.
    pub fn torch_default(sizes: &[usize], hidden_activation: HiddenActivation, rng: &mut impl Rng) -> Self {
        let layers = sizes
            .windows(2)
            .map(|w| {
                let bound = 1.0 / (w[0] as f64).sqrt();
                let mut draw = |n: usize| (0..n).map(|_| (2.0 * rng.random::<f64>() - 1.0) * bound).collect();
                let weight = draw(w[0] * w[1]);
                (w[0], w[1], weight, draw(w[1]))
            })
            .collect();
        Self { layers, hidden_activation }
    }

    /// Inputs per row.
    pub fn in_dim(&self) -> usize {
        self.layers[0].0
    }

    /// Outputs per row.
    pub fn out_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].1
    }

    /// Every parameter, layer by layer, the weight then the bias (the flat layout of Adam).
    pub fn flat(&self) -> Vec<f64> {
        self.layers.iter().flat_map(|(_, _, w, b)| w.iter().chain(b).copied()).collect()
    }

    /// Sets every parameter from the layout of [`Mlp::flat`].
    pub fn set_flat(&mut self, flat: &[f64]) {
        let mut it = flat.iter().copied();
        for (_, _, w, b) in &mut self.layers {
            w.iter_mut().chain(b.iter_mut()).for_each(|v| *v = it.next().expect("flat holds every parameter"));
        }
        assert!(it.next().is_none(), "flat holds more values than the network's parameters");
    }

    /// The same shape with every value zero.
    pub fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        z.set_flat(&vec![0.0; self.flat().len()]);
        z
    }

    /// The forward pass of `x` (`[rows, in]`).
    pub fn forward(&self, x: &[f64]) -> Forward {
        let rows = x.len() / self.in_dim();
        assert_eq!(rows * self.in_dim(), x.len(), "input is not whole rows of {}", self.in_dim());
        let last = self.layers.len() - 1;
        let mut inputs = vec![x.to_vec()];
        let mut pre = Vec::new();
        for (l, (i, o, w, b)) in self.layers.iter().enumerate() {
            let z = linear(&inputs[l], rows, *i, *o, w, b);
            if l < last {
                inputs.push(z.iter().map(|v| self.hidden_activation.apply(*v)).collect());
            }
            pre.push(z);
        }
        let out = pre[last].clone();
        Forward { rows, inputs, pre, out }
    }

    /// The backward pass of the gradient `grad_out` (`[rows, out]`) of a loss w.r.t. the
    /// output: the gradient w.r.t. every parameter and w.r.t. the input (`[rows, in]`).
    pub fn backward(&self, fwd: &Forward, grad_out: &[f64]) -> (Mlp, Vec<f64>) {
        let mut g = self.zeros_like();
        let mut gz = grad_out.to_vec();
        for l in (0..self.layers.len()).rev() {
            let (i, o, w, _) = &self.layers[l];
            let x = &fwd.inputs[l];
            for r in 0..fwd.rows {
                for q in 0..*o {
                    let d = gz[r * o + q];
                    g.layers[l].3[q] += d;
                    for k in 0..*i {
                        g.layers[l].2[k * o + q] += x[r * i + k] * d;
                    }
                }
            }
            let mut gx = vec![0.0; fwd.rows * i];
            for r in 0..fwd.rows {
                for k in 0..*i {
                    gx[r * i + k] = (0..*o).map(|q| gz[r * o + q] * w[k * o + q]).sum();
                }
            }
            if l > 0 {
                let z = &fwd.pre[l - 1];
                gx.iter_mut().zip(z).for_each(|(v, z)| *v *= self.hidden_activation.derivative(*z));
            }
            gz = gx;
        }
        (g, gz)
    }
}

/// `nets` as members 0, 1, … of a flat buffer of `layout` (the device's order: each layer's
/// weights `[E, in, out]`, then its biases `[E, out]`), rounded to f32, padding zero.
pub fn to_layout(layout: &NetLayout, nets: &[&Mlp]) -> Vec<f32> {
    let mut flat = vec![0.0f32; layout.len];
    for (m, net) in nets.iter().enumerate() {
        for (l, (i, o, w, b)) in net.layers.iter().enumerate() {
            let (wo, bo) = (layout.weight[l] + m * i * o, layout.bias[l] + m * o);
            flat[wo..wo + i * o].iter_mut().zip(w).for_each(|(d, s)| *d = *s as f32);
            flat[bo..bo + o].iter_mut().zip(b).for_each(|(d, s)| *d = *s as f32);
        }
    }
    flat
}

/// Member `m` of `flat`, a buffer of `layout` (parameters, gradients or Adam moments), in the
/// order of [`Mlp::flat`]: layer by layer, the weight then the bias.
pub fn from_layout(layout: &NetLayout, flat: &[f32], m: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for (l, (i, o)) in layout.layer_dims().into_iter().enumerate() {
        let (wo, bo) = (layout.weight[l] + m * i * o, layout.bias[l] + m * o);
        out.extend(flat[wo..wo + i * o].iter().map(|v| *v as f64));
        out.extend(flat[bo..bo + o].iter().map(|v| *v as f64));
    }
    out
}

/// `x · w + b` for `rows` rows.
fn linear(x: &[f64], rows: usize, i: usize, o: usize, w: &[f64], b: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; rows * o];
    for r in 0..rows {
        for q in 0..o {
            z[r * o + q] = b[q] + (0..i).map(|k| x[r * i + k] * w[k * o + q]).sum::<f64>();
        }
    }
    z
}

/// The affine map from `[−1, 1]` to the task's action bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionScale {
    /// `(upper + lower) / 2` per action dimension.
    pub center: Vec<f64>,
    /// `(upper − lower) / 2` per action dimension.
    pub half: Vec<f64>,
}

impl ActionScale {
    /// The scale of bounds `lower`..`upper`, which must be finite with `lower < upper`.
    pub fn from_bounds(lower: &[f64], upper: &[f64]) -> Result<Self> {
        if lower.len() != upper.len() || lower.is_empty() {
            return Err(Error::InvalidInput(format!(
                "action bounds: {} lower and {} upper values; SAC needs one of each per action dimension",
                lower.len(),
                upper.len()
            )));
        }
        for (d, (lo, hi)) in lower.iter().zip(upper).enumerate() {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(Error::InvalidInput(format!(
                    "action bounds of dimension {d}: [{lo}, {hi}]; SAC squashes into finite bounds with lower < upper"
                )));
            }
        }
        let center = lower.iter().zip(upper).map(|(lo, hi)| 0.5 * (hi + lo)).collect();
        let half = lower.iter().zip(upper).map(|(lo, hi)| 0.5 * (hi - lo)).collect();
        Ok(Self { center, half })
    }

    /// Action dimensions.
    pub fn act_dim(&self) -> usize {
        self.half.len()
    }
}

/// The actor's squashed Gaussian at a batch of observations with given noise.
#[derive(Debug, Clone)]
pub struct ActorSample {
    /// The actor's forward pass (outputs `[rows, 2·A]`: means, then raw log σ).
    pub fwd: Forward,
    /// The noise ε `[rows·A]`.
    pub eps: Vec<f64>,
    /// `log σ` `[rows·A]`.
    pub log_std: Vec<f64>,
    /// `u = mean + σ·ε` `[rows·A]`.
    pub u: Vec<f64>,
    /// `center + half·tanh(u)` `[rows·A]`.
    pub action: Vec<f64>,
    /// `log π(action | obs)` `[rows]`.
    pub log_prob: Vec<f64>,
}

/// `log σ` of a raw actor output: CleanRL's smooth bound into [`LOG_STD_MIN`, `LOG_STD_MAX`].
pub fn bounded_log_std(raw: f64) -> f64 {
    LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (raw.tanh() + 1.0)
}

/// Samples the actor at `obs` (`[rows, obs_dim]`) with noise `eps` (`[rows·A]`).
pub fn actor_sample(actor: &Mlp, scale: &ActionScale, obs: &[f64], eps: &[f64]) -> ActorSample {
    let a = scale.act_dim();
    assert_eq!(actor.out_dim(), 2 * a, "the actor outputs a mean and a raw log σ per action dimension");
    let fwd = actor.forward(obs);
    assert_eq!(eps.len(), fwd.rows * a, "one noise value per row and action dimension");
    let n = fwd.rows * a;
    let (mut log_std, mut u, mut action) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut log_prob = vec![0.0; fwd.rows];
    let gauss_const = 0.5 * std::f64::consts::TAU.ln();
    for (r, lp) in log_prob.iter_mut().enumerate() {
        for d in 0..a {
            let (e, mean, raw) = (r * a + d, fwd.out[r * 2 * a + d], fwd.out[r * 2 * a + a + d]);
            log_std[e] = bounded_log_std(raw);
            u[e] = mean + log_std[e].exp() * eps[e];
            action[e] = scale.center[d] + scale.half[d] * u[e].tanh();
            *lp += -0.5 * eps[e] * eps[e] - log_std[e] - gauss_const;
            *lp -= scale.half[d].ln() + log_one_minus_tanh_sq(u[e]);
        }
    }
    ActorSample { fwd, eps: eps.to_vec(), log_std, u, action, log_prob }
}

/// The gradient w.r.t. the actor's outputs (`[rows, 2·A]`) of a loss whose gradients w.r.t.
/// the sample's actions (`grad_action`, `[rows·A]`) and log-probabilities (`grad_log_prob`,
/// `[rows]`) are given: back through the squashing, the reparameterisation and the log σ bound.
pub fn actor_head_backward(
    s: &ActorSample,
    scale: &ActionScale,
    grad_action: &[f64],
    grad_log_prob: &[f64],
) -> Vec<f64> {
    let a = scale.act_dim();
    let mut g = vec![0.0; s.fwd.rows * 2 * a];
    for r in 0..s.fwd.rows {
        for d in 0..a {
            let e = r * a + d;
            let sech_sq = log_one_minus_tanh_sq(s.u[e]).exp();
            // d log π / du = 2 tanh(u); d action / du = half·(1 − tanh² u).
            let g_u = grad_action[e] * scale.half[d] * sech_sq + grad_log_prob[r] * 2.0 * s.u[e].tanh();
            // d log π / d log σ = −1 directly, plus σ·ε through u.
            let g_log_std = g_u * s.log_std[e].exp() * s.eps[e] - grad_log_prob[r];
            let t = s.fwd.out[r * 2 * a + a + d].tanh();
            g[r * 2 * a + d] = g_u;
            g[r * 2 * a + a + d] = g_log_std * 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (1.0 - t * t);
        }
    }
    g
}

/// The deterministic (evaluation) action at `obs`: `center + half·tanh(mean)`.
pub fn deterministic_action(actor: &Mlp, scale: &ActionScale, obs: &[f64]) -> Vec<f64> {
    let a = scale.act_dim();
    let out = actor.forward(obs).out;
    out.chunks(2 * a).flat_map(|row| (0..a).map(move |d| scale.center[d] + scale.half[d] * row[d].tanh())).collect()
}

/// Behaviour cloning's loss and gradient: the mean over rows and actions of
/// `(center + half·tanh(μ(obs)) − label)²` for the rows of `obs` (`[rows·D]`) and their labels
/// (`[rows·A]`), and its gradient w.r.t. the actor's parameters (none through log σ).
pub fn imitation_loss_and_grads(actor: &Mlp, scale: &ActionScale, obs: &[f64], labels: &[f64]) -> (f64, Mlp) {
    let a = scale.act_dim();
    let fwd = actor.forward(obs);
    let n = (fwd.rows * a) as f64;
    let mut grad_out = vec![0.0; fwd.rows * 2 * a];
    let mut loss = 0.0;
    for r in 0..fwd.rows {
        for d in 0..a {
            let t = fwd.out[r * 2 * a + d].tanh();
            let diff = scale.center[d] + scale.half[d] * t - labels[r * a + d];
            loss += diff * diff / n;
            grad_out[r * 2 * a + d] = 2.0 * diff * scale.half[d] * (1.0 - t * t) / n;
        }
    }
    (loss, actor.backward(&fwd, &grad_out).0)
}

/// Which twin is the smaller: Q1 when `q1 <= q2` (ties go to Q1).
pub fn twin_min(q1: f64, q2: f64) -> (f64, bool) {
    if q1 <= q2 {
        (q1, true)
    } else {
        (q2, false)
    }
}

/// `concat(obs, action)` per row: a critic's input.
pub fn critic_input(obs: &[f64], action: &[f64], obs_dim: usize, act_dim: usize) -> Vec<f64> {
    obs.chunks(obs_dim).zip(action.chunks(act_dim)).flat_map(|(o, a)| o.iter().chain(a).copied()).collect()
}

/// A minibatch of transitions, f64, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[B, obs_dim]`.
    pub obs: Vec<f64>,
    /// `[B, act_dim]`, in the task's units.
    pub act: Vec<f64>,
    /// `[B]`.
    pub rew: Vec<f64>,
    /// `[B, obs_dim]`.
    pub next_obs: Vec<f64>,
    /// `[B]`: 1 where the episode ended in a terminal state (not a time limit), else 0.
    pub terminated: Vec<f64>,
}

impl Batch {
    /// Rows of the batch.
    pub fn rows(&self) -> usize {
        self.rew.len()
    }

    /// The rows `indices` of a replay ring stored as the device stores it: `[n, row]` with
    /// `row = obs | act | reward | next obs | terminated` (f32, widened exactly).
    pub fn gather(ring: &[f32], obs_dim: usize, act_dim: usize, indices: &[usize]) -> Self {
        let (d, a) = (obs_dim, act_dim);
        let row = 2 * d + a + 2;
        let mut b = Batch { obs: vec![], act: vec![], rew: vec![], next_obs: vec![], terminated: vec![] };
        let wide = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<f64>>();
        for &i in indices {
            let r = &ring[i * row..(i + 1) * row];
            b.obs.extend(wide(&r[..d]));
            b.act.extend(wide(&r[d..d + a]));
            b.rew.push(r[d + a] as f64);
            b.next_obs.extend(wide(&r[d + a + 1..2 * d + a + 1]));
            b.terminated.push(r[2 * d + a + 1] as f64);
        }
        b
    }
}

/// The critic target of step 1 and what it was made of.
#[derive(Debug, Clone)]
pub struct CriticTarget {
    /// `y` `[B]`.
    pub y: Vec<f64>,
    /// `min(Q1′, Q2′)(s′, a′)` `[B]`.
    pub next_q: Vec<f64>,
    /// `log π(a′|s′)` `[B]`.
    pub next_log_prob: Vec<f64>,
}

/// `y = r + γ(1 − terminated)(min(Q1′, Q2′)(s′, a′) − α log π(a′|s′))` with `a′` from `nets.actor`
/// at `s′` with noise `eps_next`.
pub fn critic_target(nets: &SacNets, scale: &ActionScale, gamma: f64, batch: &Batch, eps_next: &[f64]) -> CriticTarget {
    let (o, a) = (nets.actor.in_dim(), scale.act_dim());
    let next = actor_sample(&nets.actor, scale, &batch.next_obs, eps_next);
    let x = critic_input(&batch.next_obs, &next.action, o, a);
    let (q1, q2) = (nets.q1_target.forward(&x).out, nets.q2_target.forward(&x).out);
    let next_q: Vec<f64> = q1.iter().zip(&q2).map(|(a, b)| twin_min(*a, *b).0).collect();
    let alpha = nets.alpha();
    let y = (0..batch.rows())
        .map(|b| {
            let soft = next_q[b] - alpha * next.log_prob[b];
            batch.rew[b] + gamma * (1.0 - batch.terminated[b]) * soft
        })
        .collect();
    CriticTarget { y, next_q, next_log_prob: next.log_prob }
}

/// The critic loss and its gradients.
#[derive(Debug, Clone)]
pub struct CriticGrads {
    /// `mean_b (Q1 − y)² + mean_b (Q2 − y)²`.
    pub loss: f64,
    /// Q1 at the batch `[B]`.
    pub q1: Vec<f64>,
    /// Q2 at the batch `[B]`.
    pub q2: Vec<f64>,
    /// The gradient w.r.t. Q1's parameters.
    pub grad_q1: Mlp,
    /// The gradient w.r.t. Q2's parameters.
    pub grad_q2: Mlp,
}

/// The critic loss of `q1`, `q2` at the batch's observations and actions against the fixed
/// target `y`, and its gradient w.r.t. both critics.
pub fn critic_loss_and_grads(q1: &Mlp, q2: &Mlp, batch: &Batch, y: &[f64]) -> CriticGrads {
    let (o, a) = (batch.obs.len() / batch.rows(), batch.act.len() / batch.rows());
    let x = critic_input(&batch.obs, &batch.act, o, a);
    let n = batch.rows() as f64;
    let one = |q: &Mlp| {
        let fwd = q.forward(&x);
        let loss = fwd.out.iter().zip(y).map(|(q, y)| (q - y) * (q - y)).sum::<f64>() / n;
        let grad_out: Vec<f64> = fwd.out.iter().zip(y).map(|(q, y)| 2.0 * (q - y) / n).collect();
        let grad = q.backward(&fwd, &grad_out).0;
        (loss, fwd.out, grad)
    };
    let (l1, q1v, grad_q1) = one(q1);
    let (l2, q2v, grad_q2) = one(q2);
    CriticGrads { loss: l1 + l2, q1: q1v, q2: q2v, grad_q1, grad_q2 }
}

/// The actor loss and its gradient.
#[derive(Debug, Clone)]
pub struct ActorGrads {
    /// `mean_b [α log π(ã|s) − min(Q1, Q2)(s, ã)]`.
    pub loss: f64,
    /// The gradient w.r.t. the actor's parameters (through the critics).
    pub grad: Mlp,
    /// `log π(ã|s)` `[B]` (the temperature loss uses it, detached).
    pub log_prob: Vec<f64>,
    /// Per row, whether Q1 was the smaller twin.
    pub picked_q1: Vec<bool>,
}

/// The actor loss at `obs` with noise `eps` and temperature `alpha`, and its gradient w.r.t.
/// the actor's parameters through the reparameterised action, `dQ/da` coming from the input
/// gradient of the smaller critic of each row.
pub fn actor_loss_and_grads(
    actor: &Mlp,
    q1: &Mlp,
    q2: &Mlp,
    scale: &ActionScale,
    alpha: f64,
    obs: &[f64],
    eps: &[f64],
) -> ActorGrads {
    let (o, a) = (actor.in_dim(), scale.act_dim());
    let s = actor_sample(actor, scale, obs, eps);
    let rows = s.fwd.rows;
    let n = rows as f64;
    let x = critic_input(obs, &s.action, o, a);
    let (f1, f2) = (q1.forward(&x), q2.forward(&x));
    let picks: Vec<(f64, bool)> = f1.out.iter().zip(&f2.out).map(|(a, b)| twin_min(*a, *b)).collect();
    let loss = (0..rows).map(|r| alpha * s.log_prob[r] - picks[r].0).sum::<f64>() / n;
    // d loss / d min Q = −1/n, sent to the smaller twin only.
    let g1: Vec<f64> = picks.iter().map(|p| if p.1 { -1.0 / n } else { 0.0 }).collect();
    let g2: Vec<f64> = picks.iter().map(|p| if p.1 { 0.0 } else { -1.0 / n }).collect();
    let (x1, x2) = (q1.backward(&f1, &g1).1, q2.backward(&f2, &g2).1);
    let grad_action: Vec<f64> =
        (0..rows * a).map(|e| x1[(e / a) * (o + a) + o + e % a] + x2[(e / a) * (o + a) + o + e % a]).collect();
    let grad_log_prob = vec![alpha / n; rows];
    let grad_out = actor_head_backward(&s, scale, &grad_action, &grad_log_prob);
    let grad = actor.backward(&s.fwd, &grad_out).0;
    ActorGrads { loss, grad, log_prob: s.log_prob, picked_q1: picks.iter().map(|p| p.1).collect() }
}

/// `loss_α = −mean_b [log α · (log π_b + target_entropy)]` with `log_prob` detached, and its
/// derivative w.r.t. `log α`.
pub fn alpha_loss_and_grad(log_alpha: f64, log_prob: &[f64], target_entropy: f64) -> (f64, f64) {
    let mean = log_prob.iter().map(|l| l + target_entropy).sum::<f64>() / log_prob.len() as f64;
    (-log_alpha * mean, -mean)
}

/// `target ← τ·source + (1 − τ)·target`, parameter by parameter.
pub fn polyak(target: &mut Mlp, source: &Mlp, tau: f64) {
    let src = source.flat();
    let next: Vec<f64> = target.flat().iter().zip(&src).map(|(t, s)| tau * s + (1.0 - tau) * t).collect();
    target.set_flat(&next);
}

/// Every network of SAC and the temperature.
#[derive(Debug, Clone, PartialEq)]
pub struct SacNets {
    /// obs → `2·A` (means, raw log σ).
    pub actor: Mlp,
    /// `concat(obs, action)` → 1.
    pub q1: Mlp,
    /// The second critic.
    pub q2: Mlp,
    /// Q1's Polyak average.
    pub q1_target: Mlp,
    /// Q2's Polyak average.
    pub q2_target: Mlp,
    /// `log α`.
    pub log_alpha: f64,
}

/// The sizes and activations of SAC's networks.
#[derive(Debug, Clone, PartialEq)]
pub struct NetShapes {
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// The actor's hidden widths.
    pub actor_hidden: Vec<usize>,
    /// The actor's hidden activation.
    pub actor_activation: HiddenActivation,
    /// Each critic's hidden widths.
    pub critic_hidden: Vec<usize>,
    /// The critics' hidden activation.
    pub critic_activation: HiddenActivation,
}

impl SacNets {
    /// Fresh networks of `shapes` (PyTorch's default initialisation), the targets copies of the
    /// critics, `α = initial_alpha`.
    pub fn new(shapes: &NetShapes, initial_alpha: f64, rng: &mut impl Rng) -> Self {
        let (o, a) = (shapes.obs_dim, shapes.act_dim);
        let sizes = |input: usize, hidden: &[usize], out: usize| {
            std::iter::once(input).chain(hidden.iter().copied()).chain(std::iter::once(out)).collect::<Vec<_>>()
        };
        let actor = Mlp::torch_default(&sizes(o, &shapes.actor_hidden, 2 * a), shapes.actor_activation, rng);
        let critic_sizes = sizes(o + a, &shapes.critic_hidden, 1);
        let q1 = Mlp::torch_default(&critic_sizes, shapes.critic_activation, rng);
        let q2 = Mlp::torch_default(&critic_sizes, shapes.critic_activation, rng);
        Self { actor, q1_target: q1.clone(), q2_target: q2.clone(), q1, q2, log_alpha: initial_alpha.ln() }
    }

    /// `α = exp(log α)`.
    pub fn alpha(&self) -> f64 {
        self.log_alpha.exp()
    }
}

/// One network's Adam state.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    /// First moments (the flat layout of [`Mlp::flat`]).
    pub m1: Vec<f64>,
    /// Second moments.
    pub m2: Vec<f64>,
    /// Steps taken.
    pub t: u32,
}

impl AdamState {
    /// Zero moments for `n` parameters.
    pub fn zeros(n: usize) -> Self {
        Self { m1: vec![0.0; n], m2: vec![0.0; n], t: 0 }
    }

    /// One Adam step of `params` along `grads` at learning rate `lr`; false (nothing changed,
    /// the step not counted) when the gradient is not finite.
    pub fn step(&mut self, lr: f64, params: &mut [f64], grads: &[f64]) -> bool {
        let p = AdamParams { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, clip_norm: 0.0 };
        let taken = adam_step_f64(&p, self.t + 1, params, grads, &mut self.m1, &mut self.m2, 0);
        self.t += u32::from(taken);
        taken
    }

    /// One Adam step of network `net` along `grad`.
    pub fn step_net(&mut self, lr: f64, net: &mut Mlp, grad: &Mlp) -> bool {
        let mut flat = net.flat();
        let taken = self.step(lr, &mut flat, &grad.flat());
        net.set_flat(&flat);
        taken
    }
}

/// The Adam state of every trained quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct SacAdam {
    /// The actor's.
    pub actor: AdamState,
    /// Q1's.
    pub q1: AdamState,
    /// Q2's.
    pub q2: AdamState,
    /// `log α`'s.
    pub log_alpha: AdamState,
}

impl SacAdam {
    /// Zero state for `nets`.
    pub fn new(nets: &SacNets) -> Self {
        let z = |m: &Mlp| AdamState::zeros(m.flat().len());
        Self { actor: z(&nets.actor), q1: z(&nets.q1), q2: z(&nets.q2), log_alpha: AdamState::zeros(1) }
    }
}

/// The settings one update needs (from `sac::SacConfig::update_settings`).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSettings {
    /// Discount γ.
    pub gamma: f64,
    /// Polyak coefficient τ.
    pub tau: f64,
    /// The actor's learning rate.
    pub lr_actor: f64,
    /// The critics' learning rate.
    pub lr_critic: f64,
    /// `log α`'s learning rate.
    pub lr_alpha: f64,
    /// Polyak-average the targets after every this many updates.
    pub target_update_interval: u64,
    /// Update the actor (and α) on every this many updates.
    pub actor_update_frequency: u64,
    /// Learn α (else it stays at `exp(log α)`).
    pub learn_alpha: bool,
    /// The entropy α is tuned towards.
    pub target_entropy: f64,
    /// The task's action bounds.
    pub scale: ActionScale,
}

/// The noise of one update.
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    /// ε′ `[B·A]`: the next states' actions in the critic target.
    pub eps_next: Vec<f64>,
    /// ε `[B·A]`: the current states' actions in the actor and temperature losses.
    pub eps_cur: Vec<f64>,
}

/// What one update computed.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateStats {
    /// The critic loss before the critic step.
    pub critic_loss: f64,
    /// The actor loss (with the stepped critics), None when the actor was not updated.
    pub actor_loss: Option<f64>,
    /// The temperature loss, None when the actor was not updated or α is fixed.
    pub alpha_loss: Option<f64>,
    /// The α both losses used (the update's start).
    pub alpha: f64,
    /// `−mean_b log π(a′|s′)` of the critic target (every update has one).
    pub entropy: f64,
    /// `mean_b (Q1 + Q2)/2` at the batch's actions before the critic step.
    pub mean_q: f64,
    /// Adam steps refused because their gradient was not finite.
    pub refused_steps: u32,
}

/// One whole SAC update (the module's order): critic step, then on actor updates the actor
/// and temperature steps, then on target updates the Polyak averages.
pub fn update_f64(
    nets: &mut SacNets,
    adam: &mut SacAdam,
    s: &UpdateSettings,
    batch: &Batch,
    noise: &Noise,
    update_index: u64,
) -> UpdateStats {
    let alpha = nets.alpha();
    let target = critic_target(nets, &s.scale, s.gamma, batch, &noise.eps_next);
    let (mut refused, critic) = critic_step(nets, adam, s, batch, &target.y);
    let n = batch.rows() as f64;
    let mean_q = critic.q1.iter().zip(&critic.q2).map(|(a, b)| 0.5 * (a + b)).sum::<f64>() / n;
    let critic_loss = critic.loss;
    let (mut actor_loss, mut alpha_loss) = (None, None);
    if update_index.is_multiple_of(s.actor_update_frequency) {
        let (losses, r) = actor_and_alpha_step(nets, adam, s, &batch.obs, &noise.eps_cur);
        (actor_loss, alpha_loss) = losses;
        refused += r;
    }
    if (update_index + 1).is_multiple_of(s.target_update_interval) {
        polyak(&mut nets.q1_target, &nets.q1, s.tau);
        polyak(&mut nets.q2_target, &nets.q2, s.tau);
    }
    let entropy = -target.next_log_prob.iter().sum::<f64>() / n;
    UpdateStats { critic_loss, actor_loss, alpha_loss, alpha, entropy, mean_q, refused_steps: refused }
}

/// Step 1's Adam steps on both critics; the refused steps and the loss they followed.
fn critic_step(
    nets: &mut SacNets,
    adam: &mut SacAdam,
    s: &UpdateSettings,
    batch: &Batch,
    y: &[f64],
) -> (u32, CriticGrads) {
    let g = critic_loss_and_grads(&nets.q1, &nets.q2, batch, y);
    let ok1 = adam.q1.step_net(s.lr_critic, &mut nets.q1, &g.grad_q1);
    let ok2 = adam.q2.step_net(s.lr_critic, &mut nets.q2, &g.grad_q2);
    (u32::from(!ok1) + u32::from(!ok2), g)
}

/// Step 2: the actor's Adam step, then the temperature's; the two losses and the refused steps.
fn actor_and_alpha_step(
    nets: &mut SacNets,
    adam: &mut SacAdam,
    s: &UpdateSettings,
    obs: &[f64],
    eps: &[f64],
) -> ((Option<f64>, Option<f64>), u32) {
    let g = actor_loss_and_grads(&nets.actor, &nets.q1, &nets.q2, &s.scale, nets.alpha(), obs, eps);
    let mut refused = u32::from(!adam.actor.step_net(s.lr_actor, &mut nets.actor, &g.grad));
    if !s.learn_alpha {
        return ((Some(g.loss), None), refused);
    }
    let (loss, grad) = alpha_loss_and_grad(nets.log_alpha, &g.log_prob, s.target_entropy);
    let mut p = [nets.log_alpha];
    refused += u32::from(!adam.log_alpha.step(s.lr_alpha, &mut p, &[grad]));
    nets.log_alpha = p[0];
    ((Some(g.loss), Some(loss)), refused)
}

/// The Philox counter of `element` of stream `purpose` at update `update_index`.
pub fn counter(element: u32, update_index: u64, purpose: u32) -> [u32; 4] {
    [element, update_index as u32, (update_index >> 32) as u32, tag(purpose, 0, 0)]
}

/// A replay index in `[0, n)` from a full 32-bit word: Lemire's multiply-shift `(word · n) >> 32`.
pub fn replay_index(word: u32, n: u32) -> u32 {
    ((word as u64 * n as u64) >> 32) as u32
}

/// The standard normal `element` of stream `purpose` at update `update_index`.
pub fn gaussian(key: [u32; 2], update_index: u64, purpose: u32, element: u32) -> f64 {
    let w = philox(counter(element, update_index, purpose), key);
    box_muller(w[0], w[1]).0
}

/// The random inputs of update `update_index` under `seed`: `batch` replay indices in
/// `[0, n_stored)` and the noise of `batch` rows of `act_dim` actions, as the GPU draws them.
pub fn draw(
    seed: u64,
    update_index: u64,
    n_stored: usize,
    batch: usize,
    act_dim: usize,
) -> Result<(Vec<usize>, Noise)> {
    let (rows, noise) = draw_mixed(
        seed,
        update_index,
        Fill { real: n_stored, model: 0, real_rows: batch, head: 0, capacity: 0, window: 0 },
        batch,
        act_dim,
    )?;
    Ok((rows.into_iter().map(|r| r.index).collect(), noise))
}

/// How full the two rings are and how many minibatch rows the real one gives (MBPO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Transitions in the real ring.
    pub real: usize,
    /// Transitions in the model ring.
    pub model: usize,
    /// Minibatch rows drawn from the real ring while the model ring holds any.
    pub real_rows: usize,
    /// The model ring's next row.
    pub head: usize,
    /// The model ring's rows.
    pub capacity: usize,
    /// The newest model-ring rows drawn from.
    pub window: usize,
}

/// A minibatch row's transition: which ring and which row of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drawn {
    /// From the real ring (else the model ring).
    pub real: bool,
    /// The row.
    pub index: usize,
}

/// [`draw`] over two rings: the first `fill.real_rows` rows from the real ring and the others
/// from the newest `fill.window` rows of the model ring, counted back from the one before its
/// head (all from the real ring while the model ring is empty), each index from the row's own
/// word as in `sample`.
pub fn draw_mixed(
    seed: u64,
    update_index: u64,
    fill: Fill,
    batch: usize,
    act_dim: usize,
) -> Result<(Vec<Drawn>, Noise)> {
    let count = |n: usize| {
        u32::try_from(n)
            .map_err(|_| Error::InvalidInput(format!("SAC draw: {n} stored transitions exceed the u32 range")))
    };
    let (n_real, n_model) = (count(fill.real)?, count(fill.model.min(fill.window))?);
    let elements = u32::try_from(batch * act_dim)
        .map_err(|_| Error::InvalidInput(format!("SAC draw: {batch} × {act_dim} noise values exceed the u32 range")))?;
    let key = key_of(seed);
    let mut rows = Vec::with_capacity(batch);
    for i in 0..batch as u32 {
        let real = (i as usize) < fill.real_rows || n_model == 0;
        let n = if real { n_real } else { n_model };
        if n == 0 {
            return Err(Error::InvalidInput("SAC draw: no stored transitions to sample from".into()));
        }
        let drawn = replay_index(philox(counter(i, update_index, purpose::SAC_INDEX), key)[0], n) as usize;
        let index = if real { drawn } else { (fill.head + fill.capacity - 1 - drawn) % fill.capacity };
        rows.push(Drawn { real, index });
    }
    let stream = |p: u32| (0..elements).map(|e| gaussian(key, update_index, p, e)).collect();
    Ok((rows, Noise { eps_next: stream(purpose::SAC_NEXT), eps_cur: stream(purpose::SAC_CUR) }))
}
