//! Temporal prediction in situ (`temporal=K`), in the plugin's copy of residuum: the writer's
//! chains, one per engine, variable and block (start and count), each keeping the last
//! reconstruction it wrote; and the reader's references, the decoded steps of every chain met,
//! within a byte budget (`RESIDUUM_REFERENCE_CACHE`, or [`super::set_reference_cache`]).

use crate::base::previous::{Chain, References};
use crate::codec::{Codec, CompressStats};
use crate::dtype::ElementType;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use xxhash_rust::xxh3::xxh3_64;

/// The reader's default budget for decoded steps: 1 GiB.
const DEFAULT_CACHE: usize = 1 << 30;

/// (engine, variable, start, count).
pub(super) type ChainKey = (String, String, Vec<usize>, Vec<usize>);

/// The key of a variable's box written through `engine`.
pub(super) fn chain_key(engine: &str, variable: &str, start: &[usize], dims: &[usize]) -> ChainKey {
    (
        engine.into(),
        variable.into(),
        start.to_vec(),
        dims.to_vec(),
    )
}

struct Steps {
    chains: HashMap<ChainKey, Chain>,
    references: References,
    /// The most steps back to a keyframe that a decode lacking its reference named since the
    /// last [`take_missing`].
    missing: Option<u64>,
}

static STEPS: Mutex<Option<Steps>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Steps) -> R) -> R {
    let mut g = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(|| Steps {
        chains: HashMap::new(),
        references: References::new(cache_from_env().unwrap_or(DEFAULT_CACHE)),
        missing: None,
    }))
}

/// `RESIDUUM_REFERENCE_CACHE`: bytes, with an optional K, M or G suffix (binary).
fn cache_from_env() -> Option<usize> {
    let v = std::env::var("RESIDUUM_REFERENCE_CACHE").ok()?;
    let v = v.trim();
    let (num, shift) = match v.chars().last()?.to_ascii_uppercase() {
        'K' => (&v[..v.len() - 1], 10),
        'M' => (&v[..v.len() - 1], 20),
        'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(1 << shift)
}

/// The id a block's streams name their chain by: its variable, start and count (the same for
/// every writer of the variable, unique among its blocks).
fn chain_id(variable: &str, start: &[usize], count: &[usize]) -> u64 {
    let mut key = variable.as_bytes().to_vec();
    for &d in start.iter().chain([&usize::MAX]).chain(count) {
        key.extend_from_slice(&(d as u64).to_le_bytes());
    }
    xxh3_64(&key)
}

/// Compresses the next step of the block of `variable` at `start` (of shape `dims`) in
/// `engine`, over the previous step it wrote.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compress(
    codec: &Codec,
    engine: &str,
    variable: &str,
    start: &[usize],
    dtype: ElementType,
    dims: &[usize],
    data: &[u8],
    out: &mut [u8],
    range: Option<f64>,
) -> Result<CompressStats> {
    let key = chain_key(engine, variable, start, dims);
    // Out of the table while it compresses, so that other blocks need not wait. A block
    // written to a new engine (a file per output, say) ends its chain in the one before:
    // the writer keeps one reconstruction per block, however many files it writes.
    let mut chain = with(|s| {
        s.chains.remove(&key).unwrap_or_else(|| {
            s.chains
                .retain(|k, _| (&k.1, &k.2, &k.3) != (&key.1, &key.2, &key.3));
            Chain::new(chain_id(variable, start, dims))
        })
    });
    let stats = chain.compress_into(codec, dtype, dims, data, out, range);
    with(|s| s.chains.insert(key, chain));
    stats
}

/// Forgets the chains of `engine` (all for None): the next step of each block is a keyframe.
/// For a writer that opens a new file under the name of one it closed.
pub(crate) fn restart(engine: Option<&str>) {
    with(|s| s.chains.retain(|k, _| engine.is_some_and(|e| k.0 != e)));
}

pub(crate) fn set_cache(bytes: usize) {
    with(|s| s.references.set_capacity(bytes));
}

/// How many steps back the furthest keyframe named by a decode lacking its reference lies,
/// since the last call.
pub(crate) fn take_missing() -> Option<u64> {
    with(|s| s.missing.take())
}

/// Decodes a stream read from `engine` (a file or stream name) into `out` as the plugin's
/// reader: a step of a chain is decoded over the previous step kept for it, and kept in turn.
pub(crate) fn decode(engine: &str, stream: &[u8], out: &mut [u8]) -> Result<usize> {
    let Some(info) = crate::decode::step_info(stream)? else {
        return crate::decode::decode_into(stream, out);
    };
    let reference = with(|s| s.references.get(engine, &info));
    match crate::decode::decode_blocks(stream, out, true, reference.as_deref().map(|r| &r[..])) {
        Ok(n) => {
            let decoded = out[..n].to_vec();
            with(|s| s.references.put(engine, &info, decoded));
            Ok(n)
        }
        Err(Error::Reference(e)) => {
            let back = e.step - e.keyframe;
            with(|s| s.missing = Some(s.missing.map_or(back, |m| m.max(back))));
            Err(Error::Reference(e))
        }
        Err(e) => Err(e),
    }
}
