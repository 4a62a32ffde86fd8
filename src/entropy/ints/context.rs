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
use crate::pipeline::scratch;

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

/// One lane of a payload being decoded: its bytes, where it starts in the block, and its part
/// of the classes and of the output. The decoder goes through it a row at a time (a row's
/// neighbours are all present or all missing).
struct Lane<'a> {
    rans: &'a [u8],
    bits: &'a [u8],
    start: usize,
    k: &'a mut [u8],
    out: &'a mut [i64],
    coder: Coder,
}

/// What a lane's decoder carries from one value to the next (kept in locals while a row is
/// decoded: behind a reference, the compiler stored it to memory at every value).
#[derive(Clone, Copy)]
struct Coder {
    x: u32,
    pos: usize,
    bit_pos: usize,
}

/// Which causal neighbours a row of a lane has within the lane: the previous row's and the
/// previous plane's (their offsets back, 0 where missing).
#[derive(Clone, Copy)]
struct Row {
    n: usize,
    b: usize,
}

/// The tables of a payload's contexts, with probabilities of `P` bits.
struct Tables<'t, const P: u32> {
    slots: &'t [u32],
    base: &'t [u32; CONTEXTS],
}

impl<'a> Lane<'a> {
    fn new(
        rans: &'a [u8],
        bits: &'a [u8],
        start: usize,
        k: &'a mut [u8],
        out: &'a mut [i64],
    ) -> Result<Lane<'a>> {
        let head = rans
            .get(..4)
            .ok_or_else(|| Error::corrupt("rANS stream too short"))?;
        let x = u32::from_be_bytes(head.try_into().unwrap());
        Ok(Lane {
            rans,
            bits,
            start,
            k,
            out,
            coder: Coder {
                x,
                pos: 4,
                bit_pos: 0,
            },
        })
    }

    /// The end (lane index) of the row that holds lane index `at`, its neighbours, and whether
    /// `at` starts it (the class before it is then taken as 0).
    fn row(&self, at: usize, shape: [usize; 3]) -> (usize, Row, bool) {
        let [_, b, c] = shape;
        let c = c.max(1);
        let (row, l) = ((self.start + at) / c, (self.start + at) % c);
        let (i, j) = (row / b.max(1), row % b.max(1));
        let end = (at + c - l).min(self.k.len());
        let n = if j > 0 && at >= c { c } else { 0 };
        let b = if i > 0 && at >= b * c { b * c } else { 0 };
        (end, Row { n, b }, l == 0 || at == 0)
    }

    /// Decodes lane indices `at..end` (of one row, with neighbours `row`) after the class `w`,
    /// and returns the last class.
    fn decode<const P: u32>(
        &mut self,
        at: usize,
        end: usize,
        mut w: u8,
        row: Row,
        t: &Tables<P>,
        bad: &mut u32,
    ) -> u8 {
        let mut c = self.coder;
        let (rans, bits, k, out) = (self.rans, self.bits, &mut *self.k, &mut *self.out);
        for i in at..end {
            w = c.step(i, w, row, t, rans, bits, k, out, bad);
        }
        self.coder = c;
        w
    }

    /// Whether the lane has read past its bytes: a valid lane never does, so a payload that
    /// claims more values than it holds is caught here, early.
    fn overrun(&self) -> Result<()> {
        if self.coder.pos > self.rans.len() || self.coder.bit_pos > self.bits.len() * 8 {
            return Err(Error::truncated("lane ends early"));
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        self.overrun()?;
        if self.coder.pos != self.rans.len() || self.coder.x != RANS_L {
            return Err(Error::corrupt("rANS stream does not end where it should"));
        }
        // Only padding of the last byte may remain.
        if self.bits.len() * 8 - self.coder.bit_pos >= 8 {
            return Err(Error::corrupt("trailing raw bits"));
        }
        Ok(())
    }
}

impl Coder {
    /// Decodes the value at lane index `at` of a row with neighbours `row`, after the class
    /// `w` (0 at the row's start), and returns its class. Reads past the end give zeros and
    /// are caught by [`Lane::finish`]; a context without a table is flagged in `bad`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn step<const P: u32>(
        &mut self,
        at: usize,
        w: u8,
        row: Row,
        t: &Tables<P>,
        rans: &[u8],
        bits: &[u8],
        k: &mut [u8],
        out: &mut [i64],
        bad: &mut u32,
    ) -> u8 {
        let n = if row.n > 0 { k[at - row.n] } else { w };
        let bk = if row.b > 0 { k[at - row.b] } else { n };
        let b = t.base[context(w, n, bk)];
        *bad |= b >> 31;
        let slot = self.x & ((1 << P) - 1);
        let e = t.slots[(b & 0x7fff_ffff) as usize + slot as usize];
        let (s, f, st) = ((e & 0xff) as u8, ((e >> 8) & 0xfff) + 1, e >> 20);
        self.x = f * (self.x >> P) + slot - st;
        // From x >= 2^(23 − P) two bytes always suffice (P <= 12).
        for _ in 0..2 {
            if self.x < RANS_L {
                let byte = rans.get(self.pos).copied().unwrap_or(0);
                self.x = (self.x << 8) | byte as u32;
                self.pos += 1;
            }
        }
        // The class's raw bits below its leading one.
        let nb = (s as u32).saturating_sub(1);
        let m = if nb <= 56 {
            peek_bits(bits, self.bit_pos, nb)
        } else {
            (peek_bits(bits, self.bit_pos, nb - 32) << 32)
                | peek_bits(bits, self.bit_pos + nb as usize - 32, 32)
        };
        self.bit_pos += nb as usize;
        k[at] = s;
        out[at] = unzigzag(((1u64 << s) >> 1) | m);
        s
    }
}

/// Decodes lanes `a` and `b` (b no longer than a) side by side, so that their serial chains
/// overlap, then what is left of `a`; a row of each at a time, checking between rows (and every
/// [`RUN`] values of a long one) that neither has run out of bytes: a lying payload stops after
/// the values it holds, not after all it claims.
fn decode_rows<const P: u32>(
    a: &mut Lane,
    mut b: Option<&mut Lane>,
    shape: [usize; 3],
    t: &Tables<P>,
) -> Result<()> {
    let mut bad = 0;
    let both = b.as_ref().map_or(0, |b| b.k.len());
    let (mut at, mut w, mut wb) = (0, 0, 0);
    while at < a.k.len() {
        let (end_a, row_a, fresh) = a.row(at, shape);
        let end_a = end_a.min(at + RUN);
        w = if fresh { 0 } else { w };
        match b.as_deref_mut().filter(|_| at < both) {
            Some(b) => {
                let (end_b, row_b, fresh) = b.row(at, shape);
                wb = if fresh { 0 } else { wb };
                let end = end_a.min(end_b);
                let (mut ca, mut cb) = (a.coder, b.coder);
                let (ra, ba, ka, oa) = (a.rans, a.bits, &mut *a.k, &mut *a.out);
                let (rb, bb, kb, ob) = (b.rans, b.bits, &mut *b.k, &mut *b.out);
                for i in at..end {
                    w = ca.step(i, w, row_a, t, ra, ba, ka, oa, &mut bad);
                    wb = cb.step(i, wb, row_b, t, rb, bb, kb, ob, &mut bad);
                }
                (a.coder, b.coder) = (ca, cb);
                b.overrun()?;
                at = end;
            }
            None => {
                w = a.decode(at, end_a, w, row_a, t, &mut bad);
                at = end_a;
            }
        }
        a.overrun()?;
    }
    check_bad(bad)
}

pub(super) fn decode_lanes(mut r: PayloadReader, shape: [usize; 3], n: usize) -> Result<Vec<i64>> {
    let (slots, base) = read_slots(&mut r, PROB_BITS)?;
    let rans = [r.chunk()?, r.chunk()?];
    let bits_a = r.chunk()?;
    let split = lane_split(shape).min(n);
    let mut k = try_vec::<u8>(n, "decoding")?;
    let mut out = scratch::I64.try_filled(n, "decoding")?;
    let (ka, kb) = k.split_at_mut(split);
    let (oa, ob) = out.split_at_mut(split);
    let mut a = Lane::new(rans[0], bits_a, 0, ka, oa)?;
    let mut b = Lane::new(rans[1], r.rest(), split, kb, ob)?;
    let t = Tables::<PROB_BITS> {
        slots: &slots,
        base: &base,
    };
    decode_rows(&mut a, Some(&mut b), shape, &t)?;
    a.finish()?;
    b.finish()?;
    Ok(out)
}

/// The most values decoded between two checks for overruns.
const RUN: usize = 1 << 12;

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
    let mut out = scratch::I64.try_filled(n, "decoding")?;
    let mut lane = Lane::new(rans, r.rest(), 0, &mut k, &mut out)?;
    let t = Tables::<V1_PROB_BITS> {
        slots: &slots,
        base: &base,
    };
    decode_rows(&mut lane, None, shape, &t)?;
    lane.finish()?;
    Ok(out)
}
