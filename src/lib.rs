//! # lookahead
//!
//! Model-based reinforcement learning whose numerical work runs in WGSL compute shaders
//! through wgpu (Vulkan, Metal, DX12; lavapipe on machines without a GPU). The planner
//! implements PETS's CEM model-predictive control: thousands of candidate action sequences ×
//! particles are rolled out through a probabilistic ensemble (or known dynamics) on the GPU,
//! one command buffer per plan.
//!
//! ```no_run
//! use lookahead::{env::EnvKind, gpu::{AdapterOptions, GpuContext}, planner::{CemConfig, Dynamics, Planner}};
//! # fn main() -> lookahead::Result<()> {
//! let ctx = GpuContext::new(&AdapterOptions::default())?;
//! let mut planner = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Analytic, CemConfig::pets_reference())?;
//! let plan = planner.plan(&[0.0, 0.0, 0.02, 0.0])?;
//! println!("push with {:?}, predicted return {}", plan.action, plan.predicted_return);
//! # Ok(()) }
//! ```
//!
//! Layers depend downward: `planner` → `model` → `kernels` → `gpu`; `env` holds the
//! environments and their WGSL twins.

#![warn(missing_docs)]

pub mod bench;
pub mod env;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod model;
pub mod mpc;
pub mod pets;
pub mod planner;
pub mod train;

pub use error::{Error, Result};
pub use wgpu;
