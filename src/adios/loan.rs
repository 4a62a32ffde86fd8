//! Lending a step instead of copying it ([`super::StepWriter::lend_step`]): the application
//! hands over a closure that copies the step's fields out of arrays it shares (an `Arc`), and
//! goes on computing. An async writer's filler thread runs the closure at once, beside the
//! writer thread's compression (the writer thread itself would get to it only after the steps
//! before: at Gray-Scott 96^3 with output every 10 steps, half the steps came due before it
//! had); before the application changes those arrays it settles the [`Loan`], which runs the
//! closure on the application's thread only where nobody has yet. Either way it runs once, into
//! the step's buffers, and is dropped with what it holds right after.
//!
//! Why: copying a step out of a simulation's arrays is memory-bound work on the simulation's
//! core (Gray-Scott 96^3: 1-2 ms per output step, 1-3 % of a run writing every 10 steps). A
//! simulation that keeps its state in two arrays it swaps each step leaves the written one
//! unchanged for a whole step, which is time enough for the writer thread to copy it.

use super::{AdiosError, FieldData};
use crossbeam_channel::{unbounded, Sender};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// One field's buffer for a lent step to be filled: exactly its box's values, C order.
pub enum FieldMut<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

/// Fills a step's fields, in the order of the writer's specs.
pub(super) type Fill = Box<dyn FnOnce(&mut [FieldMut<'_>]) + Send>;

struct State {
    fill: Option<Fill>,
    /// The step's buffers, each of its box's length once filled.
    fields: Vec<FieldData>,
    lens: Vec<usize>,
    /// The fill panicked: the step is not written, and the panic goes on in the application
    /// when it settles the loan (the payload, until then).
    panicked: bool,
    payload: Option<Box<dyn std::any::Any + Send>>,
}

impl State {
    /// Runs the fill if nobody has yet; whether this call ran it. A panic in it is caught
    /// here, so that no thread of the writer dies of the application's code.
    fn fill(&mut self) -> bool {
        let Some(fill) = self.fill.take() else {
            return false;
        };
        for (b, &n) in self.fields.iter_mut().zip(&self.lens) {
            b.set_len_zeroed(n);
        }
        let mut views: Vec<FieldMut<'_>> = self.fields.iter_mut().map(FieldData::view).collect();
        let ran = std::panic::catch_unwind(AssertUnwindSafe(move || fill(&mut views)));
        if let Err(payload) = ran {
            self.panicked = true;
            self.payload = Some(payload);
        }
        true
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Panics in a fill are caught under the lock, so it is not poisoned by them.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drops a step's fill unrun: its step will not be written, and settling it costs nothing.
fn drop_fill(state: &Mutex<State>) {
    lock(state).fill = None;
}

/// The writer's side of a lent step.
pub(super) struct Lent(Arc<Mutex<State>>);

/// A lent step for the filler, and the CPU the application lent it from (-1: unknown).
pub(super) type ToFill = (Lent, i32);

/// Starts the thread that fills lent steps as they come, until the sender is dropped.
pub(super) fn start_filler() -> std::io::Result<(Sender<ToFill>, JoinHandle<()>)> {
    let (tx, rx) = unbounded::<ToFill>();
    let thread = std::thread::Builder::new()
        .name("residuum-filler".into())
        .spawn(move || {
            let owned = affinity();
            let mut avoided = -1;
            for (lent, cpu) in rx {
                if let (Some(owned), true) = (&owned, cpu != avoided) {
                    avoid_cpu(owned, cpu);
                    avoided = cpu;
                }
                lock(&lent.0).fill();
            }
        })?;
    Ok((tx, thread))
}

/// The CPU this thread runs on, -1 where unknown.
pub(super) fn current_cpu() -> i32 {
    // SAFETY: no arguments; returns -1 on failure.
    unsafe { libc::sched_getcpu() }
}

/// This thread's CPU affinity (as inherited: the rank's), None where unknown.
fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data, valid zeroed; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes of it; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        (libc::sched_getaffinity(0, size, &mut set) == 0).then_some(set)
    }
}

/// Runs this thread on the `owned` CPUs but `cpu`, where that leaves any. The kernel wakes the
/// filler next to the application's thread that woke it, and it then copied on the
/// simulation's core: in 1 of 5 Gray-Scott runs, 18 of 20 steps were filled on the CPU the
/// application lent them from.
fn avoid_cpu(owned: &libc::cpu_set_t, cpu: i32) {
    let mut set = *owned;
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if let Ok(cpu) = usize::try_from(cpu) {
        if cpu < 8 * size {
            // SAFETY: cpu is within the set.
            unsafe { libc::CPU_CLR(cpu, &mut set) };
        }
    }
    // SAFETY: as in `affinity`; sched_setaffinity reads `size` bytes of `set`.
    unsafe {
        if libc::CPU_COUNT(&set) > 0 {
            libc::sched_setaffinity(0, size, &set);
        }
    }
}

impl Lent {
    /// The lent step and the application's handle on it.
    pub(super) fn new(
        step: usize,
        fill: Fill,
        fields: Vec<FieldData>,
        lens: Vec<usize>,
    ) -> (Self, Loan) {
        let state = Arc::new(Mutex::new(State {
            fill: Some(fill),
            fields,
            lens,
            panicked: false,
            payload: None,
        }));
        (Lent(state.clone()), Loan { state, step })
    }

    /// Another handle on the same step, for the filler thread.
    pub(super) fn share(&self) -> Lent {
        Lent(self.0.clone())
    }

    /// The step's fields, filled here unless the filler or the application did already; None
    /// where the fill panicked.
    pub(super) fn into_fields(self) -> Option<Vec<FieldData>> {
        let mut s = lock(&self.0);
        s.fill();
        (!s.panicked).then(|| std::mem::take(&mut s.fields))
    }

    /// A step that will not be written (the writer failed): the application's arrays are
    /// free at once.
    pub(super) fn discard(self) {
        drop_fill(&self.0);
    }
}

/// A step handed over to the writer thread: copied by the application, or lent.
pub(super) enum Handed {
    Copied(Vec<FieldData>),
    Lent(Lent),
    /// Fields `write_step` refused on this rank: the step fails on every rank.
    Refused(AdiosError),
}

impl Handed {
    /// The step's fields, or why there are none.
    pub(super) fn into_fields(self, step: usize) -> Result<Vec<FieldData>, AdiosError> {
        match self {
            Handed::Copied(f) => Ok(f),
            Handed::Refused(e) => Err(e),
            Handed::Lent(l) => l.into_fields().ok_or_else(|| {
                AdiosError::Argument(format!("the fill lent for step {step} panicked"))
            }),
        }
    }
}

/// The application's handle on a lent step: settle it before changing what its fill reads.
/// Dropping it settles it too.
#[must_use = "a loan must be settled before the arrays its fill reads change"]
pub struct Loan {
    state: Arc<Mutex<State>>,
    step: usize,
}

impl Loan {
    /// The step's index, as `write_step` would have returned it.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Makes sure the step's values are out of the arrays its fill reads, and drops the fill
    /// (and with it whatever it holds, such as clones of an `Arc`): runs it here where the
    /// writer thread has not, waits where the writer is running it. Returns whether it ran
    /// here: the copy the loan was to spare this thread. A panic of the fill, wherever it
    /// ran, goes on here.
    pub fn settle(self) -> bool {
        self.settle_here()
    }

    fn settle_here(&self) -> bool {
        let (ran, payload) = {
            let mut s = lock(&self.state);
            (s.fill(), s.payload.take())
        };
        if let (Some(p), false) = (payload, std::thread::panicking()) {
            std::panic::resume_unwind(p);
        }
        ran
    }

    /// A loan whose step was not handed over.
    pub(super) fn discard(self) {
        drop_fill(&self.state);
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        self.settle_here();
    }
}
