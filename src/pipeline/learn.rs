//! Learning in situ (the operator's `train=N` for the base model, `train_nglr=N` for the NGLR
//! network): the first N arrays a codec compresses are kept, then the thing is trained on
//! them on a background thread; compression goes on without it meanwhile and uses it once it
//! is there.

use crate::block::fold3;
use crate::dtype::ElementType;
use crate::error::Result;
use std::sync::{Arc, Mutex, OnceLock};

/// Arrays kept to learn from: values as f32 and their 3D view.
pub(crate) type Collected = Vec<(Vec<f32>, [usize; 3])>;

/// How a learner fits its thing: from the arrays, within a time budget in seconds; its
/// report on success.
pub(crate) type Fit<T> = fn(&Collected, f64) -> Result<(T, String)>;

/// Collects the first N arrays, then trains on a background thread.
#[derive(Debug)]
pub(crate) struct Learner<T> {
    /// What it learns, for the log.
    what: &'static str,
    want: usize,
    seconds: f64,
    fit: Fit<T>,
    /// The most values kept ([`MAX_KEPT`]).
    room: usize,
    /// None once training started.
    collected: Mutex<Option<Collected>>,
    trained: OnceLock<Arc<T>>,
}

impl<T: Send + Sync + 'static> Learner<T> {
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn new(what: &'static str, want: usize, seconds: f64, fit: Fit<T>) -> Self {
        Learner {
            what,
            want,
            seconds,
            fit,
            room: MAX_KEPT,
            collected: Mutex::new(Some(Vec::new())),
            trained: OnceLock::new(),
        }
    }

    /// What it learned, once trained.
    pub(crate) fn trained(&self) -> Option<Arc<T>> {
        self.trained.get().cloned()
    }

    /// Keeps the array `data` of `dims` (values whose bits are `fill` as NaN: missing, as the
    /// codec treats them) while fewer than N are kept, unless it is constant; the N-th starts
    /// training, and so does reaching [`MAX_KEPT`] values.
    pub(crate) fn observe(
        self: &Arc<Self>,
        data: &[u8],
        dtype: ElementType,
        dims: &[usize],
        fill: Option<u64>,
    ) {
        let mut c = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        let Some(arrays) = c.as_mut() else {
            return; // training started
        };
        let kept: usize = arrays.iter().map(|(v, _)| v.len()).sum();
        let Some(shape) = leading(fold3(dims), self.room - kept) else {
            return; // empty: nothing to learn from
        };
        let n: usize = shape.iter().product();
        let values = as_f32(&data[..n * dtype.size()], dtype, fill);
        // An array without variation (a constant initial state, all fill values) teaches
        // nothing, and a run of them would leave the learner nothing else: not counted.
        let (lo, hi) = crate::bound::finite_min_max(values.iter().map(|&x| f64::from(x)));
        if hi <= lo {
            return;
        }
        arrays.push((values, shape));
        let full = kept + n >= self.room;
        if arrays.len() < self.want && !full {
            return;
        }
        if arrays.len() < self.want {
            eprintln!(
                "residuum: {} learns from the first {} of the {} arrays asked for: at most {} \
                 values are kept",
                self.what,
                arrays.len(),
                self.want,
                self.room
            );
        }
        let arrays = c.take().unwrap_or_default();
        let me = self.clone();
        std::thread::spawn(move || match (me.fit)(&arrays, me.seconds) {
            Ok((t, report)) => {
                eprintln!(
                    "residuum: {} trained on {} arrays: {report}",
                    me.what,
                    arrays.len()
                );
                let _ = me.trained.set(Arc::new(t));
            }
            Err(e) => eprintln!("residuum: training the {} failed: {e}", me.what),
        });
    }
}

/// The most values a learner keeps (256 MiB as f32). Both fits sample crops or positions, so
/// more only holds memory: without a limit, `train=N` of a long run kept N whole arrays.
const MAX_KEPT: usize = 1 << 26;

/// The shape of the leading part of a 3D array of `shape` that fits in `room` values (whole
/// planes, else whole rows of the first plane, else the start of its first row); None where
/// nothing does or the array is empty.
fn leading([p, r, c]: [usize; 3], room: usize) -> Option<[usize; 3]> {
    let shape = if p * r * c <= room {
        [p, r, c]
    } else if r * c <= room {
        [room / (r * c), r, c]
    } else if c <= room {
        [1, room / c, c]
    } else {
        [1, 1, room]
    };
    (shape.iter().product::<usize>() > 0).then_some(shape)
}

/// The values of `raw` as f32 for the fits: fill values as NaN, and f64 arrays scaled by a
/// power of two that brings their largest magnitude near 1 (values below f32's range would
/// become zeros, beyond it infinities; both fits normalise the scale away).
fn as_f32(raw: &[u8], dtype: ElementType, fill: Option<u64>) -> Vec<f32> {
    let mut v = dtype.to_f64s(raw);
    if let Some(fill) = fill {
        for (x, b) in v.iter_mut().zip(raw.chunks_exact(dtype.size())) {
            if dtype.read_bits(b) == fill {
                *x = f64::NAN;
            }
        }
    }
    let max = v
        .iter()
        .filter(|x| x.is_finite())
        .fold(0f64, |m, x| m.max(x.abs()));
    let scale = match dtype {
        ElementType::F64 if max > 0.0 => {
            // 2^-e for max's exponent e, kept within the normal range (exact).
            let e = ((max.to_bits() >> 52) & 0x7ff) as i64 - 1023;
            f64::from_bits(((1023 - e.clamp(-1022, 1022)) as u64) << 52)
        }
        _ => 1.0,
    };
    v.into_iter().map(|x| (x * scale) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_starts_when_the_room_is_full_with_what_fits_and_varies() {
        let fit: Fit<Vec<[usize; 3]>> =
            |a, _| Ok((a.iter().map(|(_, s)| *s).collect(), String::new()));
        let mut l = Learner::new("test", 10, 1.0, fit);
        l.room = 100;
        let l = Arc::new(l);
        let raw: Vec<u8> = (0..40).flat_map(|i| (i as f32).to_le_bytes()).collect();
        l.observe(&[], ElementType::F32, &[0, 4], None); // empty: not counted
                                                         // Constant (a uniform initial state; all fill, as NaN): not counted either.
        let nan: Vec<u8> = (0..40).flat_map(|_| f32::NAN.to_le_bytes()).collect();
        for constant in [vec![0u8; 4 * 40], nan] {
            for _ in 0..20 {
                l.observe(&constant, ElementType::F32, &[2, 4, 5], None);
            }
        }
        let kept = l.collected.lock().unwrap().as_ref().map(Vec::len);
        assert_eq!(
            kept,
            Some(0),
            "constant arrays were kept (None: training started)"
        );
        for _ in 0..4 {
            l.observe(&raw, ElementType::F32, &[2, 4, 5], None);
        }
        let start = std::time::Instant::now();
        while l.trained().is_none() {
            assert!(start.elapsed().as_secs() < 60, "no training");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(*l.trained().unwrap(), [[2, 4, 5], [2, 4, 5], [1, 4, 5]]);
    }

    #[test]
    fn leading_parts_fit_their_room() {
        assert_eq!(leading([4, 3, 5], 100), Some([4, 3, 5]));
        assert_eq!(leading([4, 3, 5], 31), Some([2, 3, 5]));
        assert_eq!(leading([4, 3, 5], 12), Some([1, 2, 5]));
        assert_eq!(leading([4, 3, 5], 4), Some([1, 1, 4]));
        assert_eq!(leading([4, 3, 5], 0), None);
        assert_eq!(leading([0, 3, 5], 100), None);
    }

    #[test]
    fn fill_values_are_missing_and_f64_keeps_its_shape_in_f32() {
        let raw: Vec<u8> = [1.5f32, 1e20, -2.0, f32::NAN]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let fill = Some(1e20f32.to_bits() as u64);
        let v = as_f32(&raw, ElementType::F32, fill);
        assert_eq!(
            v[..3].iter().map(|x| x.is_nan()).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!((v[0], v[2]), (1.5, -2.0));
        assert!(v[3].is_nan());
        for scale in [1e-300, 1e-5, 1e300] {
            let x = [3.0 * scale, -scale, 0.5 * scale, f64::INFINITY];
            let raw: Vec<u8> = x.iter().flat_map(|x| x.to_le_bytes()).collect();
            let v = as_f32(&raw, ElementType::F64, None);
            assert!(v[..3].iter().all(|x| x.is_normal()), "{scale}: {v:?}");
            assert!((v[0] / v[1] + 3.0).abs() < 1e-6 && (v[0] / v[2] - 6.0).abs() < 1e-5);
            assert!(v[0].abs() < 4.0 && v[3] == f32::INFINITY);
        }
    }
}
