//! The MBPO loop: SAC's loop (`sac::SacLoop`: random steps, then every environment step the
//! updates and the next action in one submission; evaluations, the run folder) with the model's
//! part as its [`Extension`]: every real transition also goes to the ensemble's dataset, and
//! every `freq_train_model` learning steps the ensemble is retrained on all of them (the
//! trainer's validation split, elites and early stopping) and a rollout batch of
//! `rollouts_per_step × freq_train_model` branched rollouts, of the schedule's length for the
//! epoch, fills the model ring that the updates draw from.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::family::TaskWgsl;
use crate::model::Ensemble;
use crate::run::point;
use crate::sac::device::SacDevice;
use crate::sac::resume::{load_ring, save_ring};
use crate::sac::{Extension, ExtensionPoint};
use crate::train::checkpoint::Checkpoint;
use crate::train::{ReplayBuffer, Trainer};

use super::resume::{PointState, ENSEMBLE_STEM, MODEL_RING_STEM, TRANSITIONS_STEM};
use super::rollout::{RolloutDevice, RolloutShapes};
use super::MbpoConfig;

/// The model's part of an MBPO run.
pub(super) struct ModelRollouts<'c> {
    cfg: &'c MbpoConfig,
    trainer: Trainer,
    rollouts: RolloutDevice,
    data: ReplayBuffer,
    /// Rollout batches run, the last training's validation MSE and rollout length, the ring.
    counters: PointState,
    interrupt: Option<Arc<AtomicBool>>,
}

impl<'c> ModelRollouts<'c> {
    /// The trainer (a fresh ensemble from the run's seed) and the rollout device on `dev`'s
    /// actor and rings, for `task`'s reward and termination.
    pub(super) fn new(
        ctx: &GpuContext,
        cfg: &'c MbpoConfig,
        dev: &SacDevice,
        task: TaskWgsl<'_>,
        interrupt: Option<Arc<AtomicBool>>,
    ) -> Result<Self> {
        let s = dev.shapes();
        let spec = cfg.model.spec(s.obs_dim, s.act_dim);
        let trainer = Trainer::new(ctx, Ensemble::random(spec.clone(), cfg.seed)?, train_config(cfg))?;
        let trainer = checked_trainer(cfg, trainer, interrupt.clone())?;
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
            counters: PointState::fresh(),
            interrupt,
        })
    }
}

/// The trainer's settings: the run's, seeded with the run's seed.
fn train_config(cfg: &MbpoConfig) -> crate::train::TrainConfig {
    crate::train::TrainConfig { seed: cfg.seed, ..cfg.train.clone() }
}

/// `trainer`, checked to hold every transition of the run, stopped by `interrupt`.
fn checked_trainer(cfg: &MbpoConfig, mut trainer: Trainer, interrupt: Option<Arc<AtomicBool>>) -> Result<Trainer> {
    trainer.check_transitions(cfg.schedule.total_steps, "fewer loop.total_steps")?;
    trainer.set_interrupt(interrupt);
    Ok(trainer)
}

/// The epoch of environment step `env_step` (a learning step: at or after the random ones,
/// epochs counted from the first learning step) and whether the model is retrained and rolled
/// out before its updates (every `freq_train_model` learning steps, the first one included).
pub(super) fn schedule(cfg: &MbpoConfig, env_step: u64) -> (usize, bool) {
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
        let c = &mut self.counters;
        c.ring = self.rollouts.run(c.batches, length, dev.n_stored())?;
        dev.set_model_window(self.cfg.model_window(length));
        c.batches += 1;
        let elite_mse =
            report.elites.iter().map(|m| report.best_mse[*m]).sum::<f64>() / report.elites.len().max(1) as f64;
        (c.model_val_mse, c.rollout_length) = (elite_mse, length);
        Ok(Some(serde_json::json!({"event": "model", "env_step": env_step, "epochs": report.epochs,
            "val_mse": elite_mse, "elites": report.elites, "skipped_steps": report.skipped_steps,
            "rollout_length": length, "rollouts": self.rollouts.shapes().n_rollouts,
            "model_buffer": c.ring.fill, "model_transitions": c.ring.written,
            "interrupted": report.interrupted})))
    }

    fn eval_fields(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        let c = &self.counters;
        if c.batches > 0 {
            m.insert("model_val_mse".into(), c.model_val_mse.into());
            m.insert("rollout_length".into(), c.rollout_length.into());
        }
        m.insert("model_buffer".into(), c.ring.fill.into());
        m
    }

    fn save_point(&mut self, dev: &SacDevice, dir: &Path, number: usize) -> Result<ExtensionPoint> {
        let row = dev.shapes().row_len();
        let fill = self.counters.ring.fill as usize;
        let (ring, _) = dev.model_ring().expect("an MBPO device has a model ring");
        let rows = if fill == 0 { Vec::new() } else { dev.context().read_buffer::<f32>(ring, fill * row)? };
        let files = [
            (TRANSITIONS_STEM, point::write_file(dir, TRANSITIONS_STEM, number, |p| self.data.save(p))?),
            (ENSEMBLE_STEM, point::write_file(dir, ENSEMBLE_STEM, number, |p| self.trainer.checkpoint()?.save(p))?),
            (MODEL_RING_STEM, point::write_file(dir, MODEL_RING_STEM, number, |p| save_ring(p, &rows, row))?),
        ];
        let state = serde_json::to_value(&self.counters).expect("the counters serialise");
        Ok(ExtensionPoint { state, files: files.into_iter().map(|(stem, f)| ExtensionPoint::file(stem, f)).collect() })
    }

    fn restore_point(&mut self, dev: &mut SacDevice, dir: &Path, point: &ExtensionPoint) -> Result<()> {
        let state_file = dir.join(crate::sac::LAYOUT.state_file).display().to_string();
        let counters: PointState = serde_json::from_value(point.state.clone())
            .map_err(|e| Error::config(format!("{state_file}: extension.state"), e.to_string()))?;
        let s = dev.shapes().clone();
        let env_steps = dev.n_stored() as u64;
        counters.check(self.cfg, env_steps, s.model_capacity)?;
        let data = ReplayBuffer::load(&point.path(dir, TRANSITIONS_STEM)?, s.obs_dim, s.act_dim)?;
        if data.len() as u64 != env_steps {
            return Err(Error::InvalidInput(format!(
                "{state_file}: the point's transitions hold {} steps, the run took {env_steps}",
                data.len()
            )));
        }
        let ckpt = Checkpoint::load(point.path(dir, ENSEMBLE_STEM)?)?;
        ckpt.check_architecture(&self.cfg.model.spec(s.obs_dim, s.act_dim))?;
        let trainer = Trainer::from_checkpoint(dev.context(), &ckpt, Some(train_config(self.cfg)))?;
        let rows = load_ring(&point.path(dir, MODEL_RING_STEM)?, s.row_len())?;
        if rows.len() != counters.ring.fill as usize * s.row_len() {
            return Err(Error::InvalidInput(format!(
                "{state_file}: the point's model ring holds {} rows, its state says {}",
                rows.len() / s.row_len(),
                counters.ring.fill
            )));
        }
        let (ring, _) = dev.model_ring().expect("an MBPO device has a model ring");
        dev.context().queue.write_buffer(ring, 0, bytemuck::cast_slice(&rows));
        self.rollouts.set_ring_state(counters.ring);
        if counters.batches > 0 {
            dev.set_model_window(self.cfg.model_window(counters.rollout_length));
        }
        self.trainer = checked_trainer(self.cfg, trainer, self.interrupt.clone())?;
        (self.data, self.counters) = (data, counters);
        dev.context().check()
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
