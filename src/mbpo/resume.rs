//! MBPO's part of a consistent point (SAC's `resume.json` names it as its extension): the real
//! transitions the ensemble trains on (`transitions.<N>.safetensors`), the trainer
//! (`ensemble.<N>.safetensors`: the ensemble with its normaliser, Adam state, elites and
//! generator), the model ring's rows (`model_ring.<N>.safetensors`) and the counters of
//! [`PointState`]. Everything else the next batch needs follows from them: the rollouts' draws
//! from the batch count, the model window from the last rollout length.

use serde::{Deserialize, Serialize};

use super::rollout::RingState;
use super::MbpoConfig;
use crate::error::{Error, Result};
use crate::run::nan_as_null;

/// The stem of a point's real transitions (the ensemble's dataset).
pub(super) const TRANSITIONS_STEM: &str = "transitions";
/// The stem of a point's trainer checkpoint.
pub(super) const ENSEMBLE_STEM: &str = "ensemble";
/// The stem of a point's model ring rows.
pub(super) const MODEL_RING_STEM: &str = "model_ring";

/// The model part's counters at a consistent point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PointState {
    /// Rollout batches run (their draws follow it).
    pub batches: u64,
    /// The model ring's state.
    pub ring: RingState,
    /// The last training's validation MSE over the elites (null before the first).
    #[serde(with = "nan_as_null")]
    pub model_val_mse: f64,
    /// The last batch's rollout length (0 before the first).
    pub rollout_length: usize,
}

/// The model trainings (and rollout batches) of a run of `cfg` before environment step
/// `env_steps`, and the environment step of the last one: one at the first learning step (the
/// first step after the random ones, of which there is at least one) and every
/// `freq_train_model` learning steps after it, as `run_loop::schedule` has them.
pub(super) fn trainings_before(cfg: &MbpoConfig, env_steps: u64) -> (u64, Option<u64>) {
    let initial = cfg.schedule.initial_exploration_steps as u64;
    let first = initial.max(1);
    if env_steps <= first {
        return (0, None);
    }
    let f = cfg.rollout.freq_train_model.max(1) as u64;
    let (lo, hi) = (first - initial, env_steps - initial);
    let count = hi.div_ceil(f) - lo.div_ceil(f);
    let last = (count > 0).then(|| (hi - 1) / f * f + initial);
    (count, last)
}

impl PointState {
    /// The counters before any training.
    pub(super) fn fresh() -> Self {
        Self {
            batches: 0,
            ring: RingState { head: 0, fill: 0, written: 0 },
            model_val_mse: f64::NAN,
            rollout_length: 0,
        }
    }

    /// Refuses counters a run of `cfg` cannot have reached after `env_steps` environment steps
    /// with a model ring of `capacity` rows, every problem at once.
    pub(super) fn check(&self, cfg: &MbpoConfig, env_steps: u64, capacity: usize) -> Result<()> {
        let (batches, last) = trainings_before(cfg, env_steps);
        let mut problems = Vec::new();
        if self.batches != batches {
            problems.push(format!("{} rollout batches where the schedule has {batches}", self.batches));
        }
        let epoch = last.map(|s| (s - cfg.schedule.initial_exploration_steps as u64) / cfg.rollout.epoch_length as u64);
        let length = epoch.map_or(0, |e| cfg.rollout_length(e as usize));
        if self.rollout_length != length {
            problems.push(format!("rollout length {} where the schedule has {length}", self.rollout_length));
        }
        let r = &self.ring;
        let cap = capacity as u64;
        let fill = r.written.min(cap);
        if r.fill as u64 != fill || (cap > 0 && r.head as u64 != r.written % cap) {
            problems.push(format!(
                "a model ring at row {} holding {} rows after {} transitions (capacity {capacity})",
                r.head, r.fill, r.written
            ));
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "the consistent point's model state: {}; it was not written by a run of this config",
            problems.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvKind;
    use crate::mbpo::MbpoPreset;
    use crate::sac::TaskOrigin;

    /// The count agrees with the loop's schedule step by step, with and without random steps.
    /// Catches a count off by one at the first learning step or at a multiple of the frequency
    /// (a resumable point refused, or an edited one accepted).
    #[test]
    fn the_trainings_counted_follow_the_schedule() {
        for (initial, freq) in [(500, 250), (0, 3), (1, 1), (7, 5)] {
            let mut cfg = MbpoConfig::preset(EnvKind::Cartpole, TaskOrigin::BuiltIn, MbpoPreset::Demo);
            cfg.schedule.initial_exploration_steps = initial;
            cfg.rollout.freq_train_model = freq;
            let (mut count, mut last) = (0, None);
            for env_steps in 0..1400u64 {
                assert_eq!(trainings_before(&cfg, env_steps), (count, last), "initial {initial}, freq {freq}");
                // Step `env_steps` is taken: a learning step past the random ones retrains on schedule.
                if env_steps >= (initial as u64).max(1) && super::super::run_loop::schedule(&cfg, env_steps).1 {
                    (count, last) = (count + 1, Some(env_steps));
                }
            }
        }
    }

    /// A point's counters pass exactly when they are the schedule's: each of the batch count,
    /// the rollout length and the ring's head, fill and count is refused when off by one, all
    /// at once. Catches a check that lets an inconsistent model state through.
    #[test]
    fn a_points_model_counters_are_checked_against_the_schedule() {
        let mut cfg = MbpoConfig::preset(EnvKind::Pendulum, TaskOrigin::BuiltIn, MbpoPreset::Demo);
        (cfg.schedule.initial_exploration_steps, cfg.rollout.freq_train_model) = (200, 50);
        (cfg.rollout.epoch_length, cfg.rollout.rollout_schedule) = (200, [0, 2, 1, 3]);
        // After 500 steps: trainings at 200, 250, ..., 450; the last in epoch 1 (length 3).
        let good = PointState {
            batches: 6,
            ring: RingState { head: 100, fill: 300, written: 700 },
            model_val_mse: 0.5,
            rollout_length: 3,
        };
        good.check(&cfg, 500, 300).unwrap();
        PointState::fresh().check(&cfg, 200, 300).unwrap();
        let bad = PointState {
            batches: 7,
            ring: RingState { head: 101, fill: 300, written: 700 },
            model_val_mse: 0.5,
            rollout_length: 2,
        };
        let e = bad.check(&cfg, 500, 300).unwrap_err().to_string();
        for what in ["7 rollout batches", "rollout length 2", "at row 101"] {
            assert!(e.contains(what), "{what} missing from {e}");
        }
        let short = PointState { ring: RingState { head: 100, fill: 299, written: 700 }, ..good.clone() };
        assert!(short.check(&cfg, 500, 300).is_err());
        assert!(PointState::fresh().check(&cfg, 201, 300).is_err(), "a training at step 200 is due");
    }
}
