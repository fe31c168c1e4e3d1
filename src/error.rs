//! The crate's error type. Every fallible library call returns [`Result`]; messages name the
//! offending quantity and say what to change.

use std::time::Duration;

/// Everything that can go wrong in lookahead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter (or none matching the requested name/backend) was found.
    #[error("no GPU adapter found{detail}. {hint}")]
    NoAdapter {
        /// What was asked for and what exists.
        detail: String,
        /// What to do: install lavapipe when there is no adapter at all, else change the choice.
        hint: &'static str,
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
    /// The asynchronous planner's thread has stopped (or could not start).
    #[error("the planner thread stopped: {0}")]
    PlannerStopped(PlannerStop),
    /// Training could not continue.
    #[error("training failed: {0}")]
    Training(String),
    /// A weights file could not be read or is malformed.
    #[error("weights file {path}: {reason}")]
    Weights {
        /// The file.
        path: String,
        /// What is wrong with it.
        #[source]
        reason: FormatError,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The file being drawn.
        path: String,
        /// The plotting library's message.
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

/// Why an asynchronous planner's thread is not planning.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlannerStop {
    /// A plan failed; the thread stopped with this error (shared by every later call).
    #[error("{0}")]
    Failed(std::sync::Arc<Error>),
    /// The planning code panicked.
    #[error("the planner thread panicked")]
    Panicked,
    /// The operating system refused to start the thread.
    #[error("could not start the planner thread: {0}")]
    Spawn(String),
    /// The thread's shared state was poisoned by a panic while it was held.
    #[error("the planner thread died holding its state")]
    Poisoned,
}

/// What is wrong with an ensemble file or a training checkpoint (safetensors with lookahead's
/// names and metadata, `model::format` and `train::checkpoint`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not a safetensors file (truncated, or another format).
    #[error("not a safetensors file: {0}")]
    NotSafetensors(String),
    /// A metadata key is missing.
    #[error("metadata key {0:?} is missing")]
    MissingMetadata(String),
    /// A metadata value does not parse.
    #[error("metadata {key}: {reason}")]
    BadMetadata {
        /// The key.
        key: String,
        /// Why its value is wrong.
        reason: String,
    },
    /// The `format` metadata names another kind of file.
    #[error(
        "format {}, expected one of {}",
        found.as_deref().map_or("missing".to_string(), |f| format!("\"{f}\"")),
        expected.join(", ")
    )]
    WrongFormat {
        /// The file's `format`, if any.
        found: Option<String>,
        /// The formats accepted here.
        expected: Vec<String>,
    },
    /// The manifest has a version this build does not read.
    #[error("manifest version {found}, this build reads {supported}")]
    ManifestVersion {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A training checkpoint of a manifest version whose checksum does not cover the manifest
    /// (version 1): its elites, settings, Adam steps and generator cannot be trusted.
    #[error(
        "manifest version {found} is not covered by the file's checksum, so its elites, settings and \
         optimiser state cannot be trusted to resume training; its tensors are checksummed: load its \
         weights as a model (Ensemble::load, lookahead.Ensemble.load) and start a new trainer from them"
    )]
    UncheckedManifest {
        /// The file's version.
        found: u32,
    },
    /// A required tensor is missing.
    #[error("tensor {0:?} is missing")]
    MissingTensor(String),
    /// A tensor is not F32.
    #[error("tensor {name:?} has dtype {dtype}, expected F32")]
    WrongDtype {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// Tensor shapes do not describe a valid ensemble.
    #[error("{0}")]
    Shape(String),
    /// The tensors do not hash to the manifest's checksum.
    #[error("checksum mismatch: the manifest says {expected}, the tensors hash to {actual}; the file was altered or damaged")]
    Checksum {
        /// The manifest's SHA-256.
        expected: String,
        /// The tensors' SHA-256.
        actual: String,
    },
    /// The contents contradict each other or the ensemble rules (non-finite values, elites
    /// outside the ensemble, manifest and tensors describing different models).
    #[error("{0}")]
    Inconsistent(String),
    /// Serialisation failed.
    #[error("cannot serialise: {0}")]
    Serialize(String),
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
