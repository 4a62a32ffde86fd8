//! The context coder's frequency tables: how they are stored (a mask of the contexts in use,
//! then per context its symbol range and a 1-byte log-scale weight per symbol), normalized
//! (integer arithmetic, identical everywhere) and laid out for encoding and decoding, and what
//! they bound.

use crate::error::{Error, Result};
use crate::format::payload::PayloadReader;

/// Room for the symbols: magnitude classes 0..=63 (residuals stay far below 2^62), or, with
/// the sign in the symbol (coder 4's flag `JOINT`, `context/`), 0..=125.
pub(super) const SYMBOLS: usize = 128;
/// Contexts of the mean neighbouring class, and three times as many by the sign of the value
/// before where the sign is in the symbol.
pub(super) const CONTEXTS: usize = 24;
pub(super) const JOINT_CONTEXTS: usize = 3 * CONTEXTS;

/// What a payload's tables are over: how many contexts, and the symbols they may hold.
#[derive(Clone, Copy)]
pub(super) struct TableLayout {
    pub(super) contexts: usize,
    pub(super) symbols: usize,
}

impl TableLayout {
    /// Classes by the mean neighbouring class: coders 1 and 3, coder 4 without flags.
    pub(super) const CLASSES: TableLayout = TableLayout {
        contexts: CONTEXTS,
        symbols: 64,
    };

    /// The bytes of the mask of contexts in use: 4, or 9 for more than 32 contexts.
    fn mask_bytes(self) -> usize {
        if self.contexts > 32 {
            self.contexts.div_ceil(8)
        } else {
            4
        }
    }
}

/// Probability precision of `CONTEXT`: 10 bits cost under 0.03% on the real fields against 12,
/// and keep the decoding tables of the contexts in use within the L1 cache.
pub(super) const PROB_BITS: u32 = 10;
pub(super) const V1_PROB_BITS: u32 = 12;
pub(super) const RANS_L: u32 = 1 << 23;

/// A rANS decoder's renormalization after a symbol: while the state `x` is below `RANS_L`,
/// shift in the next byte of `bytes` at `pos` (zeros past the end, which the caller's end
/// check catches), at most twice: with probabilities of at most 12 bits, a symbol of a valid
/// stream leaves x >= 2^11, and a decoder must not read a third byte (doc/format.md §6.4).
#[inline(always)]
pub(super) fn refill(x: &mut u32, pos: &mut usize, bytes: &[u8]) {
    let byte = |p: usize| bytes.get(p).copied().unwrap_or(0) as u32;
    // The first byte without a branch (whether a symbol needs one is hard to foretell): a
    // shift by 0 or 8, and the byte shifted away where not needed.
    let s = ((*x < RANS_L) as u32) << 3;
    *x = (*x << s) | (byte(*pos) >> (8 - s));
    *pos += (s >> 3) as usize;
    // The second only after a rare symbol.
    if *x < RANS_L {
        *x = (*x << 8) | byte(*pos);
        *pos += 1;
    }
}

/// Writes the tables of the contexts in use (a mask, then per context its symbol range and one
/// log-scale weight per symbol), one per entry of `counts` (of `layout`), and returns all
/// contexts' tables as the decoder rebuilds them.
pub(super) fn write_tables(
    counts: &[[u32; SYMBOLS]],
    layout: TableLayout,
    out: &mut Vec<u8>,
) -> Vec<Table> {
    debug_assert_eq!(counts.len(), layout.contexts);
    let used: u128 = (0..layout.contexts)
        .filter(|&c| counts[c].iter().any(|&v| v > 0))
        .fold(0, |m, c| m | 1 << c);
    out.extend_from_slice(&used.to_le_bytes()[..layout.mask_bytes()]);
    let mut tables: Vec<Table> = (0..layout.contexts)
        .map(|_| Table::with_freqs([0; SYMBOLS]))
        .collect();
    for c in (0..layout.contexts).filter(|&c| used >> c & 1 == 1) {
        let h = &counts[c];
        let lo = (0..SYMBOLS).find(|&s| h[s] > 0).unwrap();
        let hi = (0..SYMBOLS).rev().find(|&s| h[s] > 0).unwrap();
        let total: u64 = h.iter().map(|&v| v as u64).sum();
        out.extend_from_slice(&[lo as u8, (hi - lo) as u8]);
        tables[c] = Table::from_counts(&weights(h, lo, hi, total, out), PROB_BITS);
    }
    tables
}

/// The weights of the counts `h` (nonzero from `lo` to `hi`, `total` in all) as stored, their
/// codes appended to `out`.
fn weights(
    h: &[u32; SYMBOLS],
    lo: usize,
    hi: usize,
    total: u64,
    out: &mut Vec<u8>,
) -> [u32; SYMBOLS] {
    let mut weights = [0u32; SYMBOLS];
    for s in lo..=hi {
        let code = weight_code(h[s] as u64, total);
        out.push(code);
        weights[s] = weight_of(code);
    }
    weights
}

/// The bytes [`write_tables`] and the rANS coding of the counts would take (the latter as the
/// ideal cost with the normalized tables): what the encoder weighs codings by.
pub(super) fn coded_bytes(counts: &[[u32; SYMBOLS]], layout: TableLayout) -> f64 {
    let mut bytes = layout.mask_bytes() as f64;
    let mut scratch = Vec::with_capacity(SYMBOLS);
    for h in counts.iter().filter(|h| h.iter().any(|&v| v > 0)) {
        let lo = (0..SYMBOLS).find(|&s| h[s] > 0).unwrap();
        let hi = (0..SYMBOLS).rev().find(|&s| h[s] > 0).unwrap();
        let total: u64 = h.iter().map(|&v| v as u64).sum();
        scratch.clear();
        let t = Table::from_counts(&weights(h, lo, hi, total, &mut scratch), PROB_BITS);
        let bits: f64 = (lo..=hi)
            .filter(|&s| h[s] > 0)
            .map(|s| h[s] as f64 * (PROB_BITS as f64 - (t.freq[s] as f64).log2()))
            .sum();
        bytes += (2 + hi - lo + 1) as f64 + bits / 8.0;
    }
    bytes
}

/// Reads what [`write_tables`] wrote: the tables of the contexts in use, in context order,
/// normalized to `prob_bits`.
pub(super) fn read_tables(
    r: &mut PayloadReader,
    prob_bits: u32,
    layout: TableLayout,
) -> Result<Vec<(usize, Table)>> {
    let mut mask = [0u8; 16];
    mask[..layout.mask_bytes()].copy_from_slice(r.bytes(layout.mask_bytes())?);
    let used = u128::from_le_bytes(mask);
    if used >> layout.contexts != 0 {
        return Err(Error::corrupt("unknown contexts in use"));
    }
    let mut tables = Vec::new();
    for cx in (0..layout.contexts).filter(|&cx| used >> cx & 1 == 1) {
        let head = r.bytes(2)?;
        let (lo, len) = (head[0] as usize, head[1] as usize);
        if lo + len >= layout.symbols {
            return Err(Error::corrupt("bad frequency table range"));
        }
        let mut weights = [0u32; SYMBOLS];
        for (s, &code) in r.bytes(len + 1)?.iter().enumerate() {
            weights[lo + s] = weight_of(code);
        }
        let t = Table::from_counts(&weights, prob_bits);
        if t.total != 1 << prob_bits {
            return Err(Error::corrupt("empty frequency table"));
        }
        tables.push((cx, t));
    }
    Ok(tables)
}

/// Lays out the decoding slots of `tables` (those of the contexts in use, as [`read_tables`]
/// gives them), one after the other; returns the slots and each context's first slot (top bit
/// set: absent). A slot holds what the decoder needs of the symbol (`low` of it, bits 0-7), its
/// frequency minus one (8-19; a lone symbol at 12 bits has 2^12) and its start (20-31), so one
/// load per value gives all three.
pub(super) fn slots(
    tables: &[(usize, Table)],
    prob_bits: u32,
    low: impl Fn(u8) -> u8,
) -> (Vec<u32>, [u32; JOINT_CONTEXTS]) {
    let size = 1usize << prob_bits;
    let mut base = [1u32 << 31; JOINT_CONTEXTS];
    let mut slots = vec![0u32; tables.len().max(1) * size];
    for (t, (cx, table)) in tables.iter().enumerate() {
        base[*cx] = (t * size) as u32;
        let mine = &mut slots[t * size..(t + 1) * size];
        for sym in 0..SYMBOLS {
            let (st, f) = (table.start[sym], table.freq[sym]);
            if f > 0 {
                let entry = low(sym as u8) as u32 | (f - 1) << 8 | st << 20;
                mine[st as usize..(st + f) as usize].fill(entry);
            }
        }
    }
    (slots, base)
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

/// A symbol prepared for encoding: x → (x / f)·2^bits + x mod f + start, with the division done
/// as a multiplication by a precomputed reciprocal (the encoder's serial dependency chain would
/// otherwise wait on a hardware division for every value). For the classes' tables (10 bits)
/// and the signs' binary coder (12 bits).
#[derive(Clone, Copy, Default)]
pub(super) struct EncSymbol {
    x_max: u32,
    rcp: u32,
    shift: u32,
    bias: u32,
    cmpl: u32,
}

impl EncSymbol {
    pub(super) fn new(start: u32, freq: u32, bits: u32) -> EncSymbol {
        if freq == 0 {
            return EncSymbol::default(); // never coded
        }
        let x_max = ((RANS_L >> bits) << 8) * freq;
        let cmpl = (1 << bits) - freq;
        if freq == 1 {
            // x / 1 = x: q = x via rcp = 2^32 − 1 and a bias folding in the correction.
            return EncSymbol {
                x_max,
                rcp: u32::MAX,
                shift: 0,
                bias: start + (1 << bits) - 1,
                cmpl,
            };
        }
        let mut shift = 0;
        while freq > (1u32 << shift) {
            shift += 1;
        }
        // ceil(2^(shift+31) / freq): exact quotients for every x < 2^31 (x < x_max <= 2^31).
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
    pub(super) fn put(&self, x: &mut u32, out: &mut RansBytes) {
        // The first byte without a branch (whether a symbol needs one is hard to foretell):
        // written either way, and kept where needed.
        out.room();
        let first = (*x >= self.x_max) as u32;
        out.keep(*x as u8, first);
        *x >>= first << 3;
        // A second only for a rare symbol.
        while *x >= self.x_max {
            out.keep(*x as u8, 1);
            *x >>= 8;
        }
        let q = (((*x as u64 * self.rcp as u64) >> 32) as u32) >> self.shift;
        *x = x
            .wrapping_add(self.bias)
            .wrapping_add(q.wrapping_mul(self.cmpl));
    }
}

/// A rANS encoder's bytes as it writes them (backwards): `len` of them kept in `buf`, which
/// has room for a symbol's bytes beyond them so that one can be written before it is known
/// whether it is kept.
#[derive(Default)]
pub(super) struct RansBytes {
    buf: Vec<u8>,
    len: usize,
}

impl RansBytes {
    pub(super) fn with_capacity(bytes: usize) -> RansBytes {
        RansBytes {
            buf: vec![0; bytes.max(16)],
            len: 0,
        }
    }

    /// Room for a symbol's bytes (at most 2, as the probabilities have at most 12 bits).
    #[inline(always)]
    fn room(&mut self) {
        if self.len + 4 > self.buf.len() {
            self.buf.resize(2 * self.buf.len() + 16, 0);
        }
    }

    /// Writes `byte` after those kept, and keeps it if `keep` is 1.
    #[inline(always)]
    fn keep(&mut self, byte: u8, keep: u32) {
        self.buf[self.len] = byte;
        self.len += keep as usize;
    }
}

/// Ends a rANS encoder's bytes (written backwards): its final state, then all reversed, so the
/// decoder reads the state first, big-endian, and the bytes in the order it needs them.
pub(super) fn finish_rans(out: RansBytes, x: u32) -> Vec<u8> {
    let mut bytes = out.buf;
    bytes.truncate(out.len);
    bytes.extend_from_slice(&x.to_le_bytes());
    bytes.reverse();
    bytes
}

/// A normalized frequency table (sums to 2^prob_bits where used).
pub(super) struct Table {
    pub(super) freq: [u32; SYMBOLS],
    pub(super) start: [u32; SYMBOLS],
    pub(super) total: u32,
}

impl Table {
    pub(super) fn from_counts(h: &[u32; SYMBOLS], prob_bits: u32) -> Table {
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

    pub(super) fn with_freqs(freq: [u32; SYMBOLS]) -> Table {
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

/// Values the rANS lanes of `lane_lens` bytes (4-byte state + renormalisation bytes) can decode
/// at most, when no symbol has the whole probability range M = 2^p. Decoding a symbol of
/// frequency f <= M − 1 from state x takes x to x − (M − f)·⌊x/M⌋ − start <= x − ⌊x/M⌋. A step
/// that leaves x >= L (so x was >= L) shrinks log2(x + 1) by at least 2^−p − 2^−23 >= 2^−(p+1);
/// a step that leaves x < L is followed by a byte read, which adds at most 8 to log2(x + 1),
/// as the initial state adds 32. A valid lane reads exactly its bytes, so it decodes at most
/// B + (32 + 8B)·2^(p+1) values, B its renormalisation bytes; more fail at its end anyway.
pub(super) fn rans_capacity(tables: &[(usize, Table)], p: u32, lane_lens: &[usize]) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let sizes = [1u32, 2, 3, 7, 100, 511, 1000, 1023, 1024, 2047, 2049, 4080];
        for (freq, bits) in [PROB_BITS, 12].into_iter().flat_map(|b| {
            (sizes.into_iter())
                .filter(move |&f| f <= 1 << b)
                .map(move |f| (f, b))
        }) {
            let start = 5.min((1 << bits) - freq);
            let e = EncSymbol::new(start, freq, bits);
            for x in (RANS_L..e.x_max.max(RANS_L + 1))
                .step_by(9973)
                .chain([RANS_L, e.x_max.saturating_sub(1)])
            {
                if x >= e.x_max {
                    continue;
                }
                let (mut y, mut out) = (x, RansBytes::default());
                e.put(&mut y, &mut out);
                assert_eq!(out.len, 0);
                assert_eq!(
                    y,
                    ((x / freq) << bits) + (x % freq) + start,
                    "freq {freq} x {x}"
                );
            }
        }
    }
}
