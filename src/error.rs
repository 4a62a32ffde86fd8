//! Typed errors of the codec. ADIOS2 errors have their own type in `adios::Error`.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    #[error("unknown parameter '{key}'; accepted: {accepted}")]
    UnknownParameter { key: String, accepted: &'static str },
    #[error("parameter '{key}' has bad value '{value}': {reason}")]
    BadParameter {
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
    #[error("not a residuum stream (bad magic)")]
    BadMagic,
    #[error("stream format version {0} is newer than this library ({1}) understands")]
    UnsupportedVersion(u16, u16),
    #[error("truncated stream: {0}")]
    Truncated(String),
    #[error("corrupted stream: {0}")]
    Corrupt(String),
    #[error("checksum mismatch in {0}")]
    Checksum(String),
    #[error("{0}")]
    NoPlugin(String),
    /// A base model file is missing or unusable, or a stream's model does not match.
    #[error("base model: {0}")]
    Model(String),
    /// ADIOS2 or MPI failed (the C API's step writer).
    #[error("{0}")]
    Io(String),
    /// Beyond a limit: a decode limit, memory that cannot be had, a thread count.
    #[error("limit: {0}")]
    Limit(String),
    #[error("internal error: {0}")]
    Internal(String),
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
