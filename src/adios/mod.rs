//! A safe wrapper over ADIOS2's C API: an [`Adios`] object (MPI or serial) configured from XML,
//! [`Io`]s, global-array [`Variable`]s, and [`Engine`]s that put and get step by step.
//!
//! Plugin operators such as residuum's can only be attached from an XML configuration (the C API
//! cannot pass their parameters); [`Adios::with_config`] checks that every plugin library the
//! file names can be found before ADIOS2 tries to load it.
//!
//! Puts and gets are synchronous, so no buffer has to outlive a call.

mod agree;
mod config;
mod error;
mod field;
mod loan;
mod mode;
mod space;
mod stats;
mod write_thread;
mod writer;

pub use error::{AdiosError, Result};
pub use field::{FieldData, FieldSpec};
pub use loan::{FieldMut, Loan};
pub use mode::WriteMode;
pub use stats::{Compression, FieldStats, StepStats};
pub use writer::{StepWriter, WriterOptions, STATS_KEPT};

use adios2_sys as sys;
use error::{check, non_null};
use mpi::traits::AsRaw;
use std::ffi::CString;
use std::marker::PhantomData;
use std::path::Path;

/// Element types a variable can hold.
pub trait Element: Copy + Default + private::Sealed {
    const TYPE: sys::adios2_type;
    const NAME: &'static str;
}
mod private {
    pub trait Sealed {}
}
macro_rules! element {
    ($t:ty, $code:ident, $name:literal) => {
        impl private::Sealed for $t {}
        impl Element for $t {
            const TYPE: sys::adios2_type = sys::$code;
            const NAME: &'static str = $name;
        }
    };
}
element!(f32, adios2_type_float, "float");
element!(f64, adios2_type_double, "double");
element!(i8, adios2_type_int8_t, "int8_t");
element!(i16, adios2_type_int16_t, "int16_t");
element!(i32, adios2_type_int32_t, "int32_t");
element!(i64, adios2_type_int64_t, "int64_t");
element!(u8, adios2_type_uint8_t, "uint8_t");
element!(u16, adios2_type_uint16_t, "uint16_t");
element!(u32, adios2_type_uint32_t, "uint32_t");
element!(u64, adios2_type_uint64_t, "uint64_t");

/// Whether this process's box `start`+`count` of the global array `name` of `shape` is one
/// ADIOS2 can take: as many dimensions in each, and inside the shape (an end that overflows
/// is outside).
fn check_box(name: &str, shape: &[usize], start: &[usize], count: &[usize]) -> Result<()> {
    let bad = |why: String| Err(AdiosError::Argument(format!("variable '{name}': {why}")));
    if start.len() != shape.len() || count.len() != shape.len() {
        return bad("shape, start and count need the same number of dimensions".into());
    }
    let outside = |d: usize| start[d].checked_add(count[d]).is_none_or(|e| e > shape[d]);
    match (0..shape.len()).find(|&d| outside(d)) {
        Some(d) => bad(format!(
            "start {} + count {} exceeds the shape {} in dimension {d}",
            start[d], count[d], shape[d]
        )),
        None => Ok(()),
    }
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| AdiosError::Argument(format!("'{s}' contains a NUL byte")))
}

/// The ADIOS2 top-level object. Finalized on drop.
pub struct Adios {
    raw: *mut sys::adios2_adios,
    checked: config::Checked,
}

impl Adios {
    /// Collective over `comm`: ADIOS2 with an optional XML configuration file.
    pub fn with_config<C: AsRaw<Raw = mpi::ffi::MPI_Comm>>(
        config: Option<&Path>,
        comm: &C,
    ) -> Result<Adios> {
        let checked = config
            .map(config::check_config)
            .transpose()?
            .unwrap_or_default();
        Self::with_checked_config(config, checked, comm)
    }

    /// [`Adios::with_config`] with the configuration checked already (`checked` from it).
    fn with_checked_config<C: AsRaw<Raw = mpi::ffi::MPI_Comm>>(
        config: Option<&Path>,
        checked: config::Checked,
        comm: &C,
    ) -> Result<Adios> {
        let raw = match config {
            Some(path) => {
                let p = cstr(&path.to_string_lossy())?;
                // SAFETY: valid C string and communicator handle; ADIOS2 duplicates the comm.
                unsafe { sys::adios2_init_config_mpi(p.as_ptr(), comm.as_raw()) }
            }
            // SAFETY: valid communicator handle.
            None => unsafe { sys::adios2_init_mpi(comm.as_raw()) },
        };
        Ok(Adios {
            raw: non_null(raw, "adios2_init_mpi")?,
            checked,
        })
    }

    /// Without MPI (the process works alone), with an optional XML configuration file.
    pub fn serial(config: Option<&Path>) -> Result<Adios> {
        let checked = config
            .map(config::check_config)
            .transpose()?
            .unwrap_or_default();
        let raw = match config {
            Some(path) => {
                let p = cstr(&path.to_string_lossy())?;
                // SAFETY: valid C string.
                unsafe { sys::adios2_init_config_serial(p.as_ptr()) }
            }
            // SAFETY: no arguments.
            None => unsafe { sys::adios2_init_serial() },
        };
        Ok(Adios {
            raw: non_null(raw, "adios2_init_serial")?,
            checked,
        })
    }

    /// Declares (or, if the configuration defined it, returns) the IO named `name`.
    pub fn declare_io(&self, name: &str) -> Result<Io<'_>> {
        let n = cstr(name)?;
        // SAFETY: self.raw is live; the IO is owned by it and lives as long as `self`.
        let raw = unsafe { sys::adios2_declare_io(self.raw, n.as_ptr()) };
        Ok(Io {
            raw: non_null(raw, "adios2_declare_io")?,
            residuum_vars: self.checked.residuum_vars.get(name),
        })
    }
}

impl Drop for Adios {
    fn drop(&mut self) {
        // SAFETY: created by adios2_init_*, finalized once. Errors cannot be reported from drop.
        unsafe { sys::adios2_finalize(self.raw) };
    }
}

/// Open modes of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    Write,
    Append,
    /// Step-by-step reading (streaming engines, and BP5 files read in order).
    Read,
    /// Random access to all steps of a file.
    ReadRandomAccess,
}

/// A group of variables with its engine settings.
pub struct Io<'a> {
    raw: *mut sys::adios2_io,
    /// Variables the configuration gives a residuum operation (they must be float or double).
    residuum_vars: Option<&'a std::collections::HashMap<String, Option<f64>>>,
}

impl<'a> Io<'a> {
    /// Sets the engine type (e.g. "BP5", "SST") unless the XML configuration did.
    pub fn set_engine(&self, engine: &str) -> Result<()> {
        let e = cstr(engine)?;
        // SAFETY: live IO handle, valid C string.
        check(
            unsafe { sys::adios2_set_engine(self.raw, e.as_ptr()) },
            "adios2_set_engine",
        )
    }

    pub fn set_parameter(&self, key: &str, value: &str) -> Result<()> {
        let (k, v) = (cstr(key)?, cstr(value)?);
        // SAFETY: live IO handle, valid C strings.
        check(
            unsafe { sys::adios2_set_parameter(self.raw, k.as_ptr(), v.as_ptr()) },
            "adios2_set_parameter",
        )
    }

    /// Defines a global array of `shape`, of which this process writes the box `start`+`count`.
    /// Operations the XML configuration gives this variable are attached here.
    pub fn define_variable<T: Element>(
        &self,
        name: &str,
        shape: &[usize],
        start: &[usize],
        count: &[usize],
    ) -> Result<Variable<'a, T>> {
        check_box(name, shape, start, count)?;
        if T::TYPE != sys::adios2_type_float
            && T::TYPE != sys::adios2_type_double
            && self.residuum_vars.is_some_and(|v| v.contains_key(name))
        {
            return Err(AdiosError::UnsupportedType {
                variable: name.to_string(),
                ty: T::NAME,
            });
        }
        let n = cstr(name)?;
        // SAFETY: live IO handle; the arrays have shape.len() elements and are copied by ADIOS2.
        let raw = unsafe {
            sys::adios2_define_variable(
                self.raw,
                n.as_ptr(),
                T::TYPE,
                shape.len(),
                shape.as_ptr(),
                start.as_ptr(),
                count.as_ptr(),
                sys::adios2_constant_dims_true,
            )
        };
        Ok(Variable {
            raw: non_null(raw, "adios2_define_variable")?,
            name: name.to_string(),
            _t: PhantomData,
        })
    }

    /// The variable `name` available in the current step, if any.
    pub fn inquire_variable<T: Element>(&self, name: &str) -> Result<Variable<'a, T>> {
        let n = cstr(name)?;
        // SAFETY: live IO handle, valid C string.
        let raw = unsafe { sys::adios2_inquire_variable(self.raw, n.as_ptr()) };
        if raw.is_null() {
            return Err(AdiosError::NoVariable(name.to_string()));
        }
        let mut ty = sys::adios2_type_unknown;
        // SAFETY: raw is a live variable handle; ty is writable.
        check(
            unsafe { sys::adios2_variable_type(&mut ty, raw) },
            "adios2_variable_type",
        )?;
        if ty != T::TYPE {
            return Err(AdiosError::TypeMismatch {
                name: name.to_string(),
                expected: T::NAME,
                actual: format!("ADIOS2 type code {ty}"),
            });
        }
        Ok(Variable {
            raw,
            name: name.to_string(),
            _t: PhantomData,
        })
    }

    /// Opens an engine on `name` (a file path for BP5, a stream name for SST).
    pub fn open(&self, name: &str, mode: OpenMode) -> Result<Engine<'a>> {
        let n = cstr(name)?;
        let m = match mode {
            OpenMode::Write => sys::adios2_mode_write,
            OpenMode::Append => sys::adios2_mode_append,
            OpenMode::Read => sys::adios2_mode_read,
            OpenMode::ReadRandomAccess => sys::adios2_mode_readRandomAccess,
        };
        // SAFETY: live IO handle, valid C string; collective over the IO's communicator.
        let raw = unsafe { sys::adios2_open(self.raw, n.as_ptr(), m) };
        Ok(Engine {
            raw: non_null(raw, "adios2_open")?,
            step_mode: match mode {
                OpenMode::Write | OpenMode::Append => sys::adios2_step_mode_append,
                OpenMode::Read | OpenMode::ReadRandomAccess => sys::adios2_step_mode_read,
            },
            closed: false,
            _io: PhantomData,
        })
    }
}

/// A variable of element type `T`.
pub struct Variable<'a, T> {
    raw: *mut sys::adios2_variable,
    name: String,
    _t: PhantomData<(&'a Adios, T)>,
}

impl<T: Element> Variable<'_, T> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The global shape (in the current step, when reading).
    pub fn shape(&self) -> Result<Vec<usize>> {
        let mut nd = 0usize;
        // SAFETY: live variable handle; nd is writable.
        check(
            unsafe { sys::adios2_variable_ndims(&mut nd, self.raw) },
            "adios2_variable_ndims",
        )?;
        let mut shape = vec![0usize; nd];
        if nd > 0 {
            // SAFETY: shape has room for nd values.
            check(
                unsafe { sys::adios2_variable_shape(shape.as_mut_ptr(), self.raw) },
                "adios2_variable_shape",
            )?;
        }
        Ok(shape)
    }

    /// Selects the box `start`+`count` for the next put (writers) or get (readers).
    pub fn set_selection(&mut self, start: &[usize], count: &[usize]) -> Result<()> {
        if start.len() != count.len() {
            return Err(AdiosError::Argument(
                "start and count differ in length".into(),
            ));
        }
        // SAFETY: live variable handle; both arrays have start.len() elements, copied by ADIOS2.
        check(
            unsafe {
                sys::adios2_set_selection(self.raw, start.len(), start.as_ptr(), count.as_ptr())
            },
            "adios2_set_selection",
        )
    }

    /// Selects `count` steps from step `start` (relative to the variable's first step) for the
    /// next get of an engine opened with [`OpenMode::ReadRandomAccess`].
    pub fn set_step_selection(&mut self, start: usize, count: usize) -> Result<()> {
        // SAFETY: live variable handle.
        check(
            unsafe { sys::adios2_set_step_selection(self.raw, start, count) },
            "adios2_set_step_selection",
        )
    }

    /// Elements in the current selection.
    pub fn selection_size(&self) -> Result<usize> {
        let mut n = 0usize;
        // SAFETY: live variable handle; n writable.
        check(
            unsafe { sys::adios2_selection_size(&mut n, self.raw) },
            "adios2_selection_size",
        )?;
        Ok(n)
    }
}

/// Result of [`Engine::begin_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Ok,
    NotReady,
    EndOfStream,
}

/// An open engine. Closed on drop if [`Engine::close`] was not called (errors are then lost).
pub struct Engine<'a> {
    raw: *mut sys::adios2_engine,
    step_mode: sys::adios2_step_mode,
    closed: bool,
    _io: PhantomData<&'a Adios>,
}

impl Engine<'_> {
    /// Begins a step; readers wait up to `timeout` seconds (negative: forever).
    pub fn begin_step(&mut self, timeout: f32) -> Result<StepStatus> {
        let mut status = sys::adios2_step_status_ok;
        // SAFETY: live engine handle; status writable.
        check(
            unsafe { sys::adios2_begin_step(self.raw, self.step_mode, timeout, &mut status) },
            "adios2_begin_step",
        )?;
        match status {
            sys::adios2_step_status_ok => Ok(StepStatus::Ok),
            sys::adios2_step_status_not_ready => Ok(StepStatus::NotReady),
            sys::adios2_step_status_end_of_stream => Ok(StepStatus::EndOfStream),
            _ => Err(AdiosError::Runtime {
                call: "adios2_begin_step (step status error)".into(),
            }),
        }
    }

    pub fn end_step(&mut self) -> Result<()> {
        // SAFETY: live engine handle.
        check(unsafe { sys::adios2_end_step(self.raw) }, "adios2_end_step")
    }

    pub fn current_step(&self) -> Result<usize> {
        let mut s = 0usize;
        // SAFETY: live engine handle; s writable.
        check(
            unsafe { sys::adios2_current_step(&mut s, self.raw) },
            "adios2_current_step",
        )?;
        Ok(s)
    }

    /// Writes `data` (the variable's selection, C order) now.
    pub fn put<T: Element>(&mut self, var: &Variable<'_, T>, data: &[T]) -> Result<()> {
        let n = var.selection_size()?;
        if n != data.len() {
            return Err(AdiosError::BufferSize {
                expected: n,
                got: data.len(),
            });
        }
        // SAFETY: live handles; data holds the selection's n elements and the put is synchronous,
        // so ADIOS2 is done with the buffer when this returns.
        check(
            unsafe {
                sys::adios2_put(
                    self.raw,
                    var.raw,
                    data.as_ptr().cast(),
                    sys::adios2_mode_sync,
                )
            },
            "adios2_put",
        )
    }

    /// Reads the variable's selection in the current step (C order).
    pub fn get<T: Element>(&mut self, var: &Variable<'_, T>) -> Result<Vec<T>> {
        let mut out = vec![T::default(); var.selection_size()?];
        // SAFETY: live handles; out holds the selection's elements and the get is synchronous.
        check(
            unsafe {
                sys::adios2_get(
                    self.raw,
                    var.raw,
                    out.as_mut_ptr().cast(),
                    sys::adios2_mode_sync,
                )
            },
            "adios2_get",
        )?;
        Ok(out)
    }

    /// [`Engine::get`] for readers that may start in the middle of a chain of steps written
    /// with temporal prediction (an SST reader joining late): None where the step is predicted
    /// from one this process has not decoded (skip it; the next keyframe decodes).
    pub fn get_decodable<T: Element>(&mut self, var: &Variable<'_, T>) -> Result<Option<Vec<T>>> {
        let _ = crate::insitu::take_missing_reference();
        match self.get(var) {
            Ok(v) => Ok(Some(v)),
            Err(_) if matches!(crate::insitu::take_missing_reference(), Ok(Some(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the variable's selection in step `step` of a file opened with
    /// [`OpenMode::ReadRandomAccess`]. A step written with temporal prediction (`temporal=K`)
    /// is predicted from the one before, which ADIOS2 alone cannot provide: where the
    /// residuum plugin reports that the step's reference is missing, the steps from its
    /// keyframe on are decoded in order first (each kept by the plugin for the next), then the
    /// step itself. Other steps and other errors read as [`Engine::get`].
    pub fn get_step<T: Element>(
        &mut self,
        var: &mut Variable<'_, T>,
        step: usize,
    ) -> Result<Vec<T>> {
        // A stale report of an earlier failure must not steer this read.
        let _ = crate::insitu::take_missing_reference();
        var.set_step_selection(step, 1)?;
        let err = match self.get(var) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Ok(Some(back)) = crate::insitu::take_missing_reference() else {
            return Err(err);
        };
        let back = usize::try_from(back).unwrap_or(usize::MAX);
        let first = step.checked_sub(back).ok_or(err)?;
        for s in first..step {
            var.set_step_selection(s, 1)?;
            self.get(var)?;
        }
        var.set_step_selection(step, 1)?;
        self.get(var)
    }

    /// The engine's type as ADIOS2 names it (e.g. `BP5Writer`, `SstWriter`).
    pub fn engine_type(&self) -> Result<String> {
        let mut len = 0usize;
        // SAFETY: live engine handle; a null buffer asks for the length only.
        check(
            unsafe { sys::adios2_engine_get_type(std::ptr::null_mut(), &mut len, self.raw) },
            "adios2_engine_get_type",
        )?;
        let mut buf = vec![0u8; len];
        // SAFETY: buf has room for len bytes.
        check(
            unsafe { sys::adios2_engine_get_type(buf.as_mut_ptr().cast(), &mut len, self.raw) },
            "adios2_engine_get_type",
        )?;
        buf.truncate(len);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Closes the engine, flushing what remains; errors surface here.
    pub fn close(mut self) -> Result<()> {
        self.closed = true;
        // SAFETY: live engine handle, closed once.
        check(unsafe { sys::adios2_close(self.raw) }, "adios2_close")
    }
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        if !self.closed {
            // SAFETY: live engine handle, closed once.
            unsafe { sys::adios2_close(self.raw) };
        }
    }
}
