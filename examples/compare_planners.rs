//! Compares the planner kinds with known dynamics: mean episode return over seeds 0–9 against
//! model steps per plan, on cartpole (horizon 15) and the pendulum swing-up (horizon 30). Each
//! kind gets the same candidate budget per plan (candidates summed over iterations): CEM and
//! MPPI 5 iterations of budget/5, random shooting one iteration of the whole budget, iCEM
//! 5 iterations from the largest population whose decayed populations (and kept elites) fit.
//! Writes a Markdown table to stdout, and `planners.csv` and `planners.svg` into the folder given
//! (default `docs/`).
//!
//! `cargo run --release --example compare_planners [-- OUT_DIR]`

use std::fmt::Write as _;
use std::path::PathBuf;

use lookahead::env::EnvKind;
use lookahead::gpu::{AdapterOptions, GpuContext};
use lookahead::mpc::run_episode;
use lookahead::planner::{PlannerConfig, PlannerKind};

/// Candidates per plan: 1/5, 1/2 and all of the CEM reference's 350 × 5.
const BUDGETS: [usize; 3] = [350, 875, 1750];
const SEEDS: u64 = 10;

fn config(kind: PlannerKind, env: EnvKind, budget: usize) -> PlannerConfig {
    let horizon = if env == EnvKind::Pendulum { 30 } else { 15 };
    let base = PlannerConfig { kind, horizon, particles: 1, iterations: 5, ..PlannerConfig::default() };
    match kind {
        PlannerKind::RandomShooting => PlannerConfig { population: budget, ..base },
        PlannerKind::Icem => {
            // The largest population whose plan fits the budget.
            let cost = |population: usize| PlannerConfig { population, ..base.clone() }.candidates_per_plan();
            let mut pop = budget / 5;
            while cost(pop + 1) <= budget {
                pop += 1;
            }
            while pop > 10 && cost(pop) > budget {
                pop -= 1;
            }
            PlannerConfig { population: pop, ..base }
        }
        _ => PlannerConfig { population: budget / 5, ..base },
    }
}

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs".into()));
    std::fs::create_dir_all(&out)?;
    let ctx = GpuContext::new(&AdapterOptions::default())?;
    eprintln!("adapter: {}", ctx.adapter());
    let mut csv = String::from("env,kind,population,iterations,model_steps_per_plan,mean_return,min_return\n");
    let mut rows = Vec::new();
    for env in EnvKind::ALL {
        for kind in PlannerKind::ALL {
            for budget in BUDGETS {
                let cfg = config(kind, env, budget);
                let steps = cfg.candidates_per_plan() * cfg.horizon;
                let mut returns = Vec::new();
                for seed in 0..SEEDS {
                    returns.push(run_episode(&ctx, env, cfg.clone(), seed, |_| {})?.total_return);
                }
                let mean = returns.iter().sum::<f64>() / returns.len() as f64;
                let min = returns.iter().copied().fold(f64::INFINITY, f64::min);
                eprintln!("{} {} population {}: mean {mean:.1}, min {min:.1}", env.name(), kind.name(), cfg.population);
                writeln!(
                    csv,
                    "{},{},{},{},{steps},{mean:.2},{min:.2}",
                    env.name(),
                    kind.name(),
                    cfg.population,
                    cfg.effective_iterations()
                )?;
                rows.push((env, kind, cfg, steps, mean, min));
            }
        }
    }
    println!("| task | kind | population × iterations | model steps per plan | mean return (seeds 0–9) | worst seed |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (env, kind, cfg, steps, mean, min) in &rows {
        println!(
            "| {} | {} | {} × {} | {steps} | {mean:.1} | {min:.1} |",
            env.name(),
            kind.name(),
            cfg.population,
            cfg.effective_iterations()
        );
    }
    std::fs::write(out.join("planners.csv"), csv)?;
    plot(&out.join("planners.svg"), &rows)?;
    eprintln!("wrote {} and {}", out.join("planners.csv").display(), out.join("planners.svg").display());
    Ok(())
}

type Row = (EnvKind, PlannerKind, PlannerConfig, usize, f64, f64);

fn plot(path: &std::path::Path, rows: &[Row]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (panel, env) in panels.iter().zip(EnvKind::ALL) {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.0 == env).collect();
        let xmax = mine.iter().map(|r| r.3).max().unwrap_or(1) as f64 * 1.05;
        let (ylo, yhi) = mine.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(r.4), hi.max(r.4)));
        let pad = (yhi - ylo).abs().max(1.0) * 0.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{} (known model, seeds 0-9)", env.name()), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..xmax, (ylo - pad)..(yhi + pad))?;
        chart.configure_mesh().x_desc("model steps per plan").y_desc("mean return").draw()?;
        for (kind, color) in PlannerKind::ALL.iter().zip(colors) {
            let pts: Vec<(f64, f64)> = mine.iter().filter(|r| r.1 == *kind).map(|r| (r.3 as f64, r.4)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(kind.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
