//! The C ABI, called as C would: status codes, messages, unaligned buffers, null pointers.

mod common;

use residuum::ffi::insitu::*;
use residuum::ffi::*;
use std::ffi::{CStr, CString};
use std::ptr;

fn last_error() -> String {
    // SAFETY: residuum_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(residuum_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn codec(pairs: &[(&str, &str)]) -> Result<*mut residuum_codec, (i32, String)> {
    let keys: Vec<CString> = pairs.iter().map(|p| CString::new(p.0).unwrap()).collect();
    let vals: Vec<CString> = pairs.iter().map(|p| CString::new(p.1).unwrap()).collect();
    let kp: Vec<_> = keys.iter().map(|k| k.as_ptr()).collect();
    let vp: Vec<_> = vals.iter().map(|v| v.as_ptr()).collect();
    let mut c = ptr::null_mut();
    // SAFETY: n strings each, valid out pointer.
    let st = unsafe { residuum_codec_new(kp.as_ptr(), vp.as_ptr(), pairs.len(), &mut c) };
    if st == RESIDUUM_OK {
        Ok(c)
    } else {
        Err((st, last_error()))
    }
}

#[test]
fn bad_parameters_are_rejected_with_their_name() {
    let (st, msg) = codec(&[("colour", "red")]).unwrap_err();
    assert_eq!(st, RESIDUUM_ERR_PARAMETER);
    assert!(
        msg.contains("unknown parameter 'colour'") && msg.contains("mode"),
        "{msg}"
    );
    let (st, msg) = codec(&[("mode", "magic")]).unwrap_err();
    assert_eq!(st, RESIDUUM_ERR_PARAMETER);
    assert!(
        msg.contains("'mode'") && msg.contains("magic") && msg.contains("lossless"),
        "{msg}"
    );
    // SAFETY: null out pointer must be refused, not written.
    let st = unsafe { residuum_codec_new(ptr::null(), ptr::null(), 0, ptr::null_mut()) };
    assert_eq!(st, RESIDUUM_ERR_PARAMETER);
}

/// Compresses `input` (a `dims` array of `dtype`) and decompresses it again through the C ABI,
/// every buffer one byte off alignment as C may hand it. Returns the stream and the bytes back.
fn c_round_trip(
    c: *mut residuum_codec,
    dtype: i32,
    dims: &[usize],
    input: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut inp = vec![0u8; input.len() + 1];
    inp[1..].copy_from_slice(input);
    // SAFETY: valid codec and dims; buffers sized as declared.
    unsafe {
        let cap = residuum_max_compressed_size(c, dtype, dims.len(), dims.as_ptr());
        assert!(cap >= input.len());
        let mut out = vec![0u8; cap + 1];
        let mut n = 0;
        let st = residuum_compress(
            c,
            dtype,
            dims.len(),
            dims.as_ptr(),
            inp.as_ptr().add(1),
            out.as_mut_ptr().add(1),
            cap,
            &mut n,
        );
        assert_eq!(st, RESIDUUM_OK, "{}", last_error());
        let (mut bytes, mut dt, mut nd) = (0, 0, 0);
        assert_eq!(
            residuum_stream_info(out.as_ptr().add(1), n, &mut bytes, &mut dt, &mut nd),
            RESIDUUM_OK
        );
        assert_eq!((bytes, dt, nd), (input.len(), dtype, dims.len()));
        let mut back = vec![0u8; input.len() + 1];
        let mut m = 0;
        let st = residuum_decompress(
            out.as_ptr().add(1),
            n,
            back.as_mut_ptr().add(1),
            input.len(),
            &mut m,
        );
        assert_eq!(st, RESIDUUM_OK, "{}", last_error());
        assert_eq!(m, input.len());
        (out[1..=n].to_vec(), back[1..].to_vec())
    }
}

#[test]
fn round_trip_through_unaligned_buffers() {
    let c = codec(&[("mode", "lossless"), ("PluginName", "residuum")]).unwrap();
    let vals: Vec<f64> = (0..60).map(|i| i as f64 * 0.25 - 3.0).collect();
    let input: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (stream, back) = c_round_trip(c, RESIDUUM_DOUBLE, &[3, 4, 5], &input);
    assert_eq!(back, input);
    let mut out = vec![0u8; stream.len() + 1];
    out[1..].copy_from_slice(&stream);
    let (n, len, mut m) = (stream.len(), input.len(), 0);
    let mut back = vec![0u8; len];
    // SAFETY: valid buffers of the sizes passed.
    unsafe {
        // Too small an output: refused, nothing written past it.
        let st = residuum_decompress(out.as_ptr().add(1), n, back.as_mut_ptr(), len - 1, &mut m);
        assert_eq!(st, RESIDUUM_ERR_PARAMETER, "{}", last_error());
        // Corrupted: a clear error.
        out[n] ^= 0x10;
        let st = residuum_decompress(out.as_ptr().add(1), n, back.as_mut_ptr(), len, &mut m);
        assert_eq!(st, RESIDUUM_ERR_FORMAT);
        assert!(last_error().contains("checksum"), "{}", last_error());
        residuum_codec_free(c);
    }
}

/// The lossy targets through the C ABI, for both element types: each within its bound on the
/// reconstruction, the NaN and the infinity bit for bit.
#[test]
fn lossy_round_trips_keep_their_bound() {
    let dims = [5usize, 6, 7];
    let mut vals: Vec<f64> = (0..210)
        .map(|i| (i as f64 * 0.3).sin() * 40.0 + i as f64 * 0.01)
        .collect();
    (vals[17], vals[100]) = (f64::NAN, f64::NEG_INFINITY);
    let double: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let single: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
    let single_bytes: Vec<u8> = single.iter().flat_map(|v| v.to_le_bytes()).collect();
    let single: Vec<f64> = single.iter().map(|&v| v as f64).collect();
    for (key, val) in [
        ("abs", "1e-3"),
        ("rel", "1e-5"),
        ("nrmse", "1e-6"),
        ("psnr", "80"),
    ] {
        let c = codec(&[(key, val)]).unwrap();
        let params = [(key, val.to_string())];
        let (stream, back) = c_round_trip(c, RESIDUUM_DOUBLE, &dims, &double);
        let back: Vec<f64> = back
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        common::check::check(&params, &vals, &back, &stream);
        let (stream, back) = c_round_trip(c, RESIDUUM_FLOAT, &dims, &single_bytes);
        let back: Vec<f64> = back
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect();
        common::check::check(&params, &single, &back, &stream);
        // SAFETY: a codec from residuum_codec_new, freed once.
        unsafe { residuum_codec_free(c) };
    }
}

#[test]
fn unsupported_type_and_null_pointers_are_errors() {
    let c = codec(&[]).unwrap();
    let dims = [4usize];
    let data = [0u8; 16];
    let mut out = [0u8; 256];
    let mut n = 0;
    // SAFETY: the arguments are valid except for what each call tests.
    unsafe {
        let st = residuum_compress(
            c,
            7,
            1,
            dims.as_ptr(),
            data.as_ptr(),
            out.as_mut_ptr(),
            256,
            &mut n,
        );
        assert_eq!(st, RESIDUUM_ERR_PARAMETER);
        assert!(
            last_error().contains("float and double"),
            "{}",
            last_error()
        );
        let st = residuum_compress(
            c,
            RESIDUUM_FLOAT,
            1,
            dims.as_ptr(),
            ptr::null(),
            out.as_mut_ptr(),
            256,
            &mut n,
        );
        assert_eq!(st, RESIDUUM_ERR_PARAMETER);
        assert_eq!(last_error(), "data is a null pointer");
        let st = residuum_compress(
            ptr::null(),
            RESIDUUM_FLOAT,
            1,
            dims.as_ptr(),
            data.as_ptr(),
            out.as_mut_ptr(),
            256,
            &mut n,
        );
        assert_eq!(st, RESIDUUM_ERR_PARAMETER);
        assert_eq!(last_error(), "codec is a null pointer");
        let st = residuum_decompress(ptr::null(), 10, out.as_mut_ptr(), 256, &mut n);
        assert_eq!(st, RESIDUUM_ERR_PARAMETER);
        // A capacity no buffer has ("large enough"): refused before a slice is made of it.
        let st = residuum_decompress(data.as_ptr(), 16, out.as_mut_ptr(), usize::MAX, &mut n);
        assert_eq!(st, RESIDUUM_ERR_PARAMETER);
        assert!(last_error().contains("isize::MAX"), "{}", last_error());
        assert_eq!(residuum_max_compressed_size(c, 9, 1, dims.as_ptr()), 0);
        // A shape whose size overflows is invalid too: 0, as the header documents, not SIZE_MAX.
        let huge = [usize::MAX / 2, 3];
        assert_eq!(
            residuum_max_compressed_size(c, RESIDUUM_FLOAT, 2, huge.as_ptr()),
            0
        );
        assert!(last_error().contains("overflows"), "{}", last_error());
        // So is one of more dimensions than a stream holds.
        let many = [1usize; 33];
        assert_eq!(
            residuum_max_compressed_size(c, RESIDUUM_FLOAT, 33, many.as_ptr()),
            0
        );
        assert!(last_error().contains("at most 32"), "{}", last_error());
        residuum_codec_free(c);
        residuum_codec_free(ptr::null_mut());
    }
    // SAFETY: static string.
    let v = unsafe { CStr::from_ptr(residuum_version()) };
    assert_eq!(v.to_str().unwrap(), residuum::VERSION);
}

/// The in-situ calls reach the operator's state inside the loaded ADIOS2 plugin: before it is
/// loaded they say so; once loaded, ranges of a rank or global kind are taken and bad ones
/// refused, and reports can be taken (none yet: nothing was compressed).
#[test]
fn insitu_calls_find_the_loaded_plugin() {
    let (engine, var) = (CString::new("run.bp").unwrap(), CString::new("U").unwrap());
    // SAFETY: valid C strings.
    let st =
        unsafe { residuum_set_range(engine.as_ptr(), var.as_ptr(), RESIDUUM_RANGE_GLOBAL, 2.0) };
    assert_eq!(st, RESIDUUM_ERR_IO, "{}", last_error());
    assert!(
        last_error().contains("plugin is not loaded"),
        "{}",
        last_error()
    );

    let lib = common::plugin_dir().join("libresiduum_plugin.so");
    let path = CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: loading the plugin runs no code beyond static initialisers; kept loaded.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "cannot load {}", lib.display());

    // SAFETY: valid C strings.
    unsafe {
        for kind in [RESIDUUM_RANGE_RANK, RESIDUUM_RANGE_GLOBAL] {
            let st = residuum_set_range(engine.as_ptr(), var.as_ptr(), kind, 2.0);
            assert_eq!(st, RESIDUUM_OK, "{}", last_error());
        }
        for (kind, range) in [
            (RESIDUUM_RANGE_BLOCK, 2.0),
            (RESIDUUM_RANGE_GLOBAL, f64::NAN),
            (99, 1.0),
        ] {
            let st = residuum_set_range(engine.as_ptr(), var.as_ptr(), kind, range);
            assert_eq!(st, RESIDUUM_ERR_PARAMETER, "kind {kind} range {range}");
        }
        unsafe extern "C" fn count(ctx: *mut std::ffi::c_void, _: *const residuum_report) {
            // SAFETY: ctx is the usize below.
            unsafe { *(ctx as *mut usize) += 1 };
        }
        let (mut seen, mut n) = (0usize, 99usize);
        let st = residuum_take_reports(
            ptr::null(),
            Some(count),
            &mut seen as *mut usize as *mut _,
            &mut n,
        );
        assert_eq!((st, seen, n), (RESIDUUM_OK, 0, 0));
        assert_eq!(residuum_set_threads(1), RESIDUUM_OK);
        assert_eq!(residuum_set_threads(0), RESIDUUM_OK);
    }
}
