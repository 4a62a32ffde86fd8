//! The codec's two-stage pipeline over the blocks of an array: quantization and prediction on
//! one side, entropy coding on the other, joined by a bounded channel, each stage running its
//! batches of blocks in parallel on the codec's rayon pool. ADIOS2 calls the operator on one
//! thread inside `Put`; this keeps both stages (and all cores the rank owns) busy at once.
//!
//! The stages run on two plain threads, never inside the pool: a pool worker that blocked on a
//! full channel could deadlock the work-stealing scheduler. Results come back in block order,
//! so the output does not depend on the thread count.

use crate::error::Result;
use crossbeam_channel::bounded;
use rayon::prelude::*;

/// Environment variable that sets the thread count where the parameters leave it at 0.
pub const THREADS_ENV: &str = "RESIDUUM_THREADS";

/// Threads a codec uses when its parameters say 0: `RESIDUUM_THREADS` if set, else the cores
/// this process owns.
pub fn default_threads() -> usize {
    std::env::var(THREADS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(owned_cores)
}

/// The cores this process may use without oversubscribing its node: its CPU affinity (or
/// cgroup quota) where the launcher bound it, else an equal share among the node's MPI ranks.
pub fn owned_cores() -> usize {
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if online > 0 && (allowed as i64) < online as i64 {
        return allowed;
    }
    // Unbound ranks all see every core: share them (Open MPI, MPICH/Hydra, PMI launchers).
    let local = [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "PMI_LOCAL_SIZE",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.trim().parse::<usize>().ok())
    .filter(|&n| n > 0)
    .unwrap_or(1);
    (allowed / local).max(1)
}

/// Runs `first` and then `second` on every index in `0..n`, returning `second`'s results in
/// index order (the first error by index if any failed).
///
/// With `pool` the stages overlap: batches of `batch` blocks go through `first` in the pool,
/// then through a channel holding at most two batches to `second`, also in the pool, so at
/// most about four batches are in flight (bounded memory). Without a pool both run here, in
/// order, one block at a time.
pub fn two_stage<A, B>(
    n: usize,
    pool: Option<&rayon::ThreadPool>,
    batch: usize,
    first: impl Fn(usize) -> Result<A> + Sync,
    second: impl Fn(usize, A) -> Result<B> + Sync,
) -> Result<Vec<B>>
where
    A: Send,
    B: Send,
{
    let pool = match pool {
        Some(p) if n > 1 => p,
        _ => return (0..n).map(|i| second(i, first(i)?)).collect(),
    };
    let batch = batch.max(1);
    let (tx, rx) = bounded::<Vec<(usize, Result<A>)>>(2);
    let mut out: Vec<Option<Result<B>>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let first = &first;
        s.spawn(move || {
            for start in (0..n).step_by(batch) {
                let end = (start + batch).min(n);
                let done = pool.install(|| {
                    (start..end)
                        .into_par_iter()
                        .map(|i| (i, first(i)))
                        .collect::<Vec<_>>()
                });
                if tx.send(done).is_err() {
                    return; // the consumer stopped: nothing more is wanted
                }
            }
        });
        for items in rx {
            let done = pool.install(|| {
                items
                    .into_par_iter()
                    .map(|(i, a)| (i, a.and_then(|a| second(i, a))))
                    .collect::<Vec<_>>()
            });
            for (i, r) in done {
                out[i] = Some(r);
            }
        }
    });
    out.into_iter()
        .map(|r| r.expect("every block went through both stages"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn results_in_index_order_for_any_pool_and_batch() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let want: Vec<usize> = (0..37).map(|i| i * i + 1).collect();
        for (p, batch) in [
            (None, 1),
            (Some(&pool), 1),
            (Some(&pool), 4),
            (Some(&pool), 64),
        ] {
            let got = two_stage(37, p, batch, |i| Ok(i * i), |_, a| Ok(a + 1)).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn reports_the_first_error_by_index() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let r = two_stage(
            20,
            Some(&pool),
            3,
            |i| {
                if i == 13 {
                    Err(Error::Internal("first 13".into()))
                } else {
                    Ok(i)
                }
            },
            |i, a| {
                if i >= 7 {
                    Err(Error::Internal(format!("second {i}")))
                } else {
                    Ok(a)
                }
            },
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            Error::Internal("second 7".into()).to_string()
        );
        assert!(two_stage(0, Some(&pool), 3, Ok, |_, a: usize| Ok(a))
            .unwrap()
            .is_empty());
    }
}
