//! The command line's arguments: the clap types of every command and their value parsers.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use lookahead::gpu::{AdapterOptions, Backend, GpuContext};
use lookahead::planner::{MlpKernel, ModelStep};

#[derive(Parser)]
#[command(name = "lookahead", version, about = "PETS / CEM model-predictive control in WGSL compute shaders")]
pub struct Cli {
    #[command(flatten)]
    pub gpu: GpuArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct GpuArgs {
    /// Use the adapter whose name contains this (case-insensitive); also LOOKAHEAD_ADAPTER.
    #[arg(long, global = true, env = "LOOKAHEAD_ADAPTER")]
    pub adapter: Option<String>,
    /// Restrict to one backend: vulkan, metal, dx12 or gl.
    #[arg(long, global = true, value_parser = ["vulkan", "metal", "dx12", "gl"])]
    pub backend: Option<String>,
    /// Runtime checks in the shaders: policy (the crate's own kernels without bounds checks and
    /// loop bounding; see docs/DESIGN.md) or full; also LOOKAHEAD_SHADER_CHECKS.
    #[arg(long, global = true, env = "LOOKAHEAD_SHADER_CHECKS", default_value = "policy", value_parser = ["policy", "full"])]
    pub shader_checks: String,
}

impl GpuArgs {
    /// The backend of `--backend`, if given.
    pub fn backend(&self) -> anyhow::Result<Option<Backend>> {
        Ok(self.backend.as_deref().map(str::parse::<Backend>).transpose()?)
    }

    /// The adapter of `--adapter` / `--backend`, with `--shader-checks`, named on stderr.
    pub fn open(&self) -> anyhow::Result<GpuContext> {
        let backend = self.backend()?;
        let shader_checks = self.shader_checks.parse()?;
        let ctx = GpuContext::new(&AdapterOptions { name: self.adapter.clone(), backend, shader_checks })?;
        eprintln!("adapter: {}", ctx.adapter());
        Ok(ctx)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run PETS: explore, then plan with CEM over a learned ensemble, act, retrain.
    Pets(PetsArgs),
    /// Run Soft Actor-Critic: random steps, then SAC updates on the GPU and the policy's actions.
    Sac(PolicyArgs),
    /// Run MBPO: the ensemble trained on real steps, SAC on branched rollouts through it.
    Mbpo(PolicyArgs),
    /// Distil a PETS run's planner into a policy network with DAgger.
    Distill(crate::distill::DistillArgs),
    /// Check every kernel family against its f64 CPU reference on this adapter (or all).
    Verify(VerifyArgs),
    /// Replay a run's checkpoint (PETS: planned with its elites; SAC: its deterministic policy).
    Eval(EvalArgs),
    /// Print or check a PETS config.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Run one episode of MPC with the environment's true dynamics.
    Mpc(MpcArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// List the GPU adapters wgpu can see.
    Adapters,
    /// List the built-in environments.
    Envs,
}

// The arguments of `pets`.
#[derive(Args)]
pub struct PetsArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

// Where a learning run writes and whether it replaces or continues a run (`pets`, `sac`).
#[derive(Args)]
pub struct RunArgs {
    /// Seed of the whole run (overrides the config's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run directory (default: runs/<command>-<env>-<preset>-seed<seed>); a folder holding an
    /// earlier run is refused unless --overwrite.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the run already in the run directory.
    #[arg(long)]
    pub overwrite: bool,
    /// Continue the run in the run directory (the same command plus --resume) from its last
    /// consistent point, exactly as if it had not stopped.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
}

// The arguments of `sac` and `mbpo`.
#[derive(Args)]
pub struct PolicyArgs {
    /// cartpole or pendulum (default: the config file's `env`, else pendulum for sac, cartpole
    /// for mbpo).
    #[arg(long)]
    pub env: Option<String>,
    /// reference or demo.
    #[arg(long, default_value = "reference")]
    pub preset: String,
    /// A TOML file applied over the preset (sac: [sac], [loop], seed; mbpo: also [model],
    /// [train], [rollout]).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. --set sac.gamma=0.98 (repeatable).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Start the actor from this SAC checkpoint (a distillation's policy.safetensors, a run's
    /// model.safetensors): sac.init_policy.
    #[arg(long)]
    pub init_policy: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

impl PolicyArgs {
    /// `--set` with `--init-policy`'s assignment after them.
    pub fn sets(&self) -> Vec<String> {
        let mut sets = self.set.clone();
        if let Some(p) = &self.init_policy {
            let text = serde_json::to_string(&p.display().to_string()).expect("a string serialises");
            sets.push(format!("sac.init_policy={text}"));
        }
        sets
    }
}

// The arguments of `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// Smaller sizes of the same cases (well under 2 minutes on lavapipe).
    #[arg(long)]
    pub quick: bool,
    /// Every adapter wgpu sees (of --backend, if given), one report each.
    #[arg(long)]
    pub all_adapters: bool,
    /// Write the report(s) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

// The arguments of `eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The run directory (config.toml and model.safetensors).
    #[arg(long)]
    pub run: PathBuf,
    /// Episodes to play.
    #[arg(long, default_value_t = 5)]
    pub episodes: usize,
    /// Seed of the episodes and the planner.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

// The arguments of `mpc`.
#[derive(Args)]
pub struct MpcArgs {
    /// cartpole or pendulum.
    #[arg(long, default_value = "cartpole")]
    pub env: String,
    /// Episode and planner seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the trajectory as CSV.
    #[arg(long)]
    pub trajectory: Option<PathBuf>,
    /// Planner settings (TOML, keys of PlannerConfig).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one planner setting, e.g. --set population=500 (repeatable).
    #[arg(long = "set")]
    pub set: Vec<String>,
}

// The PETS config of `pets` and `config print`: a preset, a file over it, keys over both.
#[derive(Args)]
pub struct ConfigArgs {
    /// cartpole or pendulum (default: the config file's `env`, else cartpole).
    #[arg(long)]
    pub env: Option<String>,
    /// reference or demo.
    #[arg(long, default_value = "reference")]
    pub preset: String,
    /// A TOML file applied over the preset ([model], [train], [planner], [loop], env, seed).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. --set planner.population=500 (repeatable).
    #[arg(long = "set")]
    pub set: Vec<String>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved config as TOML.
    Print {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Check a config file (over the preset) and report every problem.
    Validate {
        /// The TOML file.
        file: PathBuf,
        /// cartpole or pendulum.
        #[arg(long, default_value = "cartpole")]
        env: String,
        /// reference or demo.
        #[arg(long, default_value = "reference")]
        preset: String,
    },
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time training epochs of the PETS reference ensemble.
    Train(BenchTrainArgs),
    /// Time full CEM plans through the PETS reference ensemble.
    Plan(BenchPlanArgs),
    /// Time SAC updates (batch 256, 2×256 networks) and the next action, per submission.
    Sac(BenchSacArgs),
    /// Time an MBPO environment step in parts: acting and SAC updates, model rollouts and model
    /// training (amortised over freq_train_model steps), on synthetic data.
    #[command(long_about = BENCH_MBPO_ABOUT)]
    Mbpo(BenchMbpoArgs),
    /// Time a policy's action for one observation on one CPU core (the real-time path of a
    /// distilled policy), against a plan's milliseconds.
    Policy,
}

const BENCH_MBPO_ABOUT: &str =
    "Time an MBPO environment step in parts, on synthetic data (seeded transitions, a random \
ensemble, no environment): the SAC updates and the next action (one submission, every step), a batch of model \
rollouts and a model training (each every --freq steps, amortised over them). The total per environment step \
is acting/updates + (rollouts + training) / freq. Each part: warm-up calls, then --repeats timed calls, the \
median reported.

The defaults are HalfCheetah's sizes at mbrl-lib's MBPO reference (obs 17, act 6; 400 rollouts per step × \
freq 250 = 100 000 rollouts of length 1; a 7 × 4×200 ensemble, 5 elites, trained 5 epochs on 10 000 \
transitions) with 40 SAC updates per step of batch 256 through 2×256 networks. They are sized for a GPU: on a \
CPU rasteriser (lavapipe, two cores) one model training of the default ensemble and dataset alone takes \
minutes; small sizes run in seconds, e.g. --rollouts 2000 --updates 2 --hidden 64 --model-hidden 64 --dataset \
1000 --train-epochs 2 --repeats 3 (about 15 s there).";

// The arguments of `bench mbpo`.
#[derive(Args)]
pub struct BenchMbpoArgs {
    /// Rollouts per batch (rollouts per step × --freq; a multiple of --freq).
    #[arg(long, default_value_t = 100_000)]
    pub rollouts: usize,
    /// Steps per rollout.
    #[arg(long, default_value_t = 1)]
    pub length: usize,
    /// SAC updates per environment step (one submission with the next action).
    #[arg(long, default_value_t = 40)]
    pub updates: usize,
    /// SAC minibatch rows.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Width of the SAC actor's and critics' two hidden layers.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Ensemble members.
    #[arg(long, default_value_t = 7)]
    pub members: usize,
    /// Elites the rollouts draw from.
    #[arg(long, default_value_t = 5)]
    pub elites: usize,
    /// Width of the ensemble's hidden layers.
    #[arg(long, default_value_t = 200)]
    pub model_hidden: usize,
    /// The ensemble's hidden layers.
    #[arg(long, default_value_t = 4)]
    pub model_layers: usize,
    /// Environment steps per model training and rollout batch (freq_train_model).
    #[arg(long, default_value_t = 250)]
    pub freq: usize,
    /// Real transitions the ensemble trains on and the rollouts start from.
    #[arg(long, default_value_t = 10_000)]
    pub dataset: usize,
    /// Epochs per model training (no early stopping).
    #[arg(long, default_value_t = 5)]
    pub train_epochs: usize,
    /// Untimed calls of each part before its timing.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed calls of each part (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Time the kernels even when they fail verification on this adapter.
    #[arg(long)]
    pub force: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also time every kernel of a rollout batch and of a SAC submission on the GPU
    /// (timestamp queries).
    #[arg(long)]
    pub profile: bool,
}

impl BenchMbpoArgs {
    /// The benchmark case of these sizes.
    pub fn case(&self) -> lookahead::bench::MbpoCase {
        lookahead::bench::MbpoCase {
            rollouts: self.rollouts,
            length: self.length,
            updates: self.updates,
            batch: self.batch,
            hidden: self.hidden,
            members: self.members,
            elites: self.elites,
            model_hidden: self.model_hidden,
            model_layers: self.model_layers,
            freq: self.freq,
            dataset: self.dataset,
            train_epochs: self.train_epochs,
            warmup: self.warmup,
            repeats: self.repeats,
            ..Default::default()
        }
    }
}

// The arguments of `bench sac`.
#[derive(Args)]
pub struct BenchSacArgs {
    /// Time the SAC kernels even when they fail verification on this adapter.
    #[arg(long)]
    pub force: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Only the cases whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// The reduced set (1 and 20 updates per submission, a few submissions each).
    #[arg(long)]
    pub quick: bool,
    /// Also time every kernel on the GPU (timestamp queries): GPU ms per update and per kernel.
    #[arg(long)]
    pub profile: bool,
}

// The arguments of `bench train`.
#[derive(Args)]
pub struct BenchTrainArgs {
    /// Time the training kernels even when they fail verification on this adapter.
    #[arg(long)]
    pub force: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The reduced set (minutes on lavapipe).
    #[arg(long)]
    pub quick: bool,
    /// Also time every kernel on the GPU (timestamp queries) and report ms per kernel.
    #[arg(long)]
    pub profile: bool,
    /// Also train every case through each row-block layout of the fused kernels (rows per
    /// workgroup × row groups), two epochs each.
    #[arg(long)]
    pub fused_layouts: bool,
}

// The arguments of `bench plan`.
#[derive(Args)]
pub struct BenchPlanArgs {
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Only the cases whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Time a network kernel even when it fails verification on this adapter.
    #[arg(long)]
    pub force: bool,
    /// The network kernel of every case: auto, tiled, rows, fused or coop16 (planner.mlp_kernel).
    #[arg(long, default_value = "auto", value_parser = parse_mlp_kernel)]
    pub mlp_kernel: MlpKernel,
    /// How every case's model steps are dispatched: auto, fused (one dispatch per step) or
    /// split (the network, then propagate) (planner.model_step).
    #[arg(long, default_value = "auto", value_parser = parse_model_step)]
    pub model_step: ModelStep,
    /// The reduced set (minutes on lavapipe).
    #[arg(long)]
    pub quick: bool,
    /// Also time every kernel on the GPU (timestamp queries) and report ms per kernel.
    #[arg(long)]
    pub profile: bool,
    /// Also time every case through every layout the fused kernel takes on this adapter
    /// (rows per workgroup, columns per invocation, row groups), a few plans each.
    #[arg(long)]
    pub fused_layouts: bool,
}

fn parse_model_step(s: &str) -> std::result::Result<ModelStep, String> {
    ModelStep::from_name(s).ok_or_else(|| format!("unknown model step {s:?}; expected auto, fused or split"))
}

fn parse_mlp_kernel(s: &str) -> std::result::Result<MlpKernel, String> {
    MlpKernel::from_name(s)
        .ok_or_else(|| format!("unknown network kernel {s:?}; expected auto, tiled, rows, fused or coop16"))
}
