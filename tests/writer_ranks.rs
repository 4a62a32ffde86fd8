//! A step writer's failure on one rank fails the same call on every rank, where the other ranks
//! would otherwise wait for good in a collective the failed one has left: opening with a box
//! outside the shape, a lent fill that panics, fields of the wrong length, `log` set on rank 0
//! only, a writer dropped without close, and through the C API a field type or a step's data
//! refused on one rank. Each case runs on 2 ranks (this test binary again, under mpirun, running
//! `rank_side`) within a time limit that such a wait exceeds; the steps written before a failure
//! read back.

mod common;

use common::*;
use mpi::traits::*;
use residuum::adios::{
    Adios, FieldData, FieldMut, FieldSpec, OpenMode, StepStatus, StepWriter, WriteMode,
    WriterOptions,
};
use std::path::Path;
use std::time::{Duration, Instant};

const N: usize = 512;
const STEPS: usize = 6;
const CASE: &str = "RESIDUUM_RANKS_CASE";
const DIR: &str = "RESIDUUM_RANKS_DIR";

fn values(step: usize) -> Vec<f32> {
    (0..N).map(|i| (i + 31 * step) as f32 * 0.25).collect()
}

/// Runs `case` on 2 ranks; returns what both printed (each line prefixed by its rank).
fn on_two_ranks(case: &str, dir: &Path) -> String {
    let (out, err) = (
        dir.join(format!("{case}.out")),
        dir.join(format!("{case}.err")),
    );
    let mut child = mpirun(2)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "rank_side", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CASE, case)
        .env(DIR, dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            // SAFETY: kill has no memory preconditions; mpirun passes SIGTERM on to the ranks.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{case}: still running after 180 s (a rank waits for another)\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    );
    assert!(status.success(), "{case}: {status}\n{out}\n{err}");
    out + &err
}

/// What rank `rank` printed for `what` (the rest of its line; the test harness may have
/// printed to the line before it).
fn said<'a>(out: &'a str, rank: usize, what: &str) -> &'a str {
    let prefix = format!("rank {rank}: {what}: ");
    out.lines()
        .find_map(|l| l.find(&prefix).map(|at| &l[at + prefix.len()..]))
        .unwrap_or_else(|| panic!("no '{prefix}' in\n{out}"))
}

/// Steps in `file`, each checked against what was written.
fn steps_in(file: &Path) -> usize {
    let adios = Adios::serial(None).unwrap();
    let io = adios.declare_io("reader").unwrap();
    let mut r = io.open(file.to_str().unwrap(), OpenMode::Read).unwrap();
    let mut step = 0;
    while r.begin_step(-1.0).unwrap() == StepStatus::Ok {
        let v = io.inquire_variable::<f32>("A").unwrap();
        let got = r.get(&v).unwrap();
        let want: Vec<f32> = [values(step), values(step)].concat();
        assert_eq!(got, want, "step {step}");
        r.end_step().unwrap();
        step += 1;
    }
    r.close().unwrap();
    step
}

#[test]
fn a_failure_on_one_rank_fails_the_same_call_on_every_rank() {
    let dir = tempfile::tempdir().unwrap();

    let out = on_two_ranks("open", dir.path());
    let own = said(&out, 1, "open");
    assert!(own.contains("start 512 + count 513 exceeds"), "{out}");
    assert!(
        said(&out, 0, "open").contains("rank 1 failed to open"),
        "{out}"
    );

    // Without agreement, rank 0 gathered each step's figures alone and waited for rank 1.
    let out = on_two_ranks("log", dir.path());
    for rank in [0, 1] {
        assert_eq!(said(&out, rank, "close"), "ok", "{out}");
    }
    assert!(out.contains(&format!("step {}: A", STEPS - 1)), "{out}");
    assert_eq!(steps_in(&dir.path().join("log.bp")), STEPS);

    // A writer dropped without close says what close would have returned: the failed step.
    let out = on_two_ranks("drop", dir.path());
    // Counted in the text, not by line: mpirun may join the two ranks' stderr on one line.
    let dropped = "step writer dropped without close: ";
    assert_eq!(out.matches(dropped).count(), 2, "{out}");
    assert_eq!(
        out.matches(&format!("{dropped}writing step 1")).count(),
        2,
        "{out}"
    );

    // The C API checks its arguments before opening; rank 1's refusal is still collective.
    let out = on_two_ranks("c-open", dir.path());
    assert!(said(&out, 1, "open").contains("code 7"), "{out}");
    assert!(
        said(&out, 0, "open").contains("rank 1 failed to open"),
        "{out}"
    );

    // Rank 1 fails step 1; both ranks see it at the call that waits for step 1's outcome (a
    // synchronous writer's own, an async writer's queue + 1 later), and step 0 stays readable.
    for (case, why) in [
        ("panic", "panicked"),
        ("length", "values handed over"),
        ("c-null", "field data is a null pointer"),
        ("c-lend", "field data is a null pointer"),
    ] {
        for (mode, at) in [("sync", 1), ("async", 4)] {
            let case = format!("{case}-{mode}");
            let out = on_two_ranks(&case, dir.path());
            let zero = said(&out, 0, "failed");
            // The C API's message says which call failed first.
            assert!(zero.starts_with(&format!("call {at}: ")), "{out}");
            assert!(
                zero.contains("writing step 1: rank 1 failed its part"),
                "{out}"
            );
            let one = said(&out, 1, "failed");
            // Refused at once on its rank, before the step is handed over.
            let at = if case.starts_with("panic") { at } else { 1 };
            assert!(one.starts_with(&format!("call {at}: ")), "{out}");
            assert!(one.contains(why), "{out}");
            for rank in [0, 1] {
                assert!(said(&out, rank, "close").contains("step 1"), "{out}");
            }
            assert_eq!(
                steps_in(&dir.path().join(format!("{case}.bp"))),
                1,
                "{case}"
            );
        }
    }
}

/// One rank's side of a case of the test above (run by it under mpirun; does nothing alone).
#[test]
#[ignore = "run on 2 ranks by a_failure_on_one_rank_fails_the_same_call_on_every_rank"]
fn rank_side() {
    let (Ok(case), Some(dir)) = (std::env::var(CASE), std::env::var_os(DIR)) else {
        return;
    };
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Multiple).unwrap();
    let world = universe.world();
    let rank = world.rank() as usize;
    let mode = if case.ends_with("async") {
        WriteMode::Async
    } else {
        WriteMode::Sync
    };
    if case.starts_with("c-") {
        let target = Path::new(&dir).join(format!("{case}.bp"));
        return through_c(&case, &world, mode, &target);
    }
    // A global array of both ranks' N values; in "open", rank 1's box lies outside it.
    let count = if case == "open" && rank == 1 {
        N + 1
    } else {
        N
    };
    let spec = FieldSpec {
        name: "A".into(),
        shape: vec![2 * N],
        start: vec![rank * N],
        count: vec![count],
        double: false,
        fill: None,
    };
    let opts = WriterOptions {
        config: None,
        io: "out".into(),
        target: Path::new(&dir)
            .join(format!("{case}.bp"))
            .to_str()
            .unwrap()
            .into(),
        queue: 2,
        mode,
        log: case == "log" && rank == 0,
        threads: Some(1),
    };
    let mut w = match StepWriter::open(&world, vec![spec], opts) {
        Ok(w) => w,
        Err(e) => {
            println!("rank {rank}: open: {e}");
            return;
        }
    };
    let mut loans = Vec::new();
    for step in 0..STEPS {
        let called = if step == 1 && rank == 1 && case.starts_with("panic") {
            // A synchronous writer runs the fill before this returns, and its panic goes on
            // here, as where a loan is settled.
            let lend = std::panic::AssertUnwindSafe(|| {
                w.lend_step(|_: &mut [FieldMut<'_>]| panic!("a fill that panics"))
            });
            match std::panic::catch_unwind(lend) {
                Ok(lent) => lent.map(|l| loans.push(l)),
                Err(_) => {
                    println!("rank {rank}: failed: call {step}: the fill panicked here");
                    break;
                }
            }
        } else if step == 1 && rank == 1 && (case.starts_with("length") || case == "drop") {
            w.write_step(vec![FieldData::F32(vec![0.0; N - 1])])
                .map(drop)
        } else {
            w.write_step(vec![FieldData::F32(values(step))]).map(drop)
        };
        if let Err(e) = called {
            println!("rank {rank}: failed: call {step}: {e}");
            break;
        }
    }
    if case == "drop" {
        // As on an early return: the failure is said all the same.
        drop(w);
        return;
    }
    for loan in loans {
        // The fill's panic goes on where the loan is settled: the application's to handle.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loan.settle()));
    }
    match w.close() {
        Ok(_) => println!("rank {rank}: close: ok"),
        Err(e) => println!("rank {rank}: close: {e}"),
    }
}

/// `rank_side` through the C API: in "c-open" rank 1 names a field type that does not exist;
/// in "c-null" and "c-lend" it hands over (by copy, or lending) step 1 with no data.
fn through_c(
    case: &str,
    world: &mpi::topology::SimpleCommunicator,
    mode: WriteMode,
    target: &Path,
) {
    use mpi::raw::AsRaw;
    use residuum::ffi::writer::*;
    use residuum::ffi::*;
    use std::ffi::{c_void, CStr, CString};
    let rank = world.rank() as usize;
    let last = || {
        // SAFETY: the library's own NUL-terminated message, read before the next call.
        unsafe { CStr::from_ptr(residuum_last_error()) }
            .to_string_lossy()
            .into_owned()
    };
    // Read when opening, before any other thread runs.
    std::env::set_var(
        "RESIDUUM_WRITER",
        if mode == WriteMode::Async {
            "async"
        } else {
            "sync"
        },
    );
    let (shape, start, count) = ([2 * N], [rank * N], [N]);
    let name = CString::new("A").unwrap();
    let field = residuum_field {
        name: name.as_ptr(),
        dtype: if case == "c-open" && rank == 1 {
            7
        } else {
            RESIDUUM_FLOAT
        },
        ndims: 1,
        shape: shape.as_ptr(),
        start: start.as_ptr(),
        count: count.as_ptr(),
    };
    let (io, target) = (
        CString::new("out").unwrap(),
        CString::new(target.to_str().unwrap()).unwrap(),
    );
    let mut w = std::ptr::null_mut();
    // SAFETY: live strings and field arrays; `w` is writable.
    let opened = unsafe {
        residuum_writer_open(
            mpi::ffi::MPI_Comm_c2f(world.as_raw()),
            std::ptr::null(),
            io.as_ptr(),
            target.as_ptr(),
            2,
            0,
            &field,
            1,
            &mut w,
        )
    };
    if opened != RESIDUUM_OK {
        println!("rank {rank}: open: {}", last());
        return;
    }
    let mut lent = 0;
    for step in 0..STEPS {
        let v = values(step);
        let mut data: *const c_void = v.as_ptr().cast();
        if step == 1 && rank == 1 {
            data = std::ptr::null();
        }
        // SAFETY: an open writer; `data` points to one array of the box's values (lent ones
        // stay unchanged until settled below, before `v` is dropped).
        let called = unsafe {
            if case.starts_with("c-lend") {
                let called = residuum_writer_lend_step(w, &data, &mut lent);
                if called == RESIDUUM_OK {
                    residuum_writer_settle(w, lent)
                } else {
                    called
                }
            } else {
                residuum_writer_write_step(w, &data)
            }
        };
        if called != RESIDUUM_OK {
            println!("rank {rank}: failed: call {step}: {}", last());
            break;
        }
    }
    // SAFETY: opened above, not used afterwards.
    match unsafe { residuum_writer_close(w, None, std::ptr::null_mut()) } {
        RESIDUUM_OK => println!("rank {rank}: close: ok"),
        _ => println!("rank {rank}: close: {}", last()),
    }
}
