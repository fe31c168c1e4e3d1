//! Model-based policy optimisation (Janner et al. 2019, "When to trust your model"): the
//! ensemble trained on real transitions, short branched rollouts of the SAC policy through it
//! from states of the replay buffer, and SAC trained on those model transitions.

pub mod config;
pub mod reference;
pub mod rollout;

pub use config::{MbpoConfig, MbpoLoopConfig, MbpoPreset, RolloutConfig, MAX_ROLLOUT_LENGTH};
