//! residuum: error-bounded compression of scientific floating-point data, in situ through ADIOS2.
//!
//! The data path: operator parameters ([`Config`]) choose a mode; the [`Codec`] cuts an array
//! into blocks (`block/`), resolves the error target per block (`bound/`), predicts each block
//! with the base model where one is in use and from the previous step under temporal
//! prediction ([`Chain`]) (`base/`), codes the residual (`residual/`: LBRC's
//! predictors and quantizer, GAE) and its integers (`entropy/`), in a two-stage pipeline
//! (`pipeline/`), and writes a self-describing, checksummed stream (`format/`, specified in
//! `doc/format.md`); [`decode()`] reads it back. [`insitu`] and `adios` (with the `adios`
//! feature, on by default) connect this to ADIOS2; `ffi/` is the C ABI (`include/residuum.h`)
//! that the ADIOS2 plugin in `adios-plugin/` calls.

#[cfg(target_endian = "big")]
compile_error!("residuum streams are little-endian and only little-endian hosts are supported");

#[cfg(feature = "adios")]
pub mod adios;
pub(crate) mod base;
pub(crate) mod block;
pub(crate) mod bound;
mod codec;
mod decode;
mod dtype;
pub(crate) mod entropy;
mod error;
/// The C ABI (`include/residuum.h`). Public so that its symbols are exported and its tests can
/// call it; Rust users have the types above.
#[doc(hidden)]
pub mod ffi;
pub(crate) mod format;
pub mod insitu;
pub(crate) mod metrics;
mod params;
pub(crate) mod pipeline;
pub(crate) mod residual;
#[cfg(test)]
mod test_alloc;

pub use base::previous::{Chain, References};
pub use base::Model;
pub use bound::{ErrorStats, Target};
pub use codec::{Codec, CompressStats};
pub use decode::{
    decode, decode_as, decode_as_with, decode_into, decode_step, decode_with, step_info,
    stream_info, DecodeOptions,
};
pub use dtype::{ElementType, Float};
pub use error::{
    Error, FormatError, FormatErrorKind, IoError, IoErrorKind, ParameterError, ReferenceError,
    Result,
};
pub use format::step::{reference_hash, StepInfo};
pub use format::StreamInfo;
pub use params::{Config, IntCoder, Range, Residual};
pub use pipeline::{owned_cores, MAX_THREADS};

/// Library version, also reported through the C ABI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// residuum's insides, for its own command line, tests, benchmarks and fuzz targets. Not a
/// stable API: anything here may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::block::{default_block, fold3, Block, Grid};
    pub use crate::bound::{finite_min_max, finite_range, BlockBound};
    pub use crate::metrics::{quality, Quality};
    pub use crate::residual::predict::nglr;
    pub use crate::residual::{gae, lbrc, wavelet};

    /// The base model's insides.
    pub mod base {
        #[cfg(feature = "train")]
        pub use crate::base::train;
        pub use crate::base::{predict, BasePrediction, LATENT_STEP_KEY, TENSORS};
    }

    /// The stream container.
    pub mod format {
        pub use crate::format::{
            parse, write_stream, BlockEntry, BlockKind, Parsed, Tables, MAGIC,
        };
    }
}
