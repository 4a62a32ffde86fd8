//! Element types a stream can hold.

use crate::error::{Error, Result};

/// The floating-point types residuum compresses. The discriminant is the byte stored in streams
/// and used by the C ABI (`RESIDUUM_F32`, `RESIDUUM_F64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ElementType {
    F32 = 1,
    F64 = 2,
}

impl ElementType {
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 => 4,
            ElementType::F64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "float",
            ElementType::F64 => "double",
        }
    }

    pub fn from_code(code: u8) -> Result<Self> {
        match code {
            1 => Ok(ElementType::F32),
            2 => Ok(ElementType::F64),
            other => Err(Error::UnsupportedType(format!("code {other}"))),
        }
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
