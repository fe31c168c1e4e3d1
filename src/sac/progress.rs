//! The terminal's progress bar of a SAC run, shared by `lookahead sac` and the Python package.

use super::{Progress, SacConfig};
use crate::run::progress::ProgressBar;

/// The terminal's progress bar for a SAC run: environment steps, the last training episode's
/// return, the last evaluation and the steps per second.
pub struct ProgressDisplay {
    bar: ProgressBar,
}

impl ProgressDisplay {
    /// A bar of `cfg`'s environment steps.
    pub fn new(cfg: &SacConfig) -> Self {
        Self { bar: ProgressBar::new(cfg.schedule.total_steps as u64) }
    }

    /// Shows `p`.
    pub fn update(&mut self, p: &Progress) {
        self.bar.set(p.env_step, message(p));
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish();
    }
}

/// The bar's text for `p`.
fn message(p: &Progress) -> String {
    let eval = p.last_eval.map_or("—".to_string(), |e| format!("{e:.1}"));
    let ret = p.last_return.map_or("—".to_string(), |e| format!("{e:.1}"));
    format!(
        "step {}/{} · last episode {ret} · last evaluation {eval} · {:.0} steps/s",
        p.env_step, p.total_steps, p.steps_per_s
    )
}
