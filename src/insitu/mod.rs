//! The hand-over between an application and the residuum operator ADIOS2 loaded into the same
//! process: the value range of `range=rank|global` for each step, and a report of every
//! compression (sizes, achieved error, time); with temporal prediction, the steps each side
//! keeps (`steps`).
//!
//! The operator runs in the plugin library, which carries its own copy of residuum, and ADIOS2
//! passes it only the parameters fixed when the variable was defined. So what changes per step
//! lives in the plugin's copy (`registry`), and the application's copy reaches it through a
//! table of C functions the plugin exports, found among the process's loaded objects.

mod chains;
pub(crate) mod hooks;
pub(crate) mod registry;
pub(crate) mod steps;

use crate::codec::CompressStats;
use crate::error::{Error, IoError, IoErrorKind, ParameterError, Result};
use hooks::{residuum_plugin_hooks, residuum_report, HOOKS_SYMBOL, HOOKS_VERSION};
use std::ffi::{c_int, c_void, CStr, CString};
use std::sync::OnceLock;

/// Which value range a compression resolved its bound against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeUsed {
    /// The target needs none (abs, lossless).
    None = 0,
    /// The compressed array's own range.
    Block = 1,
    /// The application's range over the rank's blocks of the step.
    Rank = 2,
    /// The application's all-reduced range over all ranks.
    Global = 3,
    /// The `range=<number>` parameter.
    Fixed = 4,
}

impl RangeUsed {
    pub fn name(self) -> &'static str {
        match self {
            RangeUsed::None => "none",
            RangeUsed::Block => "block",
            RangeUsed::Rank => "rank",
            RangeUsed::Global => "global",
            RangeUsed::Fixed => "fixed",
        }
    }

    pub(crate) fn from_code(c: c_int) -> Option<RangeUsed> {
        [
            RangeUsed::None,
            RangeUsed::Block,
            RangeUsed::Rank,
            RangeUsed::Global,
            RangeUsed::Fixed,
        ]
        .into_iter()
        .find(|k| *k as c_int == c)
    }
}

/// One compression by the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The engine's name (the file or stream name it was opened with).
    pub engine: String,
    pub variable: String,
    pub range_used: RangeUsed,
    pub stats: CompressStats,
}

/// The plugin's hook table, once the plugin is loaded (it is, once ADIOS2 has attached a
/// residuum operation to a variable).
fn hooks() -> Result<&'static residuum_plugin_hooks> {
    static FOUND: OnceLock<usize> = OnceLock::new();
    if let Some(&h) = FOUND.get() {
        // SAFETY: a pointer to the plugin's static table, stored below; the plugin stays
        // loaded for the process's life (ADIOS2 never unloads operator plugins while in use).
        return Ok(unsafe { &*(h as *const residuum_plugin_hooks) });
    }
    let table = find_loaded_hooks().ok_or_else(|| {
        IoError::new(
            IoErrorKind::NoPlugin,
            "the residuum ADIOS2 plugin is not loaded in this process; define a variable with \
             a residuum operation first",
        )
    })?;
    // SAFETY: non-null pointer returned by the plugin's hook function, to a static table.
    let h = unsafe { &*table };
    if h.version != HOOKS_VERSION {
        return Err(Error::Io(IoError::new(
            IoErrorKind::PluginMismatch,
            format!(
                "the loaded residuum plugin speaks hook version {}, this library {HOOKS_VERSION}; \
             build both from the same release",
                h.version
            ),
        )));
    }
    FOUND.get_or_init(|| table as usize);
    Ok(h)
}

/// Looks through the loaded shared objects for one exporting the hook function.
fn find_loaded_hooks() -> Option<*const residuum_plugin_hooks> {
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info and our Vec as `data`.
        unsafe {
            let names = &mut *(data as *mut Vec<CString>);
            let name = (*info).dlpi_name;
            if !name.is_null() {
                let name = CStr::from_ptr(name);
                if name.to_bytes().windows(15).any(|w| w == b"residuum_plugin") {
                    names.push(name.to_owned());
                }
            }
        }
        0
    }
    let mut names: Vec<CString> = Vec::new();
    // SAFETY: the callback only reads the entries and appends to `names`.
    unsafe { libc::dl_iterate_phdr(Some(collect), &mut names as *mut _ as *mut c_void) };
    let symbol = CString::new(HOOKS_SYMBOL).ok()?;
    names.iter().find_map(|path| {
        // SAFETY: RTLD_NOLOAD only returns a handle to an object already loaded (adding a
        // reference, which is kept: the plugin must outlive the table pointer).
        unsafe {
            let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            if h.is_null() {
                return None;
            }
            let f = libc::dlsym(h, symbol.as_ptr());
            if f.is_null() {
                libc::dlclose(h);
                return None;
            }
            let f: extern "C" fn() -> *const residuum_plugin_hooks = std::mem::transmute(f);
            let table = f();
            (!table.is_null()).then_some(table)
        }
    })
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::Parameter(ParameterError::BadValue {
            key: what.into(),
            value: s.into(),
            reason: "contains a NUL byte".into(),
        })
    })
}

/// Hands the operator of `variable` in the engine opened as `engine` the value range (max −
/// min) for its next compressions, as computed over the rank's blocks (`Rank`) or all ranks'
/// (`Global`). The operator uses it where its `range` parameter asks for that kind, until the
/// next call replaces it: hand it over every step (a stale range wider than the data's makes the
/// bound looser in proportion).
pub fn set_range(engine: &str, variable: &str, kind: RangeUsed, range: f64) -> Result<()> {
    let h = hooks()?;
    let (e, v) = (cstring("engine", engine)?, cstring("variable", variable)?);
    // SAFETY: valid C strings for the duration of the call.
    let status = unsafe { (h.set_range)(e.as_ptr(), v.as_ptr(), kind as c_int, range) };
    if status != 0 {
        return Err(Error::Parameter(ParameterError::BadValue {
            key: "range".into(),
            value: format!("{} {range}", kind.name()),
            reason: "expected a rank or global kind and a finite range ≥ 0".into(),
        }));
    }
    Ok(())
}

/// Sets the threads of operators whose `threads` parameter is 0 (0 restores their default).
pub fn set_threads(threads: usize) -> Result<()> {
    (hooks()?.set_threads)(threads);
    Ok(())
}

/// Sets the bytes of decoded steps the plugin keeps for reading steps predicted from them
/// (temporal prediction; default 1 GiB, or `RESIDUUM_REFERENCE_CACHE`, e.g. `256M`).
pub fn set_reference_cache(bytes: usize) -> Result<()> {
    (hooks()?.set_reference_cache)(bytes);
    Ok(())
}

/// After a read failed because a step was predicted from one this process has not decoded: how
/// many steps before the one read its keyframe lies (the furthest, where several blocks failed).
/// None where no read failed so since the last call.
pub fn take_missing_reference() -> Result<Option<u64>> {
    let back = (hooks()?.take_missing)();
    Ok((back >= 0).then_some(back as u64))
}

/// Restarts the writers' chains of steps of the engine named `engine` (of all for None): the next
/// step of every block is a keyframe, and the encoder's hints from earlier steps are forgotten.
/// For a writer opening a new file under an old name.
pub fn restart_chains(engine: Option<&str>) -> Result<()> {
    let h = hooks()?;
    let engine = engine.map(|e| cstring("engine", e)).transpose()?;
    // SAFETY: a valid C string or null for the duration of the call.
    unsafe { (h.restart_chains)(engine.as_ref().map_or(std::ptr::null(), |e| e.as_ptr())) };
    Ok(())
}

/// Takes the reports of the compressions by the operators of the engine named `engine` (of any
/// engine for None) since the last call, oldest first.
pub fn take_reports(engine: Option<&str>) -> Result<Vec<Report>> {
    let h = hooks()?;
    unsafe extern "C" fn push(ctx: *mut c_void, r: *const residuum_report) {
        // SAFETY: `ctx` is our Vec; `r` and its strings are valid during the callback.
        unsafe {
            let out = &mut *(ctx as *mut Vec<Report>);
            if let Some(r) = r.as_ref() {
                out.push(r.to_report());
            }
        }
    }
    let engine = engine.map(|e| cstring("engine", e)).transpose()?;
    let engine_ptr = engine.as_ref().map_or(std::ptr::null(), |e| e.as_ptr());
    let mut out: Vec<Report> = Vec::new();
    // SAFETY: the plugin calls `push` synchronously with valid reports.
    unsafe { (h.take_reports)(engine_ptr, push, &mut out as *mut _ as *mut c_void) };
    Ok(out)
}
