//! LBRC's decoder: a payload's head (offset, step, plane offsets or an `f64` block's ordered
//! bits' origin and low bits, specials, predictor), its integers, and the reconstruction `lbrc::encode` verified; the bound on what a payload can
//! hold (`max_values`) read from its head and tables alone.

use super::lossless::{from_ordered_bits, ORDERED_SPAN_BITS};
use super::quantize::{reconstruct, reconstruct_on};
use super::{ORDERED_BITS, PLANE_OFFSETS};
use crate::base::{frame, previous, Decoder};
use crate::dtype::ElementType;
use crate::entropy::ints;
use crate::error::{Error, Result};
use crate::format::payload::PayloadReader;
use crate::residual::predict::{self, nglr};
use crate::residual::specials;
use std::sync::Arc;

/// What a non-constant payload holds between its offset and its coded integers.
struct Head {
    step: f64,
    /// The integers are the values' bits, ordered ([`ORDERED_BITS`]).
    ordered: bool,
    /// An `f64` block's ordered bits: the origin, s (the step is 2^s) and the s low bits of
    /// each value, packed.
    split: Option<(i64, u32, Vec<u8>)>,
    /// Each plane's offset, where the payload has them ([`PLANE_OFFSETS`]).
    offsets: Option<Vec<f64>>,
    specials: Vec<(usize, u64)>,
    predictor: predict::Boxed,
}

/// Reads a payload's head after its offset, for a block of `shape` (`over_base`: coded over a
/// prediction); `full`: its special values and plane offsets too (else they are only skipped,
/// for [`max_values`]).
#[allow(clippy::too_many_arguments)]
fn read_head(
    r: &mut PayloadReader,
    offset: f64,
    shape: [usize; 3],
    over_base: bool,
    dtype: ElementType,
    version: u16,
    net: Option<&Arc<nglr::Network>>,
    full: bool,
) -> Result<Head> {
    let n: usize = shape.iter().product();
    let step = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    let planes = offset.to_bits() == PLANE_OFFSETS;
    if planes && (over_base || version < crate::format::VERSION_PLANE_OFFSETS) {
        return Err(Error::corrupt(format!(
            "plane offsets {} (version {version})",
            if over_base {
                "over a base"
            } else {
                "in this version"
            }
        )));
    }
    // Bits as integers: lossless streams' (f32 from version 14, f64 from 15).
    let ordered = offset.to_bits() == ORDERED_BITS;
    let since = match dtype {
        ElementType::F32 => crate::format::VERSION_LOSSLESS_LBRC,
        ElementType::F64 => crate::format::VERSION_ORDERED_F64,
    };
    // An f32's step is 1; an f64's 2^s, s at most what keeps 64-bit spans within the
    // integers' reach.
    let most = match dtype {
        ElementType::F32 => 0,
        ElementType::F64 => 64 - ORDERED_SPAN_BITS,
    };
    let shift = (0..=most).find(|&s| step == (1u64 << s) as f64);
    if ordered && (over_base || version < since || shift.is_none()) {
        return Err(Error::corrupt(format!(
            "ordered bits in a version {version} {dtype:?} block{} of step {step}",
            if over_base { " over a base" } else { "" }
        )));
    }
    if !(step.is_finite() && step > 0.0 && (planes || ordered || offset.is_finite())) {
        return Err(Error::corrupt("bad quantization step or offset"));
    }
    let offsets = match planes {
        true => {
            // Read (so checked against the payload's length) before anything is allocated.
            let raw = r.bytes(
                shape[0]
                    .checked_mul(8)
                    .ok_or(Error::corrupt("plane offsets"))?,
            )?;
            let o: Vec<f64> = match full {
                true => raw
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                false => Vec::new(),
            };
            if o.iter().any(|x| !x.is_finite()) {
                return Err(Error::corrupt("a plane offset that is not finite"));
            }
            Some(o)
        }
        false => None,
    };
    let split = match ordered && dtype == ElementType::F64 {
        true => {
            let origin = i64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
            let s = shift.unwrap_or(0);
            let len = n
                .checked_mul(s as usize)
                .ok_or(Error::corrupt("low bits"))?
                .div_ceil(8);
            // Read (so checked against the payload's length) before anything is allocated.
            let low = r.bytes(len)?;
            Some((origin, s, if full { low.to_vec() } else { Vec::new() }))
        }
        false => None,
    };
    let specials = match full {
        true => specials::read(r, n, dtype, version)?,
        false => specials::skip(r, n, dtype, version).map(|_| Vec::new())?,
    };
    let predictor = predict::read(r, net)?;
    if predictor.id() == nglr::NGLR_PLANAR && version < crate::format::VERSION_NGLR_PLANAR {
        return Err(Error::corrupt(format!(
            "NGLR predictor 10 in a version {version} stream"
        )));
    }
    Ok(Head {
        step,
        ordered,
        split,
        offsets,
        specials,
        predictor,
    })
}

/// The most values a non-constant payload of [`decode`] can hold (`None`: no limit), read
/// from its head and its coder's tables alone. (A constant block has no limit.)
pub(crate) fn max_values(
    payload: &[u8],
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
    net: Option<&Arc<nglr::Network>>,
) -> Result<Option<u64>> {
    max_values_of(payload, shape, false, dtype, version, net)
}

/// [`max_values`] of an LBRC payload, `over_base` or not.
fn max_values_of(
    payload: &[u8],
    shape: [usize; 3],
    over_base: bool,
    dtype: ElementType,
    version: u16,
    net: Option<&Arc<nglr::Network>>,
) -> Result<Option<u64>> {
    let mut r = PayloadReader::new(payload);
    let offset = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    read_head(&mut r, offset, shape, over_base, dtype, version, net, false)?;
    ints::max_values(r.rest())
}

/// [`max_values`] of a `BaseLbrc` payload.
pub(crate) fn max_values_over_base(
    payload: &[u8],
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
    net: Option<&Arc<nglr::Network>>,
) -> Result<Option<u64>> {
    let mut r = PayloadReader::new(payload);
    frame::skip(&mut r)?;
    max_values_of_residual(r, shape, dtype, version, net)
}

/// [`max_values`] of a `Previous` payload.
pub(crate) fn max_values_over_previous(
    payload: &[u8],
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
    net: Option<&Arc<nglr::Network>>,
) -> Result<Option<u64>> {
    let mut r = PayloadReader::new(payload);
    r.bytes(1)?; // the base code
    max_values_of_residual(r, shape, dtype, version, net)
}

/// [`max_values`] of the residual part of a payload over a base (`decode_residual`'s).
fn max_values_of_residual(
    mut r: PayloadReader,
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
    net: Option<&Arc<nglr::Network>>,
) -> Result<Option<u64>> {
    match r.bytes(1)?[0] {
        1 => max_values_of(r.rest(), shape, true, dtype, version, net),
        _ => Ok(None),
    }
}

/// Decodes a `BaseLbrc` payload: its base part, then its residual over that prediction.
pub(crate) fn decode_over_base(
    payload: &[u8],
    decoder: Option<&Decoder>,
    net: Option<&Arc<nglr::Network>>,
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
) -> Result<Vec<u8>> {
    let mut r = PayloadReader::new(payload);
    let pred = frame::read(&mut r, decoder, shape)?;
    decode_residual(r, &pred, net, shape, dtype, version)
}

/// Decodes a `Previous` payload: its base code, then its residual over `previous`, the
/// reference's values of the block (non-finite ones as 0), smoothed and scaled so.
pub fn decode_over_previous(
    payload: &[u8],
    previous: &[f64],
    net: Option<&Arc<nglr::Network>>,
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
) -> Result<Vec<u8>> {
    let mut r = PayloadReader::new(payload);
    let code = r.bytes(1)?[0];
    if code >= previous::BASES {
        return Err(Error::corrupt(format!("unknown base code {code}")));
    }
    let pred = previous::base(previous, shape, code);
    decode_residual(r, &pred, net, shape, dtype, version)
}

/// Checks that a base prediction is finite wherever the payload does not store the value
/// (`specials`, in ascending order): the encoder codes over no other, and a hostile payload's
/// NaN would decode to bits that depend on the machine (x86 and Arm make different ones).
fn finite_base(base: &[f64], specials: &[(usize, u64)]) -> Result<()> {
    let mut stored = specials.iter().map(|s| s.0).peekable();
    for (i, b) in base.iter().enumerate() {
        if !b.is_finite() {
            while stored.next_if(|&s| s < i).is_some() {}
            if stored.peek() != Some(&i) {
                return Err(Error::corrupt(format!(
                    "a base prediction of {b} for value {i}"
                )));
            }
        }
    }
    Ok(())
}

/// The residual part of a payload over a base prediction: 0 and a constant payload, or 1 and
/// an LBRC payload.
fn decode_residual(
    mut r: PayloadReader,
    pred: &[f64],
    net: Option<&Arc<nglr::Network>>,
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
) -> Result<Vec<u8>> {
    let constant = match r.bytes(1)?[0] {
        0 => true,
        1 => false,
        k => return Err(Error::corrupt(format!("unknown residual kind {k}"))),
    };
    decode(r.rest(), Some(pred), net, shape, dtype, constant, version)
}

/// Decodes a block coded by [`super::encode`] (`constant`: a constant block) straight into its
/// little-endian element bytes, in block order; `base` is the prediction the encoder's `prepare`
/// coded the residual over; `net` is the stream's NGLR network; `version` is the stream's.
pub fn decode(
    payload: &[u8],
    base: Option<&[f64]>,
    net: Option<&Arc<nglr::Network>>,
    shape: [usize; 3],
    dtype: ElementType,
    constant: bool,
    version: u16,
) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    let es = dtype.size();
    let mut r = PayloadReader::new(payload);
    let offset = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    if let Some(b) = base {
        if b.len() != n {
            return Err(Error::corrupt("base prediction does not match the block"));
        }
    }
    if constant {
        if !offset.is_finite() {
            return Err(Error::corrupt("constant block of a non-finite value"));
        }
        let specials = specials::read(&mut r, n, dtype, version)?;
        if !r.rest().is_empty() {
            return Err(Error::corrupt("trailing bytes in a constant block"));
        }
        let mut out = crate::error::try_vec::<u8>(n * es, "a decoded block")?;
        match base {
            None => {
                let bits = dtype.bits_of(dtype.round(offset));
                (0..n).for_each(|i| dtype.put_bits(&mut out, i, bits));
            }
            Some(b) => {
                finite_base(b, &specials)?;
                (0..n).for_each(|i| {
                    dtype.put_bits(&mut out, i, dtype.bits_of(dtype.round(b[i] + offset)))
                })
            }
        }
        for (i, b) in specials {
            dtype.put_bits(&mut out, i, b);
        }
        return Ok(out);
    }
    let Head {
        step,
        ordered,
        split,
        offsets,
        specials,
        predictor,
    } = read_head(
        &mut r,
        offset,
        shape,
        base.is_some(),
        dtype,
        version,
        net,
        true,
    )?;
    // Decoded (and so checked against what the payload can hold) before `out` is allocated.
    let mut q = ints::decode(r.rest(), shape)?;
    let mut out = crate::error::try_vec::<u8>(n * es, "a decoded block")?;
    predictor.inverse(&mut q, shape)?;
    // The encoder's own reconstruction, written as bytes in one pass.
    if let Some(b) = base {
        finite_base(b, &specials)?;
        for (i, &v) in q.iter().enumerate() {
            let bits = dtype.bits_of(reconstruct_on(b[i], offset, step, v, dtype));
            dtype.put_bits(&mut out, i, bits);
        }
        for (i, bits) in specials {
            dtype.put_bits(&mut out, i, bits);
        }
        crate::pipeline::scratch::I64.give(q);
        return Ok(out);
    }
    if let Some((origin, s, low)) = split {
        ordered_f64(&q, origin, s, &low, &specials, &mut out)?;
    } else if ordered {
        // A special value's integer is the predictor's fill, any integer (its value is
        // overwritten below); any other must be an f32's. Positions ascend.
        let mut special = specials.iter().map(|s| s.0).peekable();
        for (i, &v) in q.iter().enumerate() {
            let filled = special.next_if_eq(&i).is_some();
            let bits = match from_ordered_bits(v, dtype) {
                Some(b) => b,
                None if filled => 0,
                None => return Err(Error::corrupt("ordered bits beyond f32's")),
            };
            dtype.put_bits(&mut out, i, bits);
        }
    } else {
        // One offset for the block, or one per plane.
        let m = shape[1] * shape[2];
        let offsets = offsets.unwrap_or_else(|| vec![offset]);
        let planes =
            (out.chunks_mut(m.max(1) * es).zip(q.chunks(m.max(1)))).zip(offsets.iter().cycle());
        for ((out, q), &offset) in planes {
            match dtype {
                ElementType::F32 => {
                    for (d, &v) in out.chunks_exact_mut(4).zip(q) {
                        let r = reconstruct(offset, step, v, dtype) as f32;
                        d.copy_from_slice(&r.to_le_bytes());
                    }
                }
                ElementType::F64 => {
                    for (d, &v) in out.chunks_exact_mut(8).zip(q) {
                        d.copy_from_slice(&reconstruct(offset, step, v, dtype).to_le_bytes());
                    }
                }
            }
        }
    }
    crate::pipeline::scratch::I64.give(q);
    for (i, b) in specials {
        dtype.put_bits(&mut out, i, b);
    }
    Ok(out)
}

/// Writes an `f64` block's values from its ordered bits, the integers `q` above `origin` in
/// steps of 2^`s` plus their packed `low` bits. A special value's integer is the predictor's
/// fill, any integer; any other must lie within the span the encoder keeps (below 2^50) and
/// its value not beyond the largest ordered bits. Positions ascend.
fn ordered_f64(
    q: &[i64],
    origin: i64,
    s: u32,
    low: &[u8],
    specials: &[(usize, u64)],
    out: &mut [u8],
) -> Result<()> {
    let mut special = specials.iter().map(|s| s.0).peekable();
    let (mut acc, mut held, mut next) = (0u64, 0u32, low.iter());
    for (i, &v) in q.iter().enumerate() {
        while held < s {
            // The payload holds n·s bits: never short.
            acc |= (*next.next().unwrap_or(&0) as u64) << held;
            held += 8;
        }
        let d = acc & ((1u64 << s) - 1);
        (acc, held) = (acc >> s, held - s);
        let filled = special.next_if_eq(&i).is_some();
        let ord = match (0..1i64 << ORDERED_SPAN_BITS).contains(&v) {
            true => (origin as i128 + ((v as i128) << s) + d as i128)
                .try_into()
                .ok(),
            false => None,
        };
        let bits = match ord {
            Some(o) => from_ordered_bits(o, ElementType::F64).unwrap_or(0),
            None if filled => 0,
            None => return Err(Error::corrupt("ordered bits beyond the block's span")),
        };
        ElementType::F64.put_bits(out, i, bits);
    }
    Ok(())
}
