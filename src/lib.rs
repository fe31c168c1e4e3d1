//! # lookahead
//!
//! Model-based reinforcement learning whose numerical work runs in WGSL compute shaders
//! through wgpu (Vulkan, Metal, DX12; lavapipe on machines without a GPU). The planner
//! implements PETS's CEM model-predictive control: thousands of candidate action sequences ×
//! particles are rolled out through a probabilistic ensemble (or known dynamics) on the GPU,
//! one command buffer per plan.
//!
//! ```
//! use lookahead::env::EnvKind;
//! use lookahead::gpu::{AdapterOptions, GpuContext};
//! use lookahead::planner::{Budget, PlannerConfig, Dynamics, Planner};
//! use std::time::Duration;
//! # fn main() -> lookahead::Result<()> {
//! let ctx = GpuContext::new(&AdapterOptions::default())?;
//! let cfg = PlannerConfig { population: 100, ..PlannerConfig::pets_reference() };
//! let mut planner = Planner::new(&ctx, EnvKind::Cartpole.task(), Dynamics::Analytic, cfg)?;
//! let obs = [0.0, 0.0, 0.05, 0.0]; // pole leaning right
//! let plan = planner.plan(&obs)?;
//! assert!(plan.action[0] > 0.0, "push the cart under the pole");
//! // Anytime planning: the best plan that fits 50 ms.
//! let out = planner.plan_with(&obs, Budget::Time(Duration::from_millis(50)))?;
//! println!("{} iterations, status {:?}", out.iterations_done, out.status);
//! # Ok(()) }
//! ```
//!
//! Learning the model: [`train::Trainer`] fits a [`model::Ensemble`] to a
//! [`train::ReplayBuffer`] on the GPU; [`pets::run`] runs the whole PETS loop.
//!
//! Layers depend downward only (docs/ARCHITECTURE.md; `tests/layering.rs` fails on an upward
//! edge): `error` → `util` → `gpu` → `kernels` → {`env`, `model`} → {`planner`, `train`} →
//! {`pets`, `mpc`, `bench`} → the `lookahead` binary.

#![warn(missing_docs)]

pub mod bench;
pub mod distill;
pub mod env;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod mbpo;
pub mod model;
pub mod mpc;
pub mod pets;
pub mod planner;
pub mod run;
pub mod sac;
pub mod train;
pub mod util;
pub mod verify;

pub use error::{Error, Result};
pub use wgpu;
