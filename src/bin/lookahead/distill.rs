//! `distill`: a PETS run's planner distilled into a policy network with DAgger, with a progress
//! bar, Ctrl-C and the run folder (`RUN/distill` by default).

use std::path::PathBuf;

use lookahead::distill::{self, DistillConfig};
use lookahead::env::EnvKind;

use crate::args::GpuArgs;

// The arguments of `distill`.
#[derive(clap::Args)]
pub struct DistillArgs {
    /// The PETS run folder whose planner (over its learned ensemble) is distilled.
    #[arg(long, required_unless_present = "mpc", conflicts_with = "mpc")]
    pub run: Option<PathBuf>,
    /// Distil the planner of a built-in environment's known dynamics instead (cartpole or
    /// pendulum, as `lookahead mpc` plans them); --out is then required.
    #[arg(long)]
    pub mpc: Option<String>,
    /// DAgger iterations after the first (dagger.iterations).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Episodes per iteration, planned side by side (dagger.episodes).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// dagger (the policy's episodes labelled by the planner) or bc (the planner's own).
    #[arg(long)]
    pub mode: Option<String>,
    /// A TOML file of [policy], [train], [dagger] and seed.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. --set train.lr=3e-4 (repeatable).
    #[arg(long = "set")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub out: crate::args::RunArgs,
}

/// The config of `args`: the defaults, the file, the `--set` keys, then the flags.
fn resolve(args: &DistillArgs) -> anyhow::Result<DistillConfig> {
    let text = crate::config::read_config(args.config.as_deref())?;
    let mut sets = args.set.clone();
    sets.extend(args.iterations.map(|n| format!("dagger.iterations={n}")));
    sets.extend(args.episodes.map(|n| format!("dagger.episodes={n}")));
    sets.extend(args.mode.as_ref().map(|m| format!("dagger.mode={m:?}")));
    sets.extend(args.out.seed.map(|s| format!("seed={s}")));
    Ok(DistillConfig::resolve(text.as_deref(), &sets)?)
}

/// `lookahead distill`: the planner's evaluation, then the iterations, into the folder; then
/// the policy's and the planner's returns.
pub fn cmd_distill(gpu: &GpuArgs, args: DistillArgs) -> anyhow::Result<bool> {
    let cfg = resolve(&args)?;
    let mpc = args.mpc.as_deref().map(|e| e.parse::<EnvKind>()).transpose()?;
    let out = match (&args.run, &args.out.out) {
        (_, Some(out)) => out.clone(),
        (Some(run), None) => distill::default_out(run),
        (None, None) => anyhow::bail!("--mpc needs --out: the folder the distillation writes"),
    };
    let ctx = gpu.open()?;
    let source = args
        .run
        .as_ref()
        .map_or_else(|| format!("mpc {}", args.mpc.as_deref().unwrap_or("")), |r| r.display().to_string());
    let d = &cfg.dagger;
    eprintln!(
        "distill {} into {:?} ({}): {} iterations after the first, {} episodes each, {} updates per iteration; \
         folder {}",
        source,
        cfg.policy.hidden,
        format!("{:?}", d.mode).to_lowercase(),
        d.iterations,
        d.episodes,
        cfg.train.updates_per_iteration,
        out.display()
    );
    let stop = crate::interrupt::install_interrupt_handler(
        "the current step (the distillation resumes from its last iteration)",
        "; the last iteration's point remains",
    )?;
    let mut bar = distill::ProgressDisplay::new(&cfg);
    let mut progress = |p: &distill::Progress| bar.update(p);
    let opts = distill::RunOptions {
        out_dir: Some(out.clone()),
        interrupt: Some(stop),
        progress: Some(&mut progress),
        overwrite: args.out.overwrite,
        resume: args.out.resume,
    };
    let summary = match (&args.run, mpc) {
        (Some(run), _) => distill::run(&ctx, &cfg, run, opts)?,
        (None, Some(env)) => distill::run_mpc(&ctx, &cfg, env, crate::mpc::default_planner(env), opts)?,
        (None, None) => anyhow::bail!("--run or --mpc names what is distilled"),
    };
    bar.finish();
    report(&out, &summary);
    Ok(summary.interrupted)
}

/// Prints each iteration's returns, where an interrupt stopped it and the curve's file.
fn report(out: &std::path::Path, s: &distill::DistillSummary) {
    let planner = s.planner_returns.iter().sum::<f64>() / s.planner_returns.len().max(1) as f64;
    for r in &s.iterations {
        println!(
            "iteration {}: policy {:.1} ± {:.1}, planner {planner:.1}, {} labels, imitation loss {:.4}",
            r.iteration, r.policy_return, r.policy_std, r.labels, r.imitation_loss
        );
    }
    if let Some(at) = &s.stopped_at {
        let next = if out.join("resume.json").exists() {
            "the same command with --resume continues from the last iteration"
        } else {
            "no iteration finished: start again with --overwrite"
        };
        println!("interrupted at {at}; {next}");
    }
    if !s.iterations.is_empty() {
        println!("policy.safetensors and distill_curve.svg in {} ({:.1} s)", out.display(), s.seconds);
    }
}
