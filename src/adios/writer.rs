//! A step writer for simulations: hand over a step's fields and go on computing while a
//! background thread, which owns the ADIOS2 engine, does BeginStep/Put/EndStep.
//!
//! - Bounded queue: at most `queue` handed-over steps wait; a further `write_step` blocks until
//!   one is written (back-pressure keeps memory bounded). `queue = 0` writes synchronously.
//! - Mode ([`WriteMode`]): by default asynchronous only where the rank owns a core to spare for
//!   compressing, else synchronous (said once).
//! - Ranges: before each step the writer hands the residuum operators the rank's and, through an
//!   MPI all-reduce, the global value range of every field, for `range=rank|global`.
//! - Statistics: each written step's sizes, achieved NRMSE, range and time come back through
//!   [`StepWriter::take_stats`] and, with `log`, on rank 0's standard error.
//! - Errors of step N surface at the `write_step` of step N + queue + 1 or at
//!   [`StepWriter::close`], on every rank at the same call, also where only one rank's part
//!   failed (see `agree`; a field handed over with the wrong length fails its step so too);
//!   the writer then writes no further step but still closes the engine, so every completed
//!   step stays readable. Nothing queued before `close` is dropped. What `agree` cannot cover
//!   is a failure inside ADIOS2's own collectives on one rank (a put its operator refuses).
//! - Buffers: [`StepWriter::buffers`] hands out a written step's buffers for the next one, so a
//!   simulation that fills them neither allocates nor faults in fresh pages each step (Gray-Scott
//!   96^3: 1-2 ms per output step on the simulation's core, against 4-6 ms into new vectors).
//! - Lending: [`StepWriter::lend_step`] moves even that copy to the writer's core, for
//!   simulations whose arrays stay unchanged for a step after output (see `loan`).
//! - Room: before each step of a file engine, the ranks agree that it fits (see `space`), so
//!   that ADIOS2 never meets a full disk inside its collectives.
//!
//! The writer thread makes MPI calls (ADIOS2's collectives, the all-reduces) while the
//! application may make its own, so asynchronous writing needs `MPI_THREAD_MULTIPLE` and
//! synchronous writing `MPI_THREAD_SERIALIZED`; `open` checks.

use super::loan::{current_cpu, start_filler, FieldMut, Handed, Lent, Loan, ToFill};
use super::stats::StepStats;
use super::write_thread::{writer_thread, Jobs, Outcome, Step};
use super::{agree, AdiosError, FieldData, FieldSpec, Result, WriteMode};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Steps whose statistics a writer keeps until taken (about 150 bytes a field a step): a run
/// that never takes them, or takes them only at `close`, gets the last this many.
pub const STATS_KEPT: usize = 4096;

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// ADIOS2 XML configuration (engine and operators per IO).
    pub config: Option<PathBuf>,
    /// The IO of the configuration to use.
    pub io: String,
    /// File (BP5) or stream (SST) name.
    pub target: String,
    /// Steps that may wait for the writer thread when writing asynchronously (at most
    /// 1024); 0 writes synchronously, unless `mode` is `Async` (then one step may wait). The
    /// ranks use the least of theirs.
    pub queue: usize,
    /// Synchronous, asynchronous, or (default) decided from the cores the rank owns; where
    /// the ranks decide differently, all write synchronously.
    pub mode: WriteMode,
    /// Rank 0 prints each step's statistics to standard error (where any rank sets this).
    pub log: bool,
    /// Threads for the residuum operators (whose `threads` parameter is 0). None: all cores the
    /// rank owns when writing synchronously, one fewer (at least one) asynchronously, as the
    /// simulation keeps computing on its own thread meanwhile; all of them again for the steps
    /// still queued once the application waits in `close`.
    pub threads: Option<usize>,
}

/// The application's handle on the writer thread. Close it before MPI is finalized.
pub struct StepWriter {
    specs: Vec<FieldSpec>,
    jobs: Option<Sender<Step>>,
    closing: Arc<AtomicBool>,
    spare: Receiver<Vec<FieldData>>,
    recycling: Arc<AtomicBool>,
    outcomes: Receiver<Outcome>,
    thread: Option<JoinHandle<Result<()>>>,
    next_step: usize,
    written: usize,
    /// The last [`STATS_KEPT`] steps' statistics not yet taken.
    stats: VecDeque<StepStats>,
    /// The first failed step and its error.
    failed: Option<(usize, AdiosError)>,
    /// Steps that may wait for the writer thread (0: synchronous).
    queue: usize,
    /// An async writer's filler thread, started by the first `lend_step`.
    filler: Option<(Sender<ToFill>, JoinHandle<()>)>,
}

/// The communicator, moved to the writer thread.
struct CommForThread(SimpleCommunicator);
// SAFETY: an MPI communicator handle may be used from any thread once MPI provides the thread
// level checked in `open`; only the writer thread uses this duplicate.
unsafe impl Send for CommForThread {}

impl StepWriter {
    /// Collective over `comm`: starts the writer thread, which sets up ADIOS2 on a duplicate of
    /// `comm`, defines the fields and opens the engine. Errors of that setup are returned here,
    /// on every rank where any rank's own checks fail (see `agree`).
    pub fn open<C: Communicator>(
        comm: &C,
        specs: Vec<FieldSpec>,
        opts: WriterOptions,
    ) -> Result<Self> {
        Self::start(comm.duplicate(), specs, opts)
    }

    /// Whether steps are written asynchronously (the mode as resolved when opening).
    pub fn is_async(&self) -> bool {
        self.queue > 0
    }

    /// [`StepWriter::open`] for the C API: on a duplicate of the raw communicator `comm`.
    ///
    /// # Safety
    /// `comm` is a live intra-communicator handle.
    pub(crate) unsafe fn open_raw(
        comm: mpi::ffi::MPI_Comm,
        specs: Vec<FieldSpec>,
        opts: WriterOptions,
    ) -> Result<Self> {
        // SAFETY: per this function's contract.
        Self::start(unsafe { duplicate_raw(comm) }?, specs, opts)
    }

    /// Collective as [`StepWriter::open_raw`], on a rank whose own arguments were refused before
    /// it had fields to open with (the C API's): every rank's opening fails, the others naming
    /// this one, where they would otherwise wait for it.
    ///
    /// # Safety
    /// `comm` is a live intra-communicator handle.
    pub(crate) unsafe fn refuse_open_raw(comm: mpi::ffi::MPI_Comm) {
        // SAFETY: per this function's contract.
        if let Ok(dup) = unsafe { duplicate_raw(comm) } {
            agree::refuse_open(&dup);
        }
    }

    fn start(
        comm: SimpleCommunicator,
        mut specs: Vec<FieldSpec>,
        mut opts: WriterOptions,
    ) -> Result<Self> {
        let agree::Opening {
            checked,
            queue,
            log,
            cores,
        } = agree::to_open(&comm, &mut specs, &opts)?;
        if log && comm.rank() == 0 && queue == 0 && opts.queue > 0 && opts.mode == WriteMode::Auto {
            eprintln!(
                "residuum writer: a rank owns {cores} core: writing synchronously (an async \
                 writer would only take turns with the simulation; give ranks 2 cores, e.g. \
                 mpirun --map-by slot:PE=2, for it to compress alongside)"
            );
        }
        (opts.queue, opts.log) = (queue, log);
        let comm = CommForThread(comm);
        let (jobs, job_rx) = bounded::<Step>(opts.queue);
        let (out_tx, outcomes) = unbounded::<Outcome>();
        let (ready_tx, ready_rx) = bounded::<Result<()>>(1);
        let thread_specs = specs.clone();
        let queue = opts.queue;
        let closing = Arc::new(AtomicBool::new(false));
        // As many steps as can be under way at once: the queue's and the one being written.
        let (spare_tx, spare) = bounded::<Vec<FieldData>>(opts.queue + 1);
        let recycling = Arc::new(AtomicBool::new(false));
        let job_rx = Jobs {
            steps: job_rx,
            closing: closing.clone(),
            spare: spare_tx,
            recycling: recycling.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("residuum-writer".into())
            .spawn(move || {
                let comm = comm;
                writer_thread(
                    &comm.0,
                    &thread_specs,
                    &opts,
                    checked,
                    job_rx,
                    out_tx,
                    ready_tx,
                )
            })
            .map_err(|e| AdiosError::Argument(format!("cannot start the writer thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => AdiosError::Argument("the writer thread failed to start".into()),
                })
            }
        }
        Ok(StepWriter {
            specs,
            jobs: Some(jobs),
            closing,
            spare,
            recycling,
            outcomes,
            thread: Some(thread),
            next_step: 0,
            written: 0,
            stats: VecDeque::new(),
            failed: None,
            queue,
            filler: None,
        })
    }

    /// Collects what the writer thread finished; the first error fails the writer.
    fn collect(&mut self, wait_for: Option<usize>) {
        loop {
            let outcome = match wait_for {
                Some(step) if self.written <= step && self.failed.is_none() => {
                    match self.outcomes.recv() {
                        Ok(o) => o,
                        Err(_) => break,
                    }
                }
                _ => match self.outcomes.try_recv() {
                    Ok(o) => o,
                    Err(_) => break,
                },
            };
            match outcome {
                Ok(s) => {
                    self.written = s.step + 1;
                    if self.stats.len() == STATS_KEPT {
                        self.stats.pop_front();
                    }
                    self.stats.push_back(s);
                }
                Err((step, e)) => {
                    if self.failed.is_none() {
                        let e = AdiosError::Step {
                            step,
                            source: Box::new(e),
                        };
                        self.failed = Some((step, e));
                    }
                }
            }
        }
    }

    /// The error of a failed step up to `last`, once that step's outcome is in. Waiting for a
    /// fixed step, not for whatever has arrived, makes every rank see a (collective) failure at
    /// the same call, so that no rank goes on into communication the others have left.
    fn check_through(&mut self, last: usize) -> Result<()> {
        self.collect(Some(last));
        match &self.failed {
            Some((step, e)) if *step <= last => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Hands over the next step's fields (in the order of the specs) and returns its index.
    /// Blocks while the queue is full; a synchronous writer returns once the step is written.
    /// Fails with the error of an earlier step, if one failed: step N's error comes from the
    /// call for step N + queue + 1 (the first that waits for step N's outcome), on every rank.
    /// Fields that do not match the specs fail the step on every rank: this call returns the
    /// error, the other ranks' calls as for any failed step.
    pub fn write_step(&mut self, fields: Vec<FieldData>) -> Result<usize> {
        self.check_earlier()?;
        if let Err(e) = self.check_fields(&fields) {
            self.refuse_step(e.clone());
            return Err(e);
        }
        self.hand_over(Handed::Copied(fields))
    }

    /// Fails the next step on every rank with `e`, an error of this rank's part of it found
    /// before it was handed over (fields that do not match, or the C API's arguments): still a
    /// step for the writer thread, as the other ranks' threads wait for this rank's part of it.
    pub(crate) fn refuse_step(&mut self, e: AdiosError) {
        if self.check_earlier().is_ok() {
            let _ = self.hand_over(Handed::Refused(e));
        }
    }

    fn check_fields(&self, fields: &[FieldData]) -> Result<()> {
        if fields.len() != self.specs.len() {
            return Err(AdiosError::Argument(format!(
                "{} fields handed over, {} defined",
                fields.len(),
                self.specs.len()
            )));
        }
        for (f, s) in fields.iter().zip(&self.specs) {
            let want = s.local_len();
            let right_type = matches!(f, FieldData::F64(_)) == s.double;
            if f.len() != want || !right_type {
                return Err(AdiosError::Argument(format!(
                    "field '{}': {} {} values handed over, its box holds {want} {}",
                    s.name,
                    f.len(),
                    if matches!(f, FieldData::F64(_)) {
                        "double"
                    } else {
                        "float"
                    },
                    if s.double { "double" } else { "float" }
                )));
            }
        }
        Ok(())
    }

    /// [`StepWriter::write_step`] without copying the step on this thread: `fill` writes every
    /// value of each field's buffer (in the order of the specs, each exactly its box), reading
    /// arrays it shares with the application, such as clones of an `Arc`. The writer thread
    /// runs it as soon as it takes the step. Settle the returned [`Loan`] before changing those
    /// arrays: it runs `fill` on this thread only where the writer has not yet, and drops it.
    ///
    /// An async writer runs `fill` at once on a thread of its own (started by the first call),
    /// beside the compression of earlier steps. A simulation that swaps two arrays per step
    /// leaves the one just computed unchanged for the next step, so it settles before the step
    /// after that, and the copy is done on the writer's core. A synchronous writer fills and
    /// writes the step before this returns.
    pub fn lend_step<F>(&mut self, fill: F) -> Result<Loan>
    where
        F: FnOnce(&mut [FieldMut<'_>]) + Send + 'static,
    {
        self.check_earlier()?;
        let lens = self.specs.iter().map(FieldSpec::local_len).collect();
        let (lent, loan) = Lent::new(self.next_step, Box::new(fill), self.spare_set(), lens);
        if self.queue > 0 && self.filler.is_none() {
            let started = start_filler().map_err(|e| {
                AdiosError::Argument(format!("cannot start the writer's filler thread: {e}"))
            })?;
            self.filler = Some(started);
        }
        if let Some((filler, _)) = &self.filler {
            // Gone only with the thread, which ends with the writer: the writer fills then.
            let _ = filler.send((lent.share(), current_cpu()));
        }
        if let Err(e) = self.hand_over(Handed::Lent(lent)) {
            loan.discard();
            return Err(e);
        }
        Ok(loan)
    }

    /// The error of the step the next one waits for, if it failed (see `write_step`).
    fn check_earlier(&mut self) -> Result<()> {
        match self.next_step.checked_sub(self.queue + 1) {
            Some(last) => self.check_through(last),
            None => Ok(()),
        }
    }

    fn hand_over(&mut self, fields: Handed) -> Result<usize> {
        let step = self.next_step;
        let jobs = self.jobs.as_ref().expect("open until closed");
        if jobs.send((step, Instant::now(), fields)).is_err() {
            // The thread ended early: its error is on the way.
            self.collect(Some(step));
            return Err(self
                .failed
                .as_ref()
                .map(|(_, e)| e.clone())
                .unwrap_or_else(|| AdiosError::Argument("the writer thread stopped".into())));
        }
        self.next_step += 1;
        if self.queue == 0 {
            self.check_through(step)?;
        }
        Ok(step)
    }

    /// Empty buffers for the next step's fields, in the order `write_step` takes them, each with
    /// room for its box: the buffers of a step already written where one is back (their memory
    /// is mapped already), new ones otherwise. Filling these instead of fresh vectors spares the
    /// simulation an allocation and its page faults per field and step. Once this is called, an
    /// async writer also makes, while idle, the other sets it can have under way (queue + 1,
    /// so memory for queue + 2 steps of the fields in all), so that no step allocates when the
    /// writer lags behind.
    pub fn buffers(&mut self) -> Vec<FieldData> {
        let mut set = self.spare_set();
        for (b, s) in set.iter_mut().zip(&self.specs) {
            b.clear_for(s.local_len());
        }
        set
    }

    /// A set of buffers for the next step, one per field of its type: one that is back where
    /// there is, new ones otherwise. Asking starts the recycling (see `Jobs`).
    fn spare_set(&mut self) -> Vec<FieldData> {
        self.recycling.store(true, Ordering::Relaxed);
        let back = self.spare.try_recv().ok();
        let mut back = back.into_iter().flatten();
        self.specs
            .iter()
            .map(|s| match back.next() {
                Some(b) if b.is_double() == s.double => b,
                _ => FieldData::with_capacity(s, s.local_len()),
            })
            .collect()
    }

    /// Statistics of the steps written since the last call: the last [`STATS_KEPT`] of them
    /// (each names its step), so that a run that never takes them keeps bounded memory.
    pub fn take_stats(&mut self) -> Vec<StepStats> {
        self.collect(None);
        std::mem::take(&mut self.stats).into()
    }

    /// The fields, in the order `write_step` takes them.
    pub fn specs(&self) -> &[FieldSpec] {
        &self.specs
    }

    /// Steps handed over so far.
    pub fn steps(&self) -> usize {
        self.next_step
    }

    /// Collective: writes every step still queued, closes the engine and returns the
    /// statistics not yet taken (as `take_stats`), or the first error (of a step or of closing).
    pub fn close(mut self) -> Result<Vec<StepStats>> {
        let closed = self.shut_down();
        self.collect(None);
        if let Some((_, e)) = self.failed.take() {
            return Err(e);
        }
        closed?;
        Ok(std::mem::take(&mut self.stats).into())
    }

    fn shut_down(&mut self) -> Result<()> {
        self.closing.store(true, Ordering::Release);
        self.jobs = None; // the thread writes what is queued, then closes
        if let Some((filler, thread)) = self.filler.take() {
            drop(filler); // it fills what was sent, then ends
            let _ = thread.join(); // a fill that panicked is the application's to report
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(AdiosError::Argument("the writer thread panicked".into())),
            None => Ok(()),
        }
    }
}

/// A duplicate of the raw communicator `comm`, owned by the writer.
///
/// SAFETY (callers): `comm` is a live intra-communicator handle.
unsafe fn duplicate_raw(comm: mpi::ffi::MPI_Comm) -> Result<SimpleCommunicator> {
    let mut dup = std::mem::MaybeUninit::<mpi::ffi::MPI_Comm>::uninit();
    // SAFETY: `comm` is live per the contract; MPI_Comm_dup writes `dup` on success.
    if unsafe { mpi::ffi::MPI_Comm_dup(comm, dup.as_mut_ptr()) } != 0 {
        return Err(AdiosError::Argument("MPI_Comm_dup failed".into()));
    }
    // SAFETY: a fresh intra-communicator owned by nobody else from here on.
    Ok(unsafe { <SimpleCommunicator as mpi::raw::FromRaw>::from_raw(dup.assume_init()) })
}

impl Drop for StepWriter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // What `close` would have returned: a failed step's error first (before, only
            // closing's was said, and a step that failed in the last queue + 1 went unsaid).
            let closed = self.shut_down();
            self.collect(None);
            if let Some(e) = self.failed.take().map(|(_, e)| e).or(closed.err()) {
                // One write for the line: stderr is unbuffered and `eprintln!` writes a line's
                // pieces one by one, so two ranks' lines were interleaved mid-line.
                let line = format!("residuum: step writer dropped without close: {e}\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            }
        }
    }
}
