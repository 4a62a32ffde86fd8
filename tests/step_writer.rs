//! The step writer's buffers (`StepWriter::buffers`): a written step's memory comes back for the
//! next step, and steps written from reused buffers read back exactly as they were filled, with
//! the synchronous and the asynchronous writer. One MPI process (a singleton, no mpirun).

use residuum::adios::{
    Adios, FieldData, FieldSpec, OpenMode, StepStatus, StepWriter, WriteMode, WriterOptions,
};
use std::path::Path;

const N: usize = 4096;
const STEPS: usize = 6;

/// Field `f`'s values at `step`: distinct per field and step.
fn values(f: usize, step: usize) -> impl Iterator<Item = f32> {
    (0..N).map(move |i| (i + 7919 * step + 104_729 * f) as f32 * 0.5)
}

/// Writes STEPS steps of two fields from the writer's buffers; returns each step's buffer
/// addresses.
fn write(
    world: &mpi::topology::SimpleCommunicator,
    file: &Path,
    mode: WriteMode,
) -> Vec<[usize; 2]> {
    let spec = |name: &str| FieldSpec {
        name: name.into(),
        shape: vec![N],
        start: vec![0],
        count: vec![N],
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
    let mut w = StepWriter::open(world, vec![spec("A"), spec("B")], opts).unwrap();
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
    write(&world, &file, WriteMode::Async);
    read_back(&file);
}
