//! The learning curve of a run, drawn as SVG with plotters.

use std::path::Path;

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// Writes `points` (x from 1, one per finished unit: a trial, an evaluation) as an SVG line
/// with markers, titled `title`, the axes named `x_desc` and `y_desc`.
pub fn plot_curve(path: &Path, title: &str, x_desc: &str, y_desc: &str, points: &[(f64, f64)]) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: String| Error::Plot { path: path.display().to_string(), reason: e };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let n = points.len().max(1);
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        let (lo, hi) = if lo.is_finite() { (lo.min(0.0), hi.max(lo + 1.0)) } else { (0.0, 1.0) };
        let pad = (hi - lo) * 0.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5f64..n as f64 + 0.5, (lo - pad)..(hi + pad))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_labels(n.min(12))
            .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-9 { format!("{x:.0}") } else { String::new() })
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart.draw_series(LineSeries::new(points.to_vec(), &BLUE)).map_err(|e| err(e.to_string()))?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, BLUE.filled()))).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, svg.as_bytes())
}
