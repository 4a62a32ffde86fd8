//! Non-finite values of a lossy block (NaN, ±Inf), kept out of the quantization and restored
//! bit for bit: their count, then per value its distance from the previous one and its exact
//! element bits.

use crate::dtype::ElementType;
use crate::error::{Error, Result};
use crate::format::payload::{put_varint, PayloadReader};

/// Non-finite values: positions (delta-coded) and exact bits.
pub(crate) fn write(values: &[f64], dtype: ElementType, out: &mut Vec<u8>) {
    let specials: Vec<usize> = (0..values.len())
        .filter(|&i| !values[i].is_finite())
        .collect();
    put_varint(out, specials.len() as u64);
    let mut last = 0;
    for &i in &specials {
        put_varint(out, (i - last) as u64);
        last = i;
        out.extend_from_slice(&dtype.exact_bits(values[i]).to_le_bytes()[..dtype.size()]);
    }
}

/// Reads the non-finite values: positions and their exact bits (as stored for `dtype`).
pub(crate) fn read(
    r: &mut PayloadReader,
    n: usize,
    dtype: ElementType,
) -> Result<Vec<(usize, u64)>> {
    let count = r.varint()? as usize;
    // Each takes a position byte and its element bytes: a larger count is a lie, not a size
    // to allocate for.
    if count > n || count > r.rest().len() / (1 + dtype.size()) {
        return Err(Error::corrupt("more special values than the block holds"));
    }
    let mut out = Vec::with_capacity(count);
    let mut pos = 0usize;
    for _ in 0..count {
        pos = pos
            .checked_add(r.varint()? as usize)
            .filter(|&p| p < n)
            .ok_or_else(|| Error::corrupt("special value outside the block"))?;
        out.push((pos, dtype.read_bits(r.bytes(dtype.size())?)));
    }
    Ok(out)
}
