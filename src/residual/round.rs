//! Rounding between f64 and integers without conversion instructions: SSE2 has none for 64-bit
//! integers, and a scalar one per value keeps a loop out of vector registers (the quantizers'
//! loops ran at 0.4-0.6x the speed). Each gives exactly what the plain conversion gives, for
//! magnitudes below 2^51 (the callers' integers stay below 2^50).

/// 1.5 * 2^52: adding it to an f64 of magnitude below 2^51 rounds it to an integer, which its
/// low bits then hold.
const MAGIC: f64 = 6_755_399_441_055_744.0;

/// `t` rounded half away from zero, as `(t + 0.5f64.copysign(t)) as i64 as f64` gives it (the
/// same sum, then its floor, from the nearest integer and the sign).
#[inline(always)]
pub(crate) fn half_away(t: f64) -> f64 {
    let a = t.abs() + 0.5;
    let near = (a + MAGIC) - MAGIC;
    let floor = near - if near > a { 1.0 } else { 0.0 };
    floor.copysign(t)
}

/// The integer that an integral `r` holds.
#[inline(always)]
pub(crate) fn int_of(r: f64) -> i64 {
    ((r + MAGIC).to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64)
}

/// `q` as an f64, as `q as f64` gives it.
#[inline(always)]
pub(crate) fn float_of(q: i64) -> f64 {
    f64::from_bits(MAGIC.to_bits().wrapping_add(q as u64)) - MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_as_the_conversions() {
        // Halves, the f64 just below a half (whose sum with 0.5 rounds up), zeros, and
        // magnitudes up to the limit, of both signs.
        let exact = (1u64 << 51) as f64;
        let below_half = 0.5f64.next_down();
        let mut ts = vec![
            0.0, -0.0, 0.5, 1.5, 2.5, below_half, 1e-300, 123.456, 2.0e15,
        ];
        ts.extend((0..2000).map(|i| (i as f64 * 0.37).powi(3) % exact));
        ts.push(exact.next_down());
        for t in ts.iter().flat_map(|&t| [t, -t]) {
            let want = (t + 0.5f64.copysign(t)) as i64;
            let got = half_away(t);
            // Equal, but for the sign of a zero (which no caller sees: it is scaled and added).
            assert_eq!(got, want as f64, "{t}");
            assert_eq!(int_of(got), want, "{t}");
            assert_eq!(float_of(want).to_bits(), (want as f64).to_bits(), "{want}");
        }
    }
}
