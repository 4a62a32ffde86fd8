//! MPI program for temporal prediction through the plugin (`temporal=K`). Every rank writes its
//! block of a slowly evolving float field U, with a few NaN, step after step, through the IO
//! "writer" of the given configuration, and records the hash of each reconstruction the
//! operator reports (`OUT.hash.RANK`). Readers then check every step: within `--abs` of what was
//! written, NaN where NaN was written, and bit for bit what the writer reconstructed (by hash).
//!
//! mpirun -n 4 temporal_steps write --out t.bp --config t.xml [--shape 24x20x16] [--steps 100]
//!        [--abort-after N] [--delay-ms 0]
//! mpirun -n 4 temporal_steps read --out t.bp [--engine SST] [--abs 1e-3] [--late] [--raw FILE]
//!        [--timeout SECONDS]
//! temporal_steps random --out t.bp --step S
//!
//! `--abort-after N` aborts every writer rank after N steps, without closing (a killed run).
//! `read --late` expects to join a stream late: steps predicted from ones it never saw are
//! skipped until a keyframe (`Engine::get_decodable`). `--raw FILE` (1 rank) writes every
//! step's array there. Readers run on as many ranks as the writer (its hashes are per box).
//! `--timeout` stops reading where no step comes for that long (a killed writer's file stays
//! open for more). `random` reads step S of a file alone: a plain get fails naming its
//! keyframe, `Engine::get_step` decodes from that keyframe and matches the writer's hash (where
//! one rank wrote the file).

#[path = "common/decomp.rs"]
#[allow(dead_code)] // the Gray-Scott helpers
mod decomp;

use decomp::my_box;
use mpi::traits::*;
use residuum::adios::{Adios, OpenMode, StepStatus};
use std::io::Write;
use std::path::PathBuf;

struct Args {
    cmd: String,
    out: PathBuf,
    config: Option<PathBuf>,
    engine: Option<String>,
    shape: [usize; 3],
    steps: usize,
    abort_after: Option<usize>,
    delay_ms: u64,
    abs: f64,
    late: bool,
    raw: Option<PathBuf>,
    step: usize,
    timeout: f32,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        cmd: it.next().ok_or("write, read or random")?,
        out: "temporal.bp".into(),
        config: None,
        engine: None,
        shape: [24, 20, 16],
        steps: 100,
        abort_after: None,
        delay_ms: 0,
        abs: 1e-3,
        late: false,
        raw: None,
        step: 0,
        timeout: -1.0,
    };
    while let Some(flag) = it.next() {
        if flag == "--late" {
            a.late = true;
            continue;
        }
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--out" => a.out = val.into(),
            "--config" => a.config = Some(val.into()),
            "--engine" => a.engine = Some(val),
            "--steps" => a.steps = num(&val)?,
            "--abort-after" => a.abort_after = Some(num(&val)?),
            "--delay-ms" => a.delay_ms = num(&val)? as u64,
            "--abs" => a.abs = val.parse().map_err(|e| format!("--abs: {e}"))?,
            "--raw" => a.raw = Some(val.into()),
            "--step" => a.step = num(&val)?,
            "--timeout" => a.timeout = val.parse().map_err(|e| format!("--timeout: {e}"))?,
            "--shape" => {
                let v: Vec<usize> = val.split('x').map(num).collect::<Result<_, _>>()?;
                a.shape = v.try_into().map_err(|_| "--shape needs 3 extents")?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The value written at global (i, j, k) in step `t`: a pattern drifting slowly, NaN at a few
/// places that move now and then.
fn value(t: usize, i: usize, j: usize, k: usize) -> f32 {
    if (i * 7 + j * 3 + k + t / 10).is_multiple_of(53) {
        return f32::NAN;
    }
    let t = t as f64 * 0.05;
    (10.0 * (0.3 * i as f64 + t).sin() * (0.2 * j as f64 - 0.5 * t).cos() + 0.1 * k as f64) as f32
}

fn block(t: usize, start: &[usize; 3], count: &[usize; 3]) -> Vec<f32> {
    let mut v = Vec::with_capacity(count.iter().product());
    for i in start[0]..start[0] + count[0] {
        for j in start[1]..start[1] + count[1] {
            for k in start[2]..start[2] + count[2] {
                v.push(value(t, i, j, k));
            }
        }
    }
    v
}

fn hash_file(out: &std::path::Path, rank: usize) -> PathBuf {
    PathBuf::from(format!("{}.hash.{rank}", out.display()))
}

fn hash(v: &[f32]) -> u64 {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    residuum::reference_hash(&bytes)
}

/// The writer's hashes of this rank's reconstructions, by step.
fn writer_hashes(out: &std::path::Path, rank: usize) -> Result<Vec<u64>, String> {
    let p = hash_file(out, rank);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    text.lines()
        .map(|l| u64::from_str_radix(l.trim(), 16).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

fn write(world: &mpi::topology::SimpleCommunicator, a: &Args) -> Result<(), String> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let (start, count) = my_box(a.shape, rank, size);
    let adios = Adios::with_config(a.config.as_deref(), world).map_err(|e| e.to_string())?;
    let io = adios.declare_io("writer").map_err(|e| e.to_string())?;
    if let Some(e) = &a.engine {
        io.set_engine(e).map_err(|e| e.to_string())?;
    }
    let u = io
        .define_variable::<f32>("U", &a.shape, &start, &count)
        .map_err(|e| e.to_string())?;
    let name = a.out.to_string_lossy().into_owned();
    let mut w = io.open(&name, OpenMode::Write).map_err(|e| e.to_string())?;
    let mut hashes = std::fs::File::create(hash_file(&a.out, rank)).map_err(|e| e.to_string())?;
    if rank == 0 {
        // An earlier run's on more ranks would make readers take them for this one's.
        let mut r = size;
        while std::fs::remove_file(hash_file(&a.out, r)).is_ok() {
            r += 1;
        }
    }
    for t in 0..a.steps {
        if a.abort_after == Some(t) {
            std::process::abort();
        }
        w.begin_step(-1.0).map_err(|e| e.to_string())?;
        w.put(&u, &block(t, &start, &count))
            .map_err(|e| e.to_string())?;
        w.end_step().map_err(|e| e.to_string())?;
        let reports = residuum::insitu::take_reports(Some(&name)).map_err(|e| e.to_string())?;
        let [r] = reports.as_slice() else {
            return Err(format!("step {t}: {} reports, expected 1", reports.len()));
        };
        writeln!(hashes, "{:016x}", r.stats.recon_hash).map_err(|e| e.to_string())?;
        hashes.flush().map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_millis(a.delay_ms));
    }
    w.close().map_err(|e| e.to_string())?;
    if rank == 0 {
        println!("wrote {} steps of {:?} on {size} ranks", a.steps, a.shape);
    }
    Ok(())
}

/// Checks one step of this rank's block: within the bound, NaN kept, the writer's bytes.
fn check(
    t: usize,
    got: &[f32],
    want: &[f32],
    hash_want: Option<u64>,
    abs: f64,
) -> Result<f64, String> {
    let mut max = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        if w.is_nan() {
            if !g.is_nan() {
                return Err(format!("step {t}: a NaN came back as {g}"));
            }
            continue;
        }
        max = max.max((*g as f64 - *w as f64).abs());
    }
    if max > abs {
        return Err(format!("step {t}: error {max} above {abs}"));
    }
    if let Some(h) = hash_want {
        if hash(got) != h {
            return Err(format!("step {t}: not what the writer reconstructed"));
        }
    }
    Ok(max)
}

fn read(world: &mpi::topology::SimpleCommunicator, a: &Args) -> Result<(), String> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let adios = Adios::with_config(None, world).map_err(|e| e.to_string())?;
    let io = adios.declare_io("reader").map_err(|e| e.to_string())?;
    if let Some(e) = &a.engine {
        io.set_engine(e).map_err(|e| e.to_string())?;
    }
    let mut r = io
        .open(&a.out.to_string_lossy(), OpenMode::Read)
        .map_err(|e| e.to_string())?;
    let mut raw = match &a.raw {
        Some(_) if size > 1 => return Err("--raw needs 1 rank: every rank would write it".into()),
        Some(p) => Some(std::fs::File::create(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let (mut seen, mut skipped, mut errors) = (0usize, 0usize, Vec::new());
    let mut decoded: Vec<(usize, u64)> = Vec::new();
    while r.begin_step(a.timeout).map_err(|e| e.to_string())? == StepStatus::Ok {
        let t = r.current_step().map_err(|e| e.to_string())?;
        let mut u = io.inquire_variable::<f32>("U").map_err(|e| e.to_string())?;
        let shape: [usize; 3] = u.shape().map_err(|e| e.to_string())?.try_into().unwrap();
        let (start, count) = my_box(shape, rank, size);
        u.set_selection(&start, &count).map_err(|e| e.to_string())?;
        let got = if a.late {
            r.get_decodable(&u).map_err(|e| e.to_string())?
        } else {
            Some(r.get(&u).map_err(|e| format!("step {t}: {e}"))?)
        };
        r.end_step().map_err(|e| e.to_string())?;
        seen += 1;
        let Some(got) = got else {
            if !decoded.is_empty() {
                let last = decoded.last().map(|d| d.0);
                return Err(format!("step {t} undecodable after step {last:?}"));
            }
            skipped += 1;
            continue;
        };
        // A stream's writer may not have written this step's hash yet: compared after the loop.
        errors.push(check(t, &got, &block(t, &start, &count), None, a.abs)?);
        decoded.push((t, hash(&got)));
        if let Some(f) = raw.as_mut() {
            let bytes: Vec<u8> = got.iter().flat_map(|x| x.to_le_bytes()).collect();
            f.write_all(&bytes).map_err(|e| e.to_string())?;
        }
    }
    r.close().map_err(|e| e.to_string())?;
    // Every decoded step against the writer's hash, now that the writer is done (a stream's
    // writer writes them as it goes).
    if hash_file(&a.out, size).exists() {
        return Err(format!(
            "written on more than {size} ranks: the hashes are per writer's box"
        ));
    }
    let hashes = writer_hashes(&a.out, rank)?;
    for &(t, h) in &decoded {
        match hashes.get(t) {
            None => return Err(format!("step {t} has no hash from the writer")),
            Some(&w) if w != h => {
                return Err(format!("step {t}: not what the writer reconstructed"))
            }
            Some(_) => {}
        }
    }
    let first_decoded = decoded.first().map_or(usize::MAX, |d| d.0);
    let mean = |e: &[f64]| e.iter().sum::<f64>() / e.len().max(1) as f64;
    let tenth = errors.len().div_ceil(10);
    if rank == 0 {
        println!(
            "read {seen} steps on {size} ranks: {} decoded within the bound and as written (first \
             {first_decoded}), {skipped} skipped before it; mean max error of the first {tenth} \
             steps {:.3e}, of the last {tenth} {:.3e}",
            decoded.len(),
            mean(&errors[..tenth.min(errors.len())]),
            mean(&errors[errors.len().saturating_sub(tenth)..])
        );
    }
    Ok(())
}

fn random(world: &mpi::topology::SimpleCommunicator, a: &Args) -> Result<(), String> {
    let adios = Adios::with_config(None, world).map_err(|e| e.to_string())?;
    let io = adios.declare_io("reader").map_err(|e| e.to_string())?;
    let mut r = io
        .open(&a.out.to_string_lossy(), OpenMode::ReadRandomAccess)
        .map_err(|e| e.to_string())?;
    let mut u = io.inquire_variable::<f32>("U").map_err(|e| e.to_string())?;
    let shape: [usize; 3] = u.shape().map_err(|e| e.to_string())?.try_into().unwrap();
    u.set_selection(&[0; 3], &shape)
        .map_err(|e| e.to_string())?;
    u.set_step_selection(a.step, 1).map_err(|e| e.to_string())?;
    match r.get(&u) {
        Ok(_) => println!("plain get of step {}: decoded (a keyframe)", a.step),
        Err(_) => {
            let back = residuum::insitu::take_missing_reference().map_err(|e| e.to_string())?;
            println!(
                "plain get of step {}: refused, keyframe {back:?} steps back",
                a.step
            );
        }
    }
    let got = r.get_step(&mut u, a.step).map_err(|e| e.to_string())?;
    r.close().map_err(|e| e.to_string())?;
    // The writer's hashes are per block: they name the whole array where it wrote one block.
    let whole = !hash_file(&a.out, 1).exists();
    let hash = match whole {
        true => writer_hashes(&a.out, 0)?.get(a.step).copied(),
        false => None,
    };
    check(a.step, &got, &block(a.step, &[0; 3], &shape), hash, a.abs)?;
    let written = if whole { " and as written" } else { "" };
    println!("get_step {}: within the bound{written}", a.step);
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("temporal_steps: {e}");
            std::process::exit(2);
        }
    };
    let universe = mpi::initialize().expect("MPI initialisation failed");
    let world = universe.world();
    let result = match args.cmd.as_str() {
        "write" => write(&world, &args),
        "read" => read(&world, &args),
        "random" => random(&world, &args),
        other => Err(format!("unknown command {other}: write, read or random")),
    };
    if let Err(e) = result {
        eprintln!("temporal_steps rank {}: ERROR: {e}", world.rank());
        world.abort(1);
    }
}
