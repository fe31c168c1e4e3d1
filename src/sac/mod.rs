//! Soft Actor-Critic (Haarnoja et al. 2018, with the learned temperature of the second paper):
//! the f64 reference of one whole update that the GPU update is checked against
//! ([`reference`]), the configuration of a run ([`config`]), and the GPU side ([`device`]: the
//! networks, the replay ring and the recording of N updates and the next action into one
//! submission).

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod policy;
pub mod reference;

#[cfg(test)]
mod tests;

pub use config::{AlgorithmConfig, SacConfig, SacLoopConfig, SacPreset, TaskOrigin, MAX_UPDATES_PER_STEP};
pub use checkpoint::SacCheckpoint;
pub use policy::Policy;
pub use reference::HiddenActivation;
