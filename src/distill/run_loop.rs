//! The distillation's phases: `start_or_resume` (the PETS run's planner over its elites, the
//! policy's device, the run folder), the planner's evaluation once, then per iteration
//! `collect` (episodes side by side, every visited state labelled by one batched plan per step),
//! `train` (imitation updates on everything so far), `evaluate` (the policy on the planner's
//! start states) and a consistent point; `finish`.

use std::path::Path;
use std::time::Instant;

use super::resume::DistillResumeState;
use super::{DistillConfig, DistillSummary, IterationResult, Mode, Progress, RunOptions, LAYOUT};
use crate::env::{Env, EnvKind, Task};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::pets::PetsConfig;
use crate::planner::{Dynamics, Planner, PlannerConfig};
use crate::run::{self, RunFolder};
use crate::sac::device::SacDevice;
use crate::sac::resume::load_ring;
use crate::sac::{Policy, SacCheckpoint, SacConfig, SacPreset, TaskOrigin};

/// Who acts in an iteration's episodes (the planner labels every state either way).
enum Actor<'p> {
    Planner,
    Policy(&'p Policy),
}

/// What episodes run side by side gave: their states and the planner's actions there (`[n, d]`,
/// `[n, a]`), and each episode's return.
struct Episodes {
    states: Vec<f32>,
    labels: Vec<f32>,
    returns: Vec<f64>,
}

/// The PETS run distilled from.
pub(super) struct Source {
    env: EnvKind,
    /// The environment's name, when the run was driven from outside the crate.
    external_env: Option<String>,
    trial_length: usize,
    sha256: String,
    adapter_name: String,
}

impl Source {
    fn name(&self) -> String {
        self.external_env.clone().unwrap_or_else(|| self.env.name().to_string())
    }

    /// The built-in environment of a run on one (`None` for a run driven from outside).
    pub(super) fn builtin(&self) -> Option<EnvKind> {
        self.external_env.is_none().then_some(self.env)
    }
}

/// The run's config, its planner over the checkpoint's elites (seeded with the distillation's
/// seed) for `task` (the built-in environment's when `None`), and what identifies it: refused
/// when the folder holds no PETS run, when a run on an environment outside the crate comes
/// without its task, or when its checkpoint is not its config's model.
pub(super) fn load_source(
    ctx: &GpuContext,
    run_dir: &Path,
    seed: u64,
    task: Option<Task>,
) -> Result<(Source, Planner)> {
    match run::read_marker(run_dir) {
        Some(m) if m.kind == crate::pets::LAYOUT.kind => {}
        Some(m) => {
            return Err(Error::config(
                "run",
                format!("{} holds a {} run; distillation needs a PETS run's planner", run_dir.display(), m.kind),
            ))
        }
        None => return Err(Error::config("run", format!("{} holds no PETS run (no run.json)", run_dir.display()))),
    }
    let pets: PetsConfig = run::read_config(run_dir)?;
    let task = match (&pets.external_env, task) {
        (_, Some(task)) => task,
        (None, None) => pets.env.task(),
        (Some(env), None) => {
            let why = format!(
                "{} ran on {env}, which only its caller can step: distil it from there with its task (Python: \
                 lookahead.distill.run)",
                run_dir.display()
            );
            return Err(Error::config("run", why));
        }
    };
    let model = crate::pets::load_elites(run_dir, &pets, &task)?;
    let planner = Planner::new(ctx, task, Dynamics::Ensemble(model), PlannerConfig { seed, ..pets.planner.clone() })?;
    let sha256 = run::sha256_file(&run_dir.join("model.safetensors"))?;
    let source = Source {
        env: pets.env,
        external_env: pets.external_env.clone(),
        trial_length: pets.schedule.trial_length,
        sha256,
        adapter_name: ctx.adapter().name.clone(),
    };
    Ok((source, planner))
}

/// The SAC config of the policy's device: the actor (and, unused, critics of its widths) of
/// `cfg.policy`, Adam at `train.lr`, minibatches of `train.batch_size` from a ring of `capacity`
/// labelled states.
fn device_config(cfg: &DistillConfig, source: &Source, capacity: usize) -> SacConfig {
    let mut c = SacConfig::preset(source.env, TaskOrigin::BuiltIn, SacPreset::Demo);
    (c.seed, c.external_env) = (cfg.seed, source.external_env.clone());
    let (h, act) = (cfg.policy.hidden.clone(), cfg.policy.activation);
    (c.sac.actor_hidden, c.sac.actor_activation, c.sac.critic_hidden, c.sac.critic_activation) =
        (h.clone(), act, h, act);
    (c.sac.batch_size, c.sac.lr_actor, c.sac.updates_per_step) =
        (cfg.train.batch_size, cfg.train.lr, cfg.updates_per_submission());
    c.schedule.buffer_capacity = capacity;
    (c.schedule.random_steps, c.schedule.total_steps) = (0, capacity);
    c
}

/// The reset seed of episode `b` of iteration `i` (apart from the evaluation's).
pub fn episode_seed(seed: u64, i: usize, b: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add((i * super::config::MAX_EPISODES + b) as u64 + 1)
}

/// The planner of `env`'s known dynamics (`Dynamics::Analytic`, as `lookahead mpc`) with
/// `planner` seeded with the distillation's seed, as a source: episodes of at most 200 steps
/// (the built-in environments' own length), identified by the planner's settings.
pub(super) fn mpc_source(
    ctx: &GpuContext,
    env: EnvKind,
    planner: PlannerConfig,
    seed: u64,
) -> Result<(Source, Planner)> {
    let cfg = PlannerConfig { seed, ..planner };
    let identity = format!("mpc {} {}", env.name(), toml::to_string(&cfg).expect("the planner config serialises"));
    let source = Source {
        env,
        external_env: None,
        trial_length: 200,
        sha256: crate::util::sha256_hex(identity.as_bytes()),
        adapter_name: ctx.adapter().name.clone(),
    };
    Ok((source, Planner::new(ctx, env.task(), Dynamics::Analytic, cfg)?))
}

/// Refuses fewer environments than the episodes side by side need (`episodes`, and
/// `eval_episodes` for the planner's evaluation), or environments of other sizes than `task`.
fn check_envs(cfg: &DistillConfig, envs: &[Box<dyn Env + '_>], task: &Task) -> Result<()> {
    let need = cfg.dagger.episodes.max(cfg.dagger.eval_episodes);
    if envs.len() < need {
        return Err(Error::InvalidInput(format!("{} environments for {need} episodes side by side", envs.len())));
    }
    if let Some(e) = envs.iter().find(|e| e.obs_dim() != task.obs_dim || e.act_dim() != task.act_dim) {
        return Err(Error::InvalidInput(format!(
            "an environment of obs {} / act {} beside the PETS run's task {} of obs {} / act {}",
            e.obs_dim(),
            e.act_dim(),
            task.name,
            task.obs_dim,
            task.act_dim
        )));
    }
    Ok(())
}

/// A distillation in progress.
pub(super) struct DistillLoop<'a, 'o> {
    cfg: &'a DistillConfig,
    /// The environments: one per episode side by side (the first also for the policy's
    /// evaluation).
    envs: Vec<Box<dyn Env + 'a>>,
    opts: RunOptions<'o>,
    source: Source,
    planner: Planner,
    dev: SacDevice,
    sac_cfg: SacConfig,
    bounds: (Vec<f64>, Vec<f64>),
    /// The labelled states as the device's ring holds them.
    dataset: Vec<f32>,
    updates: u64,
    planner_returns: Vec<f64>,
    results: Vec<IterationResult>,
    files: Option<RunFolder>,
    seconds_before: f64,
    stopped_at: Option<String>,
}

impl<'a, 'o> DistillLoop<'a, 'o> {
    /// Checks everything (the config, the PETS run, the folder), builds the planner and the
    /// policy's device, and only then replaces an earlier distillation in the folder (or reopens
    /// it and restores its last consistent point).
    pub fn start_or_resume(
        ctx: &GpuContext,
        cfg: &'a DistillConfig,
        (run_dir, source, planner): (Option<&Path>, Source, Planner),
        envs: Vec<Box<dyn Env + 'a>>,
        opts: RunOptions<'o>,
    ) -> Result<Self> {
        cfg.validate()?;
        check_envs(cfg, &envs, planner.task())?;
        let same = |dir: &Path| run::check_same_config(dir, cfg);
        let lock = run::lock_folder(opts.out_dir.as_deref(), (opts.resume, opts.overwrite), &LAYOUT, same)?;
        let resumed = match (&opts.out_dir, opts.resume) {
            (Some(dir), true) => Some(DistillResumeState::load(dir)?),
            _ => None,
        };
        let bounds = envs[0].action_bounds();
        // Every label fits; a minibatch (drawn with replacement) may be larger than the data.
        let capacity =
            ((cfg.dagger.iterations + 1) * cfg.dagger.episodes * source.trial_length).max(cfg.train.batch_size);
        let sac_cfg = device_config(cfg, &source, capacity);
        sac_cfg.validate().map_err(|e| Error::config("dagger", format!("the labelled states do not fit: {e}")))?;
        let dev = crate::sac::build_device(ctx, &sac_cfg, envs[0].obs_dim(), (&bounds.0, &bounds.1), None)?;
        let files = match (&opts.out_dir, &resumed, lock) {
            (Some(_), Some(state), Some(lock)) => {
                let rows: Vec<String> = state.iterations.iter().map(IterationResult::csv_row).collect();
                Some(RunFolder::reopen(lock, &LAYOUT, &rows)?)
            }
            (Some(dir), _, lock) => Some(RunFolder::create(dir, &LAYOUT, &cfg.to_toml(), opts.overwrite, lock)?),
            (None, _, _) => None,
        };
        let mut lp = Self {
            cfg,
            envs,
            opts,
            source,
            planner,
            dev,
            sac_cfg,
            bounds,
            dataset: Vec::new(),
            updates: 0,
            planner_returns: Vec::new(),
            results: Vec::new(),
            files,
            seconds_before: 0.0,
            stopped_at: None,
        };
        match resumed {
            Some(state) => lp.restore(state)?,
            None => {
                let run = run_dir.map_or_else(|| format!("mpc {}", lp.source.env.name()), |d| d.display().to_string());
                let event = serde_json::json!({"event": "start", "run": run,
                    "source_sha256": lp.source.sha256, "adapter": lp.source.adapter_name});
                lp.event(event)?;
            }
        }
        Ok(lp)
    }

    /// Continues from `state`: the dataset, the policy and Adam, the planner's stream, the
    /// results.
    fn restore(&mut self, state: DistillResumeState) -> Result<()> {
        let dir = self.opts.out_dir.clone().expect("a resumed run has a folder");
        let ckpt = SacCheckpoint::load(&dir.join(&state.state_file))?;
        state.check(&dir, self.cfg, &self.source.sha256, &ckpt)?;
        let layouts = (&self.dev.actor_layout, &self.dev.critic_layout);
        let device_state = ckpt
            .state(layouts)
            .map_err(|reason| Error::Weights { path: dir.join(&state.state_file).display().to_string(), reason })?;
        let row = self.dev.shapes().row_len();
        self.dataset = load_ring(&dir.join(&state.dataset_file), row)?;
        let labels = self.dataset.len() / row;
        if state.iterations.last().map_or(0, |r| r.labels) != labels || labels > self.dev.shapes().capacity {
            return Err(Error::InvalidInput(format!(
                "{}: the point's dataset holds {labels} states, its results another count",
                dir.display()
            )));
        }
        self.dev.restore(&device_state, &self.dataset, labels as u64)?;
        self.planner.set_calls(state.planner_calls);
        self.updates = state.updates;
        self.planner_returns = state.planner_returns;
        self.seconds_before = state.iterations.last().map_or(0.0, |r| r.seconds);
        self.results = state.iterations;
        let event = serde_json::json!({"event": "resume", "iterations": self.results.len(), "updates": self.updates});
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

    fn report(&mut self, iteration: usize, phase: &'static str) {
        let labels = self.dataset.len() / self.dev.shapes().row_len();
        let p = Progress { iteration, iterations: self.cfg.dagger.iterations + 1, phase, labels };
        if let Some(cb) = self.opts.progress.as_mut() {
            cb(&p);
        }
    }

    /// The planner's evaluation (once), then every iteration left, each ending in a consistent
    /// point. Stops at an interrupt (the last point stays).
    pub fn run_iterations(&mut self, started: Instant) -> Result<()> {
        if self.planner_returns.is_empty() {
            let seeds: Vec<u64> = self.eval_seeds();
            let Some(eps) = self.collect(&seeds, &Actor::Planner, (0, "planner"))? else {
                return Ok(());
            };
            self.planner_returns = eps.returns;
            let event = serde_json::json!({"event": "planner", "returns": self.planner_returns});
            self.event(event)?;
        }
        for i in self.results.len()..=self.cfg.dagger.iterations {
            if !self.iteration(i, started)? {
                return Ok(());
            }
        }
        Ok(())
    }

    fn eval_seeds(&self) -> Vec<u64> {
        (0..self.cfg.dagger.eval_episodes as u64).map(|k| crate::sac::eval_seed(self.cfg.seed, k)).collect()
    }

    /// Iteration `i`: its episodes (the planner's in iteration 0 and in `bc` mode, else the
    /// policy's), their labels added, the training, the evaluation, the point. False when the
    /// interrupt stopped it.
    fn iteration(&mut self, i: usize, started: Instant) -> Result<bool> {
        // The policy acts in DAgger's iterations after the first; the planner in the others.
        let policy = match (i, self.cfg.dagger.mode) {
            (0, _) | (_, Mode::Bc) => None,
            (_, Mode::Dagger) => Some(self.policy()?),
        };
        let actor = policy.as_ref().map_or(Actor::Planner, Actor::Policy);
        let seeds: Vec<u64> = (0..self.cfg.dagger.episodes).map(|b| episode_seed(self.cfg.seed, i, b)).collect();
        let Some(eps) = self.collect(&seeds, &actor, (i, "collect"))? else { return Ok(false) };
        let new_labels = self.add(&eps)?;
        let Some(loss) = self.train(i)? else { return Ok(false) };
        let Some(policy_returns) = self.evaluate(i)? else { return Ok(false) };
        let (policy_return, policy_std) = crate::util::mean_std(&policy_returns);
        let result = IterationResult {
            iteration: i,
            labels: self.dataset.len() / self.dev.shapes().row_len(),
            new_labels,
            updates: self.updates,
            imitation_loss: loss,
            policy_return,
            policy_std,
            planner_return: crate::util::mean_std(&self.planner_returns).0,
            seconds: self.seconds_before + started.elapsed().as_secs_f64(),
        };
        let mut event = serde_json::to_value(&result).expect("the result serialises");
        if let Some(m) = event.as_object_mut() {
            m.insert("event".into(), "iteration".into());
            m.insert("policy_returns".into(), policy_returns.into());
            m.insert("episode_returns".into(), eps.returns.into());
        }
        if let Some(f) = self.files.as_mut() {
            f.row(&result.csv_row())?;
            f.event(event)?;
        }
        self.results.push(result);
        self.save_point()?;
        Ok(true)
    }

    /// Episodes from `seeds` side by side, at most the PETS run's trial length each: every step
    /// one batched plan for all of them (each with its own warm start; the finished ones plan
    /// their last state again, unused), `actor` acting. `None` when the interrupt stopped it.
    fn collect(
        &mut self,
        seeds: &[u64],
        actor: &Actor<'_>,
        (i, phase): (usize, &'static str),
    ) -> Result<Option<Episodes>> {
        let n = seeds.len();
        let mut obs: Vec<Vec<f64>> = self.envs.iter_mut().zip(seeds).map(|(e, s)| e.reset(*s)).collect();
        let (mut live, mut returns) = (vec![true; n], vec![0.0; n]);
        let mut out = Episodes { states: Vec::new(), labels: Vec::new(), returns: Vec::new() };
        self.planner.reset()?;
        for _ in 0..self.source.trial_length {
            if !live.contains(&true) {
                break;
            }
            if self.stop_requested() {
                self.stopped_at = Some(format!("iteration {i} ({phase})"));
                return Ok(None);
            }
            let f32s: Vec<Vec<f32>> = obs.iter().map(|o| o.iter().map(|v| *v as f32).collect()).collect();
            if !self.cfg.dagger.warm_start_labels && matches!(actor, Actor::Policy(_)) {
                self.planner.reset()?;
            }
            let plans = self.planner.plan_batch(&f32s)?;
            for b in 0..n {
                if !live[b] {
                    continue;
                }
                let action: Vec<f64> = match actor {
                    Actor::Planner => plans[b].action.iter().map(|v| *v as f64).collect(),
                    Actor::Policy(p) => p.act(&obs[b])?,
                };
                out.states.extend_from_slice(&f32s[b]);
                out.labels.extend_from_slice(&plans[b].action);
                let s = self.envs[b].step(&action)?;
                returns[b] += s.reward;
                live[b] = !(s.terminated || s.truncated);
                obs[b] = s.obs;
            }
            self.report(i, phase);
        }
        out.returns = returns;
        Ok(Some(out))
    }

    /// Adds the labelled states of `eps` to the device's ring and its copy: their number.
    fn add(&mut self, eps: &Episodes) -> Result<usize> {
        let (d, a) = (self.dev.shapes().obs_dim, self.dev.shapes().act_dim);
        let n = eps.states.len() / d;
        for (o, label) in eps.states.chunks(d).zip(eps.labels.chunks(a)) {
            self.dev.push(o, label, 0.0, o, false)?;
            self.dataset.extend_from_slice(&[o, label, &[0.0], o, &[0.0]].concat());
        }
        Ok(n)
    }

    /// `train.updates_per_iteration` imitation updates on everything so far, in submissions of
    /// `updates_per_submission`: the last submission's mean loss, or `None` when interrupted.
    fn train(&mut self, i: usize) -> Result<Option<f64>> {
        let per = self.cfg.updates_per_submission();
        let mut left = self.cfg.train.updates_per_iteration;
        let mut loss = f64::NAN;
        while left > 0 {
            if self.stop_requested() {
                self.stopped_at = Some(format!("iteration {i} (train)"));
                return Ok(None);
            }
            let n = per.min(left);
            let losses = self.dev.imitate(self.updates, n)?;
            loss = losses.iter().sum::<f64>() / n as f64;
            (self.updates, left) = (self.updates + n as u64, left - n);
            self.report(i, "train");
        }
        Ok(Some(loss))
    }

    /// The policy's returns from the planner's evaluation start states, or `None` when
    /// interrupted.
    fn evaluate(&mut self, i: usize) -> Result<Option<Vec<f64>>> {
        self.report(i, "evaluate");
        let policy = self.policy()?;
        let flag = self.opts.interrupt.clone();
        let stop = move || run::stop_requested(flag.as_ref());
        let mut returns = Vec::new();
        for seed in self.eval_seeds() {
            let cap = self.source.trial_length as u64;
            let Some(r) = crate::sac::play_episode(self.envs[0].as_mut(), &policy, seed, cap, &stop)? else {
                self.stopped_at = Some(format!("iteration {i} (evaluate)"));
                return Ok(None);
            };
            returns.push(r);
        }
        Ok(Some(returns))
    }

    /// The policy as the device holds it.
    fn policy(&self) -> Result<Policy> {
        let params = self.dev.params()?;
        Policy::from_flat(&self.dev.actor_layout, &params.actor, self.cfg.policy.activation, &self.bounds)
    }

    /// `policy.safetensors` and a consistent point (nothing without a folder).
    fn save_point(&mut self) -> Result<()> {
        let Some(files) = &self.files else { return Ok(()) };
        let state = DistillResumeState::new(
            self.updates,
            self.planner.calls(),
            self.planner_returns.clone(),
            self.results.clone(),
            self.source.sha256.clone(),
        );
        let snapshot = self.dev.snapshot()?;
        let layouts = (&self.dev.actor_layout, &self.dev.critic_layout);
        let bounds = (self.bounds.0.as_slice(), self.bounds.1.as_slice());
        let ckpt = SacCheckpoint::of(&self.sac_cfg, bounds, &snapshot, layouts, None, state.digest());
        ckpt.save(&files.dir().join("policy.safetensors"))?;
        state.save(files.dir(), (&self.dataset, self.dev.shapes().row_len()), &ckpt)
    }

    /// The end event and the curve of the policy's and the planner's returns over the labels.
    pub fn finish(mut self, started: Instant) -> Result<DistillSummary> {
        let seconds = self.seconds_before + started.elapsed().as_secs_f64();
        let interrupted = self.stopped_at.is_some();
        let end = serde_json::json!({"event": "end", "iterations": self.results.len(), "interrupted": interrupted,
            "seconds": seconds, "adapter": self.source.adapter_name});
        if let Some(f) = self.files.as_mut() {
            f.event(end)?;
            if !self.results.is_empty() {
                let points = |y: fn(&IterationResult) -> f64| -> Vec<(f64, f64)> {
                    self.results.iter().map(|r| (r.labels as f64, y(r))).collect()
                };
                let series = [
                    ("policy".to_string(), points(|r| r.policy_return)),
                    ("planner".to_string(), points(|r| r.planner_return)),
                ];
                let mode = if self.cfg.dagger.mode == Mode::Dagger { "DAgger" } else { "behaviour cloning" };
                let title = format!("Distilling the planner on {} ({mode})", self.source.name());
                let path = f.dir().join("distill_curve.svg");
                run::curve::plot_curves(&path, &title, "labelled states", "evaluation return", &series)?;
            }
        }
        Ok(DistillSummary {
            iterations: self.results,
            planner_returns: self.planner_returns,
            interrupted,
            stopped_at: self.stopped_at,
            seconds,
            out_dir: self.opts.out_dir.clone(),
        })
    }
}
