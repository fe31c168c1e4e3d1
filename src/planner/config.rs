//! Planner configuration (TOML/JSON via serde; unknown keys are errors): the optimiser kind
//! (CEM, random shooting, MPPI, iCEM), the settings they share, and each kind's own keys.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use crate::kernels::cem::Sampling;
pub use crate::kernels::rollout::Propagation;

/// The optimiser that proposes and refines candidate action sequences. Every kind shares the
/// rollout (ensemble or known model, every propagation), the task's reward and termination,
/// batches, warm starts and budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlannerKind {
    /// The cross-entropy method (PETS; default): truncated-normal candidates, elites, smoothing.
    #[default]
    Cem,
    /// Random shooting (Nagabandi et al. 2018): `population` uniform candidates within the
    /// bounds, one iteration, the best sequence returned.
    RandomShooting,
    /// Model predictive path integral control (Williams et al. 2017; mbrl-lib's
    /// `MPPIOptimizer`): noise smoothed across time by `beta`, softmax weights with `gamma`.
    Mppi,
    /// The improved CEM (Pinneri et al. 2020; mbrl-lib's `ICEMOptimizer`): coloured noise,
    /// decaying population, elites kept within and across plans, the mean tried last.
    Icem,
}

impl PlannerKind {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            PlannerKind::Cem => "cem",
            PlannerKind::RandomShooting => "random_shooting",
            PlannerKind::Mppi => "mppi",
            PlannerKind::Icem => "icem",
        }
    }

    /// Every kind.
    pub const ALL: [PlannerKind; 4] =
        [PlannerKind::Cem, PlannerKind::RandomShooting, PlannerKind::Mppi, PlannerKind::Icem];
}

/// Which kernel runs the ensemble's layers while planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MlpKernel {
    /// `rows` on CPU rasterisers (lavapipe) when the layers fit its windows; on GPUs `fused`
    /// when the network fits it; else `tiled` (default).
    #[default]
    Auto,
    /// One register-tiled matmul dispatch per layer (`mlp.wgsl`), activations in global memory.
    Tiled,
    /// One invocation per row with uniform-buffer weights (`mlp_rows.wgsl`): for CPU rasterisers.
    Rows,
    /// The whole network in one dispatch per step, activations in workgroup memory
    /// (`mlp_fused.wgsl`): for GPUs; needs at most 8 layers and 4 rows of the widest input or output
    /// in the device's workgroup memory.
    Fused,
    /// As `fused`, with every layer's product on 16×16×16 cooperative matrices (tensor cores):
    /// f16 operands (each layer's inputs and weights rounded to f16), f32 accumulation
    /// (`mlp_coop.wgsl`). Only where the adapter offers them (wgpu's experimental cooperative
    /// matrices with SHADER_F16); never chosen by `auto`, because its plans differ from the f32
    /// kernels' by that rounding.
    Coop16,
}

impl MlpKernel {
    /// Every kernel, as named in configs.
    pub const ALL: [MlpKernel; 5] =
        [MlpKernel::Auto, MlpKernel::Tiled, MlpKernel::Rows, MlpKernel::Fused, MlpKernel::Coop16];

    /// The kernel named `name` as in configs (`auto`, `tiled`, `rows`, `fused`, `coop16`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            MlpKernel::Auto => "auto",
            MlpKernel::Tiled => "tiled",
            MlpKernel::Rows => "rows",
            MlpKernel::Fused => "fused",
            MlpKernel::Coop16 => "coop16",
        }
    }
}

/// How a model step of a learned ensemble is dispatched while planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelStep {
    /// `fused` where it can run (the network on the `fused` or `coop16` kernel, TS1 or TS∞, a
    /// built-in task's WGSL), else `split` (default).
    #[default]
    Auto,
    /// One dispatch per step (`model_step.wgsl`): the network, the sampled prediction and the
    /// particles' next states, rewards and inputs, the outputs never leaving workgroup memory;
    /// under TS∞ one dispatch per iteration runs every step. Needs the `fused` or `coop16`
    /// network kernel and TS1 or TS∞.
    Fused,
    /// The network's dispatch, then `propagate` (`rollout.wgsl`).
    Split,
}

impl ModelStep {
    /// Every choice, as named in configs.
    pub const ALL: [ModelStep; 3] = [ModelStep::Auto, ModelStep::Fused, ModelStep::Split];

    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            ModelStep::Auto => "auto",
            ModelStep::Fused => "fused",
            ModelStep::Split => "split",
        }
    }

    /// The choice named `name` as in configs (`auto`, `fused`, `split`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Planner settings (the `[planner]` section). Defaults are the PETS cartpole reference
/// (docs/DESIGN.md): CEM, population 350, 5 iterations, horizon 15, 20 particles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerConfig {
    /// The optimiser (default: cem).
    pub kind: PlannerKind,
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
    /// How a learned model's step is dispatched: the network and the particles' step in one
    /// dispatch or two (default: auto).
    pub model_step: ModelStep,
    /// Return the mean after the iteration whose elites scored best instead of the mean after
    /// the last iteration (default: false, mbrl-lib's `return_mean_elites`). Applies to `plan`,
    /// `plan_batch` and `plan_with` alike; with it, `plan` reads back every iteration.
    pub return_best_iteration: bool,
    /// MPPI: noise scale σ in action units, capped per step so that ±2σ stays in the bounds
    /// (default: 1.0).
    pub sigma: f64,
    /// MPPI: reward scaling γ of the weights `exp(γ·(R − max R))` (default: 0.9).
    pub gamma: f64,
    /// MPPI: smoothing across time, `x_t = β·(mean_t + noise_t) + (1 − β)·x_(t−1)` (default: 0.9).
    pub beta: f64,
    /// iCEM: the population of iteration i is `ceil(max(population · decay^(−i), 2·n_elites))`
    /// (default: 1.25).
    pub population_decay: f64,
    /// iCEM: exponent of the noise's power spectrum over the horizon, 0 white, 2 as the paper
    /// (default: 2.0).
    pub noise_beta: f64,
    /// iCEM: fraction of the elites (rounded up) carried into the next iteration and, shifted, into
    /// the next plan (default: 0.3).
    pub keep_elite_fraction: f64,
    /// The fused kernel's layout instead of the one `FusedShape::for_network` picks, where the
    /// fused kernel runs (`auto` on GPUs, `fused`); not a config key: for benchmarks that compare
    /// layouts (`lookahead bench plan --fused-layouts`). Every layout gives the same plans.
    #[serde(skip)]
    pub fused_layout: Option<crate::kernels::mlp_fused::FusedShape>,
}

impl Default for PlannerConfig {
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
            model_step: ModelStep::Auto,
            return_best_iteration: false,
            kind: PlannerKind::Cem,
            sigma: 1.0,
            gamma: 0.9,
            beta: 0.9,
            population_decay: 1.25,
            noise_beta: 2.0,
            keep_elite_fraction: 0.3,
            fused_layout: None,
        }
    }
}

/// The config section that holds these keys (`[planner]`), used in error messages.
const SECTION: &str = "planner";
/// Keys of `Option` fields, which a serialised default leaves out.
/// Shortest wait for a submission (`gpu_timeout_s`), seconds.
pub const MIN_GPU_TIMEOUT_S: f64 = 0.001;
/// Longest wait for a submission (`gpu_timeout_s`): one day.
pub const MAX_GPU_TIMEOUT_S: f64 = 86_400.0;

const OPTIONAL_KEYS: &[&str] = &["planner.action_lower", "planner.action_upper"];

/// Largest horizon (the random-stream tag holds the step in 16 bits).
pub const MAX_HORIZON: usize = 0xffff;
/// Largest iteration count (the random-stream tag holds the iteration in 12 bits).
pub const MAX_ITERATIONS: usize = 0xfff;

impl PlannerConfig {
    /// The keys random shooting ignores (one iteration, the best candidate kept): an error when
    /// set away from their defaults with `kind = "random_shooting"`.
    pub const RANDOM_SHOOTING_IGNORES: [&'static str; 3] = ["iterations", "alpha", "elite_ratio"];

    /// The keys set away from their defaults that the kind ignores, each with why: a key of
    /// another kind is a mistake, not a no-op.
    fn keys_of_other_kinds(&self) -> Vec<(&'static str, String)> {
        let d = Self::default();
        let foreign: [(&'static str, bool, PlannerKind); 6] = [
            ("sigma", self.sigma != d.sigma, PlannerKind::Mppi),
            ("gamma", self.gamma != d.gamma, PlannerKind::Mppi),
            ("beta", self.beta != d.beta, PlannerKind::Mppi),
            ("population_decay", self.population_decay != d.population_decay, PlannerKind::Icem),
            ("noise_beta", self.noise_beta != d.noise_beta, PlannerKind::Icem),
            ("keep_elite_fraction", self.keep_elite_fraction != d.keep_elite_fraction, PlannerKind::Icem),
        ];
        let mut out: Vec<(&'static str, String)> = foreign
            .into_iter()
            .filter(|(_, set, owner)| *set && self.kind != *owner)
            .map(|(key, _, owner)| {
                (key, format!("applies to kind = \"{}\" only (kind is \"{}\")", owner.name(), self.kind.name()))
            })
            .collect();
        // Random shooting draws one population of uniform candidates and keeps the best.
        let ignored = [self.iterations != d.iterations, self.alpha != d.alpha, self.elite_ratio != d.elite_ratio];
        if self.kind == PlannerKind::RandomShooting {
            let why =
                "does not apply to kind = \"random_shooting\" (one iteration of uniform candidates, the best kept)";
            let keys = Self::RANDOM_SHOOTING_IGNORES.into_iter().zip(ignored).filter(|(_, set)| *set);
            out.extend(keys.map(|(key, _)| (key, why.to_string())));
        }
        out
    }

    /// This config with `kind`, every key that kind ignores back at its default (`validate`
    /// refuses one set away from it): another kind at the same shared settings.
    pub fn with_kind(&self, kind: PlannerKind) -> Self {
        let d = Self::default();
        let mut c = Self { kind, ..self.clone() };
        if kind == PlannerKind::RandomShooting {
            (c.iterations, c.alpha, c.elite_ratio) = (d.iterations, d.alpha, d.elite_ratio);
        }
        if kind != PlannerKind::Mppi {
            (c.sigma, c.gamma, c.beta) = (d.sigma, d.gamma, d.beta);
        }
        if kind != PlannerKind::Icem {
            (c.population_decay, c.noise_beta, c.keep_elite_fraction) =
                (d.population_decay, d.noise_beta, d.keep_elite_fraction);
        }
        c
    }

    /// The PETS cartpole reference planner (docs/DESIGN.md).
    pub fn pets_reference() -> Self {
        Self::default()
    }

    /// Settings for pendulum swing-up with the true dynamics: horizon 30 (1.5 s), population
    /// 500, 5 iterations.
    pub fn pendulum_mpc() -> Self {
        Self { horizon: 30, population: 500, particles: 1, ..Self::default() }
    }

    /// Number of elites: `ceil(elite_ratio · population)`; random shooting keeps the best one,
    /// MPPI weighs every candidate (and ranks none).
    pub fn n_elites(&self) -> usize {
        match self.kind {
            PlannerKind::RandomShooting | PlannerKind::Mppi => 1,
            _ => ((self.elite_ratio * self.population as f64) - 1e-9).ceil().max(0.0) as usize,
        }
    }

    /// Iterations a plan runs: `iterations`, or 1 for random shooting.
    pub fn effective_iterations(&self) -> usize {
        match self.kind {
            PlannerKind::RandomShooting => 1,
            _ => self.iterations,
        }
    }

    /// iCEM: archived elites appended to an iteration (`ceil(keep_elite_fraction · n_elites)`).
    pub fn keep_elites(&self) -> usize {
        ((self.keep_elite_fraction * self.n_elites() as f64) - 1e-9).ceil().max(0.0) as usize
    }

    /// The candidates of iteration `i`: `(sampled, extras, flags)`, where the extras follow the
    /// sampled ones and `flags` says what they are (`kernels::FLAG_EXTRAS_*`). `have_archive`:
    /// the previous plan left elites (iCEM only; every other kind samples `population`).
    pub fn iteration_shape(&self, i: usize, have_archive: bool) -> (usize, usize, u32) {
        if self.kind != PlannerKind::Icem {
            return (self.population, 0, 0);
        }
        let ne = self.n_elites();
        let decayed = self.population as f64 * self.population_decay.powi(-(i as i32));
        let sampled = (decayed - 1e-9).ceil().max((2 * ne) as f64) as usize;
        let keep = self.keep_elites();
        let (extras, flags) = if i == 0 {
            if have_archive && keep > 0 {
                (keep, crate::kernels::FLAG_EXTRAS_SHIFTED)
            } else {
                (0, 0)
            }
        } else if i + 1 == self.effective_iterations() {
            (1, crate::kernels::FLAG_EXTRAS_MEAN)
        } else if keep > 0 {
            (keep, crate::kernels::FLAG_EXTRAS_KEPT)
        } else {
            (0, 0)
        };
        (sampled, extras, flags)
    }

    /// The most candidates any iteration holds (buffers are sized for it).
    pub fn max_population(&self) -> usize {
        (0..self.effective_iterations())
            .flat_map(|i| [true, false].map(|h| self.iteration_shape(i, h)))
            .map(|(s, e, _)| s + e)
            .max()
            .unwrap_or(self.population)
    }

    /// Candidates evaluated per plan, summed over iterations (with an archive from a previous
    /// plan): model steps per plan are this × particles × horizon.
    pub fn candidates_per_plan(&self) -> usize {
        (0..self.effective_iterations()).map(|i| self.iteration_shape(i, true)).map(|(s, e, _)| s + e).sum()
    }

    /// Parses TOML (the keys of the `[planner]` section); unknown keys and bad values are
    /// errors naming the key.
    pub fn from_toml(text: &str) -> Result<Self> {
        crate::util::check_config_size(SECTION, text.len())?;
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

    /// This config with every `key=value` of `assignments` applied ([`PlannerConfig::set`]'s
    /// syntax); all unknown keys and wrong values are reported at once.
    pub fn with_set(&self, assignments: &[String]) -> Result<Self> {
        crate::util::with_assignments(self, SECTION, OPTIONAL_KEYS, assignments)
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
        // A duration the clock can hold and a wait a submission can meet: 1 ms to one day.
        if !(MIN_GPU_TIMEOUT_S..=MAX_GPU_TIMEOUT_S).contains(&self.gpu_timeout_s) {
            bad(
                "gpu_timeout_s",
                format!(
                    "{} is outside {MIN_GPU_TIMEOUT_S}..={MAX_GPU_TIMEOUT_S} seconds",
                    crate::util::short_float(self.gpu_timeout_s)
                ),
            );
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            bad("sigma", format!("{} must be a positive number", self.sigma));
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            bad("gamma", format!("{} must be a positive number", self.gamma));
        }
        if !(self.beta.is_finite() && self.beta > 0.0 && self.beta <= 1.0) {
            bad("beta", format!("{} is outside (0, 1]", self.beta));
        }
        if !(self.population_decay.is_finite() && self.population_decay >= 1.0) {
            bad("population_decay", format!("{} must be at least 1", self.population_decay));
        }
        if !(self.noise_beta.is_finite() && (0.0..=8.0).contains(&self.noise_beta)) {
            bad("noise_beta", format!("{} is outside [0, 8]", self.noise_beta));
        }
        if !(self.keep_elite_fraction.is_finite() && (0.0..=1.0).contains(&self.keep_elite_fraction)) {
            bad("keep_elite_fraction", format!("{} is outside [0, 1]", self.keep_elite_fraction));
        }
        for (key, why) in self.keys_of_other_kinds() {
            bad(key, why);
        }
        Error::collect(errs)
    }
}
