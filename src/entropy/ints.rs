//! Lossless coding of a block of Lorenzo residuals (i64, C order over a 3D block shape).
//!
//! Coders, identified by the first byte:
//! - `CONTEXT` (3): per value, the magnitude class k (bit length of the zigzagged residual, i.e.
//!   the number of its significant bit planes) is coded with static rANS, one frequency table
//!   per context; the context is the mean class of the three causal neighbours (previous value
//!   in the row, same value in the previous row and in the previous plane). The k−1 bits below
//!   the leading one go to a raw bit stream, where they are close to incompressible. The block
//!   is cut at a row into two lanes, each with its own rANS state and bit stream and contexts
//!   from its own values only, so a decoder runs the two dependency chains side by side.
//! - `CONTEXT_V1` (1): the same model in one lane with 12-bit probabilities (format version 2
//!   streams written before the lanes; decoded only).
//! - `PLANES` (2): the reference design: zigzag, one bit plane per bit, each plane
//!   zstd-compressed.
//!
//! Decoding checks every count and length, so corrupted payloads give errors.

use crate::error::{Error, Result};

const CONTEXT_V1: u8 = 1;
const PLANES: u8 = 2;
const CONTEXT: u8 = 3;

/// Magnitude classes 0..=63 (residuals stay far below 2^62).
const SYMBOLS: usize = 64;
const CONTEXTS: usize = 24;
/// Probability precision of `CONTEXT`: 10 bits cost under 0.03% on the real fields against 12,
/// and keep the decoding tables of the contexts in use within the L1 cache.
const PROB_BITS: u32 = 10;
const V1_PROB_BITS: u32 = 12;
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

    /// A length-prefixed slice.
    fn chunk(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        self.bytes(usize::try_from(len).unwrap_or(usize::MAX))
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

/// Position of a lane's next value: index within the lane and (plane, row, column) in the
/// block; neighbours before the lane's start belong to the other lane and count as missing.
#[derive(Clone, Copy)]
struct Cursor {
    at: usize,
    i: usize,
    j: usize,
    l: usize,
}

impl Cursor {
    fn new(start: usize, shape: [usize; 3]) -> Cursor {
        let [_, b, c] = shape;
        let row = start / c.max(1);
        Cursor {
            at: 0,
            i: row / b.max(1),
            j: row % b.max(1),
            l: start % c.max(1),
        }
    }

    /// The context of the current position from the lane's classes `k`; `w` is the class just
    /// before it in the lane.
    #[inline(always)]
    fn context(&self, k: &[u8], w: u8, shape: [usize; 3]) -> usize {
        let [_, b, c] = shape;
        let w = if self.l > 0 && self.at > 0 { w } else { 0 };
        let n = if self.j > 0 && self.at >= c {
            k[self.at - c]
        } else {
            w
        };
        let bk = if self.i > 0 && self.at >= b * c {
            k[self.at - b * c]
        } else {
            n
        };
        context(w, n, bk)
    }

    #[inline(always)]
    fn advance(&mut self, shape: [usize; 3]) {
        self.at += 1;
        self.l += 1;
        if self.l == shape[2] {
            self.l = 0;
            self.j += 1;
            if self.j == shape[1] {
                self.j = 0;
                self.i += 1;
            }
        }
    }
}

/// Where the second lane starts: half the rows, or half the values of a single row.
fn lane_split(shape: [usize; 3]) -> usize {
    let [a, b, c] = shape;
    let rows = a * b;
    if rows >= 2 {
        rows.div_ceil(2) * c
    } else {
        c.div_ceil(2)
    }
}

/// The classes of one lane's residuals `r` (starting at `start` in the block), their contexts,
/// and the count of each class per context.
fn lane_model(
    r: &[i64],
    start: usize,
    shape: [usize; 3],
    k: &mut [u8],
    ctx: &mut [u8],
) -> Vec<[u32; SYMBOLS]> {
    let mut counts = vec![[0u32; SYMBOLS]; CONTEXTS];
    for (kv, &v) in k.iter_mut().zip(r) {
        *kv = class(zigzag(v));
    }
    let mut cur = Cursor::new(start, shape);
    let mut w = 0;
    for cx_out in ctx.iter_mut() {
        let cx = cur.context(k, w, shape);
        *cx_out = cx as u8;
        w = k[cur.at];
        counts[cx][w as usize] += 1;
        cur.advance(shape);
    }
    counts
}

/// `a` and `b`, on two threads of the current pool if `par`.
fn both<A: Send, B: Send>(
    par: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if par {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// Codes `r` (residuals of a block of `shape`) with the context coder, appending to `out`.
/// `par` lets the lanes' independent work run on two threads (same output).
pub fn encode(r: &[i64], shape: [usize; 3], out: &mut Vec<u8>, par: bool) {
    let n = r.len();
    let split = lane_split(shape).min(n);
    let mut k = vec![0u8; n];
    let mut ctx = vec![0u8; n];
    let (ka, kb) = k.split_at_mut(split);
    let (ca, cb) = ctx.split_at_mut(split);
    let (mut counts, cb_counts) = both(
        par,
        || lane_model(&r[..split], 0, shape, ka, ca),
        || lane_model(&r[split..], split, shape, kb, cb),
    );
    for (c, o) in counts.iter_mut().zip(&cb_counts) {
        c.iter_mut().zip(o).for_each(|(x, y)| *x += y);
    }

    out.push(CONTEXT);
    let tables = write_tables(&counts, out);
    let enc: Vec<[EncSymbol; SYMBOLS]> = tables
        .iter()
        .map(|t| std::array::from_fn(|s| EncSymbol::new(t.start[s], t.freq[s])))
        .collect();
    let (k, ctx) = (&k, &ctx);
    let rans = || {
        // rANS runs backwards, both lanes in one loop so their serial chains overlap; lane A
        // is at least as long as lane B, and its extra values come last.
        let mut bytes = [split, n - split].map(|len| Vec::with_capacity(len / 2 + 16));
        let [mut xa, mut xb] = [RANS_L; 2];
        let sym = |idx: usize| &enc[ctx[idx] as usize][k[idx] as usize];
        let len_b = n - split;
        let [ba, bb] = &mut bytes;
        for t in (len_b..split).rev() {
            sym(t).put(&mut xa, ba);
        }
        for t in (0..len_b).rev() {
            sym(t).put(&mut xa, ba);
            sym(split + t).put(&mut xb, bb);
        }
        for (b, x) in bytes.iter_mut().zip([xa, xb]) {
            // Reversed, so the final state comes first, big-endian.
            b.extend_from_slice(&x.to_le_bytes());
            b.reverse();
        }
        bytes
    };
    // The raw bits, forwards (none below classes 0 and 1).
    let bits = || {
        [(0, split), (split, n)].map(|(start, end)| {
            let mut bits = BitWriter::default();
            for idx in start..end {
                let nb = (k[idx] as u32).saturating_sub(1);
                bits.put(zigzag(r[idx]) & ((1u64 << nb) - 1), nb);
            }
            bits.finish()
        })
    };
    let (rans, bits) = both(par, rans, bits);
    for b in &rans {
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    put_varint(out, bits[0].len() as u64);
    bits.iter().for_each(|b| out.extend_from_slice(b));
}

/// Writes the tables of the contexts in use (a mask, then per context its symbol range and one
/// log-scale weight per symbol) and returns all contexts' tables as the decoder rebuilds them.
fn write_tables(counts: &[[u32; SYMBOLS]], out: &mut Vec<u8>) -> Vec<Table> {
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
        tables[c] = Table::from_counts(&weights, PROB_BITS);
    }
    tables
}

/// Reads what [`write_tables`] wrote: the tables of the contexts in use, in context order,
/// normalized to `prob_bits`.
fn read_tables(r: &mut Reader, prob_bits: u32) -> Result<Vec<(usize, Table)>> {
    let used = u32::from_le_bytes(r.bytes(4)?.try_into().unwrap());
    if used >> CONTEXTS != 0 {
        return Err(Error::Corrupt("unknown contexts in use".into()));
    }
    let mut tables = Vec::new();
    for cx in (0..CONTEXTS).filter(|&cx| used >> cx & 1 == 1) {
        let head = r.bytes(2)?;
        let (lo, len) = (head[0] as usize, head[1] as usize);
        if lo + len >= SYMBOLS {
            return Err(Error::Corrupt("bad frequency table range".into()));
        }
        let mut weights = [0u32; SYMBOLS];
        for (s, &code) in r.bytes(len + 1)?.iter().enumerate() {
            weights[lo + s] = weight_of(code);
        }
        let t = Table::from_counts(&weights, prob_bits);
        if t.total != 1 << prob_bits {
            return Err(Error::Corrupt("empty frequency table".into()));
        }
        tables.push((cx, t));
    }
    Ok(tables)
}

/// Reads the tables and lays out their decoding slots, those of the contexts in use only, one
/// after the other; returns the slots and each context's first slot (top bit set: absent).
/// A slot holds the symbol (bits 0-7), its frequency minus one (8-19; a lone symbol at 12 bits
/// has 2^12) and its start (20-31), so one load per value gives all three.
fn read_slots(r: &mut Reader, prob_bits: u32) -> Result<(Vec<u32>, [u32; CONTEXTS])> {
    let tables = read_tables(r, prob_bits)?;
    let size = 1usize << prob_bits;
    let mut base = [1u32 << 31; CONTEXTS];
    let mut slots = vec![0u32; tables.len().max(1) * size];
    for (t, (cx, table)) in tables.iter().enumerate() {
        base[*cx] = (t * size) as u32;
        let mine = &mut slots[t * size..(t + 1) * size];
        for sym in 0..SYMBOLS {
            let (st, f) = (table.start[sym], table.freq[sym]);
            if f > 0 {
                let entry = sym as u32 | (f - 1) << 8 | st << 20;
                mine[st as usize..(st + f) as usize].fill(entry);
            }
        }
    }
    Ok((slots, base))
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
        let cmpl = (1 << PROB_BITS) - freq;
        if freq == 1 {
            // x / 1 = x: q = x via rcp = 2^32 − 1 and a bias folding in the correction.
            return EncSymbol {
                x_max,
                rcp: u32::MAX,
                shift: 0,
                bias: start + (1 << PROB_BITS) - 1,
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

    /// Encodes the symbol into the state `x`, renormalizing into `out` (which is reversed at
    /// the end).
    #[inline(always)]
    fn put(&self, x: &mut u32, out: &mut Vec<u8>) {
        while *x >= self.x_max {
            out.push(*x as u8);
            *x >>= 8;
        }
        let q = (((*x as u64 * self.rcp as u64) >> 32) as u32) >> self.shift;
        *x = x
            .wrapping_add(self.bias)
            .wrapping_add(q.wrapping_mul(self.cmpl));
    }
}

/// A normalized frequency table (sums to 2^prob_bits where used).
struct Table {
    freq: [u32; SYMBOLS],
    start: [u32; SYMBOLS],
    total: u32,
}

impl Table {
    fn from_counts(h: &[u32; SYMBOLS], prob_bits: u32) -> Table {
        let scale = 1u32 << prob_bits;
        let total: u64 = h.iter().map(|&v| v as u64).sum();
        let mut freq = [0u32; SYMBOLS];
        if total == 0 {
            return Table::with_freqs(freq);
        }
        let mut sum = 0u32;
        for s in 0..SYMBOLS {
            if h[s] > 0 {
                freq[s] = ((h[s] as u64 * scale as u64 / total) as u32).max(1);
                sum += freq[s];
            }
        }
        if sum > scale {
            // Take the excess from the largest entries first, never below 1.
            let mut excess = sum - scale;
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
            freq[top] += scale - sum;
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
            self.put32(v >> 32, bits - 32);
            self.put32(v & 0xffff_ffff, 32);
        } else {
            self.put32(v, bits);
        }
    }

    #[inline(always)]
    fn put32(&mut self, v: u64, bits: u32) {
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

/// Decodes what [`encode`] (or another coder) wrote for a block of `shape`.
pub fn decode(payload: &[u8], shape: [usize; 3]) -> Result<Vec<i64>> {
    let n: usize = shape.iter().product();
    // A block that claims more values than its bytes can hold is refused before its buffers
    // are allocated.
    if let Some(cap) = max_values(payload)?.filter(|&cap| n as u64 > cap) {
        return Err(Error::Corrupt(format!(
            "{n} values claimed, but {} bytes of coded integers hold at most {cap}",
            payload.len()
        )));
    }
    let mut r = Reader::new(payload);
    match r.bytes(1)?[0] {
        CONTEXT => decode_lanes(r, shape, n),
        CONTEXT_V1 => decode_v1(r, shape, n),
        PLANES => decode_planes(r, n),
        other => Err(Error::Corrupt(format!("unknown integer coder {other}"))),
    }
}

/// The most values a payload of [`decode`] can hold, or `None` where there is no limit (a
/// context whose table has a single symbol codes it in zero bits; bit planes all zero are not
/// stored). Reads only the coder's tables and lengths, so a stream that claims more values than
/// its bytes can hold is refused before anything is allocated for them.
pub fn max_values(payload: &[u8]) -> Result<Option<u64>> {
    let mut r = Reader::new(payload);
    match r.bytes(1)?[0] {
        CONTEXT => {
            let tables = read_tables(&mut r, PROB_BITS)?;
            let lanes = [r.chunk()?.len(), r.chunk()?.len()];
            Ok(rans_capacity(&tables, PROB_BITS, &lanes))
        }
        CONTEXT_V1 => {
            let tables = read_tables(&mut r, V1_PROB_BITS)?;
            Ok(rans_capacity(&tables, V1_PROB_BITS, &[r.chunk()?.len()]))
        }
        PLANES => {
            if r.bytes(1)?[0] == 0 {
                return Ok(None);
            }
            let len = r.varint()? as usize;
            let plane = zstd::zstd_safe::get_frame_content_size(r.bytes(len)?)
                .map_err(|_| Error::Corrupt("bit plane is not a zstd frame".into()))?;
            // Each plane holds one bit per value.
            Ok(plane.map(|bytes| bytes.saturating_mul(8)))
        }
        other => Err(Error::Corrupt(format!("unknown integer coder {other}"))),
    }
}

/// Values the rANS lanes of `lane_lens` bytes (4-byte state + renormalisation bytes) can decode
/// at most, when no symbol has the whole probability range M = 2^p. Decoding a symbol of
/// frequency f <= M − 1 from state x takes x to x − (M − f)·⌊x/M⌋ − start <= x − ⌊x/M⌋. A step
/// that leaves x >= L (so x was >= L) shrinks log2(x + 1) by at least 2^−p − 2^−23 >= 2^−(p+1);
/// a step that leaves x < L is followed by a byte read, which adds at most 8 to log2(x + 1),
/// as the initial state adds 32. A valid lane reads exactly its bytes, so it decodes at most
/// B + (32 + 8B)·2^(p+1) values, B its renormalisation bytes; more fail at its end anyway.
fn rans_capacity(tables: &[(usize, Table)], p: u32, lane_lens: &[usize]) -> Option<u64> {
    let lone = tables.iter().any(|(_, t)| t.freq.contains(&(1 << p)));
    (!lone).then(|| {
        lane_lens
            .iter()
            .map(|&len| {
                let b = len.saturating_sub(4) as u64;
                b + (32 + 8 * b) * (2u64 << p)
            })
            .fold(0u64, u64::saturating_add)
    })
}

/// Reads `nb` ≤ 56 bits at bit position `pos` (MSB first), zeros past the end (which the
/// caller detects from the final position).
#[inline(always)]
fn peek_bits(buf: &[u8], pos: usize, nb: u32) -> u64 {
    let byte = pos >> 3;
    let w = match buf.get(byte..byte + 8) {
        Some(s) => u64::from_be_bytes(s.try_into().unwrap()),
        None => {
            let mut t = [0u8; 8];
            let tail = buf.get(byte..).unwrap_or(&[]);
            t[..tail.len()].copy_from_slice(tail);
            u64::from_be_bytes(t)
        }
    };
    // Shifting by 1 then 63 − nb is a shift by 64 − nb that also gives 0 for nb = 0.
    ((w << (pos & 7)) >> 1) >> (63 - nb)
}

/// One lane's decoder state, with the lane's part of the classes and of the output;
/// probabilities of `P` bits.
struct Lane<'a, const P: u32> {
    x: u32,
    rans: &'a [u8],
    pos: usize,
    bits: &'a [u8],
    bit_pos: usize,
    cur: Cursor,
    w: u8,
    k: &'a mut [u8],
    out: &'a mut [i64],
}

impl<'a, const P: u32> Lane<'a, P> {
    fn new(
        rans: &'a [u8],
        bits: &'a [u8],
        start: usize,
        shape: [usize; 3],
        k: &'a mut [u8],
        out: &'a mut [i64],
    ) -> Result<Lane<'a, P>> {
        let head = rans
            .get(..4)
            .ok_or_else(|| Error::Corrupt("rANS stream too short".into()))?;
        Ok(Lane {
            x: u32::from_be_bytes(head.try_into().unwrap()),
            rans,
            pos: 4,
            bits,
            bit_pos: 0,
            cur: Cursor::new(start, shape),
            w: 0,
            k,
            out,
        })
    }

    /// The class's raw bits below its leading one, and the value.
    #[inline(always)]
    fn value(&mut self, s: u8) -> i64 {
        let nb = (s as u32).saturating_sub(1);
        let m = if nb <= 56 {
            peek_bits(self.bits, self.bit_pos, nb)
        } else {
            (peek_bits(self.bits, self.bit_pos, nb - 32) << 32)
                | peek_bits(self.bits, self.bit_pos + nb as usize - 32, 32)
        };
        self.bit_pos += nb as usize;
        unzigzag(((1u64 << s) >> 1) | m)
    }

    /// Decodes the lane's next value. Reads past the end give zeros and are caught by
    /// [`Lane::finish`]; a context without a table is flagged in `bad`.
    #[inline(always)]
    fn step(&mut self, slots: &[u32], base: &[u32; CONTEXTS], shape: [usize; 3], bad: &mut u32) {
        let cx = self.cur.context(self.k, self.w, shape);
        let b = base[cx];
        *bad |= b >> 31;
        let slot = self.x & ((1 << P) - 1);
        let e = slots[(b & 0x7fff_ffff) as usize + slot as usize];
        let (s, f, st) = ((e & 0xff) as u8, ((e >> 8) & 0xfff) + 1, e >> 20);
        self.x = f * (self.x >> P) + slot - st;
        // From x >= 2^(23 − P) two bytes always suffice (P <= 12).
        for _ in 0..2 {
            if self.x < RANS_L {
                let byte = self.rans.get(self.pos).copied().unwrap_or(0);
                self.x = (self.x << 8) | byte as u32;
                self.pos += 1;
            }
        }
        let v = self.value(s);
        self.k[self.cur.at] = s;
        self.out[self.cur.at] = v;
        self.w = s;
        self.cur.advance(shape);
    }

    /// Whether the lane has read past its bytes: a valid lane never does, so a payload that
    /// claims more values than it holds is caught here, early.
    fn overrun(&self) -> Result<()> {
        if self.pos > self.rans.len() || self.bit_pos > self.bits.len() * 8 {
            return Err(Error::Truncated("lane ends early".into()));
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        self.overrun()?;
        if self.pos != self.rans.len() || self.x != RANS_L {
            return Err(Error::Corrupt(
                "rANS stream does not end where it should".into(),
            ));
        }
        // Only padding of the last byte may remain.
        if self.bits.len() * 8 - self.bit_pos >= 8 {
            return Err(Error::Corrupt("trailing raw bits".into()));
        }
        Ok(())
    }
}

fn decode_lanes(mut r: Reader, shape: [usize; 3], n: usize) -> Result<Vec<i64>> {
    let (slots, base) = read_slots(&mut r, PROB_BITS)?;
    let rans = [r.chunk()?, r.chunk()?];
    let bits_a = r.chunk()?;
    let split = lane_split(shape).min(n);
    let mut k = crate::error::try_vec::<u8>(n, "decoding")?;
    let mut out = crate::error::try_vec::<i64>(n, "decoding")?;
    let (ka, kb) = k.split_at_mut(split);
    let (oa, ob) = out.split_at_mut(split);
    let mut a = Lane::<PROB_BITS>::new(rans[0], bits_a, 0, shape, ka, oa)?;
    let mut b = Lane::<PROB_BITS>::new(rans[1], r.rest(), split, shape, kb, ob)?;
    let mut bad = 0;
    // Lane A holds at least as many values as lane B; both chains advance in one loop.
    for run in runs(n - split) {
        for _ in run {
            a.step(&slots, &base, shape, &mut bad);
            b.step(&slots, &base, shape, &mut bad);
        }
        a.overrun()?;
        b.overrun()?;
    }
    for run in runs(split - (n - split)) {
        for _ in run {
            a.step(&slots, &base, shape, &mut bad);
        }
        a.overrun()?;
    }
    check_bad(bad)?;
    a.finish()?;
    b.finish()?;
    Ok(out)
}

/// `0..n` in runs of 2^12 steps, between which a decoder checks that its lanes have not run
/// out of bytes: a lying payload stops after the values it holds, not after all it claims.
fn runs(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    const RUN: usize = 1 << 12;
    (0..n.div_ceil(RUN)).map(move |r| r * RUN..((r + 1) * RUN).min(n))
}

fn check_bad(bad: u32) -> Result<()> {
    match bad {
        0 => Ok(()),
        _ => Err(Error::Corrupt("context without a table".into())),
    }
}

/// The one-lane, 12-bit coder of earlier streams.
fn decode_v1(mut r: Reader, shape: [usize; 3], n: usize) -> Result<Vec<i64>> {
    let (slots, base) = read_slots(&mut r, V1_PROB_BITS)?;
    let rans = r.chunk()?;
    let mut k = crate::error::try_vec::<u8>(n, "decoding")?;
    let mut out = crate::error::try_vec::<i64>(n, "decoding")?;
    let mut lane = Lane::<V1_PROB_BITS>::new(rans, r.rest(), 0, shape, &mut k, &mut out)?;
    let mut bad = 0;
    for run in runs(n) {
        for _ in run {
            lane.step(&slots, &base, shape, &mut bad);
        }
        lane.overrun()?;
    }
    check_bad(bad)?;
    lane.finish()?;
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
    let mut z = crate::error::try_vec::<u64>(n, "decoding")?;
    let mut packed = crate::error::try_vec::<u8>(n.div_ceil(8), "decoding")?;
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
        for freq in [1u32, 2, 3, 7, 100, 511, 1000, 1023, 1024] {
            let e = EncSymbol::new(5.min((1 << PROB_BITS) - freq), freq);
            let start = 5.min((1 << PROB_BITS) - freq);
            for x in (RANS_L..e.x_max.max(RANS_L + 1))
                .step_by(9973)
                .chain([RANS_L, e.x_max.saturating_sub(1)])
            {
                if x >= e.x_max {
                    continue;
                }
                let (mut y, mut out) = (x, Vec::new());
                e.put(&mut y, &mut out);
                assert!(out.is_empty());
                assert_eq!(
                    y,
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
            encode(&r, shape, &mut a, false);
            assert_eq!(decode(&a, shape).unwrap(), r, "context, scale {scale}");
            let mut b = Vec::new();
            encode(&r, shape, &mut b, true);
            assert_eq!(a, b, "the lanes on two threads give the same bytes");
            let mut p = Vec::new();
            encode_planes(&r, 3, &mut p);
            assert_eq!(decode(&p, shape).unwrap(), r, "planes, scale {scale}");
        }
        let extremes = vec![i64::MAX >> 2, -(i64::MAX >> 2), 0, 1, -1];
        let mut a = Vec::new();
        encode(&extremes, [1, 1, 5], &mut a, false);
        assert_eq!(decode(&a, [1, 1, 5]).unwrap(), extremes);
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
