//! SAC on the GPU: the device's updates against the f64 reference, and its invariants.

mod common;

use lookahead::kernels::mlp::Activation;
use lookahead::sac::device::{SacDevice, SacParamsF32, SacShapes, UpdatePlan, UpdateSettings};

/// Ragged sizes: batch 5, obs 3, act 2, hidden widths 7 and 6.
fn shapes(activation: Activation) -> SacShapes {
    SacShapes {
        obs_dim: 3,
        act_dim: 2,
        batch: 5,
        capacity: 11,
        actor_hidden: vec![7, 6],
        critic_hidden: vec![6, 7],
        actor_activation: activation,
        critic_activation: activation,
        max_updates: 4,
        model_capacity: 0,
        real_rows: 5,
    }
}

fn settings() -> UpdateSettings {
    UpdateSettings {
        gamma: 0.9,
        tau: 0.25,
        target_entropy: -2.0,
        learn_alpha: true,
        lr: [1e-3, 2e-3, 3e-3],
        adam: [0.9, 0.999, 1e-8],
        seed: 7,
        center: vec![0.5, -1.0],
        half: vec![1.5, 2.0],
    }
}

fn device(ctx: &lookahead::gpu::GpuContext, activation: Activation) -> SacDevice {
    let s = shapes(activation);
    let align = lookahead::kernels::net::NetLayout::alignment(ctx);
    let al = lookahead::kernels::net::NetLayout::new(&s.actor_widths(), 1, align);
    let cl = lookahead::kernels::net::NetLayout::new(&s.critic_widths(), 2, align);
    let critic = cl.init_uniform(2);
    let init = SacParamsF32 { actor: al.init_uniform(1), target: critic.clone(), critic, log_alpha: -0.5 };
    let mut dev = SacDevice::new(ctx, s, settings(), &init).expect("the device builds");
    for t in 0..13 {
        let f = t as f32;
        let obs = [0.1 * f, (0.3 * f).sin(), -0.2 * f];
        let next = [0.1 * f + 0.05, (0.3 * f + 0.1).sin(), -0.2 * f + 0.1];
        dev.push(&obs, &[0.4 - 0.1 * f, 0.2], (0.7 * f).cos(), &next, t % 5 == 4).unwrap();
    }
    dev
}

/// Updates leave every value finite, move the targets by exactly τ toward the online critics
/// (catches a Polyak mix-up or targets never updated), count one Adam step per network step
/// (catches the actor stepped on updates that should skip it), report no actor statistics on
/// critic-only updates, and are reproducible from the same state (the draws follow the update
/// index only).
#[test]
fn updates_are_finite_polyak_exact_and_reproducible() {
    let ctx = common::ctx();
    let run = || {
        let mut dev = device(&ctx, Activation::Relu);
        let before = dev.params().unwrap();
        let plans =
            [UpdatePlan { index: 0, actor: true, polyak: false }, UpdatePlan { index: 1, actor: false, polyak: true }];
        let step = dev.run(&plans, Some(&[0.1, 0.2, 0.3]), 3, false).unwrap();
        (dev, before, step)
    };
    let (dev, before, step) = run();
    let after = dev.params().unwrap();
    assert_eq!(step.stats.len(), 2);
    assert!(step.stats[0].actor_loss.is_some() && step.stats[1].actor_loss.is_none(), "{:?}", step.stats);
    for s in &step.stats {
        assert!(s.critic_loss.is_finite() && s.mean_q.is_finite() && s.alpha > 0.0, "{s:?}");
    }
    assert_eq!(dev.adam_steps().unwrap(), [1, 2, 1]);
    for (i, ((t0, t1), c)) in before.target.iter().zip(&after.target).zip(&after.critic).enumerate() {
        let expected = 0.25 * c + 0.75 * t0;
        assert!((t1 - expected).abs() <= 1e-6 * (1.0 + expected.abs()), "target {i}: {t1} vs {expected}");
    }
    assert_ne!(before.actor, after.actor, "the actor step changed nothing");
    assert_ne!(before.log_alpha, after.log_alpha, "α was not learned");
    let a = step.action.clone().expect("an action");
    assert!(a[0] >= -1.0 && a[0] <= 2.0 && a[1] >= -3.0 && a[1] <= 1.0, "the action {a:?} is outside the bounds");
    let (dev2, _, step2) = run();
    assert_eq!(step, step2, "the same updates from the same state differ");
    assert_eq!(dev2.params().unwrap(), after);
}

/// With a model ring (MBPO), a minibatch's first `real_rows` rows come from the real ring and
/// the others from the newest `window` rows of the model ring, counted back from the one before
/// its head across the wrap, as `sac::reference::draw_mixed` draws them. Catches the model rows
/// drawn from the whole ring (or its oldest rows), the real rows drawn from the model ring, and
/// an index that does not wrap.
#[test]
fn minibatches_mix_the_real_rows_and_the_newest_model_rows() {
    use lookahead::sac::reference::{draw_mixed, Fill};
    let ctx = common::ctx();
    let s = SacShapes { model_capacity: 7, real_rows: 2, ..shapes(Activation::Relu) };
    let align = lookahead::kernels::net::NetLayout::alignment(&ctx);
    let al = lookahead::kernels::net::NetLayout::new(&s.actor_widths(), 1, align);
    let cl = lookahead::kernels::net::NetLayout::new(&s.critic_widths(), 2, align);
    let critic = cl.init_uniform(2);
    let init = SacParamsF32 { actor: al.init_uniform(1), target: critic.clone(), critic, log_alpha: -0.5 };
    let row = s.row_len();
    let mut dev = SacDevice::new(&ctx, s, settings(), &init).unwrap();
    let mut real = Vec::new();
    for t in 0..9 {
        let f = t as f32;
        let r: Vec<f32> = vec![f, -f, 0.5 * f, 0.1 * f, 0.2, f + 0.5, 1.0, 2.0, 3.0, 0.0];
        dev.push(&r[..3], &r[3..5], r[5], &r[6..9], false).unwrap();
        real.push(r);
    }
    // A wrapped model ring: head 3, full; every row tells its index (1000 + row).
    let model: Vec<f32> = (0..7).flat_map(|i| vec![1000.0 + i as f32; row]).collect();
    let (ring, state) = dev.model_ring().expect("a model ring");
    ctx.queue.write_buffer(ring, 0, bytemuck::cast_slice(&model));
    ctx.queue.write_buffer(state, 0, bytemuck::cast_slice(&[3u32, 7, 7, 0]));
    dev.set_model_window(4);
    dev.run(&[UpdatePlan { index: 3, actor: false, polyak: false }], None, 0, false).unwrap();
    let drawn = dev.last_minibatch().unwrap();
    let fill = Fill { real: 9, model: 7, real_rows: 2, head: 3, capacity: 7, window: 4 };
    let (rows, _) = draw_mixed(settings().seed, 3, fill, 5, 2).unwrap();
    for (b, d) in rows.iter().enumerate() {
        let got = drawn.obs[b * 3];
        let want = if d.real { real[d.index][0] } else { 1000.0 + d.index as f32 };
        assert_eq!(got, want, "row {b}: {d:?}");
        assert_eq!(d.real, b < 2, "row {b}: {d:?}");
        assert!(d.real || [2, 1, 0, 6].contains(&d.index), "row {b} outside the window: {d:?}");
    }
}

mod against_reference {
    use super::*;
    use lookahead::kernels::net::NetLayout;
    use lookahead::sac::reference::{self as r, ActionScale, Batch, HiddenActivation, Mlp, SacAdam, SacNets};
    use rand::SeedableRng;

    fn close(what: &str, gpu: &[f64], cpu: &[f64], tol: f64) {
        assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
        for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
            assert!((g - c).abs() <= tol * (1.0 + c.abs()), "{what}[{i}]: GPU {g} vs f64 {c}");
        }
    }

    /// (obs, act, reward, next obs, terminated) as the reference sees them.
    type Transition = (Vec<f64>, Vec<f64>, f64, Vec<f64>, f64);

    struct Case {
        dev: SacDevice,
        nets: SacNets,
        adam: SacAdam,
        settings: r::UpdateSettings,
        transitions: Vec<Transition>,
        al: NetLayout,
        cl: NetLayout,
    }

    fn case(ctx: &lookahead::gpu::GpuContext, activation: Activation, hidden: HiddenActivation) -> Case {
        let s = shapes(activation);
        let ns = r::NetShapes {
            obs_dim: s.obs_dim,
            act_dim: s.act_dim,
            actor_hidden: s.actor_hidden.clone(),
            actor_activation: hidden,
            critic_hidden: s.critic_hidden.clone(),
            critic_activation: hidden,
        };
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(5);
        let mut nets = SacNets::new(&ns, 0.6, &mut rng);
        // Targets unlike the critics, so that a target read from the online critics shows.
        nets.q1_target = Mlp::torch_default(&s.critic_widths(), hidden, &mut rng);
        nets.q2_target = Mlp::torch_default(&s.critic_widths(), hidden, &mut rng);
        let align = NetLayout::alignment(ctx);
        let al = NetLayout::new(&s.actor_widths(), 1, align);
        let cl = NetLayout::new(&s.critic_widths(), 2, align);
        let init = SacParamsF32::of_reference(&nets, &al, &cl);
        // Round the reference to the GPU's f32 start.
        init.set_reference(&mut nets, &al, &cl);
        let us = settings();
        let mut dev = SacDevice::new(ctx, s.clone(), us.clone(), &init).unwrap();
        let mut transitions = Vec::new();
        for t in 0..9 {
            let f = t as f64;
            let obs = vec![0.3 * f - 1.0, (0.7 * f).sin(), 0.5 - 0.1 * f];
            let act = vec![0.5 + 1.4 * (0.9 * f).sin(), -1.0 + 1.9 * (1.3 * f).cos()];
            let next = vec![obs[0] + 0.1, (0.7 * f + 0.2).sin(), obs[2] - 0.05];
            let (rew, term) = ((0.4 * f).cos() - 0.2, f64::from(u8::from(t % 4 == 3)));
            let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
            dev.push(&f32s(&obs), &f32s(&act), rew as f32, &f32s(&next), term > 0.5).unwrap();
            // The reference sees the values the GPU stores.
            let r32 = |v: &[f64]| v.iter().map(|x| *x as f32 as f64).collect::<Vec<f64>>();
            transitions.push((r32(&obs), r32(&act), rew as f32 as f64, r32(&next), term));
        }
        let settings = r::UpdateSettings {
            gamma: us.gamma,
            tau: us.tau,
            lr_actor: us.lr[0],
            lr_critic: us.lr[1],
            lr_alpha: us.lr[2],
            target_update_interval: 2,
            actor_update_frequency: 2,
            learn_alpha: us.learn_alpha,
            target_entropy: us.target_entropy,
            scale: ActionScale { center: us.center.clone(), half: us.half.clone() },
        };
        let adam = SacAdam::new(&nets);
        Case { dev, nets, adam, settings, transitions, al, cl }
    }

    fn batch_of(c: &Case, index: u64) -> (Batch, r::Noise) {
        let (idx, noise) = r::draw(settings().seed, index, c.transitions.len(), 5, 2).unwrap();
        let mut b = Batch { obs: vec![], act: vec![], rew: vec![], next_obs: vec![], terminated: vec![] };
        for i in idx {
            let (o, a, rw, n, t) = &c.transitions[i];
            b.obs.extend(o);
            b.act.extend(a);
            b.rew.push(*rw);
            b.next_obs.extend(n);
            b.terminated.push(*t);
        }
        (b, noise)
    }

    /// One update's gradients (critics, then the actor through the stepped critics, then
    /// log α) and parameters after it, for ReLU and SiLU networks, against `sac::reference`:
    /// catches any wrong term of the three losses, a wrong min of the twins, a dropped
    /// terminated mask, a wrong tanh correction or log σ bound, the actor reading the critics
    /// before their step, and the draws (indices and both noise streams) disagreeing.
    #[test]
    fn one_update_matches_the_reference_gradient_by_gradient() {
        let ctx = common::ctx();
        for (act, hidden) in [(Activation::Relu, HiddenActivation::Relu), (Activation::Silu, HiddenActivation::Silu)] {
            let mut c = case(&ctx, act, hidden);
            let (batch, noise) = batch_of(&c, 0);
            let target = r::critic_target(&c.nets, &c.settings.scale, c.settings.gamma, &batch, &noise.eps_next);
            let cg = r::critic_loss_and_grads(&c.nets.q1, &c.nets.q2, &batch, &target.y);
            let mut after = c.nets.clone();
            let stats = r::update_f64(&mut after, &mut c.adam, &c.settings, &batch, &noise, 0);
            let ag = r::actor_loss_and_grads(
                &c.nets.actor,
                &after.q1,
                &after.q2,
                &c.settings.scale,
                c.nets.alpha(),
                &batch.obs,
                &noise.eps_cur,
            );
            let plan = UpdatePlan { index: 0, actor: true, polyak: false };
            let step = c.dev.run(&[plan], None, 0, false).unwrap();
            let g = step.stats[0];
            let tol = 2e-4;
            close("critic loss", &[g.critic_loss], &[stats.critic_loss], tol);
            close("mean Q", &[g.mean_q], &[stats.mean_q], tol);
            close("entropy", &[g.entropy], &[stats.entropy], tol);
            close("actor loss", &[g.actor_loss.unwrap()], &[stats.actor_loss.unwrap()], tol);
            let [ga, gc, galpha] = c.dev.grads().unwrap();
            let f64s = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
            close("Q1 gradient", &r::from_layout(&c.cl, &gc, 0), &cg.grad_q1.flat(), tol);
            close("Q2 gradient", &r::from_layout(&c.cl, &gc, 1), &cg.grad_q2.flat(), tol);
            close("actor gradient", &r::from_layout(&c.al, &ga, 0), &ag.grad.flat(), tol);
            let (_, alpha_grad) = r::alpha_loss_and_grad(c.nets.log_alpha, &ag.log_prob, c.settings.target_entropy);
            close("log α gradient", &f64s(&galpha), &[alpha_grad], tol);
            let p = c.dev.params().unwrap();
            close("Q1 after", &r::from_layout(&c.cl, &p.critic, 0), &after.q1.flat(), 1e-5);
            close("actor after", &r::from_layout(&c.al, &p.actor, 0), &after.actor.flat(), 1e-5);
            close("log α after", &[p.log_alpha as f64], &[after.log_alpha], 1e-5);
        }
    }

    /// Five updates with the actor and the targets every second update: the schedule, the
    /// Polyak averages and the Adam states follow the reference (catches targets never or
    /// always updated, the actor stepped on every update, the update index not advancing the
    /// draws).
    #[test]
    fn five_updates_follow_the_reference_schedule() {
        let ctx = common::ctx();
        let mut c = case(&ctx, Activation::Relu, HiddenActivation::Relu);
        let mut nets = c.nets.clone();
        let plans: Vec<UpdatePlan> =
            (0..4u64).map(|i| UpdatePlan { index: i, actor: i % 2 == 0, polyak: (i + 1) % 2 == 0 }).collect();
        for i in 0..4u64 {
            let (batch, noise) = batch_of(&c, i);
            r::update_f64(&mut nets, &mut c.adam, &c.settings, &batch, &noise, i);
        }
        c.dev.run(&plans, None, 0, false).unwrap();
        let p = c.dev.params().unwrap();
        assert_eq!(c.dev.adam_steps().unwrap(), [c.adam.actor.t, c.adam.q1.t, c.adam.log_alpha.t]);
        let tol = 2e-4;
        close("Q1 target", &r::from_layout(&c.cl, &p.target, 0), &nets.q1_target.flat(), tol);
        close("Q2 target", &r::from_layout(&c.cl, &p.target, 1), &nets.q2_target.flat(), tol);
        close("actor", &r::from_layout(&c.al, &p.actor, 0), &nets.actor.flat(), tol);
        close("log α", &[p.log_alpha as f64], &[nets.log_alpha], tol);
    }
}

mod runs {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use lookahead::env::{Env, EnvKind, Step};
    use lookahead::sac::{self, Policy, RunOptions, SacCheckpoint, SacConfig, SacPreset, TaskOrigin};

    /// A small pendulum run: 1 200 steps (200 random), evaluations every 400 steps.
    fn small(sets: &[&str]) -> SacConfig {
        let mut all: Vec<String> = [
            "sac.actor_hidden=[16, 16]",
            "sac.critic_hidden=[16, 16]",
            "sac.batch_size=32",
            "loop.total_steps=1200",
            "loop.random_steps=200",
            "loop.eval_every=400",
            "loop.eval_episodes=1",
            "loop.buffer_capacity=700",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(sets.iter().map(|s| s.to_string()));
        SacConfig::resolve(EnvKind::Pendulum, TaskOrigin::BuiltIn, SacPreset::Demo, None, &all).unwrap()
    }

    fn read(dir: &std::path::Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    /// A run stopped by the interrupt flag mid-way and resumed ends exactly as an uninterrupted
    /// one: the same evaluations and bit-identical networks, Adam states and ring (catches any
    /// state a resume point forgets: the ring after it wrapped around, Adam's step counts, the
    /// update index of the draws, the host generator, the episode count of the reset seeds).
    #[test]
    fn a_stopped_and_resumed_run_equals_an_uninterrupted_one() {
        let ctx = super::common::ctx();
        let cfg = small(&[]);
        let base = std::env::temp_dir().join(format!("lookahead-sac-resume-{}", std::process::id()));
        std::fs::remove_dir_all(&base).ok();
        let (straight, stopped) = (base.join("straight"), base.join("stopped"));
        let mut env = cfg.env.make();
        let whole =
            sac::run(&ctx, &cfg, env.as_mut(), RunOptions { out_dir: Some(straight.clone()), ..Default::default() })
                .unwrap();
        assert_eq!(whole.evals.len(), 3, "{:?}", whole.evals);
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let mut stop_at_900 = |p: &sac::Progress| {
            if p.env_step == 900 {
                f.store(true, Ordering::SeqCst);
            }
        };
        let opts = RunOptions {
            out_dir: Some(stopped.clone()),
            interrupt: Some(flag),
            progress: Some(&mut stop_at_900),
            ..Default::default()
        };
        let cut = sac::run(&ctx, &cfg, env.as_mut(), opts).unwrap();
        assert!(cut.interrupted && cut.evals.len() == 2, "{cut:?}");
        let resumed = sac::run(
            &ctx,
            &cfg,
            env.as_mut(),
            RunOptions { out_dir: Some(stopped.clone()), resume: true, ..Default::default() },
        )
        .unwrap();
        assert!(!resumed.interrupted);
        let rows = |d: &std::path::Path| -> Vec<String> {
            // Every column but the wall time.
            read(d, "results.csv").lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
        };
        assert_eq!(rows(&stopped), rows(&straight));
        let a = SacCheckpoint::load(&straight.join("model.safetensors")).unwrap();
        let b = SacCheckpoint::load(&stopped.join("model.safetensors")).unwrap();
        assert_eq!(a.tensors, b.tensors, "the resumed networks or Adam states differ");
        // The manifests agree but for the digests that cover the evaluations' wall times.
        let bare = |m: &lookahead::sac::checkpoint::SacManifest| lookahead::sac::checkpoint::SacManifest {
            point_sha256: String::new(),
            sha256: String::new(),
            ..m.clone()
        };
        assert_eq!(bare(&a.manifest), bare(&b.manifest));
        let ring = |d: &std::path::Path| std::fs::read(d.join("replay.3.safetensors")).unwrap();
        assert_eq!(ring(&straight), ring(&stopped), "the resumed replay ring differs");
        // The run's policy replays, on the CPU and on the GPU alike.
        let policy = Policy::load(&straight.join("model.safetensors")).unwrap();
        let obs: Vec<f64> = (0..30).map(|i| ((i as f64) * 0.37).sin() * 2.0).collect();
        let gpu = policy.act_batch(&ctx, &obs).unwrap();
        for (r, row) in obs.chunks(3).enumerate() {
            let cpu = policy.act(row).unwrap();
            assert!((cpu[0] - gpu[r]).abs() < 1e-4, "row {r}: CPU {cpu:?} GPU {}", gpu[r]);
        }
        let replay = sac::evaluate(&straight, 2, 1, Default::default()).unwrap();
        assert_eq!(replay.returns.len(), 2);
        std::fs::remove_dir_all(&base).ok();
    }

    /// SAC learns the built-in pendulum on lavapipe within CI time: after 6 000 steps (2×64
    /// networks, batch 64) the deterministic policy's mean return over five evaluation
    /// episodes beats a uniformly random policy on the same reset seeds by a wide margin and
    /// is a swing-up (> −450; random: about −1 200). Fails when the updates are wrong in ways
    /// the gradient checks might miss together (a sign, a schedule, a target never moving).
    #[test]
    fn sac_learns_the_pendulum() {
        use rand::{Rng, SeedableRng};
        let ctx = super::common::ctx();
        let sets = [
            "loop.total_steps=6000",
            "loop.random_steps=500",
            "loop.eval_every=6000",
            "loop.eval_episodes=5",
            "sac.batch_size=64",
        ];
        let all: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let mut cfg = SacConfig::resolve(EnvKind::Pendulum, TaskOrigin::BuiltIn, SacPreset::Demo, None, &all).unwrap();
        cfg.seed = 3;
        let mut env = cfg.env.make();
        let run = sac::run(&ctx, &cfg, env.as_mut(), RunOptions::default()).unwrap();
        let learned = run.evals.last().expect("a final evaluation").eval_return;
        // A random policy on the evaluation's reset seeds.
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut random = 0.0;
        for k in 0..5 {
            env.reset(sac::eval_seed(cfg.seed, k));
            loop {
                let s = env.step(&[rng.random_range(-2.0..2.0)]).unwrap();
                random += s.reward / 5.0;
                if s.terminated || s.truncated {
                    break;
                }
            }
        }
        assert!(learned > random + 500.0 && learned > -450.0, "SAC {learned:.1} vs random {random:.1}");
    }

    /// An environment with unbounded actions.
    struct Unbounded;
    impl Env for Unbounded {
        fn obs_dim(&self) -> usize {
            2
        }
        fn act_dim(&self) -> usize {
            1
        }
        fn action_bounds(&self) -> (Vec<f64>, Vec<f64>) {
            (vec![f64::NEG_INFINITY], vec![f64::INFINITY])
        }
        fn reset(&mut self, _seed: u64) -> Vec<f64> {
            vec![0.0, 0.0]
        }
        fn step(&mut self, _action: &[f64]) -> lookahead::Result<Step> {
            Ok(Step { obs: vec![0.0, 0.0], reward: 0.0, terminated: false, truncated: true })
        }
    }

    /// Bad input is refused before any work, naming what is wrong: infinite action bounds
    /// (naming the environment), every bad key of a config at once, a checkpoint edited after
    /// it was written.
    #[test]
    fn bad_input_is_refused_with_a_message() {
        let ctx = super::common::ctx();
        let cfg = small(&[]);
        let e = sac::run(&ctx, &cfg, &mut Unbounded, RunOptions::default()).unwrap_err().to_string();
        assert!(e.contains("pendulum") && e.contains("finite"), "{e}");
        let sets: Vec<String> =
            ["sac.gamma=1.0", "sac.tau=0", "sac.batch_size=0", "sac.nope=1"].iter().map(|s| s.to_string()).collect();
        let e = SacConfig::resolve(EnvKind::Pendulum, TaskOrigin::BuiltIn, SacPreset::Demo, None, &sets)
            .unwrap_err()
            .to_string();
        for key in ["sac.gamma", "sac.tau", "sac.batch_size", "sac.nope"] {
            assert!(e.contains(key), "{key} not named in: {e}");
        }
        // A checkpoint with one byte changed is refused by its checksum.
        let dir = std::env::temp_dir().join(format!("lookahead-sac-bad-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let cfg = small(&["loop.total_steps=400", "loop.eval_every=400"]);
        let mut env = cfg.env.make();
        sac::run(&ctx, &cfg, env.as_mut(), RunOptions { out_dir: Some(dir.clone()), ..Default::default() }).unwrap();
        let mut bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0x40;
        let e = SacCheckpoint::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains("checksum") || e.contains("SHA"), "{e}");
        // The checkpoint of a run of another architecture is refused by eval.
        let other = dir.with_extension("other");
        std::fs::remove_dir_all(&other).ok();
        let wide = small(&["loop.total_steps=400", "loop.eval_every=400", "sac.actor_hidden=[24, 24]"]);
        sac::run(&ctx, &wide, env.as_mut(), RunOptions { out_dir: Some(other.clone()), ..Default::default() }).unwrap();
        std::fs::copy(other.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
        let e = sac::evaluate(&dir, 1, 0, Default::default()).unwrap_err().to_string();
        assert!(e.contains("another config") && e.contains("mixes two runs"), "{e}");
        std::fs::remove_dir_all(&other).ok();
        std::fs::remove_dir_all(&dir).ok();
    }
    /// `sac.init_policy` starts the actor from a checkpoint's, and `sac.actor_warmup_updates`
    /// holds it still while the critics learn: a run whose warm-up outlasts it ends with the
    /// initial actor bit for bit (and moved critics), one without the warm-up moves it; an actor
    /// of other widths is refused, naming them. Catches the initial policy ignored (fresh
    /// weights), the warm-up ignored, and an actor of the wrong shape loaded.
    #[test]
    fn a_run_starts_from_an_initial_policy_and_holds_it_during_the_warm_up() {
        let ctx = super::common::ctx();
        let base = std::env::temp_dir().join(format!("lookahead-sac-init-{}", std::process::id()));
        std::fs::remove_dir_all(&base).ok();
        let short = ["loop.total_steps=300", "loop.random_steps=200", "loop.eval_every=300"];
        let first = small(&short);
        let mut env = first.env.make();
        let opts = RunOptions { out_dir: Some(base.join("first")), ..Default::default() };
        sac::run(&ctx, &first, env.as_mut(), opts).unwrap();
        let init = base.join("first").join("model.safetensors");
        let init_set = format!("sac.init_policy={:?}", init.display().to_string());
        let actor = |c: &SacCheckpoint| {
            let mut t = c.tensors.clone();
            t.retain(|k, _| k.starts_with("actor."));
            t
        };
        let started = SacCheckpoint::load(&init).unwrap();
        for (warmup, moves) in [("sac.actor_warmup_updates=1000000", false), ("sac.actor_warmup_updates=0", true)] {
            let cfg = small(&[&short[..], &[init_set.as_str(), warmup, "seed=5"]].concat());
            let dir = base.join(if moves { "moving" } else { "held" });
            let opts = RunOptions { out_dir: Some(dir.clone()), ..Default::default() };
            sac::run(&ctx, &cfg, env.as_mut(), opts).unwrap();
            let after = SacCheckpoint::load(&dir.join("model.safetensors")).unwrap();
            assert_eq!(actor(&after) != actor(&started), moves, "{warmup}: the actor moved: {}", !moves);
            assert!(after.tensors["critic.layers.0.weight"] != started.tensors["critic.layers.0.weight"]);
        }
        let wider = small(&[&short[..], &[init_set.as_str(), "sac.actor_hidden=[32, 16]"]].concat());
        let e = sac::run(&ctx, &wider, env.as_mut(), RunOptions::default()).unwrap_err().to_string();
        assert!(e.contains("sac.init_policy") && e.contains("widths"), "{e}");
        std::fs::remove_dir_all(&base).ok();
    }
}
