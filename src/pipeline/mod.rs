//! The codec's two-stage pipeline over the blocks of an array: quantization and prediction,
//! then entropy coding. Each block's stages run as tasks on the codec's rayon pool, so any
//! thread takes whichever stage of whichever block is ready, and bounded channels carry the
//! blocks between the stages to a coordinator that admits new blocks only while fewer than
//! `depth` are in flight (bounded memory, back-pressure). ADIOS2 calls the operator on one thread
//! inside `Put`; this keeps all the cores the rank owns busy.
//!
//! Only the coordinator (the calling thread) ever waits on a channel; pool tasks never block, so
//! the work-stealing scheduler cannot deadlock. Results land by block index, so the output does
//! not depend on the thread count or on which stage finished first.

pub(crate) mod learn;
pub(crate) mod scratch;

use crate::error::{Error, Result};
use crossbeam_channel::bounded;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Compiles a hot loop's function also for AVX-512 and AVX2, and calls the version the CPU
/// runs (detected once): the build targets plain x86-64 so that one binary runs on any node,
/// which leaves loops two f64 lanes wide. Only loops of plain arithmetic, comparisons and
/// conversions go through it: each IEEE operation rounds alike at any width (and Rust never
/// fuses a multiply with an add), so every version gives the same bits.
macro_rules! wide {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        $(#[$attr])*
        #[multiversion::multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2"))]
        $vis fn $($rest)*
    };
}
pub(crate) use wide;

/// Environment variable that sets the thread count where the parameters leave it at 0.
pub const THREADS_ENV: &str = "RESIDUUM_THREADS";

/// The most threads a codec uses, whatever it is told (a typo such as `threads=100000` would
/// otherwise spawn threads until the process dies); the `threads` parameter refuses more.
pub const MAX_THREADS: usize = 1024;

/// Threads a codec uses when its parameters say 0: `RESIDUUM_THREADS` if set, else the cores
/// this process owns.
pub fn default_threads() -> usize {
    crate::params::env_setting(THREADS_ENV, "a thread count", |v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(owned_cores)
        .min(MAX_THREADS)
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
/// index order (the first error by index if any failed). A panic in a stage goes on in the
/// caller once the blocks in flight are done.
///
/// With `pool` the stages run as pool tasks, at most `depth` blocks in flight; without, both
/// run here in order, one block at a time.
pub fn two_stage<A, B>(
    n: usize,
    pool: Option<&rayon::ThreadPool>,
    depth: usize,
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
    let depth = depth.max(1);
    // In flight ≤ depth, so no send below ever waits. Every task sends, also when its stage
    // panics (rayon would keep that panic until the scope ends, which waits for the task's
    // message: a hang).
    let (mid_tx, mid_rx) = bounded::<(usize, Caught<A>)>(depth);
    let (done_tx, done_rx) = bounded::<(usize, Caught<B>)>(depth);
    let mut out: Vec<Option<Result<B>>> = (0..n).map(|_| None).collect();
    let mut panicked = None;
    let (first, second) = (&first, &second);
    pool.in_place_scope(|s| {
        let (mut next, mut predicting, mut coding) = (0, 0, 0);
        loop {
            while next < n && predicting + coding < depth && panicked.is_none() {
                let (tx, i) = (mid_tx.clone(), next);
                s.spawn(move |_| {
                    let _ = tx.send((i, catch(|| first(i))));
                });
                (next, predicting) = (next + 1, predicting + 1);
            }
            if predicting + coding == 0 {
                break;
            }
            crossbeam_channel::select! {
                recv(mid_rx) -> m => {
                    let (i, a) = m.expect("a sender is alive while blocks are in flight");
                    predicting -= 1;
                    match a {
                        Ok(a) if panicked.is_none() => {
                            let tx = done_tx.clone();
                            s.spawn(move |_| {
                                let _ = tx.send((i, catch(|| a.and_then(|a| second(i, a)))));
                            });
                            coding += 1;
                        }
                        Ok(_) => {}
                        Err(p) => panicked = Some(p),
                    }
                }
                recv(done_rx) -> d => {
                    let (i, b) = d.expect("a sender is alive while blocks are in flight");
                    coding -= 1;
                    match b {
                        Ok(b) => out[i] = Some(b),
                        Err(p) => panicked = Some(p),
                    }
                }
            }
        }
    });
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
    out.into_iter()
        .map(|r| r.expect("every block went through both stages"))
        .collect()
}

/// A stage's result, or its panic.
type Caught<T> = std::thread::Result<Result<T>>;

fn catch<T>(f: impl FnOnce() -> Result<T>) -> Caught<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

type Pools = HashMap<usize, Arc<rayon::ThreadPool>>;
static POOLS: Mutex<Option<Pools>> = Mutex::new(None);

/// Thread counts whose pools are kept while nothing uses them. A program uses one or two (the
/// step writer's); one that went through many (codecs of `threads=1..N`) would otherwise keep
/// all their threads to its end.
const KEPT_POOLS: usize = 8;

/// One pool per thread count for the whole process: every variable's operator shares it
/// instead of each bringing its own threads.
pub(crate) fn shared_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(p) = pools.get(&threads) {
        return Ok(p.clone());
    }
    if pools.len() >= KEPT_POOLS {
        // Pools held only here: their threads end once dropped.
        pools.retain(|_, p| Arc::strong_count(p) > 1);
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("residuum-{i}"))
            .build()
            .map_err(|e| Error::Internal(format!("thread pool: {e}")))?,
    );
    pools.insert(threads, pool.clone());
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn pools_nobody_holds_go_once_many_thread_counts_were_used() {
        let held = shared_pool(3).unwrap();
        for threads in 1..=2 * KEPT_POOLS {
            drop(shared_pool(threads).unwrap());
        }
        let pools = POOLS.lock().unwrap();
        let pools = pools.as_ref().unwrap();
        // Other tests of this process may hold pools of their own too, up to a few.
        assert!(pools.len() <= KEPT_POOLS + 2, "{} pools kept", pools.len());
        assert!(Arc::ptr_eq(&pools[&3], &held), "a held pool stays shared");
    }

    /// A stage that panics: the panic reaches the caller (the C API catches it there), where
    /// the stage's task, never sending, used to leave the coordinator waiting for good. The
    /// channel's limit only guards the test against that hang.
    #[test]
    fn a_panicking_stage_panics_in_the_caller_instead_of_hanging() {
        for stage in [0, 1] {
            let (tx, rx) = std::sync::mpsc::channel();
            // Not scoped: a hung call must not hold the test too.
            std::thread::spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(2)
                    .build()
                    .unwrap();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    two_stage(
                        16,
                        Some(&pool),
                        4,
                        |i| match (stage, i) {
                            (0, 5) => panic!("stage 0 of block 5"),
                            _ => Ok(i),
                        },
                        |i, a| match (stage, i) {
                            (1, 5) => panic!("stage 1 of block 5"),
                            _ => Ok(a),
                        },
                    )
                }));
                let _ = tx.send(r.is_err());
            });
            let panicked = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("two_stage hung after a stage panicked");
            assert!(panicked, "stage {stage}: the panic was lost");
        }
    }

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
