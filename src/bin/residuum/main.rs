//! The `residuum` command line, in the style SZ3 users know:
//!
//! residuum compress -i field.f32 --dims 744x33x49 --type f32 --nrmse 1e-5 -o field.rsd
//! residuum decompress -i field.rsd -o field.out
//! residuum eval -i field.f32 --dims 744x33x49 --type f32 --nrmse 1e-5
//! residuum info -i field.rsd
//! residuum train --data field_100x64x128.f32 --out model.safetensors --seconds 60
//! residuum compress ... -p model=model.safetensors [-p residual=gae]

mod bench;
mod fields;
mod input;
#[cfg(feature = "peers")]
mod peers;
mod plot;
mod results;
mod train;
mod train_nglr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use residuum::internals::quality;
use residuum::internals::{fold3, Grid};
use residuum::{Codec, ElementType};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "residuum",
    version,
    about = "Error-bounded compression of scientific floating-point data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Type {
    F32,
    F64,
}

/// The input array: raw little-endian (needs --dims and --type unless its name ends in its
/// shape, as `x_100x64x128.f32`) or .npy.
#[derive(Args)]
struct InputArgs {
    #[arg(short, long)]
    input: PathBuf,
    /// Shape, slowest dimension first, e.g. 744x33x49 (default: from a name such as
    /// x_744x33x49.f32, whose extension gives the type).
    #[arg(long)]
    dims: Option<String>,
    #[arg(long, value_enum)]
    r#type: Option<Type>,
}

/// Error target and codec parameters.
#[derive(Args)]
struct CodecArgs {
    /// NRMSE target: the RMS error of every block is at most τ · R, R the value range of the
    /// whole input array (or the number given with -p range=R).
    #[arg(long, group = "target")]
    nrmse: Option<f64>,
    /// Pointwise absolute error bound.
    #[arg(long, group = "target")]
    abs: Option<f64>,
    /// Pointwise error bound relative to the value range R of the whole input array (or -p
    /// range=R).
    #[arg(long, group = "target")]
    rel: Option<f64>,
    /// PSNR target in dB against the value range of the whole input array, met in every block.
    #[arg(long, group = "target")]
    psnr: Option<f64>,
    /// Bit-exact compression.
    #[arg(long, group = "target")]
    lossless: bool,
    /// More operator parameters as key=value (block=16x64x64, threads=2, range=..., level=...).
    #[arg(long = "param", short = 'p')]
    params: Vec<String>,
}

impl CodecArgs {
    fn codec(&self) -> Result<Codec, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if self.lossless {
            pairs.push(("mode".into(), "lossless".into()));
        }
        for (k, v) in [
            ("nrmse", self.nrmse),
            ("abs", self.abs),
            ("rel", self.rel),
            ("psnr", self.psnr),
        ] {
            if let Some(v) = v {
                pairs.push((k.into(), v.to_string()));
            }
        }
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .ok_or(format!("--param '{p}': expected key=value"))?;
            pairs.push((k.into(), v.into()));
        }
        let codec = Codec::from_pairs(pairs).map_err(|e| e.to_string())?;
        // Settings of a writer's steps: one array here has none to predict from or learn on.
        let c = codec.config();
        if let Some(key) = [
            ("temporal", c.temporal > 0),
            ("train", c.train > 0),
            ("train_nglr", c.train_nglr > 0),
        ]
        .into_iter()
        .find_map(|(k, on)| on.then_some(k))
        {
            return Err(format!(
                "-p {key}= serves the ADIOS2 operator's steps; the CLI compresses one array \
                 (models and networks come from `residuum train`)"
            ));
        }
        Ok(codec)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Compress an array into a residuum stream.
    Compress {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        codec: CodecArgs,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Decompress a residuum stream into a raw little-endian array.
    Decompress {
        #[arg(short, long)]
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Compress and decompress in memory; report ratio, errors and speed.
    Eval {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        codec: CodecArgs,
    },
    /// Compare residuum with SZ3, ZFP and SPERR (feature `peers`) over fields and NRMSE targets.
    Bench(bench::BenchArgs),
    /// Train a base model (an autoencoder, with candle) on fields; writes it as safetensors,
    /// with its loss curve as CSV and PNG beside it.
    Train(train::TrainArgs),
    /// Print a stream's header.
    Info {
        #[arg(short, long)]
        input: PathBuf,
    },
}

fn dtype(t: Option<Type>) -> Option<ElementType> {
    t.map(|t| match t {
        Type::F32 => ElementType::F32,
        Type::F64 => ElementType::F64,
    })
}

fn compress(codec: &Codec, a: &input::Array) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let len = codec.max_compressed_len(a.dtype, &a.dims);
    out.try_reserve_exact(len)
        .map_err(|_| format!("cannot allocate {len} bytes for the stream"))?;
    out.resize(len, 0);
    let n = codec
        .compress_bytes(a.dtype, &a.dims, &a.bytes, &mut out)
        .map_err(|e| e.to_string())?;
    out.truncate(n);
    Ok(out)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Compress {
            input,
            codec,
            output,
        } => compress_cmd(&input, &codec, &output),
        Command::Decompress { input, output } => decompress_cmd(&input, &output),
        Command::Eval { input, codec } => eval_cmd(&input, &codec),
        Command::Bench(args) => bench::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Info { input } => info_cmd(&input),
    }
}

fn compress_cmd(input: &InputArgs, codec: &CodecArgs, output: &Path) -> Result<(), String> {
    let a = input::load(&input.input, input.dims.as_deref(), dtype(input.r#type))?;
    let s = compress(&codec.codec()?, &a)?;
    input::write_output(output, &s, &[&input.input])?;
    println!(
        "{} -> {}: {} -> {} bytes, ratio {:.3}",
        input.input.display(),
        output.display(),
        a.bytes.len(),
        s.len(),
        a.bytes.len() as f64 / s.len() as f64
    );
    Ok(())
}

fn decompress_cmd(input: &Path, output: &Path) -> Result<(), String> {
    let s = input::read_stream(input)?;
    let (_, bytes) = residuum::decode(&s).map_err(|e| format!("{}: {e}", input.display()))?;
    input::write_output(output, &bytes, &[input])?;
    Ok(())
}

fn eval_cmd(input: &InputArgs, codec: &CodecArgs) -> Result<(), String> {
    let a = input::load(&input.input, input.dims.as_deref(), dtype(input.r#type))?;
    let codec = codec.codec()?;
    let t0 = Instant::now();
    let s = compress(&codec, &a)?;
    let tc = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let (info, back) = residuum::decode(&s).map_err(|e| e.to_string())?;
    let td = t1.elapsed().as_secs_f64();
    let grid = Grid::new(fold3(&a.dims), info.block);
    let (mut orig, mut back) = (a.values(), a.dtype.to_f64s(&back));
    // Fill values (`-p fill=`) are special like NaN: exact, outside the range and the error.
    // Matched by bits, as the codec matches them (fill=0 leaves -0.0 to be coded like any value).
    let mut fill_changed = 0;
    if let Some(f) = codec.config().fill {
        let f = if a.dtype == ElementType::F32 {
            f as f32 as f64
        } else {
            f
        };
        for (x, y) in orig
            .iter_mut()
            .zip(back.iter_mut())
            .filter(|(x, _)| x.to_bits() == f.to_bits())
        {
            fill_changed += usize::from(y.to_bits() != x.to_bits());
            (*x, *y) = (f64::NAN, f64::NAN);
        }
    }
    let q = quality(&orig, &back, &grid);
    let mb = a.bytes.len() as f64 / 1e6;
    println!(
        "file {}  dims {:?}  type {}  target {} {}",
        input.input.display(),
        a.dims,
        a.dtype,
        info.target.name(),
        info.target.value()
    );
    println!(
        "CR {:.4}  ({} -> {} bytes, {:.4} bits/value)",
        a.bytes.len() as f64 / s.len() as f64,
        a.bytes.len(),
        s.len(),
        s.len() as f64 * 8.0 / (a.bytes.len() / a.dtype.size()).max(1) as f64
    );
    println!(
        "NRMSE global {:.4e}  worst block {:.4e}  PSNR {:.2} dB  max error {:.4e}",
        q.nrmse, q.worst_block_nrmse, q.psnr, q.max_abs
    );
    println!(
        "compress {:.1} MB/s  decompress {:.1} MB/s",
        mb / tc,
        mb / td
    );
    if q.specials_changed + fill_changed > 0 {
        return Err(format!(
            "{} NaN/Inf/fill values were not reproduced",
            q.specials_changed + fill_changed
        ));
    }
    Ok(())
}

fn info_cmd(input: &Path) -> Result<(), String> {
    let s = input::read_stream(input)?;
    let info = residuum::stream_info(&s).map_err(|e| format!("{}: {e}", input.display()))?;
    let dims: Vec<String> = info.dims.iter().map(ToString::to_string).collect();
    println!(
        "type {}, dims {}, mode {} {}, block {:?}, {} bytes -> {} bytes",
        info.dtype,
        dims.join("x"),
        info.target.name(),
        info.target.value(),
        info.block,
        info.decoded_len(),
        s.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    // As other Unix tools: a closed pipe (`residuum bench ... | head`) ends the process quietly,
    // where Rust's default makes `println!` panic on the write error.
    // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("residuum: {e}");
            ExitCode::FAILURE
        }
    }
}
