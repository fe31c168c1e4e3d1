//! Soft Actor-Critic: the f64 reference of one whole update that the GPU update is checked
//! against ([`reference`]).

pub mod reference;

#[cfg(test)]
mod tests;

pub use reference::HiddenActivation;
