//! Special values of a lossy block, kept out of the quantization, the prediction and the error,
//! and restored bit for bit: the non-finite ones (NaN, ±Inf) and, with `fill=`, those equal to
//! the fill value (land, ice, missing observations).
//!
//! Stored as their count, then (stream version 4) the smaller of two layouts: a list (per value
//! its distance from the previous one and its element bits: a few scattered values), or a mask
//! (the distinct bit patterns, a zstd-coded bitmap of the positions and, with several patterns,
//! zstd-coded pattern indices: a land mask costs a few bits per row, not five bytes a value).
//! Streams of versions 1 to 3 hold the list alone, without the layout byte.

use crate::dtype::ElementType;
use crate::error::{Error, Result};
use crate::format::payload::{put_varint, PayloadReader};

/// The first stream version whose specials have a layout byte.
pub(crate) const MASK_VERSION: u16 = 4;
const LIST: u8 = 0;
const MASK: u8 = 1;
/// zstd level of the mask: its bitmaps repeat from plane to plane, which any level finds.
const MASK_LEVEL: i32 = 3;

/// A block's special values: positions, ascending, and their element bits.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Specials {
    at: Vec<usize>,
    bits: Vec<u64>,
}

impl Specials {
    /// The special values of a block: its element bytes `raw` (little-endian `dtype`) and the
    /// same values widened, `values`. Values whose bits equal `fill` are special too: they
    /// become NaN in `values`, so that every later stage leaves them out as it does NaN.
    pub(crate) fn find(
        raw: &[u8],
        dtype: ElementType,
        fill: Option<u64>,
        values: &mut [f64],
    ) -> Specials {
        let mut s = Specials::default();
        // Checked a chunk at a time without a branch per value (the short-circuiting scan
        // was a fortieth of compressing a block without specials).
        let finite = |c: &[f64]| c.iter().fold(true, |all, v| all & v.is_finite());
        if fill.is_none() && values.chunks(64).all(finite) {
            return s;
        }
        for (i, (b, v)) in raw.chunks_exact(dtype.size()).zip(values).enumerate() {
            let bits = dtype.read_bits(b);
            if fill == Some(bits) {
                *v = f64::NAN;
            } else if v.is_finite() {
                continue;
            }
            s.at.push(i);
            s.bits.push(bits);
        }
        s
    }

    /// The non-finite values of `values` (no fill value).
    pub(crate) fn of(values: &[f64], dtype: ElementType) -> Specials {
        let at: Vec<usize> = (0..values.len())
            .filter(|&i| !values[i].is_finite())
            .collect();
        let bits = at.iter().map(|&i| dtype.exact_bits(values[i])).collect();
        Specials { at, bits }
    }

    /// Writes their own bits into the element bytes `out` of their block.
    pub(crate) fn restore(&self, out: &mut [u8], dtype: ElementType) {
        for (&i, &b) in self.at.iter().zip(&self.bits) {
            dtype.put_bits(out, i, b);
        }
    }

    /// Their positions, ascending.
    pub(crate) fn positions(&self) -> &[usize] {
        &self.at
    }

    /// Writes them for a block of `n` values (stream version 4 and later).
    pub(crate) fn write(&self, n: usize, dtype: ElementType, out: &mut Vec<u8>) {
        put_varint(out, self.at.len() as u64);
        if self.at.is_empty() {
            return;
        }
        let list = self.list(dtype);
        match self.mask(n, dtype) {
            Some(mask) if mask.len() < list.len() => {
                out.push(MASK);
                out.extend_from_slice(&mask);
            }
            _ => {
                out.push(LIST);
                out.extend_from_slice(&list);
            }
        }
    }

    /// The list layout: per value its distance from the previous one and its bits.
    fn list(&self, dtype: ElementType) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.at.len() * (1 + dtype.size()));
        let mut last = 0;
        for (&i, &b) in self.at.iter().zip(&self.bits) {
            put_varint(&mut out, (i - last) as u64);
            last = i;
            out.extend_from_slice(&b.to_le_bytes()[..dtype.size()]);
        }
        out
    }

    /// The mask layout: palette size u8 (1 to 255), the palette's bits, the bitmap (varint
    /// length, zstd frame of ⌈n/8⌉ bytes, bit i%8 of byte i/8 for value i), and with more than
    /// one pattern the index of each value's pattern (varint length, zstd frame of one byte per
    /// special value). None with more than 255 patterns.
    fn mask(&self, n: usize, dtype: ElementType) -> Option<Vec<u8>> {
        let mut palette: Vec<u64> = Vec::new();
        let mut index = Vec::with_capacity(self.bits.len());
        for &b in &self.bits {
            let k = match palette.iter().position(|&p| p == b) {
                Some(k) => k,
                None if palette.len() < 255 => {
                    palette.push(b);
                    palette.len() - 1
                }
                None => return None,
            };
            index.push(k as u8);
        }
        let mut bitmap = vec![0u8; n.div_ceil(8)];
        for &i in &self.at {
            bitmap[i / 8] |= 1 << (i % 8);
        }
        let mut out = vec![palette.len() as u8];
        for p in &palette {
            out.extend_from_slice(&p.to_le_bytes()[..dtype.size()]);
        }
        let mut frame = |bytes: &[u8]| -> Option<()> {
            let z = zstd::bulk::compress(bytes, MASK_LEVEL).ok()?;
            put_varint(&mut out, z.len() as u64);
            out.extend_from_slice(&z);
            Some(())
        };
        frame(&bitmap)?;
        if palette.len() > 1 {
            frame(&index)?;
        }
        Some(out)
    }
}

/// Reads the special values of a block of `n` values in a stream of `version`: positions,
/// ascending, and their exact bits (as stored for `dtype`).
pub(crate) fn read(
    r: &mut PayloadReader,
    n: usize,
    dtype: ElementType,
    version: u16,
) -> Result<Vec<(usize, u64)>> {
    match count_and_layout(r, n, version)? {
        None => Ok(Vec::new()),
        Some((count, LIST)) => read_list(r, n, count, dtype),
        Some((count, _)) => read_mask(r, n, count, dtype),
    }
}

/// Moves `r` past what [`read`] reads, without decoding a mask's frames: for a head read only
/// to reach the rest of its payload (the block's decoder reads them in full and checks them).
pub(crate) fn skip(
    r: &mut PayloadReader,
    n: usize,
    dtype: ElementType,
    version: u16,
) -> Result<()> {
    let frame = |r: &mut PayloadReader| -> Result<()> { r.chunk().map(drop) };
    match count_and_layout(r, n, version)? {
        None => Ok(()),
        // A few values: read as the decoder does.
        Some((count, LIST)) => read_list(r, n, count, dtype).map(drop),
        Some(_) => {
            let size = r.bytes(1)?[0] as usize;
            r.bytes(size * dtype.size())?;
            frame(r)?;
            match size > 1 {
                true => frame(r),
                false => Ok(()),
            }
        }
    }
}

/// The count of special values and their layout (None where there are none).
fn count_and_layout(r: &mut PayloadReader, n: usize, version: u16) -> Result<Option<(usize, u8)>> {
    let count = r.varint()?;
    if count > n as u64 {
        return Err(Error::corrupt("more special values than the block holds"));
    }
    if count == 0 {
        return Ok(None);
    }
    let layout = if version >= MASK_VERSION {
        r.bytes(1)?[0]
    } else {
        LIST
    };
    match layout {
        LIST | MASK => Ok(Some((count as usize, layout))),
        k => Err(Error::corrupt(format!("unknown special-value layout {k}"))),
    }
}

fn read_list(
    r: &mut PayloadReader,
    n: usize,
    count: usize,
    dtype: ElementType,
) -> Result<Vec<(usize, u64)>> {
    // Each takes a position byte and its element bytes: a larger count is a lie, not a size
    // to allocate for.
    if count > r.rest().len() / (1 + dtype.size()) {
        return Err(Error::corrupt("more special values than the block holds"));
    }
    let mut out = Vec::with_capacity(count);
    let mut pos = 0usize;
    for _ in 0..count {
        pos = pos
            .checked_add(r.size()?)
            .filter(|&p| p < n)
            .ok_or_else(|| Error::corrupt("special value outside the block"))?;
        out.push((pos, dtype.read_bits(r.bytes(dtype.size())?)));
    }
    Ok(out)
}

/// A length-prefixed zstd frame that must decode to exactly `len` bytes.
fn read_frame(r: &mut PayloadReader, len: usize, what: &str) -> Result<Vec<u8>> {
    crate::entropy::zstd_frame(r.chunk()?, len, what)
}

fn read_mask(
    r: &mut PayloadReader,
    n: usize,
    count: usize,
    dtype: ElementType,
) -> Result<Vec<(usize, u64)>> {
    let size = r.bytes(1)?[0] as usize;
    if size == 0 {
        return Err(Error::corrupt("empty special-value palette"));
    }
    let palette: Vec<u64> = (0..size)
        .map(|_| Ok(dtype.read_bits(r.bytes(dtype.size())?)))
        .collect::<Result<_>>()?;
    let bitmap = read_frame(r, n.div_ceil(8), "special-value mask")?;
    // By words: the build's baseline has no population count instruction.
    let words = bitmap.chunks(8).map(|w| {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        u64::from_le_bytes(b)
    });
    let set: u64 = words.map(|w| w.count_ones() as u64).sum();
    if set != count as u64 || (!n.is_multiple_of(8) && bitmap[n / 8] >> (n % 8) != 0) {
        return Err(Error::corrupt(
            "special-value mask disagrees with its count",
        ));
    }
    let index = if size > 1 {
        read_frame(r, count, "special-value indices")?
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(count);
    for (byte, &m) in bitmap.iter().enumerate() {
        let mut m = m;
        while m != 0 {
            let i = 8 * byte + m.trailing_zeros() as usize;
            m &= m - 1;
            let k = index.get(out.len()).map_or(0, |&k| k as usize);
            let bits = *palette
                .get(k)
                .ok_or_else(|| Error::corrupt("special-value index beyond the palette"))?;
            out.push((i, bits));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &Specials, n: usize, dtype: ElementType) -> Vec<u8> {
        let mut out = Vec::new();
        s.write(n, dtype, &mut out);
        // Followed by the rest of a payload, which skipping them reaches as reading them does.
        out.extend_from_slice(b"rest");
        let mut r = PayloadReader::new(&out);
        skip(&mut r, n, dtype, MASK_VERSION).unwrap();
        assert_eq!(r.rest(), b"rest");
        out.truncate(out.len() - 4);
        let back = read(&mut PayloadReader::new(&out), n, dtype, MASK_VERSION).unwrap();
        let want: Vec<(usize, u64)> = s.at.iter().copied().zip(s.bits.iter().copied()).collect();
        assert_eq!(back, want);
        out
    }

    #[test]
    fn a_land_mask_costs_little_and_comes_back_exactly() {
        // A coast repeated on every plane: 40 % of the values, one NaN pattern and an Inf.
        let (planes, plane) = (16, 1000);
        let mut values: Vec<f64> = (0..planes * plane).map(|i| (i % 7) as f64).collect();
        for p in 0..planes {
            for i in 0..400 {
                values[p * plane + (i * 37) % plane] = f64::NAN;
            }
        }
        values[5] = f64::INFINITY;
        let s = Specials::of(&values, ElementType::F32);
        let bytes = round_trip(&s, values.len(), ElementType::F32);
        assert!(bytes.len() < s.at.len() / 20, "{} bytes", bytes.len());
        // A few scattered values stay a list.
        let few = Specials::of(&[1.0, f64::NAN, 2.0, f64::NEG_INFINITY], ElementType::F64);
        let b = round_trip(&few, 4, ElementType::F64);
        assert_eq!(b[1], LIST);
    }

    #[test]
    fn fill_values_are_special_and_leave_the_values() {
        let v = [1.0f32, 1e20, 2.0, 1e20, f32::NAN];
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut wide: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        let fill = Some(1e20f32.to_bits() as u64);
        let s = Specials::find(&raw, ElementType::F32, fill, &mut wide);
        assert_eq!(s.at, vec![1, 3, 4]);
        assert_eq!(s.bits[0], 1e20f32.to_bits() as u64);
        assert!(wide[1].is_nan() && wide[3].is_nan() && wide[0] == 1.0);
        round_trip(&s, 5, ElementType::F32);
    }

    #[test]
    fn lying_masks_are_refused() {
        let values: Vec<f64> = (0..4096)
            .map(|i| if i % 3 == 0 { f64::NAN } else { 1.0 })
            .collect();
        let s = Specials::of(&values, ElementType::F32);
        let mut out = Vec::new();
        s.write(values.len(), ElementType::F32, &mut out);
        // The same payload read for a block of other sizes, or cut short, is an error.
        for n in [4095, 4097, 1 << 40] {
            assert!(read(&mut PayloadReader::new(&out), n, ElementType::F32, 4).is_err());
        }
        for cut in 1..out.len() {
            let r = read(
                &mut PayloadReader::new(&out[..cut]),
                4096,
                ElementType::F32,
                4,
            );
            assert!(r.is_err(), "cut at {cut}");
        }
    }
}
