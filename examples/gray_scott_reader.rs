//! Reads the Gray-Scott output step by step (each rank its box of the same decomposition) and
//! prints, per step, the global mean, minimum and maximum of U and V. Decoding needs only the
//! file and the residuum plugin in ADIOS2_PLUGIN_PATH.
//!
//! mpirun -n 2 target/release/examples/gray_scott_reader gs.bp
//! mpirun -n 2 target/release/examples/gray_scott_reader gs --engine SST   (a running writer's stream)

#[path = "common/decomp.rs"]
#[allow(dead_code)] // dir_size and rank_grid serve the writers
mod decomp;

use decomp::{finite_min_max, my_box};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use residuum::adios::{Adios, OpenMode, StepStatus};

fn run(
    world: &SimpleCommunicator,
    file: &str,
    engine: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let adios = Adios::with_config(None, world)?;
    let io = adios.declare_io("reader")?;
    if let Some(e) = engine {
        io.set_engine(e)?;
    }
    let mut r = io.open(file, OpenMode::Read)?;
    if rank == 0 {
        println!(
            "{:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "step", "mean U", "min U", "max U", "mean V", "min V", "max V"
        );
    }
    let mut steps = 0;
    while r.begin_step(-1.0)? == StepStatus::Ok {
        let mut row = Vec::new();
        for name in ["U", "V"] {
            let mut var = io.inquire_variable::<f32>(name)?;
            let shape: [usize; 3] = var
                .shape()?
                .try_into()
                .map_err(|_| format!("{name} is not 3D"))?;
            let (start, count) = my_box(shape, rank, size);
            var.set_selection(&start, &count)?;
            let v = r.get(&var)?;
            let sum: f64 = v.iter().map(|&x| x as f64).sum();
            let (lo, hi) = finite_min_max(v.iter().map(|&x| x as f64));
            let (mut gsum, mut glo, mut ghi) = (0.0, 0.0, 0.0);
            world.all_reduce_into(&sum, &mut gsum, SystemOperation::sum());
            world.all_reduce_into(&lo, &mut glo, SystemOperation::min());
            world.all_reduce_into(&hi, &mut ghi, SystemOperation::max());
            row.extend([gsum / shape.iter().product::<usize>() as f64, glo, ghi]);
        }
        r.end_step()?;
        if rank == 0 {
            println!(
                "{steps:>5} {:>10.6} {:>10.6} {:>10.6} {:>10.6} {:>10.6} {:>10.6}",
                row[0], row[1], row[2], row[3], row[4], row[5]
            );
        }
        steps += 1;
    }
    r.close()?;
    if rank == 0 {
        println!("{steps} steps read from {file} by {size} ranks");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, engine) = match args.as_slice() {
        [f] => (f.clone(), None),
        [f, flag, e] if flag == "--engine" => (f.clone(), Some(e.clone())),
        _ => {
            eprintln!("usage: gray_scott_reader FILE.bp | STREAM --engine SST");
            std::process::exit(2);
        }
    };
    let universe = mpi::initialize().expect("MPI initialisation failed");
    let world = universe.world();
    if let Err(e) = run(&world, &file, engine.as_deref()) {
        eprintln!("gray_scott_reader rank {}: ERROR: {e}", world.rank());
        world.abort(1);
    }
}
