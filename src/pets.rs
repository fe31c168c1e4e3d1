//! The PETS loop (Chua et al. 2018): random exploration, then every step plan with CEM over the
//! learned ensemble, act, store the transition, and retrain the model every `freq_train_model`
//! steps — with a run directory holding the resolved config, metrics, per-trial results, the
//! checkpoint and a learning-curve plot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::env::{Env, EnvKind, Task};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::{Ensemble, EnsembleSpec};
use crate::planner::{Dynamics, Planner, PlannerConfig};
use crate::train::checkpoint::Checkpoint;
use crate::train::{ReplayBuffer, TrainConfig, Trainer};
use crate::util::{self, write_atomic};

/// Ensemble architecture (sizes come from the environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Ensemble members (default: 7).
    pub members: usize,
    /// Hidden widths (default: 4 × 200).
    pub hidden: Vec<usize>,
    /// Gaussian outputs (default: true).
    pub probabilistic: bool,
    /// Also predict the reward instead of using the environment's WGSL reward (default: false).
    pub learned_reward: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { members: 7, hidden: vec![200; 4], probabilistic: true, learned_reward: false }
    }
}

/// The schedule of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Random-action steps before the first trial (default: 200).
    pub initial_exploration_steps: usize,
    /// Trials (episodes) planned with the model (default: 25).
    pub trials: usize,
    /// Steps per trial at most (default: 200).
    pub trial_length: usize,
    /// Retrain the model every this many planned steps (default: 50).
    pub freq_train_model: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self { initial_exploration_steps: 200, trials: 25, trial_length: 200, freq_train_model: 50 }
    }
}

/// Everything a PETS run needs; the TOML sections are `[model]`, `[train]`, `[planner]`, `[loop]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PetsConfig {
    /// Built-in environment.
    pub env: EnvKind,
    /// Seed of the environment, exploration, training and planning.
    pub seed: u64,
    /// An environment outside the crate that the caller drives (e.g. `gymnasium:Pendulum-v1`
    /// from the Python package); `env` then names the built-in preset the settings started
    /// from. Recorded in the run folder; not settable from a config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_env: Option<String>,
    /// Ensemble architecture.
    pub model: ModelConfig,
    /// Training settings.
    pub train: TrainConfig,
    /// Planner settings.
    pub planner: PlannerConfig,
    /// Loop schedule.
    #[serde(rename = "loop")]
    pub schedule: LoopConfig,
}

/// Named starting points for a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The PETS reference settings (docs/DESIGN.md; pendulum: horizon 30, 15 trials).
    Reference,
    /// Small enough for a CPU rasteriser (lavapipe) in minutes.
    Demo,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reference" => Ok(Preset::Reference),
            "demo" => Ok(Preset::Demo),
            other => Err(Error::config("preset", format!("unknown preset {other:?}; known: reference, demo"))),
        }
    }
}

/// Optional keys that a serialised config leaves out when unset.
const OPTIONAL_KEYS: &[&str] = &["planner.action_lower", "planner.action_upper", "train.clip_grad_norm"];

impl PetsConfig {
    /// The preset for `env`.
    pub fn preset(env: EnvKind, preset: Preset) -> Self {
        let mut c = PetsConfig {
            env,
            seed: 0,
            external_env: None,
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            planner: PlannerConfig::pets_reference(),
            schedule: LoopConfig::default(),
        };
        if env == EnvKind::Pendulum {
            c.planner.horizon = 30;
            c.schedule.trials = 15;
        }
        if preset == Preset::Demo {
            c.model = ModelConfig { members: 5, hidden: vec![64, 64], ..ModelConfig::default() };
            c.train = TrainConfig {
                epochs: 30,
                patience: 0,
                batch_size: 32,
                lr: 2e-3,
                num_elites: 3,
                ..TrainConfig::default()
            };
            c.planner = PlannerConfig { population: 100, particles: 8, iterations: 3, ..c.planner };
            c.schedule.trials = if env == EnvKind::Pendulum { 8 } else { 5 };
        }
        c
    }

    /// Preset, then a TOML file, then `key.path=value` assignments; unknown keys (with their
    /// path) and impossible values are errors.
    pub fn resolve(env: EnvKind, preset: Preset, file: Option<&str>, sets: &[String]) -> Result<Self> {
        let base = Self::preset(env, preset);
        let mut table = toml::Table::try_from(&base).map_err(|e| Error::config("config", e.to_string()))?;
        let schema = table.clone();
        // Every problem is collected: unknown keys and values of the wrong kind are left out of
        // the merge (so the rest still parses), then the ranges of the merged config are checked.
        let mut errs = Vec::new();
        let mut take = |r: Result<()>| match r {
            Ok(()) => {}
            Err(Error::InvalidConfigs(v)) => errs.extend(v),
            Err(e) => errs.push(e),
        };
        if let Some(text) = file {
            let user: toml::Table = toml::from_str(text).map_err(|e| Error::config("config file", e.to_string()))?;
            take(util::merge_checked(&mut table, user, &schema, "", OPTIONAL_KEYS));
        }
        take(util::apply_assignments(&mut table, &schema, sets, "", OPTIONAL_KEYS));
        // The merged document is parsed as text so that a type error has a position, which is
        // turned into the key the user wrote (the merged text's line numbers are nobody's file).
        let text = toml::to_string(&table).map_err(|e| Error::config("config", e.to_string()))?;
        let parsed = toml::from_str::<PetsConfig>(&text).map_err(|e| {
            let key = e.span().and_then(|s| key_at(&text, s.start)).unwrap_or_else(|| "config".to_string());
            Error::config(key, e.message().to_string())
        });
        match parsed {
            Ok(cfg) => {
                take(cfg.validate());
                Error::collect(errs).map(|()| cfg)
            }
            Err(e) => {
                errs.push(e);
                Err(if errs.len() == 1 { errs.remove(0) } else { Error::InvalidConfigs(errs) })
            }
        }
    }

    /// Checks every section; all problems are reported at once.
    pub fn validate(&self) -> Result<()> {
        let mut errs = Vec::new();
        let mut take = |r: Result<()>| match r {
            Ok(()) => {}
            Err(Error::InvalidConfigs(v)) => errs.extend(v),
            Err(e) => errs.push(e),
        };
        take(self.planner.validate());
        take(self.train.validate(self.model.members));
        if self.model.members == 0 {
            take(Err(Error::config("model.members", "must be at least 1")));
        }
        if self.model.hidden.contains(&0) {
            take(Err(Error::config("model.hidden", "every width must be at least 1")));
        }
        let s = &self.schedule;
        if s.trials == 0 || s.trial_length == 0 || s.freq_train_model == 0 {
            take(Err(Error::config("loop", "trials, trial_length and freq_train_model must be at least 1")));
        }
        if s.initial_exploration_steps == 0 {
            take(Err(Error::config(
                "loop.initial_exploration_steps",
                "the model needs data before the first plan: use at least 1",
            )));
        }
        // One seed drives a run; section seeds would be silently replaced by it.
        if self.planner.seed != PlannerConfig::default().seed {
            take(Err(Error::config("planner.seed", "a PETS run takes every seed from the top-level `seed`")));
        }
        if self.train.seed != TrainConfig::default().seed {
            take(Err(Error::config("train.seed", "a PETS run takes every seed from the top-level `seed`")));
        }
        Error::collect(errs)
    }

    /// The ensemble architecture for `task`.
    pub fn ensemble_spec(&self, task: &Task) -> EnsembleSpec {
        EnsembleSpec {
            n_members: self.model.members,
            obs_dim: task.obs_dim,
            act_dim: task.act_dim,
            hidden: self.model.hidden.clone(),
            probabilistic: self.model.probabilistic,
            learned_reward: self.model.learned_reward,
        }
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }
}

/// The `section.key` of the line holding byte `offset` of a TOML document written by
/// `toml::to_string` (one `key = value` per line under `[section]` headers).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = before[..line_start]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .map(|l| l.trim().trim_matches(|c| c == '[' || c == ']').to_string());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

/// One trial's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// Trial index from 0.
    pub trial: usize,
    /// Environment steps so far (exploration included).
    pub env_step: usize,
    /// Sum of rewards.
    #[serde(with = "nan_as_null")]
    pub total_return: f64,
    /// Steps in the trial.
    pub steps: usize,
    /// Training loss of the latest model (NaN before the first training).
    #[serde(with = "nan_as_null")]
    pub model_loss: f64,
    /// Median plan latency in the trial.
    #[serde(with = "nan_as_null")]
    pub plan_ms: f64,
    /// Wall time per environment step (planning and training included).
    #[serde(with = "nan_as_null")]
    pub step_ms: f64,
}

/// The f64 fields of the run files that may hold NaN ("no model yet"): JSON has no NaN, so
/// serde_json writes it as null, which an `f64` field then refuses — a run interrupted between
/// its exploration and its first training could not be resumed. Non-finite values are written
/// as null and read back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// The command line's progress bar for a PETS run (trials × steps, the trial's return, the last
/// trial's return, steps per second), on stderr.
pub struct ProgressDisplay {
    bar: indicatif::ProgressBar,
    done_before: u64,
    last_trial: usize,
    trial_length: u64,
}

impl ProgressDisplay {
    /// A bar sized for `cfg`'s trials.
    pub fn new(cfg: &PetsConfig) -> Self {
        let total = (cfg.schedule.trials * cfg.schedule.trial_length) as u64;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {msg}")
                .expect("the template is a literal")
                .progress_chars("=> "),
        );
        Self { bar, done_before: 0, last_trial: 0, trial_length: cfg.schedule.trial_length as u64 }
    }

    /// Shows `p`.
    pub fn update(&mut self, p: &Progress) {
        if p.trial != self.last_trial {
            self.done_before = p.trial as u64 * self.trial_length;
            self.last_trial = p.trial;
        }
        self.bar.set_position(self.done_before + p.step as u64);
        let last = p.last_return.map(|r| format!(", last trial {r:.1}")).unwrap_or_default();
        self.bar.set_message(format!(
            "trial {}/{} return {:.1}{last} ({:.1} steps/s)",
            p.trial + 1,
            p.trials,
            p.trial_return,
            p.steps_per_s
        ));
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// What the loop reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Current trial.
    pub trial: usize,
    /// Trials in all.
    pub trials: usize,
    /// Steps in the current trial.
    pub step: usize,
    /// Return so far in the trial.
    pub trial_return: f64,
    /// Last finished trial's return.
    pub last_return: Option<f64>,
    /// Environment steps per second over the run.
    pub steps_per_s: f64,
}

/// A finished (or interrupted) run.
#[derive(Debug, Clone, PartialEq)]
pub struct PetsSummary {
    /// Every trial.
    pub trials: Vec<TrialResult>,
    /// Stopped by the interrupt flag.
    pub interrupted: bool,
    /// Where the interrupt stopped the run (`"exploration step 57"`, `"training before trial 3,
    /// step 50"`, `"trial 2, step 17"`; trials and steps counted from 1).
    pub stopped_at: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// The run directory, if any.
    pub out_dir: Option<PathBuf>,
}

/// Where the run writes and how it is stopped.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Run directory (created); `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Set to stop after the current step; files stay consistent.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Called after every step.
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
    /// Replace the run already in `out_dir` (otherwise a folder holding files is refused, so a
    /// repeated command never destroys an earlier run).
    pub overwrite: bool,
    /// Continue the run in `out_dir` from its last consistent point (the end of the exploration
    /// or of a trial), exactly as if it had not stopped.
    pub resume: bool,
}

/// Where a run stood at its last consistent point: written after the exploration and after every
/// trial, last of the files it names, so a crash at any instant leaves either the previous point
/// or this one (`resume.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeState {
    version: u32,
    trials_done: usize,
    env_steps: usize,
    planned_steps: usize,
    episode: u64,
    #[serde(with = "nan_as_null")]
    model_loss: f64,
    planner_calls: u32,
    trials: Vec<TrialResult>,
    /// The point's replay buffer and trainer files (named by the point, so the previous point's
    /// files stay intact until this state replaces the previous one) and their SHA-256.
    replay_file: String,
    trainer_file: String,
    replay_sha256: String,
    trainer_sha256: String,
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

impl ResumeState {
    /// Writes the buffer and the trainer under this point's names, then the state naming them
    /// (the commit point), then removes the files of earlier points.
    fn save(mut self, dir: &Path, buffer: &ReplayBuffer, trainer: &Trainer) -> Result<()> {
        self.replay_file = format!("replay.{}.safetensors", self.trials_done);
        self.trainer_file = format!("resume.{}.safetensors", self.trials_done);
        buffer.save(&dir.join(&self.replay_file))?;
        trainer.checkpoint()?.save(dir.join(&self.trainer_file))?;
        self.replay_sha256 = sha256_file(&dir.join(&self.replay_file))?;
        self.trainer_sha256 = sha256_file(&dir.join(&self.trainer_file))?;
        let text = serde_json::to_string_pretty(&self).expect("the state serialises");
        write_atomic(&dir.join("resume.json"), text.as_bytes())?;
        for entry in std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })? {
            let name = entry.map_err(|source| Error::Io { path: dir.display().to_string(), source })?.file_name();
            let name = name.to_string_lossy();
            let stale = (name.starts_with("replay.") || name.starts_with("resume."))
                && name.ends_with(".safetensors")
                && name != self.replay_file
                && name != self.trainer_file;
            if stale {
                let _ = std::fs::remove_file(dir.join(name.as_ref()));
            }
        }
        Ok(())
    }

    /// Reads the state and checks that the files it names are the ones written with it.
    fn load(dir: &Path) -> Result<Self> {
        let p = dir.join("resume.json");
        let text = std::fs::read_to_string(&p).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
        let s: Self = serde_json::from_str(&text).map_err(|e| Error::config(p.display().to_string(), e.to_string()))?;
        // The trials listed are those done, in order: an edited or mixed state is refused.
        let in_order = s.trials.iter().enumerate().all(|(i, t)| t.trial == i);
        if s.trials.len() != s.trials_done || !in_order || s.planned_steps > s.env_steps {
            return Err(Error::InvalidInput(format!(
                "{}: says {} trials are done but lists {} (trial numbers {:?}) with {} planned of {} steps; \
                 it was not written by a run",
                p.display(),
                s.trials_done,
                s.trials.len(),
                s.trials.iter().map(|t| t.trial).collect::<Vec<_>>(),
                s.planned_steps,
                s.env_steps
            )));
        }
        for (name, want) in [(&s.replay_file, &s.replay_sha256), (&s.trainer_file, &s.trainer_sha256)] {
            if &sha256_file(&dir.join(name))? != want {
                return Err(Error::InvalidInput(format!(
                    "{}: {name} is not the file resume.json was written with; the run cannot be resumed exactly",
                    dir.display()
                )));
            }
        }
        Ok(s)
    }
}

/// The files a run writes in its folder.
pub const RUN_FILES: [&str; 6] =
    ["config.toml", "metrics.jsonl", "results.csv", "model.safetensors", "learning_curve.svg", "resume.json"];

/// The transitions stored at a run's last consistent point (see `--resume`).
pub fn saved_transitions(dir: &Path, obs_dim: usize, act_dim: usize) -> Result<ReplayBuffer> {
    let state = ResumeState::load(dir)?;
    ReplayBuffer::load(&dir.join(&state.replay_file), obs_dim, act_dim)
}

struct RunFiles {
    dir: PathBuf,
    metrics: std::fs::File,
    results: std::fs::File,
}

impl RunFiles {
    /// Checks that `dir` can hold a new run (before any work): absent, empty, or `overwrite`.
    fn check(dir: &Path, overwrite: bool) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::config("out", format!("{} exists and is not a folder", dir.display())));
        }
        let occupied = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
        if occupied && !overwrite {
            return Err(Error::config(
                "out",
                format!(
                    "{} already holds files (an earlier run?); choose another folder, or replace that run with \
                     --overwrite (overwrite=True in Python)",
                    dir.display()
                ),
            ));
        }
        Ok(())
    }

    fn create(dir: &Path, cfg: &PetsConfig, overwrite: bool) -> Result<Self> {
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |source| Error::Io { path: p, source }
        };
        Self::check(dir, overwrite)?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // An overwritten run loses every file of the old one first: no mixture of the two.
        let points =
            std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok()).map(|e| e.file_name()).filter(|n| {
                let n = n.to_string_lossy();
                (n.starts_with("replay.") || n.starts_with("resume.")) && n.ends_with(".safetensors")
            });
        let names: Vec<std::path::PathBuf> =
            RUN_FILES.iter().map(|n| dir.join(n)).chain(points.map(|n| dir.join(n))).collect();
        for p in names {
            if p.exists() {
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        let open = |name: &str| {
            let p = dir.join(name);
            std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&p).map_err(io(&p))
        };
        let metrics = open("metrics.jsonl")?;
        let mut results = open("results.csv")?;
        results
            .write_all(b"env_step,trial,return,model_loss,plan_ms,step_ms\n")
            .map_err(io(&dir.join("results.csv")))?;
        results.sync_data().map_err(io(&dir.join("results.csv")))?;
        Ok(Self { dir: dir.to_path_buf(), metrics, results })
    }

    /// Opens an existing run's files to continue it: metrics are appended to, and the results
    /// are rewritten with the trials of the resumed point (later rows belonged to lost work).
    fn reopen(dir: &Path, trials: &[TrialResult]) -> Result<Self> {
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |source| Error::Io { path: p, source }
        };
        let mut text = String::from("env_step,trial,return,model_loss,plan_ms,step_ms\n");
        for t in trials {
            text.push_str(&format!(
                "{},{},{},{},{:.3},{:.3}\n",
                t.env_step, t.trial, t.total_return, t.model_loss, t.plan_ms, t.step_ms
            ));
        }
        write_atomic(&dir.join("results.csv"), text.as_bytes())?;
        // A process killed while appending leaves a partial last line: cut it off.
        let metrics = dir.join("metrics.jsonl");
        if let Ok(bytes) = std::fs::read(&metrics) {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if keep < bytes.len() {
                write_atomic(&metrics, &bytes[..keep])?;
            }
        }
        let open = |name: &str| {
            let p = dir.join(name);
            std::fs::OpenOptions::new().append(true).open(&p).map_err(io(&p))
        };
        Ok(Self { dir: dir.to_path_buf(), metrics: open("metrics.jsonl")?, results: open("results.csv")? })
    }

    fn event(&mut self, value: serde_json::Value) -> Result<()> {
        let p = self.dir.join("metrics.jsonl");
        let mut line = value.to_string();
        line.push('\n');
        self.metrics
            .write_all(line.as_bytes())
            .and_then(|_| self.metrics.sync_data())
            .map_err(|source| Error::Io { path: p.display().to_string(), source })
    }

    fn trial(&mut self, t: &TrialResult) -> Result<()> {
        let p = self.dir.join("results.csv");
        let row = format!(
            "{},{},{},{},{:.3},{:.3}\n",
            t.env_step, t.trial, t.total_return, t.model_loss, t.plan_ms, t.step_ms
        );
        self.results
            .write_all(row.as_bytes())
            .and_then(|_| self.results.sync_data())
            .map_err(|source| Error::Io { path: p.display().to_string(), source })?;
        self.event(
            serde_json::json!({"event": "trial", "trial": t.trial, "env_step": t.env_step, "return": t.total_return,
            "steps": t.steps, "model_loss": t.model_loss, "plan_ms": t.plan_ms, "step_ms": t.step_ms}),
        )
    }
}

/// Writes the learning curve (return per trial) as SVG.
pub fn plot_learning_curve(path: &Path, title: &str, trials: &[TrialResult]) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: String| Error::Plot { path: path.display().to_string(), reason: e };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let n = trials.len().max(1);
        let (lo, hi) = trials
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| (lo.min(t.total_return), hi.max(t.total_return)));
        let (lo, hi) = if lo.is_finite() { (lo.min(0.0), hi.max(lo + 1.0)) } else { (0.0, 1.0) };
        let pad = (hi - lo) * 0.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5f64..n as f64 + 0.5, (lo - pad)..(hi + pad))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_labels(n.min(12))
            .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-9 { format!("{x:.0}") } else { String::new() })
            .x_desc("trial")
            .y_desc("return")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let pts: Vec<(f64, f64)> = trials.iter().map(|t| (t.trial as f64 + 1.0, t.total_return)).collect();
        chart.draw_series(LineSeries::new(pts.clone(), &BLUE)).map_err(|e| err(e.to_string()))?;
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, BLUE.filled()))).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, svg.as_bytes())
}

/// Runs PETS on `env` (whose planning twin is `task`) with `cfg`.
pub fn run(
    ctx: &GpuContext,
    cfg: &PetsConfig,
    env: &mut dyn Env,
    task: Task,
    mut opts: RunOptions<'_>,
) -> Result<PetsSummary> {
    cfg.validate()?;
    task.validate()?;
    if env.obs_dim() != task.obs_dim || env.act_dim() != task.act_dim {
        return Err(Error::InvalidInput("the environment and its planning task disagree on sizes".into()));
    }
    let started = Instant::now();
    let resumed = match (&opts.out_dir, opts.resume) {
        (Some(dir), true) => {
            let stored = dir.join("config.toml");
            let text = std::fs::read_to_string(&stored)
                .map_err(|source| Error::Io { path: stored.display().to_string(), source })?;
            let theirs: PetsConfig =
                toml::from_str(&text).map_err(|e| Error::config(stored.display().to_string(), e.to_string()))?;
            if &theirs != cfg {
                return Err(Error::config("resume", format!("{} holds a run of another config", dir.display())));
            }
            Some(ResumeState::load(dir)?)
        }
        (None, true) => return Err(Error::config("resume", "resuming needs the run folder (--out; out= in Python)")),
        (Some(dir), false) => {
            RunFiles::check(dir, opts.overwrite)?;
            None
        }
        (None, false) => None,
    };
    let interrupted = |opts: &RunOptions<'_>| opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
    let spec = cfg.ensemble_spec(&task);
    // Every size is checked against the device before any work: the model (without allocating
    // it), the trainer's buffers, and the planner's workspace, which is built now with a
    // stand-in for the elites and given the trained ones later.
    // The model must fit before anything of its size is allocated; then the trainer and the
    // planner are both built and every refusal among them is reported at once.
    spec.check_fits(ctx)?;
    let train_cfg = TrainConfig { seed: cfg.seed, ..cfg.train.clone() };
    let trainer = match (&resumed, &opts.out_dir) {
        (Some(state), Some(dir)) => crate::train::checkpoint::Checkpoint::load(dir.join(&state.trainer_file))
            .and_then(|ckpt| Trainer::from_checkpoint(ctx, &ckpt, Some(train_cfg))),
        _ => Ensemble::random(spec.clone(), cfg.seed).and_then(|e| Trainer::new(ctx, e, train_cfg)),
    };
    let elite_spec = EnsembleSpec { n_members: cfg.train.num_elites, ..spec };
    let pc = PlannerConfig { seed: cfg.seed, ..cfg.planner.clone() };
    let planner =
        Ensemble::random(elite_spec, cfg.seed).and_then(|e| Planner::new(ctx, task.clone(), Dynamics::Ensemble(e), pc));
    let (mut trainer, mut planner) = match (trainer, planner) {
        (Ok(t), Ok(p)) => (t, p),
        (t, p) => {
            Error::collect([t.err(), p.err()].into_iter().flatten().collect())?;
            unreachable!("at least one of the two failed")
        }
    };
    trainer.set_interrupt(opts.interrupt.clone());
    // Only now, with every check passed, is an earlier run in the folder replaced (or reopened).
    let mut files = match (&opts.out_dir, &resumed) {
        (Some(dir), Some(state)) => Some(RunFiles::reopen(dir, &state.trials)?),
        (Some(dir), None) => Some(RunFiles::create(dir, cfg, opts.overwrite)?),
        (None, _) => None,
    };
    let mut buffer = match (&opts.out_dir, &resumed) {
        (Some(dir), Some(state)) => ReplayBuffer::load(&dir.join(&state.replay_file), task.obs_dim, task.act_dim)?,
        _ => ReplayBuffer::new(task.obs_dim, task.act_dim),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x9e37_79b9_7f4a_7c15);
    let (lo, hi) = env.action_bounds();
    let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|x| *x as f32).collect() };
    let mut episode = 0u64;
    let reset = |env: &mut dyn Env, episode: &mut u64| {
        *episode += 1;
        env.reset(cfg.seed.wrapping_mul(1_000_003).wrapping_add(*episode))
    };
    let mut summary = PetsSummary {
        trials: Vec::new(),
        interrupted: false,
        stopped_at: None,
        seconds: 0.0,
        out_dir: opts.out_dir.clone(),
    };
    let mut env_steps = 0usize;
    let mut planned_steps = 0usize;
    let mut model_loss = f64::NAN;
    let mut first_trial = 0usize;
    if let Some(state) = &resumed {
        env_steps = state.env_steps;
        planned_steps = state.planned_steps;
        episode = state.episode;
        model_loss = state.model_loss;
        first_trial = state.trials_done;
        summary.trials = state.trials.clone();
        planner.set_calls(state.planner_calls);
        if planned_steps > 0 {
            // The planner plans with the elites of the last training, as it did before the stop.
            planner.set_ensemble(&trainer.ensemble()?.select_members(trainer.elites())?)?;
            // model.safetensors is the last training's checkpoint, which is the point's trainer:
            // written again, so that a deleted or damaged copy cannot outlive the resume.
            if let Some(f) = files.as_ref() {
                trainer.checkpoint()?.save(f.dir.join("model.safetensors"))?;
            }
        }
        if let Some(f) = files.as_mut() {
            f.event(serde_json::json!({"event": "resume", "trials_done": first_trial, "env_step": env_steps}))?;
        }
    }
    // Random exploration (skipped when resuming: it finished before the saved point, and its
    // episodes are already counted).
    let mut obs = if resumed.is_none() { reset(env, &mut episode) } else { Vec::new() };
    let mut in_episode = 0usize;
    while resumed.is_none() && env_steps < cfg.schedule.initial_exploration_steps {
        if interrupted(&opts) {
            summary.interrupted = true;
            summary.stopped_at = Some(format!("exploration step {}", env_steps + 1));
            break;
        }
        let a: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| rng.random_range(*l..*h)).collect();
        let s = env.step(&a)?;
        buffer.push(&f32s(&obs), &f32s(&a), &f32s(&s.obs), s.reward as f32, s.terminated)?;
        env_steps += 1;
        in_episode += 1;
        obs = if s.terminated || s.truncated || in_episode >= cfg.schedule.trial_length {
            in_episode = 0;
            reset(env, &mut episode)
        } else {
            s.obs
        };
    }

    let out_dir = opts.out_dir.clone();
    let save_point = |point: (usize, usize, usize, u64, f64),
                      trials: &[TrialResult],
                      planner: &Planner,
                      buffer: &ReplayBuffer,
                      trainer: &Trainer| {
        let (done, env_steps, planned_steps, episode, model_loss) = point;
        match &out_dir {
            Some(dir) => ResumeState {
                version: 1,
                trials_done: done,
                env_steps,
                planned_steps,
                episode,
                model_loss,
                planner_calls: planner.calls(),
                trials: trials.to_vec(),
                replay_file: String::new(),
                trainer_file: String::new(),
                replay_sha256: String::new(),
                trainer_sha256: String::new(),
            }
            .save(dir, buffer, trainer),
            None => Ok(()),
        }
    };
    if resumed.is_none() && !summary.interrupted {
        save_point((0, env_steps, planned_steps, episode, model_loss), &summary.trials, &planner, &buffer, &trainer)?;
    }
    let run_started = Instant::now();
    let trials = if summary.interrupted { 0 } else { cfg.schedule.trials };
    'trials: for trial in first_trial..trials {
        let mut obs = reset(env, &mut episode);
        planner.reset()?;
        let (mut total, mut steps) = (0.0, 0usize);
        let mut plan_ms = Vec::new();
        let trial_started = Instant::now();
        loop {
            if planned_steps.is_multiple_of(cfg.schedule.freq_train_model) {
                let t0 = Instant::now();
                let report = trainer.train(&buffer)?;
                model_loss = report.train_loss.last().copied().unwrap_or(f64::NAN);
                let elites = trainer.ensemble()?.select_members(&report.elites)?;
                planner.set_ensemble(&elites)?;
                if let Some(f) = files.as_mut() {
                    trainer.checkpoint()?.save(f.dir.join("model.safetensors"))?;
                    f.event(serde_json::json!({"event": "train", "env_step": env_steps, "transitions": buffer.len(),
                        "epochs": report.epochs, "train_loss": model_loss, "val_mse": report.best_mse,
                        "elites": report.elites, "skipped_steps": report.skipped_steps, "seconds": t0.elapsed().as_secs_f64(),
                        "interrupted": report.interrupted}))?;
                }
                if report.interrupted {
                    summary.interrupted = true;
                    summary.stopped_at = Some(format!("training before trial {}, step {}", trial + 1, steps + 1));
                    break 'trials;
                }
            }
            let p = &mut planner;
            let t0 = Instant::now();
            let plan = p.plan(&f32s(&obs))?;
            plan_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            let a: Vec<f64> = plan.action.iter().map(|v| *v as f64).collect();
            let s = env.step(&a)?;
            buffer.push(&f32s(&obs), &plan.action, &f32s(&s.obs), s.reward as f32, s.terminated)?;
            total += s.reward;
            steps += 1;
            env_steps += 1;
            planned_steps += 1;
            obs = s.obs.clone();
            if let Some(cb) = opts.progress.as_mut() {
                cb(&Progress {
                    trial,
                    trials: cfg.schedule.trials,
                    step: steps,
                    trial_return: total,
                    last_return: summary.trials.last().map(|t| t.total_return),
                    steps_per_s: planned_steps as f64 / run_started.elapsed().as_secs_f64(),
                });
            }
            let done = s.terminated || s.truncated || steps >= cfg.schedule.trial_length;
            if interrupted(&opts) && !done {
                summary.interrupted = true;
                summary.stopped_at = Some(format!("trial {}, step {steps}", trial + 1));
                break 'trials;
            }
            if done {
                break;
            }
        }
        let result = TrialResult {
            trial,
            env_step: env_steps,
            total_return: total,
            steps,
            model_loss,
            plan_ms: util::percentile(&plan_ms, 0.5).unwrap_or(0.0),
            step_ms: trial_started.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64,
        };
        if let Some(f) = files.as_mut() {
            f.trial(&result)?;
        }
        summary.trials.push(result);
        // A consistent point: a stop from here on resumes at the next trial.
        save_point(
            (trial + 1, env_steps, planned_steps, episode, model_loss),
            &summary.trials,
            &planner,
            &buffer,
            &trainer,
        )?;
        if interrupted(&opts) {
            summary.interrupted = true;
            summary.stopped_at = Some(format!("the end of trial {}", trial + 1));
            break;
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    if let Some(f) = files.as_mut() {
        f.event(
            serde_json::json!({"event": "end", "trials": summary.trials.len(), "interrupted": summary.interrupted,
            "seconds": summary.seconds, "adapter": ctx.adapter().name}),
        )?;
        plot_learning_curve(&f.dir.join("learning_curve.svg"), &format!("PETS on {}", task.name), &summary.trials)?;
    }
    Ok(summary)
}

/// Replays a run's checkpoint: `episodes` episodes planned with its elites, returns per episode.
pub fn evaluate(ctx: &GpuContext, run_dir: &Path, episodes: usize, seed: u64) -> Result<Vec<f64>> {
    let cfg = read_run_config(run_dir)?;
    if let Some(env) = &cfg.external_env {
        return Err(Error::config(
            "external_env",
            format!(
                "{} ran on {env}, which only its caller can step; replay it from there (Python: lookahead.pets.evaluate)",
                run_dir.display()
            ),
        ));
    }
    let mut env = cfg.env.make();
    evaluate_on(ctx, run_dir, episodes, seed, env.as_mut(), cfg.env.task())
}

fn read_run_config(run_dir: &Path) -> Result<PetsConfig> {
    let cfg_path = run_dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|source| Error::Io { path: cfg_path.display().to_string(), source })?;
    toml::from_str(&text).map_err(|e| Error::config(cfg_path.display().to_string(), e.to_string()))
}

/// Replays the checkpoint of the run in `run_dir` on `env` planned with `task` (for runs on an
/// environment outside the crate): `episodes` episodes of at most the run's trial length.
pub fn evaluate_on(
    ctx: &GpuContext,
    run_dir: &Path,
    episodes: usize,
    seed: u64,
    env: &mut dyn Env,
    task: Task,
) -> Result<Vec<f64>> {
    let cfg = read_run_config(run_dir)?;
    if episodes == 0 {
        return Err(Error::config("episodes", "must be at least 1 (--episodes; episodes= in Python)"));
    }
    if env.obs_dim() != task.obs_dim || env.act_dim() != task.act_dim {
        return Err(Error::InvalidInput("the environment and its planning task disagree on sizes".into()));
    }
    cfg.validate()?;
    let ckpt = Checkpoint::load(run_dir.join("model.safetensors"))?;
    // The checkpoint must be the model this config describes: a run folder mixing two runs is
    // refused, naming what disagrees.
    let expected = cfg.ensemble_spec(&task);
    if ckpt.ensemble.spec != expected {
        return Err(Error::InvalidInput(format!(
            "{}: the checkpoint holds ({}), the config describes ({}); the folder mixes two runs",
            run_dir.display(),
            ckpt.ensemble.spec,
            expected
        )));
    }
    if ckpt.elites.len() != cfg.train.num_elites {
        return Err(Error::InvalidInput(format!(
            "{}: the checkpoint names {} elites, the config train.num_elites = {}",
            run_dir.display(),
            ckpt.elites.len(),
            cfg.train.num_elites
        )));
    }
    let model = ckpt.ensemble.select_members(&ckpt.elites)?;
    let mut planner =
        Planner::new(ctx, task, Dynamics::Ensemble(model), PlannerConfig { seed, ..cfg.planner.clone() })?;
    let mut returns = Vec::new();
    for ep in 0..episodes {
        let mut obs = env.reset(seed.wrapping_mul(7919).wrapping_add(ep as u64));
        planner.reset()?;
        let mut total = 0.0;
        for _ in 0..cfg.schedule.trial_length {
            let o: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
            let a: Vec<f64> = planner.plan(&o)?.action.iter().map(|v| *v as f64).collect();
            let s = env.step(&a)?;
            total += s.reward;
            obs = s.obs;
            if s.terminated || s.truncated {
                break;
            }
        }
        returns.push(total);
    }
    Ok(returns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resume point written after the exploration has no model loss yet (NaN): it must read
    /// back (it was written as null and refused, so a run killed in that window could not resume).
    #[test]
    fn a_resume_point_without_a_model_loss_round_trips() {
        let trial = TrialResult {
            trial: 0,
            env_step: 30,
            total_return: -12.5,
            steps: 30,
            model_loss: f64::NAN,
            plan_ms: 1.25,
            step_ms: 2.5,
        };
        let state = ResumeState {
            version: 1,
            trials_done: 0,
            env_steps: 30,
            planned_steps: 0,
            episode: 2,
            model_loss: f64::NAN,
            planner_calls: 0,
            trials: vec![trial],
            replay_file: "replay.0.safetensors".into(),
            trainer_file: "resume.0.safetensors".into(),
            replay_sha256: String::new(),
            trainer_sha256: String::new(),
        };
        let text = serde_json::to_string(&state).expect("writes");
        assert!(text.contains("\"model_loss\":null"), "{text}");
        let back: ResumeState = serde_json::from_str(&text).expect("reads back");
        assert!(back.model_loss.is_nan() && back.trials[0].model_loss.is_nan());
        assert_eq!((back.trials[0].total_return, back.trials[0].plan_ms), (-12.5, 1.25));
        assert_eq!(back.env_steps, 30);
    }
}
