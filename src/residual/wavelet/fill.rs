//! What the transform sees at special values' positions. The decoder overwrites them, so the
//! encoder may put there whatever costs fewest bits; a constant (the offset) left a step at
//! every coast of a masked field, which the wavelet then paid for at every scale. Instead each
//! masked run is bridged linearly between the values either side of it along the last axis
//! (held level past the row's ends), rows without a value take their neighbours' along the
//! middle axis, and planes without one the neighbouring planes'.

/// Fills the non-finite entries of `c` (a block of `shape`, C order), given that some entry is
/// finite. Entries a pass cannot reach stay for the next.
pub(super) fn fill_masked(c: &mut [f64], [_, b, n]: [usize; 3]) {
    if c.iter().all(|v| v.is_finite()) {
        return;
    }
    // Along rows, then down columns, then across planes: each line bridges its own gaps.
    for row in c.chunks_exact_mut(n) {
        bridge(row, 1);
    }
    for plane in c.chunks_exact_mut(b * n) {
        for k in 0..n {
            bridge(&mut plane[k..], n);
        }
    }
    let plane = b * n;
    for j in 0..plane {
        bridge(&mut c[j..], plane);
    }
    debug_assert!(c.iter().all(|v| v.is_finite()));
}

/// Fills the non-finite entries of the line `line[0], line[stride], …` linearly between the
/// finite entries around each gap, and level beyond the first and last; a line without any
/// finite entry is left as it is.
fn bridge(line: &mut [f64], stride: usize) {
    let len = line.len().div_ceil(stride);
    let at = |i: usize| i * stride;
    let mut last: Option<usize> = None;
    for i in 0..len {
        if !line[at(i)].is_finite() {
            continue;
        }
        let v = line[at(i)];
        match last {
            // Before the first finite entry: level.
            None => (0..i).for_each(|g| line[at(g)] = v),
            Some(l) if l + 1 < i => {
                // Weighted, not lo + (v - lo)·t: the difference of values of opposite signs
                // near f64::MAX overflows.
                let (lo, d) = (line[at(l)], (i - l) as f64);
                for g in l + 1..i {
                    let t = (g - l) as f64 / d;
                    line[at(g)] = lo * (1.0 - t) + v * t;
                }
            }
            Some(_) => {}
        }
        last = Some(i);
    }
    if let Some(l) = last {
        let v = line[at(l)];
        (l + 1..len).for_each(|g| line[at(g)] = v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_bridged_along_rows_then_columns_then_planes() {
        let nan = f64::NAN;
        // Two planes of 3x4: a gap inside a row, a row without values, a plane without any.
        let mut c = vec![
            1.0, nan, nan, 4.0, //
            nan, nan, nan, nan, //
            nan, 2.0, nan, nan, //
            nan, nan, nan, nan, //
            nan, nan, nan, nan, //
            nan, nan, nan, nan, //
        ];
        fill_masked(&mut c, [2, 3, 4]);
        let want_plane = [
            1.0, 2.0, 3.0, 4.0, //
            1.5, 2.0, 2.5, 3.0, //
            2.0, 2.0, 2.0, 2.0, //
        ];
        let near = |got: &[f64]| {
            got.iter()
                .zip(&want_plane)
                .all(|(g, w)| (g - w).abs() < 1e-12)
        };
        assert!(near(&c[..12]), "{c:?}");
        assert!(
            near(&c[12..]),
            "the empty plane takes its neighbour's: {c:?}"
        );
        // Far apart near f64::MAX, the bridge stays finite.
        let mut c = vec![-f64::MAX, f64::NAN, f64::NAN, f64::MAX];
        fill_masked(&mut c, [1, 1, 4]);
        assert!(c.iter().all(|v| v.is_finite()), "{c:?}");
    }
}
