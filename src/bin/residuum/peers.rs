//! SZ3, ZFP and SPERR through their crates, for `residuum bench` (feature `peers`).

use crate::fields::Sample;

/// The types every peer takes: residuum's two.
pub trait PeerSample: Sample + sz3::SZ3Compressible + sperr::Element {
    /// zfp's name for the type.
    const ZFP: zfp_sys::zfp_type;
    /// The inverse of [`Sample::bits`].
    fn from_bits(bits: u64) -> Self;
}
impl PeerSample for f32 {
    const ZFP: zfp_sys::zfp_type = zfp_sys::zfp_type_zfp_type_float;
    fn from_bits(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
}
impl PeerSample for f64 {
    const ZFP: zfp_sys::zfp_type = zfp_sys::zfp_type_zfp_type_double;
    fn from_bits(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

/// A compressor the benchmark can drive with one error-bound knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Sz3Interp,
    Sz3LorenzoRegression,
    Zfp,
    /// SPERR (CDF 9/7 wavelets and SPECK) with a point-wise error bound.
    SperrPwe,
    /// SPERR with a PSNR target, the knob mapped to PSNR = 20·log10(range / bound).
    SperrPsnr,
}

impl Peer {
    pub const ALL: [Peer; 5] = [
        Peer::Sz3Interp,
        Peer::Sz3LorenzoRegression,
        Peer::Zfp,
        Peer::SperrPwe,
        Peer::SperrPsnr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Sz3Interp => "SZ3 interp+Lorenzo",
            Peer::Sz3LorenzoRegression => "SZ3 Lorenzo+regression",
            Peer::Zfp => "ZFP accuracy",
            Peer::SperrPwe => "SPERR pwe",
            Peer::SperrPsnr => "SPERR psnr",
        }
    }

    /// Compresses `data` (C order, `dims` slowest first) with absolute error bound / tolerance `eb`.
    pub fn compress<T: PeerSample>(
        self,
        data: &[T],
        dims: &[usize],
        eb: f64,
    ) -> Result<Vec<u8>, String> {
        // Neither library accepts extents of 1: drop them (the data are the same).
        let dims: Vec<usize> = dims.iter().copied().filter(|&d| d > 1).collect();
        match self {
            Peer::Sz3Interp | Peer::Sz3LorenzoRegression => {
                let mut b = sz3::DimensionedData::build(&data);
                for &d in &dims {
                    b = b.dim(d).map_err(|e| format!("SZ3: {e:?}"))?;
                }
                let d = b.finish().map_err(|e| format!("SZ3: {e:?}"))?;
                let algo = if self == Peer::Sz3Interp {
                    sz3::CompressionAlgorithm::interpolation_lorenzo()
                } else {
                    sz3::CompressionAlgorithm::lorenzo_regression()
                };
                let cfg =
                    sz3::Config::new(sz3::ErrorBound::Absolute(eb)).compression_algorithm(algo);
                sz3::compress_with_config(&d, &cfg).map_err(|e| format!("SZ3: {e:?}"))
            }
            Peer::Zfp | Peer::SperrPwe | Peer::SperrPsnr => {
                let (filled, mut out) = masked::fill(data)?;
                out.extend(match self {
                    Peer::Zfp => zfp::compress(&filled, &dims, eb)?,
                    _ => sperr_peer::compress(&filled, &dims, eb, self == Peer::SperrPsnr)?,
                });
                Ok(out)
            }
        }
    }

    /// Decompresses; `eb` must be the bound used to compress (zfp streams do not record it).
    pub fn decompress<T: PeerSample>(
        self,
        bytes: &[u8],
        data_len: usize,
        dims: &[usize],
        eb: f64,
    ) -> Result<Vec<T>, String> {
        let dims: Vec<usize> = dims.iter().copied().filter(|&d| d > 1).collect();
        match self {
            Peer::Sz3Interp | Peer::Sz3LorenzoRegression => {
                let (_, d) = sz3::decompress::<T, _>(bytes).map_err(|e| format!("SZ3: {e:?}"))?;
                Ok(d.into_data())
            }
            Peer::Zfp | Peer::SperrPwe | Peer::SperrPsnr => {
                let (body, specials) = masked::read::<T>(bytes, data_len)?;
                let mut out = match self {
                    Peer::Zfp => zfp::decompress(body, data_len, &dims, eb)?,
                    _ => sperr_peer::decompress(body, data_len, &dims)?,
                };
                for (i, bits) in specials {
                    out[i] = <T as PeerSample>::from_bits(bits);
                }
                Ok(out)
            }
        }
    }
}

mod zfp {
    use super::PeerSample;
    use zfp_sys::*;

    /// A zfp field over `data` (C order: zfp's x is the fastest dimension).
    ///
    /// SAFETY (callers): `ptr` holds the product of `dims` values and outlives the field.
    unsafe fn field<T: PeerSample>(ptr: *mut T, dims: &[usize]) -> Result<*mut zfp_field, String> {
        let t = T::ZFP;
        let p = ptr.cast();
        let f = match *dims {
            [] => zfp_field_1d(p, t, 1),
            [x] => zfp_field_1d(p, t, x),
            [y, x] => zfp_field_2d(p, t, x, y),
            [z, y, x] => zfp_field_3d(p, t, x, y, z),
            [w, z, y, x] => zfp_field_4d(p, t, x, y, z, w),
            _ => {
                // Fold leading dimensions (zfp has at most 4).
                let n = dims.len();
                let lead: usize = dims[..n - 3].iter().product();
                zfp_field_4d(p, t, dims[n - 1], dims[n - 2], dims[n - 3], lead)
            }
        };
        if f.is_null() {
            Err("zfp_field failed".into())
        } else {
            Ok(f)
        }
    }

    pub fn compress<T: PeerSample>(
        data: &[T],
        dims: &[usize],
        tol: f64,
    ) -> Result<Vec<u8>, String> {
        let mut copy = data.to_vec();
        // SAFETY: FFI to zfp with buffers sized by zfp_stream_maximum_size; every object is freed
        // before returning, and `copy` outlives the field.
        unsafe {
            let f = field(copy.as_mut_ptr(), dims)?;
            let zs = zfp_stream_open(std::ptr::null_mut());
            zfp_stream_set_accuracy(zs, tol);
            let cap = zfp_stream_maximum_size(zs, f);
            let mut buf = vec![0u8; cap];
            let bs = stream_open(buf.as_mut_ptr().cast(), cap);
            zfp_stream_set_bit_stream(zs, bs);
            zfp_stream_rewind(zs);
            let n = zfp_compress(zs, f);
            zfp_field_free(f);
            zfp_stream_close(zs);
            stream_close(bs);
            if n == 0 {
                return Err("zfp_compress failed".into());
            }
            buf.truncate(n);
            Ok(buf)
        }
    }

    pub fn decompress<T: PeerSample>(
        bytes: &[u8],
        len: usize,
        dims: &[usize],
        tol: f64,
    ) -> Result<Vec<T>, String> {
        let mut out = vec![T::default(); len];
        let mut input = bytes.to_vec();
        // SAFETY: as in `compress`; `out` holds the field's values, `input` the stream.
        unsafe {
            let f = field(out.as_mut_ptr(), dims)?;
            let zs = zfp_stream_open(std::ptr::null_mut());
            let bs = stream_open(input.as_mut_ptr().cast(), input.len());
            zfp_stream_set_bit_stream(zs, bs);
            zfp_stream_rewind(zs);
            zfp_stream_set_accuracy(zs, tol);
            let n = zfp_decompress(zs, f);
            zfp_field_free(f);
            zfp_stream_close(zs);
            stream_close(bs);
            if n == 0 {
                return Err("zfp_decompress failed".into());
            }
        }
        Ok(out)
    }
}

/// NaN and ±Inf for the peers that cannot code them (ZFP turns them into garbage that spoils
/// its block and decodes finite values; SPERR refuses them): replaced by the mean of the finite
/// values, and restored bit for bit from what travels in front of the peer's bytes (u32 length,
/// then zstd of the mask bitmap and the values' bits), counted in its size as residuum and SZ3
/// pay for theirs.
mod masked {
    use crate::fields::Sample;

    pub fn fill<T: Sample>(data: &[T]) -> Result<(Vec<T>, Vec<u8>), String> {
        let finite = data.iter().filter(|x| x.is_finite());
        let count = finite.clone().count();
        let mean = finite.map(|x| x.to_f64()).sum::<f64>() / count.max(1) as f64;
        let filled = data
            .iter()
            .map(|&x| if x.is_finite() { x } else { T::from_f64(mean) })
            .collect();
        let mut out = vec![0u8; 4];
        if count < data.len() {
            let mut raw = vec![0u8; data.len().div_ceil(8)];
            for (i, x) in data.iter().enumerate() {
                raw[i / 8] |= u8::from(!x.is_finite()) << (i % 8);
            }
            for x in data.iter().filter(|x| !x.is_finite()) {
                raw.extend_from_slice(&x.bits().to_le_bytes()[..size_of::<T>()]);
            }
            let z = zstd::bulk::compress(&raw, 19).map_err(|e| e.to_string())?;
            out[..4].copy_from_slice(&(z.len() as u32).to_le_bytes());
            out.extend_from_slice(&z);
        }
        Ok((filled, out))
    }

    /// Positions and bits of the values to restore.
    pub type Restore = Vec<(usize, u64)>;

    /// The peer's bytes, and the values (of `T`) to restore.
    pub fn read<T: Sample>(bytes: &[u8], len: usize) -> Result<(&[u8], Restore), String> {
        let head = bytes.get(..4).ok_or("short stream")?;
        let mask_len = u32::from_le_bytes(head.try_into().unwrap()) as usize;
        let (mask, body) = bytes[4..].split_at(mask_len.min(bytes.len() - 4));
        if mask_len == 0 {
            return Ok((body, Vec::new()));
        }
        let es = size_of::<T>();
        let raw =
            zstd::bulk::decompress(mask, len.div_ceil(8) + es * len).map_err(|e| e.to_string())?;
        let (bitmap, bits) = raw.split_at(len.div_ceil(8).min(raw.len()));
        let at = (0..len).filter(|i| bitmap[i / 8] >> (i % 8) & 1 == 1);
        let values = bits.chunks_exact(es).map(|b| {
            let mut w = [0u8; 8];
            w[..es].copy_from_slice(b);
            u64::from_le_bytes(w)
        });
        Ok((body, at.zip(values).collect()))
    }
}

/// SPERR over the 3D view, the whole field one chunk (so a PSNR target is the field's), of
/// finite values ([`masked`]).
mod sperr_peer {
    use super::PeerSample;
    use ndarray::{ArrayView3, ArrayViewMut3};
    use residuum::internals::{finite_min_max, fold3};

    pub fn compress<T: PeerSample>(
        data: &[T],
        dims: &[usize],
        eb: f64,
        psnr: bool,
    ) -> Result<Vec<u8>, String> {
        let shape = fold3(dims);
        let (lo, hi) = finite_min_max(data.iter().map(|x| x.to_f64()));
        // A constant field has no PSNR: it takes the point-wise mode (exact there either way).
        let mode = if psnr && hi > lo {
            sperr::CompressionMode::PeakSignalToNoiseRatio {
                psnr: 20.0 * ((hi - lo) / eb).log10(),
            }
        } else {
            sperr::CompressionMode::PointwiseError { pwe: eb }
        };
        let view = ArrayView3::from_shape((shape[0], shape[1], shape[2]), data)
            .map_err(|e| format!("SPERR: {e}"))?;
        sperr::compress_3d(view, mode, (shape[0], shape[1], shape[2]))
            .map_err(|e| format!("SPERR: {e:?}"))
    }

    pub fn decompress<T: PeerSample>(
        bytes: &[u8],
        len: usize,
        dims: &[usize],
    ) -> Result<Vec<T>, String> {
        let shape = fold3(dims);
        let mut out = vec![T::default(); len];
        let view = ArrayViewMut3::from_shape((shape[0], shape[1], shape[2]), &mut out)
            .map_err(|e| format!("SPERR: {e}"))?;
        sperr::decompress_into_3d(bytes, view).map_err(|e| format!("SPERR: {e:?}"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{Peer, PeerSample};

    /// Every peer on a field of `T` with `specials` scattered through it: they come back bit for
    /// bit, and the other values within the bound.
    fn restores<T: PeerSample>(specials: [T; 4]) {
        let dims = [8, 12, 16];
        let mut v: Vec<T> = (0..8 * 12 * 16)
            .map(|i| T::from_f64((i as f64 * 0.05).sin()))
            .collect();
        for (k, s) in specials.iter().cycle().take(40).enumerate() {
            let n = v.len();
            v[k * 37 % n] = *s;
        }
        for peer in Peer::ALL {
            let c = peer.compress(&v, &dims, 1e-3).unwrap();
            let back: Vec<T> = peer.decompress(&c, v.len(), &dims, 1e-3).unwrap();
            for (x, y) in v.iter().zip(&back) {
                if !x.is_finite() {
                    assert_eq!(x.bits(), y.bits(), "{}", peer.name());
                } else if peer != Peer::SperrPsnr {
                    // (SPERR's PSNR mode bounds no single value.)
                    let (x, y) = (x.to_f64(), y.to_f64());
                    assert!((x - y).abs() <= 1.01e-3, "{}: {x} vs {y}", peer.name());
                }
            }
        }
    }

    /// Missing data comes back bit for bit from every peer: ZFP decoded NaN as numbers, and
    /// SPERR's mask gave NaN for ±Inf and for NaNs with other bits.
    #[test]
    fn every_peer_restores_non_finite_values_exactly() {
        restores([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7fc0_1234),
        ]);
        // In f64 the payload's bits above the f32 range count too.
        restores([
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(0x7ff8_0000_dead_1234),
        ]);
    }
}
