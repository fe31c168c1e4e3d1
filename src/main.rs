//! The `lookahead` command line: a thin shell over the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use lookahead::bench;
use lookahead::env::EnvKind;
use lookahead::gpu::{self, AdapterOptions, Backend, GpuContext};
use lookahead::mpc;
use lookahead::planner::CemConfig;

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
    #[arg(long, global = true)]
    backend: Option<String>,
}

#[derive(Subcommand)]
enum Command {
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
        /// Planner settings (TOML, keys of CemConfig).
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

#[derive(Subcommand)]
enum BenchCommand {
    /// Time training epochs of the PETS reference ensemble.
    Train {
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The reduced set (minutes on lavapipe).
        #[arg(long)]
        quick: bool,
    },
    /// Time full CEM plans through the PETS reference ensemble.
    Plan {
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The reduced set (minutes on lavapipe).
        #[arg(long)]
        quick: bool,
    },
}

fn open_gpu(args: &GpuArgs) -> anyhow::Result<GpuContext> {
    let backend = args.backend.as_deref().map(str::parse::<Backend>).transpose()?;
    let ctx = GpuContext::new(&AdapterOptions { name: args.adapter.clone(), backend })?;
    eprintln!("adapter: {}", ctx.adapter());
    Ok(ctx)
}

fn mpc_config(env: EnvKind, config: Option<PathBuf>, set: &[String]) -> anyhow::Result<CemConfig> {
    let mut cfg = match config {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            CemConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => match env {
            EnvKind::Cartpole => CemConfig::pets_reference(),
            EnvKind::Pendulum => CemConfig::pendulum_mpc(),
        },
    };
    for s in set {
        cfg.set(s)?;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Mpc { env, seed, trajectory, config, set } => {
            let kind: EnvKind = env.parse()?;
            let cfg = mpc_config(kind, config, &set)?;
            let ctx = open_gpu(&cli.gpu)?;
            eprintln!(
                "mpc {}: CEM horizon {}, population {}, {} iterations, elite ratio {}, alpha {} (true dynamics)",
                kind.name(),
                cfg.horizon,
                cfg.population,
                cfg.iterations,
                cfg.elite_ratio,
                cfg.alpha
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
            if let Some(path) = trajectory {
                mpc::write_trajectory_csv(&path, &ep.trajectory)?;
                eprintln!("trajectory written to {}", path.display());
            }
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
        }
        Command::Bench { what: BenchCommand::Plan { json, quick } } => {
            let ctx = open_gpu(&cli.gpu)?;
            println!("lookahead {} bench plan{}", env!("CARGO_PKG_VERSION"), if quick { " --quick" } else { "" });
            println!("adapter: {}", ctx.adapter());
            let l = ctx.limits();
            println!(
                "limits: max_storage_buffer_binding_size {} B, max_buffer_size {} B, max_compute_workgroups_per_dimension {}",
                l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_workgroups_per_dimension
            );
            let cases = if quick { bench::quick_suite() } else { bench::full_suite() };
            println!(
                "{:<24} {:>6} {:>4} {:>3} {:>3} {:>10} {:>10} {:>10} {:>14} {:>9}",
                "case", "pop", "part", "H", "it", "p50 ms", "p90 ms", "p99 ms", "model steps/s", "GFLOP/s"
            );
            let mut results = Vec::new();
            for c in &cases {
                let r = bench::run_case(&ctx, c)?;
                println!(
                    "{:<24} {:>6} {:>4} {:>3} {:>3} {:>10.2} {:>10.2} {:>10.2} {:>14.3e} {:>9.1}",
                    r.name,
                    r.population,
                    r.particles,
                    r.horizon,
                    r.iterations,
                    r.p50_ms,
                    r.p90_ms,
                    r.p99_ms,
                    r.model_steps_per_s,
                    r.gflops
                );
                results.push(r);
            }
            if let Some(path) = json {
                let report = bench::PlanReport {
                    adapter: ctx.adapter().into(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    results,
                };
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("report written to {}", path.display());
            }
        }
        Command::Bench { what: BenchCommand::Train { json, quick } } => {
            let ctx = open_gpu(&cli.gpu)?;
            println!("lookahead {} bench train{}", env!("CARGO_PKG_VERSION"), if quick { " --quick" } else { "" });
            println!("adapter: {}", ctx.adapter());
            let cases = if quick { bench::train_quick_suite() } else { bench::train_full_suite() };
            println!(
                "{:<22} {:>11} {:>8} {:>12} {:>6} {:>6} {:>12} {:>14}",
                "case", "transitions", "members", "hidden", "batch", "steps", "s/epoch", "transitions/s"
            );
            let mut results = Vec::new();
            for c in &cases {
                let r = bench::run_train_case(&ctx, c)?;
                println!(
                    "{:<22} {:>11} {:>8} {:>12} {:>6} {:>6} {:>12.3} {:>14.0}",
                    r.name,
                    r.transitions,
                    r.members,
                    format!("{:?}", r.hidden),
                    r.batch_size,
                    r.steps,
                    r.seconds_per_epoch,
                    r.transitions_per_s
                );
                results.push(r);
            }
            if let Some(path) = json {
                let report = bench::TrainReportJson {
                    adapter: ctx.adapter().into(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    results,
                };
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("report written to {}", path.display());
            }
        }
        Command::Adapters => {
            for a in gpu::list_adapters() {
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
