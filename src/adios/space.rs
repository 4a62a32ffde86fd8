//! Room for a step, decided by all ranks together before it starts.
//!
//! ADIOS2 cannot recover from a write that fails inside `EndStep`: the ranks whose own write
//! succeeded wait in the step's collectives (BP5's aggregation, its metadata gather) for a rank
//! that has left them, and a failed close makes the engine's destructor throw, which aborts the
//! process. So the step writer never lets ADIOS2 meet a full disk: before each step every rank
//! checks that the step fits, assuming its worst case (every field uncompressed, every rank's
//! data landing in one aggregator's file), and the ranks agree with one all-reduce. A step that
//! might not fit fails on every rank, before `BeginStep`, with room left to close the engine.

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::path::Path;

/// Bytes per field and rank beyond the values: the operator's stream header and BP5's block
/// metadata and alignment.
const PER_FIELD: u64 = 16 << 10;
/// Kept free for closing the engine (metadata, index, profiling) and for rank 0's metadata of
/// the step, plus this much per rank.
const RESERVE: u64 = 256 << 10;
const RESERVE_PER_RANK: u64 = 16 << 10;

/// The most bytes a step of fields of `raw` bytes each writes for one rank.
pub(crate) fn step_need(raw: impl Iterator<Item = usize>) -> u64 {
    raw.map(|b| b as u64 + PER_FIELD).sum()
}

/// Whether every rank has room for a step in which no rank writes more than `max_need` bytes,
/// into the file or directory `target`. Collective; every rank gets the same answer: `Err` with
/// this rank's reason, or naming the first rank that lacks room.
pub(crate) fn agree_on_room(
    comm: &SimpleCommunicator,
    target: &Path,
    max_need: u64,
) -> Result<(), String> {
    let ranks = comm.size() as u64;
    let mine = room(target, ranks, max_need);
    let flag = super::agree::failure_flag(comm, mine.is_ok());
    let mut first = 0;
    comm.all_reduce_into(&flag, &mut first, SystemOperation::min());
    match mine {
        Err(e) => Err(e),
        Ok(()) if first < comm.size() as i64 => {
            Err(format!("rank {first} lacks room for the step"))
        }
        Ok(()) => Ok(()),
    }
}

/// This rank's view: free space on the file system of `target` and the file size limit
/// (RLIMIT_FSIZE) against the largest file in it.
fn room(target: &Path, ranks: u64, max_need: u64) -> Result<(), String> {
    let need = max_need
        .saturating_mul(ranks)
        .saturating_add(RESERVE + RESERVE_PER_RANK * ranks);
    if let Some(free) = free_bytes(target) {
        if free < need {
            return Err(format!(
                "no room for the step: {free} bytes free on the file system of {}, and the step \
                 may need {need} (every field uncompressed, and what closing the file needs)",
                target.display()
            ));
        }
    }
    if let Some(limit) = file_size_limit() {
        let largest = largest_file(target);
        if largest.saturating_add(need) > limit {
            return Err(format!(
                "no room for the step: the file size limit is {limit} bytes, the largest file of \
                 {} has {largest}, and the step may add {need}",
                target.display()
            ));
        }
    }
    Ok(())
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a valid C string and a buffer of the right type; read only when the call succeeds.
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn file_size_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to write into.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// The largest file `target` is (a file) or holds (a BP directory), 0 if none yet.
fn largest_file(target: &Path) -> u64 {
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => std::fs::read_dir(target)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
