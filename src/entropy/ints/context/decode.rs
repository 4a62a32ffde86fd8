//! The context coder's decoder: coders 4, 3 and 1 (see the parent module).

use super::super::binary::{self, Probs, SIGNS};
use super::super::tables::{
    rans_capacity, read_slots, read_tables, refill, TableLayout, CONTEXTS, JOINT_CONTEXTS,
    PROB_BITS, RANS_L, V1_PROB_BITS,
};
use super::super::unzigzag;
use super::{context, joint_class, lane_split, row_of, tables_of, Row, JOINT, SIGNED};
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
/// modelled) and raw bits.
#[derive(Clone, Copy)]
struct Bytes<'a> {
    rans: &'a [u8],
    signs: &'a [u8],
    bits: &'a [u8],
}

/// One lane of a payload being decoded: its bytes, where it starts in the block, its part of
/// the classes and of the output, and its decoders' states. The decoder goes through it a row at a time
/// (a row's neighbours are all present or all missing).
struct Lane<'a> {
    bytes: Bytes<'a>,
    start: usize,
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

/// The tables of a payload's contexts, with probabilities of `P` bits.
struct Tables<'t, const P: u32> {
    slots: &'t [u32],
    base: &'t [u32; JOINT_CONTEXTS],
}

impl<'a> Lane<'a> {
    fn new(
        bytes: Bytes<'a>,
        start: usize,
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
            start,
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

    /// The end (lane index) of the row that holds lane index `at`, its neighbours, and whether
    /// `at` starts it (the class before it is then taken as 0).
    fn row(&self, at: usize, shape: [usize; 3]) -> (usize, Row, bool) {
        row_of(self.start, at, self.k.len(), shape)
    }

    /// Decodes lane indices `at..end` (of one row, with neighbours `row`) after the symbol `w`
    /// (`fresh`: `at` starts the row), and returns the last symbol; `M`: the payload's flags.
    #[allow(clippy::too_many_arguments)]
    fn decode<const P: u32, const M: u8>(
        &mut self,
        at: usize,
        end: usize,
        fresh: bool,
        mut w: u8,
        row: Row,
        t: &Tables<P>,
        probs: &Probs,
        bad: &mut u32,
    ) -> u8 {
        let mut c = self.coder;
        let (k, out) = (&mut *self.k, &mut *self.out);
        for i in at..end {
            w = c.step::<P, M>(i, w, row, t, self.bytes, k, out, bad);
        }
        self.coder = c;
        if M & SIGNED != 0 {
            let mut run = SignRun::new(self.signs, self.bytes.signs, at..end, fresh, row, k, out);
            signs(&mut run, None, probs);
            self.signs = run.dec;
        }
        w
    }

    /// Whether the lane has read past its bytes: a valid lane never does, so a payload that
    /// claims more values than it holds is caught here, early.
    fn overrun(&self) -> Result<()> {
        let (c, b) = (&self.coder, &self.bytes);
        if c.pos > b.rans.len() || c.bit_pos > b.bits.len() * 8 || !self.signs.within(b.signs.len())
        {
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
        if b.bits.len() * 8 - c.bit_pos >= 8 {
            return Err(Error::corrupt("trailing raw bits"));
        }
        Ok(())
    }
}

impl Coder {
    /// Decodes the value at lane index `at` of a row with neighbours `row`, after the symbol
    /// `w` ([`slot_symbol`]; [`FRESH`] at the row's start), and returns its symbol; `M`: the
    /// payload's flags. With signs in streams of their own, a value of class 2 or more is left
    /// zigzagged without its sign, for [`SignRun`]. Reads past the end give zeros and are caught
    /// by [`Lane::finish`]; a context without a table is flagged in `bad`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn step<const P: u32, const M: u8>(
        &mut self,
        at: usize,
        w: u8,
        row: Row,
        t: &Tables<P>,
        bytes: Bytes,
        k: &mut [u8],
        out: &mut [i64],
        bad: &mut u32,
    ) -> u8 {
        let wk = w & 0x3f;
        let n = if row.n > 0 { k[at - row.n] } else { wk };
        let bk = if row.b > 0 { k[at - row.b] } else { n };
        let cx = match M & JOINT {
            0 => context(wk, n, bk),
            _ => context(wk, n, bk) + CONTEXTS * (w >> 6) as usize,
        };
        let b = t.base[cx];
        *bad |= b >> 31;
        let slot = self.x & ((1 << P) - 1);
        let e = t.slots[(b & 0x7fff_ffff) as usize + slot as usize];
        let (sym, f, st) = ((e & 0xff) as u8, ((e >> 8) & 0xfff) + 1, e >> 20);
        self.x = f * (self.x >> P) + slot - st;
        // From x >= 2^(23 − P) two bytes always suffice (P <= 12).
        refill(&mut self.x, &mut self.pos, bytes.rans);
        let s = sym & 0x3f;
        k[at] = s;
        // The raw bits below the leading one, but a sign coded otherwise: in its own stream
        // (`later`, added by `SignRun`) or in the symbol (negative where its code is 0).
        let later = (M & SIGNED != 0 && s >= 2) as u32;
        let held = (M & JOINT != 0 && s >= 2) as u32;
        let nb = (s as u32).saturating_sub(1) - later - held;
        let raw = read_bits(bytes.bits, self.bit_pos, nb);
        self.bit_pos += nb as usize;
        let neg = held & (sym < 0x40) as u32;
        let z = ((1u64 << s) >> 1) | raw << (later | held) | neg as u64;
        out[at] = if later == 1 { z as i64 } else { unzigzag(z) };
        sym
    }
}

/// A run of a lane's row whose signs are being decoded, after its classes: its values
/// (zigzagged without their signs until then) and classes, its neighbours in the previous row
/// and plane (zeros where missing), the sign decoder and the sign before, as masks (all ones
/// in the first if negative, in the second if positive; 0 in both at the row's start).
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
        let one = self
            .dec
            .get(self.bytes, probs.after(self.w.0, self.w.1, nb));
        self.cur[i] = unzigzag(self.cur[i] as u64 | (one & 1) as u64);
        self.w = (one, !one);
    }
}

/// Adds the modelled signs to the runs of one lane or two (side by side, so that their serial
/// chains overlap).
fn signs(a: &mut SignRun, b: Option<&mut SignRun>, probs: &Probs) {
    let len = a.cur.len();
    match b {
        Some(b) => {
            for i in 0..len.min(b.cur.len()) {
                a.step(i, probs);
                b.step(i, probs);
            }
        }
        None => (0..len).for_each(|i| a.step(i, probs)),
    }
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
    shape: [usize; 3],
    t: &Tables<P>,
    probs: &Probs,
) -> Result<()> {
    let mut bad = 0;
    let both = b.as_ref().map_or(0, |b| b.k.len());
    let (mut at, mut w, mut wb) = (0, FRESH, FRESH);
    while at < a.k.len() {
        let (end_a, row_a, fresh_a) = a.row(at, shape);
        let end_a = end_a.min(at + RUN);
        w = if fresh_a { FRESH } else { w };
        match b.as_deref_mut().filter(|_| at < both) {
            Some(b) => {
                let (end_b, row_b, fresh_b) = b.row(at, shape);
                wb = if fresh_b { FRESH } else { wb };
                let end = end_a.min(end_b);
                let (mut ca, mut cb) = (a.coder, b.coder);
                let (ba, ka, oa) = (a.bytes, &mut *a.k, &mut *a.out);
                let (bb, kb, ob) = (b.bytes, &mut *b.k, &mut *b.out);
                for i in at..end {
                    w = ca.step::<P, M>(i, w, row_a, t, ba, ka, oa, &mut bad);
                    wb = cb.step::<P, M>(i, wb, row_b, t, bb, kb, ob, &mut bad);
                }
                (a.coder, b.coder) = (ca, cb);
                if M & SIGNED != 0 {
                    let mut ra = SignRun::new(a.signs, ba.signs, at..end, fresh_a, row_a, ka, oa);
                    let mut rb = SignRun::new(b.signs, bb.signs, at..end, fresh_b, row_b, kb, ob);
                    signs(&mut ra, Some(&mut rb), probs);
                    (a.signs, b.signs) = (ra.dec, rb.dec);
                }
                b.overrun()?;
                at = end;
            }
            None => {
                w = a.decode::<P, M>(at, end_a, fresh_a, w, row_a, t, probs, &mut bad);
                at = end_a;
            }
        }
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
    let (f, probs) = match layout {
        Layout::Signs => flags(&mut r)?,
        _ => (0, None),
    };
    let signed = probs.is_some();
    let (slots, base) = read_slots(&mut r, PROB_BITS, tables_of(f), |s| slot_symbol(f, s))?;
    let rans = [r.chunk()?, r.chunk()?];
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
    let lane = |l: usize, bits| Bytes {
        rans: rans[l],
        signs: signs[l],
        bits,
    };
    let mut a = Lane::new(lane(0, bits_a), 0, ka, oa)?;
    let mut b = Lane::new(lane(1, r.rest()), split, kb, ob)?;
    let t = Tables::<PROB_BITS> {
        slots: &slots,
        base: &base,
    };
    let p = probs.unwrap_or(Probs::from_bytes([128; SIGNS]));
    let lanes = (&mut a, Some(&mut b));
    match f {
        SIGNED => decode_rows::<PROB_BITS, SIGNED>(lanes.0, lanes.1, shape, &t, &p)?,
        JOINT => decode_rows::<PROB_BITS, JOINT>(lanes.0, lanes.1, shape, &t, &p)?,
        _ => decode_rows::<PROB_BITS, 0>(lanes.0, lanes.1, shape, &t, &p)?,
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
    let (slots, base) = read_slots(&mut r, V1_PROB_BITS, TableLayout::CLASSES, |s| s)?;
    let rans = r.chunk()?;
    let mut k = try_vec::<u8>(n, "decoding")?;
    let mut out = scratch::I64.try_filled(n, "decoding")?;
    let bytes = Bytes {
        rans,
        signs: &[],
        bits: r.rest(),
    };
    let mut lane = Lane::new(bytes, 0, &mut k, &mut out)?;
    let t = Tables::<V1_PROB_BITS> {
        slots: &slots,
        base: &base,
    };
    decode_rows::<V1_PROB_BITS, 0>(&mut lane, None, shape, &t, &Probs::from_bytes([128; SIGNS]))?;
    lane.finish(false)?;
    Ok(out)
}
