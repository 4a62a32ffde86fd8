//! The step writer's buffers (`StepWriter::buffers`): a written step's memory comes back for the
//! next step, and steps written from reused buffers read back exactly as they were filled, with
//! the synchronous and the asynchronous writer; an idle async writer makes the other sets it can
//! have under way with their memory in place; lent steps (`StepWriter::lend_step`) are copied
//! by the writer thread unless the application settles them first, and read back as they were
//! before the application changed its arrays; statistics never taken keep to the last steps. One
//! MPI process (a singleton, no mpirun).

mod common;

use residuum::adios::{
    Adios, FieldData, FieldMut, FieldSpec, OpenMode, StepStatus, StepWriter, WriteMode,
    WriterOptions, STATS_KEPT,
};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

const N: usize = 4096;
const STEPS: usize = 6;

/// Field `f`'s values at `step`: distinct per field and step.
fn values(f: usize, step: usize) -> impl Iterator<Item = f32> {
    (0..N).map(move |i| (i + 7919 * step + 104_729 * f) as f32 * 0.5)
}

/// A writer of two float fields A and B of `n` values each, with a queue of 2 steps.
fn open(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
    n: usize,
    mode: WriteMode,
) -> StepWriter {
    let spec = |name: &str| FieldSpec {
        name: name.into(),
        shape: vec![n],
        start: vec![0],
        count: vec![n],
        double: false,
        fill: None,
    };
    let opts = WriterOptions {
        config: None,
        io: "out".into(),
        target: file.to_str().unwrap().into(),
        queue: 2,
        mode,
        log: false,
        threads: None,
    };
    StepWriter::open(world, vec![spec("A"), spec("B")], opts).unwrap()
}

/// Writes STEPS steps of two fields from the writer's buffers; returns each step's buffer
/// addresses.
fn write(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
    mode: WriteMode,
) -> Vec<[usize; 2]> {
    let mut w = open(world, file, N, mode);
    let (mut addresses, mut decoys) = (Vec::new(), Vec::new());
    for step in 0..STEPS {
        // Allocations of the same size, kept: were the written step's buffers freed, not
        // kept for reuse, these would take their memory.
        decoys.extend((0..2).map(|_| vec![0f32; N]));
        let mut fields = w.buffers();
        let mut at = [0; 2];
        for (f, b) in fields.iter_mut().enumerate() {
            let FieldData::F32(b) = b else {
                panic!("a float field's buffer must hold floats")
            };
            assert!(
                b.is_empty() && b.capacity() >= N,
                "step {step}: {}",
                b.len()
            );
            b.extend(values(f, step));
            at[f] = b.as_ptr() as usize;
        }
        addresses.push(at);
        w.write_step(fields).unwrap();
    }
    w.close().unwrap();
    addresses
}

fn read_back(file: &Path) {
    let adios = Adios::serial(None).unwrap();
    let io = adios.declare_io("reader").unwrap();
    let mut r = io.open(file.to_str().unwrap(), OpenMode::Read).unwrap();
    let mut step = 0;
    while r.begin_step(-1.0).unwrap() == StepStatus::Ok {
        for (f, name) in ["A", "B"].into_iter().enumerate() {
            let v = io.inquire_variable::<f32>(name).unwrap();
            let got = r.get(&v).unwrap();
            assert!(
                got.iter().copied().eq(values(f, step)),
                "{name}, step {step}"
            );
        }
        r.end_step().unwrap();
        step += 1;
    }
    r.close().unwrap();
    assert_eq!(step, STEPS);
}

#[test]
fn written_steps_lend_their_buffers_to_the_next_and_read_back_as_filled() {
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Multiple).unwrap();
    let world = universe.world();
    let dir = tempfile::tempdir().unwrap();

    // Synchronous: each step is written before `write_step` returns, so every later step
    // fills the previous step's memory.
    let file = dir.path().join("sync.bp");
    let at = write(&world, &file, WriteMode::Sync);
    for step in 1..STEPS {
        assert_eq!(at[step], at[step - 1], "step {step}: fresh buffers");
    }
    assert_ne!(at[0][0], at[0][1]);
    read_back(&file);

    // Asynchronous: the writer thread still compresses and writes earlier steps while later
    // ones are filled; a buffer comes back only once its step is written.
    let file = dir.path().join("async.bp");
    let at = write(&world, &file, WriteMode::Async);
    // With 2 steps queued, the fourth waits for the first to be written, whose buffers are
    // then spare: a later step fills them.
    assert!(
        (1..STEPS).any(|step| at[..step].contains(&at[step])),
        "no async step reused a written step's buffers: {at:?}"
    );
    read_back(&file);

    idle_async_writer_makes_the_sets_it_can_have_under_way(&world, &dir.path().join("idle.bp"));

    lent_steps_are_copied_once_by_whoever_comes_first(&world, &dir.path().join("lent.bp"));
    lent_steps_of_a_synchronous_writer_are_written_on_return(&world, &dir.path().join("ls.bp"));
    a_lent_fill_that_panics_fails_its_step(&world, &dir.path().join("panic.bp"));
    absurd_queues_and_boxes_are_refused_when_opening(&world, &dir.path().join("absurd.bp"));
    the_operations_fill_stays_out_of_the_handed_range(&world, dir.path());
    statistics_never_taken_are_the_last_steps(&world, &dir.path().join("stats.bp"));
}

/// A run that never takes its statistics keeps those of the last `STATS_KEPT` steps, not of
/// every step for the process's life.
fn statistics_never_taken_are_the_last_steps(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
) {
    let mut w = open(world, file, 1, WriteMode::Sync);
    let steps = STATS_KEPT + 3;
    for step in 0..steps {
        let fields = vec![FieldData::F32(vec![step as f32]); 2];
        w.write_step(fields).unwrap();
    }
    let stats = w.close().unwrap();
    let kept: Vec<usize> = stats.iter().map(|s| s.step).collect();
    assert!(
        kept.iter().copied().eq(3..steps),
        "{} steps kept, from {:?} to {:?}",
        kept.len(),
        kept.first(),
        kept.last()
    );
}

/// `fill=` in the configuration's operation reaches the range the writer hands over for
/// `range=global`, and a different fill in the field's spec is refused: 1e20 in the range
/// resolved nrmse=1e-3 against ~1e20, which reconstructed the ramp as all zeros.
fn the_operations_fill_stays_out_of_the_handed_range(
    world: &mpi::topology::SimpleCommunicator,
    dir: &Path,
) {
    std::env::set_var("ADIOS2_PLUGIN_PATH", common::plugin_dir());
    let params = [("nrmse", "1e-3"), ("range", "global"), ("fill", "1e20")];
    let xml = common::write_xml(dir, &["A"], &params);
    let file = dir.join("fill.bp");
    let spec = |fill: Option<f64>| FieldSpec {
        name: "A".into(),
        shape: vec![N],
        start: vec![0],
        count: vec![N],
        double: false,
        fill,
    };
    let opts = || WriterOptions {
        config: Some(xml.clone()),
        io: "writer".into(),
        target: file.to_str().unwrap().into(),
        queue: 0,
        mode: WriteMode::Sync,
        log: false,
        threads: None,
    };
    let e = match StepWriter::open(world, vec![spec(Some(-999.0))], opts()) {
        Ok(_) => panic!("opened with a fill other than its operation's"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("differs from its operation's fill=1e20"), "{e}");
    // A ramp over [0, 1) with every 16th value missing.
    let ramp: Vec<f32> = (0..N)
        .map(|i| {
            if i % 16 == 0 {
                1e20
            } else {
                i as f32 / N as f32
            }
        })
        .collect();
    let mut w = StepWriter::open(world, vec![spec(None)], opts()).unwrap();
    w.write_step(vec![FieldData::F32(ramp.clone())]).unwrap();
    let stats = w.close().unwrap();
    let c = stats[0].fields[0].compression.as_ref().unwrap();
    assert!(c.range < 1.0, "resolved against a range of {}", c.range);
    let adios = Adios::serial(None).unwrap();
    let io = adios.declare_io("reader").unwrap();
    let mut r = io.open(file.to_str().unwrap(), OpenMode::Read).unwrap();
    assert_eq!(r.begin_step(-1.0).unwrap(), StepStatus::Ok);
    let got = r.get(&io.inquire_variable::<f32>("A").unwrap()).unwrap();
    r.end_step().unwrap();
    r.close().unwrap();
    for (i, (g, want)) in got.iter().zip(&ramp).enumerate() {
        let ok = match i % 16 {
            0 => g.to_bits() == want.to_bits(),
            _ => (g - want).abs() < 0.01,
        };
        assert!(ok, "value {i}: {g} for {want}");
    }
}

/// A queue whose slots cannot be allocated, and a box whose end overflows, are errors of
/// `open` (the queue's slots were allocated at once: an abort for 2^40 steps).
fn absurd_queues_and_boxes_are_refused_when_opening(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
) {
    let spec = |start: usize| FieldSpec {
        name: "A".into(),
        shape: vec![N],
        start: vec![start],
        count: vec![2],
        double: false,
        fill: None,
    };
    let opts = |queue: usize| WriterOptions {
        config: None,
        io: "out".into(),
        target: file.to_str().unwrap().into(),
        queue,
        mode: WriteMode::Async,
        log: false,
        threads: None,
    };
    let refused =
        |spec: FieldSpec, queue: usize| match StepWriter::open(world, vec![spec], opts(queue)) {
            Ok(_) => panic!("opened with a queue of {queue}"),
            Err(e) => e.to_string(),
        };
    let e = refused(spec(0), 1 << 40);
    assert!(e.contains("at most 1024"), "{e}");
    let e = refused(spec(usize::MAX), 2);
    assert!(e.contains("exceeds the shape"), "{e}");
}

/// Each step's arrays, shared as a simulation lending them would share them.
fn arrays(step: usize) -> [Arc<Vec<f32>>; 2] {
    [0, 1].map(|f| Arc::new(values(f, step).collect()))
}

/// Which thread ran each step's fill.
type Ran = Arc<Mutex<Vec<(usize, String)>>>;

/// A fill copying `a` into the step's two fields, noting the thread it runs on; it waits for
/// `gate` first where there is one.
fn fill_from(
    a: &[Arc<Vec<f32>>; 2],
    step: usize,
    ran: &Ran,
    gate: Option<mpsc::Receiver<()>>,
) -> impl FnOnce(&mut [FieldMut<'_>]) + Send + 'static {
    let (a, ran) = (a.clone(), ran.clone());
    move |fields| {
        if let Some(g) = gate {
            g.recv().unwrap();
        }
        let name = std::thread::current().name().unwrap_or("").to_string();
        ran.lock().unwrap().push((step, name));
        for (b, a) in fields.iter_mut().zip(&a) {
            let FieldMut::F32(b) = b else {
                panic!("a float field's buffer must hold floats")
            };
            b.copy_from_slice(a);
        }
    }
}

fn ran_on(ran: &Ran, step: usize) -> String {
    let ran = ran.lock().unwrap();
    let mut on = ran
        .iter()
        .filter(|(s, _)| *s == step)
        .map(|(_, n)| n.clone());
    let first = on
        .next()
        .unwrap_or_else(|| panic!("step {step}: fill never ran"));
    assert!(on.next().is_none(), "step {step}: fill ran twice");
    first
}

/// Whether `name` is one of the writer's threads (its filler, or the writer thread itself).
fn writers(name: &str) -> bool {
    name == "residuum-filler" || name == "residuum-writer"
}

/// Async: step 0's fill waits (on a writer's thread) until step 1 is settled, so step 1's fill
/// can only run on the application's thread; its arrays are then the application's alone and
/// are overwritten, yet the file holds the values from before. Steps 2-5 (step 3 copied as
/// usual) are filled by the writer's threads: after `close`, settling them runs nothing.
fn lent_steps_are_copied_once_by_whoever_comes_first(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
) {
    let mut w = open(world, file, N, WriteMode::Async);
    let ran: Ran = Arc::default();
    let here = std::thread::current().name().unwrap_or("").to_string();
    let (open_gate, gate) = mpsc::channel();
    let mut kept = Vec::new();
    let a0 = arrays(0);
    let loan0 = w.lend_step(fill_from(&a0, 0, &ran, Some(gate))).unwrap();
    let mut a1 = arrays(1);
    let loan1 = w.lend_step(fill_from(&a1, 1, &ran, None)).unwrap();
    assert_eq!((loan0.step(), loan1.step()), (0, 1));
    assert!(loan1.settle(), "step 1: the writer is held in step 0");
    assert_eq!(ran_on(&ran, 1), here);
    for a in a1.iter_mut() {
        let a = Arc::get_mut(a).expect("a settled loan holds no clone of the arrays");
        a.fill(-1.0);
    }
    open_gate.send(()).unwrap();
    let mut loans = vec![loan0];
    for step in 2..STEPS {
        let a = arrays(step);
        if step == 3 {
            let fields = a.iter().map(|a| FieldData::F32(a.to_vec())).collect();
            w.write_step(fields).unwrap();
        } else {
            loans.push(w.lend_step(fill_from(&a, step, &ran, None)).unwrap());
        }
        kept.push(a);
    }
    w.close().unwrap();
    for a in kept.iter().flatten().chain(&a0) {
        assert_eq!(
            Arc::strong_count(a),
            1,
            "the writer dropped its fill with the arrays"
        );
    }
    for loan in loans {
        let step = loan.step();
        assert!(!loan.settle(), "step {step}: filled twice");
        let on = ran_on(&ran, step);
        assert!(writers(&on), "step {step} filled on {on}");
    }
    read_back(file);
}

/// Sync: `lend_step` returns once the step is written, so its loan is settled already.
fn lent_steps_of_a_synchronous_writer_are_written_on_return(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
) {
    let mut w = open(world, file, N, WriteMode::Sync);
    let ran: Ran = Arc::default();
    for step in 0..STEPS {
        let a = arrays(step);
        let loan = w.lend_step(fill_from(&a, step, &ran, None)).unwrap();
        assert_eq!(Arc::strong_count(&a[0]), 1, "step {step}");
        assert!(!loan.settle(), "step {step}");
        assert_eq!(ran_on(&ran, step), "residuum-writer", "step {step}");
    }
    w.close().unwrap();
    read_back(file);
}

/// A fill that panics on the writer's side fails its step (nothing of it is written) and the
/// panic goes on where the application settles the loan.
fn a_lent_fill_that_panics_fails_its_step(world: &mpi::topology::SimpleCommunicator, file: &Path) {
    let mut w = open(world, file, N, WriteMode::Async);
    let loan = w
        .lend_step(|_: &mut [FieldMut<'_>]| panic!("the application's bug"))
        .unwrap();
    let e = w.close().expect_err("a step whose fill panicked");
    assert!(e.to_string().contains("panicked"), "{e}");
    let settled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loan.settle()));
    let payload = settled.expect_err("the fill's panic goes on in the application");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"the application's bug")
    );
}

/// Whether every page of `v`'s allocation is in memory (`mincore`).
fn resident(v: &[f32], capacity: usize) -> bool {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let start = v.as_ptr() as usize / page * page;
    let end = v.as_ptr() as usize + capacity * 4;
    let pages = (end - start).div_ceil(page);
    let mut map = vec![0u8; pages];
    // SAFETY: [start, end) lies within pages of the vector's live allocation; `map` has a byte
    // per page.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, end - start, map.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore failed");
    map.iter().all(|&m| m & 1 == 1)
}

/// Once step 0 is written and no step waits, the async writer holds queue + 1 sets for the next
/// steps (step 0's and new ones), every page of them touched: a simulation whose writer lags
/// takes them instead of faulting in fresh memory. Each field is 64 MiB, so a fresh buffer is
/// mapped anew and none of its pages is in memory before it is written.
fn idle_async_writer_makes_the_sets_it_can_have_under_way(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
) {
    const BIG: usize = 16 << 20;
    let mut w = open(world, file, BIG, WriteMode::Async);
    let mut fields = w.buffers();
    for b in fields.iter_mut() {
        let FieldData::F32(b) = b else { panic!() };
        b.resize(BIG, 1.0);
    }
    w.write_step(fields).unwrap();
    // Step 0's outcome comes after its buffers and the new sets are back.
    let mut done = 0;
    while done == 0 {
        done += w.take_stats().len();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let sets: Vec<Vec<FieldData>> = (0..3).map(|_| w.buffers()).collect();
    for (i, set) in sets.iter().enumerate() {
        for b in set {
            let FieldData::F32(b) = b else { panic!() };
            assert!(b.is_empty() && b.capacity() >= BIG);
            assert!(resident(b, BIG), "set {i}: pages not in memory");
        }
    }
    // A fourth set is new: nothing of it is in memory yet (the check above can fail).
    let fresh = w.buffers();
    let FieldData::F32(b) = &fresh[0] else {
        panic!()
    };
    assert!(
        !resident(b, BIG),
        "a fresh buffer's pages are not in memory"
    );
    drop((sets, fresh));
    w.close().unwrap();
}
