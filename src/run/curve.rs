//! Learning curves, drawn as SVG with plotters: one run's (`plot_curve`) or several runs' on
//! one chart (`plot_curves`: every seed of a learner), or each as a mean with its spread shaded
//! (`plot_bands`: the configurations of a sweep).

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
    let bands: Vec<Band> =
        series.iter().map(|(l, p)| (l.clone(), p.iter().map(|&(x, y)| (x, y, 0.0)).collect())).collect();
    plot_bands(path, title, x_desc, y_desc, &bands)
}

/// A labelled series of (x, mean, spread) points.
pub type Band = (String, Vec<(f64, f64, f64)>);

/// Writes every series on one chart as [`plot_curves`] does, with the area between mean − spread
/// and mean + spread shaded in the series' colour where the spread is not zero (the seeds of a
/// configuration: mean ± standard deviation).
pub fn plot_bands(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[Band]) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: String| Error::Plot { path: path.display().to_string(), reason: e };
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let x_range = padded(all().map(|p| p.0), None);
    let y_range = padded(all().flat_map(|p| [p.1 - p.2, p.1 + p.2]), Some(0.0));
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
            if points.iter().any(|p| p.2 != 0.0) {
                // The band's outline: the upper edge left to right, the lower edge back.
                let upper = points.iter().map(|p| (p.0, p.1 + p.2));
                let outline: Vec<(f64, f64)> = upper.chain(points.iter().rev().map(|p| (p.0, p.1 - p.2))).collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.2).filled())))
                    .map_err(|e| err(e.to_string()))?;
            }
            let means: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
            let line = chart.draw_series(LineSeries::new(means.clone(), colour)).map_err(|e| err(e.to_string()))?;
            if !label.is_empty() {
                line.label(label.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            }
            chart
                .draw_series(means.iter().map(|p| Circle::new(*p, 3, colour.filled())))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The shaded band is drawn exactly where a series has a spread, and the y range holds the
    /// band: catches a band drawn for a zero spread (every single-seed chart shaded), none drawn
    /// at all, and a range cut to the means.
    #[test]
    fn a_band_is_shaded_only_where_there_is_a_spread() {
        let dir = std::env::temp_dir().join(format!("lookahead-curve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bands.svg");
        let spread: Band = ("spread".into(), vec![(0.0, 10.0, 5.0), (1.0, 20.0, 40.0)]);
        let flat: Band = ("flat".into(), vec![(0.0, 1.0, 0.0), (1.0, 2.0, 0.0)]);
        plot_bands(&path, "t", "x", "y", &[spread.clone(), flat.clone()]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<polygon").count(), 1, "{svg}");
        // The upper edge reaches 60 (20 + 40): the y axis is labelled up to 60.
        let labels: Vec<f64> = svg.lines().filter_map(|l| l.trim().parse::<f64>().ok()).collect();
        assert!(labels.iter().any(|&v| v >= 60.0), "{labels:?}");
        plot_bands(&path, "t", "x", "y", &[flat]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().matches("<polygon").count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
