//! The writer's chains of steps (`temporal=K`), one per engine, variable and box, each keeping
//! the last reconstruction it wrote, and which of them a new box ends. Within a byte budget:
//! boxes that move without overlapping (patches a regrid drops) would otherwise leave a chain
//! each, for the process's life.

use crate::base::previous::Chain;
use std::collections::{HashMap, HashSet};

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

#[derive(Default)]
pub(super) struct Chains {
    /// Each chain with when it was last put back (`clock`).
    chains: HashMap<ChainKey, (Chain, u64)>,
    /// Chains of a box since written in another engine, not used since: they go when the box
    /// is written in yet another engine (see `end_replaced`).
    superseded: HashSet<ChainKey>,
    clock: u64,
    /// The reconstructions' bytes, over the chains in the table.
    bytes: usize,
}

impl Chains {
    /// Takes `key`'s chain out of the table while it compresses (so that other blocks need
    /// not wait), or starts one as `new` makes it, ending the chains the new box replaces.
    pub fn take(&mut self, key: &ChainKey, new: impl FnOnce() -> Chain) -> Chain {
        match self.chains.remove(key) {
            Some((chain, _)) => {
                self.superseded.remove(key);
                self.bytes -= chain.bytes();
                chain
            }
            None => {
                self.end_replaced(key);
                new()
            }
        }
    }

    /// Puts `key`'s chain back; then, over `budget` bytes, drops the least recently used
    /// chains until a quarter of the budget is free (their boxes' next steps are keyframes).
    pub fn put(&mut self, key: ChainKey, chain: Chain, budget: usize) {
        self.clock += 1;
        self.bytes += chain.bytes();
        if let Some((old, _)) = self.chains.insert(key, (chain, self.clock)) {
            self.bytes -= old.bytes(); // a writer of the same box on another thread
        }
        if self.bytes <= budget {
            return;
        }
        let mut by_use: Vec<(u64, ChainKey)> = (self.chains.iter())
            .map(|(k, (_, t))| (*t, k.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, k) in by_use {
            if self.bytes <= budget - budget / 4 {
                break;
            }
            if let Some((c, _)) = self.chains.remove(&k) {
                self.bytes -= c.bytes();
            }
        }
        self.forget_superseded();
    }

    /// Ends the chains a new box `key` replaces, so that the writer keeps one reconstruction
    /// per block however its blocks and files change. In its engine: those of the variable's
    /// boxes it overlaps (a decomposition that changed; a local array, whose boxes all start at
    /// 0, of a new length each step). In other engines, the same box's: a file per output
    /// leaves the one before for good, but engines written side by side (a file and a stream)
    /// each go on; so such a chain is only marked, and goes once the box is written in yet
    /// another engine without it having been used since (at most two per box of a writer that
    /// moves on from file to file).
    fn end_replaced(&mut self, key: &ChainKey) {
        let same_box =
            |k: &ChainKey| k.0 != key.0 && (&k.1, &k.2, &k.3) == (&key.1, &key.2, &key.3);
        self.retain(|k, superseded| {
            let stale = same_box(k) && superseded.contains(k);
            let overlapped =
                k.0 == key.0 && k.1 == key.1 && overlap((&k.2, &k.3), (&key.2, &key.3));
            !(stale || overlapped)
        });
        let marked: Vec<ChainKey> = self
            .chains
            .keys()
            .filter(|k| same_box(k))
            .cloned()
            .collect();
        self.superseded.extend(marked);
    }

    /// Forgets the chains of `engine` (all for None).
    pub fn restart(&mut self, engine: Option<&str>) {
        self.retain(|k, _| engine.is_some_and(|e| k.0 != e));
    }

    /// Keeps the chains `keep` says to (given the superseded ones), counting the bytes.
    fn retain(&mut self, mut keep: impl FnMut(&ChainKey, &HashSet<ChainKey>) -> bool) {
        let (superseded, mut freed) = (&self.superseded, 0);
        self.chains.retain(|k, (c, _)| {
            let kept = keep(k, superseded);
            freed += if kept { 0 } else { c.bytes() };
            kept
        });
        self.bytes -= freed;
        self.forget_superseded();
    }

    fn forget_superseded(&mut self) {
        let chains = &self.chains;
        self.superseded.retain(|k| chains.contains_key(k));
    }

    /// The keys of the chains in the table.
    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = &ChainKey> {
        self.chains.keys()
    }

    /// Bytes the chains in the table keep.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Whether two boxes (start, count) share a position; boxes of different dimensions do (a
/// variable defined anew).
fn overlap((s1, c1): (&[usize], &[usize]), (s2, c2): (&[usize], &[usize])) -> bool {
    s1.len() != s2.len()
        || (0..s1.len())
            .all(|d| s1[d] < s2[d].saturating_add(c2[d]) && s2[d] < s1[d].saturating_add(c1[d]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, ElementType};

    /// A box that moves on every step, never overlapping where it was (patches of a regrid):
    /// its chains stay within the budget, the latest kept, where each stayed for good before.
    /// Boxes written again keep theirs while the budget holds them.
    #[test]
    fn chains_of_boxes_that_move_away_stay_within_the_budget() {
        let codec = Codec::from_pairs([("nrmse", "1e-3"), ("temporal", "8")]).unwrap();
        let data: Vec<u8> = (0..64u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut out = vec![0u8; codec.max_compressed_len(ElementType::F32, &[64])];
        let (mut chains, budget) = (Chains::default(), 10 * 256);
        let mut put = |chains: &mut Chains, start: usize| {
            let key = chain_key("e", "v", &[start], &[64]);
            let mut c = chains.take(&key, || Chain::new(start as u64));
            c.compress_into(&codec, ElementType::F32, &[64], &data, &mut out, None)
                .unwrap();
            chains.put(key, c, budget);
        };
        for step in 0..200 {
            put(&mut chains, 64 * step);
            assert!(
                chains.bytes() <= budget,
                "step {step}: {} bytes",
                chains.bytes()
            );
        }
        let kept: Vec<usize> = chains.keys().map(|k| k.2[0] / 64).collect();
        assert!(kept.contains(&199) && kept.len() <= 10, "{kept:?}");
        // Four boxes written step after step, within the budget: none is dropped.
        let mut fixed = Chains::default();
        for _ in 0..50 {
            for b in 0..4 {
                put(&mut fixed, 64 * b);
            }
        }
        assert_eq!(fixed.keys().count(), 4);
        assert_eq!(fixed.bytes(), 4 * 256);
    }
}
