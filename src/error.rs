//! The crate's error type. Every fallible library call returns [`Result`]; messages name the
//! offending quantity and say what to change.

use std::time::Duration;

/// Everything that can go wrong in lookahead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter (or none matching the requested name/backend) was found.
    #[error("no GPU adapter found{detail}. On Linux without a GPU install the lavapipe software Vulkan driver: `apt-get update && apt-get install -y mesa-vulkan-drivers`")]
    NoAdapter {
        /// What was asked for and what exists.
        detail: String,
    },
    /// The device could not be created.
    #[error("could not open the GPU device: {0}")]
    RequestDevice(String),
    /// A size or count exceeds a device limit.
    #[error("{what}: {requested} exceeds {limit} = {max}; {hint}")]
    LimitExceeded {
        /// The quantity, with how it was computed.
        what: String,
        /// The size asked for.
        requested: u64,
        /// Name of the device limit.
        limit: &'static str,
        /// The device's value.
        max: u64,
        /// Which setting to lower.
        hint: &'static str,
    },
    /// A configuration value is invalid. `field` is the key path.
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig {
        /// Key path, e.g. `cem.population`.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Several configuration values are invalid (all are listed).
    #[error("invalid config:\n{}", .0.iter().map(|e| format!("  - {}", e.to_string().trim_start_matches("invalid config: "))).collect::<Vec<_>>().join("\n"))]
    InvalidConfigs(Vec<Error>),
    /// An input (observation, weights, ...) has the wrong shape or a non-finite value.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A shader failed to compile or a pipeline failed validation.
    #[error("shader {shader}: {message}")]
    ShaderCompile {
        /// Shader family name.
        shader: String,
        /// The compiler's message.
        message: String,
    },
    /// The device reported a validation or internal error.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The device ran out of memory.
    #[error("GPU out of memory while creating {what}")]
    OutOfMemory {
        /// What was being created.
        what: String,
    },
    /// The device was lost.
    #[error("GPU device lost: {reason}")]
    DeviceLost {
        /// The driver's reason.
        reason: String,
    },
    /// Waiting for the GPU took longer than allowed.
    #[error("GPU did not finish within {waited:?}")]
    Timeout {
        /// How long we waited.
        waited: Duration,
    },
    /// The asynchronous planner's thread has stopped.
    #[error("the planner thread stopped: {0}")]
    PlannerStopped(String),
    /// Training could not continue.
    #[error("training failed: {0}")]
    Training(String),
    /// A weights file could not be read or is malformed.
    #[error("weights file {path}: {reason}")]
    Weights {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig { field: field.into(), reason: reason.into() }
    }

    /// Every problem found by a `validate()`: `Ok` when there is none, the error itself when
    /// there is one, [`Error::InvalidConfigs`] listing all of them otherwise.
    pub fn collect(mut errs: Vec<Error>) -> Result<()> {
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(Error::InvalidConfigs(errs)),
        }
    }
}
