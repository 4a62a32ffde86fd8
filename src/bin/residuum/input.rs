//! Reading arrays: raw little-endian files (shape and type given) or `.npy`.

use residuum::ElementType;
use std::path::Path;

pub struct Array {
    pub dims: Vec<usize>,
    pub dtype: ElementType,
    /// Little-endian element bytes, C order.
    pub bytes: Vec<u8>,
}

impl Array {
    pub fn values(&self) -> Vec<f64> {
        to_f64(&self.bytes, self.dtype)
    }
}

pub use residuum::codec::raw_to_f64 as to_f64;

pub fn parse_dims(s: &str) -> Result<Vec<usize>, String> {
    s.split('x')
        .map(|d| {
            d.trim()
                .parse()
                .map_err(|_| format!("--dims: '{d}' is not a number"))
        })
        .collect()
}

/// Loads `path`: `.npy` carries its own shape and type; raw files need `dims` and `dtype`.
pub fn load(path: &Path, dims: Option<&str>, dtype: Option<ElementType>) -> Result<Array, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return parse_npy(bytes).map_err(|e| format!("{}: {e}", path.display()));
    }
    let dims = parse_dims(dims.ok_or("raw input needs --dims (or use a .npy file)")?)?;
    let dtype = dtype.ok_or("raw input needs --type f32|f64 (or use a .npy file)")?;
    let need = dims.iter().product::<usize>() * dtype.size();
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

/// A strict `.npy` reader: versions 1-3, little-endian f4/f8, C order.
fn parse_npy(bytes: Vec<u8>) -> Result<Array, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated .npy header")?;
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
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-order arrays are not supported; save with C order".into());
    }
    let shape = field("shape")?;
    let shape = &shape[1..shape.find(')').ok_or("bad shape in .npy header")?];
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("bad extent '{s}' in .npy shape"))
        })
        .collect::<Result<_, _>>()?;
    let data = bytes[start + hlen..].to_vec();
    if data.len() != dims.iter().product::<usize>() * dtype.size() {
        return Err("data size does not match the .npy shape".into());
    }
    Ok(Array {
        dims,
        dtype,
        bytes: data,
    })
}
