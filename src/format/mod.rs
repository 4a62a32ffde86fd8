//! The stream: a self-describing, versioned container with checksums.
//!
//! ```text
//! magic "RSDM" | version u16 | dtype u8 | target kind u8 | ndims u8 | flags u8 | 2 reserved bytes
//! target f64 | dims[ndims] u64 | block[3] u64 | nblocks u64
//! nblocks × { kind u8, len u64, xxh3 u64 }        (block table: offsets are prefix sums of len)
//! xxh3 u64 of everything above                   (header checksum)
//! block payloads, in table order
//! ```
//! All integers little-endian. The block grid lies over the 3D view of the array
//! ([`crate::block::fold3`]). Version 1 (lossless only, one block, `block[ndims]`) still decodes.
//! Version 3 adds blocks coded over a base model and GAE blocks; flag bit 0 says the table ends
//! with one more entry, the base model's decoder (hash u64 | canonical bytes), so that every
//! stream decodes on its own. Streams without them are still written as version 2.
//! Version 6 adds the NGLR network's entry (flag bit 1), version 7 the step entry of temporal
//! prediction (flag bit 2, [`step`]) and blocks coded over the previous step's reconstruction,
//! version 8 the integer coder with modelled signs, 12 NGLR's predictor 10; `doc/format.md`
//! §3.4 lists every version and which the writer picks.
//! A reader needs nothing but these bytes; every field is checked before it is used, so corrupted
//! or truncated input gives an error, not a panic.

pub(crate) mod payload;
pub(crate) mod step;

use crate::block::fold3;
use crate::bound::Target;
use crate::dtype::ElementType;
use crate::error::{Error, FormatErrorKind, ParameterError, Result};
use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: [u8; 4] = *b"RSDM";
pub const FORMAT_VERSION: u16 = 15;
/// The first version with wavelet blocks.
const WAVELET_VERSION: u16 = 5;
/// The version written for lossy streams without wavelet blocks: the first whose wavelet
/// blocks may use the standard layout (version 9 brought the signs in the context coder's
/// symbols, version 8 its signs in streams of their own).
const VERSION_LOSSY: u16 = 10;
/// The version written for streams with wavelet blocks: the first whose wavelet inverse
/// unscales by multiplication, which older readers would decode to other bits.
const VERSION_WAVELET: u16 = 11;
/// The version written for streams with an NGLR block of predictor 10 (its first plane
/// biased too, for blocks of one plane): older readers know no such predictor.
pub(crate) const VERSION_NGLR_PLANAR: u16 = 12;
/// The version written for streams with an LBRC block whose planes have offsets of their own
/// (`lbrc::PLANE_OFFSETS`): older readers refuse its offset.
pub(crate) const VERSION_PLANE_OFFSETS: u16 = 13;
/// The version written for lossless streams of raw and zstd blocks only, which version 2
/// readers decode.
const VERSION_LOSSLESS: u16 = 2;
/// The version written for lossless streams with LBRC blocks (values on a lattice, coded as
/// its integers bit for bit): older readers refuse any block but raw and zstd there.
pub(crate) const VERSION_LOSSLESS_LBRC: u16 = 14;
/// The version written for lossless `f64` streams with a block of the values' bits as ordered
/// integers (`lbrc::ORDERED_BITS`): older readers refuse them in `f64` blocks.
pub(crate) const VERSION_ORDERED_F64: u16 = 15;
/// Header flag: the table ends with the base model's entry (before the network's).
const FLAG_MODEL: u8 = 1;
/// Header flag: the last table entry is the NGLR network (version 6).
const FLAG_NGLR: u8 = 2;
/// The first version with NGLR blocks and the network's entry.
const NGLR_VERSION: u16 = 6;
/// Header flag: the last table entry is the step entry of temporal prediction (version 7).
const FLAG_STEP: u8 = 4;
/// The first version with the step entry and blocks over the previous step.
const STEP_VERSION: u16 = 7;
/// More dimensions than any ADIOS2 variable plausibly has; bounds header parsing.
pub const MAX_DIMS: usize = 32;

const FIXED_LEN: usize = 4 + 2 + 1 + 1 + 1 + 3 + 8;
const ENTRY_LEN: usize = 1 + 8 + 8;
const CHECKSUM_LEN: usize = 8;

/// How one block's payload is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockKind {
    /// Element bytes as they are (little-endian).
    Raw = 0,
    /// zstd frame of the element bytes.
    Zstd = 1,
    /// LBRC block whose finite values are all one value (see `residual::lbrc`).
    Constant = 2,
    /// LBRC: quantized, Lorenzo-predicted, entropy-coded integers.
    Lbrc = 3,
    /// The base model's decoder (the last entry of a version 3 stream with the model flag).
    Model = 4,
    /// LBRC over the base model's prediction (version 3).
    BaseLbrc = 5,
    /// GAE over no base or the base model's prediction (version 3).
    Gae = 6,
    /// Quantized CDF 9/7 wavelet coefficients (version 5).
    Wavelet = 7,
    /// The NGLR network (the last entry of a version 6 stream with the NGLR flag).
    Network = 8,
    /// The step entry of temporal prediction (the last entry of a version 7 stream with the
    /// STEP flag).
    Step = 9,
    /// Constant or Lbrc coded over the previous step's reconstruction (version 7).
    Previous = 10,
}

impl BlockKind {
    fn from_code(code: u8) -> Result<Self> {
        match code {
            0 => Ok(BlockKind::Raw),
            1 => Ok(BlockKind::Zstd),
            2 => Ok(BlockKind::Constant),
            3 => Ok(BlockKind::Lbrc),
            4 => Ok(BlockKind::Model),
            5 => Ok(BlockKind::BaseLbrc),
            6 => Ok(BlockKind::Gae),
            7 => Ok(BlockKind::Wavelet),
            8 => Ok(BlockKind::Network),
            9 => Ok(BlockKind::Step),
            10 => Ok(BlockKind::Previous),
            other => Err(Error::corrupt(format!("unknown block kind {other}"))),
        }
    }
}

/// What a stream holds, read from its header.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub dtype: ElementType,
    /// The error target the stream was written for.
    pub target: Target,
    pub dims: Vec<usize>,
    /// Block shape over the 3D view of `dims`.
    pub block: [usize; 3],
}

impl StreamInfo {
    pub fn element_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Bytes of the decoded array.
    pub fn decoded_len(&self) -> usize {
        self.element_count() * self.dtype.size()
    }

    pub fn grid(&self) -> crate::block::Grid {
        crate::block::Grid::new(fold3(&self.dims), self.block)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockEntry {
    pub kind: BlockKind,
    pub len: usize,
    pub checksum: u64,
}

/// Number of blocks of the grid `block` laid over `dims` (partial edge blocks included).
fn block_count(dims: &[usize], block: &[usize]) -> usize {
    dims.iter()
        .zip(block)
        .map(|(&d, &b)| d.div_ceil(b.max(1)))
        .fold(1usize, usize::saturating_mul)
}

/// Bytes of an array of `dims`, if addressable.
pub fn checked_len(dims: &[usize], dtype: ElementType) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .filter(|&n| n <= isize::MAX as usize)
}

/// Bytes a table (the base model's decoder, the NGLR network) adds to a stream: its table
/// entry and its bytes (content hash included).
pub fn entry_len(bytes: usize) -> usize {
    ENTRY_LEN + bytes
}

/// Bytes of header, block table and header checksum.
pub fn header_len(ndims: usize, nblocks: usize) -> usize {
    (FIXED_LEN + 8 * ndims + 24 + 8 + CHECKSUM_LEN)
        .saturating_add(ENTRY_LEN.saturating_mul(nblocks))
}

/// Whether `stream`'s header checksum holds with the header laid out as this version's.
fn sum_holds_as_latest(stream: &[u8]) -> bool {
    let u64_at = |at: usize| {
        let b = stream.get(at..at.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().unwrap()))
    };
    let Some(&ndims) = stream.get(8) else {
        return false;
    };
    let count_at = FIXED_LEN + 8 * ndims as usize + 24;
    let end = u64_at(count_at)
        .and_then(|n| usize::try_from(n).ok()?.checked_mul(ENTRY_LEN))
        .and_then(|t| t.checked_add(count_at + 8));
    end.and_then(|e| Some(u64_at(e)? == xxh3_64(&stream[..e])))
        .unwrap_or(false)
}

/// Number of blocks of the grid of `block` over the 3D view of `dims`.
pub fn grid_len(dims: &[usize], block: [usize; 3]) -> usize {
    block_count(&fold3(dims), &block)
}

/// Checks that `dims` is a shape streams can hold and that `data_len` bytes of `dtype` fill it.
pub(crate) fn check_shape(dims: &[usize], dtype: ElementType, data_len: usize) -> Result<()> {
    if dims.len() > MAX_DIMS {
        return Err(Error::Parameter(ParameterError::BadShape(format!(
            "{} dimensions (at most {})",
            dims.len(),
            MAX_DIMS
        ))));
    }
    let expected = checked_len(dims, dtype)
        .ok_or_else(|| Error::Parameter(ParameterError::BadShape(format!("{dims:?} overflows"))))?;
    if expected != data_len {
        return Err(Error::Parameter(ParameterError::InputSize {
            expected,
            got: data_len,
        }));
    }
    Ok(())
}

/// The table entries a stream may carry after its blocks, in this order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tables<'a> {
    /// The base model's decoder (content hash and bytes).
    pub model: Option<&'a [u8]>,
    /// The NGLR network (content hash and bytes).
    pub nglr: Option<&'a [u8]>,
    /// The step entry of temporal prediction.
    pub step: Option<&'a [u8]>,
    /// Whether a block predicts with the network as predictor 10 (version 12).
    pub nglr_planar: bool,
}

/// Writes header, table and payloads into `out`, the `tables` after the blocks; returns the
/// stream length.
pub fn write_stream(
    info: &StreamInfo,
    blocks: &[(BlockKind, &[u8])],
    tables: Tables,
    out: &mut [u8],
) -> Result<usize> {
    let Tables {
        model,
        nglr,
        step,
        nglr_planar,
    } = tables;
    let blocks: Vec<(BlockKind, &[u8])> = blocks
        .iter()
        .copied()
        .chain(model.map(|m| (BlockKind::Model, m)))
        .chain(nglr.map(|m| (BlockKind::Network, m)))
        .chain(step.map(|m| (BlockKind::Step, m)))
        .collect();
    let lossy = blocks
        .iter()
        .any(|(k, _)| !matches!(k, BlockKind::Raw | BlockKind::Zstd));
    let hlen = header_len(info.dims.len(), blocks.len());
    let total = hlen + blocks.iter().map(|(_, p)| p.len()).sum::<usize>();
    if out.len() < total {
        return Err(Error::Parameter(ParameterError::OutputTooSmall {
            needed: total,
            got: out.len(),
        }));
    }
    let mut w = Writer { buf: out, pos: 0 };
    w.put(&MAGIC);
    // The oldest version that holds the blocks, so that older readers decode what they can.
    let wavelet = blocks.iter().any(|(k, _)| *k == BlockKind::Wavelet);
    let marked = |marker: u64| {
        let marker = marker.to_le_bytes();
        (blocks.iter()).any(|(k, p)| *k == BlockKind::Lbrc && p.get(..8) == Some(&marker[..]))
    };
    let plane_offsets = marked(crate::residual::lbrc::PLANE_OFFSETS);
    let ordered_f64 = info.dtype == ElementType::F64 && marked(crate::residual::lbrc::ORDERED_BITS);
    let version = match (wavelet, lossy) {
        (_, true) if info.target == Target::Lossless && ordered_f64 => VERSION_ORDERED_F64,
        (_, true) if info.target == Target::Lossless => VERSION_LOSSLESS_LBRC,
        _ if plane_offsets => VERSION_PLANE_OFFSETS,
        _ if nglr_planar => VERSION_NGLR_PLANAR,
        (true, _) => VERSION_WAVELET,
        (false, true) => VERSION_LOSSY,
        (false, false) => VERSION_LOSSLESS,
    };
    w.put(&version.to_le_bytes());
    w.put(&[
        info.dtype as u8,
        info.target.code(),
        info.dims.len() as u8,
        [(model, FLAG_MODEL), (nglr, FLAG_NGLR), (step, FLAG_STEP)]
            .iter()
            .filter(|(t, _)| t.is_some())
            .fold(0, |a, (_, f)| a | f),
        0,
        0,
    ]);
    w.put(&info.target.value().to_le_bytes());
    for &d in info.dims.iter().chain(&info.block) {
        w.put(&(d as u64).to_le_bytes());
    }
    w.put(&(blocks.len() as u64).to_le_bytes());
    for (kind, payload) in &blocks {
        w.put(&[*kind as u8]);
        w.put(&(payload.len() as u64).to_le_bytes());
        w.put(&xxh3_64(payload).to_le_bytes());
    }
    let sum = xxh3_64(&w.buf[..w.pos]);
    w.put(&sum.to_le_bytes());
    debug_assert_eq!(w.pos, hlen);
    for (_, payload) in &blocks {
        w.put(payload);
    }
    Ok(w.pos)
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
}

/// A parsed stream: header fields, block table and where the payloads start.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The format version the stream was written in.
    pub version: u16,
    pub info: StreamInfo,
    pub entries: Vec<BlockEntry>,
    /// Start of each block's payload in `payloads` (prefix sums of the lengths).
    offsets: Vec<usize>,
    payloads: &'a [u8],
    /// The base model's entry, past the grid's blocks.
    model: Option<BlockEntry>,
    /// The NGLR network's entry, after the model's.
    nglr: Option<BlockEntry>,
    /// The step entry, last.
    step: Option<BlockEntry>,
}

impl<'a> Parsed<'a> {
    /// The payload of block `i`, checked against its checksum.
    pub fn payload(&self, i: usize) -> Result<&'a [u8]> {
        let e = &self.entries[i];
        let p = &self.payloads[self.offsets[i]..self.offsets[i] + e.len];
        if xxh3_64(p) != e.checksum {
            return Err(Error::format(
                FormatErrorKind::Checksum,
                format!("block {i}"),
            ));
        }
        Ok(p)
    }

    /// The base model's decoder bytes, if the stream carries one: checked against the entry's
    /// checksum and its content hash.
    pub fn model(&self) -> Result<Option<&'a [u8]>> {
        let Some(e) = &self.model else {
            return Ok(None);
        };
        let p = self.table(e, self.entries.len(), "base model")?;
        if p.len() < 8 || u64::from_le_bytes(p[..8].try_into().unwrap()) != xxh3_64(&p[8..]) {
            return Err(Error::Model(
                "the stream's base model does not match its content hash".into(),
            ));
        }
        Ok(Some(&p[8..]))
    }

    /// The NGLR network's entry (content hash and bytes), if the stream carries one, checked
    /// against its checksum.
    pub fn nglr(&self) -> Result<Option<&'a [u8]>> {
        let Some(e) = &self.nglr else {
            return Ok(None);
        };
        let at = self.entries.len() + self.model.is_some() as usize;
        self.table(e, at, "NGLR network").map(Some)
    }

    /// The step entry of temporal prediction, if the stream carries one.
    pub fn step(&self) -> Result<Option<step::StepInfo>> {
        let Some(e) = &self.step else {
            return Ok(None);
        };
        let at = self.entries.len() + self.model.is_some() as usize + self.nglr.is_some() as usize;
        step::StepInfo::parse(self.table(e, at, "step entry")?).map(Some)
    }

    /// The bytes of table entry `e`, the `at`-th payload, checked against its checksum.
    fn table(&self, e: &BlockEntry, at: usize, what: &str) -> Result<&'a [u8]> {
        let start = self.offsets[at];
        let p = &self.payloads[start..start + e.len];
        if xxh3_64(p) != e.checksum {
            return Err(Error::format(FormatErrorKind::Checksum, what));
        }
        Ok(p)
    }
}

/// Parses and checks header and block table; payloads are checked when taken.
pub fn parse(stream: &[u8]) -> Result<Parsed<'_>> {
    let mut r = HeaderReader {
        buf: stream,
        pos: 0,
    };
    if r.take(4, "magic")? != MAGIC {
        return Err(Error::format(FormatErrorKind::BadMagic, ""));
    }
    let version = r.u16("version")?;
    if version > FORMAT_VERSION || version == 0 {
        // A damaged version field reads as another version: where the header's checksum, in
        // this library's layout, does not hold either, the stream may just be damaged.
        let detail = if version == 0 {
            "0, which no stream has: the stream is damaged".to_string()
        } else if sum_holds_as_latest(stream) {
            format!("{version} is newer than this library ({FORMAT_VERSION}) understands")
        } else {
            format!(
                "{version} is newer than this library ({FORMAT_VERSION}) understands, or the \
                 stream is damaged (its header checksum does not hold as of version \
                 {FORMAT_VERSION})"
            )
        };
        return Err(Error::format(FormatErrorKind::UnsupportedVersion, detail));
    }
    let fixed = r.take(6, "header")?;
    let (dtype_code, target_code, ndims) = (fixed[0], fixed[1], fixed[2] as usize);
    let flags = fixed[3];
    if fixed[4..] != [0, 0]
        || flags & !(FLAG_MODEL | FLAG_NGLR | FLAG_STEP) != 0
        || (version < 3 && flags != 0)
        || (version < NGLR_VERSION && flags & FLAG_NGLR != 0)
        || (version < STEP_VERSION && flags & FLAG_STEP != 0)
    {
        return Err(Error::corrupt("reserved header bytes are not zero"));
    }
    let has_model = flags & FLAG_MODEL != 0;
    let has_nglr = flags & FLAG_NGLR != 0;
    let has_step = flags & FLAG_STEP != 0;
    let target = f64::from_le_bytes(r.take(8, "target")?.try_into().unwrap());
    if ndims > MAX_DIMS {
        return Err(Error::corrupt(format!(
            "{ndims} dimensions (at most {MAX_DIMS})"
        )));
    }
    let mut dims = Vec::with_capacity(ndims);
    for _ in 0..ndims {
        dims.push(r.usize("dims")?);
    }
    // Version 1 stored one block extent per dimension; version 2 the 3D view's.
    let nblock = if version == 1 { ndims } else { 3 };
    let mut block = Vec::with_capacity(nblock);
    for _ in 0..nblock {
        block.push(r.usize("block shape")?);
    }
    let nblocks = r.usize("block count")?;
    // Bound the table by the bytes present before allocating for it.
    if nblocks > (stream.len() - r.pos) / ENTRY_LEN {
        return Err(Error::truncated(format!(
            "block table of {nblocks} entries"
        )));
    }
    let mut entries = Vec::with_capacity(nblocks);
    for _ in 0..nblocks {
        let kind = r.take(1, "block table")?[0];
        let len = r.usize("block table")?;
        let checksum = r.u64("block table")?;
        entries.push((kind, len, checksum));
    }
    let header_end = r.pos;
    let stored = r.u64("header checksum")?;
    if xxh3_64(&stream[..header_end]) != stored {
        return Err(Error::format(FormatErrorKind::Checksum, "header"));
    }
    // The checksum matched: the fields are what the writer wrote, but a hostile stream can still
    // carry a matching checksum, so every field is validated as well.
    let dtype = ElementType::from_code(dtype_code)
        .map_err(|_| Error::corrupt(format!("unknown element type code {dtype_code}")))?;
    let target = Target::from_code(target_code, target)
        .filter(|t| version > 1 || *t == Target::Lossless)
        .ok_or_else(|| Error::corrupt(format!("unknown target kind {target_code}")))?;
    if block.contains(&0) {
        return Err(Error::corrupt("zero block extent"));
    }
    checked_len(&dims, dtype).ok_or_else(|| Error::corrupt("array size overflows"))?;
    let grid_ok = if version == 1 {
        block_count(&dims, &block) == nblocks && nblocks <= 1
    } else {
        block_count(&fold3(&dims), &block)
            + has_model as usize
            + has_nglr as usize
            + has_step as usize
            == nblocks
    };
    if !grid_ok {
        return Err(Error::corrupt("block count does not match the block grid"));
    }
    let block = if version == 1 {
        fold3(&dims).map(|d| d.max(1))
    } else {
        [block[0], block[1], block[2]]
    };
    let mut entries = entries
        .into_iter()
        .map(|(kind, len, checksum)| {
            Ok(BlockEntry {
                kind: BlockKind::from_code(kind)?,
                len,
                checksum,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let step = if has_step { entries.pop() } else { None };
    let nglr = if has_nglr { entries.pop() } else { None };
    let model = if has_model { entries.pop() } else { None };
    let model_ok = model.is_none_or(|m| m.kind == BlockKind::Model)
        && nglr.is_none_or(|m| m.kind == BlockKind::Network)
        && step.is_none_or(|m| m.kind == BlockKind::Step);
    let kinds_ok = entries.iter().all(|e| match e.kind {
        BlockKind::Model | BlockKind::Network | BlockKind::Step => false,
        BlockKind::BaseLbrc | BlockKind::Gae => version >= 3,
        BlockKind::Wavelet => version >= WAVELET_VERSION,
        BlockKind::Previous => has_step,
        _ => true,
    });
    if !(model_ok && kinds_ok) {
        return Err(Error::corrupt("block kinds do not fit the stream version"));
    }
    let payloads = &stream[r.pos..];
    let mut offsets = Vec::with_capacity(entries.len());
    let mut total = 0usize;
    for e in entries.iter().chain(&model).chain(&nglr).chain(&step) {
        offsets.push(total);
        total = total
            .checked_add(e.len)
            .ok_or_else(|| Error::corrupt("block lengths overflow"))?;
    }
    if total > payloads.len() {
        return Err(Error::truncated(format!(
            "blocks need {total} bytes, {} present",
            payloads.len()
        )));
    }
    if total < payloads.len() {
        return Err(Error::corrupt(format!(
            "{} trailing bytes after the last block",
            payloads.len() - total
        )));
    }
    Ok(Parsed {
        version,
        info: StreamInfo {
            dtype,
            target,
            dims,
            block,
        },
        entries,
        offsets,
        payloads,
        model,
        nglr,
        step,
    })
}

struct HeaderReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> HeaderReader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Error::truncated(format!("stream ends inside the {what}")));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    fn usize(&mut self, what: &str) -> Result<usize> {
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| Error::corrupt(format!("{what} value {v} too large")))
    }
}
