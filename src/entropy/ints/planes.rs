//! The bit-plane coder (id 2), the reference design: zigzag, then one bit plane per bit from
//! the top, each plane zstd-compressed.

use super::{class, unzigzag, zigzag, PLANES};
use crate::error::{try_vec, Error, Result};
use crate::format::payload::{put_varint, PayloadReader};

/// The reference coder: bit planes of the zigzagged values, each compressed with zstd.
pub(super) fn encode(r: &[i64], level: i32, out: &mut Vec<u8>) {
    let z: Vec<u64> = r.iter().map(|&v| zigzag(v)).collect();
    let nbits = z.iter().map(|&v| class(v)).max().unwrap_or(0);
    out.push(PLANES);
    out.push(nbits);
    let mut packed = vec![0u8; z.len().div_ceil(8)];
    for p in (0..nbits).rev() {
        packed.fill(0);
        for (i, &v) in z.iter().enumerate() {
            packed[i / 8] |= (((v >> p) & 1) as u8) << (i % 8);
        }
        let c = zstd::bulk::compress(&packed, level).unwrap_or_default();
        put_varint(out, c.len() as u64);
        out.extend_from_slice(&c);
    }
}

pub(super) fn decode(mut r: PayloadReader, n: usize) -> Result<Vec<i64>> {
    let nbits = r.bytes(1)?[0];
    if nbits > 64 {
        return Err(Error::corrupt("more than 64 bit planes"));
    }
    let mut z = try_vec::<u64>(n, "decoding")?;
    let mut packed = try_vec::<u8>(n.div_ceil(8), "decoding")?;
    for p in (0..nbits).rev() {
        let frame = r.chunk()?;
        crate::entropy::single_frame(frame, "bit plane")?;
        let got = zstd::bulk::decompress_to_buffer(frame, &mut packed[..])
            .map_err(|e| Error::corrupt(format!("bit plane: {e}")))?;
        if got != packed.len() {
            return Err(Error::corrupt("bit plane of the wrong size"));
        }
        for (i, v) in z.iter_mut().enumerate() {
            *v |= (((packed[i / 8] >> (i % 8)) & 1) as u64) << p;
        }
    }
    if !r.rest().is_empty() {
        return Err(Error::corrupt("trailing bytes after the bit planes"));
    }
    Ok(z.into_iter().map(unzigzag).collect())
}

/// The most values a bit-plane payload (after its id) can hold: its first plane's size.
pub(super) fn max_values(r: &mut PayloadReader) -> Result<Option<u64>> {
    if r.bytes(1)?[0] == 0 {
        return Ok(None);
    }
    let frame = r.chunk()?;
    let plane = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| Error::corrupt("bit plane is not a zstd frame"))?;
    // Each plane holds one bit per value; its frame, at most as many bytes as zstd's densest
    // block makes of it (RLE: 128 KiB from 4 bytes), whatever its header states.
    let most = (frame.len() as u64) << 15;
    Ok(plane.map(|bytes| bytes.min(most).saturating_mul(8)))
}
