//! The context coder (id 4; id 3 the same without modelled signs, id 1 its one-lane, 12-bit
//! predecessor, both decoded only). Per value, the magnitude class k (bit length of the
//! zigzagged residual) is coded with static rANS, one frequency table
//! ([`tables`](super::tables)) per context; the context is the mean class of the three causal
//! neighbours (previous value in the row, same value in the previous row and plane). Where it
//! pays (a flag per block), the sign is coded in the context of the neighbours' signs
//! ([`binary`](super::binary)); the other bits below the leading one go to a raw bit stream.
//! The block is cut at a row into two lanes, each with its own rANS states, bit stream and
//! contexts from its own values only, so a decoder runs the lanes' dependency chains side by
//! side.

mod decode;

use super::binary::{self, Probs, SIGNS};
use super::tables::{finish_rans, write_tables, EncSymbol, CONTEXTS, PROB_BITS, RANS_L, SYMBOLS};
use super::{class, zigzag, CONTEXT_SIGNS};
use crate::format::payload::put_varint;
pub(super) use decode::{decode_lanes, decode_v1, max_values, Layout};

/// Context from the classes of the causal neighbours: previous value in the row (`w`), same
/// position in the previous row (`n`) and plane (`b`); missing ones repeat a present one.
#[inline(always)]
pub(super) fn context(w: u8, n: u8, b: u8) -> usize {
    ((2 * w as usize + n as usize + b as usize + 2) / 4).min(CONTEXTS - 1)
}

/// Which causal neighbours a row of a lane has within the lane: the previous row's and the
/// previous plane's (their offsets back, 0 where missing).
#[derive(Clone, Copy)]
struct Row {
    n: usize,
    b: usize,
}

/// For lane index `at` of a lane of `len` values starting at `start` in a block of `shape`: the
/// end of the row that holds it (within the lane), the row's neighbours, and whether `at` starts
/// the row or the lane (the class before it is then taken as 0). Neighbours before the lane's
/// start belong to the other lane and count as missing.
fn row_of(start: usize, at: usize, len: usize, shape: [usize; 3]) -> (usize, Row, bool) {
    let [_, b, c] = shape;
    let c = c.max(1);
    let (row, l) = ((start + at) / c, (start + at) % c);
    let (i, j) = (row / b.max(1), row % b.max(1));
    let end = (at + c - l).min(len);
    let n = if j > 0 && at >= c { c } else { 0 };
    let b = if i > 0 && at >= b * c { b * c } else { 0 };
    (end, Row { n, b }, l == 0 || at == 0)
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

/// The classes of one lane's residuals `r` (starting at `start` in the block), their contexts,
/// the count of each class per context, and the lane's signs.
fn lane_model(
    r: &[i64],
    start: usize,
    shape: [usize; 3],
    k: &mut [u8],
    ctx: &mut [u8],
) -> (Vec<[u32; SYMBOLS]>, Signs) {
    let mut counts = vec![[0u32; SYMBOLS]; CONTEXTS];
    for (kv, &v) in k.iter_mut().zip(r) {
        *kv = class(zigzag(v));
    }
    let (mut seq, mut m) = (vec![0u8; r.len()], 0);
    let mut at = 0;
    while at < r.len() {
        // Each row (or the lane's part of one) starts after a class and sign of 0.
        let (end, row, _) = row_of(start, at, r.len(), shape);
        let mut rows = RowModel {
            counts: &mut counts,
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
        at = end;
    }
    (counts, Signs::new(seq, m))
}

/// What [`lane_model`] gathers, a row at a time: the counts of each class per context, and the
/// signs below classes >= 2 with their contexts (`m` of them so far in `seq`).
struct RowModel<'a> {
    counts: &'a mut [[u32; SYMBOLS]],
    seq: &'a mut [u8],
    m: usize,
}

impl RowModel<'_> {
    /// Lane indices `run` of one row with neighbours `row` (`N`, `B`: it has a previous row,
    /// plane), after their classes `k` are known: writes their contexts to `ctx`. Every value's
    /// sign goes to `seq`, the next overwrites it unless its class is 2 or more (without a
    /// branch on the class: it is hard to foretell).
    #[inline(always)]
    fn row<const N: bool, const B: bool>(
        &mut self,
        r: &[i64],
        k: &[u8],
        ctx: &mut [u8],
        run: std::ops::Range<usize>,
        row: Row,
    ) {
        let (mut w, mut ws) = (0u8, 0i64);
        for t in run {
            let n = if N { k[t - row.n] } else { w };
            let bk = if B { k[t - row.b] } else { n };
            let cx = context(w, n, bk);
            ctx[t] = cx as u8;
            let s = k[t];
            self.counts[cx][s as usize] += 1;
            let ns = if N { r[t - row.n].signum() } else { 0 };
            let bs = if B { r[t - row.b].signum() } else { 0 };
            self.seq[self.m] = (binary::sign_context(ws, ns, bs) as u8) << 1 | (r[t] < 0) as u8;
            self.m += (s >= 2) as usize;
            (w, ws) = (s, r[t].signum());
        }
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

/// Flag of a coder-4 payload: the signs are coded with their probabilities.
const SIGNED: u8 = 1;

/// The signs' probabilities over both lanes, stored in bytes, and the lanes' sign streams
/// coded with them, if these save at least a twentieth of the signs' raw bits (less, and
/// decoding the signs would cost more time than their bytes are worth).
fn code_signs(lanes: [&Signs; 2]) -> Option<([u8; SIGNS], [Vec<u8>; 2])> {
    let sum = |f: fn(&Signs) -> [u64; SIGNS]| -> [u64; SIGNS] {
        std::array::from_fn(|c| f(lanes[0])[c] + f(lanes[1])[c])
    };
    let (neg, all) = (sum(|s| s.neg), sum(|s| s.all));
    let raw: u64 = all.iter().sum();
    if raw < 64 {
        return None;
    }
    let (probs, bytes) = Probs::from_counts(neg, all);
    let coded = binary::encode(&probs, [&lanes[0].seq, &lanes[1].seq]);
    let len = SIGNS + coded.iter().map(|c| c.len() + 2).sum::<usize>();
    (20 * 8 * len as u64 <= 19 * raw).then_some((bytes, coded))
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
    let ((mut counts, signs_a), (cb_counts, signs_b)) = both(
        par,
        || lane_model(&r[..split], 0, shape, ka, ca),
        || lane_model(&r[split..], split, shape, kb, cb),
    );
    for (c, o) in counts.iter_mut().zip(&cb_counts) {
        c.iter_mut().zip(o).for_each(|(x, y)| *x += y);
    }
    let model = code_signs([&signs_a, &signs_b]);
    let signed = model.is_some();

    out.push(CONTEXT_SIGNS);
    match &model {
        Some((bytes, _)) => {
            out.push(SIGNED);
            out.extend_from_slice(bytes);
        }
        None => out.push(0),
    }
    let tables = write_tables(&counts, out);
    let enc: Vec<[EncSymbol; SYMBOLS]> = tables
        .iter()
        .map(|t| std::array::from_fn(|s| EncSymbol::new(t.start[s], t.freq[s], PROB_BITS)))
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
            finish_rans(b, x);
        }
        bytes
    };
    // The raw bits, forwards: those below the leading one (none below classes 0 and 1) but a
    // modelled sign.
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
    let signs = model.iter().flat_map(|(_, coded)| coded);
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
