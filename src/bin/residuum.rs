//! The `residuum` command line, in the style SZ3 users know:
//!
//! residuum compress -i field.f32 --dims 744x33x49 --type f32 -o field.rsd [--mode lossless]
//! residuum decompress -i field.rsd -o field.out
//! residuum info -i field.rsd

use clap::{Parser, Subcommand, ValueEnum};
use residuum::{Codec, ElementType};
use std::path::PathBuf;
use std::process::ExitCode;

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

#[derive(Subcommand)]
enum Command {
    /// Compress a raw little-endian array (C order) into a residuum stream.
    Compress {
        #[arg(short, long)]
        input: PathBuf,
        /// Shape, slowest dimension first, e.g. 744x33x49.
        #[arg(long)]
        dims: String,
        #[arg(long, value_enum)]
        r#type: Type,
        #[arg(short, long)]
        output: PathBuf,
        /// Operator parameters as key=value (e.g. mode=lossless level=9).
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
    },
    /// Decompress a residuum stream into a raw little-endian array.
    Decompress {
        #[arg(short, long)]
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print a stream's header.
    Info {
        #[arg(short, long)]
        input: PathBuf,
    },
}

fn read(p: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn write(p: &PathBuf, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(p, bytes).map_err(|e| format!("{}: {e}", p.display()))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Compress {
            input,
            dims,
            r#type,
            output,
            params,
        } => {
            let dims: Vec<usize> = dims
                .split('x')
                .map(|d| {
                    d.trim()
                        .parse()
                        .map_err(|_| format!("--dims: '{d}' is not a number"))
                })
                .collect::<Result<_, _>>()?;
            let pairs = params
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .ok_or(format!("--param '{p}': expected key=value"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let codec = Codec::from_pairs(pairs).map_err(|e| e.to_string())?;
            let dtype = match r#type {
                Type::F32 => ElementType::F32,
                Type::F64 => ElementType::F64,
            };
            let data = read(&input)?;
            let mut out = vec![0u8; codec.max_compressed_len(dtype, &dims)];
            let n = codec
                .compress_bytes(dtype, &dims, &data, &mut out)
                .map_err(|e| format!("{}: {e}", input.display()))?;
            write(&output, &out[..n])?;
            println!(
                "{} -> {}: {} -> {} bytes, ratio {:.3}",
                input.display(),
                output.display(),
                data.len(),
                n,
                data.len() as f64 / n as f64
            );
        }
        Command::Decompress { input, output } => {
            let (_, bytes) = residuum::decode(&read(&input)?)
                .map_err(|e| format!("{}: {e}", input.display()))?;
            write(&output, &bytes)?;
        }
        Command::Info { input } => {
            let s = read(&input)?;
            let info =
                residuum::stream_info(&s).map_err(|e| format!("{}: {e}", input.display()))?;
            let dims: Vec<String> = info.dims.iter().map(ToString::to_string).collect();
            println!(
                "type {}, dims {}, mode {}, {} bytes -> {} bytes",
                info.dtype,
                dims.join("x"),
                info.target.name(),
                info.decoded_len(),
                s.len()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("residuum: {e}");
            ExitCode::FAILURE
        }
    }
}
