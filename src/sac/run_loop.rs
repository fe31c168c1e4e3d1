//! The SAC loop's phases: `start_or_resume` (every check, then the device and the run folder),
//! then per environment step `act` (random at first, then the updates and the next action in
//! one submission) and `store`; at each episode's end `end_episode` and, when one falls due,
//! `evaluate_and_save` (the deterministic policy's evaluation and a consistent point); `finish`.

use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use super::checkpoint::SacCheckpoint;
use super::device::{DeviceState, SacDevice, SacParamsF32, SacShapes, UpdatePlan, UpdateSettings};
use super::resume::{load_ring, ExtensionPoint, SacResumeState, RESUME_VERSION};
use super::{
    AlgorithmConfig, EvalResult, HiddenActivation, Policy, Progress, RunOptions, SacConfig, SacSummary, LAYOUT,
};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::mlp::Activation;
use crate::run::lock::RunLock;
use crate::run::{self, RunFolder};
use crate::train::checkpoint::RngState;

/// The loop's counters, saved in every consistent point.
#[derive(Debug, Clone, Copy)]
struct Counters {
    env_steps: u64,
    updates: u64,
    /// Training episodes started.
    episode: u64,
    /// Training episodes finished.
    finished: u64,
    next_eval: u64,
}

/// What happened since the previous evaluation (its means go into the next one).
#[derive(Debug, Default)]
struct Window {
    returns: Vec<f64>,
    critic: Vec<f64>,
    actor: Vec<f64>,
    entropy: Vec<f64>,
    alpha: Option<f64>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The kernels' activation of a config's.
pub(super) fn activation(a: HiddenActivation) -> Activation {
    match a {
        HiddenActivation::Relu => Activation::Relu,
        HiddenActivation::Silu => Activation::Silu,
    }
}

/// What a loop built on SAC's adds to it (MBPO: model training and rollouts into the model
/// ring): called with every stored transition and before the updates of every learning step.
pub trait Extension {
    /// A real transition was stored.
    fn stored(&mut self, obs: &[f32], act: &[f32], reward: f32, next: &[f32], terminated: bool) -> Result<()>;

    /// Before the updates of environment step `env_step` (after the random steps), on the
    /// device whose rings the updates draw from: an event for `metrics.jsonl` when it did
    /// something worth one.
    fn before_updates(&mut self, dev: &mut SacDevice, env_step: u64) -> Result<Option<serde_json::Value>>;

    /// Fields added to each evaluation's event.
    fn eval_fields(&mut self) -> serde_json::Map<String, serde_json::Value>;

    /// Writes the extension's files of consistent point `number` into `dir` (with
    /// `crate::run::point::write_file`, under its layout's stems) and returns them with its
    /// counters; the loop's state file, written after them, names them.
    fn save_point(&mut self, dev: &SacDevice, dir: &Path, number: usize) -> Result<ExtensionPoint>;

    /// Continues from a point [`Extension::save_point`] wrote (its files checked against their
    /// checksums), on the restored device.
    fn restore_point(&mut self, dev: &mut SacDevice, dir: &Path, point: &ExtensionPoint) -> Result<()>;
}

/// Builds a loop's [`Extension`] on the device, before the run folder is touched.
pub type ExtensionFactory<'x> = &'x dyn Fn(&SacDevice) -> Result<Box<dyn Extension + 'x>>;

/// Refuses to resume a folder whose `config.toml` is not the run's config.
pub type ConfigCheck<'x> = Box<dyn Fn(&Path) -> Result<()> + 'x>;

/// What a loop on SAC's machinery writes and adds: plain SAC ([`LoopSpec::sac`]) or a loop
/// built on it (MBPO).
pub struct LoopSpec<'x> {
    /// The run folder's files and kind.
    pub layout: &'static crate::run::RunLayout,
    /// `config.toml`'s text.
    pub config_toml: String,
    /// The learning curve's title.
    pub title: String,
    /// The model ring: its capacity and the minibatch rows drawn from the real ring.
    pub model_ring: Option<(usize, usize)>,
    /// The extension, built once the device exists.
    pub extension: Option<ExtensionFactory<'x>>,
    /// Training episodes end (truncated) after this many steps, if the environment has not
    /// ended them first.
    pub episode_cap: Option<u64>,
    /// Refuses to resume a folder whose `config.toml` is not the run's config.
    pub same_config: ConfigCheck<'x>,
}

impl<'x> LoopSpec<'x> {
    /// Plain SAC with `cfg`.
    pub fn sac(cfg: &'x SacConfig) -> Self {
        let name = cfg.external_env.clone().unwrap_or_else(|| cfg.env.name().to_string());
        LoopSpec {
            layout: &LAYOUT,
            config_toml: cfg.to_toml(),
            title: format!("SAC on {name}"),
            model_ring: None,
            extension: None,
            episode_cap: None,
            same_config: Box::new(move |dir| run::check_same_config(dir, cfg)),
        }
    }
}

/// One SAC run in progress.
pub struct SacLoop<'a, 'o> {
    cfg: &'a SacConfig,
    env: &'a mut dyn Env,
    opts: RunOptions<'o>,
    dev: SacDevice,
    bounds: (Vec<f64>, Vec<f64>),
    /// The replay ring's rows as the device holds them.
    ring: Vec<f32>,
    rng: ChaCha12Rng,
    files: Option<RunFolder>,
    c: Counters,
    window: Window,
    summary: SacSummary,
    adapter: String,
    /// Wall time of the run before this process continued it (0 for a new run).
    seconds_before: f64,
    ext: Option<Box<dyn Extension + 'a>>,
    title: String,
    episode_cap: u64,
    layout: &'static crate::run::RunLayout,
}

/// The run folder's lock and, when resuming, its last consistent point and checkpoint.
type Start = (Option<RunLock>, Option<(SacResumeState, SacCheckpoint)>);

/// Checks the config and the environment, and the folder as `pets` does: a new run claims it,
/// a resumed one locks it and must hold a run of this very config.
fn check_start(cfg: &SacConfig, spec: &LoopSpec<'_>, env: &dyn Env, opts: &RunOptions<'_>) -> Result<Start> {
    cfg.validate()?;
    let (lower, upper) = env.action_bounds();
    let name = cfg.external_env.clone().unwrap_or_else(|| cfg.env.name().to_string());
    cfg.update_settings(&lower, &upper).map_err(|e| {
        let why = match e {
            Error::InvalidInput(why) => why,
            other => other.to_string(),
        };
        Error::InvalidInput(format!("{name}: {why}"))
    })?;
    let lock =
        run::lock_folder(opts.out_dir.as_deref(), (opts.resume, opts.overwrite), spec.layout, &spec.same_config)?;
    match (&opts.out_dir, opts.resume) {
        (Some(dir), true) => {
            let state = SacResumeState::load(dir, spec.layout)?;
            if state.extension.is_some() != spec.extension.is_some() {
                let why = format!("{}: its consistent point is not one of a {} run", dir.display(), spec.layout.kind);
                return Err(Error::config("resume", why));
            }
            state.check_plan(dir, cfg)?;
            let ckpt = SacCheckpoint::load(&dir.join(&state.state_file))?;
            state.check_checkpoint(dir, &ckpt)?;
            Ok((lock, Some((state, ckpt))))
        }
        _ => Ok((lock, None)),
    }
}

/// The device for `cfg` on a task of `obs_dim` observations and the action bounds
/// `lower`..`upper`, with fresh networks (PyTorch's initialisation) and, when given, a model ring
/// of (capacity, minibatch rows from the real ring).
pub fn build_device(
    ctx: &GpuContext,
    cfg: &SacConfig,
    obs_dim: usize,
    (lower, upper): (&[f64], &[f64]),
    model_ring: Option<(usize, usize)>,
) -> Result<SacDevice> {
    let settings = cfg.update_settings(lower, upper)?;
    let a = &cfg.sac;
    let shapes = SacShapes {
        obs_dim,
        act_dim: lower.len(),
        batch: a.batch_size,
        capacity: cfg.schedule.buffer_capacity,
        actor_hidden: a.actor_hidden.clone(),
        critic_hidden: a.critic_hidden.clone(),
        actor_activation: activation(a.actor_activation),
        critic_activation: activation(a.critic_activation),
        max_updates: a.updates_per_step,
        model_capacity: model_ring.map_or(0, |r| r.0),
        real_rows: model_ring.map_or(a.batch_size, |r| r.1),
    };
    let dev_settings = UpdateSettings {
        gamma: settings.gamma,
        tau: settings.tau,
        target_entropy: settings.target_entropy,
        learn_alpha: settings.learn_alpha,
        lr: [settings.lr_actor, settings.lr_critic, settings.lr_alpha],
        adam: [0.9, 0.999, 1e-8],
        seed: cfg.seed,
        center: settings.scale.center.clone(),
        half: settings.scale.half.clone(),
    };
    let align = crate::kernels::net::NetLayout::alignment(ctx);
    let al = crate::kernels::net::NetLayout::new(&shapes.actor_widths(), 1, align);
    let cl = crate::kernels::net::NetLayout::new(&shapes.critic_widths(), 2, align);
    let critic = cl.init_uniform(cfg.seed.wrapping_add(2));
    let actor = match &a.init_policy {
        Some(path) => SacCheckpoint::load(Path::new(path))?.actor_for(&al, cfg, (lower, upper))?,
        None => al.init_uniform(cfg.seed.wrapping_add(1)),
    };
    let init = SacParamsF32 { actor, target: critic.clone(), critic, log_alpha: a.initial_alpha.ln() as f32 };
    SacDevice::new(ctx, shapes, dev_settings, &init)
}

impl<'a, 'o> SacLoop<'a, 'o> {
    /// Checks everything, builds the device, and only then replaces an earlier run in the
    /// folder (or reopens it and restores the last consistent point).
    pub fn start_or_resume(
        ctx: &GpuContext,
        cfg: &'a SacConfig,
        spec: LoopSpec<'a>,
        env: &'a mut dyn Env,
        opts: RunOptions<'o>,
    ) -> Result<Self> {
        let (lock, resumed) = check_start(cfg, &spec, env, &opts)?;
        let (lower, upper) = env.action_bounds();
        // A resumed run's actor comes from its point: the initial policy's file is not read again.
        let fresh = SacConfig { sac: AlgorithmConfig { init_policy: None, ..cfg.sac.clone() }, ..cfg.clone() };
        let built = if resumed.is_some() { &fresh } else { cfg };
        let dev = build_device(ctx, built, env.obs_dim(), (&lower, &upper), spec.model_ring)?;
        let ext = spec.extension.map(|make| make(&dev)).transpose()?;
        let files = match (&opts.out_dir, &resumed, lock) {
            (Some(_), Some((state, _)), Some(lock)) => {
                let rows: Vec<String> = state.evals.iter().map(EvalResult::csv_row).collect();
                Some(RunFolder::reopen(lock, spec.layout, &rows)?)
            }
            (Some(dir), _, lock) => Some(RunFolder::create(dir, spec.layout, &spec.config_toml, opts.overwrite, lock)?),
            (None, _, _) => None,
        };
        let summary = SacSummary {
            evals: Vec::new(),
            episodes: 0,
            env_steps: 0,
            interrupted: false,
            stopped_at: None,
            seconds: 0.0,
            out_dir: opts.out_dir.clone(),
        };
        let next_eval = cfg.schedule.eval_every as u64;
        let mut sac = Self {
            cfg,
            bounds: env.action_bounds(),
            env,
            opts,
            dev,
            ring: Vec::new(),
            rng: ChaCha12Rng::seed_from_u64(cfg.seed ^ 0x5ac0_5ac0_5ac0_5ac0),
            files,
            c: Counters { env_steps: 0, updates: 0, episode: 0, finished: 0, next_eval },
            window: Window::default(),
            summary,
            adapter: ctx.adapter().name.clone(),
            seconds_before: 0.0,
            ext,
            title: spec.title,
            episode_cap: spec.episode_cap.unwrap_or(u64::MAX),
            layout: spec.layout,
        };
        match resumed {
            Some((state, ckpt)) => sac.restore(state, &ckpt)?,
            None => {
                let mut start = serde_json::json!({"event": "start", "adapter": sac.adapter});
                if let Some(path) = &cfg.sac.init_policy {
                    start["init_policy"] = path.clone().into();
                    start["init_policy_sha256"] = run::sha256_file(Path::new(path))?.into();
                }
                sac.event(start)?
            }
        }
        Ok(sac)
    }

    /// Continues from `state`: the device's networks, Adam and ring, the generator, the
    /// counters and the evaluations.
    fn restore(&mut self, state: SacResumeState, ckpt: &SacCheckpoint) -> Result<()> {
        let dir = self.opts.out_dir.clone().expect("a resumed run has a folder");
        let layouts = (&self.dev.actor_layout, &self.dev.critic_layout);
        let device_state = ckpt
            .state(layouts)
            .map_err(|reason| Error::Weights { path: dir.join(&state.state_file).display().to_string(), reason })?;
        let row = self.dev.shapes().row_len();
        self.ring = load_ring(&dir.join(&state.replay_file), row)?;
        self.dev.restore(&device_state, &self.ring, state.env_steps)?;
        if let (Some(ext), Some(point)) = (self.ext.as_mut(), &state.extension) {
            ext.restore_point(&mut self.dev, &dir, point)?;
        }
        let rng = ckpt.manifest.rng.as_ref().ok_or_else(|| Error::InvalidInput("the point has no generator".into()))?;
        self.rng = rng.restore().map_err(|reason| Error::Weights { path: state.state_file.clone(), reason })?;
        self.c = Counters {
            env_steps: state.env_steps,
            updates: state.updates,
            episode: state.episode,
            finished: state.episode,
            next_eval: state.next_eval,
        };
        self.seconds_before = state.evals.last().map_or(0.0, |e| e.seconds);
        self.summary.evals = state.evals;
        let event = serde_json::json!({"event": "resume", "env_step": self.c.env_steps, "updates": self.c.updates});
        self.event(event)
    }

    fn event(&mut self, value: serde_json::Value) -> Result<()> {
        match self.files.as_mut() {
            Some(f) => f.event(value),
            None => Ok(()),
        }
    }

    fn stop_requested(&self) -> bool {
        run::stop_requested(self.opts.interrupt.as_ref())
    }

    /// Starts a training episode (its reset seed follows the episode count).
    fn reset(&mut self) -> Vec<f64> {
        self.c.episode += 1;
        self.env.reset(self.cfg.seed.wrapping_mul(1_000_003).wrapping_add(self.c.episode))
    }

    /// Every environment step left: act, step, store; at an episode's end its event and, when
    /// due, an evaluation and a consistent point. Stops at an interrupt.
    pub fn run_steps(&mut self, started: Instant) -> Result<()> {
        let total = self.cfg.schedule.total_steps as u64;
        let mut obs = self.reset();
        let (mut ret, mut len) = (0.0, 0u64);
        while self.c.env_steps < total {
            if self.stop_requested() {
                self.summary.interrupted = true;
                self.summary.stopped_at = Some(format!("step {}", self.c.env_steps + 1));
                return Ok(());
            }
            let action = self.act(&obs)?;
            let s = self.env.step(&action)?;
            self.store(&obs, &action, s.reward, &s.obs, s.terminated)?;
            (ret, len) = (ret + s.reward, len + 1);
            self.report(started);
            if !(s.terminated || s.truncated || len >= self.episode_cap) {
                obs = s.obs;
                continue;
            }
            self.end_episode(ret, len)?;
            (ret, len) = (0.0, 0);
            if self.c.env_steps >= self.c.next_eval && !self.evaluate_and_save(started)? {
                return Ok(());
            }
            obs = self.reset();
        }
        Ok(())
    }

    /// The action for `obs`: uniform within the bounds during the random steps; afterwards the
    /// step's updates and the policy's sample, in one submission.
    fn act(&mut self, obs: &[f64]) -> Result<Vec<f64>> {
        let a = &self.cfg.sac;
        if self.c.env_steps < (self.cfg.schedule.random_steps.max(1) as u64) {
            let (lo, hi) = &self.bounds;
            return Ok(lo.iter().zip(hi).map(|(l, h)| self.rng.random_range(*l..*h)).collect());
        }
        let plans: Vec<UpdatePlan> = (0..a.updates_per_step as u64)
            .map(|k| {
                let index = self.c.updates + k;
                UpdatePlan {
                    index,
                    actor: index >= a.actor_warmup_updates && index.is_multiple_of(a.actor_update_frequency as u64),
                    polyak: (index + 1).is_multiple_of(a.target_update_interval as u64),
                }
            })
            .collect();
        if let Some(ext) = self.ext.as_mut() {
            if let Some(event) = ext.before_updates(&mut self.dev, self.c.env_steps)? {
                self.event(event)?;
            }
        }
        let o: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
        let step = self.dev.run(&plans, Some(&o), self.c.env_steps, false)?;
        self.c.updates += plans.len() as u64;
        for s in &step.stats {
            self.window.critic.push(s.critic_loss);
            self.window.entropy.push(s.entropy);
            self.window.actor.extend(s.actor_loss);
            self.window.alpha = Some(s.alpha);
        }
        Ok(step.action.expect("an action was asked for").iter().map(|v| *v as f64).collect())
    }

    /// Stores a transition on the device and in the host's copy of the ring.
    fn store(&mut self, obs: &[f64], act: &[f64], reward: f64, next: &[f64], terminated: bool) -> Result<()> {
        let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
        let (o, a, n) = (f32s(obs), f32s(act), f32s(next));
        self.dev.push(&o, &a, reward as f32, &n, terminated).expect("the environment's sizes were checked");
        if let Some(ext) = self.ext.as_mut() {
            ext.stored(&o, &a, reward as f32, &n, terminated)?;
        }
        let row: Vec<f32> = [&o[..], &a, &[reward as f32], &n, &[f32::from(u8::from(terminated))]].concat();
        let capacity = self.cfg.schedule.buffer_capacity as u64;
        let at = (self.c.env_steps % capacity) as usize * row.len();
        if at == self.ring.len() {
            self.ring.extend_from_slice(&row);
        } else {
            self.ring[at..at + row.len()].copy_from_slice(&row);
        }
        self.c.env_steps += 1;
        Ok(())
    }

    fn report(&mut self, started: Instant) {
        let progress = Progress {
            env_step: self.c.env_steps,
            total_steps: self.cfg.schedule.total_steps as u64,
            last_eval: self.summary.evals.last().map(|e| e.eval_return),
            last_return: self.window.returns.last().copied(),
            steps_per_s: self.c.env_steps as f64 / started.elapsed().as_secs_f64().max(1e-9),
        };
        if let Some(cb) = self.opts.progress.as_mut() {
            cb(&progress);
        }
    }

    fn end_episode(&mut self, ret: f64, len: u64) -> Result<()> {
        self.c.finished += 1;
        self.window.returns.push(ret);
        let event = serde_json::json!({"event": "episode", "episode": self.c.finished, "env_step": self.c.env_steps,
            "return": ret, "length": len});
        self.event(event)
    }

    /// The deterministic policy of the current actor.
    fn policy(&self) -> Result<Policy> {
        let params = self.dev.params()?;
        Policy::from_flat(&self.dev.actor_layout, &params.actor, self.cfg.sac.actor_activation, &self.bounds)
    }

    /// Evaluates the deterministic policy (`eval_episodes` episodes, reset seeds of their own),
    /// appends the result and writes a consistent point. False when the interrupt stopped it
    /// (the previous point stays the last).
    fn evaluate_and_save(&mut self, started: Instant) -> Result<bool> {
        let policy = self.policy()?;
        let n = self.cfg.schedule.eval_episodes;
        let first = self.summary.evals.len() as u64 * n as u64;
        let mut returns = Vec::with_capacity(n);
        let flag = self.opts.interrupt.clone();
        let stop = move || run::stop_requested(flag.as_ref());
        for k in 0..n as u64 {
            let seed = eval_seed(self.cfg.seed, first + k);
            let Some(r) = play_episode(self.env, &policy, seed, self.cfg.schedule.total_steps as u64, &stop)? else {
                self.summary.interrupted = true;
                self.summary.stopped_at = Some(format!("the evaluation after step {}", self.c.env_steps));
                return Ok(false);
            };
            returns.push(r);
        }
        let (m, std) = crate::util::mean_std(&returns);
        let w = std::mem::take(&mut self.window);
        let result = EvalResult {
            env_step: self.c.env_steps,
            episodes: self.c.finished,
            eval_return: m,
            eval_std: std,
            train_return: mean(&w.returns),
            critic_loss: mean(&w.critic),
            actor_loss: mean(&w.actor),
            alpha: w.alpha.unwrap_or(self.cfg.sac.initial_alpha),
            entropy: mean(&w.entropy),
            seconds: self.seconds_before + started.elapsed().as_secs_f64(),
        };
        let mut event = serde_json::json!({"event": "eval", "env_step": result.env_step, "return": m, "std": std,
            "returns": returns, "train_return": result.train_return, "critic_loss": result.critic_loss,
            "actor_loss": result.actor_loss, "alpha": result.alpha, "entropy": result.entropy});
        if let (Some(ext), Some(fields)) = (self.ext.as_mut(), event.as_object_mut()) {
            fields.extend(ext.eval_fields());
        }
        if let Some(f) = self.files.as_mut() {
            f.row(&result.csv_row())?;
            f.event(event)?;
        }
        self.summary.evals.push(result);
        let every = self.cfg.schedule.eval_every as u64;
        self.c.next_eval = (self.c.env_steps / every + 1) * every;
        self.save_point()?;
        Ok(true)
    }

    /// Writes a consistent point (nothing without a run folder) and `model.safetensors`.
    fn save_point(&mut self) -> Result<()> {
        let Some(files) = &self.files else { return Ok(()) };
        let number = self.summary.evals.len();
        let extension = match self.ext.as_mut() {
            Some(ext) => Some(ext.save_point(&self.dev, files.dir(), number)?),
            None => None,
        };
        let state = SacResumeState {
            version: RESUME_VERSION,
            env_steps: self.c.env_steps,
            updates: self.c.updates,
            episode: self.c.episode,
            next_eval: self.c.next_eval,
            evals: self.summary.evals.clone(),
            replay_file: String::new(),
            state_file: String::new(),
            replay_sha256: String::new(),
            state_sha256: String::new(),
            extension,
        };
        let snapshot: DeviceState = self.dev.snapshot()?;
        let layouts = (&self.dev.actor_layout, &self.dev.critic_layout);
        let bounds = (self.bounds.0.as_slice(), self.bounds.1.as_slice());
        let rng = Some(RngState::of(&self.rng));
        let ckpt = SacCheckpoint::of(self.cfg, bounds, &snapshot, layouts, rng, state.digest());
        ckpt.save(&files.dir().join("model.safetensors"))?;
        let row = self.dev.shapes().row_len();
        state.save((files.dir(), self.layout), number, (&self.ring, row), &ckpt)
    }

    /// The run's end: a last evaluation (and point) when the run completed after the last one,
    /// its wall time, the end event and the learning curve.
    pub fn finish(mut self, started: Instant) -> Result<SacSummary> {
        let done = self.c.env_steps >= self.cfg.schedule.total_steps as u64;
        if done && !self.summary.interrupted && self.summary.evals.last().map(|e| e.env_step) != Some(self.c.env_steps)
        {
            self.evaluate_and_save(started)?;
        }
        self.summary.seconds = self.seconds_before + started.elapsed().as_secs_f64();
        self.summary.episodes = self.c.finished;
        self.summary.env_steps = self.c.env_steps;
        let end = serde_json::json!({"event": "end", "env_steps": self.c.env_steps, "evaluations": self.summary.evals.len(),
            "interrupted": self.summary.interrupted, "seconds": self.summary.seconds, "adapter": self.adapter});
        if let Some(f) = self.files.as_mut() {
            f.event(end)?;
            super::plot_learning_curve(&f.dir().join("learning_curve.svg"), &self.title, &self.summary.evals)?;
        }
        Ok(self.summary)
    }
}

/// The reset seed of evaluation episode `k` of a run seeded `seed` (apart from the training
/// episodes' seeds).
pub fn eval_seed(seed: u64, k: u64) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(0x8000_0000_0000_0000).wrapping_add(k)
}

/// One episode of `policy` on `env` from reset seed `seed` (at most `cap` steps): its return,
/// or `None` when `stop` said so before a step.
pub fn play_episode(
    env: &mut dyn Env,
    policy: &Policy,
    seed: u64,
    cap: u64,
    stop: &dyn Fn() -> bool,
) -> Result<Option<f64>> {
    let mut obs = env.reset(seed);
    let mut total = 0.0;
    for _ in 0..cap.max(1) {
        if stop() {
            return Ok(None);
        }
        let s = env.step(&policy.act(&obs)?)?;
        total += s.reward;
        if s.terminated || s.truncated {
            break;
        }
        obs = s.obs;
    }
    Ok(Some(total))
}
