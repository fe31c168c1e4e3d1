//! Learning curves, drawn as SVG with plotters: one run's (`plot_curve`) or several runs' on
//! one chart (`plot_curves`: every seed of a learner).

use std::path::Path;

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// Writes `points` as an SVG line with markers, titled `title`, the axes named `x_desc` and
/// `y_desc`.
pub fn plot_curve(path: &Path, title: &str, x_desc: &str, y_desc: &str, points: &[(f64, f64)]) -> Result<()> {
    plot_curves(path, title, x_desc, y_desc, &[(String::new(), points.to_vec())])
}

/// The range of `values` padded by 5 % (`floor` included when given), or `0..1` for none.
fn padded(values: impl Iterator<Item = f64>, floor: Option<f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = match floor {
        Some(f) => (lo.min(f), hi.max(f)),
        None => (lo, hi),
    };
    let pad = ((hi - lo) * 0.05).max(0.5);
    (lo - pad, hi + pad)
}

/// Writes every series (a label, empty for none, and its points) on one chart, each in its own
/// colour with markers and a legend when labelled.
pub fn plot_curves(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: String| Error::Plot { path: path.display().to_string(), reason: e };
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let x_range = padded(all().map(|p| p.0), None);
    let y_range = padded(all().map(|p| p.1), Some(0.0));
    let whole_x = all().all(|p| (p.0 - p.0.round()).abs() < 1e-9);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_labels(12)
            .x_label_formatter(&|x| {
                if whole_x && (x - x.round()).abs() > 1e-9 {
                    String::new()
                } else {
                    format!("{x:.0}")
                }
            })
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (k, (label, points)) in series.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let line = chart.draw_series(LineSeries::new(points.clone(), colour)).map_err(|e| err(e.to_string()))?;
            if !label.is_empty() {
                line.label(label.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            }
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        if series.iter().any(|(l, _)| !l.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, svg.as_bytes())
}
