//! What the ranks of a step writer settle together. A check that fails on one rank only, while
//! the others go on into ADIOS2's collectives (its setup, the engine's open, steps, close) or
//! the writer's all-reduces, would leave them waiting there for good. So each rank's own checks
//! at opening, and its part of every step, end in an all-reduce that every rank makes whatever
//! its outcome, and a failure on any rank fails the same call on all of them. What must be the
//! same on every rank for the writer's collectives to match (the queue, logging) is settled in
//! the opening one.

use super::config::{check_config, Checked};
use super::writer::WriterOptions;
use super::{AdiosError, FieldSpec, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Threading;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// Steps that may wait for the writer thread at most: each holds a copy of the rank's fields,
/// and the queue's slots are allocated when the writer opens.
const MAX_QUEUE: usize = 1024;

/// The writer as all ranks open it.
pub(super) struct Opening {
    /// The configuration as checked on this rank.
    pub checked: Checked,
    /// Steps that may wait (0: synchronous): the least any rank resolved, so that every rank
    /// sees an error of step N at the same call (see `writer`).
    pub queue: usize,
    /// Whether rank 0 prints each step: where any rank asks for it, as every rank takes part
    /// in gathering the figures.
    pub log: bool,
    /// The fewest cores a rank owns.
    pub cores: usize,
}

/// Collective over `comm`: this rank's checks of `specs` and `opts`, then what the ranks agree.
/// Every rank returns an error where any rank's checks failed: its own, or naming that rank.
/// Fields whose `fill` is None take their operation's `fill=` from the configuration.
pub(super) fn to_open(
    comm: &SimpleCommunicator,
    specs: &mut [FieldSpec],
    opts: &WriterOptions,
) -> Result<Opening> {
    let cores = crate::owned_cores();
    let mine = check(specs, opts).map(|checked| (checked, opts.mode.queue(opts.queue, cores)));
    let queue = mine.as_ref().map_or(0, |m| m.1);
    const LEVELS: [Threading; 4] = [
        Threading::Single,
        Threading::Funneled,
        Threading::Serialized,
        Threading::Multiple,
    ];
    let level = |t: Threading| LEVELS.iter().position(|&l| l == t).unwrap_or(0) as i64;
    let provided = mpi::environment::threading_support();
    let all = reduce(
        comm,
        [
            failure_flag(comm, mine.is_ok()),
            queue as i64,
            cores as i64,
            level(provided),
            -(opts.log as i64),
        ],
    );
    let (checked, _) = mine?;
    if all[0] < comm.size() as i64 {
        return Err(AdiosError::OtherRank {
            rank: all[0] as i32,
            what: "to open the step writer",
        });
    }
    let queue = all[1] as usize;
    let needed = if queue == 0 {
        Threading::Serialized
    } else {
        Threading::Multiple
    };
    if all[3] < level(needed) {
        return Err(AdiosError::Argument(format!(
            "the step writer needs MPI thread level {needed:?} on every rank (the lowest has \
             {:?}); initialize MPI with MPI_Init_thread (mpi::initialize_with_threading)",
            LEVELS[all[3] as usize]
        )));
    }
    Ok(Opening {
        checked,
        queue,
        log: all[4] < 0,
        cores: all[2] as usize,
    })
}

/// Collective over `comm`, for a rank whose arguments were refused before it had fields and
/// options to check (the C API's): its part in `to_open`, so that the other ranks fail there
/// naming it instead of waiting for it.
pub(super) fn refuse_open(comm: &SimpleCommunicator) {
    // Values that leave the other ranks' minimums as they are.
    reduce(
        comm,
        [failure_flag(comm, false), i64::MAX, i64::MAX, i64::MAX, 0],
    );
}

/// The opening's one MIN-reduce: the first rank that failed (the rank count where none did),
/// the queue, the cores, the thread level, and logging negated (any rank's).
fn reduce(comm: &SimpleCommunicator, send: [i64; 5]) -> [i64; 5] {
    let mut all = [0i64; 5];
    comm.all_reduce_into(&send[..], &mut all[..], SystemOperation::min());
    all
}

/// What this rank can check before ADIOS2 sees anything: the configuration (and the plugins it
/// names), the fields' boxes and the queue; fills the fields' `fill` from their operations.
fn check(specs: &mut [FieldSpec], opts: &WriterOptions) -> Result<Checked> {
    if opts.queue > MAX_QUEUE {
        return Err(AdiosError::Argument(format!(
            "a queue of {} steps; at most {MAX_QUEUE} may wait",
            opts.queue
        )));
    }
    for s in specs.iter() {
        s.check()?;
    }
    let checked: Checked = opts
        .config
        .as_deref()
        .map(check_config)
        .transpose()?
        .unwrap_or_default();
    // The ranges handed to `range=rank|global` leave out the values the operation keeps as
    // fill: with 1e20 in them, the bound would be resolved against a range of ~1e20.
    for s in specs.iter_mut() {
        match (s.fill, checked.fill(&opts.io, &s.name)) {
            (None, op) => s.fill = op,
            (Some(mine), Some(op)) if mine != op => {
                return Err(AdiosError::Argument(format!(
                    "field {}: fill {mine:?} differs from its operation's fill={op:?}",
                    s.name
                )))
            }
            _ => {}
        }
    }
    Ok(checked)
}

/// For a MIN-reduce of every rank's outcome: this rank's index where it failed, else the rank
/// count; the result is the first rank that failed, or the rank count.
pub(super) fn failure_flag(comm: &SimpleCommunicator, ok: bool) -> i64 {
    if ok {
        comm.size() as i64
    } else {
        comm.rank() as i64
    }
}
