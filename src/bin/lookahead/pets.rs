//! `pets` (a whole PETS run) and `eval` (replaying its checkpoint), both interruptible with
//! Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lookahead::gpu::GpuContext;
use lookahead::pets::{self, PetsConfig};

use crate::args::{EvalArgs, GpuArgs, PetsArgs};
use crate::interrupt::{exit_status, install_interrupt_handler};

/// `lookahead pets`: explore, then plan over a learned ensemble, act and retrain, trial after
/// trial, into the run directory; then the trials' returns. Status 130 when Ctrl-C stopped it.
pub fn cmd_pets(gpu: &GpuArgs, args: PetsArgs) -> anyhow::Result<ExitCode> {
    let (mut config, preset) = args.cfg.resolve()?;
    if let Some(s) = args.run.seed {
        config.seed = s;
    }
    let out = args
        .run
        .out
        .unwrap_or_else(|| PathBuf::from(format!("runs/pets-{}-{preset}-seed{}", config.env.name(), config.seed)));
    let ctx = gpu.open()?;
    print_run_header(&config, &preset, &out);
    let stop = install_interrupt_handler(
        "the current step or minibatch submission",
        "; the last complete checkpoint remains",
    )?;
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
            overwrite: args.run.overwrite,
            resume: args.run.resume,
        },
    )?;
    bar.finish();
    print_summary(&summary, &config, &out, &ctx);
    Ok(exit_status(summary.interrupted))
}

/// The run's settings, on stderr.
fn print_run_header(config: &PetsConfig, preset: &str, out: &Path) {
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
}

/// What an interrupted run saved, the trials' returns, the best and the learning curve's path.
fn print_summary(summary: &pets::PetsSummary, config: &PetsConfig, out: &Path, ctx: &GpuContext) {
    if let Some(at) = &summary.stopped_at {
        let saved = if out.join("model.safetensors").exists() {
            "the checkpoint of the last training, the config, metrics and results of the finished trials"
        } else {
            "the config (no training had finished)"
        };
        // A run stopped during its exploration has no consistent point to resume from.
        let next = if out.join("resume.json").exists() {
            "the same command with --resume continues from the last finished trial"
        } else {
            "no consistent point was reached (it comes after the exploration): start again with --overwrite"
        };
        println!("interrupted at {at}; saved in {}: {saved}; {next}", out.display());
    }
    let returns: Vec<String> = summary.trials.iter().map(|t| format!("{:.1}", t.total_return)).collect();
    println!("trial returns: {}", if returns.is_empty() { "none finished".to_string() } else { returns.join(" ") });
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

/// `lookahead eval`: the returns of episodes played by the run's checkpoint, one line per
/// episode as it ends. Ctrl-C stops before the next step: the finished episodes are reported
/// and the status is 130.
pub fn cmd_eval(gpu: &GpuArgs, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let ctx = gpu.open()?;
    let stop = install_interrupt_handler("the current step", "")?;
    let n = args.episodes;
    let mut on_episode = |ep: usize, r: f64| eprintln!("episode {}/{n}: return {r:.1}", ep + 1);
    let opts = pets::EvalOptions { interrupt: Some(stop), on_episode: Some(&mut on_episode) };
    let kind = lookahead::run::read_marker(&args.run).map(|m| m.kind);
    let eval = match kind.as_deref() {
        Some("sac") => lookahead::sac::evaluate(&args.run, n, args.seed, opts)?,
        Some("mbpo") => lookahead::mbpo::evaluate(&args.run, n, args.seed, opts)?,
        _ => pets::evaluate(&ctx, &args.run, n, args.seed, opts)?,
    };
    let returns = &eval.returns;
    let mean = returns.iter().sum::<f64>() / returns.len().max(1) as f64;
    // At most the first 20 returns are listed (an interrupted replay may have finished millions).
    let mut list: Vec<String> = returns.iter().take(20).map(|r| format!("{r:.1}")).collect();
    if returns.len() > 20 {
        list.push(format!("… ({} more)", returns.len() - 20));
    }
    let run = args.run.display();
    match (eval.interrupted, returns.is_empty()) {
        (true, true) => println!("eval {run}: interrupted before the first episode ended"),
        (true, false) => println!(
            "eval {run}: interrupted after {} of {n} episodes: returns {} (mean {mean:.1})",
            returns.len(),
            list.join(" ")
        ),
        (false, _) => println!("eval {run}: returns {} (mean {mean:.1})", list.join(" ")),
    }
    Ok(exit_status(eval.interrupted))
}
