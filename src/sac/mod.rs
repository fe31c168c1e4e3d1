//! Soft Actor-Critic: the f64 reference of one whole update that the GPU update is checked
//! against ([`reference`]), and the configuration of a run ([`config`]).

pub mod config;
pub mod reference;

#[cfg(test)]
mod tests;

pub use config::{AlgorithmConfig, SacConfig, SacLoopConfig, SacPreset, TaskOrigin, MAX_UPDATES_PER_STEP};
pub use reference::HiddenActivation;
