//! Hostile and unlucky input through the library: streams whose valid header claims far more
//! than their payloads hold, ranges that overflow f64, signalling NaNs, absurd thread counts.

use residuum::{Codec, DecodeOptions, Error};
use std::path::Path;

mod common;
use common::NGLR_NET;

/// Rewrites a one-block stream's header to claim `dims` (one block over the whole 3D view),
/// keeping its payloads and table entries (the block's, and a network's after it), with a
/// correct header checksum: a stream only the payload's own capacity can tell from a real one.
fn claim(stream: &[u8], dims: &[u64]) -> Vec<u8> {
    let ndims = stream[8] as usize;
    let table = 20 + 8 * ndims + 24 + 8;
    let nblocks = u64::from_le_bytes(stream[table - 8..table].try_into().unwrap()) as usize;
    assert!(nblocks == 1 || stream[9] != 0, "one-block streams only");
    let entry = &stream[table..table + 17 * nblocks];
    let payload = &stream[table + 17 * nblocks + 8..];
    let mut h = stream[..20].to_vec();
    h[8] = dims.len() as u8;
    for &d in dims {
        h.extend_from_slice(&d.to_le_bytes());
    }
    let mut view = [1u64; 3];
    let n = dims.len().min(3);
    view[3 - n..].copy_from_slice(&dims[dims.len() - n..]);
    view[0] *= dims[..dims.len() - n].iter().product::<u64>();
    for v in view {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(&(nblocks as u64).to_le_bytes());
    h.extend_from_slice(entry);
    let sum = xxhash_rust::xxh3::xxh3_64(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    h.extend_from_slice(payload);
    h
}

/// A one-block stream with its block's payload replaced by `payload` (table entry and header
/// checksum rewritten to match).
fn with_payload(stream: &[u8], payload: &[u8]) -> Vec<u8> {
    let ndims = stream[8] as usize;
    let table = 20 + 8 * ndims + 24 + 8;
    assert_eq!(
        u64::from_le_bytes(stream[table - 8..table].try_into().unwrap()),
        1
    );
    let mut h = stream[..table + 1].to_vec();
    h.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    h.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    h.extend_from_slice(payload);
    h
}

/// Of several damaged blocks (payloads ending in garbage, their table entries and the header
/// checksum rewritten to match), the error names the first, for any thread count: rayon's parallel
/// collect returned whichever error it met first.
#[test]
fn of_several_bad_blocks_the_first_is_named_for_any_thread_count() {
    let s = codec(&[("nrmse", "1e-4"), ("residual", "lbrc"), ("block", "1x1x64")])
        .compress(&[4096], &ramp(4096))
        .unwrap();
    let ndims = s[8] as usize;
    let table = 20 + 8 * ndims + 24 + 8;
    let n = u64::from_le_bytes(s[table - 8..table].try_into().unwrap()) as usize;
    assert_eq!(n, 64);
    let mut payloads = Vec::new();
    let mut at = table + 17 * n + 8;
    for k in 0..n {
        let e = table + 17 * k;
        let len = u64::from_le_bytes(s[e + 1..e + 9].try_into().unwrap()) as usize;
        let p = &s[at..at + len];
        // Blocks 1 and 4 end in garbage, every checksum still holding: in one round of the
        // pool, where 2 threads meet block 4 first.
        let mut p = p.to_vec();
        if k == 1 || k == 4 {
            p[len / 2..].fill(0xa5);
        }
        payloads.push(p);
        at += len;
    }
    let mut h = s[..table].to_vec();
    for (k, p) in payloads.iter().enumerate() {
        h.push(s[table + 17 * k]);
        h.extend_from_slice(&(p.len() as u64).to_le_bytes());
        h.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(p).to_le_bytes());
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    h.extend(payloads.concat());
    let mut seen = std::collections::BTreeSet::new();
    for threads in [1, 2, 3, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for _ in 0..20 {
            seen.insert(
                pool.install(|| residuum::decode(&h))
                    .unwrap_err()
                    .to_string(),
            );
        }
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let e = seen.first().unwrap();
    assert!(e.contains("block 1 "), "{e}");
}

fn codec(pairs: &[(&str, &str)]) -> Codec {
    Codec::from_pairs(pairs.iter().copied()).unwrap()
}

/// A smooth ramp that LBRC codes with real residuals (no zero-cost symbol).
fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37).sin() * 10.0).collect()
}

#[test]
fn streams_claiming_more_than_their_payloads_hold_are_refused_before_allocation() {
    let lbrc = codec(&[("nrmse", "1e-4"), ("residual", "lbrc")])
        .compress(&[4096], &ramp(4096))
        .unwrap();
    let wavelet = codec(&[("nrmse", "1e-4"), ("residual", "wavelet")])
        .compress(&[4096], &ramp(4096))
        .unwrap();
    let zstd = codec(&[("mode", "lossless")])
        .compress(&[4096], &vec![1.5f32; 4096])
        .unwrap();
    let constant = codec(&[("nrmse", "1e-3")])
        .compress(&[4096], &vec![2.0f32; 4096])
        .unwrap();
    for (name, s) in [
        ("lbrc", &lbrc),
        ("wavelet", &wavelet),
        ("zstd", &zstd),
        ("constant", &constant),
    ] {
        // Sanity: the edit alone (same claim) decodes.
        let same = claim(s, &[4096]);
        assert_eq!(
            residuum::decode_as::<f32>(&same).unwrap().1.len(),
            4096,
            "{name}"
        );
        // A constant block holds any number of values; 2^36 f32 is above the decode limit.
        let claims: &[u64] = if name == "constant" {
            &[1 << 36]
        } else {
            &[1 << 28, 1 << 36]
        };
        for &claimed in claims {
            let lying = claim(s, &[claimed]);
            let e = residuum::decode_as::<f32>(&lying).unwrap_err();
            let msg = e.to_string();
            // Refused from the header and the coder's tables, or (where a context costs no
            // bits, so that no bound follows from them) as soon as a lane runs out of bytes.
            assert!(
                matches!(e, Error::Format(_) | Error::Limit(_)),
                "{name} {claimed}: {e}"
            );
            assert!(msg.contains(&claimed.to_string()), "{name}: {msg}");
            // Into a caller's buffer the claim is refused as well (the buffer is too small,
            // or the payload cannot hold it).
            let mut small = vec![0u8; 4096 * 4];
            assert!(residuum::decode_into(&lying, &mut small).is_err(), "{name}");
        }
    }
    // A constant block can legitimately stand for any number of values: within the limit it
    // decodes, beyond it the limit speaks.
    let big = claim(&constant, &[1 << 20]);
    assert!(residuum::decode_as::<f32>(&big)
        .unwrap()
        .1
        .iter()
        .all(|&v| v == 2.0));
    let opts = DecodeOptions {
        max_decoded_bytes: 1 << 20,
    };
    let e = residuum::decode_as_with::<f32>(&big, &opts).unwrap_err();
    assert!(
        matches!(e, Error::Limit(_)) && e.to_string().contains("max_decoded_bytes"),
        "{e}"
    );
    assert!(residuum::decode_with(&claim(&constant, &[1000]), &opts).is_ok());

    // An NGLR block (its network in the table) claiming a 2^28-value cube: refused from its
    // head and tables too.
    let nglr = codec(&[("nrmse", "1e-4"), ("residual", "nglr"), ("nglr", NGLR_NET)])
        .compress(&[16, 16, 16], &ramp(4096))
        .unwrap();
    assert_eq!(
        residuum::decode_as::<f32>(&claim(&nglr, &[16, 16, 16]))
            .unwrap()
            .1,
        { residuum::decode_as::<f32>(&nglr).unwrap().1 }
    );
    let lying = claim(&nglr, &[1 << 10, 1 << 9, 1 << 9]);
    let e = residuum::decode_as::<f32>(&lying).unwrap_err();
    assert!(
        matches!(e, Error::Format(_)) && e.to_string().contains("268435456"),
        "{e}"
    );
}

/// The largest and the RMS error of the finite values of `data` decoded as `back`, in units of
/// the range `2·half`: halved first, so that values near ±f64::MAX do not overflow.
fn errors_in_ranges(data: &[f64], back: &[f64], half: f64) -> (f64, f64) {
    let errs: Vec<f64> = data
        .iter()
        .zip(back)
        .filter(|(a, _)| a.is_finite())
        .map(|(a, b)| ((a / 2.0 - b / 2.0) / half).abs())
        .collect();
    let max = errs.iter().fold(0.0f64, |m, &e| m.max(e));
    let rms = (errs.iter().map(|e| e * e).sum::<f64>() / errs.len() as f64).sqrt();
    (max, rms)
}

#[test]
fn an_overflowing_f64_range_keeps_every_bound() {
    let mut data: Vec<f64> = [0.5, 1.0, 2.0, 3.0].iter().map(|v| v * 250.0).collect();
    data.extend([1e308, -1e308]);
    // The true range, 2e308, computed without overflow.
    let half_range = 1e308;
    for (key, value) in [
        ("rel", "1e-12"),
        ("nrmse", "1e-12"),
        ("psnr", "240"),
        ("rel", "0.4"),
    ] {
        let s = codec(&[(key, value)])
            .compress(&[data.len()], &data)
            .unwrap();
        let (_, back) = residuum::decode_as::<f64>(&s).unwrap();
        let t: f64 = value.parse().unwrap();
        let tol = match key {
            "psnr" => 10f64.powf(-t / 20.0),
            _ => t,
        };
        let (max_err, rms) = errors_in_ranges(&data, &back, half_range);
        let err = if key == "rel" { max_err } else { rms };
        assert!(
            err <= tol && err.is_finite(),
            "{key}={value}: {err} > {tol} (in ranges)"
        );
        assert!(
            back[4] > 9e307 && back[5] < -9e307,
            "{key}={value}: {back:?}"
        );
    }
}

/// A constant with values of both signs near the f64 limits and an infinity: distances between
/// the values overflow, which kept LBRC's search for a rounded lattice going forever (this
/// 17-value array hung compression at nrmse 1e-6, psnr 90 and rel 1e-5). The work runs on a
/// thread so that a hang fails the test instead of stalling the suite.
#[test]
fn values_spanning_beyond_f64_max_do_not_hang_and_keep_their_bounds() {
    let mut data = vec![4.230758200257591e124; 17];
    data[1] = 1.380686741777526e308;
    data[10] = -1.2905722016019347e308;
    data[11] = f64::NEG_INFINITY;
    // Half the range, which overflows.
    let half = data[1] / 2.0 - data[10] / 2.0;
    let targets = [
        ("nrmse", "1e-4"),
        ("nrmse", "1e-6"),
        ("nrmse", "1e-9"),
        ("psnr", "90"),
        ("rel", "1e-5"),
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    let sent = data.clone();
    std::thread::spawn(move || {
        for (key, value) in targets {
            let s = codec(&[(key, value)]).compress(&[sent.len()], &sent);
            tx.send(s).unwrap();
        }
    });
    for (key, value) in targets {
        let s = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{key}={value}: compression did not finish"))
            .unwrap();
        let (_, back) = residuum::decode_as::<f64>(&s).unwrap();
        assert_eq!(back[11].to_bits(), data[11].to_bits(), "{key}={value}");
        let t: f64 = value.parse().unwrap();
        let tol = match key {
            "psnr" => 10f64.powf(-t / 20.0),
            _ => t,
        };
        let (max_err, rms) = errors_in_ranges(&data, &back, half);
        let err = if key == "rel" { max_err } else { rms };
        assert!(err <= tol, "{key}={value}: {err} > {tol} (in ranges)");
    }
}

#[test]
fn signalling_nans_keep_their_bits_in_every_mode() {
    let snan32 = f32::from_bits(0x7f80_0001);
    let neg_snan32 = f32::from_bits(0xffa0_0005);
    let mut data = ramp(5000);
    data[17] = snan32;
    data[4000] = neg_snan32;
    data[99] = f32::INFINITY;
    for pairs in [
        vec![("nrmse", "1e-4")],
        vec![("abs", "1e-3")],
        vec![("abs", "1e-3"), ("coder", "planes")],
        vec![("nrmse", "1e-4"), ("residual", "gae")],
        vec![("rel", "1e-2"), ("block", "8x8x8")],
        vec![("mode", "lossless")],
    ] {
        let s = codec(&pairs).compress(&[5000], &data).unwrap();
        let (_, back) = residuum::decode_as::<f32>(&s).unwrap();
        for i in [17, 4000, 99] {
            assert_eq!(back[i].to_bits(), data[i].to_bits(), "{pairs:?} at {i}");
        }
    }
    let mut d64: Vec<f64> = ramp(3000).iter().map(|&v| v as f64).collect();
    d64[5] = f64::from_bits(0x7ff0_0000_0000_0001);
    let s = codec(&[("nrmse", "1e-5")]).compress(&[3000], &d64).unwrap();
    let (_, back) = residuum::decode_as::<f64>(&s).unwrap();
    assert_eq!(back[5].to_bits(), 0x7ff0_0000_0000_0001);
}

#[test]
fn thread_counts_are_capped() {
    for t in ["100000", "99999999999"] {
        let e = Codec::from_pairs([("threads", t)]).unwrap_err().to_string();
        assert!(e.contains("1024"), "{e}");
    }
}

/// `model=` and `nglr=` read only regular files of a weights file's size: a device, a directory
/// or a data file named by mistake is an error (reading /dev/zero ran until memory ran out).
#[test]
fn weights_parameters_refuse_what_is_no_weights_file() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.safetensors");
    // Sparse: 64 MiB and one byte, without writing them.
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((64 << 20) + 1).unwrap();
    for key in ["model", "nglr"] {
        for (path, why) in [
            (Path::new("/dev/zero"), "not a regular file"),
            (dir.path(), "not a regular file"),
            (big.as_path(), "larger than a weights file"),
        ] {
            let e =
                Codec::from_pairs([("nrmse", "1e-4"), (key, path.to_str().unwrap())]).unwrap_err();
            assert!(
                matches!(e, Error::Model(_)),
                "{key}={}: {e}",
                path.display()
            );
            assert!(e.to_string().contains(why), "{key}={}: {e}", path.display());
        }
    }
}

/// The decoder's memory follows what a stream really holds, not what its header claims: a
/// 2^28-value claim (1 GiB of f32) over a few hundred bytes of LBRC payload took 2.3 GB before.
/// Both integer-coded block kinds (LBRC, wavelet) are refused before their buffers exist.
#[test]
fn a_lying_stream_costs_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    for residual in ["lbrc", "wavelet"] {
        let honest = codec(&[("nrmse", "1e-4"), ("residual", residual)])
            .compress(&[4096], &ramp(4096))
            .unwrap();
        let (lie, out) = (dir.path().join("lie.rsd"), dir.path().join("out"));
        std::fs::write(&lie, claim(&honest, &[1 << 28])).unwrap();
        #[allow(clippy::zombie_processes)] // reaped by wait4 below
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_residuum"))
            .args(["decompress", "-i"])
            .arg(&lie)
            .arg("-o")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        // This child's own peak (wait4), not RUSAGE_CHILDREN's largest of every child the
        // tests beside this one reaped. Linux carries this process's peak at the spawn into
        // it, which these tests keep small.
        let (mut status, mut usage) = (0, std::mem::MaybeUninit::<libc::rusage>::uninit());
        // SAFETY: the child's pid, not yet waited for (its Child is dropped unwaited); valid
        // pointers to fill; usage read only on success.
        let usage = unsafe {
            let pid = child.id() as libc::pid_t;
            assert_eq!(libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()), pid);
            usage.assume_init()
        };
        assert!(libc::WIFEXITED(status), "{residual}: {err}");
        assert_eq!(libc::WEXITSTATUS(status), 1, "{residual}: {err}");
        assert!(
            err.contains("268435456 float values claimed")
                || err.contains("claims 268435456 float values"),
            "{residual}: {err}"
        );
        assert!(!out.exists());
        assert!(
            usage.ru_maxrss < 100 << 10,
            "{residual}: peak RSS {} KiB",
            usage.ru_maxrss
        );
    }
}

/// Appends `v` as a varint (7 bits a byte, low first).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `residuum decompress` of `stream` under an address-space limit of `kib` KiB: its exit code
/// (None if a signal ended it, as an abort does) and what it said.
fn decompress_limited(stream: &[u8], kib: usize) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (lie, out) = (dir.path().join("lie.rsd"), dir.path().join("out"));
    std::fs::write(&lie, stream).unwrap();
    let run = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib}; exec \"$0\" decompress -i \"$1\" -o \"$2\""
        ))
        .arg(env!("CARGO_BIN_EXE_residuum"))
        .arg(&lie)
        .arg(&out)
        .output()
        .unwrap();
    (
        run.status.code(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

/// A GAE block's body length is a claim too: checked against its zstd frame before anything is
/// reserved. Before, a 2^28-value claim whose body length said 21 GB aborted the decoder (a
/// reservation of that size up front), and its patch list alone took 800 MB.
#[test]
fn a_gae_body_length_is_checked_before_it_is_reserved() {
    let honest = codec(&[("nrmse", "1e-4"), ("residual", "gae")])
        .compress(&[4096], &ramp(4096))
        .unwrap();
    assert_eq!(
        residuum::decode_as::<f32>(&with_payload(&honest, &payload_of(&honest)))
            .unwrap()
            .1
            .len(),
        4096
    );
    // [no base][no special values][basis width][basis][step][body length][body frame]
    let p = payload_of(&honest);
    assert_eq!(&p[..2], &[0, 0]);
    let at = 3 + 4 * 64 * p[2] as usize + 8;
    let mut old = 0u64;
    let mut end = at;
    for (i, &b) in p[at..].iter().enumerate() {
        old |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            end = at + i + 1;
            break;
        }
    }
    let claimed: u64 = 1 << 28;
    // The most the old check let through (641 bytes a patch of 8 values): 21 GB.
    let lengths = [641 * (claimed / 8), old + 1];
    for len in lengths {
        let mut q = p[..at].to_vec();
        put_varint(&mut q, len);
        q.extend_from_slice(&p[end..]);
        // Under an 8 GiB address-space limit, so that a reservation of the claim aborts.
        let (code, err) =
            decompress_limited(&claim(&with_payload(&honest, &q), &[claimed]), 8 << 20);
        assert_eq!(code, Some(1), "{len}: {err}");
        assert!(err.contains("GAE body of the wrong size"), "{len}: {err}");
    }
}

/// A GAE body may mark every patch coded in a mask that zstd stores in a few bytes: the coded
/// patches were listed (8 bytes each: 1 GiB for a 2^27-patch claim over a 5 KB frame) before
/// the lengths the body lacks were missed (an abort). Under a 1.5 GiB address-space limit (the
/// array is 512 MiB).
#[test]
fn a_gae_mask_of_every_patch_costs_no_list() {
    let honest = codec(&[("nrmse", "1e-4"), ("residual", "gae")])
        .compress(&[4096], &ramp(4096))
        .unwrap();
    let claimed = 1usize << 27;
    // Every mask bit set, then 4 KB of noise: a frame long enough to stand for the body.
    let mut body = vec![0xFFu8; claimed / 8];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    body.extend((0..4096).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    // No base, no special values, an empty basis, step 1, the body's length and frame.
    let mut p = vec![0u8, 0, 0];
    p.extend_from_slice(&1.0f64.to_le_bytes());
    put_varint(&mut p, body.len() as u64);
    // Level 1: a small context (this process's peak is every child's floor in `ru_maxrss`).
    p.extend(zstd::bulk::compress(&body, 1).unwrap());
    let lie = claim(&with_payload(&honest, &p), &[claimed as u64, 1, 1]);
    let (code, err) = decompress_limited(&lie, 1536 << 10);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("134217728 float values claimed"), "{err}");
    assert!(err.contains("block payload ends early"), "{err}");
}

/// A one-block stream's block payload.
fn payload_of(stream: &[u8]) -> Vec<u8> {
    let ndims = stream[8] as usize;
    stream[20 + 8 * ndims + 24 + 8 + 17 + 8..].to_vec()
}

/// Shapes too large to address are refused, and their worst-case stream length saturates:
/// the grid of `[2^33, 2^33, 1, 1]` overflowed (a panic with overflow checks).
#[test]
fn shapes_too_large_to_address() {
    let c = codec(&[("nrmse", "1e-3")]);
    let e = c
        .compress::<f32>(&[1 << 33, 1 << 33, 0, 1], &[])
        .unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
    assert_eq!(
        c.max_compressed_len(residuum::ElementType::F32, &[1 << 33, 1 << 33, 1, 1]),
        usize::MAX
    );
}

/// A version this library does not know is said as such; where the header's checksum does not
/// hold either, the stream may just be damaged, and the error says so (a bit flip in the
/// version read as "newer than this library", telling the user to upgrade).
#[test]
fn unknown_versions_and_damaged_ones_are_told_apart() {
    let s = codec(&[("nrmse", "1e-3")])
        .compress(&[64], &ramp(64))
        .unwrap();
    let with_version = |v: u16, resum: bool| {
        let mut t = s.clone();
        t[4..6].copy_from_slice(&v.to_le_bytes());
        if resum {
            let ndims = t[8] as usize;
            let table = 20 + 8 * ndims + 24 + 8;
            let n = u64::from_le_bytes(t[table - 8..table].try_into().unwrap()) as usize;
            let end = table + 17 * n;
            let sum = xxhash_rust::xxh3::xxh3_64(&t[..end]);
            t[end..end + 8].copy_from_slice(&sum.to_le_bytes());
        }
        residuum::decode(&t).unwrap_err().to_string()
    };
    let flipped = u16::from_le_bytes([s[4], s[5] ^ 1]);
    let damaged = with_version(flipped, false);
    assert!(
        damaged.contains("newer") && damaged.contains("damaged"),
        "{damaged}"
    );
    let newer = with_version(flipped, true);
    assert!(
        newer.contains("newer") && !newer.contains("damaged"),
        "{newer}"
    );
    let zero = with_version(0, true);
    assert!(
        zero.contains("damaged") && !zero.contains("newer"),
        "{zero}"
    );
}

/// f64 values of one sign near f64::MAX: their range is small against them, so they code
/// lossy like any field. The offset (lo + hi) / 2 overflowed to +Inf and every block was
/// stored exactly (8 bytes a value).
#[test]
fn f64_values_of_one_sign_near_the_top_code_lossy() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let v: Vec<f64> = (0..4096)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1.2e308 + (i as f64 * 0.01).sin() * 5e306 + (x % 1000) as f64 * 1e301
        })
        .collect();
    for residual in ["lbrc", "wavelet", "auto"] {
        let c = codec(&[("nrmse", "1e-3"), ("residual", residual)]);
        let s = c.compress(&[v.len()], &v).unwrap();
        let (_, back) = residuum::decode_as::<f64>(&s).unwrap();
        let range = 1e307;
        let rms = (v
            .iter()
            .zip(&back)
            .map(|(a, b)| ((a - b) / range).powi(2))
            .sum::<f64>()
            / v.len() as f64)
            .sqrt();
        assert!(rms <= 1.1e-3, "{residual}: {rms}");
        assert!(s.len() < v.len() * 8 / 3, "{residual}: {} bytes", s.len());
    }
    let c = codec(&[("abs", "1e304")]);
    let s = c.compress(&[v.len()], &v).unwrap();
    let (_, back) = residuum::decode_as::<f64>(&s).unwrap();
    assert!(v.iter().zip(&back).all(|(a, b)| (a - b).abs() <= 1e304));
    assert!(s.len() < v.len() * 8 / 3, "abs: {} bytes", s.len());
}

#[test]
fn a_previous_step_that_smooths_to_nan_is_refused() {
    // f64 values of ±f64::MAX side by side: the rows' smoothing overflows to ±inf and the
    // columns' then sums inf + -inf, a NaN whose bits depend on the machine (x86 and Arm make
    // different ones). The encoder codes over no such base; a stream that does is refused.
    use residuum::internals::lbrc::decode_over_previous;
    use residuum::ElementType;
    let m = f64::MAX;
    let previous = [m, m, -m, -m, m, m, -m, -m];
    let mut payload = vec![1, 0]; // smoothing 1 at gain 1; a constant residual
    payload.extend_from_slice(&0f64.to_le_bytes());
    payload.push(0); // no special values
    let got = decode_over_previous(&payload, &previous, None, [1, 2, 4], ElementType::F64, 12);
    assert!(
        matches!(&got, Err(e) if e.format_kind() == Some(residuum::FormatErrorKind::Corrupt)),
        "{:?}",
        got.map(|b| b
            .chunks(8)
            .map(|c| format!("{:02x?}", c))
            .collect::<Vec<_>>())
    );
}
