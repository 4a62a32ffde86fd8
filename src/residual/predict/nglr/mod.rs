//! NGLR: the block's own predictor (a Lorenzo subset or the least-squares fit, "inner") plus a
//! bias from a small integer network ([`Network`]) over the causal neighbourhood: the quantized
//! values around the prediction and the inner predictor's residuals, scaled by the block's mean
//! residual. Integer arithmetic throughout, so the decoder reproduces the encoder's bias bit for
//! bit on any machine. The encoder knows every value and computes all biases at once; the
//! decoder runs in C order. The network, trained per collection (`train`), travels once per
//! stream as a table entry; a block names it by predictor id 9, then its inner predictor and
//! its scale.
//!
//! Where a position lacks the Lorenzo cube (first plane, row or column) the bias is 0: the inner
//! predictor alone. Predictor 10, for blocks of one plane (2D arrays), biases the first plane
//! too. `doc/format.md` §7.4 specifies every operation.

mod network;
#[cfg(feature = "train")]
pub mod train;

use network::LANES;
pub use network::{load, save, Network, FEATURES};
pub(crate) use network::{CLAMP, FRAC};

use super::{Boxed, Predictor};
use crate::error::{Error, Result};
use crate::format::payload::PayloadReader;
use rayon::prelude::*;
use std::sync::Arc;

/// Predictor id of NGLR.
pub(crate) const NGLR: u8 = 9;
/// Predictor id of NGLR that biases the first plane too (version 12): a block of one plane
/// (a 2D array) has no Lorenzo cube, so predictor 9 would add nothing there.
pub(crate) const NGLR_PLANAR: u8 = 10;
/// Offsets (planes, rows, columns back) of the neighbours whose values, relative to the
/// prediction, are features 0..11; the last is north-east (a column ahead).
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
/// Offsets of the neighbours whose inner residuals are features 11..20.
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

/// Whether NGLR biases position (i, j, k): where the Lorenzo cube lies in the block (all of
/// i, j, k ≥ 1), or, `planar` (predictor 10, for blocks of one plane: 2D arrays), its square.
#[inline(always)]
fn biased(planar: bool, (i, j, k): (usize, usize, usize)) -> bool {
    (i > 0 || planar) && j > 0 && k > 0
}

/// Whether the encoder predicts a block of `shape` with predictor 10: where it has one plane.
pub(crate) fn planar(shape: [usize; 3]) -> bool {
    shape[0] == 1
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

/// The features of interior position (i, j, k) (all of i, j, k ≥ 1), predicted `pred`, from
/// the values `q` and the inner residuals `ri` (by position) before it in C order: neighbours outside the block
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

/// The block scale: the mean magnitude of its predictor's residuals at the positions NGLR
/// biases (planar where the block has one plane), rounded up, at least 1 (encoder only; the
/// decoder reads it).
pub(crate) fn scale_of(rl: &[i64], shape: [usize; 3]) -> u32 {
    let [a, b, c] = shape;
    let (mut sum, mut n) = (0u128, 0u128);
    for i in usize::from(!planar(shape))..a {
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
    /// Predictor 10: the first plane biased too.
    planar: bool,
}

impl Nglr {
    /// NGLR over `inner` for a block of scale `d`; `planar`: predictor 10.
    pub(crate) fn new(net: Arc<Network>, inner: Boxed, d: u32, planar: bool) -> Nglr {
        let scale = Scale::new(d);
        Nglr {
            inner,
            net,
            scale,
            planar,
        }
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
        if self.planar {
            NGLR_PLANAR
        } else {
            NGLR
        }
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
        if !biased(self.planar, (i, j, k)) {
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
            if !biased(self.planar, (i, j, 1)) {
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

    fn inverse(&self, q: &mut [i64], shape: [usize; 3]) -> crate::error::Result<()> {
        let [a, b, c] = shape;
        // `q` holds residuals: rebuilt in C order, keeping the inner residuals beside.
        let mut ri =
            crate::pipeline::scratch::I64.try_filled(q.len(), "an NGLR block's residuals")?;
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    let p = (i * b + j) * c + k;
                    let r = q[p];
                    let (pred, bias) = if biased(self.planar, (i, j, k)) {
                        let pred = if i > 0 {
                            self.inner.predict_interior(q, p, c, b * c)
                        } else {
                            self.inner.predict_at(q, shape, p)
                        };
                        (pred, self.bias_at(q, |x| ri[x], shape, (i, j, k), pred))
                    } else {
                        (self.inner.predict_at(q, shape, p), 0)
                    };
                    q[p] = pred.wrapping_add(bias).wrapping_add(r);
                    ri[p] = q[p].wrapping_sub(pred);
                }
            }
        }
        crate::pipeline::scratch::I64.give(ri);
        Ok(())
    }
}

/// What the network learns from (training): the block's scale under `inner`, and the features
/// and inner residual at the interior positions among `positions` of `q`.
#[cfg(feature = "train")]
pub(crate) fn samples(
    inner: &dyn Predictor,
    q: &[i64],
    shape: [usize; 3],
    positions: impl Iterator<Item = usize>,
) -> (u32, Vec<([i16; FEATURES], i64)>) {
    let ri = inner.forward(q.to_vec(), shape, false);
    let scale = Scale::new(scale_of(&ri, shape));
    let [_, b, c] = shape;
    let at = positions.filter_map(|p| {
        let (i, j, k) = (p / (b * c), (p / c) % b, p % c);
        biased(planar(shape), (i, j, k)).then(|| {
            let pred = q[p] - ri[p];
            let f = features(q, |x| ri[x], shape, (i, j, k), pred, scale);
            (f, ri[p])
        })
    });
    (scale.d, at.collect())
}

/// Reads NGLR's parameters (predictor `id`, 9 or 10): the inner predictor and the block scale;
/// the network is the stream's.
pub(crate) fn read(r: &mut PayloadReader, id: u8, net: Option<&Arc<Network>>) -> Result<Boxed> {
    let net = net
        .ok_or_else(|| Error::corrupt("an NGLR block in a stream that carries no NGLR network"))?;
    let inner = super::read(r, None)?;
    let d = u32::from_le_bytes(r.bytes(4)?.try_into().unwrap());
    if d == 0 || d > 1 << 31 {
        return Err(Error::corrupt(format!("NGLR block scale {d}")));
    }
    Ok(Box::new(Nglr::new(
        net.clone(),
        inner,
        d,
        id == NGLR_PLANAR,
    )))
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
        if !biased(p.planar, (i, j, k)) || skip.peek() == Some(&&idx) {
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
            // Predictor 10 on every shape too: its rule holds for blocks of more planes.
            for (hidden, planar) in [(8, false), (16, false), (5, false), (8, true), (5, true)] {
                let inner = crate::residual::predict::choose(&q0, shape);
                let net = network(hidden, 7 + t as u64);
                let p = Nglr::new(net, inner, 1 + t as u32 * 37, planar);
                let mut q = q0.clone();
                crate::residual::predict::fill(&p, &mut q, shape, &at);
                let r = p.forward(q.clone(), shape, t % 2 == 0);
                assert!(at.iter().all(|&i| r[i] == 0), "{shape:?} {hidden}");
                let mut back = r.clone();
                p.inverse(&mut back, shape).unwrap();
                assert_eq!(back, q, "{shape:?} {hidden} {planar}");
                // Predictor 10 biases the first plane, 9 leaves it to the inner predictor.
                let [_, b, c] = shape;
                let first: Vec<usize> = (0..b * c).filter(|&x| x / c > 0 && x % c > 0).collect();
                let own =
                    crate::residual::predict::choose(&q0, shape).forward(q.clone(), shape, false);
                let same = first.iter().all(|&x| r[x] == own[x]);
                assert!(
                    same != planar || first.is_empty(),
                    "{shape:?} {hidden} {planar}"
                );
                // The interior rule agrees with the general one.
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
