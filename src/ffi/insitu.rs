//! C ABI of the in-situ hand-over (see [`crate::insitu`]): the application's side
//! (`residuum_set_range`, `residuum_take_reports`, `residuum_set_reference_cache`,
//! `residuum_restart_chains`), the operator's compression and decompression calls, and the
//! function the plugin exports its hook table through (`crate::insitu::hooks`).

use super::{compress_call, decompress_call, guard, null_arg, residuum_codec, slice};
use crate::error::{Error, ParameterError};
use crate::insitu::hooks::{hand_out, HOOKS};
pub use crate::insitu::hooks::{residuum_plugin_hooks, residuum_report};
use crate::insitu::{self, registry, RangeUsed};
use std::ffi::{c_char, c_int, c_void, CStr};

/// Range kinds of `residuum_set_range` and `residuum_report.range_kind`.
pub const RESIDUUM_RANGE_NONE: c_int = 0;
pub const RESIDUUM_RANGE_BLOCK: c_int = 1;
pub const RESIDUUM_RANGE_RANK: c_int = 2;
pub const RESIDUUM_RANGE_GLOBAL: c_int = 3;
pub const RESIDUUM_RANGE_FIXED: c_int = 4;
// Literals, as cbindgen writes no constant it cannot evaluate into the header (it left these
// out while they read `RangeUsed::Rank as c_int`); they must stay `RangeUsed`'s codes.
const _: () = assert!(
    RESIDUUM_RANGE_NONE == RangeUsed::None as c_int
        && RESIDUUM_RANGE_BLOCK == RangeUsed::Block as c_int
        && RESIDUUM_RANGE_RANK == RangeUsed::Rank as c_int
        && RESIDUUM_RANGE_GLOBAL == RangeUsed::Global as c_int
        && RESIDUUM_RANGE_FIXED == RangeUsed::Fixed as c_int
);

/// The hook table of this copy of the library. The ADIOS2 plugin exports it as
/// `residuum_plugin_hooks_v1` for the application's copy to find; applications call
/// `residuum_set_range` and `residuum_take_reports` instead.
#[no_mangle]
pub extern "C" fn residuum_hooks() -> *const residuum_plugin_hooks {
    &HOOKS
}

/// Hands the residuum operator of `variable`, in the engine opened with the name `engine`, the
/// value range (max − min) of its data for the coming step: `RESIDUUM_RANGE_RANK` (over this
/// rank's blocks) or `RESIDUUM_RANGE_GLOBAL` (over all ranks, e.g. from MPI_Allreduce of min
/// and max). Operators with `range=rank` or `range=global` use a range of their kind; one
/// narrower than a block's own range is ignored (the block's is used), so bounds always hold.
/// The range stays in use until the next call replaces it: call this every step, as a stale
/// range wider than the data's makes the bound looser in proportion. Fails with
/// `RESIDUUM_ERR_IO` until ADIOS2 has loaded the plugin.
///
/// # Safety
/// `engine` and `variable` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn residuum_set_range(
    engine: *const c_char,
    variable: *const c_char,
    range_kind: c_int,
    range: f64,
) -> c_int {
    guard(|| {
        if engine.is_null() || variable.is_null() {
            return Err(null_arg("engine or variable"));
        }
        let kind = RangeUsed::from_code(range_kind).ok_or_else(|| {
            Error::Parameter(ParameterError::BadValue {
                key: "range_kind".into(),
                value: range_kind.to_string(),
                reason: "expected RESIDUUM_RANGE_RANK or RESIDUUM_RANGE_GLOBAL".into(),
            })
        })?;
        // SAFETY: non-null, NUL-terminated per the contract.
        let (e, v) = unsafe { (CStr::from_ptr(engine), CStr::from_ptr(variable)) };
        insitu::set_range(&e.to_string_lossy(), &v.to_string_lossy(), kind, range)
    })
}

/// Sets the threads that residuum operators whose `threads` parameter is 0 (the default) use
/// from now on; 0 restores their default. An application that keeps computing while its I/O
/// thread writes leaves the operators the cores it does not use itself.
#[no_mangle]
pub extern "C" fn residuum_set_threads(threads: usize) -> c_int {
    guard(|| insitu::set_threads(threads))
}

/// Calls `cb(ctx, report)` for each compression the operators of the engine named `engine` (of
/// any engine if null) did since the last call, oldest first, and stores their number in
/// `count` (may be null).
///
/// # Safety
/// `engine` is null or a NUL-terminated string; `cb` is callable with `ctx`; `count` is null
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn residuum_take_reports(
    engine: *const c_char,
    cb: Option<unsafe extern "C" fn(*mut c_void, *const residuum_report)>,
    ctx: *mut c_void,
    count: *mut usize,
) -> c_int {
    guard(|| {
        let cb = cb.ok_or_else(|| null_arg("cb"))?;
        // SAFETY: null or a C string, per the contract.
        let engine =
            (!engine.is_null()).then(|| unsafe { CStr::from_ptr(engine) }.to_string_lossy());
        let reports = insitu::take_reports(engine.as_deref())?;
        // SAFETY: per this function's contract.
        unsafe { hand_out(&reports, cb, ctx) };
        // SAFETY: null or writable per the contract.
        if let Some(n) = unsafe { count.as_mut() } {
            *n = reports.len();
        }
        Ok(())
    })
}

/// Sets the bytes of decoded steps the residuum plugin keeps in this process for reading steps
/// predicted from the previous one (`temporal=K`; default 1 GiB or `RESIDUUM_REFERENCE_CACHE`).
/// Fails with `RESIDUUM_ERR_IO` until ADIOS2 has loaded the plugin.
#[no_mangle]
pub extern "C" fn residuum_set_reference_cache(bytes: usize) -> c_int {
    guard(|| insitu::set_reference_cache(bytes))
}

/// Restarts the chains of steps (`temporal=K`) that the operators keep for the engine named
/// `engine` (for every engine if null): the next step of each block is a keyframe. Call it
/// before opening a file again under the name of one written before in this process (a
/// checkpoint rewritten in place); otherwise the new file's first steps are predicted from
/// the old file's last, which its readers do not have. The step writer does so itself. Fails
/// with `RESIDUUM_ERR_IO` until ADIOS2 has loaded the plugin.
///
/// # Safety
/// `engine` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn residuum_restart_chains(engine: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: null or a C string, per the contract.
        let engine =
            (!engine.is_null()).then(|| unsafe { CStr::from_ptr(engine) }.to_string_lossy());
        insitu::restart_chains(engine.as_deref())
    })
}

/// The operator's compression: as `residuum_compress`, resolving range-relative targets
/// against the range handed over for (`engine`, `variable`) where the parameters ask for
/// `range=rank|global`, coding over the block's previous step with `temporal=K` (the block is
/// known by `variable`, `start` and `dims`), and recording a report of the compression.
/// `start` is NULL for a block with no place in a global array (a local or joined array's):
/// such blocks are coded without temporal prediction, since their counts alone do not tell
/// them apart.
///
/// # Safety
/// As `residuum_compress`; `engine` and `variable` are NUL-terminated strings; `start` is NULL
/// or points to `ndims` values.
#[no_mangle]
pub unsafe extern "C" fn residuum_compress_insitu(
    codec: *const residuum_codec,
    engine: *const c_char,
    variable: *const c_char,
    dtype: c_int,
    ndims: usize,
    start: *const usize,
    dims: *const usize,
    data: *const u8,
    out: *mut u8,
    out_capacity: usize,
    out_size: *mut usize,
) -> c_int {
    if engine.is_null() || variable.is_null() {
        return guard(|| Err(null_arg("engine or variable")));
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    let (e, v) = unsafe { (CStr::from_ptr(engine), CStr::from_ptr(variable)) };
    let (e, v) = (e.to_string_lossy(), v.to_string_lossy());
    // SAFETY: NULL or `ndims` values per the contract.
    let start = match (!start.is_null()).then(|| unsafe { slice(start, ndims, "start") }) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(err)) => return guard(|| Err(err)),
    };
    // SAFETY: the rest of the contract is residuum_compress's.
    unsafe {
        compress_call(
            codec,
            dtype,
            ndims,
            dims,
            data,
            out,
            out_capacity,
            out_size,
            |c, t, d, x, o| Ok(registry::compress(c, &e, &v, start, t, d, x, o)?.bytes_out),
        )
    }
}

/// The operator's decompression: as `residuum_decompress`, and a stream predicted from the
/// previous step of its chain (`temporal=K`) is decoded over that step where this process
/// decoded it from the same `engine` (file or stream name); each step decoded is kept for the
/// next (within the reference cache). Where the previous step is missing, fails with
/// `RESIDUUM_ERR_REFERENCE`, naming the keyframe to read from. On the threads
/// `residuum_set_threads` gave, else as `residuum_decompress`.
///
/// # Safety
/// As `residuum_decompress`; `engine` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn residuum_decompress_insitu(
    engine: *const c_char,
    stream: *const u8,
    size: usize,
    out: *mut u8,
    out_capacity: usize,
    out_size: *mut usize,
) -> c_int {
    if engine.is_null() {
        return guard(|| Err(null_arg("engine")));
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    let engine = unsafe { CStr::from_ptr(engine) }.to_string_lossy();
    // SAFETY: the rest of the contract is residuum_decompress's.
    unsafe {
        decompress_call(stream, size, out, out_capacity, out_size, |s, o| {
            insitu::steps::decode(&engine, s, o, insitu::registry::threads())
        })
    }
}
