//! The MBPO loop: SAC's loop (`sac::SacLoop`: random steps, then every environment step the
//! updates and the next action in one submission; evaluations, the run folder) with the model's
//! part as its [`Extension`]: every real transition also goes to the ensemble's dataset, and
//! every `freq_train_model` learning steps the ensemble is retrained on all of them (the
//! trainer's validation split, elites and early stopping) and a rollout batch of
//! `rollouts_per_step × freq_train_model` branched rollouts, of the schedule's length for the
//! epoch, fills the model ring that the updates draw from.

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::family::TaskWgsl;
use crate::model::Ensemble;
use crate::sac::device::SacDevice;
use crate::sac::Extension;
use crate::train::{ReplayBuffer, Trainer};

use super::rollout::{RingState, RolloutDevice, RolloutShapes};
use super::MbpoConfig;

/// The model's part of an MBPO run.
pub(super) struct ModelRollouts<'c> {
    cfg: &'c MbpoConfig,
    trainer: Trainer,
    rollouts: RolloutDevice,
    data: ReplayBuffer,
    /// Rollout batches run (their draws follow it).
    batches: u64,
    /// The last training's validation MSE (mean over the elites) and rollout length.
    last: Option<(f64, usize)>,
    ring: RingState,
}

impl<'c> ModelRollouts<'c> {
    /// The trainer (a fresh ensemble from the run's seed) and the rollout device on `dev`'s
    /// actor and rings, for `task`'s reward and termination.
    pub(super) fn new(
        ctx: &GpuContext,
        cfg: &'c MbpoConfig,
        dev: &SacDevice,
        task: TaskWgsl<'_>,
        interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<Self> {
        let s = dev.shapes();
        let spec = cfg.model.spec(s.obs_dim, s.act_dim);
        let train = crate::train::TrainConfig { seed: cfg.seed, ..cfg.train.clone() };
        let mut trainer = Trainer::new(ctx, Ensemble::random(spec.clone(), cfg.seed)?, train)?;
        trainer.check_transitions(cfg.schedule.total_steps, "fewer loop.total_steps")?;
        trainer.set_interrupt(interrupt);
        let n_rollouts = cfg.rollouts_per_batch();
        let max_length = cfg.rollout.rollout_schedule[3].max(cfg.rollout.rollout_schedule[2]);
        let rows = RolloutShapes::rows_that_fit(ctx, &spec, n_rollouts).min(s.model_capacity);
        let shapes = RolloutShapes { spec, n_rollouts, max_length, rows };
        let rollouts = RolloutDevice::new(ctx, dev, task, shapes, cfg.seed)?;
        Ok(Self {
            cfg,
            trainer,
            rollouts,
            data: ReplayBuffer::checked(s.obs_dim, s.act_dim)?,
            batches: 0,
            last: None,
            ring: RingState { head: 0, fill: 0, written: 0 },
        })
    }
}

/// The epoch of environment step `env_step` (a learning step: at or after the random ones,
/// epochs counted from the first learning step) and whether the model is retrained and rolled
/// out before its updates (every `freq_train_model` learning steps, the first one included).
fn schedule(cfg: &MbpoConfig, env_step: u64) -> (usize, bool) {
    let learning = env_step.saturating_sub(cfg.schedule.initial_exploration_steps as u64);
    let epoch = (learning / cfg.rollout.epoch_length as u64) as usize;
    (epoch, learning.is_multiple_of(cfg.rollout.freq_train_model as u64))
}

impl Extension for ModelRollouts<'_> {
    fn stored(&mut self, obs: &[f32], act: &[f32], reward: f32, next: &[f32], terminated: bool) -> Result<()> {
        self.data.push(obs, act, next, reward, terminated)
    }

    fn before_updates(&mut self, dev: &mut SacDevice, env_step: u64) -> Result<Option<serde_json::Value>> {
        let (epoch, retrain) = schedule(self.cfg, env_step);
        if !retrain {
            return Ok(None);
        }
        // The model on every real transition so far, then the rollouts through its elites.
        let report = self.trainer.train(&self.data)?;
        self.rollouts.set_model(&self.trainer.ensemble()?, &report.elites)?;
        let length = self.cfg.rollout_length(epoch);
        self.ring = self.rollouts.run(self.batches, length, dev.n_stored())?;
        dev.set_model_window(self.cfg.model_window(length));
        self.batches += 1;
        let elite_mse =
            report.elites.iter().map(|m| report.best_mse[*m]).sum::<f64>() / report.elites.len().max(1) as f64;
        self.last = Some((elite_mse, length));
        Ok(Some(serde_json::json!({"event": "model", "env_step": env_step, "epochs": report.epochs,
            "val_mse": elite_mse, "elites": report.elites, "skipped_steps": report.skipped_steps,
            "rollout_length": length, "rollouts": self.rollouts.shapes().n_rollouts,
            "model_buffer": self.ring.fill, "model_transitions": self.ring.written,
            "interrupted": report.interrupted})))
    }

    fn eval_fields(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some((mse, length)) = self.last {
            m.insert("model_val_mse".into(), mse.into());
            m.insert("rollout_length".into(), length.into());
        }
        m.insert("model_buffer".into(), self.ring.fill.into());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvKind;
    use crate::mbpo::MbpoPreset;
    use crate::sac::TaskOrigin;

    /// The model is retrained at the first learning step and every `freq_train_model` after it,
    /// and the epoch turns every `epoch_length` learning steps. Catches a schedule counted from
    /// step 0 instead of the first learning step (a model trained during the random steps, or
    /// never at the first learning step) and an epoch off by one.
    #[test]
    fn retraining_and_epochs_follow_the_learning_steps() {
        let mut cfg = MbpoConfig::preset(EnvKind::Cartpole, TaskOrigin::BuiltIn, MbpoPreset::Demo);
        cfg.schedule.initial_exploration_steps = 500;
        cfg.rollout.freq_train_model = 250;
        cfg.rollout.epoch_length = 1000;
        let at = |s: u64| schedule(&cfg, s);
        assert_eq!(at(500), (0, true));
        assert_eq!(at(501), (0, false));
        assert_eq!(at(749), (0, false));
        assert_eq!(at(750), (0, true));
        assert_eq!(at(1499), (0, false));
        assert_eq!(at(1500), (1, true));
        assert_eq!(at(2750), (2, true));
    }
}
