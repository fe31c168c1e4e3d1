//! numpy arrays in and out. Inputs are float32 (the Python package converts any array-like with
//! `np.ascontiguousarray(x, dtype=np.float32)` after checking its shape and naming the argument);
//! their shapes are checked again here and their values copied out, so that the GIL can be
//! released while the engine works on them. Outputs are new float32 arrays.

use numpy::ndarray::{Dimension, IntoDimension};
use numpy::{Element, PyArray, PyArray1, PyArrayMethods, PyReadonlyArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::InputError;

/// `shape` as Python writes a tuple, `None` standing for any length: `(n, 3)`, `(3,)`.
fn tuple(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.map_or("n".to_string(), |d| d.to_string())).collect();
    format!("({}{})", dims.join(", "), if dims.len() == 1 { "," } else { "" })
}

/// The values of `a` (in index order, whatever its memory layout) once its shape matches `want`
/// (`None`: any length), or an InputError naming `what`.
pub fn values<T: Element + Copy, D: Dimension>(
    what: &str,
    a: &PyReadonlyArray<'_, T, D>,
    want: &[Option<usize>],
) -> PyResult<Vec<T>> {
    let shape = a.shape();
    let fits = shape.len() == want.len() && shape.iter().zip(want).all(|(s, w)| w.is_none_or(|w| w == *s));
    if !fits {
        let got: Vec<Option<usize>> = shape.iter().map(|&s| Some(s)).collect();
        return Err(InputError::new_err(format!(
            "invalid input: {what}: shape {}; expected {}",
            tuple(&got),
            tuple(want)
        )));
    }
    Ok(a.as_array().iter().copied().collect())
}

/// `v` as a float32 array of shape `dims` (whose product is `v.len()`).
pub fn shaped<'py, I: IntoDimension>(
    py: Python<'py>,
    v: Vec<f32>,
    dims: I,
) -> PyResult<Bound<'py, PyArray<f32, I::Dim>>> {
    PyArray1::from_vec(py, v).reshape(dims)
}
