//! Errors of the ADIOS2 wrapper: every ADIOS2 error code becomes a variant.

use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum AdiosError {
    /// ADIOS2 reported bad input (adios2_error_invalid_argument).
    #[error("{call}: invalid argument (ADIOS2 printed the details on stderr)")]
    InvalidArgument { call: String },
    /// A system error, typically file I/O (adios2_error_system_error).
    #[error("{call}: system error (ADIOS2 printed the details on stderr)")]
    System { call: String },
    /// A runtime error, e.g. an operator failing to compress or decompress (adios2_error_runtime_error).
    #[error("{call}: runtime error (ADIOS2 printed the details on stderr)")]
    Runtime { call: String },
    /// Any other exception inside ADIOS2 (adios2_error_exception).
    #[error("{call}: exception (ADIOS2 printed the details on stderr)")]
    Exception { call: String },
    /// An error code this wrapper does not know.
    #[error("{call}: unknown ADIOS2 error code {code}")]
    Unknown { call: String, code: i32 },
    /// A call that returns a handle returned none.
    #[error("{call} failed (ADIOS2 printed the details on stderr)")]
    Null { call: String },
    #[error("no variable '{0}' in this step")]
    NoVariable(String),
    #[error("variable '{name}' holds {actual}, not {expected}")]
    TypeMismatch {
        name: String,
        expected: &'static str,
        actual: String,
    },
    #[error("selection of {expected} elements but a buffer of {got}")]
    BufferSize { expected: usize, got: usize },
    #[error("bad argument: {0}")]
    Argument(String),
    /// A step refused on every rank before it started: some rank might lack room for it.
    #[error("{0}")]
    NoRoom(String),
    /// Another rank failed a collective call of the step writer, which therefore fails on
    /// every rank (none is left waiting in communication the others have left).
    #[error("rank {rank} failed {what}; its own error says why")]
    OtherRank { rank: i32, what: &'static str },
    /// A plugin named in the XML configuration cannot be found.
    #[error(
        "ADIOS2 plugin library '{library}' not found (searched: {searched}); set ADIOS2_PLUGIN_PATH \
         to the directory holding lib{library}.so (residuum installs it in \
         <prefix>/lib/residuum/adios2-plugins)"
    )]
    PluginNotFound { library: String, searched: String },
    /// A residuum operation in the XML configuration has bad parameters.
    #[error("residuum operation on variable '{variable}': {source}")]
    Operator {
        variable: String,
        source: crate::Error,
    },
    /// A residuum operation is configured on a variable of a type residuum does not compress.
    #[error("variable '{variable}' has type {ty} but its residuum operation compresses float and double only")]
    UnsupportedType { variable: String, ty: &'static str },
    #[error("reading configuration {path}: {reason}")]
    Config { path: String, reason: String },
    /// Writing a step failed (the step writer writes no further step).
    #[error("writing step {step}: {source}")]
    Step {
        step: usize,
        source: Box<AdiosError>,
    },
}

pub type Result<T, E = AdiosError> = std::result::Result<T, E>;

/// Maps an `adios2_error` code returned by `call`.
pub(crate) fn check(code: adios2_sys::adios2_error, call: &str) -> Result<()> {
    let call = call.to_string();
    Err(match code {
        adios2_sys::adios2_error_none => return Ok(()),
        adios2_sys::adios2_error_invalid_argument => AdiosError::InvalidArgument { call },
        adios2_sys::adios2_error_system_error => AdiosError::System { call },
        adios2_sys::adios2_error_runtime_error => AdiosError::Runtime { call },
        adios2_sys::adios2_error_exception => AdiosError::Exception { call },
        other => AdiosError::Unknown {
            call,
            code: other as i32,
        },
    })
}

/// Checks a handle returned by `call`.
pub(crate) fn non_null<T>(p: *mut T, call: &str) -> Result<*mut T> {
    if p.is_null() {
        Err(AdiosError::Null {
            call: call.to_string(),
        })
    } else {
        Ok(p)
    }
}
