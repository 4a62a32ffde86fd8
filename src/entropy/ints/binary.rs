//! The signs the context coder models from coder 4 on: a residual's sign (bit 0 of its zigzag
//! form, coded for classes >= 2) in the context of the signs of its causal neighbours (before
//! it in the row, in the previous row and plane). Where a predictor leaves its residuals
//! correlated, as every fixed or least-squares one does somewhere, those signs foretell the
//! next: 1-6 % of a block's bits on the real fields. The 27 contexts' probabilities are counted
//! per block and stored in a byte each, and the signs go to a binary rANS stream of their own
//! per lane. (Probabilities that adapt as they go saved up to 2 % more on some fields, but
//! took twice as long to decode.)

use super::tables::{finish_rans, refill, EncSymbol, RansBytes, RANS_L};

/// Probability precision of the binary coder.
const BITS: u32 = 12;
const ONE: u32 = 1 << BITS;
/// Sign contexts: the signs (−, 0, +) of the value before in the row, in the previous row and
/// in the previous plane (0 where missing).
pub(super) const SIGNS: usize = 27;

/// The probabilities (of a sign being negative, 12 bits) of the contexts, by the signs of the
/// north and behind neighbours (`nb`, the context with a negative west), then the west's.
#[derive(Clone, Copy)]
pub(super) struct Probs([[u32; 3]; 9]);

impl Probs {
    /// From each context's count of negative signs and of all signs: each stored in a byte,
    /// 16·b with b in [1, 255].
    pub(super) fn from_counts(neg: [u64; SIGNS], all: [u64; SIGNS]) -> (Probs, [u8; SIGNS]) {
        let bytes = std::array::from_fn(|c| {
            let b = (255 * (2 * neg[c] + 1)).div_ceil(2 * all[c] + 2);
            b.clamp(1, 255) as u8
        });
        (Probs::from_bytes(bytes), bytes)
    }

    pub(super) fn from_bytes(bytes: [u8; SIGNS]) -> Probs {
        Probs(std::array::from_fn(|nb| {
            std::array::from_fn(|w| 16 * bytes[9 * w + nb] as u32)
        }))
    }

    /// The probability of context `c`.
    fn of(&self, c: usize) -> u32 {
        self.0[c % 9][c / 9]
    }

    /// The ideal bits of signs with `neg` negative ones among `all` per context, coded with
    /// these probabilities (what [`encode`] writes, but for its final states).
    pub(super) fn ideal_bits(&self, neg: &[u64; SIGNS], all: &[u64; SIGNS]) -> f64 {
        (0..SIGNS)
            .map(|c| {
                let p = self.of(c) as f64 / ONE as f64;
                -(neg[c] as f64 * p.log2() + (all[c] - neg[c]) as f64 * (1.0 - p).log2())
            })
            .sum()
    }

    /// The probability of a sign whose west neighbour's sign is negative where `neg` is all
    /// ones, positive where `pos` is (0 where both are 0), and whose other neighbours' signs
    /// give `nb` ([`sign_context`] with a negative west). The three it chooses from are read
    /// without waiting for the west sign, and chosen without a branch (signs are hard to
    /// foretell).
    #[inline(always)]
    pub(super) fn after(&self, neg: u32, pos: u32, nb: usize) -> u32 {
        let [n, z, p] = self.0[nb];
        z ^ ((n ^ z) & neg) ^ ((p ^ z) & pos)
    }
}

/// The context of a sign whose neighbours (previous in the row, previous row, previous plane;
/// 0 where missing) have signs `w`, `n` and `b`.
#[inline(always)]
pub(super) fn sign_context(w: i64, n: i64, b: i64) -> usize {
    (9 * (w + 1) + 3 * (n + 1) + (b + 1)) as usize
}

/// Codes the signs of two lanes (each `c << 1 | negative`, `c` its context) backwards into
/// their binary rANS streams (the final state first), the lanes in one loop so their serial
/// chains overlap.
pub(super) fn encode(probs: &Probs, lanes: [&[u8]; 2]) -> [Vec<u8>; 2] {
    // A sign is 1 (negative, first in the slots) with probability p in [16, 4080].
    let syms: Vec<EncSymbol> = (0..2 * SIGNS)
        .map(|q| match (probs.of(q >> 1), q & 1 == 1) {
            (p, true) => EncSymbol::new(0, p, BITS),
            (p, false) => EncSymbol::new(p, ONE - p, BITS),
        })
        .collect();
    let mut out = lanes.map(|q| RansBytes::with_capacity(q.len() / 4 + 8));
    let mut x = [RANS_L; 2];
    let len = lanes[0].len().max(lanes[1].len());
    for t in (0..len).rev() {
        for l in 0..2 {
            if let Some(&q) = lanes[l].get(t) {
                syms[q as usize].put(&mut x[l], &mut out[l]);
            }
        }
    }
    let [a, b] = out;
    [finish_rans(a, x[0]), finish_rans(b, x[1])]
}

/// A lane's binary decoder: its state and position in its bytes.
#[derive(Clone, Copy)]
pub(super) struct Decoder {
    x: u32,
    pos: usize,
}

impl Decoder {
    /// Starts on `bytes`: a short state reads as zeros past the end, as an overrun; none (no
    /// stream: the bits are not modelled) as state 0, which fails the end check if used.
    pub(super) fn new(bytes: &[u8]) -> Decoder {
        let mut head = [0u8; 4];
        let have = bytes.len().min(4);
        head[..have].copy_from_slice(&bytes[..have]);
        Decoder {
            x: u32::from_be_bytes(head),
            pos: if bytes.is_empty() { 0 } else { 4 },
        }
    }

    /// Decodes one bit of probability `pp` (of being 1), as a mask (all ones for 1). Reads past
    /// the end give zeros, caught by [`Decoder::finished`]. Without branches on the bit: it is
    /// hard to foretell.
    #[inline(always)]
    pub(super) fn get(&mut self, bytes: &[u8], pp: u32) -> u32 {
        let slot = self.x & (ONE - 1);
        // All ones where slot < pp (the bit is 1), by the sign of the difference: written as
        // a comparison, the compiler branched on it.
        let one = (slot.wrapping_sub(pp) as i32 >> 31) as u32;
        let f = (ONE - pp) ^ (one & ((ONE - pp) ^ pp));
        self.x = f * (self.x >> BITS) + slot - (pp & !one);
        // f >= 16, so from x >= 2^23 one byte restores it; two for a hostile first state.
        refill(&mut self.x, &mut self.pos, bytes);
        one
    }

    /// Whether the decoder has read no further than `len` bytes.
    pub(super) fn within(&self, len: usize) -> bool {
        self.pos <= len
    }

    /// Whether the decoder ended exactly where the encoder started.
    pub(super) fn finished(&self, len: usize) -> bool {
        self.pos == len && self.x == RANS_L
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_round_trip_and_skewed_ones_cost_little() {
        // Two lanes of different lengths (contexts and signs): random, and in one context
        // per west sign repeating the sign before 95 % of the time.
        let mut s = 7u64;
        let mut rnd = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 33) as u32
        };
        let mut last = 1i64;
        let signs: [Vec<(usize, bool)>; 2] = [
            (0..5000)
                .map(|_| (rnd() as usize % SIGNS, rnd() & 1 == 1))
                .collect(),
            (0..20000)
                .map(|_| {
                    let c = sign_context(last, 0, 0);
                    last = if rnd() % 100 < 95 { last } else { -last };
                    (c, last < 0)
                })
                .collect(),
        ];
        for (l, lane) in signs.iter().enumerate() {
            let (mut neg, mut all) = ([0u64; SIGNS], [0u64; SIGNS]);
            for &(c, bit) in lane {
                neg[c] += bit as u64;
                all[c] += 1;
            }
            let (probs, bytes) = Probs::from_counts(neg, all);
            let seq: Vec<u8> = lane
                .iter()
                .map(|&(c, bit)| (c as u8) << 1 | bit as u8)
                .collect();
            let coded = encode(&probs, [&seq, &[]]);
            let probs = Probs::from_bytes(bytes);
            let mut d = Decoder::new(&coded[0]);
            for &(c, bit) in lane {
                let w = c / 9; // 0, 1, 2: the west sign −, 0, +
                let mask = |yes: bool| (yes as u32).wrapping_neg();
                let p = probs.after(mask(w == 0), mask(w == 2), c % 9);
                assert_eq!(d.get(&coded[0], p) & 1, bit as u32);
            }
            assert!(d.finished(coded[0].len()), "lane {l}");
            // The bytes written against the ideal cost.
            let ideal: f64 = (0..SIGNS)
                .map(|c| {
                    let p = probs.of(c) as f64 / ONE as f64;
                    let n = neg[c] as f64;
                    -(n * p.log2() + (all[c] as f64 - n) * (1.0 - p).log2()) / 8.0
                })
                .sum();
            let got = coded[0].len() as f64;
            assert!(got < ideal * 1.02 + 8.0, "lane {l}: {got} vs {ideal}");
            // About a bit per random sign; 0.29 per sign that repeats 95 % of the time.
            let want = [600.0..660.0, 700.0..760.0][l].clone();
            assert!(want.contains(&got), "lane {l}: {got} bytes");
        }
    }
}
