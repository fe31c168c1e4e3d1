//! `lookahead._lookahead`: the engine's Python bindings. Arrays cross as numpy float32 arrays
//! (float64 into a SAC policy, and out of it on the CPU, which acts in f64) with their shapes
//! checked here (the Python package converts array-likes and names the
//! argument in its errors); settings cross as JSON objects checked key by key as `--set` is on
//! the command line; every engine error becomes a Python exception carrying the engine's own
//! message; the GIL is released while the GPU works.

#![warn(missing_docs)]

mod arrays;
mod config;
mod device;
mod distill;
mod ensemble;
mod env;
mod errors;
mod interrupt;
mod mbpo;
mod pets;
mod planner;
mod plot;
mod sac;
mod task;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _lookahead(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(device::adapters, m)?)?;
    m.add_function(wrap_pyfunction!(interrupt::request_stop, m)?)?;
    m.add_function(wrap_pyfunction!(pets::resolve_config, m)?)?;
    m.add_function(wrap_pyfunction!(pets::check_config_size, m)?)?;
    m.add_function(wrap_pyfunction!(pets::run_pets, m)?)?;
    m.add_function(wrap_pyfunction!(plot::plot_bands, m)?)?;
    m.add_function(wrap_pyfunction!(pets::evaluate_pets, m)?)?;
    m.add_function(wrap_pyfunction!(sac::resolve_sac_config, m)?)?;
    m.add_function(wrap_pyfunction!(sac::run_sac, m)?)?;
    m.add_function(wrap_pyfunction!(sac::evaluate_sac, m)?)?;
    m.add_function(wrap_pyfunction!(mbpo::resolve_mbpo_config, m)?)?;
    m.add_function(wrap_pyfunction!(distill::resolve_distill_config, m)?)?;
    m.add_function(wrap_pyfunction!(distill::run_distill, m)?)?;
    m.add_function(wrap_pyfunction!(mbpo::run_mbpo, m)?)?;
    m.add_function(wrap_pyfunction!(config::config_as_json, m)?)?;
    m.add_class::<device::Context>()?;
    m.add_class::<task::Task>()?;
    m.add_class::<ensemble::Ensemble>()?;
    m.add_class::<planner::Planner>()?;
    m.add_class::<train::Trainer>()?;
    m.add_class::<train::ReplayBuffer>()?;
    m.add_class::<sac::SacPolicy>()?;
    errors::register(m)?;
    m.add("MAX_OBS", lookahead::kernels::MAX_OBS)?;
    m.add("MAX_ACT", lookahead::kernels::MAX_ACT)?;
    m.add("MAX_CONFIG_BYTES", lookahead::util::MAX_CONFIG_BYTES)?;
    Ok(())
}
