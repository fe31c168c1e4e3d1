//! The GPU: the adapters wgpu sees and an open device ([`Context`]).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use lookahead::gpu::{self, AdapterOptions, AdapterSummary, Backend, GpuContext, ShaderChecks};

use crate::errors::OrPy;

/// An adapter as a dict with name, backend, driver and device_type.
fn adapter_dict<'py>(py: Python<'py>, a: &AdapterSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &a.name)?;
    d.set_item("backend", &a.backend)?;
    d.set_item("driver", &a.driver)?;
    d.set_item("device_type", &a.device_type)?;
    Ok(d)
}

/// The adapters wgpu sees.
///
/// Parameters
/// ----------
/// backend : str, optional
///     Only this backend's: "vulkan", "metal", "dx12" or "gl".
///
/// Returns
/// -------
/// list of dict
///     name, backend, driver and device_type of each adapter.
#[pyfunction]
#[pyo3(signature = (backend=None))]
pub fn adapters<'py>(py: Python<'py>, backend: Option<&str>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let backend = backend.map(|b| b.parse::<Backend>()).transpose().py()?;
    let list = py.detach(|| gpu::list_adapters(backend));
    list.iter().map(|a| adapter_dict(py, a)).collect()
}

/// An open GPU device.
///
/// Parameters
/// ----------
/// adapter : str, optional
///     Use the adapter whose name contains this; the best adapter when left out.
/// backend : str, optional
///     Only this backend's adapters: "vulkan", "metal", "dx12" or "gl".
/// shader_checks : str
///     "policy": the crate's own kernels without bounds checks and loop bounding (custom
///     WGSL keeps every check); "full": every check on every module.
#[pyclass(module = "lookahead._lookahead", frozen)]
pub struct Context {
    /// The device, shared by everything made with it.
    pub ctx: GpuContext,
}

#[pymethods]
impl Context {
    #[new]
    #[pyo3(signature = (adapter=None, backend=None, shader_checks="policy"))]
    fn new(py: Python<'_>, adapter: Option<String>, backend: Option<&str>, shader_checks: &str) -> PyResult<Self> {
        let opts = AdapterOptions {
            name: adapter,
            backend: backend.map(|b| b.parse::<Backend>()).transpose().py()?,
            shader_checks: shader_checks.parse::<ShaderChecks>().py()?,
        };
        let ctx = py.detach(|| GpuContext::new(&opts)).py()?;
        Ok(Self { ctx })
    }

    /// The adapter in use.
    ///
    /// Returns
    /// -------
    /// dict
    ///     name, backend, driver and device_type.
    fn adapter<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        adapter_dict(py, self.ctx.adapter())
    }

    fn __repr__(&self) -> String {
        format!("Context({})", self.ctx.adapter())
    }
}
