//! The engine's charts for Python: a sweep's curves, each configuration's mean over its seeds
//! with the spread shaded.

use std::path::PathBuf;

use pyo3::prelude::*;

use lookahead::run::curve::Band;

use crate::errors::OrPy;

/// Writes `series` (each a label and its (x, mean, spread) points) to the SVG file `path` as
/// one chart titled `title`, the axes named `x_desc` and `y_desc`: each series' mean as a line
/// with markers, the band mean ± spread shaded where the spread is not zero.
#[pyfunction]
pub fn plot_bands(
    py: Python<'_>,
    path: PathBuf,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: Vec<Band>,
) -> PyResult<()> {
    py.detach(|| lookahead::run::curve::plot_bands(&path, title, x_desc, y_desc, &series)).py()
}
