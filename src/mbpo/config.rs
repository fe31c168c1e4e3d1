//! The configuration of an MBPO run.
