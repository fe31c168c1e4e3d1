//! `sac`: a Soft Actor-Critic run on a built-in environment, with a progress bar, Ctrl-C and
//! the run folder; `eval` of a SAC run is in `pets.rs`'s dispatch.

use std::path::PathBuf;

use lookahead::env::EnvKind;
use lookahead::sac::{self, SacConfig, SacPreset, TaskOrigin};

use crate::args::{GpuArgs, PolicyArgs};

impl PolicyArgs {
    /// The SAC config of these arguments: the preset for the environment, the file over it,
    /// the `--set` keys over both.
    pub fn resolve(&self) -> anyhow::Result<SacConfig> {
        let preset: SacPreset = self.preset.parse()?;
        let text = crate::config::read_config(self.config.as_deref())?;
        let sets = self.sets();
        let env = crate::config::env_of(self.env.as_deref(), text.as_deref(), &sets, EnvKind::Pendulum)?;
        let mut cfg = SacConfig::resolve(env, TaskOrigin::BuiltIn, preset, text.as_deref(), &sets)?;
        if let Some(s) = self.run.seed {
            cfg.seed = s;
        }
        Ok(cfg)
    }
}

/// `lookahead sac`: random steps, then SAC updates and the policy's actions, evaluations of the
/// deterministic policy, into the run directory; then the evaluations' returns.
pub fn cmd_sac(gpu: &GpuArgs, args: PolicyArgs) -> anyhow::Result<bool> {
    let cfg = args.resolve()?;
    let out = args
        .run
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/sac-{}-{}-seed{}", cfg.env.name(), args.preset, cfg.seed)));
    let ctx = gpu.open()?;
    let a = &cfg.sac;
    eprintln!(
        "sac {} ({}): actor {:?}, critics 2 × {:?}, batch {}, {} update(s) per step, {} steps ({} random); run directory {}",
        cfg.env.name(),
        args.preset,
        a.actor_hidden,
        a.critic_hidden,
        a.batch_size,
        a.updates_per_step,
        cfg.schedule.total_steps,
        cfg.schedule.random_steps,
        out.display()
    );
    let stop = crate::interrupt::install_interrupt_handler(
        "the current step (the run resumes from its last evaluation)",
        "; the last evaluation's point remains",
    )?;
    let mut bar = sac::ProgressDisplay::new(&cfg);
    let mut progress = |p: &sac::Progress| bar.update(p);
    let mut env = cfg.env.make();
    let opts = sac::RunOptions {
        out_dir: Some(out.clone()),
        interrupt: Some(stop),
        progress: Some(&mut progress),
        overwrite: args.run.overwrite,
        resume: args.run.resume,
    };
    let summary = sac::run(&ctx, &cfg, env.as_mut(), opts)?;
    bar.finish();
    report(cfg.env.name(), &out, &summary, &ctx.adapter().name);
    Ok(summary.interrupted)
}

/// Prints how a `sac` or `mbpo` run ended: where an interrupt stopped it and how to go on, the
/// evaluations' returns, the last one, and the learning curve's file.
pub fn report(env: &str, out: &std::path::Path, summary: &sac::SacSummary, adapter: &str) {
    if let Some(at) = &summary.stopped_at {
        let next = if out.join("resume.json").exists() {
            "the same command with --resume continues from the last evaluation"
        } else {
            "no consistent point was reached (the first comes with the first evaluation): start again with --overwrite"
        };
        println!("interrupted at {at}; {next}");
    }
    let returns: Vec<String> = summary.evals.iter().map(|e| format!("{:.1}", e.eval_return)).collect();
    println!("evaluation returns: {}", if returns.is_empty() { "none yet".to_string() } else { returns.join(" ") });
    if let Some(last) = summary.evals.last() {
        println!(
            "{env}: last evaluation {:.1} ± {:.1} at step {} (after {} training episodes) in {:.1} s on {adapter}{}",
            last.eval_return,
            last.eval_std,
            last.env_step,
            summary.episodes,
            summary.seconds,
            if summary.interrupted { " (interrupted)" } else { "" }
        );
    }
    println!("learning curve: {}", out.join("learning_curve.svg").display());
}
