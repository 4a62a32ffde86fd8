//! C ABI of the step writer ([`crate::adios::StepWriter`]) for C, C++ and Fortran simulations:
//! hand over each step's fields and keep computing while a background thread writes them
//! through ADIOS2. Only in the shared library built with ADIOS2 and MPI (`libresiduum.so`,
//! CMake target `residuum::writer`, which defines `RESIDUUM_WRITER`).

use super::{guard, null_arg, read, slice, RESIDUUM_DOUBLE, RESIDUUM_FLOAT};
use crate::adios::{
    AdiosError, FieldData, FieldMut, FieldSpec, Loan, StepStats, StepWriter, WriteMode,
    WriterOptions,
};
use crate::error::{Error, IoError, IoErrorKind, ParameterError};
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// An open step writer.
pub struct residuum_writer {
    writer: StepWriter,
    /// Field names as C strings, for the statistics callback.
    names: Vec<CString>,
    /// Lent steps not yet settled, oldest first.
    loans: VecDeque<Loan>,
}

/// The application's arrays of a lent step, one per field.
struct Lender(Vec<*const c_void>);
// SAFETY: the arrays are only read, and `residuum_writer_lend_step`'s contract keeps them valid
// and unchanged until the step's loan is settled, which happens before
// `residuum_writer_settle` or `residuum_writer_close` returns; no fill runs after that.
unsafe impl Send for Lender {}

/// A field written every step: a global array of `ndims` dimensions of which this rank writes
/// the box `start` + `count`; `dtype` is `RESIDUUM_FLOAT` or `RESIDUUM_DOUBLE`.
#[repr(C)]
pub struct residuum_field {
    pub name: *const c_char,
    pub dtype: c_int,
    pub ndims: usize,
    pub shape: *const usize,
    pub start: *const usize,
    pub count: *const usize,
}

/// One field of one written step, on this rank. `name` is valid only during the callback.
#[repr(C)]
pub struct residuum_field_stats {
    pub step: usize,
    pub name: *const c_char,
    pub bytes_in: u64,
    /// The operator's output; `bytes_in` where no residuum operation applied (`compressed` 0).
    pub bytes_out: u64,
    pub compressed: c_int,
    /// RMS error over the range the bound was resolved against.
    pub nrmse: f64,
    pub max_abs: f64,
    /// `RESIDUUM_RANGE_*`.
    pub range_kind: c_int,
    pub range: f64,
    pub compress_seconds: f64,
    /// BeginStep to EndStep on the writer thread, and the time the step waited in the queue.
    pub step_seconds: f64,
    pub queued_seconds: f64,
}

/// Receives the statistics of one field of one step.
pub type residuum_field_stats_fn =
    unsafe extern "C" fn(ctx: *mut c_void, stats: *const residuum_field_stats);

/// ADIOS2's error, kept as the cause of an I/O error (`what` failed).
fn adios_err(what: &'static str) -> impl Fn(crate::adios::AdiosError) -> Error {
    move |e| Error::Io(IoError::caused(IoErrorKind::Adios, what, e))
}

/// SAFETY (callers): `s` is null or NUL-terminated.
unsafe fn string(s: *const c_char, what: &'static str) -> Result<String, Error> {
    if s.is_null() {
        return Err(null_arg(what));
    }
    // SAFETY: per the caller's contract.
    Ok(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

/// The fields and options of `residuum_writer_open`, as this rank's arguments give them.
///
/// SAFETY (callers): as `residuum_writer_open`'s.
unsafe fn prepare(
    config: *const c_char,
    io: *const c_char,
    target: *const c_char,
    queue: usize,
    log: c_int,
    fields: *const residuum_field,
    nfields: usize,
) -> Result<(Vec<FieldSpec>, WriterOptions), Error> {
    // SAFETY: per the caller's contract.
    let fields = unsafe { slice(fields, nfields, "fields")? };
    let mut specs = Vec::with_capacity(nfields);
    for f in fields {
        // SAFETY: each field's name is a NUL-terminated string per the contract.
        let name = unsafe { string(f.name, "field name")? };
        let double = match f.dtype {
            RESIDUUM_FLOAT => false,
            RESIDUUM_DOUBLE => true,
            t => {
                return Err(Error::Parameter(ParameterError::UnsupportedType(format!(
                    "code {t} for field '{name}'"
                ))))
            }
        };
        // SAFETY: shape, start and count each point to `ndims` values per the contract.
        let dims = |p, what| unsafe { slice(p, f.ndims, what) }.map(<[usize]>::to_vec);
        specs.push(FieldSpec {
            name,
            double,
            fill: None,
            shape: dims(f.shape, "shape")?,
            start: dims(f.start, "start")?,
            count: dims(f.count, "count")?,
        });
    }
    // SAFETY: `config` (if not null), `io` and `target` are NUL-terminated strings per the
    // contract.
    let opts = WriterOptions {
        config: (!config.is_null())
            .then(|| unsafe { string(config, "config") }.map(Into::into))
            .transpose()?,
        io: unsafe { string(io, "io")? },
        target: unsafe { string(target, "target")? },
        queue,
        mode: WriteMode::from_env().map_err(|value| {
            Error::Parameter(ParameterError::BadValue {
                key: "RESIDUUM_WRITER".into(),
                value,
                reason: "expected auto, sync or async".into(),
            })
        })?,
        log: log != 0,
        threads: None,
    };
    Ok((specs, opts))
}

/// Collective: opens a step writer on (a duplicate of) the communicator `comm_f` (from
/// `MPI_Comm_c2f`; Fortran passes its communicator as is). `config` is an ADIOS2 XML file (may
/// be null), `io` the IO to use, `target` the file or stream name. At most `queue` steps
/// (up to 1024) wait for the writer thread (0: every write is synchronous). With `queue` > 0,
/// steps are written asynchronously where every rank owns a core to spare, and synchronously
/// where one owns one (rank 0 says so with `log`); the environment variable
/// RESIDUUM_WRITER=async or sync forces either (async with `queue` 0: one step may wait). MPI
/// must provide MPI_THREAD_MULTIPLE for asynchronous writing, MPI_THREAD_SERIALIZED otherwise.
/// With `log` nonzero on any rank, rank 0 prints each step's statistics to stderr. Where one
/// rank's checks fail, every rank's call fails.
///
/// # Safety
/// Strings are NUL-terminated (`config` may be null); `fields` points to `nfields` fields whose
/// arrays hold `ndims` values; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn residuum_writer_open(
    comm_f: c_int,
    config: *const c_char,
    io: *const c_char,
    target: *const c_char,
    queue: usize,
    log: c_int,
    fields: *const residuum_field,
    nfields: usize,
    out: *mut *mut residuum_writer,
) -> c_int {
    guard(|| {
        let prepared = match out.is_null() {
            true => Err(null_arg("out")),
            // SAFETY: per this function's contract.
            false => unsafe { prepare(config, io, target, queue, log, fields, nfields) },
        };
        // SAFETY: MPI_Comm_f2c turns any valid Fortran handle into a live C handle.
        let comm = unsafe { mpi::ffi::MPI_Comm_f2c(comm_f) };
        let (specs, opts) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: as above. Still collective: the other ranks wait for this one.
                unsafe { StepWriter::refuse_open_raw(comm) };
                return Err(e);
            }
        };
        let names = specs
            .iter()
            .map(|s| CString::new(s.name.as_str()).unwrap_or_default())
            .collect();
        // SAFETY: a live handle, as above.
        let writer = unsafe {
            StepWriter::open_raw(comm, specs, opts).map_err(adios_err("opening the step writer"))?
        };
        // SAFETY: `out` is non-null and writable per the contract.
        let w = residuum_writer {
            writer,
            names,
            loans: VecDeque::new(),
        };
        unsafe { *out = Box::into_raw(Box::new(w)) };
        Ok(())
    })
}

/// Hands over one step: `data[i]` points to field i's box (C order, its `dtype`), copied before
/// this returns, into the buffers of a step already written where one is back (the writer
/// keeps up to queue + 1 steps of them, so that no step allocates). Blocks while the queue is
/// full. Fails with the error of an earlier step, if one failed (the writer then writes nothing
/// more; close it).
///
/// # Safety
/// `w` is an open writer; `data` points to one pointer per field, each to its box's values.
#[no_mangle]
pub unsafe extern "C" fn residuum_writer_write_step(
    w: *mut residuum_writer,
    data: *const *const c_void,
) -> c_int {
    guard(|| {
        // SAFETY: per this function's contract.
        let w = unsafe { w.as_mut() }.ok_or_else(|| null_arg("writer"))?;
        // SAFETY: per this function's contract.
        let fields = unsafe { copy_step(&mut w.writer, data) };
        let fields = refused(&mut w.writer, fields)?;
        w.writer
            .write_step(fields)
            .map_err(adios_err("writing a step"))?;
        Ok(())
    })
}

/// A step's fields copied from `data` into a written step's buffers (no allocation or page
/// faults per step).
///
/// SAFETY (callers): as `residuum_writer_write_step`'s.
unsafe fn copy_step(
    writer: &mut StepWriter,
    data: *const *const c_void,
) -> Result<Vec<FieldData>, Error> {
    // SAFETY: per the caller's contract.
    let ptrs = unsafe { slice(data, writer.specs().len(), "data")? };
    let mut fields = writer.buffers();
    for ((s, &p), f) in writer.specs().iter().zip(ptrs).zip(&mut fields) {
        let n = s.local_len();
        // SAFETY: the box's n values of the field's type, per the contract.
        match f {
            FieldData::F64(b) => b.extend_from_slice(unsafe { slice(p.cast(), n, "field data")? }),
            FieldData::F32(b) => b.extend_from_slice(unsafe { slice(p.cast(), n, "field data")? }),
        }
    }
    Ok(fields)
}

/// `checked`, where it failed having refused the step on every rank: the other ranks' writers
/// wait for this rank's part of each step (see `StepWriter::refuse_step`).
fn refused<T>(writer: &mut StepWriter, checked: Result<T, Error>) -> Result<T, Error> {
    checked.inspect_err(|e| writer.refuse_step(AdiosError::Argument(e.to_string())))
}

/// Hands over one step like `residuum_writer_write_step`, without copying it on this thread:
/// `data[i]` points to field i's box, and each array must stay valid and unchanged (as an
/// `MPI_Isend` buffer) until `residuum_writer_settle` for this step or a later one, or
/// `residuum_writer_close`, returns. An async writer copies them at once on a thread of its
/// own, beside its compression; a synchronous one before this returns. `*step` receives the
/// step's index. A simulation that alternates between two sets of arrays lends the set just
/// computed and settles it before it computes into that set again.
///
/// # Safety
/// `w` is an open writer; `data` points to one pointer per field, each to its box's values,
/// kept as above; `step` is writable.
#[no_mangle]
pub unsafe extern "C" fn residuum_writer_lend_step(
    w: *mut residuum_writer,
    data: *const *const c_void,
    step: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per this function's contract.
        let w = unsafe { w.as_mut() }.ok_or_else(|| null_arg("writer"))?;
        let specs = w.writer.specs();
        // SAFETY: per this function's contract.
        let ptrs = unsafe { slice(data, specs.len(), "data") }.and_then(|ptrs| {
            match specs
                .iter()
                .zip(ptrs)
                .any(|(s, p)| s.local_len() > 0 && p.is_null())
            {
                true => Err(null_arg("field data")),
                false if step.is_null() => Err(null_arg("step")),
                false => Ok(ptrs),
            }
        });
        let arrays = Lender(refused(&mut w.writer, ptrs)?.to_vec());
        let loan = w
            .writer
            .lend_step(move |fields| {
                let arrays = arrays;
                for (f, &p) in fields.iter_mut().zip(&arrays.0) {
                    // SAFETY: the box's values of the field's type (the buffers have the box's
                    // length), valid and unchanged until this loan is settled per the contract.
                    match f {
                        FieldMut::F32(b) => b.copy_from_slice(unsafe { read(p.cast(), b.len()) }),
                        FieldMut::F64(b) => b.copy_from_slice(unsafe { read(p.cast(), b.len()) }),
                    }
                }
            })
            .map_err(adios_err("lending a step"))?;
        // SAFETY: checked non-null above; writable per the contract.
        unsafe { *step = loan.step() };
        w.loans.push_back(loan);
        Ok(())
    })
}

/// Settles every lent step up to and including `step`: copies here those the writer has not
/// copied yet. After it returns, the application may change those steps' arrays.
///
/// # Safety
/// `w` is an open writer.
#[no_mangle]
pub unsafe extern "C" fn residuum_writer_settle(w: *mut residuum_writer, step: usize) -> c_int {
    guard(|| {
        // SAFETY: per this function's contract.
        let w = unsafe { w.as_mut() }.ok_or_else(|| null_arg("writer"))?;
        while let Some(loan) = w.loans.pop_front() {
            if loan.step() > step {
                w.loans.push_front(loan);
                break;
            }
            loan.settle();
        }
        Ok(())
    })
}

/// Passes each field of each step to `cb`.
///
/// SAFETY (callers): `cb` is callable with `ctx`.
unsafe fn hand_out(
    steps: &[StepStats],
    names: &[CString],
    cb: residuum_field_stats_fn,
    ctx: *mut c_void,
) {
    for step in steps {
        for (f, name) in step.fields.iter().zip(names) {
            let c = f.compression.as_ref();
            let s = residuum_field_stats {
                step: step.step,
                name: name.as_ptr(),
                bytes_in: f.bytes_in as u64,
                bytes_out: c.map_or(f.bytes_in, |c| c.bytes_out) as u64,
                compressed: c.is_some() as c_int,
                nrmse: c.map_or(0.0, |c| c.nrmse),
                max_abs: c.map_or(0.0, |c| c.max_abs),
                range_kind: c.map_or(0, |c| c.range_used as c_int),
                range: c.map_or(0.0, |c| c.range),
                compress_seconds: c.map_or(0.0, |c| c.seconds),
                step_seconds: step.seconds,
                queued_seconds: step.queued_seconds,
            };
            // SAFETY: per the caller's contract; `s` and `name` outlive the call.
            unsafe { cb(ctx, &s) };
        }
    }
}

/// Calls `cb(ctx, stats)` for each field of each step written since the last call (of the last
/// 4096 such steps; each names its step).
///
/// # Safety
/// `w` is an open writer; `cb` is callable with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn residuum_writer_take_stats(
    w: *mut residuum_writer,
    cb: Option<unsafe extern "C" fn(*mut c_void, *const residuum_field_stats)>,
    ctx: *mut c_void,
) -> c_int {
    guard(|| {
        // SAFETY: per this function's contract.
        let w = unsafe { w.as_mut() }.ok_or_else(|| null_arg("writer"))?;
        let cb = cb.ok_or_else(|| null_arg("cb"))?;
        let steps = w.writer.take_stats();
        // SAFETY: per this function's contract.
        unsafe { hand_out(&steps, &w.names, cb, ctx) };
        Ok(())
    })
}

/// Collective: writes the steps still queued, closes the engine, passes the statistics not yet
/// taken (as `residuum_writer_take_stats`) to `cb` (may be null) and frees the writer (also on
/// failure). Returns the first error of a step or of closing.
///
/// # Safety
/// `w` came from `residuum_writer_open` and is not used afterwards; `cb` is null or callable
/// with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn residuum_writer_close(
    w: *mut residuum_writer,
    cb: Option<unsafe extern "C" fn(*mut c_void, *const residuum_field_stats)>,
    ctx: *mut c_void,
) -> c_int {
    guard(|| {
        if w.is_null() {
            return Err(null_arg("writer"));
        }
        // SAFETY: allocated by Box::into_raw in residuum_writer_open, freed once.
        let w = unsafe { Box::from_raw(w) };
        let closed = w.writer.close();
        // Filled by the writer by now, or dropped unrun after a failure: before this returns,
        // in any case, as the lending contract promises.
        drop(w.loans);
        let steps = closed.map_err(adios_err("closing the step writer"))?;
        if let Some(cb) = cb {
            // SAFETY: per this function's contract.
            unsafe { hand_out(&steps, &w.names, cb, ctx) };
        }
        Ok(())
    })
}
