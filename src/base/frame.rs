//! The base model's part of a block payload (kinds `BaseLbrc` and `Gae` over the model): the
//! block's normalisation (mean f64, scale f64), then its coded latents (varint length, bytes:
//! the context integer coder over the latent grid). The decoder of the stream's model entry
//! turns them into the prediction the residual was coded over.

use super::{predict_from, BasePrediction, Decoder, Norm};
use crate::error::{Error, Result};
use crate::format::payload::{put_varint, PayloadReader};

/// Writes the base part of `p`.
pub(crate) fn put(p: &BasePrediction, out: &mut Vec<u8>) {
    out.extend_from_slice(&p.norm.mean.to_le_bytes());
    out.extend_from_slice(&p.norm.scale.to_le_bytes());
    put_varint(out, p.coded_latents.len() as u64);
    out.extend_from_slice(&p.coded_latents);
}

/// The normalisation and the coded latents.
fn parts<'a>(r: &mut PayloadReader<'a>) -> Result<(Norm, &'a [u8])> {
    let f = |b: &[u8]| f64::from_le_bytes(b.try_into().unwrap());
    let norm = Norm {
        mean: f(r.bytes(8)?),
        scale: f(r.bytes(8)?),
    };
    Ok((norm, r.chunk()?))
}

/// Steps over a base part.
pub(crate) fn skip(r: &mut PayloadReader) -> Result<()> {
    parts(r).map(|_| ())
}

/// Reads a base part and returns the prediction it stands for in a block of `shape`.
pub(crate) fn read(
    r: &mut PayloadReader,
    dec: Option<&Decoder>,
    shape: [usize; 3],
) -> Result<Vec<f64>> {
    let dec = dec.ok_or_else(|| {
        Error::Model("a block is coded over a base model, but the stream carries none".into())
    })?;
    let (norm, latents) = parts(r)?;
    predict_from(dec, latents, shape, norm)
}
