//! The command line on a real field: compress, info, decompress bit-exactly, and clear errors.

use std::process::Command;

mod common;

fn residuum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_residuum"))
}

#[test]
fn compress_info_decompress_round_trip_on_real_data() {
    let data = common::data_dir().join("ccsm_b003_ts_100x64x128.f32");
    let dir = tempfile::tempdir().unwrap();
    let (rsd, back) = (dir.path().join("f.rsd"), dir.path().join("f.out"));
    let out = residuum()
        .args([
            "compress",
            "-i",
            data.to_str().unwrap(),
            "--dims",
            "100x64x128",
            "--type",
            "f32",
            "-p",
            "level=5",
            "-o",
        ])
        .arg(&rsd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ratio"));
    let info = residuum().args(["info", "-i"]).arg(&rsd).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("type float, dims 100x64x128, mode lossless"),
        "{info}"
    );
    let out = residuum()
        .args(["decompress", "-i"])
        .arg(&rsd)
        .arg("-o")
        .arg(&back)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&data).unwrap());
}

/// A raw file named with its shape (as `bench` and `train` read them) needs no --dims or --type;
/// what is given still wins, and a name without a shape still asks for them.
#[test]
fn the_shape_and_type_come_from_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<u8> = (0..2 * 3 * 5)
        .flat_map(|i| (i as f64 * 0.37).sin().to_le_bytes())
        .collect();
    let named = dir.path().join("wave_2x3x5.f64");
    std::fs::write(&named, &values).unwrap();
    let compress = |input: &std::path::Path, extra: &[&str], out: &str| {
        let o = dir.path().join(out);
        let r = residuum()
            .args(["compress", "--nrmse", "1e-4", "-i"])
            .arg(input)
            .args(extra)
            .arg("-o")
            .arg(&o)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        (r.status.success().then(|| std::fs::read(o).unwrap()), err)
    };
    let (from_name, e) = compress(&named, &[], "a.rsd");
    let from_name = from_name.unwrap_or_else(|| panic!("{e}"));
    let given = ["--dims", "2x3x5", "--type", "f64"];
    assert_eq!(compress(&named, &given, "b.rsd").0, Some(from_name.clone()));
    let info = residuum()
        .arg("info")
        .arg("-i")
        .arg(dir.path().join("a.rsd"))
        .output();
    let info = String::from_utf8_lossy(&info.unwrap().stdout).into_owned();
    assert!(info.contains("type double, dims 2x3x5"), "{info}");
    // What is given wins over the name: the same bytes as 30 values of one row.
    let (row, e) = compress(&named, &["--dims", "30"], "c.rsd");
    let row = row.unwrap_or_else(|| panic!("{e}"));
    assert_ne!(row, from_name);
    let plain = dir.path().join("wave.f64");
    std::fs::write(&plain, &values).unwrap();
    let one_row = ["--dims", "30", "--type", "f64"];
    assert_eq!(compress(&plain, &one_row, "e.rsd").0, Some(row));
    let (none, e) = compress(&plain, &[], "d.rsd");
    assert!(
        none.is_none() && e.contains("raw input needs --dims"),
        "{e}"
    );
}

#[test]
fn bad_input_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("x.f32");
    std::fs::write(&raw, [0u8; 12]).unwrap();
    let o = dir.path().join("x.rsd");
    let run = |args: &[&str]| {
        let out = residuum().args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (r, os) = (raw.to_str().unwrap(), o.to_str().unwrap());
    let e = run(&[
        "compress", "-i", r, "--dims", "4", "--type", "f32", "-o", os,
    ]);
    assert!(e.contains("x.f32: 12 bytes, but [4] float needs 16"), "{e}");
    let e = run(&[
        "compress", "-i", r, "--dims", "3", "--type", "f32", "-p", "speed=9", "-o", os,
    ]);
    assert!(e.contains("unknown parameter 'speed'"), "{e}");
    let e = run(&["decompress", "-i", r, "-o", os]);
    assert!(e.contains("not a residuum stream"), "{e}");
}

#[test]
fn eval_matches_fill_values_by_bits_as_the_codec_does() {
    // With fill=0, -0.0 is data (the codec compares bits): eval took it for a fill value and
    // failed, saying it was not reproduced exactly.
    let dir = tempfile::tempdir().unwrap();
    let vals: Vec<f32> = (0..4096)
        .map(|i| match i % 10 {
            0 => -0.0,
            _ => (i as f32 * 0.01).sin(),
        })
        .collect();
    let path = dir.path().join("f.f32");
    std::fs::write(
        &path,
        vals.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = residuum()
        .args([
            "eval", "--abs", "1e-3", "-p", "fill=0", "--dims", "64x64", "--type", "f32",
        ])
        .arg("-i")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn eval_reports_errors_within_the_target_and_npy_input_works() {
    let dir = tempfile::tempdir().unwrap();
    // A .npy file (version 1 header, little-endian float32, C order) of shape (6, 7, 8).
    let vals: Vec<f32> = (0..336).map(|i| (i as f32 * 0.13).sin() * 10.0).collect();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 7, 8), }";
    let pad = 64 - (10 + header.len() + 1) % 64;
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend(std::iter::repeat_n(b' ', pad));
    npy.push(b'\n');
    npy.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
    let path = dir.path().join("f.npy");
    let eval = |npy: &[u8]| {
        std::fs::write(&path, npy).unwrap();
        residuum()
            .args(["eval", "--nrmse", "1e-4", "-i"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = eval(&npy);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("dims [6, 7, 8]"), "{text}");
    let worst: f64 = text
        .split("worst block ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(worst <= 1e-4 && worst > 0.0, "{text}");
    // A Fortran-order or integer .npy is refused with the reason.
    let at = npy.windows(5).position(|w| w == b"'<f4'").unwrap();
    npy[at + 2] = b'i';
    let out = eval(&npy);
    assert!(String::from_utf8_lossy(&out.stderr).contains("little-endian float32/float64 only"));
}

/// Runs the CLI and returns (exit code, stderr); a crash (signal, panic) fails the test.
fn fails(args: &[&str]) -> String {
    let out = residuum().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

fn npy(shape: &str, extra: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '<f4', 'fortran_order': {extra}, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn hostile_command_lines_give_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let empty = p("empty.f32");
    std::fs::write(&empty, b"").unwrap();
    let o = p("o.rsd");
    // `compress -i INPUT ARGS... --nrmse 1e-4 -o o.rsd`, which must fail.
    let compress = |input: &str, args: &[&str]| {
        fails(
            &[
                &["compress", "-i", input],
                args,
                &["--nrmse", "1e-4", "-o", &o],
            ]
            .concat(),
        )
    };
    let raw_f32 = |dims| ["--dims", dims, "--type", "f32"];
    // Shapes whose product overflows: the true product in the message.
    let e = compress(&empty, &raw_f32("4294967296x4294967296x4294967296"));
    assert!(e.contains("79228162514264337593543950336 values"), "{e}");
    // 2^62 x 4 wraps to 0 bytes, the empty file's size.
    let e = compress(&empty, &raw_f32("4611686018427387904"));
    assert!(e.contains("4611686018427387904 values"), "{e}");
    let huge = p("huge.npy");
    std::fs::write(&huge, npy("(4611686018427420672,)", "False", &[])).unwrap();
    let e = compress(&huge, &[]);
    assert!(e.contains("more than can be addressed"), "{e}");
    let maybe = p("maybe.npy");
    std::fs::write(&maybe, npy("(2, 2)", "'maybe'", &[0u8; 16])).unwrap();
    let e = compress(&maybe, &[]);
    assert!(e.contains("fortran_order"), "{e}");
    // A device that never ends: refused after the bytes the shape needs, not read to the end.
    let e = compress("/dev/zero", &raw_f32("100"));
    assert!(e.contains("more than the 400 bytes"), "{e}");
    let e = fails(&["decompress", "-i", "/dev/zero", "-o", &p("o.out")]);
    assert!(e.contains("bad magic"), "{e}");
    // Thread counts and tiny blocks.
    let field = p("f.f32");
    std::fs::write(&field, vec![0u8; 4 * 4096]).unwrap();
    for bad in ["threads=99999999999", "block=1x1x1"] {
        let e = compress(&field, &[&raw_f32("4096")[..], &["-p", bad]].concat());
        assert!(
            e.contains("1024") || e.contains("at least 64 values"),
            "{e}"
        );
    }
    // A writer's settings: one array has no steps (the output matched a run without them).
    for bad in ["temporal=5", "train=1", "train_nglr=1"] {
        let e = compress(&field, &[&raw_f32("4096")[..], &["-p", bad]].concat());
        assert!(
            e.contains("serves the ADIOS2 operator's steps"),
            "{bad}: {e}"
        );
    }
    // Conflicting settings name both.
    for bad in ["mode=abs", "target=1e-2", "abs=5"] {
        let e = compress(&field, &[&raw_f32("4096")[..], &["-p", bad]].concat());
        assert!(e.contains("conflicts with nrmse=0.0001"), "{bad}: {e}");
    }
    let lossless = [
        "compress",
        "-i",
        &field,
        "--lossless",
        "-p",
        "nrmse=1e-4",
        "-o",
        &o,
    ];
    let e = fails(&[&lossless[..], &raw_f32("4096")].concat());
    assert!(e.contains("conflicts with mode=lossless"), "{e}");
    // The input is never the output.
    let same = ["compress", "-i", &field, "--nrmse", "1e-4", "-o", &field];
    let e = fails(&[&same[..], &raw_f32("4096")].concat());
    assert!(e.contains("the output is an input"), "{e}");
    assert_eq!(std::fs::read(&field).unwrap().len(), 4 * 4096);
    // The help says which range.
    let help = residuum().args(["compress", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("value range of the whole input array"));
}

/// A write that fails (here the file size limit, as a full disk would) leaves no partial output
/// and an existing output as it was.
#[test]
fn outputs_are_written_whole_or_not_at_all() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let field = dir.path().join("f.f32");
    let data: Vec<u8> = (0..65536u32)
        .flat_map(|i| ((i as f32).sin()).to_le_bytes())
        .collect();
    std::fs::write(&field, &data).unwrap();
    let out = dir.path().join("o.rsd");
    let run = |limit: Option<u64>| {
        let mut cmd = residuum();
        cmd.args([
            "compress",
            "--dims",
            "65536",
            "--type",
            "f32",
            "--lossless",
            "-i",
        ])
        .arg(&field)
        .arg("-o")
        .arg(&out);
        if let Some(limit) = limit {
            // SAFETY: only async-signal-safe libc calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let r = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.output().unwrap()
    };
    let o = run(Some(1000));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("o.rsd"));
    assert!(!out.exists(), "a partial output was left");
    std::fs::write(&out, b"previous").unwrap();
    assert!(!run(Some(1000)).status.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    assert!(run(None).status.success());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left: {names:?}");
}

/// An output path that is no regular file is written through, not replaced: a pipe gets the
/// decoded bytes and stays a pipe (renaming a temporary file over it, as for files, replaced
/// it, and as root replaced /dev/null or /dev/stdout the same way). A reader that closes its
/// end early ends the tool quietly, not with a panic.
#[test]
fn pipes_and_devices_are_written_through_and_a_closed_pipe_ends_quietly() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let field = dir.path().join("f_4096.f32");
    let data: Vec<u8> = (0..4096u32)
        .flat_map(|i| ((i as f32).cos()).to_le_bytes())
        .collect();
    std::fs::write(&field, &data).unwrap();
    let rsd = dir.path().join("f.rsd");
    let o = residuum()
        .args(["compress", "--lossless", "-i"])
        .arg(&field)
        .arg("-o")
        .arg(&rsd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let fifo = dir.path().join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    // Opening a pipe waits for its writer: on a thread, so that a tool that never opens it
    // fails the test instead of hanging it.
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(reader).unwrap());
    });
    let o = residuum()
        .args(["decompress", "-i"])
        .arg(&rsd)
        .arg("-o")
        .arg(&fifo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kind = std::fs::metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the pipe was replaced by {kind:?}");
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("nothing came through the pipe");
    assert!(got == data, "{} bytes came through", got.len());

    // stdout a pipe whose reader is gone before the tool starts: its first write meets
    // EPIPE, and the tool ends by SIGPIPE, as a C tool would, saying nothing.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = residuum()
        .args(["info", "-i"])
        .arg(&rsd)
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {err}",
        o.status
    );
    assert!(err.is_empty(), "{err}");
}

/// `train` checks what it can before spending its budget: settings the trainer refuses and an
/// output that is one of the fields; with `--dims`, raw files form collections by their name's
/// first word, not by their path (which put the outputs outside `--out`).
#[test]
fn train_checks_its_settings_and_outputs_first_and_names_collections_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<u8> = (0..32 * 32 * 32u32)
        .flat_map(|i| ((i as f32 * 0.01).sin() * (i % 32) as f32).to_le_bytes())
        .collect();
    let field = dir.path().join("wave_32x32x32.f32");
    std::fs::write(&field, &values).unwrap();
    let train = |args: &[&str]| {
        residuum()
            .args(["train", "--seconds", "60"])
            .args(args)
            .output()
            .unwrap()
    };
    let f = field.to_str().unwrap();
    for (args, why) in [
        (
            vec!["--nglr", "--hidden", "65", "--data", f, "--out", "n.st"],
            "65 hidden units (1..=64)",
        ),
        (
            vec!["--batch", "100000000000", "--data", f, "--out", "m.st"],
            "a batch of 100000000000 crops",
        ),
        // About 5 MB a crop while training: 4096 took some 20 GB.
        (
            vec!["--batch", "4096", "--data", f, "--out", "m.st"],
            "a batch of 4096 crops (1..=256)",
        ),
        // A NaN weight spent the budget on NaN losses; no step wrote an untrained model.
        (
            vec!["--rate-weight", "nan", "--data", f, "--out", "m.st"],
            "rate weight NaN (0 or more)",
        ),
        (
            vec!["--steps", "0", "--data", f, "--out", "m.st"],
            "no step within",
        ),
        (
            vec!["--nglr", "--steps", "0", "--data", f, "--out", "n.st"],
            "no step within",
        ),
        (vec!["--data", f, "--out", f], "the output is an input"),
    ] {
        let o = train(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(why), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read(&field).unwrap(),
        values,
        "the field was overwritten"
    );

    let raw: Vec<_> = ["sea_a.raw", "sea_b.raw"]
        .iter()
        .map(|n| {
            let p = dir.path().join("raw").join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &values).unwrap();
            p
        })
        .collect();
    let out = dir.path().join("nets");
    let o = residuum()
        .args(["train", "--nglr", "--each-collection", "--steps", "20"])
        .args(["--seconds", "60", "--dims", "32x32x32", "--data"])
        .args(&raw)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.join("sea.safetensors").is_file(),
        "{:?}",
        std::fs::read_dir(&out).unwrap().collect::<Vec<_>>()
    );
}

/// A .npy file carries its shape and type: --dims or --type given with one is an error, where
/// they were ignored.
#[test]
fn npy_input_refuses_a_shape_or_type_it_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    std::fs::write(&p, npy("(4,)", "False", &[0u8; 16])).unwrap();
    let o = residuum()
        .args(["compress", "--lossless", "--dims", "2x2", "-i"])
        .arg(&p)
        .arg("-o")
        .arg(dir.path().join("a.rsd"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("carries its shape"),
        "{err}"
    );
}
