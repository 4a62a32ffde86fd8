//! The NGLR network: its integer weights, its canonical bytes (the stream's table entry and
//! the network file), and its evaluation, exact on every machine: i16 weights and features
//! (products fit i32), wrapping i32 sums, ReLU clamped, fixed shifts.

use crate::error::{Error, Result};
use xxhash_rust::xxh3::xxh3_64;

/// Inputs of the network (`doc/format.md` §7.4 lists them).
pub const FEATURES: usize = 21;
/// Positions the encoder evaluates side by side ([`Network::biases`]).
pub(super) const LANES: usize = 16;
/// The most hidden units a network may have.
pub(crate) const MAX_HIDDEN: usize = 64;
/// Fixed point of features and hidden activations: 1.0 is 2^FRAC.
pub(crate) const FRAC: u32 = 8;
/// Features and activations are clamped to ±this (16 block scales).
pub(crate) const CLAMP: i32 = 16 << FRAC;
const MAGIC: &[u8; 4] = b"NGL1";

/// An integer network: features → `hidden` ReLU units → one output, the bias in block scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    hidden: usize,
    /// Layer 1, feature-major: `w1[f * hidden + j]`.
    w1: Vec<i16>,
    b1: Vec<i32>,
    /// Right shift from layer 1's sums to activations in [`FRAC`] fixed point.
    s1: u32,
    w2: Vec<i16>,
    b2: i32,
    /// Right shift (beyond [`FRAC`]) from the output sum times the scale to the bias.
    s2: u32,
    /// The stream's entry: content hash (xxh3 u64 LE) of the canonical bytes, then them.
    entry: Vec<u8>,
}

impl Network {
    /// A network from its integer weights (`w1` feature-major); checks the sizes and shifts.
    pub fn new(
        hidden: usize,
        w1: Vec<i16>,
        b1: Vec<i32>,
        s1: u32,
        w2: Vec<i16>,
        b2: i32,
        s2: u32,
    ) -> Result<Network> {
        if !(1..=MAX_HIDDEN).contains(&hidden)
            || w1.len() != FEATURES * hidden
            || b1.len() != hidden
            || w2.len() != hidden
            || s1 > 30
            || s2 > 30
        {
            return Err(Error::Model(format!(
                "NGLR network: {hidden} hidden units (1..={MAX_HIDDEN}), {} layer-1 weights, \
                 {} biases, {} layer-2 weights, shifts {s1}, {s2} (at most 30) do not fit",
                w1.len(),
                b1.len(),
                w2.len()
            )));
        }
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[FEATURES as u8, hidden as u8, s1 as u8, s2 as u8]);
        w1.iter()
            .for_each(|w| bytes.extend_from_slice(&w.to_le_bytes()));
        b1.iter()
            .for_each(|b| bytes.extend_from_slice(&b.to_le_bytes()));
        w2.iter()
            .for_each(|w| bytes.extend_from_slice(&w.to_le_bytes()));
        bytes.extend_from_slice(&b2.to_le_bytes());
        let mut entry = xxh3_64(&bytes).to_le_bytes().to_vec();
        entry.extend_from_slice(&bytes);
        Ok(Network {
            hidden,
            w1,
            b1,
            s1,
            w2,
            b2,
            s2,
            entry,
        })
    }

    /// Reads the canonical bytes ([`Network::bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Network> {
        let bad = |m: &str| Error::Model(format!("NGLR network: {m}"));
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(bad("not an NGLR network"));
        }
        let (nf, hidden, s1, s2) = (bytes[4] as usize, bytes[5] as usize, bytes[6], bytes[7]);
        if nf != FEATURES {
            return Err(bad(&format!("{nf} inputs, this version has {FEATURES}")));
        }
        if bytes.len() != 8 + hidden * (2 * FEATURES + 6) + 4 {
            return Err(bad(&format!(
                "{} bytes for {hidden} hidden units",
                bytes.len()
            )));
        }
        // The length is exact: every part is there.
        let (w1, rest) = bytes[8..].split_at(2 * FEATURES * hidden);
        let (b1, rest) = rest.split_at(4 * hidden);
        let (w2, b2) = rest.split_at(2 * hidden);
        let i16s = |b: &[u8]| -> Vec<i16> {
            b.chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        let i32s = |b: &[u8]| -> Vec<i32> {
            b.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let (w1, b1, w2, b2) = (i16s(w1), i32s(b1), i16s(w2), i32s(b2)[0]);
        Network::new(hidden, w1, b1, s1 as u32, w2, b2, s2 as u32)
    }

    /// Canonical bytes: "NGL1", features, hidden, the two shifts (u8 each), w1 (i16,
    /// feature-major), b1 (i32), w2 (i16), b2 (i32), little-endian.
    pub fn bytes(&self) -> &[u8] {
        &self.entry[8..]
    }

    /// The stream's table entry: content hash, then [`Network::bytes`].
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }

    /// The most bytes [`Network::bytes`] can have.
    pub fn max_len() -> usize {
        8 + MAX_HIDDEN * (2 * FEATURES + 6) + 4
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The stream entry's bytes, checked against their content hash.
    pub fn from_entry(entry: &[u8]) -> Result<Network> {
        if entry.len() < 8
            || u64::from_le_bytes(entry[..8].try_into().unwrap()) != xxh3_64(&entry[8..])
        {
            return Err(Error::Model(
                "the stream's NGLR network does not match its content hash".into(),
            ));
        }
        Network::from_bytes(&entry[8..])
    }

    /// The network's output for `f`, in block scales times 2^(FRAC + s2).
    #[inline(always)]
    fn output(&self, f: &[i16; FEATURES]) -> i32 {
        // The common sizes with their sums in registers (the same arithmetic).
        match self.hidden {
            8 => self.layer2(self.layer1::<8>(f, 8)),
            16 => self.layer2(self.layer1::<16>(f, 16)),
            h => self.layer2(self.layer1::<MAX_HIDDEN>(f, h)),
        }
    }

    /// The first layer's sums for `h` ≤ `N` units (the rest 0). i16 products fit i32
    /// (|feature| ≤ 2^12): no multiply can wrap, only the sums.
    #[inline(always)]
    fn layer1<const N: usize>(&self, f: &[i16; FEATURES], h: usize) -> [i32; N] {
        let mut acc = [0i32; N];
        acc[..h].copy_from_slice(&self.b1);
        for (&x, w) in f.iter().zip(self.w1.chunks_exact(h)) {
            for (a, &w) in acc[..h].iter_mut().zip(w) {
                *a = a.wrapping_add(w as i32 * x as i32);
            }
        }
        acc
    }

    /// The output from the first layer's sums.
    #[inline(always)]
    fn layer2<const N: usize>(&self, acc: [i32; N]) -> i32 {
        let mut out = self.b2;
        for (a, &w) in acc.iter().zip(&self.w2) {
            let act = (*a >> self.s1).clamp(0, CLAMP);
            out = out.wrapping_add((w as i32).wrapping_mul(act));
        }
        out
    }

    /// The bias a scale-`d` block adds to the prediction, for features `f`.
    #[inline(always)]
    pub(super) fn bias(&self, f: &[i16; FEATURES], d: u32) -> i64 {
        self.scale(self.output(f), d)
    }

    /// The bias for an output sum.
    #[inline(always)]
    fn scale(&self, out: i32, d: u32) -> i64 {
        let sh = FRAC + self.s2;
        ((out as i64) * d as i64 + (1i64 << (sh - 1))) >> sh
    }

    /// [`Network::bias`] of `n` positions at once (the encoder's: every value is known),
    /// their features feature-major in `feat` (`feat[f * n + k]`, `n` a multiple of [`LANES`]):
    /// the same sums, [`LANES`] positions side by side, which the compiler vectorizes.
    pub(super) fn biases(&self, feat: &[i16], n: usize, d: u32, out: &mut [i64]) {
        debug_assert_eq!(n % LANES, 0);
        let mut sum = vec![self.b2; n];
        for k0 in (0..n).step_by(LANES) {
            let sum: &mut [i32; LANES] = (&mut sum[k0..k0 + LANES]).try_into().unwrap();
            for j in 0..self.hidden {
                let mut acc = [self.b1[j]; LANES];
                for f in 0..FEATURES {
                    let w = self.w1[f * self.hidden + j];
                    let x: &[i16; LANES] = feat[f * n + k0..][..LANES].try_into().unwrap();
                    for (a, &x) in acc.iter_mut().zip(x) {
                        *a = a.wrapping_add(w as i32 * x as i32);
                    }
                }
                let w = self.w2[j] as i32;
                for (s, &a) in sum.iter_mut().zip(&acc) {
                    *s = s.wrapping_add(w.wrapping_mul((a >> self.s1).clamp(0, CLAMP)));
                }
            }
        }
        for (b, &s) in out.iter_mut().zip(&sum) {
            *b = self.scale(s, d);
        }
    }
}

/// Loads a network file (`residuum train --nglr`): safetensors with one u8 tensor `nglr`, the
/// canonical bytes.
pub fn load(path: &std::path::Path) -> Result<Network> {
    let bytes = crate::base::read_weights(path)
        .map_err(|e| Error::Model(format!("cannot read NGLR network {}: {e}", path.display())))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Model(format!("NGLR network {}: {e}", path.display())))?;
    let t = st.tensor("nglr").map_err(|e| {
        Error::Model(format!(
            "NGLR network {}: no `nglr` tensor ({e})",
            path.display()
        ))
    })?;
    Network::from_bytes(t.data())
}

/// Writes `net` as a network file for [`load`].
pub fn save(net: &Network, path: &std::path::Path) -> Result<()> {
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::U8,
        vec![net.bytes().len()],
        net.bytes(),
    )
    .map_err(|e| Error::Model(format!("NGLR network: {e}")))?;
    let bytes = safetensors::serialize([("nglr", view)], None)
        .map_err(|e| Error::Model(format!("NGLR network: {e}")))?;
    std::fs::write(path, bytes)
        .map_err(|e| Error::Model(format!("cannot write NGLR network {}: {e}", path.display())))
}
