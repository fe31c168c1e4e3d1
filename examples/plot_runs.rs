//! Several runs' learning curves on one chart (every seed of a learner), from their
//! `results.csv`: `cargo run --release --example plot_runs -- OUT.svg "TITLE" DIR...`. The x axis
//! is the first column (`env_step` for SAC, `env_step` for PETS) or a distillation's `labels`; the
//! y axis `eval_return` (SAC), `return` (PETS) or `policy_return` (a distillation). Each run is
//! labelled by its folder's name.

use std::path::{Path, PathBuf};

fn curve(dir: &Path) -> Result<Vec<(f64, f64)>, String> {
    let path = dir.join("results.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or(format!("{}: empty", path.display()))?.split(',').collect();
    let y = ["eval_return", "return", "policy_return"]
        .iter()
        .find_map(|name| header.iter().position(|h| h == name))
        .ok_or(format!("{}: no eval_return, return or policy_return column", path.display()))?;
    // A distillation's curve is over its labelled states.
    let x = header.iter().position(|h| *h == "labels").unwrap_or(0);
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            let num = |i: usize| cols.get(i).and_then(|v| v.parse::<f64>().ok());
            num(x).zip(num(y)).ok_or(format!("{}: a bad row: {l}", path.display()))
        })
        .collect()
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, title, dirs @ ..] = args.as_slice() else {
        return Err("usage: plot_runs OUT.svg TITLE DIR...".into());
    };
    if dirs.is_empty() {
        return Err("usage: plot_runs OUT.svg TITLE DIR...".into());
    }
    let mut series = Vec::new();
    for d in dirs {
        let dir = PathBuf::from(d);
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        series.push((name, curve(&dir)?));
    }
    let distilled = dirs.iter().all(|d| Path::new(d).join("policy.safetensors").is_file());
    let x_desc = if distilled { "labelled states" } else { "environment step" };
    lookahead::run::curve::plot_curves(Path::new(out), title, x_desc, "return", &series).map_err(|e| e.to_string())?;
    println!("{out}: {} runs", series.len());
    Ok(())
}
