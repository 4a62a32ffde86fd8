//! The residual stage: what fixes fidelity after the base prediction (none, or the base
//! model's). Each coder is a [`ResidualCoder`]: LBRC is ours ([`lbrc`], its integers predicted
//! by a [`predict`] predictor and finished by an integer coder in the pipeline's second stage);
//! GAE ([`gae`]) the baseline it replaces.

pub mod gae;
pub mod lbrc;
pub(crate) mod predict;
mod specials;

use crate::base::BasePrediction;
use crate::bound::{BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::format::BlockKind;
use crate::params::{IntCoder, Residual};
pub(crate) use specials::Specials;

/// A block after the residual stage.
pub(crate) enum Staged {
    /// Its finished payload, of a kind.
    Done(BlockKind, Vec<u8>),
    /// LBRC integers waiting for their integer coder; the payload is the prefix, then them.
    Ints(BlockKind, Vec<u8>, lbrc::Residuals),
}

impl Staged {
    /// The pipeline's second stage: the block's kind and payload.
    pub(crate) fn finish(self, coder: IntCoder) -> (BlockKind, Vec<u8>) {
        match self {
            Staged::Done(kind, payload) => (kind, payload),
            Staged::Ints(kind, mut prefix, residuals) => {
                if prefix.is_empty() {
                    return (kind, residuals.finish(coder));
                }
                prefix.extend_from_slice(&residuals.finish(coder));
                (kind, prefix)
            }
        }
    }
}

/// A lossy block as the residual coders see it.
pub(crate) struct BlockValues<'a> {
    /// Its values widened to f64, in C order; the special values are non-finite here.
    pub values: &'a [f64],
    pub specials: &'a Specials,
    pub shape: [usize; 3],
    pub dtype: ElementType,
}

/// A way of coding a block's values within an error bound.
pub(crate) trait ResidualCoder: Sync {
    /// Codes `block` as `base`'s prediction (None: zero) plus a residual within `bound`, with
    /// the errors of the verified reconstruction. None where it cannot: lossless coding takes
    /// the block. `par` lets it use the current rayon pool (the output is the same either
    /// way).
    fn stage(
        &self,
        block: &BlockValues,
        base: Option<&BasePrediction>,
        bound: BlockBound,
        par: bool,
    ) -> Option<(Staged, ErrorStats)>;
}

impl Residual {
    /// The coder of this setting.
    pub(crate) fn coder(self) -> &'static dyn ResidualCoder {
        match self {
            Residual::Lbrc => &lbrc::Lbrc,
            Residual::Gae => &gae::Gae,
        }
    }
}
