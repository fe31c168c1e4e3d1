//! `pets` (a whole PETS run, interruptible with Ctrl-C) and `eval` (replaying its checkpoint).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use lookahead::gpu::GpuContext;
use lookahead::pets::{self, PetsConfig};

use crate::args::{EvalArgs, GpuArgs, PetsArgs};

/// `lookahead pets`: explore, then plan over a learned ensemble, act and retrain, trial after
/// trial, into the run directory; then the trials' returns.
pub fn cmd_pets(gpu: &GpuArgs, args: PetsArgs) -> anyhow::Result<()> {
    let (mut config, preset) = args.cfg.resolve()?;
    if let Some(s) = args.seed {
        config.seed = s;
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("runs/pets-{}-{preset}-seed{}", config.env.name(), config.seed)));
    let ctx = gpu.open()?;
    print_run_header(&config, &preset, &out);
    let stop = install_interrupt_handler()?;
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
            overwrite: args.overwrite,
            resume: args.resume,
        },
    )?;
    bar.finish();
    print_summary(&summary, &config, &out, &ctx);
    Ok(())
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

/// The flag that a first Ctrl-C raises (the run stops at its next consistent point); a second
/// Ctrl-C ends the process at once with status 130.
fn install_interrupt_handler() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: leave now. Every file was written atomically or appended
            // line by line, so the last complete checkpoint and metrics remain.
            eprintln!("\nsecond interrupt: exiting now; the last complete checkpoint remains");
            exit_at_once(130);
        }
        eprintln!("\ninterrupt: finishing the current step or minibatch submission (Ctrl-C again to exit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
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

/// `lookahead eval`: the returns of episodes played by the run's checkpoint.
pub fn cmd_eval(gpu: &GpuArgs, args: EvalArgs) -> anyhow::Result<()> {
    let ctx = gpu.open()?;
    let returns = pets::evaluate(&ctx, &args.run, args.episodes, args.seed)?;
    let mean = returns.iter().sum::<f64>() / returns.len().max(1) as f64;
    let list: Vec<String> = returns.iter().map(|r| format!("{r:.1}")).collect();
    println!("eval {}: returns {} (mean {mean:.1})", args.run.display(), list.join(" "));
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
