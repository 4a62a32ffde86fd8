//! Any bytes: decoding returns a value or an error, never panics, hangs, writes out of bounds or
//! allocates more than the stream can really decode to (seed with streams whose valid headers
//! claim huge arrays: the decoder's own checks bound the memory, not this target).
#![no_main]

use libfuzzer_sys::fuzz_target;
use residuum::DecodeOptions;

fuzz_target!(|data: &[u8]| {
    // Within libFuzzer's default RSS limit (2 GiB) for an output that is really there.
    let opts = DecodeOptions {
        max_decoded_bytes: 1 << 28,
    };
    let _ = residuum::decode_with(data, &opts);
});
