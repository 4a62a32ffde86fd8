//! (One file over 600 lines on purpose: an example users read from top to bottom.)
//!
//! MPI Gray-Scott reaction-diffusion simulation in 3D writing U and V every `plotgap` steps
//! through the residuum operator (settings: a JSON file, ADIOS2 XML for engine and operator).
//! Each rank owns a box of a Cartesian decomposition and exchanges one halo layer with its six
//! (periodic) neighbours every step. Output goes through residuum's step writer: the simulation
//! lends a step (`StepWriter::lend_step`) and computes on while the writer thread copies,
//! compresses and writes it. U and V are kept in two arrays each, swapped every step, so the
//! ones lent stay unchanged through the next step; the loan is settled before the step after.
//!
//! mpirun -n 4 target/release/examples/gray_scott [--settings examples/gray_scott.json]
//!        [--output residuum|raw|none|compare] [--writer auto|sync|async] [--queue 2]
//!        [--L 64] [--steps 200] [--plotgap 20] [--out gs.bp] [--io SimulationStream]
//!        [--repeat 1] [--plot times.png] [--no-verify] [--temporal K] [--temporal-bench DIR]
//!        [--contention-bench SECONDS]
//!
//! `--writer auto` (the default) writes asynchronously where each rank owns a core to spare,
//! else synchronously; `--queue` is how many steps may wait (0: synchronous); `--io` picks
//! another IO of the XML for residuum output (SimulationStream: SST staging, read by
//! `gray_scott_reader NAME --engine SST`).
//!
//! Rank 0 prints per output step the compute time, the time the simulation spent on output,
//! the writer thread's time, bytes raw and as stored by the operator, and the achieved NRMSE
//! (the file read back once the run is over, against copies of the written fields); the writer
//! logs each step's statistics and range on stderr. `--output compare` runs without output,
//! uncompressed, residuum synchronously and residuum with the async writer, and compares;
//! `--repeat N` runs every configuration N times, interleaved, and reports medians with their
//! spread and each overhead's 95 % bootstrap interval; `--plot` draws per-step compute and
//! output time per configuration. `--temporal K` adds a residuum configuration with temporal
//! prediction (`temporal=K` on every residuum operation of the configuration: each step coded
//! over the previous one's reconstruction, a keyframe every K output steps) and reports its
//! bytes per step next to those without.
//! `--contention-bench SECONDS` (one rank) measures how much compressing U and V on the other
//! core slows the simulation's steps (`common/contention.rs`). `--temporal-bench DIR` runs,
//! for NRMSE 1e-4, 1e-5 and 1e-6 and output every 5, 10 and 20 steps, the simulation with the
//! synchronous writer with and without `temporal=K` (K from `--temporal`, default 10),
//! `--repeat` times interleaved, and reports file sizes and the median compression time per
//! output step (table, DIR/temporal_bench.csv and .png; see `common/temporal_bench.rs`).

#[path = "common/compare.rs"]
mod compare;
#[path = "common/contention.rs"]
mod contention;
#[path = "common/decomp.rs"]
mod decomp;
#[path = "common/temporal_bench.rs"]
mod temporal_bench;

use decomp::{dir_size, finite_min_max, my_box, rank_grid};
use mpi::collective::SystemOperation;
use mpi::point_to_point as p2p;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use residuum::adios::{
    Adios, FieldMut, FieldSpec, Loan, OpenMode, StepStatus, StepWriter, WriteMode, WriterOptions,
};
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Settings, with the embedded defaults; a JSON file may set any of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// Global cube edge.
    #[serde(rename = "L")]
    l: usize,
    steps: usize,
    plotgap: usize,
    #[serde(rename = "F")]
    f: f64,
    k: f64,
    dt: f64,
    #[serde(rename = "Du")]
    du: f64,
    #[serde(rename = "Dv")]
    dv: f64,
    /// Amplitude of a deterministic perturbation of U at start.
    noise: f64,
    output: PathBuf,
    adios_config: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            l: 64,
            steps: 200,
            plotgap: 20,
            f: 0.02,
            k: 0.048,
            dt: 1.0,
            du: 0.2,
            dv: 0.1,
            noise: 0.01,
            output: "gs.bp".into(),
            adios_config: concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gray_scott.xml").into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    None,
    Raw,
    /// Through the residuum operator, written as the mode says.
    Residuum(WriteMode),
    /// The same with temporal prediction (`--temporal K`).
    Temporal(WriteMode),
}

impl Output {
    fn label(self) -> &'static str {
        match self {
            Output::None => "no output",
            Output::Raw => "uncompressed BP5",
            Output::Residuum(WriteMode::Sync) => "residuum BP5, synchronous",
            Output::Residuum(WriteMode::Async) => "residuum BP5, async writer",
            Output::Residuum(WriteMode::Auto) => "residuum BP5, default writer",
            Output::Temporal(WriteMode::Sync) => "residuum BP5 temporal, synchronous",
            Output::Temporal(WriteMode::Async) => "residuum BP5 temporal, async writer",
            Output::Temporal(WriteMode::Auto) => "residuum BP5 temporal, default writer",
        }
    }

    fn residuum(self) -> bool {
        matches!(self, Output::Residuum(_) | Output::Temporal(_))
    }

    /// The ADIOS2 IO of gray_scott.xml that writes this way.
    fn io(self) -> &'static str {
        match self {
            Output::Raw => "SimulationOutputRaw",
            _ => "SimulationOutput",
        }
    }
}

/// Command-line choices beyond the settings.
struct Options {
    outputs: Vec<Output>,
    /// Steps that may wait for an async writer (0: synchronous).
    queue: usize,
    /// Runs of every output configuration, interleaved.
    repeat: usize,
    /// Where to draw per-step compute and output times.
    plot: Option<PathBuf>,
    /// Another IO of the configuration for residuum output (e.g. SimulationStream for SST).
    io: Option<String>,
    /// Read the file back after the run and measure the achieved NRMSE.
    verify: bool,
    /// The configuration with `temporal=K` added to its residuum operations (`--temporal K`).
    temporal: Option<PathBuf>,
    /// K of `--temporal`.
    keyframes: usize,
    /// `--temporal-bench DIR`.
    bench: Option<PathBuf>,
    /// `--contention-bench SECONDS`.
    contention: Option<f64>,
}

/// Writes `config` with `temporal=K` added to every residuum operation (where given) and their
/// `nrmse` set to `nrmse` (where given) to a file of this process, and returns its path.
/// A configuration `operator_config` wrote, removed once done with.
struct TempConfig(PathBuf);

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn operator_config(
    config: &std::path::Path,
    temporal: Option<usize>,
    nrmse: Option<&str>,
) -> Result<PathBuf, String> {
    let mut text =
        std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let lib = r#"<parameter key="PluginLibrary" value="residuum_plugin"/>"#;
    if !text.contains(lib) {
        return Err(format!("{}: no residuum operation", config.display()));
    }
    if let Some(k) = temporal {
        text = text.replace(
            lib,
            &format!(r#"{lib}<parameter key="temporal" value="{k}"/>"#),
        );
    }
    if let Some(t) = nrmse {
        let was = r#"<parameter key="nrmse" value="1e-5"/>"#;
        if !text.contains(was) {
            return Err(format!("{}: no nrmse=1e-5 to change", config.display()));
        }
        text = text.replace(was, &format!(r#"<parameter key="nrmse" value="{t}"/>"#));
    }
    // Per process (every rank writes its own copy).
    let tag = format!("{}-{}", temporal.unwrap_or(0), nrmse.unwrap_or("same"));
    let path = std::env::temp_dir().join(format!("gray_scott-{}-{tag}.xml", std::process::id()));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn parse_args() -> Result<(Settings, Options), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = Settings::default();
    if let Some(i) = args.iter().position(|a| a == "--settings") {
        let path = args.get(i + 1).ok_or("--settings needs a file")?.clone();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        s = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        args.drain(i..i + 2);
    }
    let mut verify = true;
    args.retain(|a| {
        let flag = a == "--no-verify";
        verify &= !flag;
        !flag
    });
    let (mut output, mut queue, mut io) = ("residuum".to_string(), 2usize, None);
    let (mut writer, mut repeat, mut plot) = (WriteMode::Auto, 1usize, None);
    let (mut temporal, mut bench, mut contention) = (0usize, None, None);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--L" => s.l = num(&val)?,
            "--steps" => s.steps = num(&val)?,
            "--plotgap" => s.plotgap = num(&val)?,
            "--out" => s.output = val.into(),
            "--config" => s.adios_config = val.into(),
            "--io" => io = Some(val),
            "--queue" => queue = num(&val)?,
            "--repeat" => repeat = num(&val)?.max(1),
            "--plot" => plot = Some(PathBuf::from(val)),
            "--temporal" => temporal = num(&val)?,
            "--temporal-bench" => bench = Some(PathBuf::from(val)),
            "--contention-bench" => {
                contention = Some(val.parse::<f64>().map_err(|e| format!("{flag}: {e}"))?)
            }
            "--writer" => {
                writer = match val.as_str() {
                    "auto" => WriteMode::Auto,
                    "sync" => WriteMode::Sync,
                    "async" => WriteMode::Async,
                    _ => return Err(format!("--writer {val}: auto, sync or async")),
                }
            }
            "--output" => output = val,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let mut outputs = match output.as_str() {
        "residuum" => vec![Output::Residuum(writer)],
        "raw" => vec![Output::Raw],
        "none" => vec![Output::None],
        "compare" => vec![
            Output::None,
            Output::Raw,
            Output::Residuum(WriteMode::Sync),
            Output::Residuum(WriteMode::Async),
        ],
        _ => return Err(format!("--output {output}: residuum, raw, none or compare")),
    };
    if s.l < 8 || s.plotgap == 0 {
        // Below 8 the seed cube of V is empty: a constant run.
        return Err("L must be at least 8 and plotgap at least 1".into());
    }
    if io.is_some() && (output == "compare" || repeat > 1 || temporal > 0 || bench.is_some()) {
        // Each residuum run opens the IO's engine again: an SST stream's reader is gone after
        // the first, and the next open would wait for one for good.
        return Err(
            "--io runs once: not with --output compare, --repeat, --temporal or --temporal-bench"
                .into(),
        );
    }
    let keyframes = if temporal == 0 && bench.is_some() {
        10
    } else {
        temporal
    };
    let temporal = match temporal {
        _ if bench.is_some() => None,
        0 => None,
        k => {
            // Bytes do not depend on the writer: compared with synchronous writing.
            let mode = if output == "compare" {
                WriteMode::Sync
            } else {
                writer
            };
            outputs.push(Output::Temporal(mode));
            Some(operator_config(&s.adios_config, Some(k), None)?)
        }
    };
    Ok((
        s,
        Options {
            outputs,
            queue,
            repeat,
            plot,
            io,
            verify,
            temporal,
            keyframes,
            bench,
            contention,
        },
    ))
}

/// One rank's part of the simulation: U and V on its box plus one ghost layer. Each field is
/// two arrays, the state and the next one, swapped every step; shared (`Arc`) because the state
/// after an output step is lent to the writer thread for the step after it.
struct Domain {
    n: [usize; 3],
    g: [usize; 3],
    start: [usize; 3],
    /// Neighbour ranks (low, high) along each axis, periodic.
    nb: [(i32, i32); 3],
    u: Arc<Vec<f64>>,
    v: Arc<Vec<f64>>,
    u2: Arc<Vec<f64>>,
    v2: Arc<Vec<f64>>,
}

impl Domain {
    /// The initial state, its ghost layers filled.
    fn new(s: &Settings, world: &SimpleCommunicator) -> Domain {
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let shape = [s.l; 3];
        let (start, n) = my_box(shape, rank, size);
        let grid = rank_grid(size);
        let coord = [
            rank / (grid[1] * grid[2]),
            (rank / grid[2]) % grid[1],
            rank % grid[2],
        ];
        let rank_of = |c: [usize; 3]| (c[0] * grid[1] * grid[2] + c[1] * grid[2] + c[2]) as i32;
        let nb = [0, 1, 2].map(|d| {
            let (mut lo, mut hi) = (coord, coord);
            lo[d] = (coord[d] + grid[d] - 1) % grid[d];
            hi[d] = (coord[d] + 1) % grid[d];
            (rank_of(lo), rank_of(hi))
        });
        let g = n.map(|x| x + 2);
        let len = g.iter().product();
        let (mut u, mut v) = (vec![1.0; len], vec![0.0; len]);
        // A cube of V in the middle of the global domain, and a deterministic perturbation.
        let (lo, hi) = (s.l / 2 - s.l / 8, s.l / 2 + s.l / 8);
        for i in 0..n[0] {
            for j in 0..n[1] {
                for k in 0..n[2] {
                    let gc = [start[0] + i, start[1] + j, start[2] + k];
                    let at = index(g, i + 1, j + 1, k + 1);
                    if gc.iter().all(|&c| (lo..hi).contains(&c)) {
                        u[at] = 0.25;
                        v[at] = 0.33;
                    }
                    let h =
                        ((gc[0] * 73_856_093) ^ (gc[1] * 19_349_663) ^ (gc[2] * 83_492_791)) % 1000;
                    u[at] += s.noise * (h as f64 / 1000.0 - 0.5);
                }
            }
        }
        let mut d = Domain {
            n,
            g,
            start,
            nb,
            u: Arc::new(u),
            v: Arc::new(v),
            u2: Arc::new(vec![0.0; len]),
            v2: Arc::new(vec![0.0; len]),
        };
        d.exchange(world);
        d
    }

    /// One step, then the new state's ghost layers (so that a lent state is not written to
    /// during the next step, not even its ghosts).
    fn advance(&mut self, world: &SimpleCommunicator, s: &Settings) {
        self.step(s);
        self.exchange(world);
    }

    /// Positions of the layer `layer` (in ghost coordinates) across axis `d`.
    fn layer(&self, d: usize, layer: usize) -> Vec<usize> {
        let (a, b) = match d {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        let mut idx = Vec::with_capacity(self.g[a] * self.g[b]);
        for x in 0..self.g[a] {
            for y in 0..self.g[b] {
                let mut c = [0; 3];
                c[d] = layer;
                c[a] = x;
                c[b] = y;
                idx.push(index(self.g, c[0], c[1], c[2]));
            }
        }
        idx
    }

    /// Fills the ghost layers from the neighbours, axis by axis (so edges and corners follow).
    fn exchange(&mut self, world: &SimpleCommunicator) {
        for d in 0..3 {
            let (lo, hi) = self.nb[d];
            for (send_layer, recv_layer, dest, src) in [
                (self.n[d], 0, hi, lo),     // my high face → their low ghost
                (1, self.n[d] + 1, lo, hi), // my low face → their high ghost
            ] {
                let send_idx = self.layer(d, send_layer);
                let recv_idx = self.layer(d, recv_layer);
                let msg: Vec<f64> = send_idx
                    .iter()
                    .map(|&i| self.u[i])
                    .chain(send_idx.iter().map(|&i| self.v[i]))
                    .collect();
                let mut buf = vec![0.0f64; msg.len()];
                p2p::send_receive_into(
                    &msg[..],
                    &world.process_at_rank(dest),
                    &mut buf[..],
                    &world.process_at_rank(src),
                );
                let half = recv_idx.len();
                // The new state: no loan holds it yet.
                let (u, v) = (Arc::make_mut(&mut self.u), Arc::make_mut(&mut self.v));
                for (t, &i) in recv_idx.iter().enumerate() {
                    u[i] = buf[t];
                    v[i] = buf[half + t];
                }
            }
        }
    }

    /// One explicit Euler step of the Gray-Scott equations (7-point Laplacian).
    fn step(&mut self, s: &Settings) {
        let (g, n) = (self.g, self.n);
        let (sj, si) = (g[2], g[1] * g[2]);
        let (uf, vf) = (&self.u[..], &self.v[..]);
        // The arrays of the state two steps back: its loan, if any, is settled by now (were it
        // not, make_mut would copy them rather than change what the writer reads).
        let (u2, v2) = (Arc::make_mut(&mut self.u2), Arc::make_mut(&mut self.v2));
        for i in 1..=n[0] {
            for j in 1..=n[1] {
                for k in 1..=n[2] {
                    let c = index(g, i, j, k);
                    let lap = |f: &[f64]| {
                        (f[c - 1] + f[c + 1] + f[c - sj] + f[c + sj] + f[c - si] + f[c + si]
                            - 6.0 * f[c])
                            / 6.0
                    };
                    let (u, v) = (uf[c], vf[c]);
                    let uvv = u * v * v;
                    u2[c] = u + s.dt * (s.du * lap(uf) - uvv + s.f * (1.0 - u));
                    v2[c] = v + s.dt * (s.dv * lap(vf) + uvv - (s.f + s.k) * v);
                }
            }
        }
        std::mem::swap(&mut self.u, &mut self.u2);
        std::mem::swap(&mut self.v, &mut self.v2);
    }

    /// The interior of a field, as f32 in C order.
    fn interior(&self, f: &[f64]) -> Vec<f32> {
        let mut out = vec![0.0; self.n.iter().product()];
        copy_interior(self.n, self.g, f, &mut out);
        out
    }

    /// Lends the state to `w` as the next step's U and V: the writer thread copies their
    /// interiors (unless the loan is settled first).
    fn lend(&self, w: &mut StepWriter) -> residuum::adios::Result<Loan> {
        let (u, v, n, g) = (self.u.clone(), self.v.clone(), self.n, self.g);
        w.lend_step(move |fields| {
            for (b, f) in fields.iter_mut().zip([&u, &v]) {
                if let FieldMut::F32(b) = b {
                    copy_interior(n, g, f, b);
                }
            }
        })
    }
}

/// Seconds this thread has been ready to run and waited for a CPU, where Linux reports it.
fn runqueue_wait() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().nth(1)?.parse().ok()?;
    Some(ns * 1e-9)
}

/// Where (i, j, k) lies in an array of shape `g` (a box with its ghost layers), C order.
fn index(g: [usize; 3], i: usize, j: usize, k: usize) -> usize {
    (i * g[1] + j) * g[2] + k
}

/// The interior of a field with one ghost layer around its box `n` (`g` with the ghosts), as
/// f32 in C order, into `out`.
fn copy_interior(n: [usize; 3], g: [usize; 3], f: &[f64], out: &mut [f32]) {
    for (r, row_out) in out.chunks_exact_mut(n[2]).enumerate() {
        let (i, j) = (r / n[1] + 1, r % n[1] + 1);
        let row = index(g, i, j, 1);
        for (o, &x) in row_out.iter_mut().zip(&f[row..row + n[2]]) {
            *o = x as f32;
        }
    }
}

/// What one output step cost and wrote (over all ranks, on rank 0).
#[derive(Default, Clone)]
struct StepReport {
    step: usize,
    compute_s: f64,
    /// Time the simulation spent handing the step over (the whole write when synchronous).
    output_s: f64,
    /// Time the writer thread spent on the step (slowest rank).
    write_s: f64,
    /// Time the operator spent compressing the step's fields (slowest rank).
    compress_s: f64,
    raw_bytes: u64,
    /// The operator's output (the raw bytes without an operator).
    stored_bytes: u64,
    /// U's and V's, where verified.
    nrmse: Option<[f64; 2]>,
}

/// A run: its wall time, per-output-step reports and the file's final size (on rank 0).
struct RunReport {
    total: f64,
    steps: Vec<StepReport>,
    file_bytes: u64,
    /// Time in the writer's `close` (the steps still queued are written meanwhile).
    close_s: f64,
    /// Lent steps this rank copied itself: the writer had not got to them when they came due.
    copied_here: usize,
    /// Time this rank's simulation thread was ready to run but waited for a CPU (Linux
    /// schedstat; None elsewhere): another thread, ours or not, on its CPU. Time the host takes
    /// from the virtual CPU does not count here.
    waited_s: Option<f64>,
}

/// Runs the simulation with `output`.
fn simulate(
    world: &SimpleCommunicator,
    s: &Settings,
    output: Output,
    opts: &Options,
) -> Result<RunReport, Box<dyn std::error::Error>> {
    let rank = world.rank() as usize;
    let mut dom = Domain::new(s, world);
    let shape = [s.l; 3];
    let target = s.output.to_string_lossy().into_owned();
    let spec = |name: &str| FieldSpec {
        name: name.into(),
        shape: shape.to_vec(),
        start: dom.start.to_vec(),
        count: dom.n.to_vec(),
        double: false,
        fill: None,
    };
    let mut writer = match output {
        Output::None => None,
        _ => {
            let io = match (output.residuum(), &opts.io) {
                (true, Some(io)) => io.clone(),
                _ => output.io().to_string(),
            };
            let mode = match output {
                Output::Residuum(mode) | Output::Temporal(mode) => mode,
                _ => WriteMode::Sync,
            };
            let config = match (output, &opts.temporal) {
                (Output::Temporal(_), Some(t)) => t.clone(),
                _ => s.adios_config.clone(),
            };
            let wo = WriterOptions {
                config: Some(config),
                io,
                target: target.clone(),
                queue: opts.queue,
                mode,
                // Repeated runs would repeat the same lines.
                log: output.residuum() && opts.repeat == 1,
                threads: None,
            };
            Some(StepWriter::open(world, vec![spec("U"), spec("V")], wo)?)
        }
    };
    // Only a file can be read back (a stream is gone to its reader).
    let verify = opts.verify && output.residuum() && opts.io.is_none();
    let mut steps: Vec<StepReport> = Vec::new();
    let mut written: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    // Steps lent and not yet settled: (index in `steps`, loan).
    let mut loans: VecDeque<(usize, Loan)> = VecDeque::new();
    let mut copied_here = 0;
    let mut compute_s = 0.0;
    world.barrier();
    let t_all = Instant::now();
    let waited_before = runqueue_wait();
    for step in 1..=s.steps {
        // This step writes into the arrays of the state two steps back: settle their loan.
        // Its time counts as the output step's, as does the copy where it runs here.
        while let Some((i, _)) = loans.front().filter(|(i, _)| steps[*i].step + 2 <= step) {
            let i = *i;
            let t = Instant::now();
            copied_here += usize::from(loans.pop_front().expect("front").1.settle());
            steps[i].output_s += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        dom.advance(world, s);
        compute_s += t.elapsed().as_secs_f64();
        if step % s.plotgap != 0 {
            continue;
        }
        let mut output_s = 0.0;
        if let Some(w) = writer.as_mut() {
            let t = Instant::now();
            loans.push_back((steps.len(), dom.lend(w)?));
            output_s = t.elapsed().as_secs_f64();
            if verify {
                // Copies for the read-back check, not part of the output's cost.
                written.push((dom.interior(&dom.u), dom.interior(&dom.v)));
            }
        }
        steps.push(StepReport {
            step,
            compute_s: std::mem::take(&mut compute_s),
            output_s,
            raw_bytes: (2 * 4 * s.l.pow(3)) as u64,
            ..Default::default()
        });
    }
    let t = Instant::now();
    let stats = match writer.take() {
        Some(w) => w.close()?,
        None => Vec::new(),
    };
    let close_s = t.elapsed().as_secs_f64();
    // The writer filled them all by now: settling runs nothing.
    copied_here += loans
        .into_iter()
        .map(|(_, l)| usize::from(l.settle()))
        .sum::<usize>();
    world.barrier();
    let total = t_all.elapsed().as_secs_f64();
    let waited_s = runqueue_wait().zip(waited_before).map(|(b, a)| b - a);
    // Over all ranks: the operator's bytes and the slowest writer thread, per step.
    for (r, st) in steps.iter_mut().zip(&stats) {
        let stored: f64 = st
            .fields
            .iter()
            .map(|f| f.compression.as_ref().map_or(f.bytes_in, |c| c.bytes_out) as f64)
            .sum();
        let compress: f64 = st
            .fields
            .iter()
            .filter_map(|f| f.compression.as_ref())
            .map(|c| c.seconds)
            .sum();
        let (mut all, mut slowest, mut compress_max) = (0.0f64, 0.0f64, 0.0f64);
        world.all_reduce_into(&stored, &mut all, SystemOperation::sum());
        world.all_reduce_into(&st.seconds, &mut slowest, SystemOperation::max());
        world.all_reduce_into(&compress, &mut compress_max, SystemOperation::max());
        (r.stored_bytes, r.write_s, r.compress_s) = (all as u64, slowest, compress_max);
    }
    if verify {
        let nrmse = achieved_nrmse(world, s, &dom, &written)?;
        for (r, e) in steps.iter_mut().zip(nrmse) {
            r.nrmse = Some(e);
        }
    }
    let file_bytes = match (output, rank) {
        (Output::None, _) | (_, 1..) => 0,
        _ if s.output.is_dir() => dir_size(&s.output),
        _ => 0, // a stream
    };
    Ok(RunReport {
        total,
        steps,
        file_bytes,
        close_s,
        copied_here,
        waited_s,
    })
}

/// Reads every step of the file back (each rank its own box) and returns per step the global
/// NRMSE of U and V against what was written: RMS error over the field's value range.
fn achieved_nrmse(
    world: &SimpleCommunicator,
    s: &Settings,
    dom: &Domain,
    written: &[(Vec<f32>, Vec<f32>)],
) -> Result<Vec<[f64; 2]>, Box<dyn std::error::Error>> {
    let adios = Adios::with_config(Some(&s.adios_config), world)?;
    let io = adios.declare_io("SimulationCheck")?;
    let mut r = io.open(&s.output.to_string_lossy(), OpenMode::Read)?;
    let mut out = Vec::new();
    while r.begin_step(-1.0)? == StepStatus::Ok {
        let want = written
            .get(out.len())
            .ok_or("the file holds more steps than were written")?;
        let mut e = [0.0; 2];
        for (f, (name, orig)) in [("U", &want.0), ("V", &want.1)].into_iter().enumerate() {
            let mut var = io.inquire_variable::<f32>(name)?;
            var.set_selection(&dom.start, &dom.n)?;
            let got = r.get(&var)?;
            let sq: f64 = got
                .iter()
                .zip(orig.iter())
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum();
            let (lo, hi) = finite_min_max(orig.iter().map(|&x| x as f64));
            let (mut gsq, mut glo, mut ghi) = (0.0, 0.0, 0.0);
            world.all_reduce_into(&sq, &mut gsq, SystemOperation::sum());
            world.all_reduce_into(&lo, &mut glo, SystemOperation::min());
            world.all_reduce_into(&hi, &mut ghi, SystemOperation::max());
            let range: f64 = ghi - glo;
            e[f] = (gsq / s.l.pow(3) as f64).sqrt() / if range > 0.0 { range } else { 1.0 };
        }
        r.end_step()?;
        out.push(e);
    }
    r.close()?;
    if out.len() != written.len() {
        return Err(format!("read {} steps, wrote {}", out.len(), written.len()).into());
    }
    Ok(out)
}

/// `--temporal-bench DIR`: the simulation for each target and output interval, with the
/// synchronous writer, with and without temporal prediction.
fn temporal_bench(
    world: &SimpleCommunicator,
    s: &Settings,
    opts: &Options,
    dir: &std::path::Path,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let k = opts.keyframes;
    let mut rows = Vec::new();
    for tau in ["1e-4", "1e-5", "1e-6"] {
        let spatial = TempConfig(operator_config(&s.adios_config, None, Some(tau))?);
        let with = TempConfig(operator_config(&s.adios_config, Some(k), Some(tau))?);
        for gap in [5, 10, 20] {
            let s = Settings {
                plotgap: gap,
                adios_config: spatial.0.clone(),
                output: dir.join("gs.bp"),
                ..s.clone()
            };
            let o = Options {
                outputs: Vec::new(),
                queue: 0,
                repeat: 1,
                plot: None,
                io: None,
                verify: true,
                temporal: Some(with.0.clone()),
                keyframes: k,
                bench: None,
                contention: None,
            };
            let side = |output| -> Result<temporal_bench::Side, String> {
                let r = simulate(world, &s, output, &o).map_err(|e| e.to_string())?;
                let n = r.steps.len().max(1) as f64;
                Ok(temporal_bench::Side {
                    file_bytes: r.file_bytes,
                    compress_s: r.steps.iter().map(|x| x.compress_s).sum::<f64>() / n,
                    nrmse: (r.steps.iter())
                        .flat_map(|x| x.nrmse.into_iter().flatten())
                        .fold(0.0, f64::max),
                })
            };
            // Runs interleaved; the median compression time of each (the bytes are the same
            // every time).
            let mut runs = (Vec::new(), Vec::new());
            for _ in 0..opts.repeat {
                runs.0.push(side(Output::Residuum(WriteMode::Sync))?);
                runs.1.push(side(Output::Temporal(WriteMode::Sync))?);
            }
            let median = |v: Vec<temporal_bench::Side>| temporal_bench::Side {
                compress_s: compare::median(&v.iter().map(|x| x.compress_s).collect::<Vec<_>>()),
                ..v[0]
            };
            let row = temporal_bench::Row {
                nrmse: tau.parse().unwrap(),
                plotgap: gap,
                spatial: median(runs.0),
                temporal: median(runs.1),
            };
            if world.rank() == 0 {
                println!(
                    "NRMSE {tau}, output every {gap}: {} bytes without, {} with temporal={k}",
                    row.spatial.file_bytes, row.temporal.file_bytes
                );
            }
            rows.push(row);
        }
    }
    if world.rank() == 0 {
        let title = format!(
            "Gray-Scott L={} on {} rank(s), {} steps: temporal={k} against spatial coding",
            s.l,
            world.size(),
            s.steps
        );
        compare::register_font()?;
        temporal_bench::report(&rows, k, &title, dir)?;
    }
    Ok(())
}

/// `--contention-bench SECONDS`: after `steps` steps, how much compressing U and V on the other
/// core (as the operator's default settings at `nrmse=1e-5`, one thread) slows the simulation,
/// and how much copying memory there does, each measured for SECONDS (see
/// `common/contention.rs`). One rank, which should own two cores.
fn contention_bench(world: &SimpleCommunicator, s: &Settings, seconds: f64) -> Result<(), String> {
    if world.size() != 1 {
        return Err("--contention-bench runs on one rank".into());
    }
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!(
            "--contention-bench {seconds}: seconds must be finite and positive"
        ));
    }
    let mut dom = Domain::new(s, world);
    for _ in 0..s.steps {
        dom.advance(world, s);
    }
    let (u, v) = (dom.interior(&dom.u), dom.interior(&dom.v));
    let codec = residuum::Codec::from_pairs([("nrmse", "1e-5"), ("threads", "1")])
        .map_err(|e| e.to_string())?;
    let dims = [s.l; 3];
    let failed = AtomicBool::new(false);
    let compress = || {
        for f in [&u, &v] {
            if codec.compress(&dims, f).is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        }
    };
    println!(
        "Gray-Scott L={} after {} steps, {} owned core(s): a step's time while the other thread works against while it sleeps (medians)",
        s.l,
        s.steps,
        residuum::owned_cores()
    );
    let mut step = || dom.advance(world, s);
    let c = contention::measure(&mut step, &compress, seconds);
    contention::print("compressing U and V (nrmse=1e-5, one thread)", &c);
    let c = contention::measure(&mut step, &contention::copy_buffers(), seconds);
    contention::print("copying 64 MiB buffers (memory traffic alone)", &c);
    if failed.load(Ordering::Relaxed) {
        return Err("compressing a field failed".into());
    }
    Ok(())
}

fn run(world: &SimpleCommunicator, s: &Settings, opts: &Options) -> Result<(), String> {
    if let Some(seconds) = opts.contention {
        return contention_bench(world, s, seconds);
    }
    if let Some(dir) = &opts.bench {
        return temporal_bench(world, s, opts, dir);
    }
    let (rank, size) = (world.rank(), world.size() as usize);
    let cores = residuum::owned_cores();
    if rank == 0 {
        println!(
            "gray_scott: {size} ranks of {cores} core(s), rank grid {:?}, L={} ({} values per field), {} steps, output every {}",
            rank_grid(size),
            s.l,
            s.l.pow(3),
            s.steps,
            s.plotgap
        );
    }
    if rank == 0 && opts.outputs.len() > 1 {
        let default = WriteMode::Auto.queue(opts.queue, cores) > 0;
        println!(
            "each rank owns {cores} core(s) ({size} ranks on {} cores): the default writer here \
             is {}",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            if default {
                "the async one (a core to spare compresses while the simulation computes)"
            } else {
                "the synchronous one (no core to spare: an async writer could only take turns \
                 with the simulation; give ranks 2 cores, e.g. mpirun --map-by slot:PE=2)"
            }
        );
    }
    let mut runs: Vec<(Output, Vec<RunReport>)> =
        opts.outputs.iter().map(|&o| (o, Vec::new())).collect();
    for round in 1..=opts.repeat {
        for (output, reports) in runs.iter_mut() {
            let report = simulate(world, s, *output, opts).map_err(|e| e.to_string())?;
            if rank == 0 && opts.repeat > 1 {
                let waited = report
                    .waited_s
                    .map(|w| format!("  (rank 0's simulation thread waited {w:.3} s for a CPU)"))
                    .unwrap_or_default();
                println!(
                    "run {round}/{}: {:<30} {:8.3} s{waited}",
                    opts.repeat,
                    output.label(),
                    report.total
                );
            }
            reports.push(report);
        }
    }
    if rank != 0 {
        return Ok(());
    }
    // Each configuration's median run in detail.
    let median = |r: &Vec<RunReport>| {
        let totals: Vec<f64> = r.iter().map(|x| x.total).collect();
        compare::median_run(&totals)
    };
    for (output, reports) in &runs {
        print_report(*output, s, &reports[median(reports)], opts.io.as_deref());
    }
    let summary: Vec<compare::Runs> = runs
        .iter()
        .map(|(o, r)| {
            let m = &r[median(r)];
            compare::Runs {
                label: o.label(),
                totals: r.iter().map(|x| x.total).collect(),
                parts: r
                    .iter()
                    .map(|x| {
                        let sum = |f: fn(&StepReport) -> f64| x.steps.iter().map(f).sum::<f64>();
                        [sum(|s| s.compute_s), sum(|s| s.output_s), x.close_s]
                    })
                    .collect(),
                steps: m
                    .steps
                    .iter()
                    .map(|x| (x.step, x.compute_s, x.output_s))
                    .collect(),
                file_bytes: m.file_bytes,
            }
        })
        .collect();
    if runs.len() > 1 || opts.repeat > 1 {
        compare::summarize(&summary);
    }
    let get = |o: Output| {
        summary
            .iter()
            .zip(&runs)
            .find(|(_, r)| r.0 == o)
            .map(|x| x.0)
    };
    if let (Some(raw), Some(rsd)) = (get(Output::Raw), get(Output::Residuum(WriteMode::Sync))) {
        println!(
            "  file size ratio (uncompressed / residuum): {:.2}",
            raw.file_bytes as f64 / rsd.file_bytes.max(1) as f64
        );
    }
    // Bytes the operator wrote, with and without temporal prediction.
    let stored = |temporal: bool| {
        let r = runs
            .iter()
            .find(|r| r.0.residuum() && matches!(r.0, Output::Temporal(_)) == temporal)?;
        Some(
            r.1[median(&r.1)]
                .steps
                .iter()
                .map(|x| x.stored_bytes)
                .sum::<u64>(),
        )
    };
    if let (Some(spatial), Some(temporal)) = (stored(false), stored(true)) {
        println!(
            "  temporal prediction: {temporal} bytes compressed against {spatial} without \
             ({:.2}x smaller)",
            spatial as f64 / temporal.max(1) as f64
        );
    }
    let none = summary.first().map(|r| compare::median(&r.totals));
    let overhead = |o| {
        get(o)
            .zip(none)
            .map(|(r, n)| compare::median(&r.totals) - n)
    };
    if let (Some(sy), Some(asy)) = (
        overhead(Output::Residuum(WriteMode::Sync)),
        overhead(Output::Residuum(WriteMode::Async)),
    ) {
        println!(
            "  residuum overhead (medians): synchronous {sy:.3} s, async writer {asy:.3} s (async/sync {:.2})",
            asy / sy
        );
    }
    if let Some(path) = &opts.plot {
        let title = format!(
            "Gray-Scott L={} on {size} rank(s) of {cores} core(s): per output step (median runs)",
            s.l
        );
        compare::plot(&summary, &title, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_report(output: Output, s: &Settings, r: &RunReport, io: Option<&str>) {
    let through = match (output.residuum(), io) {
        (true, Some(io)) => format!(" (IO {io})"),
        _ => String::new(),
    };
    println!("{}{through}: {:.3} s in all", output.label(), r.total);
    if output == Output::None {
        return;
    }
    println!(
        "  {:>6} {:>10} {:>10} {:>10} {:>12} {:>12} {:>11} {:>11}",
        "step", "compute s", "output s", "writer s", "raw bytes", "stored", "NRMSE U", "NRMSE V"
    );
    for r in &r.steps {
        // Unverified runs (--no-verify, streams) say so rather than show an exact 0.
        let [u, v] = r
            .nrmse
            .map_or(["-".into(), "-".into()], |e| e.map(|x| format!("{x:.3e}")));
        println!(
            "  {:>6} {:>10.4} {:>10.4} {:>10.4} {:>12} {:>12} {u:>11} {v:>11}",
            r.step, r.compute_s, r.output_s, r.write_s, r.raw_bytes, r.stored_bytes,
        );
    }
    if r.copied_here > 0 {
        println!(
            "  rank 0 copied {} of {} lent steps itself: the writer had not got to them when \
             the simulation needed their arrays again",
            r.copied_here,
            r.steps.len()
        );
    }
    let raw: u64 = r.steps.iter().map(|r| r.raw_bytes).sum();
    let stored: u64 = r.steps.iter().map(|r| r.stored_bytes).sum();
    if r.file_bytes == 0 {
        println!(
            "  {} streamed: {raw} bytes raw, {stored} bytes compressed (ratio {:.2})",
            s.output.display(),
            raw as f64 / stored.max(1) as f64
        );
    } else {
        println!(
            "  {} written: {raw} bytes raw, {} bytes on disk (ratio {:.2})",
            s.output.display(),
            r.file_bytes,
            raw as f64 / r.file_bytes.max(1) as f64
        );
    }
}

/// `GRAY_SCOTT_FILE_LIMIT=BYTES` caps the size of files this process writes (RLIMIT_FSIZE),
/// to see how a full disk surfaces: writes past it fail with EFBIG (SIGXFSZ is ignored, so the
/// failure comes back as an error instead of killing the rank). Set after MPI's start-up, whose
/// own files it must not limit.
fn limit_file_size() {
    let Some(bytes) = std::env::var("GRAY_SCOTT_FILE_LIMIT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
    }
}

fn main() {
    let (settings, opts) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gray_scott: {e}");
            std::process::exit(2);
        }
    };
    // The step writer's thread calls MPI while the simulation exchanges halos.
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Multiple)
        .expect("MPI initialisation failed");
    let world = universe.world();
    limit_file_size();
    let grid = rank_grid(world.size() as usize);
    let outcome = match grid.iter().any(|&g| g > settings.l) {
        // Empty boxes: their faces would relay stale halos, and verifying would panic.
        true => Err(format!(
            "{} ranks split L={} as {grid:?}: at most L ranks along each axis",
            world.size(),
            settings.l
        )),
        false => run(&world, &settings, &opts),
    };
    drop(opts.temporal.map(TempConfig));
    if let Err(e) = outcome {
        // One write, so that the ranks' lines do not interleave.
        let line = format!("gray_scott rank {}: ERROR: {e}\n", world.rank());
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        // The step writer decides on each step collectively, so its errors reach every rank:
        // finish MPI and exit normally, with a failing status. Any other error may be this
        // rank's alone, with the others waiting in a halo exchange: abort.
        if !e.contains("writing step") {
            world.abort(1);
        }
        drop(universe);
        std::process::exit(1);
    }
}
