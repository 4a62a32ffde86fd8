//! The table of C functions through which the application's copy of residuum reaches the
//! plugin's (see [`super`]): its layout is shared by both copies, which may come from different
//! builds, so it is `repr(C)` and versioned ([`HOOKS_VERSION`]). Its types keep their C names.

#![allow(non_camel_case_types)]

use super::{registry, steps, RangeUsed, Report};
use crate::bound::{unit_of, ErrorStats};
use crate::codec::CompressStats;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// One compression by the operator. The strings are valid only during the callback.
#[repr(C)]
pub struct residuum_report {
    pub engine: *const c_char,
    pub variable: *const c_char,
    /// `RESIDUUM_RANGE_*`: which range the bound was resolved against.
    pub range_kind: c_int,
    pub range: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Values whose error is counted (the finite ones), their squared-error sum and max error.
    pub values: u64,
    pub sum_sq: f64,
    pub max_abs: f64,
    pub seconds: f64,
    /// With `temporal=K`: the hash of the reconstruction (xxh3-64 of its element bytes) that
    /// readers decode and the next step is predicted from; 0 otherwise.
    pub recon_hash: u64,
    /// The RMS error over the values counted, also where `sum_sq` cannot hold it (f64 data
    /// whose squared errors overflow, beyond about 1e154, or vanish, below about 1e-162).
    pub rms: f64,
}

impl residuum_report {
    /// SAFETY (callers): the strings are valid C strings.
    pub(crate) unsafe fn to_report(&self) -> Report {
        let s = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: per the caller's contract.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        Report {
            engine: s(self.engine),
            variable: s(self.variable),
            range_used: RangeUsed::from_code(self.range_kind).unwrap_or(RangeUsed::None),
            stats: CompressStats {
                bytes_in: self.bytes_in as usize,
                bytes_out: self.bytes_out as usize,
                errors: errors_of(self.values as usize, self.rms, self.max_abs),
                range: self.range,
                seconds: self.seconds,
                recon_hash: self.recon_hash,
            },
        }
    }
}

/// Errors of `count` values with RMS `rms`, as sums in the RMS's unit (those of the report's
/// `sum_sq` could have overflowed or vanished).
fn errors_of(count: usize, rms: f64, max_abs: f64) -> ErrorStats {
    let unit = if rms > 0.0 { unit_of(rms) } else { 1.0 };
    let r = rms / unit;
    ErrorStats {
        count,
        sum_sq: r * r * count as f64,
        max_abs,
        unit,
    }
}

/// Receives one report.
pub type residuum_report_fn =
    unsafe extern "C" fn(ctx: *mut c_void, report: *const residuum_report);

/// What the plugin exports to the application's copy of the library.
#[repr(C)]
pub struct residuum_plugin_hooks {
    pub version: u32,
    pub set_range: unsafe extern "C" fn(*const c_char, *const c_char, c_int, f64) -> c_int,
    /// Reports of the engine named by the first argument (all engines if null).
    pub take_reports: unsafe extern "C" fn(*const c_char, residuum_report_fn, *mut c_void) -> usize,
    /// Threads for operators whose `threads` parameter is 0 (0: their own default again).
    pub set_threads: extern "C" fn(usize),
    /// Bytes of decoded steps kept for temporal prediction.
    pub set_reference_cache: extern "C" fn(usize),
    /// Steps back to the keyframe a failed read named (the furthest since the last call), or −1.
    pub take_missing: extern "C" fn() -> i64,
    /// Restarts the writer's chains of the engine named by the argument (all if null), and
    /// forgets its encoder hints.
    pub restart_chains: unsafe extern "C" fn(*const c_char),
}

pub(crate) const HOOKS_VERSION: u32 = 3;
pub(crate) const HOOKS_SYMBOL: &str = "residuum_plugin_hooks_v1";

unsafe extern "C" fn hook_set_range(
    engine: *const c_char,
    variable: *const c_char,
    kind: c_int,
    range: f64,
) -> c_int {
    let kind = match RangeUsed::from_code(kind) {
        Some(k @ (RangeUsed::Rank | RangeUsed::Global)) if range.is_finite() && range >= 0.0 => k,
        _ => return 1,
    };
    if engine.is_null() || variable.is_null() {
        return 1;
    }
    // SAFETY: non-null C strings, per the hook's contract (checked by the caller's CString).
    let (e, v) = unsafe { (CStr::from_ptr(engine), CStr::from_ptr(variable)) };
    registry::set_range(&e.to_string_lossy(), &v.to_string_lossy(), kind, range);
    0
}

/// Passes each report to `cb` as a C struct whose strings live for the call.
///
/// SAFETY (callers): `cb` is callable with `ctx`.
pub(crate) unsafe fn hand_out(reports: &[Report], cb: residuum_report_fn, ctx: *mut c_void) {
    for r in reports {
        let c_str = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        let (e, v) = (c_str(&r.engine), c_str(&r.variable));
        let s = &r.stats;
        let c = residuum_report {
            engine: e.as_ptr(),
            variable: v.as_ptr(),
            range_kind: r.range_used as c_int,
            range: s.range,
            bytes_in: s.bytes_in as u64,
            bytes_out: s.bytes_out as u64,
            values: s.errors.count as u64,
            sum_sq: s.errors.sum_sq_in(1.0),
            max_abs: s.errors.max_abs,
            seconds: s.seconds,
            recon_hash: s.recon_hash,
            rms: s.errors.rms(),
        };
        // SAFETY: per the caller's contract; `c` and its strings outlive the call.
        unsafe { cb(ctx, &c) };
    }
}

unsafe extern "C" fn hook_take_reports(
    engine: *const c_char,
    cb: residuum_report_fn,
    ctx: *mut c_void,
) -> usize {
    // SAFETY: null or a C string, per the hook's contract.
    let engine = (!engine.is_null()).then(|| unsafe { CStr::from_ptr(engine) }.to_string_lossy());
    let reports = registry::take_reports(engine.as_deref());
    // SAFETY: the hook's contract.
    unsafe { hand_out(&reports, cb, ctx) };
    reports.len()
}

extern "C" fn hook_set_threads(n: usize) {
    registry::set_threads(n);
}

extern "C" fn hook_set_reference_cache(bytes: usize) {
    steps::set_cache(bytes);
}

extern "C" fn hook_take_missing() -> i64 {
    steps::take_missing().map_or(-1, |b| b.min(i64::MAX as u64) as i64)
}

unsafe extern "C" fn hook_restart_chains(engine: *const c_char) {
    // SAFETY: null or a C string, per the hook's contract.
    let engine = (!engine.is_null()).then(|| unsafe { CStr::from_ptr(engine) }.to_string_lossy());
    steps::restart(engine.as_deref());
    registry::forget_hints(engine.as_deref());
}

pub(crate) static HOOKS: residuum_plugin_hooks = residuum_plugin_hooks {
    version: HOOKS_VERSION,
    set_range: hook_set_range,
    take_reports: hook_take_reports,
    set_threads: hook_set_threads,
    set_reference_cache: hook_set_reference_cache,
    take_missing: hook_take_missing,
    restart_chains: hook_restart_chains,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Through the C struct and back, as the application's copy reads the plugin's reports:
    /// errors of 2^600 (squares overflow) and 2^-600 (squares vanish) keep their RMS.
    #[test]
    fn reports_keep_errors_whose_squares_overflow_or_vanish() {
        unsafe extern "C" fn push(ctx: *mut c_void, r: *const residuum_report) {
            // SAFETY: `ctx` is the test's Vec; `r` is valid during the callback.
            unsafe { (*(ctx as *mut Vec<Report>)).push((*r).to_report()) };
        }
        for scale in [2f64.powi(-600), 1.0, 2f64.powi(600)] {
            let mut errors = ErrorStats::new(unit_of(scale));
            for i in 0..10 {
                let x = i as f64 * scale;
                errors.add(x, x + 0.25 * (1 + i % 3) as f64 * scale);
            }
            let stats = CompressStats {
                bytes_in: 80,
                bytes_out: 8,
                errors,
                range: 9.0 * scale,
                seconds: 0.0,
                recon_hash: 0,
            };
            let report = Report {
                engine: "e".into(),
                variable: "v".into(),
                range_used: RangeUsed::Global,
                stats,
            };
            let mut back: Vec<Report> = Vec::new();
            // SAFETY: `push` takes the Vec passed as `ctx`.
            unsafe {
                hand_out(
                    std::slice::from_ref(&report),
                    push,
                    &mut back as *mut _ as *mut c_void,
                )
            };
            let e = back[0].stats.errors;
            assert_eq!((e.count, e.max_abs), (10, errors.max_abs));
            let rms = errors.rms();
            assert!(rms.is_finite() && rms > 0.0);
            assert!((e.rms() / rms - 1.0).abs() < 1e-15, "{} != {rms}", e.rms());
        }
    }
}
