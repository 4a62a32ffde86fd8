//! The context coder (id 3; id 1 its one-lane, 12-bit predecessor, decoded only). Per value,
//! the magnitude class k (bit length of the zigzagged residual) is coded with static rANS, one
//! frequency table ([`tables`](super::tables)) per context; the context is the mean class of the
//! three causal neighbours (previous value in the row, same value in the previous row and
//! plane). The k−1 bits below the leading one go to a raw bit stream. The block is cut at a row
//! into two lanes, each with its own rANS state, bit stream and contexts from its own values
//! only, so a decoder runs the two dependency chains side by side.

use super::tables::{
    rans_capacity, read_slots, read_tables, write_tables, EncSymbol, CONTEXTS, PROB_BITS, RANS_L,
    SYMBOLS, V1_PROB_BITS,
};
use super::{class, unzigzag, zigzag, CONTEXT};
use crate::error::{try_vec, Error, Result};
use crate::format::payload::{put_varint, PayloadReader};

/// Context from the classes of the causal neighbours: previous value in the row (`w`), same
/// position in the previous row (`n`) and plane (`b`); missing ones repeat a present one.
#[inline(always)]
pub(super) fn context(w: u8, n: u8, b: u8) -> usize {
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
pub(super) fn encode(r: &[i64], shape: [usize; 3], out: &mut Vec<u8>, par: bool) {
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

/// The most values a context-coded payload (after its id) can hold; see [`rans_capacity`].
pub(super) fn max_values(r: &mut PayloadReader, v1: bool) -> Result<Option<u64>> {
    if v1 {
        let tables = read_tables(r, V1_PROB_BITS)?;
        return Ok(rans_capacity(&tables, V1_PROB_BITS, &[r.chunk()?.len()]));
    }
    let tables = read_tables(r, PROB_BITS)?;
    let lanes = [r.chunk()?.len(), r.chunk()?.len()];
    Ok(rans_capacity(&tables, PROB_BITS, &lanes))
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
            .ok_or_else(|| Error::corrupt("rANS stream too short"))?;
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
            return Err(Error::truncated("lane ends early"));
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        self.overrun()?;
        if self.pos != self.rans.len() || self.x != RANS_L {
            return Err(Error::corrupt("rANS stream does not end where it should"));
        }
        // Only padding of the last byte may remain.
        if self.bits.len() * 8 - self.bit_pos >= 8 {
            return Err(Error::corrupt("trailing raw bits"));
        }
        Ok(())
    }
}

pub(super) fn decode_lanes(mut r: PayloadReader, shape: [usize; 3], n: usize) -> Result<Vec<i64>> {
    let (slots, base) = read_slots(&mut r, PROB_BITS)?;
    let rans = [r.chunk()?, r.chunk()?];
    let bits_a = r.chunk()?;
    let split = lane_split(shape).min(n);
    let mut k = try_vec::<u8>(n, "decoding")?;
    let mut out = try_vec::<i64>(n, "decoding")?;
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
        _ => Err(Error::corrupt("context without a table")),
    }
}

/// The one-lane, 12-bit coder of earlier streams.
pub(super) fn decode_v1(mut r: PayloadReader, shape: [usize; 3], n: usize) -> Result<Vec<i64>> {
    let (slots, base) = read_slots(&mut r, V1_PROB_BITS)?;
    let rans = r.chunk()?;
    let mut k = try_vec::<u8>(n, "decoding")?;
    let mut out = try_vec::<i64>(n, "decoding")?;
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
