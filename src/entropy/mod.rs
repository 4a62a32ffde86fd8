//! Entropy coding: byte payloads (zstd or raw) and integer blocks ([`ints`]).

pub(crate) mod ints;

use crate::error::{try_vec, Error, Result};
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
            single_frame(payload, "zstd block")?;
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

/// Whether `frame` is one zstd frame and nothing else: zstd decodes any sequence of frames,
/// skippable ones too, where the format has exactly one (doc/format.md §5.2).
pub(crate) fn single_frame(frame: &[u8], what: &str) -> Result<()> {
    match zstd::zstd_safe::find_frame_compressed_size(frame) {
        Ok(n) if n == frame.len() => Ok(()),
        Ok(_) => Err(Error::corrupt(format!(
            "{what}: bytes after its zstd frame"
        ))),
        Err(_) => Err(Error::corrupt(format!("{what} is not a zstd frame"))),
    }
}

/// A zstd frame that must decode to exactly `len` bytes. Its declared size is checked (and
/// bounded by what a frame of its length can hold) before `len` bytes are allocated, so a
/// lying length costs nothing.
pub(crate) fn zstd_frame(frame: &[u8], len: usize, what: &str) -> Result<Vec<u8>> {
    let declared = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| Error::corrupt(format!("{what} is not a zstd frame")))?;
    // zstd's densest block, RLE, stands for at most 128 KiB in 4 bytes.
    if declared != Some(len as u64) || len as u64 > (frame.len() as u64) << 15 {
        return Err(Error::corrupt(format!("{what} of the wrong size")));
    }
    single_frame(frame, what)?;
    let mut out = try_vec::<u8>(len, what)?;
    let got = zstd::bulk::decompress_to_buffer(frame, &mut out[..])
        .map_err(|e| Error::corrupt(format!("{what}: {e}")))?;
    if got != len {
        return Err(Error::corrupt(format!("{what} of the wrong size")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame followed by a skippable frame, or by a second frame, decoded as the one frame
    /// (zstd reads them all); an independent decoder of one frame would refuse both.
    #[test]
    fn payloads_of_more_than_one_zstd_frame_are_refused() {
        let raw: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        let ByteCoding::Zstd(frame) = encode_bytes(&raw, 3).unwrap() else {
            panic!("repetitive bytes compress")
        };
        let mut out = vec![0u8; raw.len()];
        decode_bytes(BlockKind::Zstd, &frame, &mut out).unwrap();
        assert_eq!(out, raw);
        assert_eq!(zstd_frame(&frame, raw.len(), "t").unwrap(), raw);
        let skippable = [0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0];
        let empty = zstd::bulk::compress(&[], 3).unwrap();
        for tail in [&skippable[..], &empty[..]] {
            let two = [&frame[..], tail].concat();
            let e = decode_bytes(BlockKind::Zstd, &two, &mut out).unwrap_err();
            assert!(e.to_string().contains("bytes after its zstd frame"), "{e}");
            let e = zstd_frame(&two, raw.len(), "t").unwrap_err();
            assert!(e.to_string().contains("bytes after its zstd frame"), "{e}");
        }
    }
}
