//! The fields `bench` and `train` read: `.f32` files named with their shape (e.g.
//! `x_100x64x128.f32`), `.npy` files, directories of them, or raw files of a given shape.

use crate::input;
use std::path::PathBuf;

/// A float32 field and its shape.
pub struct Field {
    pub name: String,
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// The files `paths` name: each file, and the `.f32` and `.npy` files of each directory.
pub fn field_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "f32" || x == "npy"))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Loads the `.f32` files of `dir` (shape from the name, e.g. `x_100x64x128.f32`) and `.npy` files.
pub fn load_fields(paths: &[PathBuf]) -> Result<Vec<Field>, String> {
    field_files(paths)?
        .iter()
        .map(|f| {
            let stem = f
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            // The shape from the name (`input::named_shape`) or the .npy header.
            let a = input::load(f, None, None)?;
            if a.dtype != residuum::ElementType::F32 {
                return Err(format!(
                    "{}: the benchmark takes float32 fields",
                    f.display()
                ));
            }
            let values = a
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Ok(Field {
                name: stem,
                dims: a.dims,
                values,
            })
        })
        .collect()
}

/// Raw float32 files of shape `dims`.
pub fn load_raw(paths: &[PathBuf], dims: &str) -> Result<Vec<Field>, String> {
    paths
        .iter()
        .map(|p| {
            let a = input::load(p, Some(dims), Some(residuum::ElementType::F32))?;
            // The file's stem, as for named files: `--each-collection` takes its first word.
            Ok(Field {
                name: p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
                dims: a.dims.clone(),
                values: a.values().iter().map(|&v| v as f32).collect(),
            })
        })
        .collect()
}

/// Values equal to `fill` become NaN: missing data, as the operator's `fill=` treats them (NaN is
/// what every codec of `bench` and both trainers already leave out).
pub fn mark_missing(fields: &mut [Field], fill: Option<f32>) {
    let Some(fill) = fill else { return };
    for x in fields.iter_mut().flat_map(|f| f.values.iter_mut()) {
        if x.to_bits() == fill.to_bits() {
            *x = f32::NAN;
        }
    }
}
