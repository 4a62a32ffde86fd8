//! The fields `bench` and `train` read: `.f32` and `.f64` files named with their shape (e.g.
//! `x_100x64x128.f32`), `.npy` files, directories of them, or raw files of a given shape.

use crate::input;
use residuum::{ElementType, Float};
use std::path::PathBuf;

/// The element types a field holds: residuum's two, which every peer of `bench` takes too.
pub trait Sample: Float + Send + Sync {
    fn to_f64(self) -> f64;
    /// `v` rounded to this type (as the operator's `fill=` is).
    fn from_f64(v: f64) -> Self;
    fn is_finite(self) -> bool;
    /// The value's bits, widened.
    fn bits(self) -> u64;
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! sample {
    ($t:ty) => {
        impl Sample for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn bits(self) -> u64 {
                self.to_bits() as u64
            }
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("one element's bytes"))
            }
        }
    };
}
sample!(f32);
sample!(f64);

/// A field and its shape.
pub struct Field<T = f32> {
    pub name: String,
    pub dims: Vec<usize>,
    pub values: Vec<T>,
}

/// A field of either type, as `bench` takes them side by side.
pub enum AnyField {
    F32(Field<f32>),
    F64(Field<f64>),
}

impl AnyField {
    pub fn name(&self) -> &str {
        match self {
            AnyField::F32(f) => &f.name,
            AnyField::F64(f) => &f.name,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            AnyField::F32(f) => f.values.len(),
            AnyField::F64(f) => f.values.len(),
        }
    }
}

/// The files `paths` name: each file, and the `.f32`, `.f64` and `.npy` files of each directory.
pub fn field_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| {
                    f.extension()
                        .is_some_and(|x| x == "f32" || x == "f64" || x == "npy")
                })
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn decode<T: Sample>(name: String, a: input::Array) -> Field<T> {
    let values = a
        .bytes
        .chunks_exact(size_of::<T>())
        .map(T::from_le)
        .collect();
    Field {
        name,
        dims: a.dims,
        values,
    }
}

/// Loads the fields of `paths` (shape and type from a raw file's name, e.g. `x_100x64x128.f32`,
/// or from the `.npy` header), each in its own type.
pub fn load_any(paths: &[PathBuf]) -> Result<Vec<AnyField>, String> {
    field_files(paths)?
        .iter()
        .map(|f| {
            let stem = f
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let a = input::load(f, None, None)?;
            Ok(match a.dtype {
                ElementType::F32 => AnyField::F32(decode(stem, a)),
                ElementType::F64 => AnyField::F64(decode(stem, a)),
            })
        })
        .collect()
}

/// Loads float32 fields, as [`load_any`] (the trainers learn in float32).
pub fn load_fields(paths: &[PathBuf]) -> Result<Vec<Field>, String> {
    load_any(paths)?
        .into_iter()
        .map(|f| match f {
            AnyField::F32(f) => Ok(f),
            AnyField::F64(f) => Err(format!("{}: training takes float32 fields", f.name)),
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

/// Values equal to `fill` (rounded to the field's type, as the operator's `fill=` is) become NaN:
/// missing data (NaN is what every codec of `bench` and both trainers already leave out).
pub fn mark_missing<T: Sample>(fields: &mut [Field<T>], fill: Option<f64>) {
    let Some(fill) = fill.map(T::from_f64) else {
        return;
    };
    let nan = T::from_f64(f64::NAN);
    for x in fields.iter_mut().flat_map(|f| f.values.iter_mut()) {
        if x.bits() == fill.bits() {
            *x = nan;
        }
    }
}
