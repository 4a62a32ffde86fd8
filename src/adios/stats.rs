//! What the step writer reports of each written step: per field, sizes and the operator's
//! achieved error (from the in-situ reports), and on rank 0 a line over all ranks.

use super::{FieldData, FieldSpec};
use crate::insitu::{RangeUsed, Report};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// What the operator did to a field in one step, on this rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Compression {
    pub bytes_out: usize,
    /// RMS error over the range the bound was resolved against (the rank's blocks).
    pub nrmse: f64,
    pub max_abs: f64,
    pub range_used: RangeUsed,
    pub range: f64,
    pub seconds: f64,
}

/// One field of a written step, on this rank.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldStats {
    pub name: String,
    pub bytes_in: usize,
    /// None where no residuum operation applied (e.g. an IO without operators).
    pub compression: Option<Compression>,
    /// Threads the writer gave the residuum operators (those whose `threads` is 0) for this
    /// field: one fewer than the rank's cores while the simulation computes asynchronously,
    /// all of them once it waits in `close`.
    pub threads: usize,
}

/// A written step, on this rank.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    pub step: usize,
    /// BeginStep to EndStep on the writer thread.
    pub seconds: f64,
    /// How long the step waited in the queue.
    pub queued_seconds: f64,
    pub fields: Vec<FieldStats>,
}

pub(super) fn field_stats(
    specs: &[FieldSpec],
    fields: &[FieldData],
    reports: &[Report],
    threads: &[usize],
) -> Vec<FieldStats> {
    specs
        .iter()
        .zip(fields)
        .zip(threads)
        .map(|((s, f), &threads)| {
            let mine: Vec<&Report> = reports.iter().filter(|r| r.variable == s.name).collect();
            let compression = (!mine.is_empty()).then(|| {
                let mut errors = crate::bound::ErrorStats::default();
                let (mut bytes_out, mut seconds, mut range) = (0, 0.0, 0.0f64);
                for r in &mine {
                    errors.merge(&r.stats.errors);
                    bytes_out += r.stats.bytes_out;
                    seconds += r.stats.seconds;
                    range = range.max(r.stats.range);
                }
                Compression {
                    bytes_out,
                    nrmse: if range > 0.0 {
                        errors.rms() / range
                    } else {
                        0.0
                    },
                    max_abs: errors.max_abs,
                    range_used: mine[0].range_used,
                    range,
                    seconds,
                }
            });
            FieldStats {
                name: s.name.clone(),
                bytes_in: f.len() * if s.double { 8 } else { 4 },
                compression,
                threads,
            }
        })
        .collect()
}

/// Rank 0 prints the step over all ranks: sizes summed, the worst NRMSE, the range kind, and
/// whether every rank resolved against the same range (as `range=global` must).
pub(super) fn log_step(comm: &SimpleCommunicator, s: &StepStats, target: &str) {
    for f in &s.fields {
        let c = f.compression.as_ref();
        let out = c.map_or(f.bytes_in, |c| c.bytes_out) as f64;
        let range = c.map_or(0.0, |c| c.range);
        let kind = c.map_or(0.0, |c| c.range_used as i32 as f64);
        let mut sums = [0.0f64; 2];
        comm.all_reduce_into(
            &[f.bytes_in as f64, out][..],
            &mut sums[..],
            SystemOperation::sum(),
        );
        let send = [
            c.map_or(0.0, |c| c.nrmse),
            range,
            -range,
            kind,
            -kind,
            s.seconds,
            f.threads as f64,
        ];
        let mut max = [0.0f64; 7];
        comm.all_reduce_into(&send[..], &mut max[..], SystemOperation::max());
        if comm.rank() == 0 {
            let same = max[1] == -max[2] && max[3] == -max[4];
            let kind = RangeUsed::from_code(max[3] as i32).map_or("mixed", |k| k.name());
            eprintln!(
                "residuum: {target} step {}: {} {:.0} -> {:.0} bytes ({:.1}x), NRMSE {:.3e}, {} range {}, {:.3} s, {} thread(s)",
                s.step,
                f.name,
                sums[0],
                sums[1],
                sums[0] / sums[1].max(1.0),
                max[0],
                if same { kind } else { "mixed" },
                if same {
                    format!("{:.6e} on all {} ranks", max[1], comm.size())
                } else {
                    format!("differs across ranks (up to {:.6e})", max[1])
                },
                max[5],
                max[6],
            );
        }
    }
}
