//! Temporal prediction in situ (`temporal=K`), in the plugin's copy of residuum: the writer's
//! chains (see `chains`), and the reader's references, the decoded steps of every chain met;
//! each within a byte budget (`RESIDUUM_REFERENCE_CACHE`, or [`super::set_reference_cache`]).

use super::chains::{chain_key, Chains};
use crate::base::previous::{Chain, References};
use crate::codec::{Codec, CompressStats};
use crate::dtype::ElementType;
use crate::error::{Error, Result};
use std::sync::Mutex;
use xxhash_rust::xxh3::xxh3_64;

/// The reader's default budget for decoded steps: 1 GiB.
const DEFAULT_CACHE: usize = 1 << 30;

struct Steps {
    /// The writer's, within the same byte budget as the reader's references.
    chains: Chains,
    references: References,
    /// The most steps back to a keyframe that a decode lacking its reference named since the
    /// last [`take_missing`].
    missing: Option<u64>,
}

static STEPS: Mutex<Option<Steps>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Steps) -> R) -> R {
    let mut g = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(|| Steps {
        chains: Chains::default(),
        references: References::new(cache_from_env().unwrap_or(DEFAULT_CACHE)),
        missing: None,
    }))
}

/// `RESIDUUM_REFERENCE_CACHE` (see `size`).
fn cache_from_env() -> Option<usize> {
    crate::params::env_setting(
        "RESIDUUM_REFERENCE_CACHE",
        "a size (bytes, or with K, M or G)",
        size,
    )
}

/// Bytes, with an optional K, M or G suffix (binary), also written KB or KiB and so on.
fn size(v: &str) -> Option<usize> {
    let upper = v.to_ascii_uppercase();
    let v = upper
        .strip_suffix("IB")
        .or(upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, shift) = match v.chars().last()? {
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
    let mut chain = with(|s| (s.chains).take(&key, || Chain::new(chain_id(variable, start, dims))));
    let stats = chain.compress_into(codec, dtype, dims, data, out, range);
    with(|s| {
        let budget = s.references.capacity();
        s.chains.put(key, chain, budget)
    });
    stats
}

/// Forgets the chains of `engine` (all for None): the next step of each block is a keyframe.
/// For a writer that opens a new file under the name of one it closed.
pub(crate) fn restart(engine: Option<&str>) {
    with(|s| s.chains.restart(engine));
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
/// On `threads` threads (see [`crate::decode::decode_blocks_on`]).
pub(crate) fn decode(engine: &str, stream: &[u8], out: &mut [u8], threads: usize) -> Result<usize> {
    let Some(info) = crate::decode::step_info(stream)? else {
        return crate::decode::decode_blocks_on(threads, stream, out, None);
    };
    let reference = with(|s| s.references.get(engine, &info));
    let r = reference.as_deref().map(|r| &r[..]);
    match crate::decode::decode_blocks_on(threads, stream, out, r) {
        Ok(n) => {
            // A step over the budget is not kept: not copied either.
            if n <= with(|s| s.references.capacity()) {
                let decoded = out[..n].to_vec();
                with(|s| s.references.put(engine, &info, decoded));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The chains of `variable` in `engine`, by start and count.
    fn boxes(engine: &str, variable: &str) -> Vec<(Vec<usize>, Vec<usize>)> {
        let mut b: Vec<_> = with(|s| {
            (s.chains.keys())
                .filter(|k| (k.0.as_str(), k.1.as_str()) == (engine, variable))
                .map(|k| (k.2.clone(), k.3.clone()))
                .collect()
        });
        b.sort();
        b
    }

    #[test]
    fn cache_sizes_take_the_usual_suffixes_and_refuse_the_rest() {
        for (v, want) in [
            ("4096", 4096),
            ("256M", 256 << 20),
            ("512MB", 512 << 20),
            ("2GiB", 2 << 30),
            ("64 kb", 64 << 10),
        ] {
            assert_eq!(size(v), Some(want), "{v}");
        }
        for v in ["1.5G", "lots", "", "G", "99999999999999999999G"] {
            assert_eq!(size(v), None, "{v}");
        }
    }

    #[test]
    fn a_new_box_ends_the_chains_it_overlaps_and_no_other() {
        let codec = Codec::from_pairs([("nrmse", "1e-3"), ("temporal", "8")]).unwrap();
        let engine = "steps::tests engine";
        let data: Vec<u8> = (0..256u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut out = vec![0u8; codec.max_compressed_len(ElementType::F32, &[256])];
        let mut put = |variable: &str, start: usize, count: usize| {
            compress(
                &codec,
                engine,
                variable,
                &[start],
                ElementType::F32,
                &[count],
                &data[..4 * count],
                &mut out,
                None,
            )
            .unwrap();
        };
        // Particles: a local array (start 0) of another length each step keeps one chain,
        // where it kept one per length before, each holding its step's values.
        for n in 100..140 {
            put("particles", 0, n);
        }
        assert_eq!(boxes(engine, "particles"), [(vec![0], vec![139])]);
        // Four fixed boxes side by side, step after step: each keeps its chain.
        for _ in 0..3 {
            for b in 0..4 {
                put("field", 64 * b, 64);
            }
        }
        let side_by_side: Vec<_> = (0..4).map(|b| (vec![64 * b], vec![64])).collect();
        assert_eq!(boxes(engine, "field"), side_by_side);
        // A box moved over the first two ends their chains only.
        put("field", 32, 64);
        let moved = [(32, 64), (128, 64), (192, 64)].map(|(s, c)| (vec![s], vec![c]));
        assert_eq!(boxes(engine, "field"), moved);
        assert_eq!(
            boxes(engine, "particles").len(),
            1,
            "another variable's stay"
        );
    }

    #[test]
    fn engines_written_side_by_side_keep_their_chains_and_a_file_per_output_at_most_two() {
        let codec = Codec::from_pairs([("nrmse", "1e-3"), ("temporal", "8")]).unwrap();
        let data: Vec<u8> = (0..64u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut out = vec![0u8; codec.max_compressed_len(ElementType::F32, &[64])];
        // The step its stream says it is, within its chain.
        let mut put = |engine: &str| {
            let n = compress(
                &codec,
                engine,
                "side",
                &[0],
                ElementType::F32,
                &[64],
                &data,
                &mut out,
                None,
            )
            .unwrap()
            .bytes_out;
            crate::decode::step_info(&out[..n]).unwrap().unwrap().step
        };
        let chains = |prefix: &str| {
            with(|s| {
                (s.chains.keys())
                    .filter(|k| k.0.starts_with(prefix) && k.1 == "side")
                    .count()
            })
        };
        // A file and a stream, step after step: both chains go on.
        for step in 0..4 {
            assert_eq!(put("steps::tests side.bp"), step);
            assert_eq!(put("steps::tests side-sst"), step);
        }
        assert_eq!(chains("steps::tests side"), 2);
        // A file per output: those left behind go.
        for file in 0..6 {
            assert_eq!(put(&format!("steps::tests out{file}.bp")), 0);
        }
        assert!(chains("steps::tests ") <= 2, "{}", chains("steps::tests "));
    }
}
