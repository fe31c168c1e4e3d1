//! `mpc`: one episode of CEM model-predictive control with the environment's true dynamics.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use lookahead::env::EnvKind;
use lookahead::mpc;
use lookahead::planner::PlannerConfig;

use crate::args::{GpuArgs, MpcArgs};

/// `lookahead mpc`: plays one episode with a progress bar, then its return and the median plan
/// time; with `--trajectory`, the trajectory as CSV.
pub fn cmd_mpc(gpu: &GpuArgs, args: MpcArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.trajectory {
        lookahead::util::check_writable(path)?;
    }
    let kind: EnvKind = args.env.parse()?;
    let cfg = mpc_config(kind, args.config, &args.set)?;
    let ctx = gpu.open()?;
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
    let ep = mpc::run_episode(&ctx, kind, cfg, args.seed, |row| {
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
    if let Some(path) = args.trajectory {
        mpc::write_trajectory_csv(&path, &ep.trajectory)?;
        eprintln!("trajectory written to {}", path.display());
    }
    Ok(())
}

/// The planner settings of `mpc`: the environment's default (or `--config`), `--set` keys
/// over it; refuses the settings of a learned ensemble and a seed other than `--seed`.
/// The planner `lookahead mpc` uses for `env` without a config: PETS's reference CEM for the
/// cartpole, the swing-up's for the pendulum.
pub fn default_planner(env: EnvKind) -> PlannerConfig {
    match env {
        EnvKind::Cartpole => PlannerConfig::pets_reference(),
        EnvKind::Pendulum => PlannerConfig::pendulum_mpc(),
    }
}

fn mpc_config(env: EnvKind, config: Option<PathBuf>, set: &[String]) -> anyhow::Result<PlannerConfig> {
    let mut keys: Vec<String> = Vec::new();
    let cfg = match config {
        Some(path) => {
            let text =
                lookahead::util::read_config_file(&path).with_context(|| format!("reading {}", path.display()))?;
            if let Ok(table) = text.parse::<toml::Table>() {
                keys.extend(table.keys().cloned());
            }
            PlannerConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => default_planner(env),
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
