//! Shared by the MPI examples: the rank grid, each rank's box of the global array, the size
//! of a BP5 directory, the range of values.

/// Splits `n` ranks into a 3D grid, largest factors first (like MPI_Dims_create).
pub fn rank_grid(n: usize) -> [usize; 3] {
    let mut g = [1usize; 3];
    let mut m = n;
    let mut f = 2;
    let mut factors = Vec::new();
    while m > 1 {
        while m.is_multiple_of(f) {
            factors.push(f);
            m /= f;
        }
        f += 1;
    }
    for p in factors.into_iter().rev() {
        let i = (0..3).min_by_key(|&i| g[i]).unwrap();
        g[i] *= p;
    }
    g
}

/// This rank's box of the global array.
pub fn my_box(shape: [usize; 3], rank: usize, size: usize) -> ([usize; 3], [usize; 3]) {
    let g = rank_grid(size);
    let coord = [rank / (g[1] * g[2]), (rank / g[2]) % g[1], rank % g[2]];
    let mut start = [0; 3];
    let mut count = [0; 3];
    for d in 0..3 {
        let (q, r) = (shape[d] / g[d], shape[d] % g[d]);
        start[d] = coord[d] * q + coord[d].min(r);
        count[d] = q + usize::from(coord[d] < r);
    }
    (start, count)
}

pub fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Smallest and largest finite value (∞ and −∞ where there is none).
pub fn finite_min_max(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}
