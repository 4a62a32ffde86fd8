//! Tiling: arrays of any rank are viewed as 3D (leading dimensions folded into the first, missing
//! ones as extent 1) and cut into blocks, partial at the edges.

use crate::dtype::ElementType;

/// The 3D view of `dims`: [product of all but the last two, second to last, last].
pub fn fold3(dims: &[usize]) -> [usize; 3] {
    match dims.len() {
        0 => [1, 1, 1],
        1 => [1, 1, dims[0]],
        2 => [1, dims[0], dims[1]],
        n => [dims[..n - 2].iter().product(), dims[n - 2], dims[n - 1]],
    }
}

/// Default block shape: about 2^18 values, whole rows kept so the Lorenzo predictor sees long
/// runs, and each axis split into equal parts (blocks of one size keep threads balanced).
pub fn default_block(d: [usize; 3]) -> [usize; 3] {
    block_of(d, 1 << 18)
}

/// The default block shape of lossless streams: about 2^20 values, as [`default_block`]. zstd
/// finds repeats within a block only (values unpacked from int16 to f64 took 5-7 % more in
/// blocks of 2^18, 0-1.7 % in these), and LBRC's working memory, about 60 bytes a value on
/// each thread, stays bounded.
pub fn lossless_block(d: [usize; 3]) -> [usize; 3] {
    block_of(d, 1 << 20)
}

/// A block shape of about `target` values, as [`default_block`].
fn block_of(d: [usize; 3], target: usize) -> [usize; 3] {
    let even = |n: usize, at_most: usize| {
        let at_most = at_most.max(1);
        n.div_ceil(n.div_ceil(at_most).max(1)).max(1)
    };
    let b2 = even(d[2], target);
    let b1 = even(d[1], target / b2);
    let b0 = even(d[0], target / (b1 * b2));
    [b0, b1, b2]
}

/// A block grid over a 3D array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub dims: [usize; 3],
    pub block: [usize; 3],
    counts: [usize; 3],
}

/// One block: where it starts and its (possibly partial) extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: [usize; 3],
    pub shape: [usize; 3],
}

impl Block {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Grid {
    /// `block` extents are clamped to at least 1.
    pub fn new(dims: [usize; 3], block: [usize; 3]) -> Grid {
        let block = block.map(|b| b.max(1));
        let counts = [0, 1, 2].map(|i| dims[i].div_ceil(block[i]));
        Grid {
            dims,
            block,
            counts,
        }
    }

    pub fn len(&self) -> usize {
        self.counts.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block `i` in C order of the grid.
    pub fn block(&self, i: usize) -> Block {
        let c = [
            i / (self.counts[1] * self.counts[2]),
            (i / self.counts[2]) % self.counts[1],
            i % self.counts[2],
        ];
        let start = [0, 1, 2].map(|d| c[d] * self.block[d]);
        let shape = [0, 1, 2].map(|d| self.block[d].min(self.dims[d] - start[d]));
        Block { start, shape }
    }

    /// Byte offset (in elements) of each row of block `b` in the array.
    pub(crate) fn rows(&self, b: &Block) -> impl Iterator<Item = usize> + '_ {
        let (start, shape, dims) = (b.start, b.shape, self.dims);
        (0..shape[0]).flat_map(move |i| {
            (0..shape[1])
                .map(move |j| ((start[0] + i) * dims[1] + start[1] + j) * dims[2] + start[2])
        })
    }

    /// Copies block `b`'s element bytes out of the array `data`, block rows contiguous.
    pub fn gather_bytes(&self, data: &[u8], dtype: ElementType, b: &Block) -> Vec<u8> {
        let (es, w) = (dtype.size(), b.shape[2]);
        let mut out = Vec::with_capacity(b.len() * es);
        for row in self.rows(b) {
            out.extend_from_slice(&data[row * es..(row + w) * es]);
        }
        out
    }

    /// Writes block `b`'s element bytes (as [`Grid::gather_bytes`] lays them out) into `out`.
    pub fn scatter_bytes(&self, block: &[u8], out: &mut [u8], dtype: ElementType, b: &Block) {
        let (es, w) = (dtype.size(), b.shape[2]);
        for (row, src) in self.rows(b).zip(block.chunks_exact((w * es).max(1))) {
            out[row * es..(row + w) * es].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_blocks_split_evenly() {
        assert_eq!(default_block([100, 64, 128]), [25, 64, 128]);
        assert_eq!(default_block([744, 33, 49]), [149, 33, 49]);
        assert_eq!(default_block([1, 1, 1 << 20]), [1, 1, 1 << 18]);
        assert_eq!(default_block([0, 5, 7]), [1, 5, 7]);
        // Lossless: arrays up to 2^20 values in one block, as before blocks (version 14).
        assert_eq!(lossless_block([100, 64, 128]), [100, 64, 128]);
        assert_eq!(lossless_block([0, 5, 7]), [1, 5, 7]);
        assert_eq!(lossless_block([744, 33, 49]), [372, 33, 49]);
    }

    #[test]
    fn folds_and_tiles_with_partial_edges() {
        assert_eq!(fold3(&[6, 10, 83, 83]), [60, 83, 83]);
        assert_eq!(fold3(&[7]), [1, 1, 7]);
        let g = Grid::new([5, 4, 3], [2, 4, 2]);
        assert_eq!(g.len(), 3 * 2);
        assert_eq!(
            g.block(5),
            Block {
                start: [4, 0, 2],
                shape: [1, 4, 1]
            }
        );
        let total: usize = (0..g.len()).map(|i| g.block(i).len()).sum();
        assert_eq!(total, 60);
    }

    #[test]
    fn gather_scatter_round_trip() {
        let g = Grid::new([3, 5, 7], [2, 2, 3]);
        let vals: Vec<f32> = (0..105).map(|i| i as f32 * 0.5).collect();
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0u8; data.len()];
        for i in 0..g.len() {
            let b = g.block(i);
            let v = g.gather_bytes(&data, ElementType::F32, &b);
            assert_eq!(v.len(), 4 * b.len());
            g.scatter_bytes(&v, &mut out, ElementType::F32, &b);
        }
        assert_eq!(out, data);
    }
}
