//! Data packed as integers with an arbitrary scale (netCDF's `scale_factor` and `add_offset`,
//! say range / 65534 and the middle, unpacked in f64 and stored as f32) lie on a lattice
//! `o + k·s` whose step no short decimal matches, and a least-squares fit of o and s is not
//! close enough: over a block the (o, s) that reproduce every value span about 1e-10 of a step.
//! Each value bounds `o + k·s` to the reals that round to it, linear in (o, s): a linear
//! program in two unknowns, solved here on the convex hulls of the bounds.

use crate::dtype::ElementType;

/// The lattice `o + k·s` near the fitted (`o`, `s`) on which every finite value of `values`
/// (f32) lies within the rounding to f32, with s where the offsets that do are widest (the
/// decoder's own f64 roundings then fall inside); None where there is none. Not for f64, whose
/// roundings f64 cannot bound.
pub(super) fn feasible(values: &[f64], o: f64, s: f64, dtype: ElementType) -> Option<(f64, f64)> {
    if dtype != ElementType::F32 || s.is_nan() || s <= 0.0 {
        return None;
    }
    // Each value's lattice integer, and the bounds on `o + k·s − (the fit)` that it gives: the
    // reals that round to it lie within half its last place either side (exact in f64).
    let bounds = |x: f64| {
        let k = ((x - o) / s).round();
        let (x32, fit) = (x as f32, o + k * s);
        let below = 0.5 * (x + x32.next_down() as f64) - fit;
        (k, below, 0.5 * (x + x32.next_up() as f64) - fit)
    };
    let per = per_integer(values, bounds)?;
    // With s + d for s, integer k's bounds on the offset's shift are below − k·d and above −
    // k·d: the shift's lowest is the largest of the first, given by the upper hull of the
    // points (k, below), its highest by the lower hull of (k, above).
    let points =
        |pick: fn(&(f64, f64, f64)) -> f64| per.iter().map(|b| (b.0, pick(b))).collect::<Vec<_>>();
    let (kmin, kmax) = (per[0].0, per[per.len() - 1].0);
    let floor = hull(&points(|b| b.1), 1.0);
    let ceiling = hull(&points(|b| b.2), -1.0);
    // The room the offset has with step s + d, and which way it grows: the room is concave in
    // d, so bisection on the side its slope points to finds the widest.
    let room = |d: f64| {
        let (lo, klo) = extreme(&floor, d, 1.0);
        let (hi, khi) = extreme(&ceiling, d, -1.0);
        (lo, hi, klo - khi)
    };
    // Beyond half a step over the span some value's integer would change.
    let reach = 0.5 * s / kmin.abs().max(kmax.abs()).max(1.0);
    let (mut left, mut right) = (-reach, reach);
    for _ in 0..200 {
        let mid = 0.5 * (left + right);
        if mid == left || mid == right {
            break;
        }
        match room(mid).2 {
            g if g > 0.0 => left = mid,
            g if g < 0.0 => right = mid,
            _ => (left, right) = (mid, mid),
        }
    }
    let d = 0.5 * (left + right);
    let (lo, hi, _) = room(d);
    (lo <= hi).then_some((o + 0.5 * (lo + hi), s + d))
}

/// The tightest bounds per lattice integer, ascending: `bounds` gives a value's integer and its
/// bounds. Where the integers span at most twice the values, in a table by integer (packed
/// fields: about 2^16 integers); else sorted. None where an integer's bounds leave nothing, or
/// where the values hold fewer than two integers (any step fits them).
fn per_integer(
    values: &[f64],
    bounds: impl Fn(f64) -> (f64, f64, f64),
) -> Option<Vec<(f64, f64, f64)>> {
    let finite = || {
        values
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .map(&bounds)
    };
    // A value's integer grows with it.
    let (lo, hi) = crate::bound::finite_min_max(values.iter().copied());
    let (kmin, kmax) = (bounds(lo).0, bounds(hi).0);
    let span = kmax - kmin;
    if !(span >= 1.0 && span.is_finite()) {
        return None;
    }
    let tight = |a: (f64, f64, f64), b: (f64, f64, f64)| (a.0, a.1.max(b.1), a.2.min(b.2));
    let per: Vec<(f64, f64, f64)> = if span < 2.0 * values.len() as f64 {
        let mut table = vec![(0.0, f64::NEG_INFINITY, f64::INFINITY); span as usize + 1];
        for b in finite() {
            let j = (b.0 - kmin) as usize;
            table[j] = tight(b, table[j]);
        }
        table.into_iter().filter(|b| b.1.is_finite()).collect()
    } else {
        let mut all: Vec<_> = finite().collect();
        all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut per: Vec<(f64, f64, f64)> = Vec::new();
        for b in all {
            match per.last_mut() {
                Some(last) if last.0 == b.0 => *last = tight(*last, b),
                _ => per.push(b),
            }
        }
        per
    };
    per.iter().all(|b| b.1 <= b.2).then_some(per)
}

/// The largest (`sign` 1.0) or smallest (-1.0) of `b − k·d` over the points (k, b), and its k.
fn extreme(points: &[(f64, f64)], d: f64, sign: f64) -> (f64, f64) {
    (points.iter())
        .map(|&(k, b)| (b - k * d, k))
        .fold((-sign * f64::INFINITY, 0.0), |m, p| {
            if sign * (p.0 - m.0) > 0.0 {
                p
            } else {
                m
            }
        })
}

/// The convex hull of `points` (ascending in their first coordinate) seen from above (`side`
/// 1.0: the points no line through two others passes over) or below (-1.0).
fn hull(points: &[(f64, f64)], side: f64) -> Vec<(f64, f64)> {
    let mut h: Vec<(f64, f64)> = Vec::new();
    for &p in points {
        while let [.., a, b] = h[..] {
            // Keep b only where it lies beyond the line from a to p, on `side`.
            let cross = (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
            if side * cross < 0.0 {
                break;
            }
            h.pop();
        }
        h.push(p);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// netCDF's int16 packing of a smooth field: `k·scale + offset` in f64, as f32.
    fn packed(scale: f64, offset: f64) -> Vec<f64> {
        (0..1 << 18)
            .map(|i| {
                let t = i as f64;
                let k = ((t * 1e-4).sin() * 25_000.0 + (t * 3.7e-3).cos() * 7_000.0).round();
                (k * scale + offset) as f32 as f64
            })
            .collect()
    }

    #[test]
    fn an_arbitrary_scale_is_found_from_a_fit_that_is_not_exact() {
        let (scale, offset) = (0.001_731_296_843, 287.431_717);
        let v = packed(scale, offset);
        // About as far off as a least-squares fit summed in order gets on a block (1e-10), and
        // on 1000 of the values, over many more integers (their bounds sorted, not tabled).
        for (v, o, s) in [
            (&v[..], offset - 2e-9, scale * (1.0 + 1e-10)),
            (&v[..1000], offset - 1e-7, scale * (1.0 + 1e-9)),
        ] {
            let back = |o: f64, s: f64| {
                (v.iter()).all(|&x| (o + ((x - o) / s).round() * s) as f32 as f64 == x)
            };
            assert!(!back(o, s), "the fit alone is exact: nothing to test");
            let (fo, fs) = feasible(v, o, s, ElementType::F32).unwrap();
            assert!(back(fo, fs));
            assert!((fs / scale - 1.0).abs() < 1e-8);
        }
        // Not for f64, nor where one value is off the lattice.
        let (o, s) = (offset, scale);
        assert!(feasible(&v, o, s, ElementType::F64).is_none());
        let mut off = v.clone();
        off[100] += 0.3 * scale;
        assert!(feasible(&off, o, s, ElementType::F32).is_none());
    }

    #[test]
    fn hulls_keep_the_outermost_points() {
        let p = [(0.0, 0.0), (1.0, 1.0), (2.0, 0.5), (3.0, 2.0), (4.0, 0.0)];
        assert_eq!(
            hull(&p, 1.0),
            vec![(0.0, 0.0), (1.0, 1.0), (3.0, 2.0), (4.0, 0.0)]
        );
        assert_eq!(hull(&p, -1.0), vec![(0.0, 0.0), (4.0, 0.0)]);
    }
}
