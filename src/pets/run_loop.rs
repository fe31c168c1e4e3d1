//! The PETS loop's phases: `start_or_resume` (every check, then the trainer, the planner and the
//! run folder), `explore`, then per trial `run_trial` (with `retrain` every `freq_train_model`
//! planned steps) and `save_point`, and `finish`.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{PetsConfig, PetsSummary, Progress, ResumeState, RunOptions, TrialResult, LAYOUT};
use crate::env::{Env, Task};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::{Ensemble, EnsembleSpec};
use crate::planner::{Dynamics, Planner, PlannerConfig};
use crate::run::lock::RunLock;
use crate::run::{self, RunFolder};
use crate::train::checkpoint::Checkpoint;
use crate::train::{ReplayBuffer, TrainConfig, Trainer};
use crate::util;

/// The loop's counters, saved in every consistent point.
#[derive(Debug, Clone, Copy)]
struct Counters {
    env_steps: usize,
    planned_steps: usize,
    episode: u64,
    model_loss: f64,
}

/// One PETS run in progress.
pub(super) struct PetsLoop<'a, 'o> {
    ctx: &'a GpuContext,
    cfg: &'a PetsConfig,
    env: &'a mut dyn Env,
    task: Task,
    opts: RunOptions<'o>,
    trainer: Trainer,
    planner: Planner,
    buffer: ReplayBuffer,
    files: Option<RunFolder>,
    rng: StdRng,
    counters: Counters,
    summary: PetsSummary,
    first_trial: usize,
    resumed: bool,
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

/// The run folder's lock (where the folder exists; taken before anything else is read of it)
/// and, when resuming, its last consistent point.
type Start = (Option<RunLock>, Option<ResumeState>);

/// Checks the inputs, and for `resume` locks the folder and checks that it holds a run of this
/// very config, returning its last consistent point (or, for a new run, checks that the folder
/// can take it and locks it if it exists).
fn check_start(cfg: &PetsConfig, env: &dyn Env, task: &Task, opts: &RunOptions<'_>) -> Result<Start> {
    cfg.validate()?;
    task.validate()?;
    if env.obs_dim() != task.obs_dim || env.act_dim() != task.act_dim {
        return Err(Error::InvalidInput("the environment and its planning task disagree on sizes".into()));
    }
    let same = |dir: &std::path::Path| run::check_same_config(dir, cfg);
    let lock = run::lock_folder(opts.out_dir.as_deref(), (opts.resume, opts.overwrite), &LAYOUT, same)?;
    match (&opts.out_dir, opts.resume) {
        (Some(dir), true) => {
            let state = ResumeState::load(dir)?;
            state.check_plan(dir, cfg)?;
            Ok((lock, Some(state)))
        }
        _ => Ok((lock, None)),
    }
}

/// The point's replay buffer, which holds every step the point counts.
fn load_point_buffer(dir: &std::path::Path, state: &ResumeState, task: &Task) -> Result<ReplayBuffer> {
    let buffer = ReplayBuffer::load(&dir.join(&state.replay_file), task.obs_dim, task.act_dim)?;
    if buffer.len() != state.env_steps {
        let why = format!(
            "{} holds {} transitions, the point counts {} steps",
            state.replay_file,
            buffer.len(),
            state.env_steps
        );
        return Err(Error::config("resume", why));
    }
    Ok(buffer)
}

/// What to lower when the transitions a run stores do not fit the device.
const TRANSITIONS_HINT: &str = "lower loop.initial_exploration_steps, loop.trials or loop.trial_length \
    (a run stores up to initial_exploration_steps + trials × trial_length transitions)";

/// The most transitions a run of `cfg` stores: every exploration step and every step of every
/// trial (saturating: a count past `usize` is refused as too large).
fn most_transitions(cfg: &PetsConfig) -> usize {
    let s = &cfg.schedule;
    s.trials.saturating_mul(s.trial_length).saturating_add(s.initial_exploration_steps)
}

/// The trainer (new, or the point's) and the planner, built before any work so that every size
/// is checked against the device first: the model (without allocating it), then the trainer's
/// buffers and its training on every transition the run will store, and the planner's workspace
/// (with a stand-in for the elites, given the trained ones later), every refusal among them
/// reported at once.
fn build_learners(
    ctx: &GpuContext,
    cfg: &PetsConfig,
    task: &Task,
    resumed: Option<&ResumeState>,
    opts: &RunOptions<'_>,
) -> Result<(Trainer, Planner)> {
    let spec = cfg.ensemble_spec(task);
    spec.check_fits(ctx)?;
    let train_cfg = TrainConfig { seed: cfg.seed, ..cfg.train.clone() };
    let trainer = match (resumed, &opts.out_dir) {
        (Some(state), Some(dir)) => Checkpoint::load(dir.join(&state.trainer_file))
            .and_then(|ckpt| ckpt.check_architecture(&spec).map(|()| ckpt))
            .and_then(|ckpt| Trainer::from_checkpoint(ctx, &ckpt, Some(train_cfg))),
        _ => Ensemble::random(spec.clone(), cfg.seed).and_then(|e| Trainer::new(ctx, e, train_cfg)),
    };
    // The last training sees every transition the run stores.
    let trainer = trainer.and_then(|t| t.check_transitions(most_transitions(cfg), TRANSITIONS_HINT).map(|()| t));
    let elite_spec = EnsembleSpec { n_members: cfg.train.num_elites, ..spec };
    let pc = PlannerConfig { seed: cfg.seed, ..cfg.planner.clone() };
    let planner =
        Ensemble::random(elite_spec, cfg.seed).and_then(|e| Planner::new(ctx, task.clone(), Dynamics::Ensemble(e), pc));
    match (trainer, planner) {
        (Ok(t), Ok(p)) => Ok((t, p)),
        (t, p) => {
            Error::collect([t.err(), p.err()].into_iter().flatten().collect())?;
            unreachable!("at least one of the two failed")
        }
    }
}

impl<'a, 'o> PetsLoop<'a, 'o> {
    /// Checks everything, builds the trainer and the planner, and only then replaces an earlier
    /// run in the folder (or reopens it and restores the last consistent point).
    pub(super) fn start_or_resume(
        ctx: &'a GpuContext,
        cfg: &'a PetsConfig,
        env: &'a mut dyn Env,
        task: Task,
        opts: RunOptions<'o>,
    ) -> Result<Self> {
        let (lock, resumed) = check_start(cfg, env, &task, &opts)?;
        let (mut trainer, planner) = build_learners(ctx, cfg, &task, resumed.as_ref(), &opts)?;
        trainer.set_interrupt(opts.interrupt.clone());
        let buffer = match (&opts.out_dir, &resumed) {
            (Some(dir), Some(state)) => load_point_buffer(dir, state, &task)?,
            _ => ReplayBuffer::new(task.obs_dim, task.act_dim),
        };
        let files = match (&opts.out_dir, &resumed, lock) {
            (Some(_), Some(state), Some(lock)) => {
                let rows: Vec<String> = state.trials.iter().map(TrialResult::csv_row).collect();
                Some(RunFolder::reopen(lock, &LAYOUT, &rows)?)
            }
            (Some(dir), _, lock) => Some(RunFolder::create(dir, &LAYOUT, &cfg.to_toml(), opts.overwrite, lock)?),
            (None, _, _) => None,
        };
        let summary = PetsSummary {
            trials: Vec::new(),
            interrupted: false,
            stopped_at: None,
            seconds: 0.0,
            out_dir: opts.out_dir.clone(),
        };
        let mut pets = Self {
            ctx,
            cfg,
            env,
            task,
            opts,
            trainer,
            planner,
            buffer,
            files,
            rng: StdRng::seed_from_u64(cfg.seed ^ 0x9e37_79b9_7f4a_7c15),
            counters: Counters { env_steps: 0, planned_steps: 0, episode: 0, model_loss: f64::NAN },
            summary,
            first_trial: 0,
            resumed: resumed.is_some(),
        };
        if let Some(state) = resumed {
            pets.restore(state)?;
        }
        Ok(pets)
    }

    /// Continues from `state`: its counters, trials and planner calls; the planner plans with the
    /// elites of the last training, as it did before the stop.
    fn restore(&mut self, state: ResumeState) -> Result<()> {
        self.counters = Counters {
            env_steps: state.env_steps,
            planned_steps: state.planned_steps,
            episode: state.episode,
            model_loss: state.model_loss,
        };
        self.first_trial = state.trials_done;
        self.summary.trials = state.trials;
        self.planner.set_calls(state.planner_calls);
        if self.counters.planned_steps > 0 {
            self.planner.set_ensemble(&self.trainer.ensemble()?.select_members(self.trainer.elites())?)?;
            // model.safetensors is the last training's checkpoint, which is the point's trainer:
            // written again, so that a deleted or damaged copy cannot outlive the resume.
            if let Some(f) = self.files.as_ref() {
                self.trainer.checkpoint()?.save(f.dir().join("model.safetensors"))?;
            }
        }
        let event = serde_json::json!({"event": "resume", "trials_done": self.first_trial,
            "env_step": self.counters.env_steps});
        self.event(event)
    }

    /// Whether the run continues an earlier one.
    pub(super) fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether the interrupt flag stopped the run.
    pub(super) fn interrupted(&self) -> bool {
        self.summary.interrupted
    }

    fn stop_requested(&self) -> bool {
        run::stop_requested(self.opts.interrupt.as_ref())
    }

    fn stop(&mut self, at: String) {
        self.summary.interrupted = true;
        self.summary.stopped_at = Some(at);
    }

    fn event(&mut self, value: serde_json::Value) -> Result<()> {
        match self.files.as_mut() {
            Some(f) => f.event(value),
            None => Ok(()),
        }
    }

    /// Starts an episode (its reset seed follows the episode count).
    fn reset(&mut self) -> Vec<f64> {
        self.counters.episode += 1;
        self.env.reset(self.cfg.seed.wrapping_mul(1_000_003).wrapping_add(self.counters.episode))
    }

    /// Random actions within the bounds until `initial_exploration_steps` transitions are
    /// stored, episodes cut at the trial length.
    pub(super) fn explore(&mut self) -> Result<()> {
        let (lo, hi) = self.env.action_bounds();
        let mut obs = self.reset();
        let mut in_episode = 0usize;
        while self.counters.env_steps < self.cfg.schedule.initial_exploration_steps {
            if self.stop_requested() {
                self.stop(format!("exploration step {}", self.counters.env_steps + 1));
                break;
            }
            let a: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| self.rng.random_range(*l..*h)).collect();
            let s = self.env.step(&a)?;
            self.buffer.push(&f32s(&obs), &f32s(&a), &f32s(&s.obs), s.reward as f32, s.terminated)?;
            self.counters.env_steps += 1;
            in_episode += 1;
            obs = if s.terminated || s.truncated || in_episode >= self.cfg.schedule.trial_length {
                in_episode = 0;
                self.reset()
            } else {
                s.obs
            };
        }
        Ok(())
    }

    /// Writes a consistent point after `trials_done` trials (nothing without a run folder).
    pub(super) fn save_point(&self, trials_done: usize) -> Result<()> {
        let Some(files) = &self.files else { return Ok(()) };
        let c = self.counters;
        let state = ResumeState {
            version: 1,
            trials_done,
            env_steps: c.env_steps,
            planned_steps: c.planned_steps,
            episode: c.episode,
            model_loss: c.model_loss,
            planner_calls: self.planner.calls(),
            trials: self.summary.trials.clone(),
            replay_file: String::new(),
            trainer_file: String::new(),
            replay_sha256: String::new(),
            trainer_sha256: String::new(),
        };
        state.save(files.dir(), &self.buffer, &self.trainer)
    }

    /// Every trial left, each followed by its consistent point; stops at an interrupt.
    pub(super) fn run_trials(&mut self) -> Result<()> {
        let run_started = Instant::now();
        let trials = if self.summary.interrupted { 0 } else { self.cfg.schedule.trials };
        for trial in self.first_trial..trials {
            let Some(result) = self.run_trial(trial, run_started)? else { return Ok(()) };
            if let Some(f) = self.files.as_mut() {
                f.row(&result.csv_row())?;
                f.event(result.event())?;
            }
            self.summary.trials.push(result);
            // A consistent point: a stop from here on resumes at the next trial.
            self.save_point(trial + 1)?;
            if self.stop_requested() {
                self.stop(format!("the end of trial {}", trial + 1));
                break;
            }
        }
        Ok(())
    }

    /// Trains the ensemble on every stored transition and gives the planner its elites; writes
    /// the checkpoint and the training event. Returns whether the interrupt stopped the training.
    fn retrain(&mut self) -> Result<bool> {
        let t0 = Instant::now();
        let report = self.trainer.train(&self.buffer)?;
        self.counters.model_loss = report.train_loss.last().copied().unwrap_or(f64::NAN);
        let elites = self.trainer.ensemble()?.select_members(&report.elites)?;
        self.planner.set_ensemble(&elites)?;
        if let Some(f) = self.files.as_mut() {
            self.trainer.checkpoint()?.save(f.dir().join("model.safetensors"))?;
            f.event(serde_json::json!({"event": "train", "env_step": self.counters.env_steps,
                "transitions": self.buffer.len(), "epochs": report.epochs, "train_loss": self.counters.model_loss,
                "val_mse": report.best_mse, "elites": report.elites, "skipped_steps": report.skipped_steps,
                "seconds": t0.elapsed().as_secs_f64(), "interrupted": report.interrupted}))?;
        }
        Ok(report.interrupted)
    }

    /// One planned step from `obs`: plan, act, store the transition. Returns the step and the
    /// plan's latency in milliseconds.
    fn plan_and_act(&mut self, obs: &[f64]) -> Result<(crate::env::Step, f64)> {
        let t0 = Instant::now();
        let plan = self.planner.plan(&f32s(obs))?;
        let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
        let a: Vec<f64> = plan.action.iter().map(|v| *v as f64).collect();
        let s = self.env.step(&a)?;
        self.buffer.push(&f32s(obs), &plan.action, &f32s(&s.obs), s.reward as f32, s.terminated)?;
        self.counters.env_steps += 1;
        self.counters.planned_steps += 1;
        Ok((s, plan_ms))
    }

    /// One trial: an episode planned at every step, the model retrained every
    /// `freq_train_model` planned steps. `None` when the interrupt stopped it.
    fn run_trial(&mut self, trial: usize, run_started: Instant) -> Result<Option<TrialResult>> {
        let mut obs = self.reset();
        self.planner.reset()?;
        let (mut total, mut steps) = (0.0, 0usize);
        let mut plan_ms = Vec::new();
        let trial_started = Instant::now();
        loop {
            if self.counters.planned_steps.is_multiple_of(self.cfg.schedule.freq_train_model) && self.retrain()? {
                self.stop(format!("training before trial {}, step {}", trial + 1, steps + 1));
                return Ok(None);
            }
            let (s, ms) = self.plan_and_act(&obs)?;
            plan_ms.push(ms);
            total += s.reward;
            steps += 1;
            obs = s.obs.clone();
            let progress = Progress {
                trial,
                trials: self.cfg.schedule.trials,
                step: steps,
                trial_return: total,
                last_return: self.summary.trials.last().map(|t| t.total_return),
                steps_per_s: self.counters.planned_steps as f64 / run_started.elapsed().as_secs_f64(),
            };
            if let Some(cb) = self.opts.progress.as_mut() {
                cb(&progress);
            }
            let done = s.terminated || s.truncated || steps >= self.cfg.schedule.trial_length;
            if self.stop_requested() && !done {
                self.stop(format!("trial {}, step {steps}", trial + 1));
                return Ok(None);
            }
            if done {
                break;
            }
        }
        Ok(Some(TrialResult {
            trial,
            env_step: self.counters.env_steps,
            total_return: total,
            steps,
            model_loss: self.counters.model_loss,
            plan_ms: util::percentile(&plan_ms, 0.5).unwrap_or(0.0),
            step_ms: trial_started.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64,
        }))
    }

    /// The run's end: its wall time, the end event and the learning curve.
    pub(super) fn finish(mut self, started: Instant) -> Result<PetsSummary> {
        self.summary.seconds = started.elapsed().as_secs_f64();
        let end = serde_json::json!({"event": "end", "trials": self.summary.trials.len(),
            "interrupted": self.summary.interrupted, "seconds": self.summary.seconds,
            "adapter": self.ctx.adapter().name});
        if let Some(f) = self.files.as_mut() {
            f.event(end)?;
            let title = format!("PETS on {}", self.task.name);
            super::plot_learning_curve(&f.dir().join("learning_curve.svg"), &title, &self.summary.trials)?;
        }
        Ok(self.summary)
    }
}
