//! Any bytes: decoding returns a value or an error, never panics, hangs or writes out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = residuum::stream_info(data) {
        // Bound the allocation a hostile header can ask for.
        if info.decoded_len() <= 1 << 26 {
            let mut out = vec![0u8; info.decoded_len()];
            let _ = residuum::decode_into(data, &mut out);
        }
    }
});
