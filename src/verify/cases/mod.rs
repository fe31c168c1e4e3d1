//! The cases of each family group, with the kernels and inputs they need; `verify::cases`
//! assembles them into the table in its order.

pub(super) mod coop16;
pub(super) mod env;
pub(super) mod mbpo;
pub(super) mod mlp;
pub(super) mod plan;
pub(super) mod rng;
pub(super) mod sac;
pub(super) mod train;
