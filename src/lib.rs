//! residuum: error-bounded compression of scientific floating-point data, in situ through ADIOS2.
//!
//! The data path: operator parameters ([`params`]) choose a mode; the [`codec`] cuts an array into
//! blocks, codes each one ([`entropy`]) and writes a self-describing, checksummed stream
//! ([`format`]). [`ffi`] exposes this to C and to the ADIOS2 plugin in `adios-plugin/`; [`adios`]
//! is a safe Rust wrapper over ADIOS2 itself.

#[cfg(target_endian = "big")]
compile_error!("residuum streams are little-endian and only little-endian hosts are supported");

#[cfg(feature = "adios")]
pub mod adios;
pub mod base;
pub mod block;
pub mod bound;
pub mod codec;
pub mod decode;
pub mod dtype;
pub mod entropy;
pub mod error;
pub mod ffi;
pub mod format;
pub mod insitu;
pub mod metrics;
pub mod params;
pub mod pipeline;
pub mod residual;

pub use bound::Target;
pub use codec::{Codec, CompressStats, Float};
pub use decode::{
    decode, decode_as, decode_as_with, decode_into, decode_with, stream_info, DecodeOptions,
};
pub use dtype::ElementType;
pub use error::{Error, Result};
pub use format::StreamInfo;
pub use params::{Config, IntCoder, Range, Residual};

/// Library version, also reported through the C ABI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
