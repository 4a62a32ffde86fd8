//! Decoding a stream: the header and block table ([`mod@format`]), then each block by its kind, in
//! parallel. Sizes come from the stream, so they are checked before they are allocated: against
//! a decode limit, against what each block's payload can hold at most, and by fallible
//! allocation. A stream predicted from the previous step of its chain (temporal prediction)
//! decodes only with that step's reconstruction ([`decode_step`]).

use crate::base::previous::previous_values;
use crate::base::Decoder;
use crate::block::Block;
use crate::bound::Target;
use crate::dtype::{ElementType, Float};
use crate::entropy::decode_bytes;
use crate::error::{try_vec, Error, FormatError, ParameterError, ReferenceError, Result};
use crate::format::step::{reference_hash, StepInfo};
use crate::format::{self, BlockKind, Parsed, StreamInfo, VERSION_LOSSLESS_LBRC};
use crate::residual::predict::nglr::Network;
use crate::residual::{gae, lbrc, wavelet};
use rayon::prelude::*;
use std::sync::Arc;

/// Limits on what decoding may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The largest decoded array, in bytes, that [`decode_with`] and [`decode_as_with`] allocate
    /// (default 64 GiB). Streams are also refused where their payloads cannot hold what their
    /// header claims, and where the memory cannot be had, whatever this limit. Beyond the
    /// array, decoding holds a few blocks per thread at a time.
    pub max_decoded_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_decoded_bytes: 1 << 36,
        }
    }
}

/// `f` over the block indices `0..n`, in parallel in the current pool unless `serial` or there
/// is one block (sparing the hand-over to another thread). Results in index order; of several
/// errors the first by index, for any thread count (rayon's collect into a Result returns
/// whichever it meets).
fn map_blocks<T: Send>(
    n: usize,
    serial: bool,
    f: impl Fn(usize) -> Result<T> + Sync + Send,
) -> Result<Vec<T>> {
    if serial || n <= 1 {
        (0..n).map(f).collect()
    } else {
        let all: Vec<Result<T>> = (0..n).into_par_iter().map(f).collect();
        all.into_iter().collect()
    }
}

/// Reads a stream's header: type, shape, target, block shape.
pub fn stream_info(stream: &[u8]) -> Result<StreamInfo> {
    Ok(format::parse(stream)?.info)
}

/// Where a stream written with temporal prediction stands in its chain of steps (None for a
/// stream written without).
pub fn step_info(stream: &[u8]) -> Result<Option<StepInfo>> {
    format::parse(stream)?.step()
}

/// Decodes `stream` into `out` (little-endian element bytes), which must hold at least
/// [`StreamInfo::decoded_len`] bytes; exactly that many are written. Returns the count.
/// Blocks decode in parallel in the current rayon pool; [`crate::Codec::decode_into`] limits that
/// to the codec's threads.
pub fn decode_into(stream: &[u8], out: &mut [u8]) -> Result<usize> {
    decode_blocks(stream, out, true, None)
}

/// [`decode_blocks`] on `threads` threads of a shared pool (1 or 0: here, block after block),
/// for callers from outside Rust: rayon's global pool takes every core the process sees, and
/// where many unbound ranks share a node each would start one thread per core of it.
pub(crate) fn decode_blocks_on(
    threads: usize,
    stream: &[u8],
    out: &mut [u8],
    reference: Option<&[u8]>,
) -> Result<usize> {
    if threads <= 1 {
        return decode_blocks(stream, out, false, reference);
    }
    let pool = crate::pipeline::shared_pool(threads)?;
    pool.install(|| decode_blocks(stream, out, true, reference))
}

pub(crate) fn decode_blocks(
    stream: &[u8],
    out: &mut [u8],
    par: bool,
    reference: Option<&[u8]>,
) -> Result<usize> {
    let parsed = format::parse(stream)?;
    let checked = checked_payloads(&parsed)?;
    let reference = reference_for(checked.step.as_ref(), reference, parsed.info.decoded_len())?;
    decode_parsed(&parsed, &checked, out, par, reference)
}

/// A stream's payloads, checked, its NGLR network, loaded (once: the capacity checks need it
/// too), and its step entry.
struct Checked<'a> {
    payloads: Vec<&'a [u8]>,
    net: Option<Arc<Network>>,
    step: Option<StepInfo>,
}

/// The reference a stream needs, checked: `reference` where the stream is predicted from the
/// previous step and it is that step's reconstruction (by its hash), None where the stream
/// needs none.
fn reference_for<'r>(
    step: Option<&StepInfo>,
    reference: Option<&'r [u8]>,
    len: usize,
) -> Result<Option<&'r [u8]>> {
    let Some(s) = step.filter(|s| s.reference.is_some()) else {
        return Ok(None);
    };
    let missing = |reason: &str| {
        Error::Reference(ReferenceError {
            chain: s.chain,
            step: s.step,
            keyframe: s.keyframe,
            reason: reason.into(),
        })
    };
    match reference {
        None => Err(missing("which was not given")),
        Some(r) if r.len() != len => Err(missing("but the step given has another size")),
        Some(r) if Some(reference_hash(r)) != s.reference => {
            Err(missing("but the step given is another (its hash differs)"))
        }
        Some(r) => Ok(Some(r)),
    }
}

/// Decodes the blocks of `parsed`, which [`checked_payloads`] checked, into `out`; `reference`:
/// the previous step's reconstruction as [`reference_for`] checked it.
fn decode_parsed(
    parsed: &Parsed,
    checked: &Checked,
    out: &mut [u8],
    par: bool,
    reference: Option<&[u8]>,
) -> Result<usize> {
    let info = &parsed.info;
    let len = info.decoded_len();
    if out.len() < len {
        return Err(Error::Parameter(ParameterError::OutputTooSmall {
            needed: len,
            got: out.len(),
        }));
    }
    let grid = info.grid();
    let dtype = info.dtype;
    let decoder = parsed.model()?.map(Decoder::from_bytes).transpose()?;
    let decoder = decoder.as_ref();
    let Checked { payloads, net, .. } = checked;
    let decode_one = |i: usize| {
        let b = grid.block(i);
        let kind = parsed.entries[i].kind;
        let previous = match (kind, reference) {
            (BlockKind::Previous, Some(r)) => Some(previous_values(r, dtype, &grid, &b)),
            _ => None,
        };
        decode_block(
            info,
            parsed.version,
            kind,
            &b,
            payloads[i],
            Bases {
                decoder,
                net: net.as_ref(),
                previous: previous.as_deref(),
            },
        )
        .map_err(|e| in_block(e, i, b.len(), dtype))
        .and_then(|raw| {
            // Scattering a short block would leave the caller's old bytes in its rows.
            match raw.len() == b.len() * dtype.size() {
                true => Ok(raw),
                false => Err(Error::Internal(format!(
                    "block {i} decoded to {} bytes for {} {dtype} values",
                    raw.len(),
                    b.len()
                ))),
            }
        })
    };
    // Placed a few rounds of the pool at a time: every block held until all were decoded
    // doubled the memory a stream of many blocks takes.
    let round = 8 * rayon::current_num_threads().max(1);
    for first in (0..grid.len()).step_by(round) {
        let count = round.min(grid.len() - first);
        let blocks = map_blocks(count, !par, |k| decode_one(first + k))?;
        for (k, raw) in blocks.iter().enumerate() {
            grid.scatter_bytes(raw, &mut out[..len], dtype, &grid.block(first + k));
        }
    }
    Ok(len)
}

/// The stream's NGLR network, if it carries one.
fn network(parsed: &Parsed) -> Result<Option<Arc<Network>>> {
    Ok(match parsed.nglr()? {
        Some(e) => Some(Arc::new(Network::from_entry(e)?)),
        None => None,
    })
}

/// What blocks may be predicted from besides their payload: the stream's base model and NGLR
/// network, the previous step's values of the block.
struct Bases<'a> {
    decoder: Option<&'a Decoder>,
    net: Option<&'a Arc<Network>>,
    previous: Option<&'a [f64]>,
}

/// Decodes block `b` (of `kind`) from its checked payload into element bytes.
fn decode_block(
    info: &StreamInfo,
    version: u16,
    kind: BlockKind,
    b: &Block,
    payload: &[u8],
    bases: Bases,
) -> Result<Vec<u8>> {
    let Bases {
        decoder,
        net,
        previous,
    } = bases;
    let dtype = info.dtype;
    match kind {
        BlockKind::Raw | BlockKind::Zstd => {
            let mut raw = try_vec::<u8>(b.len() * dtype.size(), "a decoded block")?;
            decode_bytes(kind, payload, &mut raw)?;
            Ok(raw)
        }
        // Lossless streams hold LBRC blocks from version 14 on (values on a lattice, which the
        // encoder verified bit for bit), no other kind.
        _ if info.target == Target::Lossless
            && !(kind == BlockKind::Lbrc && version >= VERSION_LOSSLESS_LBRC) =>
        {
            Err(Error::corrupt("lossy block in a lossless stream"))
        }
        BlockKind::Constant | BlockKind::Lbrc => lbrc::decode(
            payload,
            None,
            net,
            b.shape,
            dtype,
            kind == BlockKind::Constant,
            version,
        ),
        BlockKind::BaseLbrc => {
            lbrc::decode_over_base(payload, decoder, net, b.shape, dtype, version)
        }
        BlockKind::Gae => gae::decode_block(payload, decoder, b.shape, dtype, version),
        BlockKind::Wavelet => wavelet::decode(payload, b.shape, dtype, version),
        BlockKind::Previous => {
            let previous = previous.ok_or_else(|| {
                Error::corrupt("a block over the previous step in a stream that names none")
            })?;
            lbrc::decode_over_previous(payload, previous, net, b.shape, dtype, version)
        }
        BlockKind::Model | BlockKind::Network | BlockKind::Step => {
            Err(Error::corrupt("table entry inside the block grid"))
        }
    }
}

/// Decodes a stream into its header and element bytes.
pub fn decode(stream: &[u8]) -> Result<(StreamInfo, Vec<u8>)> {
    decode_with(stream, &DecodeOptions::default())
}

/// [`decode`] within `opts`.
pub fn decode_with(stream: &[u8], opts: &DecodeOptions) -> Result<(StreamInfo, Vec<u8>)> {
    decode_step(stream, None, opts)
}

/// Decodes one step of a chain written with temporal prediction: `reference` is the previous
/// step's decoded element bytes, which a stream predicted from it needs ([`StepInfo`] says
/// whether it does); without it, or with another step, the error names the keyframe to
/// decode from. Streams that need no reference ignore it.
pub fn decode_step(
    stream: &[u8],
    reference: Option<&[u8]>,
    opts: &DecodeOptions,
) -> Result<(StreamInfo, Vec<u8>)> {
    let (parsed, checked) = checked(stream, opts)?;
    // Checked before the output is allocated.
    let reference = reference_for(checked.step.as_ref(), reference, parsed.info.decoded_len())?;
    let mut out = try_vec::<u8>(parsed.info.decoded_len(), "the decoded array")?;
    decode_parsed(&parsed, &checked, &mut out, true, reference)?;
    Ok((parsed.info, out))
}

/// Decodes a stream of `T` elements.
pub fn decode_as<T: Float>(stream: &[u8]) -> Result<(Vec<usize>, Vec<T>)> {
    decode_as_with(stream, &DecodeOptions::default())
}

/// [`decode_as`] within `opts`.
pub fn decode_as_with<T: Float>(
    stream: &[u8],
    opts: &DecodeOptions,
) -> Result<(Vec<usize>, Vec<T>)> {
    let (parsed, checked) = checked(stream, opts)?;
    let info = &parsed.info;
    if info.dtype != T::TYPE {
        return Err(Error::Parameter(ParameterError::UnsupportedType(format!(
            "stream holds {}, {} requested",
            info.dtype,
            T::TYPE
        ))));
    }
    reference_for(checked.step.as_ref(), None, info.decoded_len())?;
    let mut out = try_vec::<T>(info.element_count(), "the decoded array")?;
    decode_parsed(
        &parsed,
        &checked,
        bytemuck::cast_slice_mut(&mut out),
        true,
        None,
    )?;
    Ok((parsed.info.dims, out))
}

/// Parses `stream` and checks what it claims against `opts` and its payloads.
fn checked<'a>(stream: &'a [u8], opts: &DecodeOptions) -> Result<(Parsed<'a>, Checked<'a>)> {
    let parsed = format::parse(stream)?;
    let info = &parsed.info;
    if info.decoded_len() > opts.max_decoded_bytes {
        return Err(Error::Limit(format!(
            "the stream claims {} {} values ({} bytes), above the decode limit of {} bytes \
             (max_decoded_bytes)",
            info.element_count(),
            info.dtype,
            info.decoded_len(),
            opts.max_decoded_bytes
        )));
    }
    let checked = checked_payloads(&parsed)?;
    Ok((parsed, checked))
}

/// The blocks' payloads, each checked against its checksum and against what it can hold:
/// a stream whose blocks claim more values than their payloads can decode to is refused here,
/// before anything is allocated for them. Each kind bounds its expansion where it has a bound
/// (raw, zstd, LBRC and wavelet blocks without a zero-cost symbol).
fn checked_payloads<'a>(parsed: &Parsed<'a>) -> Result<Checked<'a>> {
    let info = &parsed.info;
    let grid = info.grid();
    let net = network(parsed)?;
    let step = parsed.step()?;
    let mut payloads = Vec::with_capacity(grid.len());
    for i in 0..grid.len() {
        let shape = grid.block(i).shape;
        let n = grid.block(i).len();
        let entry = &parsed.entries[i];
        let payload = parsed.payload(i)?;
        payloads.push(payload);
        let cap = capacity(
            entry.kind,
            payload,
            shape,
            info.dtype,
            parsed.version,
            net.as_ref(),
        )
        .map_err(|e| in_block(e, i, n, info.dtype))?;
        if let Some(cap) = cap {
            if n as u64 > cap {
                return Err(Error::corrupt(format!(
                    "the stream claims {} {} values, but block {i} ({:?}, {} bytes) can hold \
                     at most {cap} of its {n}",
                    info.element_count(),
                    info.dtype,
                    entry.kind,
                    payload.len()
                )));
            }
        }
    }
    Ok(Checked {
        payloads,
        net,
        step,
    })
}

/// A format error of block `i` (of `n` values), saying so and what the stream claimed: a payload
/// that ends early may be a lying header.
fn in_block(e: Error, i: usize, n: usize, dtype: ElementType) -> Error {
    match e {
        Error::Format(FormatError { kind, detail }) => Error::format(
            kind,
            format!("block {i} ({n} {dtype} values claimed): {detail}"),
        ),
        e => e,
    }
}

/// The most values a block payload of `kind` can decode to; `None` where there is no bound
/// (a constant block, or a residual that costs nothing over its prediction).
fn capacity(
    kind: BlockKind,
    payload: &[u8],
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
    net: Option<&Arc<Network>>,
) -> Result<Option<u64>> {
    let es = dtype.size() as u64;
    Ok(match kind {
        BlockKind::Raw => Some(payload.len() as u64 / es),
        // The frame header states its content size (zstd writes it for one-shot frames);
        // without it, zstd's own limit: a 4-byte RLE block stands for at most 128 KiB.
        BlockKind::Zstd => match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(bytes)) => Some(bytes / es),
            Ok(None) => Some((payload.len() as u64).saturating_mul(1 << 15) / es),
            Err(_) => return Err(Error::corrupt("zstd block: not a zstd frame")),
        },
        BlockKind::Constant | BlockKind::Gae => None,
        BlockKind::Lbrc => lbrc::max_values(payload, shape, dtype, version, net)?,
        BlockKind::BaseLbrc => lbrc::max_values_over_base(payload, shape, dtype, version, net)?,
        BlockKind::Previous => lbrc::max_values_over_previous(payload, shape, dtype, version, net)?,
        BlockKind::Wavelet => wavelet::max_values(payload, shape, dtype, version)?,
        BlockKind::Model | BlockKind::Network | BlockKind::Step => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks are placed as they finish, a few rounds of the pool at a time: all of them held
    /// until the last was decoded took as much again as the array.
    #[test]
    fn decoding_holds_a_few_blocks_at_a_time() {
        let v: Vec<f32> = (0..1 << 18).map(|i| (i as f32 * 0.37).sin()).collect();
        let codec = crate::Codec::from_pairs([("nrmse", "1e-6"), ("block", "4x32x32")]).unwrap();
        let stream = codec.compress(&[64, 64, 64], &v).unwrap();
        let mut out = vec![0u8; v.len() * 4];
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (n, peak) = one.install(|| {
            crate::test_alloc::peak_of(|| decode_blocks(&stream, &mut out, false, None))
        });
        assert_eq!(n.unwrap(), out.len());
        assert!(peak < out.len() / 2, "{peak} bytes held for {}", out.len());
        assert_eq!(
            out,
            bytemuck::cast_slice::<f32, u8>(&crate::decode_as::<f32>(&stream).unwrap().1)
        );
    }
}
