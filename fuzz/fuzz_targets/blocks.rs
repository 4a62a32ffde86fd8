//! Block payloads behind the checksums: the LBRC, integer, GAE and wavelet decoders on any bytes
//! and shapes, with and without a base prediction, LBRC with an NGLR network, and LBRC over a
//! previous step's values (flags 64 and 8, smoothing included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use residuum::internals::{gae, lbrc, nglr, wavelet};
use residuum::ElementType;
use std::sync::{Arc, OnceLock};

/// A fixed network with weights of every sign and size (NGLR payloads name it).
fn network() -> &'static Arc<nglr::Network> {
    static NET: OnceLock<Arc<nglr::Network>> = OnceLock::new();
    NET.get_or_init(|| {
        let h = 4;
        let w = |n: usize, m: i64| {
            (0..n)
                .map(|i| ((i as i64 * 7919) % (2 * m + 1) - m) as i16)
                .collect()
        };
        let w1 = w(nglr::FEATURES * h, 30000);
        let b1 = (0..h as i32).map(|i| i * 1000 - 1500).collect();
        Arc::new(nglr::Network::new(h, w1, b1, 3, w(h, 20000), -7, 5).unwrap())
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // Small shapes, or (flag 16) large ones up to 2^24 values: a payload must not make the
    // decoder allocate for more values than it can hold.
    let shape = if data[3] & 16 == 0 {
        [
            1 + (data[0] % 8) as usize,
            1 + (data[1] % 16) as usize,
            1 + (data[2] % 32) as usize,
        ]
    } else {
        [1 << (data[0] % 9), 1 << (data[1] % 9), 1 << (data[2] % 9)]
    };
    let dtype = if data[3] & 1 == 0 {
        ElementType::F32
    } else {
        ElementType::F64
    };
    let n: usize = shape.iter().product();
    let base: Vec<f64> = if data[3] & 4 != 0 {
        (0..n).map(|i| (i % 13) as f64 * 0.25 - 1.0).collect()
    } else {
        Vec::new()
    };
    let base = (data[3] & 4 != 0).then_some(base.as_slice());
    // Streams of version 3 (special values as a list) and 4 (a list or a mask).
    let version = if data[3] & 32 == 0 { 3 } else { 4 };
    if data[3] & 72 == 72 {
        // Flags 64 and 8: a Previous payload (version 7) over the base values (or zeros).
        let zeros = vec![0.0; n];
        let previous = base.unwrap_or(&zeros);
        let _ = lbrc::decode_over_previous(&data[4..], previous, None, shape, dtype, 7);
    } else if data[3] & 64 != 0 {
        // Flag 64: a wavelet payload over no base, of version 5 or (flag 32) 10, or (flags 32
        // and 128) 11, whose inverse unscales by multiplying; from 10 the levels byte may ask
        // for the standard layout.
        let version = match (data[3] & 32, data[3] & 128) {
            (0, _) => 5,
            (_, 0) => 10,
            _ => 11,
        };
        let _ = wavelet::decode(&data[4..], shape, dtype, version);
    } else if data[3] & 8 == 0 {
        // Flag 128: the stream carries an NGLR network (version 6, or with flag 32 version 13,
        // where predictor 10 biases a block's first plane too and planes may have offsets of
        // their own).
        let (net, version) = match (data[3] & 128, data[3] & 32) {
            (0, _) => (None, version),
            (_, 0) => (Some(network()), 6),
            _ => (Some(network()), 13),
        };
        let _ = lbrc::decode(
            &data[4..],
            base,
            net,
            shape,
            dtype,
            data[3] & 2 != 0,
            version,
        );
    } else {
        let _ = gae::decode(&data[4..], base, shape, dtype, version);
    }
});
