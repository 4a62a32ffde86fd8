//! The fields a step writer puts: what each is (its global shape and this rank's box), and one
//! step's values of it, handed over to the writer (and lent back by `StepWriter::buffers`).

use super::{AdiosError, FieldMut};
use crate::bound::{finite_min_max, finite_min_max_of, finite_min_max_of_f32};

/// A field the writer puts every step: a global array of which this rank writes one box.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub start: Vec<usize>,
    pub count: Vec<usize>,
    pub double: bool,
    /// The value that marks missing data, as the field's operation has it (`fill=`): left out
    /// of the ranges handed to `range=rank|global`. None takes the operation's `fill=` from the
    /// writer's configuration; a different value there is refused at opening.
    pub fill: Option<f64>,
}

impl FieldSpec {
    /// Values in this rank's block of the field (within `isize::MAX` bytes once `check`ed).
    /// Saturating, as `local_bytes`: a count of 0 after extents whose product overflows is an
    /// empty block that `check` lets through.
    pub(crate) fn local_len(&self) -> usize {
        self.count
            .iter()
            .fold(1, |a: usize, &c| a.saturating_mul(c))
    }

    /// Whether the field is one ADIOS2 can define: a name, this rank's box inside the shape
    /// (`check_box`, as `Io::define_variable` checks it), and a block that fits in memory.
    pub(super) fn check(&self) -> Result<(), AdiosError> {
        if self.name.is_empty() || self.name.contains('\0') {
            return Err(AdiosError::Argument(format!(
                "field '{}': a field needs a name without NUL bytes",
                self.name
            )));
        }
        super::check_box(&self.name, &self.shape, &self.start, &self.count)?;
        if self.local_bytes() > isize::MAX as usize {
            return Err(AdiosError::Argument(format!(
                "field '{}': a block of {:?} values is too large",
                self.name, self.count
            )));
        }
        Ok(())
    }

    /// Bytes of this rank's block of the field.
    pub(super) fn local_bytes(&self) -> usize {
        let size = if self.double { 8 } else { 4 };
        self.count.iter().fold(size, |a, &c| a.saturating_mul(c))
    }
}

/// One step's data of a field, handed over (the writer owns it until written).
#[derive(Debug, Clone)]
pub enum FieldData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl FieldData {
    /// An empty buffer with room for `n` values of the spec's type.
    pub(super) fn with_capacity(spec: &FieldSpec, n: usize) -> Self {
        if spec.double {
            FieldData::F64(Vec::with_capacity(n))
        } else {
            FieldData::F32(Vec::with_capacity(n))
        }
    }

    /// `n` zeros of the spec's type, written once so that filling the buffer again faults in
    /// no pages.
    pub(super) fn touched(spec: &FieldSpec, n: usize) -> Self {
        match spec.double {
            true => FieldData::F64(touch(n)),
            false => FieldData::F32(touch(n)),
        }
    }

    pub(super) fn is_double(&self) -> bool {
        matches!(self, FieldData::F64(_))
    }

    /// Empties it, keeping room for `n` values.
    pub(super) fn clear_for(&mut self, n: usize) {
        match self {
            FieldData::F32(v) => {
                v.clear();
                v.reserve(n)
            }
            FieldData::F64(v) => {
                v.clear();
                v.reserve(n)
            }
        }
    }

    /// Holds `n` values: those it has if it has `n`, zeros otherwise (values a fill writes
    /// over).
    pub(super) fn set_len_zeroed(&mut self, n: usize) {
        match self {
            FieldData::F32(v) if v.len() != n => {
                v.clear();
                v.resize(n, 0.0)
            }
            FieldData::F64(v) if v.len() != n => {
                v.clear();
                v.resize(n, 0.0)
            }
            _ => {}
        }
    }

    /// Its values, to be written.
    pub(super) fn view(&mut self) -> FieldMut<'_> {
        match self {
            FieldData::F32(v) => FieldMut::F32(v),
            FieldData::F64(v) => FieldMut::F64(v),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            FieldData::F32(v) => v.len(),
            FieldData::F64(v) => v.len(),
        }
    }

    /// The finite values' extremes, values equal to `fill` left out.
    pub(super) fn min_max(&self, fill: Option<f64>) -> (f64, f64) {
        match (self, fill) {
            // In lanes: the writer's pass over each field before its step is written.
            (FieldData::F32(v), None) => finite_min_max_of_f32(v),
            (FieldData::F64(v), None) => finite_min_max_of(v),
            (FieldData::F32(v), Some(f)) => {
                let f = f as f32;
                finite_min_max(v.iter().filter(|&&x| x != f).map(|&x| x as f64))
            }
            (FieldData::F64(v), Some(f)) => finite_min_max(v.iter().copied().filter(|&x| x != f)),
        }
    }
}

/// `n` zeros, every page written (`vec![0.0; n]` would map zeroed pages, not write them).
fn touch<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, T::default());
    v
}

#[cfg(test)]
mod tests {
    use super::FieldSpec;

    #[test]
    fn an_empty_box_after_huge_extents_is_empty() {
        // The product of 2^33 · 2^33 overflowed before the 0 (a panic under overflow checks).
        let spec = FieldSpec {
            name: "A".into(),
            shape: vec![1 << 34, 1 << 34, 4],
            start: vec![0, 0, 0],
            count: vec![1 << 33, 1 << 33, 0],
            double: false,
            fill: None,
        };
        spec.check().unwrap();
        assert_eq!(spec.local_len(), 0);
    }
}
