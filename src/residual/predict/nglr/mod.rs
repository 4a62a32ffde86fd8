//! NGLR: 3D Lorenzo prediction plus a bias from a small integer network over the causal
//! neighbourhood (the quantized values around the Lorenzo prediction and their Lorenzo
//! residuals, scaled by the block's mean residual). Integer arithmetic throughout (i16 weights,
//! wrapping i32 sums, ReLU, fixed shifts), so the decoder reproduces the encoder's bias bit for
//! bit on any machine. The encoder knows every value and computes all biases at once; the
//! decoder runs in C order. The network, trained per collection (`train`), travels once per
//! stream as a table entry; a block names it by predictor id 9 and stores its scale.
//!
//! Where a position lacks the Lorenzo cube (first plane, row or column) the bias is 0: plain
//! 3D Lorenzo. `doc/format.md` §5.11 specifies every operation.

#[cfg(feature = "train")]
pub mod train;

use super::{Boxed, Predictor};
use crate::error::{Error, Result};
use crate::format::payload::PayloadReader;
use rayon::prelude::*;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

/// Predictor id of NGLR.
pub(crate) const NGLR: u8 = 9;
/// Inputs of the network (`doc/format.md` §7.4 lists them).
pub const FEATURES: usize = 21;
/// Positions the encoder evaluates side by side ([`Network::biases`]).
const LANES: usize = 16;
/// The most hidden units a network may have.
pub(crate) const MAX_HIDDEN: usize = 64;
/// Fixed point of features and hidden activations: 1.0 is 2^FRAC.
pub(crate) const FRAC: u32 = 8;
/// Features and activations are clamped to ±this (16 block scales).
pub(crate) const CLAMP: i32 = 16 << FRAC;
const MAGIC: &[u8; 4] = b"NGL1";

/// Offsets (planes, rows, columns back) of the neighbours whose values, relative to the
/// Lorenzo prediction, are features 0..11; the last is north-east (a column ahead).
const VALUE_AT: [(usize, isize, isize); 11] = [
    (0, 0, 1),
    (0, 1, 0),
    (1, 0, 0),
    (0, 1, 1),
    (1, 0, 1),
    (1, 1, 0),
    (1, 1, 1),
    (0, 0, 2),
    (0, 2, 0),
    (2, 0, 0),
    (0, 1, -1),
];
/// Offsets of the neighbours whose Lorenzo residuals are features 11..20.
const RESIDUAL_AT: [(usize, isize, isize); 9] = [
    (0, 0, 1),
    (0, 1, 0),
    (1, 0, 0),
    (0, 1, 1),
    (1, 1, 0),
    (0, 0, 2),
    (0, 2, 0),
    (2, 0, 0),
    (0, 1, -1),
];

/// An integer network: features → `hidden` ReLU units → one output, the bias in block scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    hidden: usize,
    /// Layer 1, feature-major: `w1[f * hidden + j]`.
    w1: Vec<i16>,
    b1: Vec<i32>,
    /// Right shift from layer 1's sums to activations in [`FRAC`] fixed point.
    s1: u32,
    w2: Vec<i16>,
    b2: i32,
    /// Right shift (beyond [`FRAC`]) from the output sum times the scale to the bias.
    s2: u32,
    /// The stream's entry: content hash (xxh3 u64 LE) of the canonical bytes, then them.
    entry: Vec<u8>,
}

impl Network {
    /// A network from its integer weights (`w1` feature-major); checks the sizes and shifts.
    pub fn new(
        hidden: usize,
        w1: Vec<i16>,
        b1: Vec<i32>,
        s1: u32,
        w2: Vec<i16>,
        b2: i32,
        s2: u32,
    ) -> Result<Network> {
        if !(1..=MAX_HIDDEN).contains(&hidden)
            || w1.len() != FEATURES * hidden
            || b1.len() != hidden
            || w2.len() != hidden
            || s1 > 30
            || s2 > 30
        {
            return Err(Error::Model(format!(
                "NGLR network: {hidden} hidden units (1..={MAX_HIDDEN}), {} layer-1 weights, \
                 {} biases, {} layer-2 weights, shifts {s1}, {s2} (at most 30) do not fit",
                w1.len(),
                b1.len(),
                w2.len()
            )));
        }
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[FEATURES as u8, hidden as u8, s1 as u8, s2 as u8]);
        w1.iter()
            .for_each(|w| bytes.extend_from_slice(&w.to_le_bytes()));
        b1.iter()
            .for_each(|b| bytes.extend_from_slice(&b.to_le_bytes()));
        w2.iter()
            .for_each(|w| bytes.extend_from_slice(&w.to_le_bytes()));
        bytes.extend_from_slice(&b2.to_le_bytes());
        let mut entry = xxh3_64(&bytes).to_le_bytes().to_vec();
        entry.extend_from_slice(&bytes);
        Ok(Network {
            hidden,
            w1,
            b1,
            s1,
            w2,
            b2,
            s2,
            entry,
        })
    }

    /// Reads the canonical bytes ([`Network::bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Network> {
        let bad = |m: &str| Error::Model(format!("NGLR network: {m}"));
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(bad("not an NGLR network"));
        }
        let (nf, hidden, s1, s2) = (bytes[4] as usize, bytes[5] as usize, bytes[6], bytes[7]);
        if nf != FEATURES {
            return Err(bad(&format!("{nf} inputs, this version has {FEATURES}")));
        }
        if bytes.len() != 8 + hidden * (2 * FEATURES + 6) + 4 {
            return Err(bad(&format!(
                "{} bytes for {hidden} hidden units",
                bytes.len()
            )));
        }
        let mut r = PayloadReader::new(&bytes[8..]);
        let mut i16s = |n: usize| -> Result<Vec<i16>> {
            let b = r.bytes(2 * n)?;
            Ok(b.chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect())
        };
        let w1 = i16s(FEATURES * hidden)?;
        let mut r = PayloadReader::new(&bytes[8 + 2 * FEATURES * hidden..]);
        let mut i32s = |n: usize| -> Result<Vec<i32>> {
            let b = r.bytes(4 * n)?;
            Ok(b.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect())
        };
        let b1 = i32s(hidden)?;
        let rest = r.rest();
        let w2 = rest[..2 * hidden]
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let b2 = i32::from_le_bytes(rest[2 * hidden..].try_into().unwrap());
        Network::new(hidden, w1, b1, s1 as u32, w2, b2, s2 as u32)
    }

    /// Canonical bytes: "NGL1", features, hidden, the two shifts (u8 each), w1 (i16,
    /// feature-major), b1 (i32), w2 (i16), b2 (i32), little-endian.
    pub fn bytes(&self) -> &[u8] {
        &self.entry[8..]
    }

    /// The stream's table entry: content hash, then [`Network::bytes`].
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }

    /// The most bytes [`Network::bytes`] can have.
    pub fn max_len() -> usize {
        8 + MAX_HIDDEN * (2 * FEATURES + 6) + 4
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The stream entry's bytes, checked against their content hash.
    pub fn from_entry(entry: &[u8]) -> Result<Network> {
        if entry.len() < 8
            || u64::from_le_bytes(entry[..8].try_into().unwrap()) != xxh3_64(&entry[8..])
        {
            return Err(Error::Model(
                "the stream's NGLR network does not match its content hash".into(),
            ));
        }
        Network::from_bytes(&entry[8..])
    }

    /// The network's output for `f`, in block scales times 2^(FRAC + s2).
    #[inline(always)]
    fn output(&self, f: &[i16; FEATURES]) -> i32 {
        // The common sizes with their sums in registers (the same arithmetic).
        match self.hidden {
            8 => self.layer2(self.layer1::<8>(f, 8)),
            16 => self.layer2(self.layer1::<16>(f, 16)),
            h => self.layer2(self.layer1::<MAX_HIDDEN>(f, h)),
        }
    }

    /// The first layer's sums for `h` ≤ `N` units (the rest 0). i16 products fit i32
    /// (|feature| ≤ 2^12): no multiply can wrap, only the sums.
    #[inline(always)]
    fn layer1<const N: usize>(&self, f: &[i16; FEATURES], h: usize) -> [i32; N] {
        let mut acc = [0i32; N];
        acc[..h].copy_from_slice(&self.b1);
        for (&x, w) in f.iter().zip(self.w1.chunks_exact(h)) {
            for (a, &w) in acc[..h].iter_mut().zip(w) {
                *a = a.wrapping_add(w as i32 * x as i32);
            }
        }
        acc
    }

    /// The output from the first layer's sums.
    #[inline(always)]
    fn layer2<const N: usize>(&self, acc: [i32; N]) -> i32 {
        let mut out = self.b2;
        for (a, &w) in acc.iter().zip(&self.w2) {
            let act = (*a >> self.s1).clamp(0, CLAMP);
            out = out.wrapping_add((w as i32).wrapping_mul(act));
        }
        out
    }

    /// The bias a scale-`d` block adds to the Lorenzo prediction, for features `f`.
    #[inline(always)]
    fn bias(&self, f: &[i16; FEATURES], d: u32) -> i64 {
        self.scale(self.output(f), d)
    }

    /// The bias for an output sum.
    #[inline(always)]
    fn scale(&self, out: i32, d: u32) -> i64 {
        let sh = FRAC + self.s2;
        ((out as i64) * d as i64 + (1i64 << (sh - 1))) >> sh
    }

    /// [`Network::bias`] of `n` positions at once (the encoder's: every value is known),
    /// their features feature-major in `feat` (`feat[f * n + k]`, `n` a multiple of [`LANES`]):
    /// the same sums, [`LANES`] positions side by side, which the compiler vectorizes.
    fn biases(&self, feat: &[i16], n: usize, d: u32, out: &mut [i64]) {
        debug_assert_eq!(n % LANES, 0);
        let mut sum = vec![self.b2; n];
        for k0 in (0..n).step_by(LANES) {
            let sum: &mut [i32; LANES] = (&mut sum[k0..k0 + LANES]).try_into().unwrap();
            for j in 0..self.hidden {
                let mut acc = [self.b1[j]; LANES];
                for f in 0..FEATURES {
                    let w = self.w1[f * self.hidden + j];
                    let x: &[i16; LANES] = feat[f * n + k0..][..LANES].try_into().unwrap();
                    for (a, &x) in acc.iter_mut().zip(x) {
                        *a = a.wrapping_add(w as i32 * x as i32);
                    }
                }
                let w = self.w2[j] as i32;
                for (s, &a) in sum.iter_mut().zip(&acc) {
                    *s = s.wrapping_add(w.wrapping_mul((a >> self.s1).clamp(0, CLAMP)));
                }
            }
        }
        for (b, &s) in out.iter_mut().zip(&sum) {
            *b = self.scale(s, d);
        }
    }
}

/// Loads a network file (`residuum train --nglr`): safetensors with one u8 tensor `nglr`, the
/// canonical bytes.
pub fn load(path: &std::path::Path) -> Result<Network> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Model(format!("cannot read NGLR network {}: {e}", path.display())))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    let t = st
        .tensor("nglr")
        .map_err(|e| Error::Model(format!("{}: no `nglr` tensor ({e})", path.display())))?;
    Network::from_bytes(t.data())
}

/// Writes `net` as a network file for [`load`].
pub fn save(net: &Network, path: &std::path::Path) -> Result<()> {
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::U8,
        vec![net.bytes().len()],
        net.bytes(),
    )
    .map_err(|e| Error::Model(e.to_string()))?;
    let bytes =
        safetensors::serialize([("nglr", view)], None).map_err(|e| Error::Model(e.to_string()))?;
    std::fs::write(path, bytes)
        .map_err(|e| Error::Model(format!("cannot write NGLR network {}: {e}", path.display())))
}

/// A block's scale `d` and what features need of it.
#[derive(Clone, Copy)]
struct Scale {
    d: u32,
    /// 2^(16+FRAC) / d: features are differences times this, shifted by 16.
    m: i32,
    /// ⌈2^28 / m⌉: any difference beyond ±this saturates, so it is clamped here first and the
    /// product fits i32 (the same result as the saturating i64 product of `doc/format.md`).
    limit: i64,
}

impl Scale {
    fn new(d: u32) -> Scale {
        let m = (1i64 << (16 + FRAC)) / d as i64;
        Scale {
            d,
            m: m as i32,
            // Scales above 2^24 make every feature 0 (m = 0).
            limit: if m > 0 { ((1i64 << 28) + m - 1) / m } else { 0 },
        }
    }

    /// Scales `x` (an integer difference) into features' fixed point, clamped: the value of
    /// `clamp((x ·sat m) >> 16, ±CLAMP)`.
    #[inline(always)]
    fn of(self, x: i64) -> i16 {
        let x = x.clamp(-self.limit, self.limit) as i32;
        ((x * self.m) >> 16).clamp(-CLAMP, CLAMP) as i16
    }
}

/// The features of interior position (i, j, k) (all of i, j, k ≥ 1) from the values `q` and
/// the Lorenzo residuals `rl` (by position) before it in C order: neighbours outside the block
/// count as equal to the prediction (value features) or as 0 (residual features).
#[inline(always)]
fn features(
    q: &[i64],
    ri: impl Fn(usize) -> i64,
    shape: [usize; 3],
    (i, j, k): (usize, usize, usize),
    pred: i64,
    scale: Scale,
) -> [i16; FEATURES] {
    let [_, b, c] = shape;
    let mut f = [0i16; FEATURES];
    let idx = (i * b + j) * c + k;
    if i >= 2 && j >= 2 && k >= 2 && k + 1 < c {
        // Every neighbour inside: fixed distances back, no checks.
        let back =
            |(di, dj, dk): (usize, isize, isize)| (di * b * c) as isize + dj * c as isize + dk;
        for (s, &o) in VALUE_AT.iter().enumerate() {
            f[s] = scale.of(q[idx - back(o) as usize].wrapping_sub(pred));
        }
        for (s, &o) in RESIDUAL_AT.iter().enumerate() {
            f[VALUE_AT.len() + s] = scale.of(ri(idx - back(o) as usize));
        }
    } else {
        let at = |(di, dj, dk): (usize, isize, isize)| -> Option<usize> {
            let (jj, kk) = (j as isize - dj, k as isize - dk);
            (i >= di && jj >= 0 && kk >= 0 && (kk as usize) < c)
                .then(|| ((i - di) * b + jj as usize) * c + kk as usize)
        };
        for (s, &o) in VALUE_AT.iter().enumerate() {
            if let Some(p) = at(o) {
                f[s] = scale.of(q[p].wrapping_sub(pred));
            }
        }
        for (s, &o) in RESIDUAL_AT.iter().enumerate() {
            if let Some(p) = at(o) {
                f[VALUE_AT.len() + s] = scale.of(ri(p));
            }
        }
    }
    // How coarse the block is: the bit length of its scale, 1.0 per 4 bits.
    f[FEATURES - 1] = ((32 - scale.d.leading_zeros()) << (FRAC - 2)) as i16;
    f
}

/// The block scale: the mean magnitude of the interior residuals of its predictor, rounded up, at least
/// 1 (encoder only; the decoder reads it).
pub(crate) fn scale_of(rl: &[i64], shape: [usize; 3]) -> u32 {
    let [a, b, c] = shape;
    let (mut sum, mut n) = (0u128, 0u128);
    for i in 1..a {
        for j in 1..b {
            let row = &rl[(i * b + j) * c..][..c];
            sum += row[1..]
                .iter()
                .map(|v| v.unsigned_abs() as u128)
                .sum::<u128>();
            n += c.saturating_sub(1) as u128;
        }
    }
    (sum.div_ceil(n.max(1))).clamp(1, 1 << 31) as u32
}

/// NGLR on one block: the block's own predictor (`inner`, any but NGLR), a network and the
/// block's scale.
pub(crate) struct Nglr {
    inner: Boxed,
    net: Arc<Network>,
    scale: Scale,
}

impl Nglr {
    /// NGLR over `inner` for block `q` of `shape`, its scale measured.
    #[cfg(feature = "train")]
    pub(crate) fn fit(net: Arc<Network>, inner: Boxed, q: &[i64], shape: [usize; 3]) -> Nglr {
        let r = inner.forward(q.to_vec(), shape, false);
        Nglr::new(net, inner, scale_of(&r, shape))
    }

    /// NGLR over `inner` for a block of scale `d`.
    pub(crate) fn new(net: Arc<Network>, inner: Boxed, d: u32) -> Nglr {
        let scale = Scale::new(d);
        Nglr { inner, net, scale }
    }

    /// The features and the inner predictor's residual at sampled interior positions of `q`
    /// (for training).
    #[cfg(feature = "train")]
    pub(crate) fn samples(
        &self,
        q: &[i64],
        shape: [usize; 3],
        positions: impl Iterator<Item = usize>,
    ) -> Vec<([i16; FEATURES], i64)> {
        let ri = self.inner.forward(q.to_vec(), shape, false);
        let [_, b, c] = shape;
        positions
            .filter_map(|p| {
                let (i, j, k) = (p / (b * c), (p / c) % b, p % c);
                (i > 0 && j > 0 && k > 0).then(|| {
                    let pred = q[p] - ri[p];
                    let f = features(q, |x| ri[x], shape, (i, j, k), pred, self.scale);
                    (f, ri[p])
                })
            })
            .collect()
    }

    #[cfg(feature = "train")]
    pub(crate) fn scale(&self) -> u32 {
        self.scale.d
    }

    /// The bias at interior position (i, j, k) where the inner predictor predicts `pred`
    /// (`ri`: its residuals by position).
    #[inline(always)]
    fn bias_at(
        &self,
        q: &[i64],
        ri: impl Fn(usize) -> i64,
        shape: [usize; 3],
        ijk: (usize, usize, usize),
        pred: i64,
    ) -> i64 {
        let f = features(q, ri, shape, ijk, pred, self.scale);
        self.net.bias(&f, self.scale.d)
    }
}

impl Predictor for Nglr {
    fn id(&self) -> u8 {
        NGLR
    }

    /// The inner predictor (id and parameters), then the scale (u32).
    fn put_params(&self, out: &mut Vec<u8>) {
        out.push(self.inner.id());
        self.inner.put_params(out);
        out.extend_from_slice(&self.scale.d.to_le_bytes());
    }

    /// Not weighed by sampled corners (the codec compares NGLR by its estimated bits).
    fn sample(&self, v: &[i64; 8], interior: bool) -> i64 {
        self.inner.sample(v, interior)
    }

    fn predict_at(&self, q: &[i64], shape: [usize; 3], idx: usize) -> i64 {
        let [_, b, c] = shape;
        let (i, j, k) = (idx / (b * c), (idx / c) % b, idx % c);
        let pred = self.inner.predict_at(q, shape, idx);
        if i == 0 || j == 0 || k == 0 {
            return pred;
        }
        // The neighbours' inner residuals, computed where read (filling is rare).
        let ri = |p: usize| q[p].wrapping_sub(self.inner.predict_at(q, shape, p));
        pred.wrapping_add(self.bias_at(q, ri, shape, (i, j, k), pred))
    }

    fn predict_interior(&self, q: &[i64], idx: usize, row: usize, plane: usize) -> i64 {
        let pred = self.inner.predict_interior(q, idx, row, plane);
        let shape = [idx / plane + 1, plane / row, row];
        let ijk = (idx / plane, (idx % plane) / row, idx % row);
        let ri = |p: usize| q[p].wrapping_sub(self.inner.predict_at(q, shape, p));
        pred.wrapping_add(self.bias_at(q, ri, shape, ijk, pred))
    }

    fn forward(&self, q: Vec<i64>, shape: [usize; 3], par: bool) -> Vec<i64> {
        let ri = self.inner.forward(q.clone(), shape, par);
        let [_, b, c] = shape;
        let mut out = ri.clone();
        let row = |(r, o): (usize, &mut [i64])| {
            let (i, j) = (r / b, r % b);
            if i == 0 || j == 0 {
                return;
            }
            // The row's features, feature-major, then its biases at once.
            let n = (c - 1).next_multiple_of(LANES);
            let mut feat = vec![0i16; FEATURES * n];
            for k in 1..c {
                let p = r * c + k;
                let pred = q[p].wrapping_sub(ri[p]);
                let f = features(&q, |x| ri[x], shape, (i, j, k), pred, self.scale);
                for (s, &x) in f.iter().enumerate() {
                    feat[s * n + k - 1] = x;
                }
            }
            let mut bias = vec![0i64; n];
            self.net.biases(&feat, n, self.scale.d, &mut bias);
            for (v, (&e, &b)) in o[1..].iter_mut().zip(ri[r * c + 1..].iter().zip(&bias)) {
                *v = e.wrapping_sub(b);
            }
        };
        if par {
            out.par_chunks_mut(c.max(1)).enumerate().for_each(row);
        } else {
            out.chunks_mut(c.max(1)).enumerate().for_each(row);
        }
        out
    }

    fn inverse(&self, q: &mut [i64], shape: [usize; 3]) {
        let [a, b, c] = shape;
        // `q` holds residuals: rebuilt in C order, keeping the inner residuals beside.
        let mut ri = vec![0i64; q.len()];
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    let p = (i * b + j) * c + k;
                    let r = q[p];
                    let (pred, bias) = if i > 0 && j > 0 && k > 0 {
                        let pred = self.inner.predict_interior(q, p, c, b * c);
                        (pred, self.bias_at(q, |x| ri[x], shape, (i, j, k), pred))
                    } else {
                        (self.inner.predict_at(q, shape, p), 0)
                    };
                    q[p] = pred.wrapping_add(bias).wrapping_add(r);
                    ri[p] = q[p].wrapping_sub(pred);
                }
            }
        }
    }
}

/// Reads NGLR's parameters: the inner predictor and the block scale; the network is the
/// stream's.
pub(crate) fn read(r: &mut PayloadReader, net: Option<&Arc<Network>>) -> Result<Boxed> {
    let net = net
        .ok_or_else(|| Error::corrupt("an NGLR block in a stream that carries no NGLR network"))?;
    let inner = super::read(r, None)?;
    let d = u32::from_le_bytes(r.bytes(4)?.try_into().unwrap());
    if d == 0 || d > 1 << 31 {
        return Err(Error::corrupt(format!("NGLR block scale {d}")));
    }
    Ok(Box::new(Nglr::new(net.clone(), inner, d)))
}

/// Whether NGLR's residuals look cheaper than its inner predictor's alone (`ri`: its residuals
/// of `q`) on a sample of interior positions, weighed as [`super::choose`] weighs predictors:
/// the entropy of the bit-length classes plus the raw bits below them. The positions `skip`
/// (ascending: special values, whose residuals either predictor sets to 0) are left out.
pub(crate) fn promising(
    p: &Nglr,
    q: &[i64],
    ri: &[i64],
    shape: [usize; 3],
    skip: &[usize],
) -> bool {
    let [_, b, c] = shape;
    let mut skip = skip.iter().peekable();
    let stride = (q.len() / 8192).max(1) | 1;
    let mut hist = [[0u32; 64]; 2];
    let mut raw = [0u64; 2];
    let mut count = |slot: usize, r: i64| {
        let z = ((r << 1) ^ (r >> 63)) as u64;
        let cls = 64 - z.leading_zeros() as usize;
        hist[slot][cls.min(63)] += 1;
        raw[slot] += cls.saturating_sub(1) as u64;
    };
    for idx in (0..q.len()).step_by(stride) {
        while skip.next_if(|&&s| s < idx).is_some() {}
        let (i, j, k) = (idx / (b * c), (idx / c) % b, idx % c);
        if i == 0 || j == 0 || k == 0 || skip.peek() == Some(&&idx) {
            continue;
        }
        let pred = q[idx].wrapping_sub(ri[idx]);
        count(
            0,
            ri[idx].wrapping_sub(p.bias_at(q, |x| ri[x], shape, (i, j, k), pred)),
        );
        count(1, ri[idx]);
    }
    let cost = |s: usize| crate::entropy::ints::entropy_bits(&hist[s]) + raw[s] as f64;
    cost(0) < cost(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// A network of weights of every sign and size, biases that switch units on and off.
    fn network(hidden: usize, seed: u64) -> Arc<Network> {
        let mut s = seed | 1;
        let mut w = |n: usize, m: u64| -> Vec<i16> {
            (0..n)
                .map(|_| (xorshift(&mut s) % (2 * m + 1)) as i16 - m as i16)
                .collect()
        };
        let (w1, w2) = (w(FEATURES * hidden, 8191), w(hidden, 8191));
        let b1 = (0..hidden as i32).map(|j| (j - 2) * 40_000).collect();
        Arc::new(Network::new(hidden, w1, b1, 11, w2, 12_345, 10).unwrap())
    }

    #[test]
    fn scaling_clamps_before_it_multiplies_with_the_same_result() {
        let mut s = 99u64;
        for d in [1u32, 2, 3, 7, 100, 4097, 1 << 20, (1 << 31) - 1, 1 << 31] {
            let scale = Scale::new(d);
            let m = (1i64 << (16 + FRAC)) / d as i64;
            let reference =
                |x: i64| (x.saturating_mul(m) >> 16).clamp(-(CLAMP as i64), CLAMP as i64) as i16;
            let edges = [
                0,
                1,
                -1,
                scale.limit,
                -scale.limit,
                scale.limit + 1,
                -scale.limit - 1,
            ];
            let random = (0..2000).map(|_| {
                let x = xorshift(&mut s) as i64;
                x >> (xorshift(&mut s) % 64)
            });
            for x in edges.into_iter().chain([i64::MAX, i64::MIN]).chain(random) {
                assert_eq!(scale.of(x), reference(x), "d {d} x {x}");
            }
        }
    }

    #[test]
    fn every_block_inverts_and_filled_positions_cost_nothing() {
        let mut s = 5u64;
        for (t, shape) in [
            [4, 6, 9],
            [2, 2, 2],
            [1, 5, 7],
            [3, 1, 4],
            [5, 4, 1],
            [1, 1, 1],
        ]
        .into_iter()
        .enumerate()
        {
            let n: usize = shape.iter().product();
            let q0: Vec<i64> = (0..n)
                .map(|i| (i % 9) as i64 * 300 + (xorshift(&mut s) % 200) as i64 - (t as i64) * 1000)
                .collect();
            let at: Vec<usize> = (0..n).filter(|i| i % 5 == 3).collect();
            for hidden in [8, 16, 5] {
                let inner = crate::residual::predict::choose(&q0, shape);
                let p = Nglr::new(network(hidden, 7 + t as u64), inner, 1 + t as u32 * 37);
                let mut q = q0.clone();
                crate::residual::predict::fill(&p, &mut q, shape, &at);
                let r = p.forward(q.clone(), shape, t % 2 == 0);
                assert!(at.iter().all(|&i| r[i] == 0), "{shape:?} {hidden}");
                let mut back = r.clone();
                p.inverse(&mut back, shape);
                assert_eq!(back, q, "{shape:?} {hidden}");
                // The interior rule agrees with the general one.
                let [_, b, c] = shape;
                for idx in (0..n).filter(|&i| i / (b * c) > 0 && (i / c) % b > 0 && i % c > 0) {
                    assert_eq!(
                        p.predict_interior(&q, idx, c, b * c),
                        p.predict_at(&q, shape, idx)
                    );
                }
            }
        }
    }

    #[test]
    fn a_network_reads_back_from_its_bytes_and_refuses_damage() {
        let net = network(8, 3);
        assert_eq!(Network::from_entry(net.entry()).unwrap(), *net);
        assert_eq!(net.bytes().len(), 8 + 8 * (2 * FEATURES + 6) + 4);
        let mut e = net.entry().to_vec();
        e[20] ^= 1;
        assert!(matches!(Network::from_entry(&e), Err(Error::Model(_))));
        let mut b = net.bytes().to_vec();
        b[5] = 65; // more hidden units than the bytes hold, and than allowed
        assert!(Network::from_bytes(&b).is_err());
        assert!(Network::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(Network::new(8, vec![0; 3], vec![0; 8], 0, vec![0; 8], 0, 0).is_err());
    }
}
