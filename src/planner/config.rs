//! CEM planner configuration (TOML/JSON via serde; unknown keys are errors).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use crate::kernels::cem::Sampling;
pub use crate::kernels::rollout::Propagation;

/// Which kernel runs the ensemble's layers while planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MlpKernel {
    /// `rows` on CPU rasterisers (lavapipe) when the layers fit its windows, else `tiled` (default).
    #[default]
    Auto,
    /// Register-tiled matmul in workgroup memory (`mlp.wgsl`): for GPUs.
    Tiled,
    /// One invocation per row with uniform-buffer weights (`mlp_rows.wgsl`): for CPU rasterisers.
    Rows,
}

/// Cross-entropy-method settings. Defaults are the PETS cartpole reference (docs/DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CemConfig {
    /// Steps per candidate action sequence (default: 15).
    pub horizon: usize,
    /// CEM iterations per plan (default: 5). 1 with `alpha = 0` is random shooting.
    pub iterations: usize,
    /// Candidate sequences per iteration (default: 350).
    pub population: usize,
    /// Fraction of candidates kept as elites, rounded up (default: 0.1).
    pub elite_ratio: f64,
    /// Smoothing: `new = alpha·old + (1 − alpha)·elite` (default: 0.1).
    pub alpha: f64,
    /// Particles per candidate for a learned model (default: 20). Analytic dynamics are
    /// deterministic, so their particles would be identical and one is evaluated.
    pub particles: usize,
    /// Trajectory sampling (default: ts1).
    pub propagation: Propagation,
    /// Candidate distribution (default: truncated_normal).
    pub sampling: Sampling,
    /// Lower action bounds; default: the task's.
    pub action_lower: Option<Vec<f64>>,
    /// Upper action bounds; default: the task's.
    pub action_upper: Option<Vec<f64>>,
    /// Seed of the planner's random stream (default: 0).
    pub seed: u64,
    /// Warm start: begin each plan from the previous mean shifted by one step (default: true).
    pub keep_last_solution: bool,
    /// Longest wait for the GPU per plan, in seconds (default: 60).
    pub gpu_timeout_s: f64,
    /// Layer kernel of a learned model (default: auto).
    pub mlp_kernel: MlpKernel,
    /// Return the mean after the iteration whose elites scored best instead of the mean after
    /// the last iteration (default: false, mbrl-lib's `return_mean_elites`). Applies to `plan`,
    /// `plan_batch` and `plan_with` alike; with it, `plan` reads back every iteration.
    pub return_best_iteration: bool,
}

impl Default for CemConfig {
    fn default() -> Self {
        Self {
            horizon: 15,
            iterations: 5,
            population: 350,
            elite_ratio: 0.1,
            alpha: 0.1,
            particles: 20,
            propagation: Propagation::Ts1,
            sampling: Sampling::TruncatedNormal,
            action_lower: None,
            action_upper: None,
            seed: 0,
            keep_last_solution: true,
            gpu_timeout_s: 60.0,
            mlp_kernel: MlpKernel::Auto,
            return_best_iteration: false,
        }
    }
}

/// The config section that holds these keys (`[planner]`), used in error messages.
const SECTION: &str = "planner";
/// Keys of `Option` fields, which a serialised default leaves out.
const OPTIONAL_KEYS: &[&str] = &["planner.action_lower", "planner.action_upper"];

/// Largest horizon (the random-stream tag holds the step in 16 bits).
pub const MAX_HORIZON: usize = 0xffff;
/// Largest iteration count (the random-stream tag holds the iteration in 12 bits).
pub const MAX_ITERATIONS: usize = 0xfff;

impl CemConfig {
    /// The PETS cartpole reference planner (docs/DESIGN.md).
    pub fn pets_reference() -> Self {
        Self::default()
    }

    /// Settings for pendulum swing-up with the true dynamics: horizon 30 (1.5 s), population
    /// 500, 5 iterations.
    pub fn pendulum_mpc() -> Self {
        Self { horizon: 30, population: 500, particles: 1, ..Self::default() }
    }

    /// Number of elites: `ceil(elite_ratio · population)`.
    pub fn n_elites(&self) -> usize {
        ((self.elite_ratio * self.population as f64) - 1e-9).ceil().max(0.0) as usize
    }

    /// Parses TOML (the keys of the `[planner]` section); unknown keys and bad values are
    /// errors naming the key.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| Error::config(SECTION, e.message().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies `key=value` (value in TOML syntax, e.g. `population=500`, `propagation="tsinf"`);
    /// the key may carry the section, as in a PETS config (`planner.population=500`). The same
    /// parser serves `lookahead pets --set` ([`crate::util::apply_assignments`]).
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let assignment = assignment.trim();
        let bare = assignment.strip_prefix("planner.").unwrap_or(assignment);
        let (key, _) = crate::util::parse_assignment(bare)?;
        let mut table = toml::Table::try_from(&*self).map_err(|e| Error::config(SECTION, e.to_string()))?;
        let schema = table.clone();
        crate::util::apply_assignments(&mut table, &schema, &[bare.to_string()], SECTION, OPTIONAL_KEYS)?;
        let cfg: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| Error::config(format!("{SECTION}.{key}"), e.message().to_string()))?;
        *self = cfg;
        Ok(())
    }

    /// Checks every value and reports all problems at once.
    pub fn validate(&self) -> Result<()> {
        let mut errs = Vec::new();
        let mut bad = |field: &str, reason: String| errs.push(Error::config(format!("{SECTION}.{field}"), reason));
        if self.horizon == 0 || self.horizon > MAX_HORIZON {
            bad("horizon", format!("{} is outside 1..={MAX_HORIZON}", self.horizon));
        }
        if self.iterations == 0 || self.iterations > MAX_ITERATIONS {
            bad("iterations", format!("{} is outside 1..={MAX_ITERATIONS}", self.iterations));
        }
        if self.population == 0 {
            bad("population", "must be at least 1".into());
        }
        if self.particles == 0 {
            bad("particles", "must be at least 1".into());
        }
        if !(self.elite_ratio.is_finite() && self.elite_ratio > 0.0) {
            bad("elite_ratio", format!("{} must be a positive number", self.elite_ratio));
        } else if self.n_elites() > self.population {
            bad(
                "elite_ratio",
                format!(
                    "{} × population {} = {} elites > population {}; use a ratio in (0, 1]",
                    self.elite_ratio,
                    self.population,
                    self.n_elites(),
                    self.population
                ),
            );
        }
        if !(self.alpha.is_finite() && (0.0..1.0).contains(&self.alpha)) {
            bad("alpha", format!("{} is outside [0, 1)", self.alpha));
        }
        if !(self.gpu_timeout_s.is_finite() && self.gpu_timeout_s > 0.0) {
            bad("gpu_timeout_s", format!("{} must be a positive number of seconds", self.gpu_timeout_s));
        }
        Error::collect(errs)
    }
}
