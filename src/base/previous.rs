//! Temporal prediction: the previous step's reconstruction as a block's base. A [`Chain`] is
//! the writer's side of one array written step after step (in situ: one per variable and
//! block): it keeps the last reconstruction it wrote (the decoder's own output, so errors never
//! accumulate), offers it to every block, and makes every K-th step (`temporal=K`) a keyframe.
//! [`References`] is the reader's side: decoded steps kept, within a byte budget, for the
//! streams predicted from them.
//!
//! The previous reconstruction carries the rounding noise of its own quantization: white, and
//! as large as the step. Predicting from it adds that noise to every residual (which is why
//! coding the difference of reconstructions gains far less than the difference of originals).
//! So a block is also offered the reference smoothed by a light low-pass ([`smoothed`]),
//! which removes most of the noise and little of the field where the field is smooth at the
//! grid's scale; which base a block is coded over is chosen by a sampled estimate of its bits
//! ([`choose`]), the final choice between the staged ones by actual bytes.

use crate::block::{Block, Grid};
use crate::bound::BlockBound;
use crate::codec::{Codec, CompressStats, StepInput};
use crate::dtype::{ElementType, Float};
use crate::entropy::ints::entropy_bits;
use crate::error::{Error, ParameterError, Result};
use crate::format::step::{reference_hash, StepInfo};
use crate::pipeline::scratch;
use crate::residual::LookHints;
use std::collections::HashMap;
use std::sync::Arc;

/// The writer's side of a chain of steps of one array.
#[derive(Debug)]
pub struct Chain {
    id: u64,
    /// The step the next stream is.
    step: u64,
    /// The latest keyframe written.
    keyframe: u64,
    /// The last step's shape, reconstruction and its hash.
    reference: Option<(Vec<usize>, Vec<u8>, u64)>,
    /// What the wavelet's looks at its blocks said at earlier steps, as the operator keeps
    /// them per variable's box: a look that lost is skipped for a while.
    hints: LookHints,
}

impl Chain {
    /// A chain whose streams name it `id` (readers keep steps per chain id: an id unique among
    /// the arrays a reader decodes, such as a hash of variable name, start and count).
    pub fn new(id: u64) -> Chain {
        Chain {
            id,
            step: 0,
            keyframe: 0,
            reference: None,
            hints: LookHints::default(),
        }
    }

    /// Bytes of the reconstruction it keeps.
    pub fn bytes(&self) -> usize {
        self.reference.as_ref().map_or(0, |r| r.1.len())
    }

    /// Compresses the next step as [`Codec::compress_with`] does, into `out` of
    /// [`Codec::max_compressed_len`] bytes; the codec's `temporal=K` must be set. Every K-th
    /// step, and a step whose shape or type differs from the last, is a keyframe.
    pub fn compress_into(
        &mut self,
        codec: &Codec,
        dtype: ElementType,
        dims: &[usize],
        data: &[u8],
        out: &mut [u8],
        range: Option<f64>,
    ) -> Result<CompressStats> {
        let every = codec.config().temporal;
        if every == 0 {
            return Err(Error::Parameter(ParameterError::BadValue {
                key: "temporal".into(),
                value: "0".into(),
                reason: "a chain of steps needs temporal=K (a keyframe every K steps)".into(),
            }));
        }
        let reference = self
            .reference
            .as_ref()
            .filter(|(d, r, _)| {
                !self.step.is_multiple_of(every) && d == dims && r.len() == data.len()
            })
            .map(|(_, r, h)| (r.as_slice(), *h));
        let input = StepInput {
            chain: self.id,
            step: self.step,
            keyframe: self.keyframe,
            reference,
        };
        let (stats, info, recon) = codec.compress_step(
            dtype,
            dims,
            data,
            out,
            range,
            Some(&input),
            Some(&self.hints),
        )?;
        let info = info.ok_or_else(|| Error::Internal("a step stream without its entry".into()))?;
        // What the reader will decode, bit for bit: the next step's base. The encoder has it
        // where every block came from LBRC or is stored raw; else the stream is decoded.
        let recon = match recon {
            Some(r) => r,
            None => {
                let mut r = crate::error::try_vec::<u8>(data.len(), "the step's reconstruction")?;
                codec.decode_step_into(&out[..stats.bytes_out], &mut r, reference.map(|r| r.0))?;
                r
            }
        };
        self.keyframe = info.keyframe;
        self.step += 1;
        let hash = reference_hash(&recon);
        let stats = CompressStats {
            recon_hash: hash,
            ..stats
        };
        self.reference = Some((dims.to_vec(), recon, hash));
        Ok(stats)
    }

    /// Compresses the next step, a slice of floats of shape `dims`, into a new stream.
    pub fn compress<T: Float>(
        &mut self,
        codec: &Codec,
        dims: &[usize],
        data: &[T],
    ) -> Result<Vec<u8>> {
        let mut out = vec![0u8; codec.max_compressed_len(T::TYPE, dims)];
        let n = self
            .compress_into(
                codec,
                T::TYPE,
                dims,
                bytemuck::cast_slice(data),
                &mut out,
                None,
            )?
            .bytes_out;
        out.truncate(n);
        Ok(out)
    }
}

/// The previous step's values of block `b` (from the reference's element bytes), non-finite
/// ones as 0: the prediction a `Previous` block is coded over, as the decoder forms it.
pub(crate) fn previous_values(
    reference: &[u8],
    dtype: ElementType,
    grid: &Grid,
    b: &Block,
) -> Vec<f64> {
    let (es, w) = (dtype.size(), b.shape[2]);
    let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
    let mut v = scratch::F64.take(b.len());
    for row in grid.rows(b) {
        let bytes = &reference[row * es..(row + w) * es];
        match dtype {
            ElementType::F32 => v.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| finite(f32::from_le_bytes(c.try_into().unwrap()) as f64)),
            ),
            ElementType::F64 => v.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| finite(f64::from_le_bytes(c.try_into().unwrap()))),
            ),
        }
    }
    v
}

/// Centre weights `w` of the smoothing kernels `[1, w, 1] / (w + 2)` (smoothings 1 to 5; 0 is
/// none), applied along each axis longer than 1: from strong (noise dominates the reference,
/// the field is smooth) to light (the field has detail at the grid's scale).
const WEIGHTS: [f64; 5] = [1.0, 2.0, 4.0, 8.0, 16.0];

/// The smoothings a block may be predicted with.
pub(crate) const SMOOTHINGS: u8 = WEIGHTS.len() as u8 + 1;

/// Gains the smoothed reference is scaled by (gain 0 is 1, as streams before gains were). A
/// field whose features grow or fade between steps is predicted better by a scaled reference,
/// and a gain below 1 also scales down the reference's rounding noise; with the block's
/// Lorenzo residuals taken after it, the gain blends spatial and temporal prediction. Which
/// one pays is data's business (on Gray-Scott it changes from step to step and block to
/// block, over the whole table): each block's is chosen by estimate. Powers-of-two fractions,
/// so that the scaling is one exact-order IEEE multiplication.
const GAINS: [f64; 9] = [1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 1.125, 1.25];

/// The base codes a `Previous` block may name: smoothing + [`SMOOTHINGS`] × gain.
pub(crate) const BASES: u8 = SMOOTHINGS * GAINS.len() as u8;

fn weight(smoothing: u8) -> Option<f64> {
    WEIGHTS.get(smoothing.checked_sub(1)? as usize).copied()
}

/// The base of code `code` (< [`BASES`]): the reference values of a block (`shape`) smoothed
/// ([`smoothed`]), then each multiplied by the gain where it is not 1.
pub(crate) fn base(values: &[f64], shape: [usize; 3], code: u8) -> Vec<f64> {
    let mut v = smoothed(values, shape, code % SMOOTHINGS);
    let gain = GAINS[(code / SMOOTHINGS) as usize % GAINS.len()];
    if gain != 1.0 {
        v.iter_mut().for_each(|x| *x *= gain);
    }
    v
}

/// The reference values of a block (`shape`) smoothed with kernel `smoothing` (0: as they
/// are), in a fixed order of f64 operations (within each plane along its rows, then along its
/// columns; then across planes; edges replicated; `(lo + w·mid + hi) · (1 / (w + 2))`; IEEE
/// arithmetic, no fused operations), so that the decoder forms the same prediction bit for
/// bit. Plane by plane, so that the work stays in cache.
fn smoothed(values: &[f64], shape: [usize; 3], smoothing: u8) -> Vec<f64> {
    let mut out = scratch::F64.take(values.len());
    let Some(w) = weight(smoothing).filter(|_| !values.is_empty()) else {
        out.extend_from_slice(values);
        return out;
    };
    let inv = 1.0 / (w + 2.0);
    let kernel = |lo: f64, mid: f64, hi: f64| (lo + w * mid + hi) * inv;
    let [a, b, c] = shape;
    let plane = b * c;
    let mut rows = vec![0.0; plane];
    for src in values.chunks_exact(plane) {
        if b >= 2 {
            for j in 0..b {
                let lo = &src[j.saturating_sub(1) * c..][..c];
                let mid = &src[j * c..][..c];
                let hi = &src[(j + 1).min(b - 1) * c..][..c];
                let row = rows[j * c..][..c].iter_mut();
                for (((r, &l), &m), &h) in row.zip(lo).zip(mid).zip(hi) {
                    *r = kernel(l, m, h);
                }
            }
        } else {
            rows.copy_from_slice(src);
        }
        // Pushed rather than written over zeros: the block's worth of f64s is not cleared first.
        for row in rows.chunks_exact(c) {
            if c < 2 {
                out.extend_from_slice(row);
                continue;
            }
            out.push(kernel(row[0], row[0], row[1]));
            let inner = row.iter().zip(&row[1..]).zip(&row[2..]);
            out.extend(inner.map(|((&l, &m), &h)| kernel(l, m, h)));
            out.push(kernel(row[c - 2], row[c - 1], row[c - 1]));
        }
    }
    if a >= 2 {
        // Across planes in place, keeping the plane before as it was.
        let mut before = out[..plane].to_vec();
        let mut smoothed = vec![0.0; plane];
        for p in 0..a {
            let next = (p + 1).min(a - 1) * plane;
            let (mid, hi) = (&out[p * plane..][..plane], &out[next..][..plane]);
            for (((s, &l), &m), &h) in smoothed.iter_mut().zip(&before).zip(mid).zip(hi) {
                *s = kernel(l, m, h);
            }
            before.copy_from_slice(mid);
            out[p * plane..][..plane].copy_from_slice(&smoothed);
        }
    }
    out
}

/// Positions sampled for the estimates of [`choose`]: about this many.
const SAMPLE: usize = 1024;

/// Estimated bits per value of coding `x` over no base (index 0) and over bases of the
/// previous values (index 1 + code) at about `step`: the order-0 entropy of the 3D Lorenzo
/// residuals of the quantized differences at a sample of interior positions (non-finite
/// values count as 0; the bases as [`base`] up to rounding). The smoothing is chosen first
/// (gain 1), then the gain for it; the other bases' estimates are infinite. A fifth of the
/// work of estimating every base, and as good (Gray-Scott, six phases of keyframes: the same
/// sizes within 1 %).
fn estimates(x: &[f64], previous: &[f64], shape: [usize; 3], step: f64) -> Vec<f64> {
    let [a, b, c] = shape;
    let (plane, row) = (b * c, c);
    let interior = (a - 1) * (b - 1) * (c - 1);
    let stride = (interior / SAMPLE).max(1) | 1;
    let kinds = 1 + BASES as usize;
    let mut counts = vec![[0u32; 258]; kinds];
    let mut extra = vec![0.0; kinds];
    // Each sample's values and smoothed references (gain 1), in steps, for the gains' pass.
    let mut kept: Vec<([f64; 8], [[f64; 8]; SMOOTHINGS as usize])> = Vec::new();
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let inv = 1.0 / step;
    let mut n = 0u32;
    for s in (0..interior).step_by(stride) {
        let (i, j, k) = (
            s / ((b - 1) * (c - 1)) + 1,
            s / (c - 1) % (b - 1) + 1,
            s % (c - 1) + 1,
        );
        // The reference around the Lorenzo cube (its corners at offsets 1 and 2 of the 4^3
        // cube), edges replicated; and the values at the corners, in steps.
        let at = |p: usize, d: usize, len: usize| (p + d).saturating_sub(2).min(len - 1);
        let mut cube = [[[0.0; 4]; 4]; 4];
        for (dz, pz) in cube.iter_mut().enumerate() {
            for (dy, py) in pz.iter_mut().enumerate() {
                for (dx, v) in py.iter_mut().enumerate() {
                    *v = previous[at(i, dz, a) * plane + at(j, dy, b) * row + at(k, dx, c)];
                }
            }
        }
        let corner = |sub: usize| {
            [
                1 + (sub & 1 ^ 1),
                1 + (sub >> 1 & 1 ^ 1),
                1 + (sub >> 2 & 1 ^ 1),
            ]
        };
        let xs: [f64; 8] = std::array::from_fn(|sub| {
            let [z, y, w] = corner(sub);
            finite(x[(i + z - 2) * plane + (j + y - 2) * row + (k + w - 2)]) * inv
        });
        count(&mut counts[0], &mut extra[0], &xs, &[0.0; 8]);
        let bases: [[f64; 8]; SMOOTHINGS as usize] = std::array::from_fn(|smoothing| {
            let base: [f64; 8] = match weight(smoothing as u8) {
                None => std::array::from_fn(|sub| {
                    let [z, y, w] = corner(sub);
                    cube[z][y][w]
                }),
                Some(w) => {
                    let sm = |l: f64, m: f64, h: f64| (l + w * m + h) / (w + 2.0);
                    let mut s3 = [[[0.0; 4]; 4]; 4];
                    for z in 1..3 {
                        for y in 0..4 {
                            for v in 0..4 {
                                s3[z][y][v] =
                                    sm(cube[z - 1][y][v], cube[z][y][v], cube[z + 1][y][v]);
                            }
                        }
                    }
                    let mut s2 = [[[0.0; 4]; 4]; 4];
                    for z in 1..3 {
                        for y in 1..3 {
                            for v in 0..4 {
                                s2[z][y][v] = sm(s3[z][y - 1][v], s3[z][y][v], s3[z][y + 1][v]);
                            }
                        }
                    }
                    std::array::from_fn(|sub| {
                        let [z, y, v] = corner(sub);
                        sm(s2[z][y][v - 1], s2[z][y][v], s2[z][y][v + 1])
                    })
                }
            };
            base.map(|b| b * inv)
        });
        for (smoothing, base) in bases.iter().enumerate() {
            count(
                &mut counts[1 + smoothing],
                &mut extra[1 + smoothing],
                &xs,
                base,
            );
        }
        kept.push((xs, bases));
        n += 1;
    }
    let n = n.max(1) as f64;
    // Per value: every sample counts once in each histogram.
    let bits = |counts: &[u32; 258], extra: f64| (entropy_bits(counts) + extra) / n;
    let mut out = vec![f64::INFINITY; kinds];
    for kind in 0..=SMOOTHINGS as usize {
        out[kind] = bits(&counts[kind], extra[kind]);
    }
    let smoothing = (0..SMOOTHINGS as usize)
        .min_by(|&p, &q| out[1 + p].total_cmp(&out[1 + q]))
        .expect("several smoothings");
    for (g, gain) in GAINS.iter().enumerate().skip(1) {
        let kind = 1 + smoothing + SMOOTHINGS as usize * g;
        for (xs, bases) in &kept {
            let base = bases[smoothing].map(|b| b * gain);
            count(&mut counts[kind], &mut extra[kind], xs, &base);
        }
        out[kind] = bits(&counts[kind], extra[kind]);
    }
    out
}

/// Counts the 3D Lorenzo residual of the differences `xs − base` (in steps) of one sampled
/// cube into a histogram (`counts`; a residual beyond ±127 in the last bin, twice its bit
/// length added to `extra`).
fn count(counts: &mut [u32; 258], extra: &mut f64, xs: &[f64; 8], base: &[f64; 8]) {
    let r = (0..8).fold(0i64, |r, sub: usize| {
        let t = xs[sub] - base[sub];
        // Rounded half away from zero by truncation (no libm call: this runs for every base
        // at every sampled position), clamped so that eight cannot overflow (a hostile block's
        // may be huge, or NaN where its smoothing overflowed: counted as 0).
        let q = (t + 0.5f64.copysign(t)).clamp(-1e15, 1e15) as i64;
        if sub.count_ones().is_multiple_of(2) {
            r + q
        } else {
            r - q
        }
    });
    let bin = if r.abs() < 128 {
        (r + 128) as usize
    } else {
        *extra += 2.0 * (r.unsigned_abs() as f64).log2();
        257
    };
    counts[bin] += 1;
}

/// Coding without a base is staged too where its estimate is within this factor of the best
/// base's (the estimates err by a few percent: on Gray-Scott every 20 steps, 1.05 makes
/// the files 0.5 % smaller at 4 % more time; 1.1, 1 % at 18 %).
const SPATIAL_MARGIN: f64 = 1.05;

/// The bases worth staging for a block `x` of `shape` with the previous step's values
/// `previous`: the best base (smoothing and gain) by estimate where its estimate is no
/// higher than coding without a base, and whether coding without it is worth staging (within
/// [`SPATIAL_MARGIN`]). Blocks with an axis shorter than 2 are too thin to estimate:
/// everything is staged there.
pub(crate) fn choose(
    x: &[f64],
    previous: &[f64],
    shape: [usize; 3],
    bound: BlockBound,
) -> (Vec<(u8, Vec<f64>)>, bool) {
    let step = match bound {
        BlockBound::Rms(b) => 12f64.sqrt() * b,
        BlockBound::Max(e) => 2.0 * e,
        BlockBound::Lossless => 0.0,
    };
    let staging = |code| (code, base(previous, shape, code));
    if shape.iter().any(|&d| d < 2) || !(step > 0.0 && step.is_finite()) {
        return ((0..SMOOTHINGS).map(staging).collect(), true);
    }
    let bits = estimates(x, previous, shape, step);
    let (best, &temporal) = (0..BASES)
        .zip(&bits[1..])
        .min_by(|a, b| a.1.total_cmp(b.1))
        .expect("several bases");
    let spatial = bits[0];
    let staged = (temporal <= spatial).then(|| staging(best));
    (
        staged.into_iter().collect(),
        spatial <= SPATIAL_MARGIN * temporal,
    )
}

/// Whether `step` directly follows `kept` (a stream's step number may be anything, u64::MAX
/// included).
fn follows(kept: u64, step: u64) -> bool {
    kept.checked_add(1) == Some(step)
}

/// A decoded step kept as a reference.
#[derive(Debug)]
struct Kept {
    step: u64,
    bytes: Arc<Vec<u8>>,
    used: u64,
}

/// The reader's side: the decoded steps of chains, per source (the file or stream they were
/// read from: chain ids are unique within one), within `capacity` bytes (the least recently
/// used dropped first). A chain keeps the step decoded last and the one before it: a reader
/// going through the steps needs the first, one going over a step's parts again the second.
#[derive(Debug)]
pub struct References {
    capacity: usize,
    used: usize,
    clock: u64,
    chains: HashMap<(String, u64), Vec<Kept>>,
}

impl References {
    pub fn new(capacity: usize) -> References {
        References {
            capacity,
            used: 0,
            clock: 0,
            chains: HashMap::new(),
        }
    }

    /// Sets the byte budget, dropping what exceeds it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.trim();
    }

    /// The reference a stream of `source` at `info` needs, if kept (whatever its hash: the
    /// decoder checks it and says so where it differs).
    pub fn get(&mut self, source: &str, info: &StepInfo) -> Option<Arc<Vec<u8>>> {
        info.reference?;
        self.clock += 1;
        let now = self.clock;
        let kept = self.chains.get_mut(&(source.to_string(), info.chain))?;
        let k = kept.iter_mut().find(|k| follows(k.step, info.step))?;
        k.used = now;
        Some(k.bytes.clone())
    }

    /// Keeps the decoded step `info` of its chain in `source`, with the one before it (and no
    /// other: a reader starting the chain again drops what it decoded before).
    pub fn put(&mut self, source: &str, info: &StepInfo, bytes: Vec<u8>) {
        self.clock += 1;
        let kept = self
            .chains
            .entry((source.to_string(), info.chain))
            .or_default();
        let mut freed = 0;
        kept.retain(|k| {
            let keep = follows(k.step, info.step);
            freed += if keep { 0 } else { k.bytes.len() };
            keep
        });
        self.used -= freed;
        if bytes.len() <= self.capacity {
            self.used += bytes.len();
            kept.push(Kept {
                step: info.step,
                bytes: Arc::new(bytes),
                used: self.clock,
            });
        }
        self.trim();
    }

    /// The byte budget.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes kept.
    pub fn used(&self) -> usize {
        self.used
    }

    fn trim(&mut self) {
        while self.used > self.capacity {
            let Some((key, i)) = self
                .chains
                .iter()
                .flat_map(|(c, kept)| kept.iter().enumerate().map(move |(i, k)| (c, i, k.used)))
                .min_by_key(|&(_, _, used)| used)
                .map(|(c, i, _)| (c.clone(), i))
            else {
                return;
            };
            let kept = self.chains.get_mut(&key).expect("found above");
            self.used -= kept.remove(i).bytes.len();
        }
        self.chains.retain(|_, kept| !kept.is_empty());
    }
}
