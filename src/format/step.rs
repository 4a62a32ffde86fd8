//! The step entry of a stream written with temporal prediction (`temporal=K`): which chain of
//! steps it belongs to (one per writer block: variable, start and count), its step in that
//! chain, the last keyframe before it, and, where any block is predicted from the previous
//! step's reconstruction, the hash of that reconstruction. A reader keeps the decoded steps of
//! each chain and hands the right one back (see `doc/format.md` §5.11).
//!
//! ```text
//! chain u64 | step u64 | keyframe u64 | reference u8 (0: none, 1: step − 1) | hash u64
//! ```

use crate::error::{Error, Result};
use xxhash_rust::xxh3::xxh3_64;

/// Bytes of a step entry.
pub const STEP_LEN: usize = 8 + 8 + 8 + 1 + 8;

/// Where a stream stands in its chain of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepInfo {
    /// The writer's id of the chain (its variable and block).
    pub chain: u64,
    /// The step within the chain (0 for the first stream written for the block).
    pub step: u64,
    /// The latest step at or before `step` that decodes without a reference.
    pub keyframe: u64,
    /// The hash ([`reference_hash`]) of step − 1's reconstruction, where blocks of this stream
    /// are predicted from it; None for a keyframe.
    pub reference: Option<u64>,
}

impl StepInfo {
    pub(crate) fn bytes(&self) -> [u8; STEP_LEN] {
        let mut b = [0u8; STEP_LEN];
        b[..8].copy_from_slice(&self.chain.to_le_bytes());
        b[8..16].copy_from_slice(&self.step.to_le_bytes());
        b[16..24].copy_from_slice(&self.keyframe.to_le_bytes());
        b[24] = self.reference.is_some() as u8;
        b[25..].copy_from_slice(&self.reference.unwrap_or(0).to_le_bytes());
        b
    }

    pub(crate) fn parse(p: &[u8]) -> Result<StepInfo> {
        if p.len() != STEP_LEN {
            return Err(Error::corrupt(format!(
                "step entry of {} bytes ({STEP_LEN} expected)",
                p.len()
            )));
        }
        let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap());
        let (chain, step, keyframe, hash) = (u64_at(0), u64_at(8), u64_at(16), u64_at(25));
        let reference = match p[24] {
            0 if hash == 0 => None,
            1 => Some(hash),
            _ => return Err(Error::corrupt("step entry: bad reference flag")),
        };
        let keyframe_ok = match reference {
            None => keyframe == step,
            Some(_) => keyframe < step,
        };
        if !keyframe_ok {
            return Err(Error::corrupt(format!(
                "step entry: keyframe {keyframe} does not fit step {step}"
            )));
        }
        Ok(StepInfo {
            chain,
            step,
            keyframe,
            reference,
        })
    }
}

/// The hash that names a reconstruction as a reference: xxh3-64 of its little-endian element
/// bytes (the whole array, as decoded).
pub fn reference_hash(decoded: &[u8]) -> u64 {
    xxh3_64(decoded)
}
