//! Temporal prediction: the previous step's reconstruction as a block's base. A [`Chain`] is
//! the writer's side of one array written step after step (in situ: one per variable and
//! block): it keeps the last reconstruction it wrote (the decoder's own output, so errors never
//! accumulate), offers it to every block, and makes every K-th step (`temporal=K`) a keyframe.
//! [`References`] is the reader's side: decoded steps kept, within a byte budget, for the
//! streams predicted from them.

use crate::codec::{Codec, CompressStats, StepInput};
use crate::dtype::{ElementType, Float};
use crate::error::{Error, ParameterError, Result};
use crate::format::step::{reference_hash, StepInfo};
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
    /// The last step's shape and reconstruction.
    reference: Option<(Vec<usize>, Vec<u8>)>,
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
        }
    }

    /// The step the next stream will be.
    pub fn next_step(&self) -> u64 {
        self.step
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
            .filter(|(d, r)| self.step % every != 0 && d == dims && r.len() == data.len())
            .map(|(_, r)| r.as_slice());
        let input = StepInput {
            chain: self.id,
            step: self.step,
            keyframe: self.keyframe,
            reference,
        };
        let (stats, info) = codec.compress_step(dtype, dims, data, out, range, Some(&input))?;
        let info = info.ok_or_else(|| Error::Internal("a step stream without its entry".into()))?;
        // What the reader will decode, bit for bit: the next step's base.
        let mut recon = crate::error::try_vec::<u8>(data.len(), "the step's reconstruction")?;
        codec.decode_step_into(&out[..stats.bytes_out], &mut recon, reference)?;
        self.keyframe = info.keyframe;
        self.step += 1;
        self.reference = Some((dims.to_vec(), recon));
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

/// A decoded step kept as a reference.
#[derive(Debug)]
struct Kept {
    step: u64,
    hash: u64,
    bytes: Arc<Vec<u8>>,
    used: u64,
}

/// The reader's side: the decoded steps of chains, within `capacity` bytes (the least recently
/// used dropped first). Keeps the last two steps of each chain at most: a reader going
/// through the steps needs one, a reader going over a step's parts again the one before.
#[derive(Debug)]
pub struct References {
    capacity: usize,
    used: usize,
    clock: u64,
    chains: HashMap<u64, Vec<Kept>>,
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

    /// The reference a stream at `info` needs, if kept (whatever its hash: the decoder checks
    /// it and says so where it differs).
    pub fn get(&mut self, info: &StepInfo) -> Option<Arc<Vec<u8>>> {
        info.reference?;
        self.clock += 1;
        let now = self.clock;
        let kept = self.chains.get_mut(&info.chain)?;
        let k = kept.iter_mut().find(|k| k.step + 1 == info.step)?;
        k.used = now;
        Some(k.bytes.clone())
    }

    /// Keeps the decoded step `info` of its chain (replacing an older decoding of that step).
    pub fn put(&mut self, info: &StepInfo, bytes: Vec<u8>) {
        if bytes.len() > self.capacity {
            return;
        }
        self.clock += 1;
        let kept = self.chains.entry(info.chain).or_default();
        if let Some(i) = kept.iter().position(|k| k.step == info.step) {
            self.used -= kept.remove(i).bytes.len();
        }
        self.used += bytes.len();
        kept.push(Kept {
            step: info.step,
            hash: reference_hash(&bytes),
            bytes: Arc::new(bytes),
            used: self.clock,
        });
        // Only the newest two steps serve a reader going forward.
        kept.sort_by_key(|k| std::cmp::Reverse(k.step));
        for k in kept.drain(2.min(kept.len())..) {
            self.used -= k.bytes.len();
        }
        self.trim();
    }

    /// Whether the step `info` names as its reference is kept with the right hash.
    pub fn has_reference(&self, info: &StepInfo) -> bool {
        let Some(hash) = info.reference else {
            return true;
        };
        self.chains.get(&info.chain).is_some_and(|kept| {
            kept.iter()
                .any(|k| k.step + 1 == info.step && k.hash == hash)
        })
    }

    /// Bytes kept.
    pub fn used(&self) -> usize {
        self.used
    }

    fn trim(&mut self) {
        while self.used > self.capacity {
            let Some((&chain, i)) = self
                .chains
                .iter()
                .flat_map(|(c, kept)| kept.iter().enumerate().map(move |(i, k)| (c, i, k.used)))
                .min_by_key(|&(_, _, used)| used)
                .map(|(c, i, _)| (c, i))
            else {
                return;
            };
            let kept = self.chains.get_mut(&chain).expect("found above");
            self.used -= kept.remove(i).bytes.len();
            if kept.is_empty() {
                self.chains.remove(&chain);
            }
        }
    }
}
