//! `mbpo`: an MBPO run on a built-in environment, with a progress bar, Ctrl-C and the run
//! folder; `eval` of an MBPO run is in `pets.rs`'s dispatch.

use std::path::PathBuf;

use lookahead::env::EnvKind;
use lookahead::mbpo::{self, MbpoConfig, MbpoPreset};
use lookahead::sac::{self, TaskOrigin};

use crate::args::{GpuArgs, PolicyArgs};

/// The MBPO config of `args`: the preset for the environment, the file over it, the `--set`
/// keys over both.
fn resolve(args: &PolicyArgs) -> anyhow::Result<MbpoConfig> {
    let preset: MbpoPreset = args.preset.parse()?;
    let text = crate::config::read_config(args.config.as_deref())?;
    let sets = args.sets();
    let env = crate::config::env_of(args.env.as_deref(), text.as_deref(), &sets, EnvKind::Cartpole)?;
    let base = MbpoConfig::preset(env, TaskOrigin::BuiltIn, preset);
    let mut cfg = MbpoConfig::resolve(base, text.as_deref(), &sets)?;
    if let Some(s) = args.run.seed {
        cfg.seed = s;
    }
    Ok(cfg)
}

/// `lookahead mbpo`: random steps, then the model retrained and rolled out every
/// `freq_train_model` steps and SAC's updates on its transitions every step, evaluations of the
/// deterministic policy, into the run directory; then the evaluations' returns.
pub fn cmd_mbpo(gpu: &GpuArgs, args: PolicyArgs) -> anyhow::Result<bool> {
    let cfg = resolve(&args)?;
    let out = args
        .run
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/mbpo-{}-{}-seed{}", cfg.env.name(), args.preset, cfg.seed)));
    let ctx = gpu.open()?;
    let r = &cfg.rollout;
    eprintln!(
        "mbpo {} ({}): ensemble {} × {:?}, {} rollouts every {} steps (length {:?}), {} SAC update(s) per step, {} \
         steps ({} random); run directory {}",
        cfg.env.name(),
        args.preset,
        cfg.model.members,
        cfg.model.hidden,
        cfg.rollouts_per_batch(),
        r.freq_train_model,
        &r.rollout_schedule[2..],
        cfg.sac.updates_per_step,
        cfg.schedule.total_steps,
        cfg.schedule.initial_exploration_steps,
        out.display()
    );
    let stop = crate::interrupt::install_interrupt_handler(
        "the current step (the run resumes from its last evaluation)",
        "; the last evaluation's point remains",
    )?;
    let sac_cfg = cfg.sac_config();
    let mut bar = sac::ProgressDisplay::new(&sac_cfg);
    let mut progress = |p: &sac::Progress| bar.update(p);
    let mut env = cfg.env.make();
    let opts = sac::RunOptions {
        out_dir: Some(out.clone()),
        interrupt: Some(stop),
        progress: Some(&mut progress),
        overwrite: args.run.overwrite,
        resume: args.run.resume,
    };
    let summary = mbpo::run(&ctx, &cfg, env.as_mut(), &cfg.env.task(), opts)?;
    bar.finish();
    crate::sac::report(cfg.env.name(), &out, &summary, &ctx.adapter().name);
    Ok(summary.interrupted)
}
