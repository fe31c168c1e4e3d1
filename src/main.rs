//! The `lookahead` command line: a thin shell over the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use lookahead::bench;
use lookahead::env::EnvKind;
use lookahead::gpu::{self, AdapterOptions, Backend, GpuContext};
use lookahead::mpc;
use lookahead::pets::{self, PetsConfig, Preset};
use lookahead::planner::{MlpKernel, ModelStep, PlannerConfig};

#[derive(Parser)]
#[command(name = "lookahead", version, about = "PETS / CEM model-predictive control in WGSL compute shaders")]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GpuArgs {
    /// Use the adapter whose name contains this (case-insensitive); also LOOKAHEAD_ADAPTER.
    #[arg(long, global = true, env = "LOOKAHEAD_ADAPTER")]
    adapter: Option<String>,
    /// Restrict to one backend: vulkan, metal, dx12 or gl.
    #[arg(long, global = true, value_parser = ["vulkan", "metal", "dx12", "gl"])]
    backend: Option<String>,
    /// Runtime checks in the shaders: policy (the crate's own kernels without bounds checks and
    /// loop bounding; see docs/DESIGN.md) or full; also LOOKAHEAD_SHADER_CHECKS.
    #[arg(long, global = true, env = "LOOKAHEAD_SHADER_CHECKS", default_value = "policy", value_parser = ["policy", "full"])]
    shader_checks: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run PETS: explore, then plan with CEM over a learned ensemble, act, retrain.
    Pets {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Seed of the whole run (overrides the config's).
        #[arg(long)]
        seed: Option<u64>,
        /// Run directory (default: runs/pets-<env>-<preset>-seed<seed>); a folder holding an
        /// earlier run is refused unless --overwrite.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the run already in the run directory.
        #[arg(long)]
        overwrite: bool,
        /// Continue the run in the run directory (the same command plus --resume) from its last
        /// consistent point, exactly as if it had not stopped.
        #[arg(long, conflicts_with = "overwrite")]
        resume: bool,
    },
    /// Check every kernel family against its f64 CPU reference on this adapter (or all).
    Verify {
        /// Smaller sizes of the same cases (well under 2 minutes on lavapipe).
        #[arg(long)]
        quick: bool,
        /// Every adapter wgpu sees (of --backend, if given), one report each.
        #[arg(long)]
        all_adapters: bool,
        /// Write the report(s) as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Replay a PETS run's checkpoint.
    Eval {
        /// The run directory (config.toml and model.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// Episodes to play.
        #[arg(long, default_value_t = 5)]
        episodes: usize,
        /// Seed of the episodes and the planner.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print or check a PETS config.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Run one episode of MPC with the environment's true dynamics.
    Mpc {
        /// cartpole or pendulum.
        #[arg(long, default_value = "cartpole")]
        env: String,
        /// Episode and planner seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the trajectory as CSV.
        #[arg(long)]
        trajectory: Option<PathBuf>,
        /// Planner settings (TOML, keys of PlannerConfig).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one planner setting, e.g. --set population=500 (repeatable).
        #[arg(long = "set")]
        set: Vec<String>,
    },
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

#[derive(Args)]
struct ConfigArgs {
    /// cartpole or pendulum (default: the config file's `env`, else cartpole).
    #[arg(long)]
    env: Option<String>,
    /// reference or demo.
    #[arg(long, default_value = "reference")]
    preset: String,
    /// A TOML file applied over the preset ([model], [train], [planner], [loop], env, seed).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one key, e.g. --set planner.population=500 (repeatable).
    #[arg(long = "set")]
    set: Vec<String>,
}

impl ConfigArgs {
    fn resolve(&self) -> anyhow::Result<(PetsConfig, String)> {
        let preset: Preset = self.preset.parse()?;
        let text = match &self.config {
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        // The preset depends on the environment, so the file's `env` and --env must agree.
        let set_env = self.set.iter().rev().find_map(|s| {
            let (k, v) = s.split_once('=')?;
            (k.trim() == "env").then(|| v.trim().trim_matches('"').to_string())
        });
        let file_env = set_env.or_else(|| {
            text.as_deref()
                .and_then(|t| toml::from_str::<toml::Table>(t).ok())
                .and_then(|t| t.get("env").and_then(|v| v.as_str()).map(str::to_string))
        });
        let env: EnvKind = match (&self.env, &file_env) {
            (Some(cli), Some(file)) if cli != file => {
                anyhow::bail!("invalid config: env: --env says {cli:?}, the config says {file:?}")
            }
            (Some(e), _) | (None, Some(e)) => e.parse()?,
            (None, None) => EnvKind::Cartpole,
        };
        let cfg = PetsConfig::resolve(env, preset, text.as_deref(), &self.set)?;
        Ok((cfg, self.preset.clone()))
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
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
enum BenchCommand {
    /// Time training epochs of the PETS reference ensemble.
    Train {
        /// Time the training kernels even when they fail verification on this adapter.
        #[arg(long)]
        force: bool,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The reduced set (minutes on lavapipe).
        #[arg(long)]
        quick: bool,
        /// Also time every kernel on the GPU (timestamp queries) and report ms per kernel.
        #[arg(long)]
        profile: bool,
        /// Also train every case through each row-block layout of the fused kernels (rows per
        /// workgroup × row groups), two epochs each.
        #[arg(long)]
        fused_layouts: bool,
    },
    /// Time full CEM plans through the PETS reference ensemble.
    Plan {
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only the cases whose name contains this.
        #[arg(long)]
        only: Option<String>,
        /// Time a network kernel even when it fails verification on this adapter.
        #[arg(long)]
        force: bool,
        /// The network kernel of every case: auto, tiled, rows, fused or coop16 (planner.mlp_kernel).
        #[arg(long, default_value = "auto", value_parser = parse_mlp_kernel)]
        mlp_kernel: MlpKernel,
        /// How every case's model steps are dispatched: auto, fused (one dispatch per step) or
        /// split (the network, then propagate) (planner.model_step).
        #[arg(long, default_value = "auto", value_parser = parse_model_step)]
        model_step: ModelStep,
        /// The reduced set (minutes on lavapipe).
        #[arg(long)]
        quick: bool,
        /// Also time every kernel on the GPU (timestamp queries) and report ms per kernel.
        #[arg(long)]
        profile: bool,
        /// Also time every case through every layout the fused kernel takes on this adapter
        /// (rows per workgroup, columns per invocation, row groups), a few plans each.
        #[arg(long)]
        fused_layouts: bool,
    },
}

/// Timed plans per layout of `bench plan --fused-layouts`.
const FUSED_LAYOUT_PLANS: usize = 5;

fn parse_model_step(s: &str) -> std::result::Result<ModelStep, String> {
    ModelStep::from_name(s).ok_or_else(|| format!("unknown model step {s:?}; expected auto, fused or split"))
}

fn parse_mlp_kernel(s: &str) -> std::result::Result<MlpKernel, String> {
    MlpKernel::from_name(s)
        .ok_or_else(|| format!("unknown network kernel {s:?}; expected auto, tiled, rows, fused or coop16"))
}

/// The start of `bench plan` and `bench train`: checks the report path before any work, opens
/// the adapter and prints the header (version, adapter, check policy, timestamp support).
fn start_bench(
    gpu: &GpuArgs,
    what: &str,
    json: Option<&std::path::Path>,
    quick: bool,
    profile: bool,
) -> anyhow::Result<GpuContext> {
    if let Some(path) = json {
        lookahead::util::check_writable(path)?;
    }
    let ctx = open_gpu(gpu)?;
    println!("lookahead {} bench {what}{}", env!("CARGO_PKG_VERSION"), if quick { " --quick" } else { "" });
    println!("adapter: {}", ctx.adapter());
    print_bench_setup(&ctx, profile);
    Ok(ctx)
}

fn print_bench_setup(ctx: &GpuContext, profile: bool) {
    let timestamps = lookahead::gpu::Profiler::new(ctx).is_some();
    println!("shader checks: {:?}; timestamp queries: {}", ctx.shader_checks(), if timestamps { "yes" } else { "no" });
    if profile && !timestamps {
        println!("--profile: this adapter has no timestamp queries; no per-kernel times");
    }
}

/// Prints GPU milliseconds per kernel, largest first.
fn print_profile(profile: Option<&std::collections::BTreeMap<String, f64>>, per: &str) {
    let Some(p) = profile else { return };
    let total: f64 = p.values().sum();
    let mut rows: Vec<_> = p.iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(a.1));
    println!("    GPU time per {per}: {total:.3} ms");
    for (k, v) in rows {
        println!("    {k:<22} {v:>10.3} ms {:>5.1} %", 100.0 * v / total.max(f64::MIN_POSITIVE));
    }
}

/// Runs the verification table on `ctx`, printing a line per case and a summary.
fn verify_adapter(ctx: &GpuContext, cases: &[lookahead::verify::Case]) -> lookahead::verify::AdapterReport {
    let a = ctx.adapter();
    println!("adapter: {a}");
    println!("shader checks: {:?}", ctx.shader_checks());
    println!(
        "{:<14} {:<62} {:>7} {:>10} {:>10} {:>17}  result",
        "family", "case", "values", "max abs", "max rel", "tolerance"
    );
    let started = std::time::Instant::now();
    let report = lookahead::verify::AdapterReport::run(ctx, cases, |r| {
        let tol = match (&r.criterion, r.tol) {
            (Some(c), _) => c.clone(),
            (None, Some(t)) => format!("{:.0e} + {:.0e}·|x|", t.abs, t.rel),
            (None, None) => "bit for bit".to_string(),
        };
        let verdict = match (&r.expected_failure, r.passed) {
            (Some(why), false) => format!("expected failure: {why}"),
            (Some(why), true) => format!("PASSED but listed as an expected failure ({why}): remove the entry"),
            (None, true) => "pass".to_string(),
            (None, false) => format!("FAIL: {}", r.detail),
        };
        println!(
            "{:<14} {:<62} {:>7} {:>10.2e} {:>10.2e} {:>17}  {verdict}",
            r.family, r.case, r.values, r.max_abs, r.max_rel, tol
        );
    });
    println!(
        "features: {}; network kernel for the reference network: {}",
        if report.features.is_empty() { "none of those used".to_string() } else { report.features.join(", ") },
        report.network_kernel
    );
    if !report.cooperative_matrices.is_empty() {
        println!("cooperative matrices: {}", report.cooperative_matrices.join(", "));
    }
    for line in &report.optional {
        println!("optional family {line}");
    }
    let failed = report.results.iter().filter(|r| !r.ok()).count();
    println!(
        "{} cases, {} failed, in {:.1} s on {}",
        report.results.len(),
        failed,
        started.elapsed().as_secs_f64(),
        a.name
    );
    report
}

fn open_gpu(args: &GpuArgs) -> anyhow::Result<GpuContext> {
    let backend = args.backend.as_deref().map(str::parse::<Backend>).transpose()?;
    let shader_checks = args.shader_checks.parse()?;
    let ctx = GpuContext::new(&AdapterOptions { name: args.adapter.clone(), backend, shader_checks })?;
    eprintln!("adapter: {}", ctx.adapter());
    Ok(ctx)
}

fn mpc_config(env: EnvKind, config: Option<PathBuf>, set: &[String]) -> anyhow::Result<PlannerConfig> {
    let mut keys: Vec<String> = Vec::new();
    let cfg = match config {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            if let Ok(table) = text.parse::<toml::Table>() {
                keys.extend(table.keys().cloned());
            }
            PlannerConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => match env {
            EnvKind::Cartpole => PlannerConfig::pets_reference(),
            EnvKind::Pendulum => PlannerConfig::pendulum_mpc(),
        },
    };
    let cfg = cfg.with_set(set)?;
    keys.extend(
        set.iter().filter_map(|s| s.split_once('=')).map(|(k, _)| k.trim().trim_start_matches("planner.").to_string()),
    );
    // The true dynamics are deterministic: one particle per candidate, whatever is asked.
    if keys.iter().any(|k| k == "particles" || k == "propagation") {
        anyhow::bail!(
            "invalid config: planner.particles / planner.propagation: `mpc` plans with the true dynamics, \
             one particle per candidate; these settings are for a learned ensemble (`lookahead pets`)"
        );
    }
    cfg.validate()?;
    if cfg.seed != PlannerConfig::default().seed {
        anyhow::bail!("invalid config: planner.seed: `mpc` takes its seed from --seed");
    }
    Ok(cfg)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain, without repeating a cause that a message above already quotes (our
            // I/O errors name the path and include the OS error).
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pets { cfg, seed, out, overwrite, resume } => {
            let (mut config, preset) = cfg.resolve()?;
            if let Some(s) = seed {
                config.seed = s;
            }
            let out = out.unwrap_or_else(|| {
                PathBuf::from(format!("runs/pets-{}-{preset}-seed{}", config.env.name(), config.seed))
            });
            let ctx = open_gpu(&cli.gpu)?;
            eprintln!(
                "pets {} ({preset}): {} × {:?} ensemble, {} {} × {} particles × horizon {} × {} iterations, {} trials; run directory {}",
                config.env.name(),
                config.model.members,
                config.model.hidden,
                config.planner.kind.name(),
                config.planner.population,
                config.planner.particles,
                config.planner.horizon,
                config.planner.effective_iterations(),
                config.schedule.trials,
                out.display()
            );
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || {
                if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    // A second Ctrl-C: leave now. Every file was written atomically or appended
                    // line by line, so the last complete checkpoint and metrics remain.
                    eprintln!("\nsecond interrupt: exiting now; the last complete checkpoint remains");
                    exit_at_once(130);
                }
                eprintln!(
                    "\ninterrupt: finishing the current step or minibatch submission (Ctrl-C again to exit at once)"
                );
            })
            .context("installing the Ctrl-C handler")?;
            let mut bar = pets::ProgressDisplay::new(&config);
            let mut progress = |p: &pets::Progress| bar.update(p);
            let mut env = config.env.make();
            let summary = pets::run(
                &ctx,
                &config,
                env.as_mut(),
                config.env.task(),
                pets::RunOptions {
                    out_dir: Some(out.clone()),
                    interrupt: Some(stop),
                    progress: Some(&mut progress),
                    overwrite,
                    resume,
                },
            )?;
            bar.finish();
            if let Some(at) = &summary.stopped_at {
                let saved = if out.join("model.safetensors").exists() {
                    "the checkpoint of the last training, the config, metrics and results of the finished trials"
                } else {
                    "the config (no training had finished)"
                };
                println!(
                    "interrupted at {at}; saved in {}: {saved}; the same command with --resume continues from the last finished trial",
                    out.display()
                );
            }
            let returns: Vec<String> = summary.trials.iter().map(|t| format!("{:.1}", t.total_return)).collect();
            println!(
                "trial returns: {}",
                if returns.is_empty() { "none finished".to_string() } else { returns.join(" ") }
            );
            if let Some(best) = summary.trials.iter().map(|t| t.total_return).reduce(f64::max) {
                let first_max = summary.trials.iter().position(|t| t.total_return >= best).map(|i| i + 1).unwrap_or(0);
                println!(
                    "{}: best return {best:.1} (first reached in trial {first_max}) over {} trials in {:.1} s on {}{}",
                    config.env.name(),
                    summary.trials.len(),
                    summary.seconds,
                    ctx.adapter().name,
                    if summary.interrupted { " (interrupted)" } else { "" }
                );
            }
            println!("learning curve: {}", out.join("learning_curve.svg").display());
        }
        Command::Eval { run, episodes, seed } => {
            let ctx = open_gpu(&cli.gpu)?;
            let returns = pets::evaluate(&ctx, &run, episodes, seed)?;
            let mean = returns.iter().sum::<f64>() / returns.len().max(1) as f64;
            let list: Vec<String> = returns.iter().map(|r| format!("{r:.1}")).collect();
            println!("eval {}: returns {} (mean {mean:.1})", run.display(), list.join(" "));
        }
        Command::Config { what: ConfigCommand::Print { cfg } } => {
            let (config, _) = cfg.resolve()?;
            print!("{}", config.to_toml());
        }
        Command::Config { what: ConfigCommand::Validate { file, env, preset } } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            PetsConfig::resolve(env.parse()?, preset.parse()?, Some(&text), &[])
                .with_context(|| format!("in {}", file.display()))?;
            println!("{}: valid", file.display());
        }
        Command::Mpc { env, seed, trajectory, config, set } => {
            if let Some(path) = &trajectory {
                lookahead::util::check_writable(path)?;
            }
            let kind: EnvKind = env.parse()?;
            let cfg = mpc_config(kind, config, &set)?;
            let ctx = open_gpu(&cli.gpu)?;
            eprintln!(
                "mpc {}: {} horizon {}, population {}, {} iterations, {} model steps per plan (true dynamics)",
                kind.name(),
                cfg.kind.name(),
                cfg.horizon,
                cfg.population,
                cfg.effective_iterations(),
                cfg.candidates_per_plan() * cfg.horizon
            );
            let bar = ProgressBar::new(200);
            bar.set_style(
                ProgressStyle::with_template("{spinner} step {pos}/{len} [{bar:30}] return {msg} ({per_sec})")
                    .expect("the template is a literal")
                    .progress_chars("=> "),
            );
            let mut ret = 0.0;
            let ep = mpc::run_episode(&ctx, kind, cfg, seed, |row| {
                ret += row.reward;
                bar.set_message(format!("{ret:.1}"));
                bar.inc(1);
            })?;
            bar.finish_and_clear();
            let mut t: Vec<f64> = ep.plan_times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
            t.sort_by(f64::total_cmp);
            println!(
                "{}: return {:.2} over {} steps{} (plan p50 {:.2} ms on {})",
                kind.name(),
                ep.total_return,
                ep.steps,
                if ep.terminated { ", terminated" } else { "" },
                t[t.len() / 2],
                ctx.adapter().name
            );
            if let Some(path) = trajectory {
                mpc::write_trajectory_csv(&path, &ep.trajectory)?;
                eprintln!("trajectory written to {}", path.display());
            }
        }
        Command::Bench {
            what: BenchCommand::Plan { json, only, force, mlp_kernel, model_step, quick, profile, fused_layouts },
        } => {
            let ctx = start_bench(&cli.gpu, "plan", json.as_deref(), quick, profile)?;
            let l = ctx.limits();
            println!(
                "limits: max_storage_buffer_binding_size {} B, max_buffer_size {} B, max_compute_workgroups_per_dimension {}",
                l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_workgroups_per_dimension
            );
            let mut cases = if quick { bench::quick_suite() } else { bench::full_suite() };
            if let Some(only) = &only {
                cases.retain(|c| c.name.contains(only.as_str()));
                if cases.is_empty() {
                    anyhow::bail!("no bench case name contains {only:?}");
                }
            }
            for c in &mut cases {
                c.cem.mlp_kernel = mlp_kernel;
                c.cem.model_step = model_step;
            }
            // No speed figure from wrong maths: the network kernel the cases will use is checked
            // against its f64 reference (and a whole plan through it) first.
            let kernel = match mlp_kernel {
                MlpKernel::Auto => lookahead::verify::auto_network_kernel(&ctx)?,
                k => k.name().to_string(),
            };
            let mut kernels = vec![kernel];
            if fused_layouts && !kernels.contains(&"fused".to_string()) {
                kernels.push("fused".into());
            }
            for kernel in &kernels {
                match (lookahead::verify::check_network_kernel(&ctx, kernel, model_step), force) {
                    (Ok(()), _) => {
                        println!("verified: the {kernel} network kernel matches its f64 reference on this adapter")
                    }
                    (Err(e), true) => println!("UNVERIFIED (--force): {e}"),
                    (Err(e), false) => return Err(e.into()),
                }
            }
            println!(
                "{:<24} {:>6} {:>4} {:>3} {:>3} {:>10} {:>10} {:>10} {:>14} {:>9} {:>6} {:>6} {:>5}",
                "case",
                "pop",
                "part",
                "H",
                "it",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "model steps/s",
                "GFLOP/s",
                "disp",
                "net",
                "step"
            );
            let mut results = Vec::new();
            for c in &cases {
                let r = bench::run_case(&ctx, c, profile)?;
                println!(
                    "{:<24} {:>6} {:>4} {:>3} {:>3} {:>10.2} {:>10.2} {:>10.2} {:>14.3e} {:>9.1} {:>6} {:>6} {:>5}",
                    r.name,
                    r.population,
                    r.particles,
                    r.horizon,
                    r.iterations,
                    r.p50_ms,
                    r.p90_ms,
                    r.p99_ms,
                    r.model_steps_per_s,
                    r.gflops,
                    r.dispatches_per_plan,
                    r.mlp_kernel,
                    r.model_step
                );
                print_profile(r.profile.as_ref(), "plan");
                let mut r = r;
                if fused_layouts {
                    let layouts = bench::sweep_layouts(&ctx, c, FUSED_LAYOUT_PLANS)?;
                    println!("    fused layouts ({FUSED_LAYOUT_PLANS} plans each): rows × cols/invocation × row groups (invocations)  p50 ms  max |Δ| vs the planner's own");
                    for l in &layouts {
                        match &l.refused {
                            None => println!(
                                "    {:>3} × {} × {} ({:>4})  {:>10.2}  {:.1e}",
                                l.rows, l.cols, l.split, l.invocations, l.p50_ms, l.max_abs_diff
                            ),
                            Some(why) => println!(
                                "    {:>3} × {} × {} ({:>4})  refused: {why}",
                                l.rows, l.cols, l.split, l.invocations
                            ),
                        }
                    }
                    r.layouts = Some(layouts);
                }
                results.push(r);
            }
            if let Some(path) = json {
                bench::Report::new(&ctx, results).write(&path)?;
                println!("report written to {}", path.display());
            }
        }
        Command::Bench { what: BenchCommand::Train { json, force, quick, profile, fused_layouts } } => {
            let ctx = start_bench(&cli.gpu, "train", json.as_deref(), quick, profile)?;
            match (
                lookahead::verify::check_families(
                    &ctx,
                    &[
                        lookahead::verify::Family::MlpTiled,
                        lookahead::verify::Family::MlpFused,
                        lookahead::verify::Family::TrainLoss,
                        lookahead::verify::Family::TrainAdam,
                    ],
                ),
                force,
            ) {
                (Ok(()), _) => println!("verified: the training kernels match their f64 references on this adapter"),
                (Err(e), true) => println!("UNVERIFIED (--force): {e}"),
                (Err(e), false) => return Err(e.into()),
            }
            let cases = if quick { bench::train_quick_suite() } else { bench::train_full_suite() };
            println!(
                "{:<22} {:>11} {:>8} {:>12} {:>6} {:>6} {:>12} {:>14} {:>10} {:>6}",
                "case",
                "transitions",
                "members",
                "hidden",
                "batch",
                "steps",
                "s/epoch",
                "transitions/s",
                "disp/call",
                "net"
            );
            let mut results = Vec::new();
            for c in &cases {
                let r = bench::run_train_case(&ctx, c, profile)?;
                println!(
                    "{:<22} {:>11} {:>8} {:>12} {:>6} {:>6} {:>12.3} {:>14.0} {:>10} {:>6}",
                    r.name,
                    r.transitions,
                    r.members,
                    format!("{:?}", r.hidden),
                    r.batch_size,
                    r.steps,
                    r.seconds_per_epoch,
                    r.transitions_per_s,
                    r.dispatches_per_call,
                    r.mlp_kernel
                );
                print_profile(r.profile.as_ref(), "one-epoch train call");
                let mut r = r;
                if fused_layouts {
                    let layouts = bench::sweep_train_layouts(&ctx, c)?;
                    println!("    fused layouts: rows × row groups  s/epoch  max |Δ| of the trained weights vs the rule's layout");
                    for l in &layouts {
                        match &l.refused {
                            None => println!(
                                "    {:>3} × {}  {:>10.4}  {:.1e}",
                                l.rows, l.split, l.seconds_per_epoch, l.max_abs_diff
                            ),
                            Some(why) => println!("    {:>3} × {}  refused: {why}", l.rows, l.split),
                        }
                    }
                    r.layouts = Some(layouts);
                }
                results.push(r);
            }
            if let Some(path) = json {
                bench::Report::new(&ctx, results).write(&path)?;
                println!("report written to {}", path.display());
            }
        }
        Command::Verify { quick, all_adapters, json } => {
            if let Some(path) = &json {
                lookahead::util::check_writable(path)?;
            }
            let backend = cli.gpu.backend.as_deref().map(str::parse::<Backend>).transpose()?;
            let shader_checks = cli.gpu.shader_checks.parse()?;
            let targets: Vec<AdapterOptions> = if all_adapters {
                gpu::list_adapters(backend)
                    .into_iter()
                    .map(|a| AdapterOptions {
                        name: Some(a.name.clone()),
                        backend: a.backend.parse().ok(),
                        shader_checks,
                    })
                    .collect()
            } else {
                vec![AdapterOptions { name: cli.gpu.adapter.clone(), backend, shader_checks }]
            };
            let cases = lookahead::verify::cases(quick);
            let mut reports = Vec::new();
            for opts in &targets {
                let ctx = GpuContext::new(opts)?;
                let r = verify_adapter(&ctx, &cases);
                reports.push(r);
            }
            if let Some(path) = &json {
                let text = serde_json::to_string_pretty(&serde_json::json!({
                    "lookahead": env!("CARGO_PKG_VERSION"),
                    "quick": quick,
                    "shader_checks": cli.gpu.shader_checks,
                    "adapters": reports,
                }))?;
                lookahead::util::write_atomic(path, text.as_bytes())?;
                println!("report written to {}", path.display());
            }
            let failed: usize = reports.iter().map(|r| r.results.iter().filter(|c| !c.ok()).count()).sum();
            if failed > 0 {
                anyhow::bail!(
                    "{failed} case(s) failed verification: these kernels compute wrong results on this adapter"
                );
            }
        }
        Command::Adapters => {
            let backend = cli.gpu.backend.as_deref().map(str::parse::<Backend>).transpose()?;
            for a in gpu::list_adapters(backend) {
                println!("{a}");
            }
        }
        Command::Envs => {
            for e in EnvKind::ALL {
                let t = e.task();
                println!(
                    "{:<10} obs {} act {} bounds {:?}..{:?}",
                    e.name(),
                    t.obs_dim,
                    t.act_dim,
                    t.action_lower,
                    t.action_upper
                );
            }
        }
    }
    Ok(())
}

/// Ends the process with `code` from the Ctrl-C handler's thread while the main thread may be
/// in the middle of GPU work or already returning from `main`: without running exit handlers
/// and library destructors (`_exit`), which would otherwise run concurrently with the main
/// thread's use of the driver, or with its own exit (a crash instead of status 130, seen with
/// lavapipe on a loaded machine).
fn exit_at_once(code: i32) -> ! {
    #[cfg(unix)]
    {
        // SAFETY: `_exit` takes no pointers and never returns; it is async-signal-safe.
        unsafe { libc::_exit(code) }
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}
