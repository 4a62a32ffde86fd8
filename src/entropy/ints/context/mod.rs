//! The context coder (id 4; id 3 the same without modelled signs, id 1 its one-lane, 12-bit
//! predecessor, both decoded only). Per value, the magnitude class k (bit length of the
//! zigzagged residual) is coded with static rANS, one frequency table
//! ([`tables`](super::tables)) per context; the context is the mean class of the three causal
//! neighbours (previous value in the row, same value in the previous row and plane). Where it
//! pays (a flag per block), the sign is coded in the context of the neighbours' signs
//! ([`binary`](super::binary)), or in the class's symbol, whose context then depends on the
//! sign before it too; the other bits below the leading one go to a raw bit stream.
//! The block is cut at a row into two lanes, each with its own rANS states, bit stream and
//! contexts from its own values only, so a decoder runs the lanes' dependency chains side by
//! side.

mod decode;

use super::binary::{self, Probs, SIGNS};
use super::tables::{
    coded_bytes, finish_rans, write_tables, EncSymbol, RansBytes, TableLayout, CONTEXTS,
    JOINT_CONTEXTS, PROB_BITS, RANS_L, SYMBOLS,
};
use super::{class, zigzag, CONTEXT_SIGNS};
use crate::format::payload::put_varint;
pub(super) use decode::{decode_lanes, decode_v1, max_values, Layout};

/// Context from the classes of the causal neighbours: previous value in the row (`w`), same
/// position in the previous row (`n`) and plane (`b`); missing ones repeat a present one.
#[inline(always)]
pub(super) fn context(w: u8, n: u8, b: u8) -> usize {
    ((2 * w as usize + n as usize + b as usize + 2) / 4).min(CONTEXTS - 1)
}

/// The symbol of a value `v` of class `k` where its sign is in it ([`JOINT`]): classes 0 and 1
/// (0 and −1) as themselves, class k >= 2 as 2k − 2, plus one if negative.
#[inline(always)]
fn joint_symbol(k: u8, v: i64) -> u8 {
    if k >= 2 {
        2 * k - 2 + (v < 0) as u8
    } else {
        k
    }
}

/// A joint symbol's class, and the sign of its value as a code: 0 negative, 1 zero, 2
/// positive. [`JOINT`] payloads take each value's context among three sets by the code of the
/// value before it in the row (1 at the row's start).
#[inline(always)]
pub(super) fn joint_class(s: u8) -> (u8, u8) {
    match s {
        0 => (0, 1),
        1 => (1, 0),
        _ => ((s + 2) >> 1, 2 * (1 - (s & 1))),
    }
}

/// Which causal neighbours a row of a lane has within the lane: the previous row's and the
/// previous plane's (their offsets back, 0 where missing).
#[derive(Clone, Copy)]
struct Row {
    n: usize,
    b: usize,
}

/// A walk through a lane's rows: the lane of `len` values starts at `start` in a block of
/// `shape`; `at` is the lane index reached, `l` its place in its row, `j` its row's in its plane
/// and `i` its plane (kept as the walk goes: divisions per row were a few percent of decoding
/// blocks of short rows).
#[derive(Clone, Copy)]
struct Rows {
    b: usize,
    c: usize,
    len: usize,
    at: usize,
    l: usize,
    j: usize,
    i: usize,
}

impl Rows {
    fn new(start: usize, len: usize, shape: [usize; 3]) -> Rows {
        let [_, b, c] = shape;
        let c = c.max(1);
        let (row, l) = (start / c, start % c);
        Rows {
            b,
            c,
            len,
            at: 0,
            l,
            j: row % b.max(1),
            i: row / b.max(1),
        }
    }

    /// The end of the row that holds `at` (within the lane), the row's neighbours, and whether
    /// `at` starts the row or the lane (the class before it is then taken as 0). Neighbours
    /// before the lane's start belong to the other lane and count as missing.
    fn current(&self) -> (usize, Row, bool) {
        let (at, c, plane) = (self.at, self.c, self.b * self.c);
        let end = (at + c - self.l).min(self.len);
        let n = if self.j > 0 && at >= c { c } else { 0 };
        let b = if self.i > 0 && at >= plane { plane } else { 0 };
        (end, Row { n, b }, self.l == 0 || at == 0)
    }

    /// Moves on to lane index `to`, at most the end of the current row.
    fn advance(&mut self, to: usize) {
        self.l += to - self.at;
        self.at = to;
        if self.l == self.c {
            self.l = 0;
            self.j += 1;
            if self.j >= self.b {
                (self.j, self.i) = (0, self.i + 1);
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

/// A lane's signs below its classes >= 2: each as its context and whether it is negative
/// (bit 0), and their counts per context.
struct Signs {
    seq: Vec<u8>,
    neg: [u64; SIGNS],
    all: [u64; SIGNS],
}

impl Signs {
    fn new(mut seq: Vec<u8>, len: usize) -> Signs {
        seq.truncate(len);
        // Two tables, so that runs of one context do not wait on their own counts.
        let mut h = [[0u64; 2 * SIGNS]; 2];
        for pair in seq.chunks(2) {
            h[0][pair[0] as usize] += 1;
            if let Some(&q) = pair.get(1) {
                h[1][q as usize] += 1;
            }
        }
        let count = |q: usize| h[0][q] + h[1][q];
        Signs {
            seq,
            neg: std::array::from_fn(|c| count(2 * c + 1)),
            all: std::array::from_fn(|c| count(2 * c) + count(2 * c + 1)),
        }
    }
}

/// The classes of one lane's residuals `r` (starting at `start` in the block), their contexts
/// (with the code of the sign before, see [`Model`]), the counts of each class and of each
/// joint symbol per context, and the lane's signs.
fn lane_model(
    r: &[i64],
    start: usize,
    shape: [usize; 3],
    k: &mut [u8],
    ctx: &mut [u8],
) -> (Model, Signs) {
    let mut joint = vec![[0u32; SYMBOLS]; JOINT_CONTEXTS];
    for (kv, &v) in k.iter_mut().zip(r) {
        *kv = class(zigzag(v));
    }
    let (mut seq, mut m) = (vec![0u8; r.len()], 0);
    let mut walk = Rows::new(start, r.len(), shape);
    while walk.at < r.len() {
        // Each row (or the lane's part of one) starts after a class and sign of 0.
        let (at, (end, row, _)) = (walk.at, walk.current());
        let mut rows = RowModel {
            joint: &mut joint,
            seq: &mut seq,
            m,
        };
        match (row.n > 0, row.b > 0) {
            (true, true) => rows.row::<true, true>(r, k, ctx, at..end, row),
            (true, false) => rows.row::<true, false>(r, k, ctx, at..end, row),
            (false, true) => rows.row::<false, true>(r, k, ctx, at..end, row),
            (false, false) => rows.row::<false, false>(r, k, ctx, at..end, row),
        }
        m = rows.m;
        walk.advance(end);
    }
    // The classes' counts from the joint symbols' (one count per value, not two: consecutive
    // values often land on the same count, and each waited on the one before).
    let mut counts = vec![[0u32; SYMBOLS]; CONTEXTS];
    for (c, row) in joint.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            counts[c % CONTEXTS][joint_class(j as u8).0 as usize] += x;
        }
    }
    (Model { counts, joint }, Signs::new(seq, m))
}

/// A block's (or lane's) counts of each class per context, and of each joint symbol per joint
/// context. The contexts of its values are kept as c | g << 5, c the class context and g the
/// code of the sign before (see [`joint_class`]): the joint context is c + 24·g.
struct Model {
    counts: Vec<[u32; SYMBOLS]>,
    joint: Vec<[u32; SYMBOLS]>,
}

impl Model {
    fn add(&mut self, other: &Model) {
        for (c, o) in (self.counts.iter_mut().chain(&mut self.joint))
            .zip(other.counts.iter().chain(&other.joint))
        {
            c.iter_mut().zip(o).for_each(|(x, y)| *x += y);
        }
    }
}

/// What [`lane_model`] gathers, a row at a time: the counts of each joint symbol per joint
/// context, and the signs below classes >= 2 with their contexts (`m` of them so far in `seq`).
struct RowModel<'a> {
    joint: &'a mut [[u32; SYMBOLS]],
    seq: &'a mut [u8],
    m: usize,
}

impl RowModel<'_> {
    /// Lane indices `run` of one row with neighbours `row` (`N`, `B`: it has a previous row,
    /// plane), after their classes `k` are known: writes their contexts (and the codes of the
    /// signs before) to `ctx`. Every value's sign goes to `seq`, the next overwrites it unless
    /// its class is 2 or more (without a branch on the class: it is hard to foretell).
    #[inline(always)]
    fn row<const N: bool, const B: bool>(
        &mut self,
        r: &[i64],
        k: &[u8],
        ctx: &mut [u8],
        run: std::ops::Range<usize>,
        row: Row,
    ) {
        // The run and its neighbours' runs as slices of one length, so that indexing them
        // needs no checks (a missing neighbour's stands in for it unread).
        let len = run.len();
        let back = |o: usize, on: bool| match on {
            true => run.start - o..run.end - o,
            false => run.clone(),
        };
        let (north, behind) = (back(row.n, N), back(row.b, B));
        let (kn, rn) = (&k[north.clone()], &r[north]);
        let (kb, rb) = (&k[behind.clone()], &r[behind]);
        let (kc, rc, cc) = (&k[run.clone()], &r[run.clone()], &mut ctx[run]);
        let seq = &mut self.seq[self.m..self.m + len];
        let mut m = 0;
        let (mut w, mut ws) = (0u8, 0i64);
        for t in 0..len {
            let n = if N { kn[t] } else { w };
            let bk = if B { kb[t] } else { n };
            let cx = context(w, n, bk);
            let g = (ws + 1) as usize;
            cc[t] = (cx | g << 5) as u8;
            // Joint symbols are at most 127: the mask only tells the compiler so.
            let (s, v) = (kc[t], rc[t]);
            self.joint[cx + CONTEXTS * g][joint_symbol(s, v) as usize & (SYMBOLS - 1)] += 1;
            let ns = if N { rn[t].signum() } else { 0 };
            let bs = if B { rb[t].signum() } else { 0 };
            seq[m.min(len - 1)] = (binary::sign_context(ws, ns, bs) as u8) << 1 | (v < 0) as u8;
            m += (s >= 2) as usize;
            (w, ws) = (s, v.signum());
        }
        self.m += m;
    }
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

/// Flags of a coder-4 payload: the signs are coded with their probabilities in streams of
/// their own; or they are in the classes' symbols ([`joint_symbol`]), whose contexts then depend
/// on the sign before too. The first costs a second decoding pass, the second larger tables.
const SIGNED: u8 = 1;
const JOINT: u8 = 2;

/// The tables' layout of a coder-4 payload with `flags`.
fn tables_of(flags: u8) -> TableLayout {
    match flags & JOINT {
        0 => TableLayout::CLASSES,
        // Up to joint_symbol(63, negative) = 125.
        _ => TableLayout {
            contexts: JOINT_CONTEXTS,
            symbols: 126,
        },
    }
}

/// The signs of both lanes: their counts per context (negative ones, all), and their
/// probabilities (with the bytes that store them) where there are enough to model.
struct SignModel {
    neg: [u64; SIGNS],
    all: [u64; SIGNS],
    probs: Option<(Probs, [u8; SIGNS])>,
}

impl SignModel {
    fn new(lanes: [&Signs; 2]) -> SignModel {
        let sum = |f: fn(&Signs) -> [u64; SIGNS]| -> [u64; SIGNS] {
            std::array::from_fn(|c| f(lanes[0])[c] + f(lanes[1])[c])
        };
        let (neg, all) = (sum(|s| s.neg), sum(|s| s.all));
        let probs = (all.iter().sum::<u64>() >= 64).then(|| Probs::from_counts(neg, all));
        SignModel { neg, all, probs }
    }

    /// The signs' raw bits.
    fn raw(&self) -> u64 {
        self.all.iter().sum()
    }

    /// The bytes they are expected to take: in streams where modelled and that pays (as
    /// [`SignModel::code`] decides), else raw.
    fn bytes(&self) -> f64 {
        let raw = self.raw() as f64 / 8.0;
        // Their probabilities' bytes, and about 12 for the streams' final states and lengths.
        let coded = (self.probs.as_ref())
            .map(|(p, _)| (SIGNS + 12) as f64 + p.ideal_bits(&self.neg, &self.all) / 8.0);
        coded.filter(|&c| 20.0 * c <= 19.0 * raw).unwrap_or(raw)
    }

    /// The lanes' sign streams, with the bytes of their probabilities, if they save at least
    /// a twentieth of the signs' raw bits (less, and decoding the signs would cost more time
    /// than their bytes are worth).
    fn code(&self, lanes: [&Signs; 2]) -> Option<([u8; SIGNS], [Vec<u8>; 2])> {
        let (probs, bytes) = self.probs.as_ref()?;
        let coded = binary::encode(probs, [&lanes[0].seq, &lanes[1].seq]);
        let len = SIGNS + coded.iter().map(|c| c.len() + 2).sum::<usize>();
        (20 * 8 * len as u64 <= 19 * self.raw()).then_some((*bytes, coded))
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
    let ((mut model, signs_a), (model_b, signs_b)) = both(
        par,
        || lane_model(&r[..split], 0, shape, ka, ca),
        || lane_model(&r[split..], split, shape, kb, cb),
    );
    model.add(&model_b);
    let lanes = [&signs_a, &signs_b];
    let sign_model = SignModel::new(lanes);
    // The signs in the symbols where that is estimated smaller than the classes and the signs
    // apart (it also saves the decoder the signs' pass), and than the signs raw by a twentieth
    // of their bits, as for their own streams (its larger tables and contexts cost decoding
    // time too).
    let (classes, in_symbols) = (
        coded_bytes(&model.counts, TableLayout::CLASSES),
        coded_bytes(&model.joint, tables_of(JOINT)),
    );
    let joint = in_symbols < classes + sign_model.bytes()
        && 20.0 * in_symbols <= 20.0 * classes + 19.0 * sign_model.raw() as f64 / 8.0;
    let coded_signs = if joint { None } else { sign_model.code(lanes) };
    // Where the signs are not raw bits.
    let signed = joint || coded_signs.is_some();

    out.push(CONTEXT_SIGNS);
    match &coded_signs {
        Some((bytes, _)) => {
            out.push(SIGNED);
            out.extend_from_slice(bytes);
        }
        None => out.push(if joint { JOINT } else { 0 }),
    }
    // Each value's context and symbol.
    let sym: Vec<u8> = match joint {
        true => {
            ctx.iter_mut()
                .for_each(|c| *c = (*c & 31) + CONTEXTS as u8 * (*c >> 5));
            k.iter().zip(r).map(|(&k, &v)| joint_symbol(k, v)).collect()
        }
        false => {
            ctx.iter_mut().for_each(|c| *c &= 31);
            Vec::new()
        }
    };
    let (counts, flags) = match joint {
        true => (&model.joint, JOINT),
        false => (&model.counts, 0),
    };
    let tables = write_tables(counts, tables_of(flags), out);
    let enc: Vec<[EncSymbol; SYMBOLS]> = tables
        .iter()
        .map(|t| std::array::from_fn(|s| EncSymbol::new(t.start[s], t.freq[s], PROB_BITS)))
        .collect();
    let (k, ctx) = (&k, &ctx);
    let syms = if joint { &sym } else { k };
    let rans = || {
        // rANS runs backwards, both lanes in one loop so their serial chains overlap; lane A
        // is at least as long as lane B, and its extra values come last.
        let [mut ba, mut bb] = [split, n - split].map(|len| RansBytes::with_capacity(len / 2));
        let [mut xa, mut xb] = [RANS_L; 2];
        let sym = |idx: usize| &enc[ctx[idx] as usize][syms[idx] as usize];
        let len_b = n - split;
        for t in (len_b..split).rev() {
            sym(t).put(&mut xa, &mut ba);
        }
        for t in (0..len_b).rev() {
            sym(t).put(&mut xa, &mut ba);
            sym(split + t).put(&mut xb, &mut bb);
        }
        [finish_rans(ba, xa), finish_rans(bb, xb)]
    };
    // The raw bits, forwards: those below the leading one (none below classes 0 and 1) but a
    // sign coded otherwise.
    let rest = || {
        [(0, split), (split, n)].map(|(start, end)| {
            let mut bits = BitWriter::default();
            for idx in start..end {
                let s = k[idx] as u32;
                let sign = (signed && s >= 2) as u32;
                let nb = s.saturating_sub(1) - sign;
                bits.put((zigzag(r[idx]) >> sign) & ((1u64 << nb) - 1), nb);
            }
            bits.finish()
        })
    };
    let (rans, bits) = both(par, rans, rest);
    let signs = coded_signs.iter().flat_map(|(_, coded)| coded);
    for b in rans.iter().chain(signs) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_walk_finds_each_rows_end_and_neighbours() {
        for shape in [[3, 5, 7], [1, 1, 9], [2, 1, 9], [4, 3, 1], [2, 3, 4]] {
            let n: usize = shape.iter().product();
            let split = lane_split(shape).min(n);
            for (start, len) in [(0, split), (split, n - split)] {
                // Walked in steps of at most 3 values, as the decoder cuts long rows.
                let mut rows = Rows::new(start, len, shape);
                while rows.at < len {
                    let (end, row, fresh) = rows.current();
                    // The same from the position's coordinates.
                    let [_, b, c] = shape;
                    let (at, g) = (rows.at, start + rows.at);
                    let (i, j, l) = (g / (b * c), g / c % b, g % c);
                    assert_eq!(end, (at + c - l).min(len), "{shape:?} {g}");
                    assert_eq!(row.n, if j > 0 && at >= c { c } else { 0 });
                    assert_eq!(row.b, if i > 0 && at >= b * c { b * c } else { 0 });
                    assert_eq!(fresh, l == 0 || at == 0);
                    rows.advance(end.min(at + 3));
                }
            }
        }
    }
}
