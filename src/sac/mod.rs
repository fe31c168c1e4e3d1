//! Soft Actor-Critic (Haarnoja et al. 2018, with the learned temperature of the second paper)
//! trained on the GPU: [`device`] holds the networks, the replay ring and the recording of N
//! updates and the next action into one submission.

pub mod device;
