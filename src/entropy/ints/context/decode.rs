//! The context coder's decoder: coders 4, 3 and 1 (see the parent module).

use super::super::binary::{self, Probs, SIGNS};
use super::super::tables::{
    rans_capacity, read_tables, refill, slots, TableLayout, CONTEXTS, JOINT_CONTEXTS, PROB_BITS,
    RANS_L, V1_PROB_BITS,
};
use super::super::unzigzag;
use super::{joint_class, lane_split, tables_of, Row, Rows, JOINT, SIGNED};
use crate::error::{try_vec, Error, Result};
use crate::format::payload::PayloadReader;
use crate::pipeline::scratch;

/// The layouts of context-coded payloads.
#[derive(Clone, Copy, PartialEq)]
pub(in super::super) enum Layout {
    /// Coder 1: one lane, 12-bit tables.
    V1,
    /// Coder 3: two lanes.
    Lanes,
    /// Coder 4: two lanes, a flag byte first, sign probabilities and streams where it is set.
    Signs,
}

/// The flag byte of a coder-4 payload (0, SIGNED or JOINT), and the signs' probabilities
/// where it says so.
fn flags(r: &mut PayloadReader) -> Result<(u8, Option<Probs>)> {
    match r.bytes(1)?[0] {
        f @ (0 | JOINT) => Ok((f, None)),
        SIGNED => {
            let bytes: [u8; SIGNS] = r.bytes(SIGNS)?.try_into().unwrap();
            if bytes.contains(&0) {
                return Err(Error::corrupt("sign probability of zero"));
            }
            Ok((SIGNED, Some(Probs::from_bytes(bytes))))
        }
        f => Err(Error::corrupt(format!("unknown context coder flags {f}"))),
    }
}

/// A symbol as the decoding slots of a payload with `flags` hold it: its class (bits 0-5) and,
/// with JOINT, the code of its sign (bits 6-7, see [`joint_class`]), so that the decoder has
/// both without arithmetic (the next value's context waits for them).
fn slot_symbol(flags: u8, s: u8) -> u8 {
    match flags & JOINT {
        0 => s,
        _ => {
            let (class, code) = joint_class(s);
            class | code << 6
        }
    }
}

/// The symbol before the first of a row, as [`slot_symbol`] gives them: class 0, sign zero.
const FRESH: u8 = 1 << 6;

/// The most values a context-coded payload (after its id) can hold; see [`rans_capacity`].
/// The classes' lanes bound it (the sign streams add no values).
pub(in super::super) fn max_values(r: &mut PayloadReader, layout: Layout) -> Result<Option<u64>> {
    if layout == Layout::V1 {
        let tables = read_tables(r, V1_PROB_BITS, TableLayout::CLASSES)?;
        return Ok(rans_capacity(&tables, V1_PROB_BITS, &[r.chunk()?.len()]));
    }
    let f = match layout {
        Layout::Signs => flags(r)?.0,
        _ => 0,
    };
    let tables = read_tables(r, PROB_BITS, tables_of(f))?;
    let lanes = [r.chunk()?.len(), r.chunk()?.len()];
    Ok(rans_capacity(&tables, PROB_BITS, &lanes))
}

/// Reads `nb` ≤ 56 bits at bit position `pos` (MSB first) of a [`padded`] stream, zeros past
/// its end (which the caller detects from the final position).
#[inline(always)]
fn peek_bits(buf: &[u8], pos: usize, nb: u32) -> u64 {
    let byte = pos >> 3;
    // Within the stream the padding holds the 8 bytes read; past it, all is zeros anyway.
    let w = buf
        .get(byte..byte + 8)
        .map_or(0, |s| u64::from_be_bytes(s.try_into().unwrap()));
    // Shifting by 1 then 63 − nb is a shift by 64 − nb that also gives 0 for nb = 0.
    ((w << (pos & 7)) >> 1) >> (63 - nb)
}

/// Reads `nb` ≤ 64 bits at bit position `pos`.
#[inline(always)]
fn read_bits(buf: &[u8], pos: usize, nb: u32) -> u64 {
    if nb <= 56 {
        peek_bits(buf, pos, nb)
    } else {
        (peek_bits(buf, pos, nb - 32) << 32) | peek_bits(buf, pos + nb as usize - 32, 32)
    }
}

/// The byte streams of a lane: classes (rANS), modelled signs (binary rANS; empty where not
/// modelled) and raw bits, [`padded`] (their own length `bits_len`).
#[derive(Clone, Copy)]
struct Bytes<'a> {
    rans: &'a [u8],
    signs: &'a [u8],
    bits: &'a [u8],
    bits_len: usize,
}

/// `s` followed by 8 zero bytes, so that reading its bits 8 bytes at a time needs no path of
/// its own for the stream's last 7 bytes (it kept registers from the decoder's loop).
fn padded(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 8);
    v.extend_from_slice(s);
    v.resize(s.len() + 8, 0);
    v
}

/// One lane of a payload being decoded: its bytes, its walk through its rows, its part of the
/// classes and of the output, and its decoders' states. The decoder goes through it a row at a
/// time (a row's neighbours are all present or all missing).
struct Lane<'a> {
    bytes: Bytes<'a>,
    rows: Rows,
    k: &'a mut [u8],
    out: &'a mut [i64],
    coder: Coder,
    signs: binary::Decoder,
}

/// What a lane's decoder carries from one value to the next (kept in locals while a row is
/// decoded: behind a reference, the compiler stored it to memory at every value).
#[derive(Clone, Copy)]
struct Coder {
    x: u32,
    pos: usize,
    bit_pos: usize,
}

/// The tables of a payload's contexts, with probabilities of `P` bits: the slots, and where
/// each context's start in them (top bit set: it has no table), by the index [`Coder::step`]
/// forms, c | g << 6: c the mean neighbouring class before the cap of
/// [`context`](super::context), g the code of the sign before (0 without JOINT).
struct Tables<'t, const P: u32> {
    slots: &'t [u32],
    base: [u32; 256],
}

impl<'t, const P: u32> Tables<'t, P> {
    fn new(slots: &'t [u32], base: &[u32; JOINT_CONTEXTS]) -> Self {
        let base = std::array::from_fn(|i| match i >> 6 {
            g @ 0..=2 => base[(i & 63).min(CONTEXTS - 1) + CONTEXTS * g],
            _ => 1 << 31,
        });
        Tables { slots, base }
    }
}

impl<'a> Lane<'a> {
    /// The lane that starts at `start` in a block of `shape`.
    fn new(
        bytes: Bytes<'a>,
        start: usize,
        shape: [usize; 3],
        k: &'a mut [u8],
        out: &'a mut [i64],
    ) -> Result<Lane<'a>> {
        let head = bytes
            .rans
            .get(..4)
            .ok_or_else(|| Error::corrupt("rANS stream too short"))?;
        let x = u32::from_be_bytes(head.try_into().unwrap());
        Ok(Lane {
            bytes,
            rows: Rows::new(start, k.len(), shape),
            k,
            out,
            coder: Coder {
                x,
                pos: 4,
                bit_pos: 0,
            },
            signs: binary::Decoder::new(bytes.signs),
        })
    }

    /// The neighbours' part of the contexts of lane indices `run` (of one row, with neighbours
    /// `row`), all known before the run is decoded: writes `pre` and returns `alpha` such that
    /// (alpha·w + pre) / 4 is [`context`](super::context) before its cap, w the class before
    /// in the row.
    fn neighbours(&self, run: std::ops::Range<usize>, row: Row, pre: &mut [u8]) -> u32 {
        let back = |o: usize| &self.k[run.start - o..run.end - o];
        // Classes are at most 63: no sum exceeds 128.
        match (row.n > 0, row.b > 0) {
            (true, true) => {
                let it = pre.iter_mut().zip(back(row.n)).zip(back(row.b));
                it.for_each(|((p, &n), &b)| *p = n + b + 2);
                2
            }
            (true, false) => {
                let it = pre.iter_mut().zip(back(row.n));
                it.for_each(|(p, &n)| *p = 2 * n + 2);
                2
            }
            (false, true) => {
                pre.iter_mut()
                    .zip(back(row.b))
                    .for_each(|(p, &b)| *p = b + 2);
                3
            }
            (false, false) => {
                pre.fill(2);
                4
            }
        }
    }

    /// Whether the lane has read past its bytes: a valid lane never does, so a payload that
    /// claims more values than it holds is caught here, early.
    fn overrun(&self) -> Result<()> {
        let (c, b) = (&self.coder, &self.bytes);
        if c.pos > b.rans.len() || c.bit_pos > b.bits_len * 8 || !self.signs.within(b.signs.len()) {
            return Err(Error::truncated("lane ends early"));
        }
        Ok(())
    }

    fn finish(&self, signed: bool) -> Result<()> {
        self.overrun()?;
        let (c, b) = (&self.coder, &self.bytes);
        if c.pos != b.rans.len() || c.x != RANS_L {
            return Err(Error::corrupt("rANS stream does not end where it should"));
        }
        if signed && !self.signs.finished(b.signs.len()) {
            return Err(Error::corrupt("sign stream does not end where it should"));
        }
        // Only padding of the last byte may remain.
        if b.bits_len * 8 - c.bit_pos >= 8 {
            return Err(Error::corrupt("trailing raw bits"));
        }
        Ok(())
    }

    /// The part of the lane that lane indices `run` decode into, with its neighbours' part of
    /// their contexts `pre` (and `alpha`) and the symbol `w` before it.
    fn run<'r>(
        &'r mut self,
        run: std::ops::Range<usize>,
        pre: &'r [u8],
        alpha: u32,
        w: u8,
    ) -> Run<'r> {
        Run {
            pre,
            alpha,
            w,
            k: &mut self.k[run.clone()],
            out: &mut self.out[run],
            coder: self.coder,
            bytes: self.bytes,
        }
    }
}

/// A run of a lane's row being decoded: what [`Coder::step`] reads and writes per value, the
/// slices of one length (no checks on indexing them).
struct Run<'r> {
    pre: &'r [u8],
    alpha: u32,
    w: u8,
    k: &'r mut [u8],
    out: &'r mut [i64],
    coder: Coder,
    bytes: Bytes<'r>,
}

impl Run<'_> {
    /// Decodes the run's classes and values (their signs too unless SIGNED); `FAST`: its alpha
    /// is 2. Returns its coder and last symbol.
    fn decode<const P: u32, const M: u8, const FAST: bool>(
        self,
        t: &Tables<P>,
        bad: &mut u32,
    ) -> (Coder, u8) {
        let len = self.pre.len();
        let (p, k, out) = (self.pre, &mut self.k[..len], &mut self.out[..len]);
        let (mut c, mut w) = (self.coder, self.w);
        for i in 0..len {
            w = c.step::<P, M, FAST>(
                p[i],
                self.alpha,
                w,
                t,
                self.bytes,
                &mut k[i],
                &mut out[i],
                bad,
            );
        }
        (c, w)
    }

    /// [`Run::decode`] of two lanes' runs of one length side by side, so that their serial
    /// chains overlap; `FAST`: both have alpha 2.
    fn decode_pair<const P: u32, const M: u8, const FAST: bool>(
        self,
        o: Run,
        t: &Tables<P>,
        bad: &mut u32,
    ) -> [(Coder, u8); 2] {
        let len = self.pre.len();
        let (pa, ka, oa) = (self.pre, &mut self.k[..len], &mut self.out[..len]);
        let (pb, kb, ob) = (&o.pre[..len], &mut o.k[..len], &mut o.out[..len]);
        let (mut ca, mut wa, mut cb, mut wb) = (self.coder, self.w, o.coder, o.w);
        for i in 0..len {
            wa = ca.step::<P, M, FAST>(
                pa[i], self.alpha, wa, t, self.bytes, &mut ka[i], &mut oa[i], bad,
            );
            wb = cb.step::<P, M, FAST>(pb[i], o.alpha, wb, t, o.bytes, &mut kb[i], &mut ob[i], bad);
        }
        [(ca, wa), (cb, wb)]
    }
}

impl Coder {
    /// Decodes a value whose neighbours' part of its context is `pre` (see
    /// [`Lane::neighbours`]; `FAST`: `alpha` is 2), after the symbol `w` ([`slot_symbol`];
    /// [`FRESH`] at the row's start), into its class `k` and value `out`, and returns its symbol;
    /// `M`: the payload's flags. With signs in streams of their own, a value of class 2 or more
    /// is left zigzagged without its sign, for [`SignRun`]. Reads past the end give zeros and are
    /// caught by [`Lane::finish`]; a context without a table is flagged in `bad`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn step<const P: u32, const M: u8, const FAST: bool>(
        &mut self,
        pre: u8,
        alpha: u32,
        w: u8,
        t: &Tables<P>,
        bytes: Bytes,
        k: &mut u8,
        out: &mut i64,
        bad: &mut u32,
    ) -> u8 {
        let a = if FAST { 2 } else { alpha };
        // At most 63 (see `neighbours`), the sign's code above it.
        let c = (a * (w & 0x3f) as u32 + pre as u32) >> 2;
        let g = if M & JOINT != 0 { (w & 0xc0) as u32 } else { 0 };
        let b = t.base[(c | g) as usize & 0xff];
        *bad |= b >> 31;
        let slot = self.x & ((1 << P) - 1);
        let e = t.slots[(b & 0x7fff_ffff) as usize + slot as usize];
        let (sym, f, st) = ((e & 0xff) as u8, ((e >> 8) & 0xfff) + 1, e >> 20);
        self.x = f * (self.x >> P) + slot - st;
        // From x >= 2^(23 − P) two bytes always suffice (P <= 12).
        refill(&mut self.x, &mut self.pos, bytes.rans);
        let s = sym & 0x3f;
        *k = s;
        // The raw bits below the leading one, but a sign coded otherwise.
        // Written without `saturating_sub`, which the compiler made a branch.
        let nb = s as u32 - (s != 0) as u32 - (M != 0 && s >= 2) as u32;
        let raw = read_bits(bytes.bits, self.bit_pos, nb);
        self.bit_pos += nb as usize;
        *out = match M {
            // In the symbol, negative where its code is 0 (class 1 is −1): the zigzagged value
            // 2^(s−1) | raw << 1 | negative, unzigzagged.
            JOINT => (((1u64 << s) >> 2) | raw) as i64 ^ -((sym < 0x40) as i64),
            // In its own stream, added by `SignRun` to classes 2 and more (left zigzagged;
            // chosen by a mask, not a branch: classes are hard to foretell); class 1 is −1.
            SIGNED => {
                let m = -((s >= 2) as i64);
                ((((1u64 << s) >> 1) | raw << 1) as i64 & m) | (-(s as i64) & !m)
            }
            _ => unzigzag(((1u64 << s) >> 1) | raw),
        };
        sym
    }
}

/// A run of a lane's row whose signs are being decoded, after its classes: its values
/// (zigzagged without their signs until then) and classes, its neighbours in the previous row
/// and plane (zeros where missing), the sign decoder and the sign before, as masks (all ones
/// in the first if negative, in the second if positive; 0 in both at the row's start). Slices
/// of one length.
struct SignRun<'r> {
    dec: binary::Decoder,
    bytes: &'r [u8],
    w: (u32, u32),
    cur: &'r mut [i64],
    k: &'r [u8],
    north: &'r [i64],
    behind: &'r [i64],
}

impl<'r> SignRun<'r> {
    /// Lane indices `run` of a row (`fresh`: the run starts it), with neighbours `row`.
    #[allow(clippy::too_many_arguments)]
    fn new(
        dec: binary::Decoder,
        bytes: &'r [u8],
        run: std::ops::Range<usize>,
        fresh: bool,
        row: Row,
        k: &'r [u8],
        out: &'r mut [i64],
    ) -> SignRun<'r> {
        let w = if fresh { 0 } else { out[run.start - 1] };
        let (done, cur) = out.split_at_mut(run.start);
        let len = run.len();
        // A run is never longer than RUN.
        let back = |offset: usize| match offset {
            0 => &ZEROS[..len],
            o => &done[run.start - o..run.start - o + len],
        };
        SignRun {
            dec,
            bytes,
            w: (
                ((w < 0) as u32).wrapping_neg(),
                ((w > 0) as u32).wrapping_neg(),
            ),
            north: back(row.n),
            behind: back(row.b),
            cur: &mut cur[..len],
            k: &k[run],
        }
    }

    /// Adds the sign of the run's value `i` (if its class is 2 or more) and unzigzags it.
    #[inline(always)]
    fn step(&mut self, i: usize, probs: &Probs) {
        let s = self.k[i];
        if s < 2 {
            // 0, or −1 (class 1).
            self.w = (((s == 1) as u32).wrapping_neg(), 0);
            return;
        }
        let nb = binary::sign_context(-1, self.north[i].signum(), self.behind[i].signum());
        let p = probs.after(self.w.0, self.w.1, nb);
        let one = self.dec.get(self.bytes, p);
        self.cur[i] = unzigzag(self.cur[i] as u64 | (one & 1) as u64);
        self.w = (one, !one);
    }
}

/// Adds the modelled signs to a lane's run, and returns its decoder. The run is taken by value
/// so that its state stays in registers.
fn signs(mut a: SignRun, probs: &Probs) -> binary::Decoder {
    (0..a.cur.len()).for_each(|i| a.step(i, probs));
    a.dec
}

/// [`signs`] of two lanes' runs of one length side by side, so that their serial chains
/// overlap.
fn sign_pair(mut a: SignRun, mut b: SignRun, probs: &Probs) -> [binary::Decoder; 2] {
    for i in 0..a.cur.len() {
        a.step(i, probs);
        b.step(i, probs);
    }
    [a.dec, b.dec]
}

/// Zeros for the neighbours a run lacks.
static ZEROS: [i64; RUN] = [0; RUN];

/// Decodes lanes `a` and `b` (b no longer than a) side by side, so that their serial chains
/// overlap, then what is left of `a`; a row of each at a time, checking between rows (and every
/// [`RUN`] values of a long one) that neither has run out of bytes: a lying payload stops after
/// the values it holds, not after all it claims. With signs in streams of their own, a second
/// pass over each run decodes them (in one pass, the two chains' states would not fit in the
/// registers).
fn decode_rows<const P: u32, const M: u8>(
    a: &mut Lane,
    mut b: Option<&mut Lane>,
    t: &Tables<P>,
    probs: &Probs,
) -> Result<()> {
    let mut bad = 0;
    let both = b.as_ref().map_or(0, |b| b.k.len());
    let (mut at, mut w, mut wb) = (0, FRESH, FRESH);
    let (mut pre_a, mut pre_b) = ([0u8; RUN], [0u8; RUN]);
    while at < a.k.len() {
        let (end_a, row_a, fresh_a) = a.rows.current();
        let end_a = end_a.min(at + RUN);
        w = if fresh_a { FRESH } else { w };
        match b.as_deref_mut().filter(|_| at < both) {
            Some(b) => {
                let (end_b, row_b, fresh_b) = b.rows.current();
                wb = if fresh_b { FRESH } else { wb };
                let end = end_a.min(end_b);
                let (pa, pb) = (&mut pre_a[..end - at], &mut pre_b[..end - at]);
                let alpha = [
                    a.neighbours(at..end, row_a, pa),
                    b.neighbours(at..end, row_b, pb),
                ];
                let (ra, rb) = (
                    a.run(at..end, pa, alpha[0], w),
                    b.run(at..end, pb, alpha[1], wb),
                );
                let [(ca, la), (cb, lb)] = match alpha == [2, 2] {
                    true => ra.decode_pair::<P, M, true>(rb, t, &mut bad),
                    false => ra.decode_pair::<P, M, false>(rb, t, &mut bad),
                };
                (a.coder, b.coder, w, wb) = (ca, cb, la, lb);
                if M & SIGNED != 0 {
                    let (ba, bb) = (a.bytes.signs, b.bytes.signs);
                    let ra = SignRun::new(a.signs, ba, at..end, fresh_a, row_a, a.k, a.out);
                    let rb = SignRun::new(b.signs, bb, at..end, fresh_b, row_b, b.k, b.out);
                    [a.signs, b.signs] = sign_pair(ra, rb, probs);
                }
                b.overrun()?;
                b.rows.advance(end);
                at = end;
            }
            None => {
                let pa = &mut pre_a[..end_a - at];
                let alpha = a.neighbours(at..end_a, row_a, pa);
                let ra = a.run(at..end_a, pa, alpha, w);
                (a.coder, w) = match alpha {
                    2 => ra.decode::<P, M, true>(t, &mut bad),
                    _ => ra.decode::<P, M, false>(t, &mut bad),
                };
                if M & SIGNED != 0 {
                    let bytes = a.bytes.signs;
                    let run = SignRun::new(a.signs, bytes, at..end_a, fresh_a, row_a, a.k, a.out);
                    a.signs = signs(run, probs);
                }
                at = end_a;
            }
        }
        a.rows.advance(at);
        a.overrun()?;
    }
    check_bad(bad)
}

/// Decodes a two-lane payload (coders 3 and 4, after the id).
pub(in super::super) fn decode_lanes(
    mut r: PayloadReader,
    shape: [usize; 3],
    n: usize,
    layout: Layout,
) -> Result<Vec<i64>> {
    let held = r.rest().len();
    let (f, probs) = match layout {
        Layout::Signs => flags(&mut r)?,
        _ => (0, None),
    };
    let signed = probs.is_some();
    let tables = read_tables(&mut r, PROB_BITS, tables_of(f))?;
    let rans = [r.chunk()?, r.chunk()?];
    let lens = rans.map(|l| l.len());
    super::super::refuse_beyond(n, rans_capacity(&tables, PROB_BITS, &lens), held)?;
    let (slots, base) = slots(&tables, PROB_BITS, |s| slot_symbol(f, s));
    let signs = match signed {
        true => [r.chunk()?, r.chunk()?],
        false => [&[][..]; 2],
    };
    let bits_a = r.chunk()?;
    let split = lane_split(shape).min(n);
    let mut k = try_vec::<u8>(n, "decoding")?;
    let mut out = scratch::I64.try_filled(n, "decoding")?;
    let (ka, kb) = k.split_at_mut(split);
    let (oa, ob) = out.split_at_mut(split);
    let bits = [bits_a, r.rest()];
    let padded_bits = bits.map(padded);
    let lane = |l: usize| Bytes {
        rans: rans[l],
        signs: signs[l],
        bits: &padded_bits[l],
        bits_len: bits[l].len(),
    };
    let mut a = Lane::new(lane(0), 0, shape, ka, oa)?;
    let mut b = Lane::new(lane(1), split, shape, kb, ob)?;
    let t = Tables::<PROB_BITS>::new(&slots, &base);
    let p = probs.unwrap_or(Probs::from_bytes([128; SIGNS]));
    let lanes = (&mut a, Some(&mut b));
    match f {
        SIGNED => decode_rows::<PROB_BITS, SIGNED>(lanes.0, lanes.1, &t, &p)?,
        JOINT => decode_rows::<PROB_BITS, JOINT>(lanes.0, lanes.1, &t, &p)?,
        _ => decode_rows::<PROB_BITS, 0>(lanes.0, lanes.1, &t, &p)?,
    }
    a.finish(signed)?;
    b.finish(signed)?;
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
pub(in super::super) fn decode_v1(
    mut r: PayloadReader,
    shape: [usize; 3],
    n: usize,
) -> Result<Vec<i64>> {
    let held = r.rest().len();
    let tables = read_tables(&mut r, V1_PROB_BITS, TableLayout::CLASSES)?;
    let rans = r.chunk()?;
    let cap = rans_capacity(&tables, V1_PROB_BITS, &[rans.len()]);
    super::super::refuse_beyond(n, cap, held)?;
    let (slots, base) = slots(&tables, V1_PROB_BITS, |s| s);
    let mut k = try_vec::<u8>(n, "decoding")?;
    let mut out = scratch::I64.try_filled(n, "decoding")?;
    let bits = padded(r.rest());
    let bytes = Bytes {
        rans,
        signs: &[],
        bits: &bits,
        bits_len: r.rest().len(),
    };
    let mut lane = Lane::new(bytes, 0, shape, &mut k, &mut out)?;
    let t = Tables::<V1_PROB_BITS>::new(&slots, &base);
    decode_rows::<V1_PROB_BITS, 0>(&mut lane, None, &t, &Probs::from_bytes([128; SIGNS]))?;
    lane.finish(false)?;
    Ok(out)
}
