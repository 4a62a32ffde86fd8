//! Any array and settings: compression returns a stream or an error, never panics or hangs, and
//! the stream decodes to values within the bound (checked as the tests check it: special values
//! bit for bit, the rest on the stream's own block grid) with the same bits on 1 and 2 threads.
//! The first 10 bytes choose the settings, the rest are values: raw f32 bits (NaN, ±Inf,
//! denormals, f32::MAX), or a smooth field with those bytes as sparse hostile values; compressed
//! as f32, or as f64 scaled by a power of two from 2^-869 to 2^869; NGLR with a fixed network
//! forced or not; or lossless (bit for bit, lattices among the values as LBRC integers, and
//! f64 values computed in f64).
//! Run it as `cargo fuzz run -s none roundtrip`: under AddressSanitizer, zstd at level 19 (GAE's
//! blocks) reports a stack use after scope at a global address, reading a local table of
//! function pointers within its bounds; without ASan the same inputs pass.
#![no_main]

#[path = "../../tests/common/check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;
use residuum::{decode_as, Codec};

/// The committed NGLR network of the golden streams.
const NET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/golden/nglr_net.safetensors"
);

/// Values with no bits of their own in the input: a smooth field.
fn smooth(i: usize, k: f32) -> f32 {
    (i as f32 * k).sin() * 50.0 + (i as f32 * 0.013).cos() * 7.0
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (head, body) = data.split_at(10);
    let ndims = 1 + (head[0] % 4) as usize;
    let dims: Vec<usize> = (0..ndims)
        .map(|d| 1 + (head[1 + d] % 16) as usize)
        .collect();
    let n: usize = dims.iter().product();
    if head[7] % 8 == 5 && n > 2048 {
        // GAE fits a 64×64 basis per block, milliseconds each in this build: tiny blocks
        // over many values are slow, not wrong.
        return;
    }
    let exp = 1 + (head[5] % 9) as i32;
    let t = 10f64.powi(-exp);
    let hostile: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut v: Vec<f32> = if head[6] & 1 == 0 {
        // Raw values, repeated to fill the shape.
        if hostile.is_empty() {
            return;
        }
        (0..n).map(|i| hostile[i % hostile.len()]).collect()
    } else {
        // A smooth field with the input's values at every 37th position.
        let k = 0.01 + (head[6] >> 1) as f32 * 0.01;
        (0..n)
            .map(|i| match (i % 37 == 0, hostile.get(i / 37)) {
                (true, Some(&h)) => h,
                _ => smooth(i, k),
            })
            .collect()
    };
    if head[7] % 8 == 7 {
        // Fill values among them (`fill=-999`): kept bit for bit, out of the range.
        v.iter_mut().step_by(11).for_each(|x| *x = -999.0);
    }
    let o: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    let r = check::range(&o);
    // Odd `mag`: as f64 scaled by 2^(mag % 870) (every f32 value stays normal in f64), with the
    // bound and fill value scaled, checked unscaled (exact) against the unscaled ones.
    let mag = i16::from_le_bytes([head[8], head[9]]);
    let wide = mag & 1 == 1;
    let scale = if wide {
        2f64.powi((mag % 870) as i32)
    } else {
        1.0
    };
    // With 16 and 32, lossless; with 16 alone, NGLR on every block it can serve (predictor 10
    // on blocks of one plane), where the mode leaves the residual coder to choose.
    let lossless = head[7] & 48 == 48;
    let nglr = head[7] & 48 == 16 && !matches!(head[7] % 8, 4 | 5);
    let params = |s: f64| -> Vec<(&str, String)> {
        let eps = (t * r.max(1e-3) * s).to_string();
        if lossless {
            return vec![("mode", "lossless".into())];
        }
        let mut p = match head[7] % 8 {
            0 => vec![("nrmse", t.to_string())],
            1 => vec![("abs", eps)],
            2 => vec![("rel", t.to_string())],
            3 => vec![("psnr", (20.0 * exp as f64).to_string())],
            4 => vec![("nrmse", t.to_string()), ("residual", "wavelet".into())],
            5 => vec![("nrmse", t.to_string()), ("residual", "gae".into())],
            6 => vec![("abs", eps), ("coder", "planes".into())],
            _ => vec![("nrmse", t.to_string()), ("fill", (-999.0 * s).to_string())],
        };
        if nglr {
            p.extend([("residual", "nglr".into()), ("nglr", NET.into())]);
        }
        p
    };
    let given = params(scale);
    let Ok(mut config) = residuum::Config::from_pairs(given.iter().map(|(k, v)| (*k, v.as_str())))
    else {
        return;
    };
    if head[7] & 8 != 0 {
        // Any block shape, tiny ones too (the `block` parameter refuses those: they only cost),
        // from the bits the dimensions leave.
        let b = |x: u8| 1 + (x >> 4) as usize;
        config.block = Some([b(head[1]), b(head[2]), b(head[3])]);
    }
    let one = Codec::new(config).unwrap().with_threads(1).unwrap();
    // Lossless with bit 1 of `mag` too: the scaled values times 1 + 2^-40, as if computed in
    // f64 (every bit of the mantissa in use: no lattice, the values' ordered bits).
    let computed = if lossless && mag & 2 == 2 {
        1.0 + 2f64.powi(-40)
    } else {
        1.0
    };
    let scaled: Vec<f64> = o.iter().map(|x| x * scale * computed).collect();
    let compress = |codec: &Codec| match wide {
        true => codec.compress(&dims, &scaled),
        false => codec.compress(&dims, &v),
    };
    // Settings the parameters accept and any array of their type compress: an error here is a
    // bug to find, not an input to skip.
    let s = compress(&one).unwrap_or_else(|e| panic!("compressing failed: {e}"));
    if lossless {
        // Bit for bit, as stored (widening would quiet a signalling NaN).
        let same = match wide {
            true => decode_as::<f64>(&s).map(|(_, b)| {
                b.iter()
                    .map(|x| x.to_bits())
                    .eq(scaled.iter().map(|x| x.to_bits()))
            }),
            false => decode_as::<f32>(&s).map(|(_, b)| {
                b.iter()
                    .map(|x| x.to_bits())
                    .eq(v.iter().map(|x| x.to_bits()))
            }),
        };
        assert!(
            same.expect("a stream just written decodes"),
            "lossless, not bit for bit"
        );
    } else {
        let b: Vec<f64> = match wide {
            true => decode_as::<f64>(&s).map(|(_, b)| b.iter().map(|x| x / scale).collect()),
            false => decode_as::<f32>(&s).map(|(_, b)| b.iter().map(|&x| x as f64).collect()),
        }
        .expect("a stream just written decodes");
        check::check(&params(1.0), &o, &b, &s);
    }
    let two = compress(&one.with_threads(2).unwrap()).unwrap();
    assert!(two == s, "1 and 2 threads wrote different streams");
});
