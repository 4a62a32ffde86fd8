//! Block payloads behind the checksums: the LBRC/integer decoders on any bytes and shapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use residuum::residual::lbrc;
use residuum::ElementType;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let shape = [1 + (data[0] % 8) as usize, 1 + (data[1] % 16) as usize, 1 + (data[2] % 32) as usize];
    let dtype = if data[3] & 1 == 0 { ElementType::F32 } else { ElementType::F64 };
    let _ = lbrc::decode(&data[4..], shape, dtype, data[3] & 2 != 0);
});
