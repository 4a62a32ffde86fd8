//! Lossless coding of a block's integer prediction residuals (i64, C order over a 3D block
//! shape). Each coder is an [`IntegerCoder`], identified by the first byte of its payload:
//! - 4, [`context`]: context-modelled magnitude classes with rANS, in two lanes, and where it
//!   pays the signs in the context of their neighbours' signs ([`binary`]; format version 8);
//! - 3, the same without modelled signs (decoded only);
//! - 1, the same in one lane with 12-bit probabilities (format version 2 streams written before
//!   the lanes; decoded only);
//! - 2, [`planes`]: the reference design, zstd-compressed bit planes.
//!
//! Decoding checks every count and length, so corrupted payloads give errors.

mod binary;
mod context;
mod planes;
mod tables;

use crate::error::{Error, Result};
use crate::format::payload::PayloadReader;
use crate::params::IntCoder;
use context::Layout;

const CONTEXT_V1: u8 = 1;
const PLANES: u8 = 2;
const CONTEXT: u8 = 3;
const CONTEXT_SIGNS: u8 = 4;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn class(z: u64) -> u8 {
    (64 - z.leading_zeros()) as u8
}

/// A lossless coder of a block's integers.
pub(crate) trait IntegerCoder: Sync {
    /// Appends the coded `r` (a block of `shape`), its id byte first. `par` lets independent
    /// work run on two threads of the current pool (the output is the same either way).
    fn encode(&self, r: &[i64], shape: [usize; 3], out: &mut Vec<u8>, par: bool);
}

struct Context;
impl IntegerCoder for Context {
    fn encode(&self, r: &[i64], shape: [usize; 3], out: &mut Vec<u8>, par: bool) {
        context::encode(r, shape, out, par)
    }
}

struct Planes;
impl IntegerCoder for Planes {
    fn encode(&self, r: &[i64], _: [usize; 3], out: &mut Vec<u8>, _: bool) {
        planes::encode(r, 3, out)
    }
}

impl IntCoder {
    /// The coder of this setting.
    pub(crate) fn coder(self) -> &'static dyn IntegerCoder {
        match self {
            IntCoder::Context => &Context,
            IntCoder::Planes => &Planes,
        }
    }

    pub(crate) fn encode(self, r: &[i64], shape: [usize; 3], out: &mut Vec<u8>, par: bool) {
        self.coder().encode(r, shape, out, par)
    }
}

/// Bits the context coder would spend on the integers of a block of `shape` at `positions`
/// (`r(at)` the integer at `at`: only those at the positions and their causal neighbours are
/// asked for), and how many positions: per context (from the neighbours, as the coder forms
/// it, lanes aside), the entropy of the bit-length classes, plus the raw bits below each
/// leading one. An estimate without the tables' cost, used to compare codings of a block
/// before paying for one.
pub(crate) fn estimate_bits(
    r: impl Fn(usize) -> i64,
    shape: [usize; 3],
    positions: impl Iterator<Item = usize>,
) -> (f64, usize) {
    let [_, b, c] = shape;
    let k = |at: usize| class(zigzag(r(at)));
    let mut hist = vec![[0u32; 65]; tables::CONTEXTS];
    let mut raw = 0u64;
    let mut count = 0;
    for at in positions {
        let (i, j, l) = (at / (b * c), (at / c) % b, at % c);
        let w = if l > 0 { k(at - 1) } else { 0 };
        let n = if j > 0 { k(at - c) } else { w };
        let behind = if i > 0 { k(at - b * c) } else { n };
        let cls = k(at);
        hist[context::context(w, n, behind)][cls as usize] += 1;
        raw += cls.saturating_sub(1) as u64;
        count += 1;
    }
    let entropy: f64 = hist.iter().map(|h| entropy_bits(h)).sum();
    (entropy + raw as f64, count)
}

/// Bits an ideal coder spends on symbols counted in `hist` (their order-0 entropy, in total).
pub(crate) fn entropy_bits(hist: &[u32]) -> f64 {
    let total: u32 = hist.iter().sum();
    hist.iter()
        .filter(|&&n| n > 0)
        .map(|&n| -(n as f64) * (n as f64 / total as f64).log2())
        .sum()
}

/// Codes `r` (a block of `shape`) with the context coder.
pub(crate) fn encode(r: &[i64], shape: [usize; 3], out: &mut Vec<u8>, par: bool) {
    context::encode(r, shape, out, par)
}

/// Decodes what [`encode`] (or another coder) wrote for a block of `shape`.
/// A block that claims more values than its bytes can hold is refused before its buffers are
/// allocated (the context coder's decoders check once they have read their tables).
pub(crate) fn decode(payload: &[u8], shape: [usize; 3]) -> Result<Vec<i64>> {
    let n: usize = shape.iter().product();
    let mut r = PayloadReader::new(payload);
    match r.bytes(1)?[0] {
        CONTEXT_SIGNS => context::decode_lanes(r, shape, n, Layout::Signs),
        CONTEXT => context::decode_lanes(r, shape, n, Layout::Lanes),
        CONTEXT_V1 => context::decode_v1(r, shape, n),
        PLANES => {
            refuse_beyond(n, max_values(payload)?, payload.len())?;
            planes::decode(r, n)
        }
        other => Err(Error::corrupt(format!("unknown integer coder {other}"))),
    }
}

/// An error where `n` values are claimed of `bytes` (a payload's, or what is left of it after
/// the tables) that hold at most `cap` (None: no limit).
fn refuse_beyond(n: usize, cap: Option<u64>, bytes: usize) -> Result<()> {
    match cap.filter(|&cap| n as u64 > cap) {
        Some(cap) => Err(Error::corrupt(format!(
            "{n} values claimed, but {bytes} bytes of coded integers hold at most {cap}"
        ))),
        None => Ok(()),
    }
}

/// The most values a payload of [`decode`] can hold, or `None` where there is no limit (a
/// context whose table has a single symbol codes it in zero bits; bit planes all zero are not
/// stored). Reads only the coder's tables and lengths, so a stream that claims more values than
/// its bytes can hold is refused before anything is allocated for them.
pub(crate) fn max_values(payload: &[u8]) -> Result<Option<u64>> {
    let mut r = PayloadReader::new(payload);
    match r.bytes(1)?[0] {
        CONTEXT_SIGNS => context::max_values(&mut r, Layout::Signs),
        CONTEXT => context::max_values(&mut r, Layout::Lanes),
        CONTEXT_V1 => context::max_values(&mut r, Layout::V1),
        PLANES => planes::max_values(&mut r),
        other => Err(Error::corrupt(format!("unknown integer coder {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bit_plane_claims_no_more_than_its_frame_can_hold() {
        // A frame header alone, stating 2^40 bytes: the claim was taken as 2^43 values, and
        // the decoder reserved 9 bytes for each before the plane failed to decompress.
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
        frame.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let mut p = vec![PLANES, 1];
        crate::format::payload::put_varint(&mut p, frame.len() as u64);
        p.extend_from_slice(&frame);
        let most = max_values(&p).unwrap().unwrap();
        assert!(most <= (frame.len() as u64) << 18, "{most}");
    }

    fn sample(n: usize, scale: f64) -> Vec<i64> {
        let mut s = 12345u64;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5;
                (u.signum() * (-(1.0 - 2.0 * u.abs()).max(1e-300).ln()) * scale).round() as i64
            })
            .collect()
    }

    #[test]
    fn both_coders_round_trip_every_magnitude() {
        let shape = [5, 7, 11];
        for scale in [0.0, 0.3, 3.0, 300.0, 3e6, 3e15] {
            let r = sample(385, scale);
            let mut a = Vec::new();
            encode(&r, shape, &mut a, false);
            assert_eq!(decode(&a, shape).unwrap(), r, "context, scale {scale}");
            let mut b = Vec::new();
            encode(&r, shape, &mut b, true);
            assert_eq!(a, b, "the lanes on two threads give the same bytes");
            let mut p = Vec::new();
            planes::encode(&r, 3, &mut p);
            assert_eq!(decode(&p, shape).unwrap(), r, "planes, scale {scale}");
        }
        // The decoder goes a row at a time, both lanes side by side: rows of one value, a lane
        // starting mid-row, rows longer than the decoder's runs between checks.
        for shape in [
            [1, 1, 1],
            [1, 1, 2],
            [3, 1, 1],
            [2, 3, 1],
            [1, 2, 9000],
            [1, 1, 9001],
        ] {
            let r = sample(shape.iter().product(), 30.0);
            let mut a = Vec::new();
            encode(&r, shape, &mut a, false);
            assert_eq!(decode(&a, shape).unwrap(), r, "{shape:?}");
        }
        let extremes = vec![i64::MAX >> 2, -(i64::MAX >> 2), 0, 1, -1];
        let mut a = Vec::new();
        encode(&extremes, [1, 1, 5], &mut a, false);
        assert_eq!(decode(&a, [1, 1, 5]).unwrap(), extremes);
    }

    /// Residuals of `shape` with the magnitudes of `sample`, and signs that repeat the sign of
    /// the value `back` positions before (the previous in the row: 1; in the previous row: the
    /// row's length) with probability `keep` (in 1/100), else are drawn anew.
    fn signed(shape: [usize; 3], keep: u64, back: usize) -> Vec<i64> {
        let mut s = 99u64;
        let mags = sample(shape.iter().product(), 4.0);
        let mut out: Vec<i64> = Vec::with_capacity(mags.len());
        for (i, m) in mags.iter().enumerate() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            let fresh = if (s >> 20) & 1 == 1 { 1 } else { -1 };
            let sign = match i.checked_sub(back) {
                Some(j) if (s >> 33) % 100 < keep && out[j] != 0 => out[j].signum(),
                _ => fresh,
            };
            out.push(m.abs().max(1) * sign);
        }
        out
    }

    #[test]
    fn correlated_signs_are_modelled_and_damage_is_refused() {
        let shape = [8, 32, 64];
        // Signs that follow the one before in the row go in the classes' symbols (flag 2),
        // those that follow the previous row's in streams of their own (flag 1).
        let west = signed(shape, 85, 1);
        let north = signed(shape, 85, shape[2]);
        let random = signed(shape, 0, 1);
        let [mut a, mut n, mut b] = [Vec::new(), Vec::new(), Vec::new()];
        encode(&west, shape, &mut a, false);
        encode(&north, shape, &mut n, false);
        encode(&random, shape, &mut b, false);
        assert_eq!(a[..2], [CONTEXT_SIGNS, 2], "in the symbols");
        assert_eq!(n[..2], [CONTEXT_SIGNS, 1], "in their own streams");
        assert_eq!(b[..2], [CONTEXT_SIGNS, 0], "random signs stay raw");
        for (r, coded) in [(&west, &a), (&north, &n), (&random, &b)] {
            let mut again = Vec::new();
            encode(r, shape, &mut again, true);
            assert_eq!(
                coded, &again,
                "the lanes on two threads give the same bytes"
            );
            assert_eq!(&decode(coded, shape).unwrap(), r);
        }
        // A third of a bit saved per sign coded (of class 2 or more), at least: the signs
        // repeat a neighbour's about 92 % of the time.
        let signs = west.iter().filter(|&&v| v >= 1 || v <= -2).count();
        for coded in [&a, &n] {
            assert!(
                coded.len() * 8 + signs / 3 < b.len() * 8,
                "{} vs {}",
                coded.len(),
                b.len()
            );
        }
        // Cut anywhere, the payload is refused; flipped bytes give errors or values.
        for coded in [&a, &n] {
            for cut in (1..coded.len()).step_by(97) {
                assert!(decode(&coded[..cut], shape).is_err(), "cut at {cut}");
            }
            for at in (1..coded.len()).step_by(31) {
                let mut d = coded.clone();
                d[at] ^= 0x5a;
                let _ = decode(&d, shape);
            }
        }
        // Unknown flags (both ways of coding the signs among them) and a sign probability of
        // zero are refused.
        for flags in [3, 4, 0x80] {
            let mut d = a.clone();
            d[1] = flags;
            assert!(decode(&d, shape).is_err(), "flags {flags}");
        }
        let mut d = n.clone();
        d[2] = 0;
        assert!(decode(&d, shape).is_err());
        // A block far larger than the bytes can hold is refused before its buffers are
        // allocated (2^33 values would take 72 GiB).
        for coded in [&a, &n, &b] {
            let err = decode(coded, [1 << 11; 3]).unwrap_err().to_string();
            assert!(err.contains("values claimed"), "{err}");
        }
    }

    #[test]
    fn context_coder_beats_the_entropy_of_a_laplacian_source_closely() {
        let r = sample(200_000, 20.0);
        let mut a = Vec::new();
        encode(&r, [10, 100, 200], &mut a, false);
        let bits_per_value = a.len() as f64 * 8.0 / r.len() as f64;
        // Order-0 entropy of the values themselves.
        let mut h = std::collections::HashMap::new();
        r.iter().for_each(|v| *h.entry(*v).or_insert(0usize) += 1);
        let ent: f64 = h
            .values()
            .map(|&c| {
                let p = c as f64 / r.len() as f64;
                -p * p.log2()
            })
            .sum();
        assert!(
            bits_per_value < ent * 1.03,
            "{bits_per_value} bits/value vs entropy {ent}"
        );
    }
}
