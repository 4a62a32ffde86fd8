//! The writer thread: it owns the ADIOS2 engine and writes the steps the application hands
//! over (see `writer` for what the application sees), one BeginStep/Put/EndStep each.

use super::config::Checked;
use super::loan::Handed;
use super::stats::{field_stats, log_step, StepStats};
use super::writer::WriterOptions;
use super::{agree, space, Adios, AdiosError, Element, FieldData, FieldSpec, OpenMode};
use super::{Result, Variable};
use crate::error::IoErrorKind;
use crate::insitu::{self, RangeUsed, Report};
use crossbeam_channel::{Receiver, Sender};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A step handed over: its index, when, and its fields.
pub(super) type Step = (usize, Instant, Handed);
pub(super) type Outcome = std::result::Result<StepStats, (usize, AdiosError)>;

/// The steps handed over, and whether the application waits in `close` for them: its core is
/// free then, so an async writer compresses what is still queued on every core the rank owns
/// (at 200 steps of Gray-Scott 96^3, the last step's compression alone was 4-5 % of the run).
pub(super) struct Jobs {
    pub(super) steps: Receiver<Step>,
    pub(super) closing: Arc<AtomicBool>,
    /// Written steps' buffers, back to the application once it asks for them (see `recycling`),
    /// and the sets an idle async writer makes beside them.
    pub(super) spare: Sender<Vec<FieldData>>,
    /// Set by the first `StepWriter::buffers` or `lend_step`: until then nothing is kept for
    /// reuse, so a writer whose application never asks holds no more memory than the queue's
    /// steps.
    pub(super) recycling: Arc<AtomicBool>,
}

enum Var<'a> {
    F32(Variable<'a, f32>),
    F64(Variable<'a, f64>),
}

fn define<'a, T: Element>(io: &super::Io<'a>, s: &FieldSpec) -> Result<Variable<'a, T>> {
    io.define_variable::<T>(&s.name, &s.shape, &s.start, &s.count)
}

/// `checked`: the configuration as `agree::to_open` checked it.
pub(super) fn writer_thread(
    comm: &SimpleCommunicator,
    specs: &[FieldSpec],
    opts: &WriterOptions,
    checked: Checked,
    jobs: Jobs,
    outcomes: Sender<Outcome>,
    ready: Sender<Result<()>>,
) -> Result<()> {
    let adios = match Adios::with_checked_config(opts.config.as_deref(), checked, comm) {
        Ok(a) => a,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    let closed = write_steps(&adios, comm, specs, opts, jobs, outcomes, ready);
    if closed.is_err() {
        // ADIOS2 would retry the close in the engine's destructor, which throws from a
        // destructor and aborts the process: leave the engine to the process's exit instead.
        std::mem::forget(adios);
    }
    closed
}

/// Opens the engine and writes the steps that come; returns how closing it went.
fn write_steps(
    adios: &Adios,
    comm: &SimpleCommunicator,
    specs: &[FieldSpec],
    opts: &WriterOptions,
    jobs: Jobs,
    outcomes: Sender<Outcome>,
    ready: Sender<Result<()>>,
) -> Result<()> {
    let opened = (|| -> Result<_> {
        let io = adios.declare_io(&opts.io)?;
        let vars = specs
            .iter()
            .map(|s| {
                Ok(if s.double {
                    Var::F64(define(&io, s)?)
                } else {
                    Var::F32(define(&io, s)?)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let engine = io.open(&opts.target, OpenMode::Write)?;
        Ok((io, vars, engine))
    })();
    let (_io, vars, mut engine) = match opened {
        Ok(o) => o,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    let owned = crate::pipeline::default_threads();
    let threads = opts.threads.unwrap_or(match opts.queue {
        0 => owned,
        _ => owned.saturating_sub(1).max(1),
    });
    let (mut in_use, widen) = (threads, opts.threads.is_none());
    // Without the plugin (no residuum operation) there is nothing to tell. A file opened
    // under the name of an earlier one starts its chains of steps anew (temporal=K).
    let _ = insitu::set_threads(threads);
    let _ = insitu::restart_chains(Some(&opts.target));
    // File engines can run out of room; staging engines (SST) write no file.
    let on_disk = engine
        .engine_type()
        .map(|t| t.starts_with("BP") || t.contains("File"))
        .unwrap_or(true);
    let step_need = space::step_need(specs.iter().map(FieldSpec::local_bytes));
    let _ = ready.send(Ok(()));
    let (mut failed, mut touched) = (false, 0);
    for (step, handed_over, handed) in &jobs.steps {
        if failed {
            // Drain: a failed writer writes nothing more, but must not block senders.
            if let Handed::Lent(l) = handed {
                l.discard();
            }
            continue;
        }
        // Whatever this rank's part of the step, it takes part in the step's all-reduce, where
        // every rank learns whether any failed (see `agree`).
        let fields = handed.into_fields(step);
        let queued_seconds = handed_over.elapsed().as_secs_f64();
        let t = Instant::now();
        let agreed = hand_over_ranges(comm, specs, &opts.target, fields.as_deref().ok(), step_need);
        let (fields, max_need) = match (fields, agreed) {
            (Ok(f), Ok(need)) => (f, need),
            (Err(e), _) | (Ok(_), Err(e)) => {
                failed = true;
                let _ = outcomes.send(Err((step, e)));
                continue;
            }
        };
        let mut threads_used = Vec::with_capacity(vars.len());
        let written = (|| -> Result<Vec<Report>> {
            if on_disk {
                space::agree_on_room(comm, opts.target.as_ref(), max_need)
                    .map_err(AdiosError::NoRoom)?;
            }
            engine.begin_step(-1.0)?;
            for (v, f) in vars.iter().zip(&fields) {
                // Before each field, as each `put` compresses: `close` comes right after the
                // last step is handed over, usually before its first field.
                if widen && in_use < owned && jobs.closing.load(Ordering::Acquire) {
                    in_use = owned;
                    let _ = insitu::set_threads(in_use);
                }
                threads_used.push(in_use);
                match (v, f) {
                    (Var::F32(v), FieldData::F32(d)) => engine.put(v, d)?,
                    (Var::F64(v), FieldData::F64(d)) => engine.put(v, d)?,
                    _ => unreachable!("types checked in write_step"),
                }
            }
            engine.end_step()?;
            // No report without the plugin (an IO without residuum operations).
            Ok(insitu::take_reports(Some(&opts.target)).unwrap_or_default())
        })();
        let outcome = written.map(|reports| StepStats {
            step,
            seconds: t.elapsed().as_secs_f64(),
            queued_seconds,
            fields: field_stats(specs, &fields, &reports, &threads_used),
        });
        if let (Ok(s), true) = (&outcome, opts.log) {
            log_step(comm, s, &opts.target);
        }
        // Back before the outcome, so that a synchronous writer's next step gets them.
        if jobs.recycling.load(Ordering::Relaxed) {
            // Dropped where enough wait already.
            let _ = jobs.spare.try_send(fields);
            // While no step waits, this core also makes the other sets an async writer can
            // have under way, its pages touched: where the writer lags, the simulation takes
            // one of them instead of faulting in a new set (4-5 ms at 96^3, 1 ms for a set
            // that was written before).
            while touched < opts.queue + 1
                && opts.queue > 0
                && jobs.steps.is_empty()
                && !jobs.spare.is_full()
            {
                let set = specs
                    .iter()
                    .map(|s| FieldData::touched(s, s.local_len()))
                    .collect();
                let _ = jobs.spare.try_send(set);
                touched += 1;
            }
        }
        failed = outcome.is_err();
        let _ = outcomes.send(outcome.map_err(|e| (step, e)));
    }
    if in_use != threads {
        let _ = insitu::set_threads(threads); // as this writer left it for the process's others
    }
    // Close even after a failure: the steps completed before it stay readable.
    engine.close()
}

/// Collective: hands every residuum operator of this engine the rank's and the global value
/// range of its field for the coming step (ignored by operators with other `range` settings).
/// Returns the largest `need` (bytes this rank's step may write) over the ranks, from the same
/// all-reduce, which also tells every rank whether any lacks its `fields` (None): then the step
/// fails on all of them.
fn hand_over_ranges(
    comm: &SimpleCommunicator,
    specs: &[FieldSpec],
    target: &str,
    fields: Option<&[FieldData]>,
    need: u64,
) -> Result<u64> {
    let local: Vec<(f64, f64)> = match fields {
        Some(fields) => (fields.iter().zip(specs))
            .map(|(f, s)| f.min_max(s.fill))
            .collect(),
        None => vec![(f64::INFINITY, f64::NEG_INFINITY); specs.len()],
    };
    // One all-reduce for all fields: minima and negated maxima, reduced with MIN (the need as
    // a negated f64: exact below 2^53 bytes, and only compared against free space), and the
    // first rank that lacks its fields (exact as an f64).
    let send: Vec<f64> = local
        .iter()
        .flat_map(|&(lo, hi)| [lo, -hi])
        .chain([-(need as f64)])
        .chain([agree::failure_flag(comm, fields.is_some()) as f64])
        .collect();
    let mut global = vec![0.0f64; send.len()];
    comm.all_reduce_into(&send[..], &mut global[..], SystemOperation::min());
    let first_failed = global[send.len() - 1];
    if first_failed < comm.size() as f64 {
        return Err(AdiosError::OtherRank {
            rank: first_failed as i32,
            what: "its part of the step",
        });
    }
    let span = |lo: f64, hi: f64| crate::bound::span((lo, hi));
    for (i, s) in specs.iter().enumerate() {
        let rank = span(local[i].0, local[i].1);
        let all = span(global[2 * i], -global[2 * i + 1]);
        for (kind, r) in [(RangeUsed::Rank, rank), (RangeUsed::Global, all)] {
            match insitu::set_range(target, &s.name, kind, r) {
                Ok(()) => {}
                Err(crate::Error::Io(e)) if e.kind() == IoErrorKind::NoPlugin => {}
                Err(e) => return Err(AdiosError::Argument(e.to_string())),
            }
        }
    }
    Ok(-global[send.len() - 2] as u64)
}
