//! The progress bar of a PETS run (trials × steps, the trial's return, the last trial's return,
//! steps per second), on stderr.

use super::{PetsConfig, Progress};
use crate::run::progress::ProgressBar;

/// The terminal's progress bar for a PETS run.
pub struct ProgressDisplay {
    bar: ProgressBar,
    done_before: u64,
    last_trial: usize,
    trial_length: u64,
}

impl ProgressDisplay {
    /// A bar sized for `cfg`'s trials.
    pub fn new(cfg: &PetsConfig) -> Self {
        let total = (cfg.schedule.trials * cfg.schedule.trial_length) as u64;
        Self {
            bar: ProgressBar::new(total),
            done_before: 0,
            last_trial: 0,
            trial_length: cfg.schedule.trial_length as u64,
        }
    }

    /// Shows `p`.
    pub fn update(&mut self, p: &Progress) {
        if p.trial != self.last_trial {
            self.done_before = p.trial as u64 * self.trial_length;
            self.last_trial = p.trial;
        }
        let last = p.last_return.map(|r| format!(", last trial {r:.1}")).unwrap_or_default();
        let message = format!(
            "trial {}/{} return {:.1}{last} ({:.1} steps/s)",
            p.trial + 1,
            p.trials,
            p.trial_return,
            p.steps_per_s
        );
        self.bar.set(self.done_before + p.step as u64, message);
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish();
    }
}
