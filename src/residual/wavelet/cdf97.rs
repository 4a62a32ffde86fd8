//! The CDF 9/7 wavelet (JPEG 2000's irreversible one) by lifting: one level along one axis of
//! a region of a block, in place (along the axis, the low band first and the high band after
//! it). [`Layout`](super::layout::Layout) arranges such passes into a block's levels.
//! Boundaries use whole-sample symmetric extension.
//!
//! Plain f64 multiplies and adds in one fixed order (Rust contracts nothing into FMA, and no
//! libm is called), so the inverse gives identical bits on every machine and thread count: the
//! decoder's reconstruction is the one the encoder verified.

/// The lifting coefficients and scale of CDF 9/7; part of the stream format.
const ALPHA: f64 = -1.586_134_342_059_924;
const BETA: f64 = -0.052_980_118_572_961;
const GAMMA: f64 = 0.882_911_075_530_934;
const DELTA: f64 = 0.443_506_852_043_971;
const ZETA: f64 = 1.149_604_398_860_241;
/// The forward transform's high-band scale, and from format version 11 the inverse's low-band
/// one: the encoder's coefficients need not be any particular bits (the decoder's inverse is
/// what the encoder verifies), and a multiplication costs a fraction of a division.
const INV_ZETA: f64 = 1.0 / ZETA;

/// How the inverse undoes the low bands' scale: dividing by ζ (format versions 5 to 10) or
/// multiplying by the f64 nearest 1/ζ (from version 11: the divisions were a fifth of the
/// inverse's time; the two differ in the last bit for about a quarter of values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unscale {
    Divide,
    Multiply,
}

/// Values in a row of the lifting's ring along the first two axes (the ring's 8 rows, 32 KiB,
/// stay in the first-level cache).
const ROW: usize = 512;

/// One level along axis `ax` of the region `ext` (a corner of the block). Along the last
/// axis rows are lifted split into their bands, a few side by side ([`along_rows`]); along
/// the others, a group of lines at a time is lifted as rows of contiguous runs, one row per
/// position, in one pass ([`lift_pass`]). Written back split into low and high bands (or the
/// reverse). The inverse where `undo` is given, with that unscaling.
pub(super) fn axis(
    x: &mut [f64],
    shape: [usize; 3],
    ext: [usize; 3],
    ax: usize,
    tmp: &mut Vec<f64>,
    undo: Option<Unscale>,
) {
    if ax == 2 {
        return along_rows(x, shape, ext, undo);
    }
    let fwd = undo.is_none();
    let [s0, s1] = [shape[1] * shape[2], shape[2]];
    let n = ext[ax];
    let low = n.div_ceil(2);
    // Position t of a line lives at `slot(t)` in the split layout.
    let slot = |t: usize| t / 2 + (t & 1) * low;
    // Along the first two axes, position t of a line is a run of `ext[2]` contiguous values
    // per index `o` of the other axis. Lines are taken a group of `o` at a time: their runs at
    // position t make one row, and the rows go through the lifting in one pass over a ring of
    // rows that stays in cache ([`lift_pass`]).
    let run = ext[2];
    let (outer, stride, outer_stride) = if ax == 0 {
        (ext[1], s0, s1)
    } else {
        (ext[0], s1, s0)
    };
    let group = (ROW / run.max(1)).clamp(1, outer);
    let mut ring = Vec::new();
    for first in (0..outer).step_by(group) {
        let m = ((first + group).min(outer) - first) * run;
        tmp.resize(n * m, 0.0);
        // The group's runs at position t, as (place in the row, place in x) of `seg` values
        // each: one, where they lie back to back (along axis 0 over whole rows; copies of a
        // few dozen values each were a sixth of the transform's time on small blocks).
        let (seg, hop) = match outer_stride == run {
            true => (m, 0),
            false => (run, outer_stride),
        };
        let rows = move |t: usize| {
            (0..m / seg).map(move |g| (g * seg, t * stride + first * outer_stride + g * hop))
        };
        // The scaling rides on the copies in and out of the ring.
        let load = |x: &[f64], t: usize, row: &mut [f64]| {
            let from = if fwd { t } else { slot(t) };
            for (at, x_at) in rows(from) {
                let (to, from) = (&mut row[at..at + seg], &x[x_at..x_at + seg]);
                match undo {
                    None => to.copy_from_slice(from),
                    Some(u) => unscaled_copy(to, from, t, u),
                }
            }
        };
        // Row t, final at stage t + 5, goes to its place in x where the row there was loaded
        // by then (half of them: the low band's places for the forward, the high band's for
        // the inverse), else through `tmp`.
        let place = |t: usize| if fwd { slot(t) } else { t };
        let read_at = |p: usize| match (fwd, p < low) {
            (true, _) => p,
            (false, true) => 2 * p,
            (false, false) => 2 * (p - low) + 1,
        };
        let direct = |t: usize| read_at(place(t)) <= t + 5;
        let store = |x: &mut [f64], t: usize, row: &[f64]| {
            let p = place(t);
            if direct(t) {
                for (at, x_at) in rows(p) {
                    let (to, from) = (&mut x[x_at..x_at + seg], &row[at..at + seg]);
                    match fwd {
                        true => scaled_copy(to, from, t),
                        false => to.copy_from_slice(from),
                    }
                }
                return;
            }
            let to = &mut tmp[p * m..][..m];
            match fwd {
                true => scaled_copy(to, row, t),
                false => to.copy_from_slice(row),
            }
        };
        lift_pass(n, m, fwd, &mut ring, x, load, store);
        for p in (0..n).filter(|&t| !direct(t)).map(place) {
            for (at, x_at) in rows(p) {
                x[x_at..x_at + seg].copy_from_slice(&tmp[p * m + at..][..seg]);
            }
        }
    }
}

/// The four lifting steps (or their inverse) over `n` rows of `m` values, as one pass: row t
/// comes from `load` (for the inverse, unscaled: [`unscaled_copy`]) and, once final, goes to
/// `store` (for the forward, to be scaled: [`scaled_copy`]), both given `x`. Each step on a row
/// needs its neighbours after the step before, so the steps run staggered: at stage s, row s is
/// loaded, the first step updates row s−1, the second row s−2, and so on, and row s−5 is
/// final. Eight rows in a ring hold what is between. The same operations on the same values as
/// the steps one after another over all rows (`doc/format.md` §5.10), so the same bits.
fn lift_pass(
    n: usize,
    m: usize,
    fwd: bool,
    ring: &mut Vec<f64>,
    x: &mut [f64],
    mut load: impl FnMut(&[f64], usize, &mut [f64]),
    mut store: impl FnMut(&mut [f64], usize, &[f64]),
) {
    const RING: usize = 8;
    ring.resize(RING * m, 0.0);
    // (parity of the rows it updates, coefficient), at lags 1 to 4.
    let steps = if fwd {
        [(1, ALPHA), (0, BETA), (1, GAMMA), (0, DELTA)]
    } else {
        [(0, DELTA), (1, GAMMA), (0, BETA), (1, ALPHA)]
    };
    for s in 0..n + 5 {
        if s < n {
            load(x, s, &mut ring[(s % RING) * m..][..m]);
        }
        for (lag, &(parity, c)) in (1..).zip(&steps) {
            let Some(t) = s.checked_sub(lag).filter(|&t| t < n && t % 2 == parity) else {
                continue;
            };
            let l = if t > 0 { t - 1 } else { t + 1 };
            let r = if t + 1 < n { t + 1 } else { t - 1 };
            let (row, a, b) = ring_rows(ring, m, t % RING, l % RING, r % RING);
            for ((v, &a), &b) in row.iter_mut().zip(a).zip(b) {
                update(v, a, b, c, !fwd);
            }
        }
        if let Some(u) = s.checked_sub(5) {
            store(x, u, &ring[(u % RING) * m..][..m]);
        }
    }
}

/// `src` into `dst` with the forward transform's scaling of row `t` (low rows by ZETA, high
/// rows by 1/ZETA).
#[inline(always)]
fn scaled_copy(dst: &mut [f64], src: &[f64], t: usize) {
    let c = if t.is_multiple_of(2) { ZETA } else { INV_ZETA };
    dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v * c);
}

/// `src` into `dst` with the inverse's: low rows unscaled by `undo`, high rows multiplied by
/// ZETA.
#[inline(always)]
fn unscaled_copy(dst: &mut [f64], src: &[f64], t: usize, undo: Unscale) {
    let pairs = dst.iter_mut().zip(src);
    match (t.is_multiple_of(2), undo) {
        (true, Unscale::Divide) => pairs.for_each(|(d, &v)| *d = v / ZETA),
        (true, Unscale::Multiply) => pairs.for_each(|(d, &v)| *d = v * INV_ZETA),
        (false, _) => pairs.for_each(|(d, &v)| *d = v * ZETA),
    }
}

/// Row `t` of `ring` (rows of `m`), mutable, and rows `a` and `b` (other than `t`).
fn ring_rows(
    ring: &mut [f64],
    m: usize,
    t: usize,
    a: usize,
    b: usize,
) -> (&mut [f64], &[f64], &[f64]) {
    let (head, rest) = ring.split_at_mut(t * m);
    let (row, tail) = rest.split_at_mut(m);
    let side = |k: usize| -> &[f64] {
        if k < t {
            &head[k * m..(k + 1) * m]
        } else {
            &tail[(k - t - 1) * m..(k - t) * m]
        }
    };
    (row, side(a), side(b))
}

/// Rows lifted side by side along the last axis: the same position of `LANES` rows is one
/// element of a split line, so each lifting update is one vector operation whatever the
/// rows' length (a row of a few values lifted alone went mostly to setting up its loops: 3-5
/// times the time per value of a long one).
const LANES: usize = 2;

/// One level along the last axis of the region `ext`: its rows `LANES` at a time (the last
/// alone), each split into its even and odd positions (its low and high band's layout, so
/// that every step is a run over contiguous halves) and lifted there.
fn along_rows(x: &mut [f64], shape: [usize; 3], ext: [usize; 3], undo: Option<Unscale>) {
    let [s0, s1] = [shape[1] * shape[2], shape[2]];
    let rows = ext[0] * ext[1];
    if ext[2] < 2 {
        // Rows of one value: nothing to lift (the layouts never ask for them).
        return;
    }
    let start = |q: usize| (q / ext[1]) * s0 + (q % ext[1]) * s1;
    let full = rows - rows % LANES;
    let mut split = Vec::new();
    for q in (0..full).step_by(LANES) {
        let starts = std::array::from_fn(|g| start(q + g));
        lines::<LANES>(x, starts, ext[2], &mut split, undo);
    }
    let mut split = Vec::new();
    for q in full..rows {
        lines::<1>(x, [start(q)], ext[2], &mut split, undo);
    }
}

/// One level along the rows of `n >= 2` values at `starts` (increasing, at least `n` apart),
/// side by side in `split`: the four lifting steps and the scaling, or their inverse where `undo`
/// is given. The same operations on the same values as the format's lifting of each row in
/// place (`doc/format.md` §5.10), so the same bits.
fn lines<const N: usize>(
    x: &mut [f64],
    starts: [usize; N],
    n: usize,
    split: &mut Vec<[f64; N]>,
    undo: Option<Unscale>,
) {
    let low = n.div_ceil(2);
    split.resize(n, [0.0; N]);
    let (lo, hi) = split.split_at_mut(low);
    let rows = rows_mut(x, starts, n);
    let Some(undo) = undo else {
        for (g, row) in rows.iter().enumerate() {
            let pairs = lo.iter_mut().zip(hi.iter_mut()).zip(row.chunks_exact(2));
            pairs.for_each(|((l, h), p)| (l[g], h[g]) = (p[0], p[1]));
            if n % 2 == 1 {
                lo[low - 1][g] = row[n - 1];
            }
        }
        odd(hi, lo, ALPHA, false);
        even(lo, hi, BETA, false);
        odd(hi, lo, GAMMA, false);
        even(lo, hi, DELTA, false);
        // The low band is scaled as an even row, the high band as an odd one.
        for (g, row) in rows.into_iter().enumerate() {
            let (row_lo, row_hi) = row.split_at_mut(low);
            row_lo
                .iter_mut()
                .zip(&*lo)
                .for_each(|(d, v)| *d = v[g] * ZETA);
            row_hi
                .iter_mut()
                .zip(&*hi)
                .for_each(|(d, v)| *d = v[g] * INV_ZETA);
        }
        return;
    };
    for (g, row) in rows.iter().enumerate() {
        let (row_lo, row_hi) = row.split_at(low);
        match undo {
            Unscale::Divide => lo
                .iter_mut()
                .zip(row_lo)
                .for_each(|(d, &v)| d[g] = v / ZETA),
            Unscale::Multiply => lo
                .iter_mut()
                .zip(row_lo)
                .for_each(|(d, &v)| d[g] = v * INV_ZETA),
        }
        hi.iter_mut()
            .zip(row_hi)
            .for_each(|(d, &v)| d[g] = v * ZETA);
    }
    even(lo, hi, DELTA, true);
    odd(hi, lo, GAMMA, true);
    even(lo, hi, BETA, true);
    odd(hi, lo, ALPHA, true);
    for (g, row) in rows.into_iter().enumerate() {
        let pairs = row.chunks_exact_mut(2).zip(lo.iter().zip(hi.iter()));
        pairs.for_each(|(p, (l, h))| (p[0], p[1]) = (l[g], h[g]));
        if n % 2 == 1 {
            row[n - 1] = lo[low - 1][g];
        }
    }
}

/// The rows of `n` values at `starts` (increasing, at least `n` apart) of `x`.
fn rows_mut<const N: usize>(x: &mut [f64], starts: [usize; N], n: usize) -> [&mut [f64]; N] {
    let (mut rest, mut at) = (x, 0);
    starts.map(|s| {
        let (row, tail) = std::mem::take(&mut rest)[s - at..].split_at_mut(n);
        (rest, at) = (tail, s + n);
        row
    })
}

/// `v` gains (or, undoing, loses) `c` times `a + b`: one lifting update, its sum rounded, then
/// the product, then the difference, as the format orders them.
#[inline(always)]
fn update(v: &mut f64, a: f64, b: f64, c: f64, undo: bool) {
    if undo {
        *v -= c * (a + b)
    } else {
        *v += c * (a + b)
    }
}

/// [`update`] lane by lane.
#[inline(always)]
fn update_lanes<const N: usize>(v: &mut [f64; N], a: &[f64; N], b: &[f64; N], c: f64, undo: bool) {
    for g in 0..N {
        update(&mut v[g], a[g], b[g], c, undo);
    }
}

/// Odd position 2i+1 (`hi[i]`) updated from its even neighbours 2i and 2i+2, the last one
/// mirrored where the line ends on an odd position.
fn odd<const N: usize>(hi: &mut [[f64; N]], lo: &[[f64; N]], c: f64, undo: bool) {
    let inner = hi.len().min(lo.len() - 1);
    for ((v, a), b) in hi[..inner].iter_mut().zip(&lo[..inner]).zip(&lo[1..]) {
        update_lanes(v, a, b, c, undo);
    }
    if let Some(v) = hi.get_mut(inner) {
        update_lanes(v, &lo[inner], &lo[inner], c, undo);
    }
}

/// Even position 2i (`lo[i]`) updated from its odd neighbours 2i-1 and 2i+1, mirrored at the
/// line's ends.
fn even<const N: usize>(lo: &mut [[f64; N]], hi: &[[f64; N]], c: f64, undo: bool) {
    update_lanes(&mut lo[0], &hi[0], &hi[0], c, undo);
    for ((v, a), b) in lo[1..].iter_mut().zip(hi).zip(&hi[1..]) {
        update_lanes(v, a, b, c, undo);
    }
    // A line of odd length ends on an even position.
    if let (Some(v), Some(a)) = (lo.get_mut(hi.len()), hi.last()) {
        update_lanes(v, a, a, c, undo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format's lifting (`doc/format.md` §5.10): the four steps and the scaling over `n`
    /// rows of `m` (or their inverse, with `undo`'s unscaling), one after another in place.
    /// What the transform's passes must give, bit for bit.
    fn lift_all(x: &mut [f64], n: usize, m: usize, undo: Option<Unscale>) {
        let Some(undo) = undo else {
            lift(x, n, m, 1, ALPHA, false);
            lift(x, n, m, 0, BETA, false);
            lift(x, n, m, 1, GAMMA, false);
            lift(x, n, m, 0, DELTA, false);
            scale(x, n, m, None);
            return;
        };
        scale(x, n, m, Some(undo));
        lift(x, n, m, 0, DELTA, true);
        lift(x, n, m, 1, GAMMA, true);
        lift(x, n, m, 0, BETA, true);
        lift(x, n, m, 1, ALPHA, true);
    }

    /// Row `t` of `x` (rows of `m`) and its two neighbours, mirrored at the ends.
    fn rows(x: &mut [f64], n: usize, m: usize, t: usize) -> (&mut [f64], &[f64], &[f64]) {
        let l = if t > 0 { t - 1 } else { t + 1 };
        let r = if t + 1 < n { t + 1 } else { t - 1 };
        ring_rows(x, m, t, l, r)
    }

    /// One lifting step: rows of parity `first` updated with `c` times the sum of their
    /// neighbours (or the update undone).
    fn lift(x: &mut [f64], n: usize, m: usize, first: usize, c: f64, undo: bool) {
        for t in (first..n).step_by(2) {
            let (row, a, b) = rows(x, n, m, t);
            for ((v, &a), &b) in row.iter_mut().zip(a).zip(b) {
                update(v, a, b, c, undo);
            }
        }
    }

    /// The final scaling (low rows by ZETA, high rows by 1/ZETA: nearly orthonormal bands), or
    /// its inverse (the low rows' by `undo`).
    fn scale(x: &mut [f64], n: usize, m: usize, undo: Option<Unscale>) {
        for (t, row) in x.chunks_exact_mut(m).take(n).enumerate() {
            match (t % 2 == 0, undo) {
                (true, None) | (false, Some(_)) => row.iter_mut().for_each(|v| *v *= ZETA),
                (false, None) => row.iter_mut().for_each(|v| *v *= INV_ZETA),
                (true, Some(Unscale::Divide)) => row.iter_mut().for_each(|v| *v /= ZETA),
                (true, Some(Unscale::Multiply)) => row.iter_mut().for_each(|v| *v *= INV_ZETA),
            }
        }
    }

    /// The forward transform and the inverse of either format.
    const DIRECTIONS: [Option<Unscale>; 3] = [None, Some(Unscale::Divide), Some(Unscale::Multiply)];

    /// `len` scattered values of a magnitude that varies with `n` (1e-3 to 1e3 times ±5).
    fn values(len: usize, n: usize) -> Vec<f64> {
        (0..len)
            .map(|t| ((t * 2_654_435_761usize) % 10_007) as f64 * 1e-3 - 5.0)
            .map(|v| v * 10f64.powi((n % 7) as i32 - 3))
            .collect()
    }

    #[test]
    fn the_lifting_pass_gives_the_bits_of_the_steps_one_after_another() {
        // Along the first two axes the rows go through the steps staggered, in one pass: the
        // decoder's inverse must give the bits the format specifies, for odd and even lengths.
        for n in 8usize..=41 {
            let m = 3;
            let y = values(n * m, n);
            for undo in DIRECTIONS {
                let fwd = undo.is_none();
                let mut reference = y.clone();
                lift_all(&mut reference, n, m, undo);
                let mut pass = vec![0.0; n * m];
                let mut ring = Vec::new();
                // Scaled on the way in or out, as the transform's passes do.
                let load = |y: &[f64], t: usize, row: &mut [f64]| match undo {
                    None => row.copy_from_slice(&y[t * m..][..m]),
                    Some(u) => unscaled_copy(row, &y[t * m..][..m], t, u),
                };
                let store = |_: &mut [f64], t: usize, row: &[f64]| match fwd {
                    true => scaled_copy(&mut pass[t * m..][..m], row, t),
                    false => pass[t * m..][..m].copy_from_slice(row),
                };
                lift_pass(n, m, fwd, &mut ring, &mut y.clone(), load, store);
                for (t, (a, b)) in pass.iter().zip(&reference).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "n {n}, {undo:?}, value {t}");
                }
            }
        }
    }

    #[test]
    fn rows_lifted_side_by_side_give_the_bits_of_lifting_in_place() {
        // Along the last axis rows are lifted split, a few side by side: the encoder's
        // transform and the decoder's inverse must give the bits the format specifies
        // (in-place lifting over each interleaved row), for odd and even lengths and values of
        // every magnitude.
        fn check<const N: usize>(n: usize) {
            let low = n.div_ceil(2);
            // Rows `n + 3` apart, so that the values between must stay untouched.
            let starts: [usize; N] = std::array::from_fn(|g| g * (n + 3));
            let y = values(N * (n + 3), n);
            for undo in DIRECTIONS {
                let mut x = y.clone();
                lines::<N>(&mut x, starts, n, &mut Vec::new(), undo);
                for (g, &s) in starts.iter().enumerate() {
                    // The format's rows are interleaved; the transform's output and the
                    // inverse's input are split.
                    let slot = |t: usize| t / 2 + (t & 1) * low;
                    let mut in_place: Vec<f64> = match undo {
                        None => y[s..s + n].to_vec(),
                        Some(_) => (0..n).map(|t| y[s + slot(t)]).collect(),
                    };
                    lift_all(&mut in_place, n, 1, undo);
                    for (t, b) in in_place.iter().enumerate() {
                        let at = s + if undo.is_none() { slot(t) } else { t };
                        let (a, b) = (x[at].to_bits(), b.to_bits());
                        assert_eq!(a, b, "n {n}, {undo:?}, row {g}, position {t}");
                    }
                    x[s..s + n].copy_from_slice(&y[s..s + n]);
                }
                assert_eq!(x, y, "n {n}, {undo:?}: values between rows");
            }
        }
        for n in 8usize..=41 {
            check::<1>(n);
            check::<LANES>(n);
        }
    }
}
