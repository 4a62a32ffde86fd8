//! MPI program: every rank writes its block of two global 3D arrays (U: float, T: double) for a
//! few steps to a BP5 file through the residuum operator, then reads the whole file back step by
//! step and checks every value bit for bit. Rank 0 prints a report.
//!
//! mpirun -n 4 target/release/examples/bp5_roundtrip [--out out.bp] [--config examples/adios2.xml]
//!        [--shape 64x64x64] [--steps 3]

#[path = "common/decomp.rs"]
#[allow(dead_code)] // finite_min_max serves the Gray-Scott examples
mod decomp;
#[path = "../tests/common/field.rs"]
mod field;

use decomp::{dir_size, my_box, rank_grid};
use mpi::traits::*;
use residuum::adios::{Adios, OpenMode, StepStatus};
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    out: PathBuf,
    config: PathBuf,
    shape: [usize; 3],
    steps: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: "roundtrip.bp".into(),
        config: concat!(env!("CARGO_MANIFEST_DIR"), "/examples/adios2.xml").into(),
        shape: [64, 64, 64],
        steps: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = val()?.into(),
            "--config" => a.config = val()?.into(),
            "--steps" => a.steps = val()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--shape" => {
                let v: Vec<usize> = val()?
                    .split('x')
                    .map(|s| s.parse().map_err(|e| format!("--shape: {e}")))
                    .collect::<Result<_, _>>()?;
                a.shape = v
                    .try_into()
                    .map_err(|_| "--shape needs 3 extents, e.g. 64x64x64")?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn run(
    world: &mpi::topology::SimpleCommunicator,
    a: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let (start, count) = my_box(a.shape, rank, size);
    let adios = Adios::with_config(Some(&a.config), world)?;

    // Write.
    let t0 = Instant::now();
    {
        let io = adios.declare_io("writer")?;
        let u = io.define_variable::<f32>("U", &a.shape, &start, &count)?;
        let t = io.define_variable::<f64>("T", &a.shape, &start, &count)?;
        let mut w = io.open(&a.out.to_string_lossy(), OpenMode::Write)?;
        for step in 0..a.steps {
            let vals = field::block(step, &start, &count);
            let vals32: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
            w.begin_step(-1.0)?;
            w.put(&u, &vals32)?;
            w.put(&t, &vals)?;
            w.end_step()?;
        }
        w.close()?;
        // The puts went through the operator (a configuration whose IO "writer" has no
        // residuum operation would store them plainly, and they would read back bit-identical).
        let name = a.out.to_string_lossy();
        let reports = residuum::insitu::take_reports(Some(&name)).unwrap_or_default();
        let names: std::collections::HashSet<&str> =
            reports.iter().map(|r| r.variable.as_str()).collect();
        if !(names.contains("U") && names.contains("T")) {
            return Err(
                "the residuum operator compressed not both of U and T: does the \
                        configuration's IO \"writer\" give them a residuum operation?"
                    .into(),
            );
        }
    }
    world.barrier();
    let write_s = t0.elapsed().as_secs_f64();

    // Read everything back, step by step, with an IO that has no operator settings.
    let t1 = Instant::now();
    let io = adios.declare_io("reader")?;
    let mut r = io.open(&a.out.to_string_lossy(), OpenMode::Read)?;
    let mut steps = 0;
    let full = [0usize; 3];
    while r.begin_step(-1.0)? == StepStatus::Ok {
        let mut u = io.inquire_variable::<f32>("U")?;
        let mut t = io.inquire_variable::<f64>("T")?;
        let shape = u.shape()?;
        if shape != a.shape {
            return Err(format!("step {steps}: shape {shape:?}, wrote {:?}", a.shape).into());
        }
        u.set_selection(&full, &a.shape)?;
        t.set_selection(&full, &a.shape)?;
        let (got_u, got_t) = (r.get(&u)?, r.get(&t)?);
        r.end_step()?;
        let want = field::block(steps, &full, &a.shape);
        let bad_u = got_u
            .iter()
            .zip(&want)
            .filter(|(g, w)| g.to_bits() != (**w as f32).to_bits())
            .count();
        let bad_t = got_t
            .iter()
            .zip(&want)
            .filter(|(g, w)| g.to_bits() != w.to_bits())
            .count();
        if bad_u + bad_t > 0 {
            return Err(
                format!("step {steps}: {bad_u} float and {bad_t} double values differ").into(),
            );
        }
        steps += 1;
    }
    r.close()?;
    if steps != a.steps {
        return Err(format!("read {steps} steps, wrote {}", a.steps).into());
    }
    let read_s = t1.elapsed().as_secs_f64();

    if rank == 0 {
        let n: usize = a.shape.iter().product();
        let raw = (n * (4 + 8) * a.steps) as f64;
        let file = dir_size(&a.out) as f64;
        println!(
            "residuum bp5_roundtrip: {size} ranks, rank grid {:?}, global shape {:?}, {} steps",
            rank_grid(size),
            a.shape,
            a.steps
        );
        println!(
            "  wrote {} ({:.1} MB raw, {:.1} MB on disk incl. metadata, ratio {:.2}) in {:.3} s",
            a.out.display(),
            raw / 1e6,
            file / 1e6,
            raw / file,
            write_s
        );
        println!(
            "  read back all {steps} steps of U (float) and T (double): bit-identical, {:.3} s",
            read_s
        );
    }
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bp5_roundtrip: {e}");
            std::process::exit(2);
        }
    };
    let universe = mpi::initialize().expect("MPI initialisation failed");
    let world = universe.world();
    if let Err(e) = run(&world, &args) {
        eprintln!("bp5_roundtrip rank {}: ERROR: {e}", world.rank());
        world.abort(1);
    }
}
