//! Entropy coding: byte payloads (zstd or raw) and integer blocks ([`ints`]).

pub(crate) mod ints;

use crate::error::{Error, Result};
use crate::format::BlockKind;

/// A coded payload: either the input as it is, or a zstd frame that is smaller.
pub(crate) enum ByteCoding {
    Raw,
    Zstd(Vec<u8>),
}

/// zstd at `level`, falling back to raw where zstd does not shrink the input, so no block ever
/// grows (the worst-case stream size relies on this).
pub(crate) fn encode_bytes(raw: &[u8], level: i32) -> Result<ByteCoding> {
    if raw.is_empty() {
        return Ok(ByteCoding::Raw);
    }
    let z = zstd::bulk::compress(raw, level).map_err(|e| Error::Internal(format!("zstd: {e}")))?;
    Ok(if z.len() < raw.len() {
        ByteCoding::Zstd(z)
    } else {
        ByteCoding::Raw
    })
}

/// Decodes a payload of `kind` into exactly `out.len()` bytes.
pub(crate) fn decode_bytes(kind: BlockKind, payload: &[u8], out: &mut [u8]) -> Result<()> {
    match kind {
        BlockKind::Raw => {
            if payload.len() != out.len() {
                return Err(Error::corrupt(format!(
                    "raw block of {} bytes where {} are expected",
                    payload.len(),
                    out.len()
                )));
            }
            out.copy_from_slice(payload);
        }
        BlockKind::Zstd => {
            // zstd refuses to write past `out`, so a lying frame cannot overrun the buffer.
            let n = zstd::bulk::decompress_to_buffer(payload, out)
                .map_err(|e| Error::corrupt(format!("zstd block: {e}")))?;
            if n != out.len() {
                return Err(Error::corrupt(format!(
                    "zstd block decodes to {n} bytes where {} are expected",
                    out.len()
                )));
            }
        }
        other => {
            return Err(Error::Internal(format!(
                "{other:?} block given to the byte decoder"
            )))
        }
    }
    Ok(())
}
