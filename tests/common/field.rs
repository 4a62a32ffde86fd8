//! The deterministic test field written by examples/bp5_roundtrip.rs and checked by the tests.

/// Value at global index (i, j, k) of step `step`: smooth structure plus a little hashed noise,
/// so compressors see realistic, not trivially compressible, data.
pub fn value(step: usize, i: usize, j: usize, k: usize) -> f64 {
    let h = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((j as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add((k as u64).wrapping_mul(0x94D0_49BB_1331_11EB))
        .wrapping_add(step as u64);
    let noise = ((h >> 40) as f64) / (1u64 << 24) as f64 - 0.5;
    300.0
        + 10.0 * (0.11 * i as f64 + 0.2 * step as f64).sin() * (0.07 * j as f64).cos()
        + 0.05 * k as f64
        + 1e-3 * noise
}

/// The box `start`+`count` of step `step`, C order.
pub fn block(step: usize, start: &[usize; 3], count: &[usize; 3]) -> Vec<f64> {
    let mut v = Vec::with_capacity(count.iter().product());
    for i in start[0]..start[0] + count[0] {
        for j in start[1]..start[1] + count[1] {
            for k in start[2]..start[2] + count[2] {
                v.push(value(step, i, j, k));
            }
        }
    }
    v
}
