//! A PETS run's consistent point (`resume.json`): written after the exploration and after every
//! trial, last of the files it names, through `crate::run::point`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{PetsConfig, TrialResult, LAYOUT};
use crate::error::{Error, Result};
use crate::run::{nan_as_null, point};
use crate::train::{ReplayBuffer, Trainer};

/// The stem of a point's replay buffer file (`replay.<point>.safetensors`).
pub(super) const REPLAY_STEM: &str = "replay";
/// The stem of a point's trainer checkpoint (`resume.<point>.safetensors`).
pub(super) const TRAINER_STEM: &str = "resume";

/// Where a run stood at its last consistent point, from which `resume` continues exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeState {
    /// Format version (1).
    pub version: u32,
    /// Trials finished.
    pub trials_done: usize,
    /// Environment steps taken, exploration included.
    pub env_steps: usize,
    /// Steps planned with the model.
    pub planned_steps: usize,
    /// Episodes started (the environment's reset seed follows it).
    pub episode: u64,
    /// The last training's loss (NaN before the first).
    #[serde(with = "nan_as_null")]
    pub model_loss: f64,
    /// Plans made (the planner's random stream follows it).
    pub planner_calls: u32,
    /// Every finished trial, in order.
    pub trials: Vec<TrialResult>,
    /// The point's replay buffer file (named by the point, so the previous point's files stay
    /// intact until this state replaces the previous one).
    pub replay_file: String,
    /// The point's trainer checkpoint file.
    pub trainer_file: String,
    /// SHA-256 of the replay buffer file.
    pub replay_sha256: String,
    /// SHA-256 of the trainer file.
    pub trainer_sha256: String,
}

impl ResumeState {
    /// Writes the buffer and the trainer under this point's names, then the state naming them
    /// (the commit point), then removes the files of earlier points.
    pub fn save(mut self, dir: &Path, buffer: &ReplayBuffer, trainer: &Trainer) -> Result<()> {
        let n = self.trials_done;
        let replay = point::write_file(dir, REPLAY_STEM, n, |p| buffer.save(p))?;
        let trainer = point::write_file(dir, TRAINER_STEM, n, |p| trainer.checkpoint()?.save(p))?;
        (self.replay_file, self.replay_sha256) = (replay.name, replay.sha256);
        (self.trainer_file, self.trainer_sha256) = (trainer.name, trainer.sha256);
        let text = serde_json::to_string_pretty(&self).expect("the state serialises");
        point::commit(dir, &LAYOUT, &text, &[&self.replay_file, &self.trainer_file])
    }

    /// Reads the state and checks that the files it names are the ones written with it.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(LAYOUT.state_file);
        let text = point::read_state(dir, &LAYOUT)?;
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
        let files = [
            (REPLAY_STEM, s.replay_file.as_str(), s.replay_sha256.as_str()),
            (TRAINER_STEM, &s.trainer_file, &s.trainer_sha256),
        ];
        point::check_files(dir, &LAYOUT, s.trials_done, &files)?;
        Ok(s)
    }
}

impl ResumeState {
    /// Refuses a state of an unknown version or whose counters and trials are not those of a
    /// run of `cfg` (an edited or foreign `resume.json`; counters at their maximum would wrap
    /// when the run goes on), every problem at once. A run explores
    /// `initial_exploration_steps`, then each trial takes 1 to `trial_length` planned steps, one
    /// plan each, and the point follows the last trial.
    pub fn check_plan(&self, dir: &Path, cfg: &PetsConfig) -> Result<()> {
        let s = &cfg.schedule;
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push(format!("version {} (this build reads version 1)", self.version));
        }
        if self.trials_done > s.trials {
            problems.push(format!("trials_done {} of {} planned", self.trials_done, s.trials));
        }
        let explored = s.initial_exploration_steps as u128;
        if self.env_steps as u128 != explored + self.planned_steps as u128 {
            let (e, p) = (self.env_steps, self.planned_steps);
            problems.push(format!("env_steps {e}, not the {explored} exploration steps + planned_steps {p}"));
        }
        let planned: u128 = self.trials.iter().map(|t| t.steps as u128).sum();
        if self.planned_steps as u128 != planned {
            problems.push(format!("planned_steps {}, the trials took {planned}", self.planned_steps));
        }
        if self.planner_calls as u128 != self.planned_steps as u128 % (1 << 32) {
            problems.push(format!("planner_calls {} for {} planned steps", self.planner_calls, self.planned_steps));
        }
        // Every episode but the current one took a step.
        let episodes = self.env_steps as u128 + s.trials as u128 + 1;
        if self.episode as u128 > episodes {
            problems.push(format!("episode {} of at most {episodes}", self.episode));
        }
        problems.extend(self.trial_problems(s));
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{}: {}; it was not written by a run of this config",
            dir.join(LAYOUT.state_file).display(),
            problems.join(", ")
        )))
    }

    /// The trials that a run of `s` cannot have finished: 1 to `trial_length` steps each, every
    /// one ending at the step count so far.
    fn trial_problems(&self, s: &super::LoopConfig) -> Vec<String> {
        let mut at = s.initial_exploration_steps as u128;
        let mut problems = Vec::new();
        for t in &self.trials {
            at += t.steps as u128;
            if t.steps == 0 || t.steps > s.trial_length {
                problems.push(format!("trials[{}].steps {} outside 1..={}", t.trial, t.steps, s.trial_length));
            }
            if t.env_step as u128 != at {
                problems.push(format!("trials[{}].env_step {}, the steps so far are {at}", t.trial, t.env_step));
            }
        }
        problems
    }
}

/// The transitions stored at a run's last consistent point (see `--resume`).
pub fn saved_transitions(dir: &Path, obs_dim: usize, act_dim: usize) -> Result<ReplayBuffer> {
    let state = ResumeState::load(dir)?;
    ReplayBuffer::load(&dir.join(&state.replay_file), obs_dim, act_dim)
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
