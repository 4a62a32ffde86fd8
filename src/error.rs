//! Typed errors, by category (as image-png's): what the caller passed ([`ParameterError`]), what
//! a stream holds ([`FormatError`]), the base model, I/O (ADIOS2, MPI, the plugin: the cause is
//! kept, see [`IoError`]), a step decoded without the step it is predicted from
//! ([`ReferenceError`]), limits, and residuum's own bugs. The C ABI returns one status code per
//! category. The ADIOS2 wrapper's own errors are `adios::AdiosError`.

use std::sync::Arc;
use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error, Clone)]
pub enum Error {
    /// Bad input from the caller: a parameter, a shape, an element type, a buffer, a pointer.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    /// A stream that is not a valid residuum stream, or one newer than this library.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A base model or NGLR network is missing or unusable, its training failed, or a stream's
    /// does not match (the message says which of the two).
    #[error("{0}")]
    Model(String),
    /// ADIOS2, MPI or the plugin failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A step predicted from the previous one, decoded without it (or with another).
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Beyond a limit: a decode limit, memory that cannot be had.
    #[error("limit: {0}")]
    Limit(String),
    /// A bug in residuum.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What is wrong with the caller's input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ParameterError {
    #[error("unknown parameter '{key}'; accepted: {accepted}")]
    Unknown { key: String, accepted: &'static str },
    #[error("parameter '{key}' has bad value '{value}': {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("unsupported element type {0}: residuum compresses float and double only")]
    UnsupportedType(String),
    #[error("{0} is a null pointer")]
    NullPointer(&'static str),
    #[error("bad shape: {0}")]
    BadShape(String),
    #[error("input has {got} bytes but the shape needs {expected}")]
    InputSize { expected: usize, got: usize },
    #[error("output buffer has {got} bytes but {needed} are needed")]
    OutputTooSmall { needed: usize, got: usize },
}

/// What is wrong with a stream: its kind, and where or what.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{}", match .kind {
    FormatErrorKind::BadMagic => "not a residuum stream (bad magic)".to_string(),
    FormatErrorKind::UnsupportedVersion => format!("stream format version {}", .detail),
    FormatErrorKind::Truncated => format!("truncated stream: {}", .detail),
    FormatErrorKind::Corrupt => format!("corrupted stream: {}", .detail),
    FormatErrorKind::Checksum => format!("checksum mismatch in {}", .detail),
})]
pub struct FormatError {
    pub kind: FormatErrorKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatErrorKind {
    /// Not a residuum stream.
    BadMagic,
    /// A format version newer than this library.
    UnsupportedVersion,
    /// The stream ends before what it announces.
    Truncated,
    /// A field holds what no encoder writes.
    Corrupt,
    /// Bytes that do not match their checksum.
    Checksum,
}

/// A stream predicted from the previous step of its chain (temporal prediction) that cannot
/// be decoded: that step's reconstruction is missing or another. Decoding the chain's steps in
/// order from `keyframe` provides it.
#[derive(Debug, Error, Clone, PartialEq)]
#[error(
    "step {step} of chain {chain:016x} is predicted from step {}, {reason}; decode the steps \
     in order from step {keyframe}, its keyframe",
    .step.saturating_sub(1)
)]
pub struct ReferenceError {
    pub chain: u64,
    pub step: u64,
    pub keyframe: u64,
    pub reason: String,
}

/// An I/O failure: what was being done, and the cause where one was reported (ADIOS2's error
/// as its own type, reachable through [`std::error::Error::source`] and [`IoError::cause`]).
#[derive(Debug, Error, Clone)]
#[error("{context}{}", .cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
pub struct IoError {
    kind: IoErrorKind,
    context: String,
    #[source]
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoErrorKind {
    /// The in-situ calls need the residuum ADIOS2 plugin loaded in the process (it is not).
    NoPlugin,
    /// The loaded residuum plugin comes from another release than this library (its hook
    /// table has another version): its ranges, reports and chains cannot be reached.
    PluginMismatch,
    /// ADIOS2 or MPI.
    Adios,
}

impl IoError {
    /// A failure of `kind` described by `context` alone.
    pub fn new(kind: IoErrorKind, context: impl Into<String>) -> IoError {
        IoError {
            kind,
            context: context.into(),
            cause: None,
        }
    }

    /// A failure of `kind` while doing `context`, caused by `cause`.
    pub fn caused(
        kind: IoErrorKind,
        context: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> IoError {
        IoError {
            kind,
            context: context.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    pub fn kind(&self) -> IoErrorKind {
        self.kind
    }

    /// The cause, e.g. `cause()?.downcast_ref::<residuum::adios::AdiosError>()`.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl Error {
    pub(crate) fn format(kind: FormatErrorKind, detail: impl Into<String>) -> Error {
        Error::Format(FormatError {
            kind,
            detail: detail.into(),
        })
    }

    /// A field of a stream that no encoder writes.
    pub(crate) fn corrupt(detail: impl Into<String>) -> Error {
        Error::format(FormatErrorKind::Corrupt, detail)
    }

    /// A stream that ends early.
    pub(crate) fn truncated(detail: impl Into<String>) -> Error {
        Error::format(FormatErrorKind::Truncated, detail)
    }

    /// The stream's kind of failure, if it is a format error.
    pub fn format_kind(&self) -> Option<FormatErrorKind> {
        match self {
            Error::Format(f) => Some(f.kind),
            _ => None,
        }
    }
}

/// A vector of `n` zeros, allocated fallibly: a size taken from a stream must give an error
/// when the memory cannot be had, not abort the process. The memory is asked for first
/// (`try_reserve`), then taken zeroed, which the OS maps lazily: the pages a decoder that stops
/// early never reaches cost nothing.
pub(crate) fn try_vec<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    Vec::<T>::new().try_reserve_exact(n).map_err(|_| {
        Error::Limit(format!(
            "cannot allocate {} bytes for {what}",
            n.saturating_mul(std::mem::size_of::<T>())
        ))
    })?;
    Ok(vec![T::default(); n])
}
