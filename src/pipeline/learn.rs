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
            collected: Mutex::new(Some(Vec::new())),
            trained: OnceLock::new(),
        }
    }

    /// What it learned, once trained.
    pub(crate) fn trained(&self) -> Option<Arc<T>> {
        self.trained.get().cloned()
    }

    /// Keeps the array `data` of `dims` while fewer than N are kept; the N-th starts training.
    pub(crate) fn observe(self: &Arc<Self>, data: &[u8], dtype: ElementType, dims: &[usize]) {
        let mut c = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        let Some(arrays) = c.as_mut() else {
            return; // training started
        };
        let v = dtype.to_f64s(data).into_iter().map(|x| x as f32).collect();
        arrays.push((v, fold3(dims)));
        if arrays.len() < self.want {
            return;
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
