//! Reading arrays: raw little-endian files (shape and type given) or `.npy`.

use residuum::ElementType;
use std::io::{Read, Write};
use std::path::Path;

pub struct Array {
    pub dims: Vec<usize>,
    pub dtype: ElementType,
    /// Little-endian element bytes, C order.
    pub bytes: Vec<u8>,
}

impl Array {
    pub fn values(&self) -> Vec<f64> {
        self.dtype.to_f64s(&self.bytes)
    }
}

pub fn parse_dims(s: &str) -> Result<Vec<usize>, String> {
    s.split('x')
        .map(|d| {
            d.trim()
                .parse()
                .map_err(|_| format!("--dims: '{d}' is not a number"))
        })
        .collect()
}

/// Bytes of an array of `dims`: the true product in the message when it cannot be addressed,
/// never a wrapped one.
pub fn array_bytes(dims: &[usize], dtype: ElementType) -> Result<usize, String> {
    let values = dims
        .iter()
        .try_fold(1u128, |a, &d| a.checked_mul(d as u128));
    let bytes = values.and_then(|v| v.checked_mul(dtype.size() as u128));
    match bytes {
        Some(b) if b <= isize::MAX as u128 => Ok(b as usize),
        _ => Err(format!(
            "shape {dims:?} of {dtype} has {} values, more than can be addressed",
            values.map_or("over 2^128".to_string(), |v| v.to_string())
        )),
    }
}

/// Reads at most `max` bytes of `path` (an error beyond, before reading it where the size is
/// known), so that a device such as /dev/zero or a wrong size cannot exhaust memory.
pub fn read_at_most(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(at)?;
    let meta = file.metadata().map_err(at)?;
    let too_large = || format!("{}: more than the {max} bytes expected", path.display());
    if meta.is_file() && meta.len() > max as u64 {
        return Err(too_large());
    }
    read_rest(file, Vec::new(), max)
        .map_err(at)?
        .ok_or_else(too_large)
}

/// Appends what is left of `f` to `bytes`, up to `max` bytes in all; None if there is more.
fn read_rest(f: std::fs::File, mut bytes: Vec<u8>, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let left = max.saturating_sub(bytes.len()) as u64;
    f.take(left + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= max).then_some(bytes))
}

/// Reads a residuum stream: its magic first, so that a device or a file of another kind is
/// refused at once, then at most the decode limit.
pub fn read_stream(path: &Path) -> Result<Vec<u8>, String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| at(e.to_string()))?;
    let mut magic = [0u8; 4];
    let got = read_full(&mut f, &mut magic).map_err(at)?;
    if magic[..got] != residuum::internals::format::MAGIC[..] {
        return Err(at("not a residuum stream (bad magic)".into()));
    }
    let max = residuum::DecodeOptions::default().max_decoded_bytes;
    read_rest(f, magic.to_vec(), max)
        .map_err(|e| at(e.to_string()))?
        .ok_or_else(|| at(format!("a stream of more than {max} bytes")))
}

/// The shape and type a raw file's name carries, as `bench` and `train` read fields and as
/// ../shared/data names them: `name_100x64x128.f32` (or `.f64`).
pub fn named_shape(path: &Path) -> Option<(String, ElementType)> {
    let dtype = match path.extension()?.to_str()? {
        "f32" => ElementType::F32,
        "f64" => ElementType::F64,
        _ => return None,
    };
    let stem = path.file_stem()?.to_str()?;
    let dims = stem.rsplit('_').next()?;
    parse_dims(dims).is_ok().then(|| (dims.to_string(), dtype))
}

/// Loads `path`: `.npy` carries its own shape and type; raw files need `dims` and `dtype`,
/// given or carried by the name ([`named_shape`]; what is given wins).
pub fn load(path: &Path, dims: Option<&str>, dtype: Option<ElementType>) -> Result<Array, String> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        // Given, they would be ignored: the header's shape and type are the array's.
        if dims.is_some() || dtype.is_some() {
            return Err(format!(
                "{}: a .npy file carries its shape and type; leave out --dims and --type",
                path.display()
            ));
        }
        return load_npy(path).map_err(|e| format!("{}: {e}", path.display()));
    }
    let named = named_shape(path);
    let dims = dims.or(named.as_ref().map(|(d, _)| d.as_str()));
    let needs = |what: &str| {
        format!(
            "raw input needs {what} (or use a .npy file, or a name ending in its \
             shape: x_100x64x128.f32)"
        )
    };
    let dims = parse_dims(dims.ok_or_else(|| needs("--dims"))?)?;
    let dtype = dtype
        .or(named.map(|(_, t)| t))
        .ok_or_else(|| needs("--type f32|f64"))?;
    let need = array_bytes(&dims, dtype)?;
    let bytes = read_at_most(path, need)?;
    if bytes.len() != need {
        return Err(format!(
            "{}: {} bytes, but {:?} {} needs {need}",
            path.display(),
            bytes.len(),
            dims,
            dtype
        ));
    }
    Ok(Array { dims, dtype, bytes })
}

/// Reads a `.npy` file: its header first, then no more data than the header's shape needs.
fn load_npy(path: &Path) -> Result<Array, String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    let got = read_full(&mut f, &mut head)?;
    let head = &head[..got];
    let (hlen, start) = npy_prelude(head)?;
    // numpy writes headers of a few hundred bytes; a larger length is not a header to allocate.
    if hlen > 1 << 20 {
        return Err(format!(".npy header of {hlen} bytes"));
    }
    let mut header = vec![0u8; start + hlen];
    header[..got].copy_from_slice(head);
    if read_full(&mut f, &mut header[got..])? != start + hlen - got {
        return Err("truncated .npy header".into());
    }
    let (dims, dtype) = parse_npy_header(&header[start..])?;
    let need = array_bytes(&dims, dtype)?;
    match read_rest(f, Vec::new(), need).map_err(|e| e.to_string())? {
        Some(bytes) if bytes.len() == need => Ok(Array { dims, dtype, bytes }),
        _ => Err("data size does not match the .npy shape".into()),
    }
}

/// Fills `buf` as far as the file goes; returns the bytes read.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).map_err(|e| e.to_string())? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Magic and version of a `.npy` file: the header's length and where it starts.
fn npy_prelude(bytes: &[u8]) -> Result<(usize, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    match bytes[6] {
        1 => Ok((u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)),
        2 | 3 if bytes.len() >= 12 => Ok((
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        )),
        v => Err(format!("unsupported .npy version {v}")),
    }
}

/// A strict `.npy` header: little-endian f4/f8, C order.
fn parse_npy_header(header: &[u8]) -> Result<(Vec<usize>, ElementType), String> {
    let header = std::str::from_utf8(header).map_err(|_| "bad .npy header")?;
    let field = |key: &str| -> Result<&str, String> {
        let i = header
            .find(&format!("'{key}'"))
            .ok_or(format!(".npy header lacks '{key}'"))?;
        Ok(header[i + key.len() + 2..]
            .trim_start()
            .trim_start_matches(':')
            .trim_start())
    };
    let dtype = match field("descr")? {
        d if d.starts_with("'<f4'") => ElementType::F32,
        d if d.starts_with("'<f8'") => ElementType::F64,
        d => {
            return Err(format!(
                "unsupported dtype {}: little-endian float32/float64 only",
                d.split(',').next().unwrap_or(d)
            ))
        }
    };
    match field("fortran_order")? {
        f if f.starts_with("False") => {}
        f if f.starts_with("True") => {
            return Err("Fortran-order arrays are not supported; save with C order".into())
        }
        f => {
            return Err(format!(
                "bad fortran_order {}: expected True or False",
                f.split([',', '}']).next().unwrap_or(f).trim()
            ))
        }
    }
    let shape = field("shape")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.find(')').map(|e| &s[..e]))
        .ok_or("bad shape in .npy header")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("bad extent '{s}' in .npy shape"))
        })
        .collect::<Result<_, _>>()?;
    Ok((dims, dtype))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, renamed into place
/// once complete: a failed write (a full disk) leaves no partial output, and an existing file
/// stays as it was. An existing path that is no regular file (a device such as /dev/null, a
/// pipe, /dev/stdout) is written directly: renaming over it would replace it with a file.
/// `path` may not be one of `inputs`.
pub fn write_output(path: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<(), String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    not_an_input(path, inputs)?;
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(format!("{}: is a directory", path.display())),
        Ok(m) if !m.is_file() => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(at)?;
            return f.write_all(bytes).map_err(at);
        }
        _ => {}
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.residuum-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        // A new file: never one that is there (a symbolic link planted under the name).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        at(e)
    })
}

/// An error where `path` names one of `inputs` (checked before the work that makes an output,
/// as well as when writing it).
pub fn not_an_input(path: &Path, inputs: &[&Path]) -> Result<(), String> {
    match inputs.iter().find(|i| same_file(path, i)) {
        Some(_) => Err(format!(
            "{}: the output is an input file; choose another output",
            path.display()
        )),
        None => Ok(()),
    }
}

/// Whether `a` and `b` name the same existing file (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
