//! SZ3 and ZFP through their crates, for `residuum bench` (feature `peers`).

/// A compressor the benchmark can drive with one error-bound knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Sz3Interp,
    Sz3LorenzoRegression,
    Zfp,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::Sz3Interp, Peer::Sz3LorenzoRegression, Peer::Zfp];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Sz3Interp => "SZ3 interp+Lorenzo",
            Peer::Sz3LorenzoRegression => "SZ3 Lorenzo+regression",
            Peer::Zfp => "ZFP accuracy",
        }
    }

    /// Compresses `data` (C order, `dims` slowest first) with absolute error bound / tolerance `eb`.
    pub fn compress(self, data: &[f32], dims: &[usize], eb: f64) -> Result<Vec<u8>, String> {
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
            Peer::Zfp => zfp::compress(data, &dims, eb),
        }
    }

    /// Decompresses; `eb` must be the bound used to compress (zfp streams do not record it).
    pub fn decompress(
        self,
        bytes: &[u8],
        data_len: usize,
        dims: &[usize],
        eb: f64,
    ) -> Result<Vec<f32>, String> {
        let dims: Vec<usize> = dims.iter().copied().filter(|&d| d > 1).collect();
        match self {
            Peer::Sz3Interp | Peer::Sz3LorenzoRegression => {
                let (_, d) = sz3::decompress::<f32, _>(bytes).map_err(|e| format!("SZ3: {e:?}"))?;
                Ok(d.into_data())
            }
            Peer::Zfp => zfp::decompress(bytes, data_len, &dims, eb),
        }
    }
}

mod zfp {
    use zfp_sys::*;

    /// A zfp field over `data` (C order: zfp's x is the fastest dimension).
    ///
    /// SAFETY (callers): `ptr` holds the product of `dims` floats and outlives the field.
    unsafe fn field(ptr: *mut f32, dims: &[usize]) -> Result<*mut zfp_field, String> {
        let t = zfp_type_zfp_type_float;
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

    pub fn compress(data: &[f32], dims: &[usize], tol: f64) -> Result<Vec<u8>, String> {
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

    pub fn decompress(
        bytes: &[u8],
        len: usize,
        dims: &[usize],
        tol: f64,
    ) -> Result<Vec<f32>, String> {
        let mut out = vec![0f32; len];
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
