//! The arrangement of a block's wavelet levels ([`Layout`]) as passes of the line transform
//! ([`cdf97`](super::cdf97)) and their inverse.

use super::cdf97::{axis, Unscale};

/// Shortest axis extent a level still transforms.
pub(crate) const MIN_LEN: usize = 8;
/// Most levels a stream may ask for.
pub(crate) const MAX_LEVELS: usize = 6;

/// How a block's levels are arranged.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Layout {
    /// Mallat's: each level transforms every axis of the previous level's low band, the
    /// regions of [`plan`]. Suits detail that is localized (a Gray-Scott step's spots).
    Dyadic(Vec<[usize; 3]>),
    /// Each axis in turn through all its levels (`levels[d]` along axis d) over the whole
    /// block: the tensor product of the axes' decompositions (SPERR's "wavelet packet"). Where
    /// a field is smooth but varies at different scales along different axes (a profile
    /// along a short axis, a front across a long one), the bands that are detail along one
    /// axis are decomposed further along the others: 0.6-0.75x the dyadic layout's bytes on
    /// the smooth CFD fields; about 1.2-1.35x its bits on Gray-Scott steps.
    Standard([usize; 3]),
}

impl Layout {
    /// The dyadic layout of up to `levels` levels.
    pub(crate) fn dyadic(shape: [usize; 3], levels: usize) -> Layout {
        Layout::Dyadic(plan(shape, levels))
    }

    /// The standard layout of up to `levels` levels along each axis.
    pub(crate) fn standard(shape: [usize; 3], levels: usize) -> Layout {
        Layout::Standard(shape.map(|mut n| {
            let mut m = 0;
            while m < levels && n >= MIN_LEN {
                (m, n) = (m + 1, n.div_ceil(2));
            }
            m
        }))
    }

    /// The levels the stream records: the plan's, or the most along any axis (0: nothing to
    /// transform).
    pub(crate) fn levels(&self) -> usize {
        match self {
            Layout::Dyadic(plan) => plan.len(),
            Layout::Standard(levels) => levels.iter().copied().max().unwrap_or(0),
        }
    }
}

/// The region each of `levels` levels transforms (the whole block first, then its low band),
/// stopping early where no axis is long enough any more.
fn plan(shape: [usize; 3], levels: usize) -> Vec<[usize; 3]> {
    let mut ext = shape;
    let mut out = Vec::new();
    while out.len() < levels && ext.iter().any(|&n| n >= MIN_LEN) {
        out.push(ext);
        ext = halve(ext);
    }
    out
}

/// The low band of a level's region `ext`: the axes it transforms halved.
pub(crate) fn halve(ext: [usize; 3]) -> [usize; 3] {
    ext.map(|n| if n >= MIN_LEN { n.div_ceil(2) } else { n })
}

/// Forward transform of `x` (a block of `shape`, C order) in `layout`.
pub(crate) fn forward(x: &mut [f64], shape: [usize; 3], layout: &Layout) {
    let mut tmp = Vec::new();
    for (ext, ax) in passes(shape, layout) {
        axis(x, shape, ext, ax, &mut tmp, None);
    }
}

/// Inverse of [`forward`] in the same layout (with `undo`'s unscaling): its passes in reverse
/// order.
pub(crate) fn inverse(x: &mut [f64], shape: [usize; 3], layout: &Layout, undo: Unscale) {
    let mut tmp = Vec::new();
    for (ext, ax) in passes(shape, layout).into_iter().rev() {
        axis(x, shape, ext, ax, &mut tmp, Some(undo));
    }
}

/// The forward transform's passes, in order: (region, axis), each one level along the axis
/// over the region (a corner of the block). Dyadic: level by level, axes 0, 1, 2 of the
/// level's region. Standard: axis 0 through its levels over the whole block (its extent
/// halved at each level), then axis 1, then axis 2.
fn passes(shape: [usize; 3], layout: &Layout) -> Vec<([usize; 3], usize)> {
    match layout {
        Layout::Dyadic(plan) => plan
            .iter()
            .flat_map(|&ext| {
                (0..3)
                    .filter(move |&ax| ext[ax] >= MIN_LEN)
                    .map(move |ax| (ext, ax))
            })
            .collect(),
        Layout::Standard(levels) => (0..3)
            .flat_map(|ax| {
                (0..levels[ax]).scan(shape, move |ext, _| {
                    let pass = (*ext, ax);
                    ext[ax] = ext[ax].div_ceil(2);
                    Some(pass)
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(shape: [usize; 3]) -> Vec<f64> {
        let [a, b, c] = shape;
        (0..a * b * c)
            .map(|i| {
                let (x, y, z) = ((i / (b * c)) as f64, ((i / c) % b) as f64, (i % c) as f64);
                (0.3 * x).sin()
                    + (0.2 * y).cos() * 2.0
                    + 0.01 * z * z
                    + ((i * 7919) % 13) as f64 * 1e-3
            })
            .collect()
    }

    #[test]
    fn inverse_undoes_forward_on_odd_and_thin_shapes() {
        for shape in [
            [9, 17, 33],
            [1, 1, 100],
            [3, 40, 8],
            [25, 64, 128],
            [7, 7, 7],
        ] {
            let x = field(shape);
            for layout in [
                Layout::dyadic(shape, MAX_LEVELS),
                Layout::standard(shape, MAX_LEVELS),
            ] {
                let mut y = x.clone();
                forward(&mut y, shape, &layout);
                inverse(&mut y, shape, &layout, Unscale::Multiply);
                let err = x
                    .iter()
                    .zip(&y)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-12, "{shape:?} {layout:?}: {err}");
            }
        }
    }

    #[test]
    fn bands_are_nearly_orthonormal_and_smooth_data_concentrates() {
        // A unit coefficient inside a band synthesizes to a function of norm near 1, so one
        // step for all coefficients spends the error budget about evenly; at band edges the
        // mirrored boundary bends that (the encoder's verification absorbs it).
        let shape = [16, 32, 32];
        let p = Layout::dyadic(shape, 3);
        let at = |i: usize, j: usize, k: usize| (i * 32 + j) * 32 + k;
        let norm = |pos: usize| {
            let mut y = vec![0.0; 16 * 32 * 32];
            y[pos] = 1.0;
            inverse(&mut y, shape, &p, Unscale::Multiply);
            y.iter().map(|a| a * a).sum::<f64>().sqrt()
        };
        for pos in [at(12, 24, 24), at(4, 24, 24), at(12, 8, 24), at(6, 12, 12)] {
            let n = norm(pos);
            assert!((0.9..1.12).contains(&n), "coefficient {pos}: norm {n}");
        }
        for pos in [0, 1, at(8, 16, 16), at(15, 31, 31)] {
            let n = norm(pos);
            assert!((0.4..1.6).contains(&n), "edge coefficient {pos}: norm {n}");
        }
        let mut y = field(shape);
        forward(&mut y, shape, &p);
        let big = y.iter().filter(|v| v.abs() > 0.05).count();
        assert!(
            big * 10 < y.len(),
            "{big} of {} coefficients above 0.05",
            y.len()
        );
    }

    #[test]
    fn the_standard_layout_decomposes_each_axis_fully() {
        // A field smooth along its long axes with a steep profile along its short one: the
        // standard layout takes the short axis's detail bands through the long axes' levels
        // too, and needs far fewer coefficients than the dyadic one (where those bands stop
        // after one level).
        let shape = [12, 48, 64];
        let x: Vec<f64> = (0..12 * 48 * 64)
            .map(|i| {
                let (z, y, k) = ((i / 3072) as f64, ((i / 64) % 48) as f64, (i % 64) as f64);
                (z * 0.4).exp() + (0.05 * y).sin() + (0.03 * k).cos()
            })
            .collect();
        let big = |layout: &Layout| {
            let mut y = x.clone();
            forward(&mut y, shape, layout);
            y.iter().filter(|v| v.abs() > 1e-3).count()
        };
        let (dyadic, standard) = (
            big(&Layout::dyadic(shape, 5)),
            big(&Layout::standard(shape, 5)),
        );
        assert!(
            3 * standard < dyadic,
            "standard {standard}, dyadic {dyadic}"
        );
        assert_eq!(Layout::standard(shape, 5), Layout::Standard([1, 3, 4]));
        assert_eq!(Layout::standard(shape, 5).levels(), 4);
    }

    #[test]
    fn plan_skips_short_axes_and_stops() {
        assert_eq!(plan([1, 4, 100], 6).len(), 4);
        assert_eq!(plan([1, 1, 7], 6), Vec::<[usize; 3]>::new());
        assert_eq!(
            plan([38, 76, 38], 3),
            vec![[38, 76, 38], [19, 38, 19], [10, 19, 10]]
        );
    }
}
