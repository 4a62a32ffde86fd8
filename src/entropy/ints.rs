//! Lossless coding of a block of Lorenzo residuals (i64, C order over a 3D block shape).
//!
//! Two coders, identified by the first byte:
//! - `CONTEXT`: per value, the magnitude class k (bit length of the zigzagged residual, i.e. the
//!   number of its significant bit planes) is coded with static rANS, one frequency table per
//!   context; the context is the mean class of the three causal neighbours (previous value in
//!   the row, same value in the previous row and in the previous plane). The k−1 bits below the
//!   leading one go to a raw bit stream, where they are close to incompressible.
//! - `PLANES`: the reference design: zigzag, one bit plane per bit, each plane zstd-compressed.
//!
//! Decoding checks every count and length, so corrupted payloads give errors.

use crate::error::{Error, Result};

const CONTEXT: u8 = 1;
const PLANES: u8 = 2;

/// Magnitude classes 0..=63 (residuals stay far below 2^62).
const SYMBOLS: usize = 64;
const CONTEXTS: usize = 24;
const PROB_BITS: u32 = 12;
const PROB_SCALE: u32 = 1 << PROB_BITS;
const RANS_L: u32 = 1 << 23;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn class(z: u64) -> u8 {
    (64 - z.leading_zeros()) as u8
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked reader over a payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Error::Truncated("block payload ends early".into()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.bytes(1)?[0];
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Corrupt("varint too long".into()))
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

/// Context from the classes of the causal neighbours: previous value in the row (`w`), same
/// position in the previous row (`n`) and plane (`b`); missing ones repeat a present one.
#[inline(always)]
fn context(w: u8, n: u8, b: u8) -> usize {
    ((2 * w as usize + n as usize + b as usize + 2) / 4).min(CONTEXTS - 1)
}

/// Calls `f(idx, ctx)` for every position in raster order, with the context computed from the
/// classes in `k` (which `f` may fill in as it goes: only earlier positions are read).
#[inline(always)]
fn for_each_context(shape: [usize; 3], k: &mut [u8], mut f: impl FnMut(usize, usize, &mut [u8])) {
    let [a, b, c] = shape;
    let plane = b * c;
    for i in 0..a {
        for j in 0..b {
            let base = (i * b + j) * c;
            for l in 0..c {
                let idx = base + l;
                let w = if l > 0 { k[idx - 1] } else { 0 };
                let n = if j > 0 { k[idx - c] } else { w };
                let bk = if i > 0 { k[idx - plane] } else { n };
                f(idx, context(w, n, bk), k);
            }
        }
    }
}

/// Codes `r` (residuals of a block of `shape`) with the context coder, appending to `out`.
pub fn encode(r: &[i64], shape: [usize; 3], out: &mut Vec<u8>) {
    let n = r.len();
    // One forward pass: classes, contexts (from earlier classes only), their counts, and the raw
    // bits, which are written in this order.
    let mut k = vec![0u8; n];
    let mut ctx = vec![0u8; n];
    let mut counts = vec![[0u32; SYMBOLS]; CONTEXTS];
    let mut bits = BitWriter::default();
    for_each_context(shape, &mut k, |idx, cx, k| {
        let z = zigzag(r[idx]);
        let kv = class(z);
        k[idx] = kv;
        ctx[idx] = cx as u8;
        counts[cx][kv as usize] += 1;
        if kv > 1 {
            bits.put(z & ((1u64 << (kv - 1)) - 1), kv as u32 - 1);
        }
    });

    out.push(CONTEXT);
    // Tables of the contexts in use: symbol range, then one log-scale weight per symbol.
    let used: u32 = (0..CONTEXTS)
        .filter(|&c| counts[c].iter().any(|&v| v > 0))
        .fold(0, |m, c| m | 1 << c);
    out.extend_from_slice(&used.to_le_bytes());
    let mut tables: Vec<Table> = (0..CONTEXTS)
        .map(|_| Table::with_freqs([0; SYMBOLS]))
        .collect();
    for c in (0..CONTEXTS).filter(|&c| used >> c & 1 == 1) {
        let h = &counts[c];
        let lo = (0..SYMBOLS).find(|&s| h[s] > 0).unwrap();
        let hi = (0..SYMBOLS).rev().find(|&s| h[s] > 0).unwrap();
        let total: u64 = h.iter().map(|&v| v as u64).sum();
        out.extend_from_slice(&[lo as u8, (hi - lo) as u8]);
        let mut weights = [0u32; SYMBOLS];
        for s in lo..=hi {
            let code = weight_code(h[s] as u64, total);
            out.push(code);
            weights[s] = weight_of(code);
        }
        // The decoder rebuilds exactly this table from the codes.
        tables[c] = Table::from_counts(&weights);
    }

    // rANS runs backwards; the raw bits forwards.
    let enc: Vec<Vec<EncSymbol>> = tables
        .iter()
        .map(|t| {
            (0..SYMBOLS)
                .map(|s| EncSymbol::new(t.start[s], t.freq[s]))
                .collect()
        })
        .collect();
    let mut bytes = Vec::with_capacity(n / 2 + 16);
    let mut x = RANS_L;
    for idx in (0..n).rev() {
        let e = &enc[ctx[idx] as usize][k[idx] as usize];
        while x >= e.x_max {
            bytes.push(x as u8);
            x >>= 8;
        }
        x = e.put(x);
    }
    // Reversed below, so the final state comes first, big-endian.
    bytes.extend_from_slice(&x.to_le_bytes());
    bytes.reverse();
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(&bytes);

    out.extend_from_slice(&bits.finish());
}

/// Weight codes: 0 for an absent symbol, else a 1-byte floating-point approximation of the
/// symbol's share of 2^18 (4 mantissa bits, at most code 255), from below; the coding loss of
/// the approximation is negligible.
fn weight_code(count: u64, total: u64) -> u8 {
    if count == 0 {
        return 0;
    }
    let share = ((count << 18) / total.max(1)).max(1);
    let e = 63 - share.leading_zeros(); // floor(log2)
    let code = if e < 4 {
        share as u32
    } else {
        16 * (e - 3) + ((share >> (e - 4)) as u32 & 15)
    };
    code.clamp(1, 255) as u8
}

/// The weight a code stands for (integer arithmetic, identical everywhere).
fn weight_of(code: u8) -> u32 {
    let c = code as u32;
    if c < 16 {
        c
    } else {
        (16 + (c & 15)) << ((c >> 4) - 1)
    }
}

/// A symbol prepared for encoding: x → (x / f)·2^PROB_BITS + x mod f + start, with the division
/// done as a multiplication by a precomputed reciprocal (the encoder's serial dependency chain
/// would otherwise wait on a hardware division for every value).
#[derive(Clone, Copy, Default)]
struct EncSymbol {
    x_max: u32,
    rcp: u32,
    shift: u32,
    bias: u32,
    cmpl: u32,
}

impl EncSymbol {
    fn new(start: u32, freq: u32) -> EncSymbol {
        if freq == 0 {
            return EncSymbol::default(); // never coded
        }
        let x_max = ((RANS_L >> PROB_BITS) << 8) * freq;
        let cmpl = PROB_SCALE - freq;
        if freq == 1 {
            // x / 1 = x: q = x via rcp = 2^32 − 1 and a bias folding in the correction.
            return EncSymbol {
                x_max,
                rcp: u32::MAX,
                shift: 0,
                bias: start + PROB_SCALE - 1,
                cmpl,
            };
        }
        let mut shift = 0;
        while freq > (1u32 << shift) {
            shift += 1;
        }
        // ceil(2^(shift+31) / freq): exact quotients for every x < 2^31 (x < 2^31 holds here).
        let rcp = (1u64 << (shift + 31)).div_ceil(freq as u64) as u32;
        EncSymbol {
            x_max,
            rcp,
            shift: shift - 1,
            bias: start,
            cmpl,
        }
    }

    #[inline(always)]
    fn put(&self, x: u32) -> u32 {
        let q = (((x as u64 * self.rcp as u64) >> 32) as u32) >> self.shift;
        x.wrapping_add(self.bias)
            .wrapping_add(q.wrapping_mul(self.cmpl))
    }
}

/// A normalized frequency table (sums to PROB_SCALE where used).
struct Table {
    freq: [u32; SYMBOLS],
    start: [u32; SYMBOLS],
    total: u32,
}

impl Table {
    fn from_counts(h: &[u32; SYMBOLS]) -> Table {
        let total: u64 = h.iter().map(|&v| v as u64).sum();
        let mut freq = [0u32; SYMBOLS];
        if total == 0 {
            return Table::with_freqs(freq);
        }
        let mut sum = 0u32;
        for s in 0..SYMBOLS {
            if h[s] > 0 {
                freq[s] = ((h[s] as u64 * PROB_SCALE as u64 / total) as u32).max(1);
                sum += freq[s];
            }
        }
        if sum > PROB_SCALE {
            // Take the excess from the largest entries first, never below 1.
            let mut excess = sum - PROB_SCALE;
            let mut order: Vec<usize> = (0..SYMBOLS).filter(|&s| freq[s] > 1).collect();
            order.sort_by_key(|&s| std::cmp::Reverse(freq[s]));
            for s in order {
                let take = excess.min(freq[s] - 1);
                freq[s] -= take;
                excess -= take;
                if excess == 0 {
                    break;
                }
            }
        } else {
            // Give the rounding remainder to the most frequent symbol.
            let top = (0..SYMBOLS).max_by_key(|&s| freq[s]).unwrap();
            freq[top] += PROB_SCALE - sum;
        }
        Table::with_freqs(freq)
    }

    fn with_freqs(freq: [u32; SYMBOLS]) -> Table {
        let mut start = [0u32; SYMBOLS];
        let mut acc = 0;
        for s in 0..SYMBOLS {
            start[s] = acc;
            acc += freq[s];
        }
        Table {
            freq,
            start,
            total: acc,
        }
    }
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    #[inline(always)]
    fn put(&mut self, v: u64, bits: u32) {
        // Split so the accumulator (holding < 32 pending bits) never overflows.
        if bits > 32 {
            self.put(v >> 32, bits - 32);
            self.put(v & 0xffff_ffff, 32);
            return;
        }
        self.acc = (self.acc << bits) | v;
        self.n += bits;
        if self.n >= 32 {
            self.n -= 32;
            self.out
                .extend_from_slice(&((self.acc >> self.n) as u32).to_be_bytes());
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out
    }
}

struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

impl BitReader<'_> {
    #[inline(always)]
    fn get(&mut self, bits: u32) -> Result<u64> {
        if bits > 32 {
            let hi = self.get(bits - 32)?;
            return Ok((hi << 32) | self.get(32)?);
        }
        if self.n < bits {
            // Refill 32 bits at once where the buffer allows, else byte by byte.
            if let Some(w) = self.buf.get(self.pos..self.pos + 4) {
                self.acc = (self.acc << 32) | u32::from_be_bytes(w.try_into().unwrap()) as u64;
                self.pos += 4;
                self.n += 32;
            } else {
                while self.n < bits {
                    let b = *self
                        .buf
                        .get(self.pos)
                        .ok_or_else(|| Error::Truncated("raw bits end early".into()))?;
                    self.pos += 1;
                    self.acc = (self.acc << 8) | b as u64;
                    self.n += 8;
                }
            }
        }
        self.n -= bits;
        Ok((self.acc >> self.n) & ((1u64 << bits) - 1))
    }
}

/// Decodes what [`encode`] (or the planes coder) wrote for a block of `shape`.
pub fn decode(payload: &[u8], shape: [usize; 3]) -> Result<Vec<i64>> {
    let n: usize = shape.iter().product();
    let mut r = Reader::new(payload);
    match r.bytes(1)?[0] {
        CONTEXT => decode_context(r, shape, n),
        PLANES => decode_planes(r, n),
        other => Err(Error::Corrupt(format!("unknown integer coder {other}"))),
    }
}

fn decode_context(mut r: Reader, shape: [usize; 3], n: usize) -> Result<Vec<i64>> {
    let used = u32::from_le_bytes(r.bytes(4)?.try_into().unwrap());
    if used >> CONTEXTS != 0 {
        return Err(Error::Corrupt("unknown contexts in use".into()));
    }
    // Decoding tables, all contexts in one array: for each slot of each context in use, the
    // symbol (bits 0-7), its frequency (8-19) and its start (20-31), so one load per value
    // gives all three.
    let mut slots = vec![0u32; CONTEXTS * PROB_SCALE as usize];
    let mut present = [false; CONTEXTS];
    for (cx, here) in present.iter_mut().enumerate() {
        if used & (1 << cx) == 0 {
            continue;
        }
        let head = r.bytes(2)?;
        let (lo, len) = (head[0] as usize, head[1] as usize);
        if lo + len >= SYMBOLS {
            return Err(Error::Corrupt("bad frequency table range".into()));
        }
        let mut weights = [0u32; SYMBOLS];
        for (s, &code) in r.bytes(len + 1)?.iter().enumerate() {
            weights[lo + s] = weight_of(code);
        }
        let t = Table::from_counts(&weights);
        if t.total != PROB_SCALE {
            return Err(Error::Corrupt("empty frequency table".into()));
        }
        let base = cx * PROB_SCALE as usize;
        for sym in 0..SYMBOLS {
            let (st, f) = (t.start[sym], t.freq[sym]);
            // A lone symbol's frequency, PROB_SCALE, is stored as 0 (it needs 13 bits).
            let entry = sym as u32 | (f & 0xfff) << 8 | st << 20;
            slots[base + st as usize..base + (st + f) as usize].fill(entry);
        }
        *here = true;
    }
    let len = r.varint()? as usize;
    let rans = r.bytes(len)?;
    if len < 4 {
        return Err(Error::Corrupt("rANS stream too short".into()));
    }
    let mut x = u32::from_be_bytes(rans[..4].try_into().unwrap());
    let mut pos = 4;
    let mut k = vec![0u8; n];
    let mut out = Vec::with_capacity(n);
    let mut bits = BitReader {
        buf: r.rest(),
        pos: 0,
        acc: 0,
        n: 0,
    };
    let mut failed = None;
    // One pass: the class from rANS, then its raw bits, then the value.
    for_each_context(shape, &mut k, |idx, cx, k| {
        if failed.is_some() {
            return;
        }
        if !present[cx] {
            failed = Some(Error::Corrupt("context without a table".into()));
            return;
        }
        let slot = x & (PROB_SCALE - 1);
        let e = slots[cx * PROB_SCALE as usize + slot as usize];
        let (s, f, st) = ((e & 0xff) as u8, (e >> 8) & 0xfff, e >> 20);
        // A frequency of PROB_SCALE does not fit 12 bits: it is the only symbol, start 0.
        let f = if f == 0 { PROB_SCALE } else { f };
        x = f * (x >> PROB_BITS) + slot - st;
        while x < RANS_L {
            let Some(&byte) = rans.get(pos) else {
                failed = Some(Error::Truncated("rANS stream ends early".into()));
                return;
            };
            x = (x << 8) | byte as u32;
            pos += 1;
        }
        k[idx] = s;
        let z = match s {
            0 => 0,
            1 => 1,
            _ => match bits.get(s as u32 - 1) {
                Ok(m) => (1u64 << (s - 1)) | m,
                Err(e) => {
                    failed = Some(e);
                    return;
                }
            },
        };
        out.push(unzigzag(z));
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if pos != rans.len() || x != RANS_L {
        return Err(Error::Corrupt(
            "rANS stream does not end where it should".into(),
        ));
    }
    // Only padding of the last byte may remain.
    if bits.buf.len() - bits.pos > 0 || bits.n >= 8 {
        return Err(Error::Corrupt("trailing raw bits".into()));
    }
    Ok(out)
}

/// The reference coder: bit planes of the zigzagged values, each compressed with zstd.
pub fn encode_planes(r: &[i64], level: i32, out: &mut Vec<u8>) {
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

fn decode_planes(mut r: Reader, n: usize) -> Result<Vec<i64>> {
    let nbits = r.bytes(1)?[0];
    if nbits > 64 {
        return Err(Error::Corrupt("more than 64 bit planes".into()));
    }
    let mut z = vec![0u64; n];
    let mut packed = vec![0u8; n.div_ceil(8)];
    for p in (0..nbits).rev() {
        let len = r.varint()? as usize;
        let got = zstd::bulk::decompress_to_buffer(r.bytes(len)?, &mut packed[..])
            .map_err(|e| Error::Corrupt(format!("bit plane: {e}")))?;
        if got != packed.len() {
            return Err(Error::Corrupt("bit plane of the wrong size".into()));
        }
        for (i, v) in z.iter_mut().enumerate() {
            *v |= (((packed[i / 8] >> (i % 8)) & 1) as u64) << p;
        }
    }
    if !r.rest().is_empty() {
        return Err(Error::Corrupt("trailing bytes after the bit planes".into()));
    }
    Ok(z.into_iter().map(unzigzag).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn weight_codes_approximate_shares_from_below() {
        for count in [1u64, 2, 15, 16, 17, 31, 100, 1000, 65535, 1 << 18] {
            let w = weight_of(weight_code(count, 1 << 18)) as u64;
            assert!(w <= count && w * 16 + 16 >= count * 15, "{count} -> {w}");
        }
        assert_eq!(weight_code(0, 5), 0);
        assert_eq!(weight_code(1, 1 << 40), 1);
    }

    #[test]
    fn reciprocal_encoding_equals_division() {
        for freq in [1u32, 2, 3, 7, 100, 1000, 2047, 4095, 4096] {
            let e = EncSymbol::new(5.min(PROB_SCALE - freq), freq);
            let start = 5.min(PROB_SCALE - freq);
            for x in (RANS_L..e.x_max.max(RANS_L + 1))
                .step_by(9973)
                .chain([RANS_L, e.x_max.saturating_sub(1)])
            {
                if x >= e.x_max {
                    continue;
                }
                assert_eq!(
                    e.put(x),
                    ((x / freq) << PROB_BITS) + (x % freq) + start,
                    "freq {freq} x {x}"
                );
            }
        }
    }

    #[test]
    fn both_coders_round_trip_every_magnitude() {
        let shape = [5, 7, 11];
        for scale in [0.0, 0.3, 3.0, 300.0, 3e6, 3e15] {
            let r = sample(385, scale);
            let mut a = Vec::new();
            encode(&r, shape, &mut a);
            assert_eq!(decode(&a, shape).unwrap(), r, "context, scale {scale}");
            let mut p = Vec::new();
            encode_planes(&r, 3, &mut p);
            assert_eq!(decode(&p, shape).unwrap(), r, "planes, scale {scale}");
        }
        let extremes = vec![i64::MAX >> 2, -(i64::MAX >> 2), 0, 1, -1];
        let mut a = Vec::new();
        encode(&extremes, [1, 1, 5], &mut a);
        assert_eq!(decode(&a, [1, 1, 5]).unwrap(), extremes);
    }

    #[test]
    fn context_coder_beats_the_entropy_of_a_laplacian_source_closely() {
        let r = sample(200_000, 20.0);
        let mut a = Vec::new();
        encode(&r, [10, 100, 200], &mut a);
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
