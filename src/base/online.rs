//! Learning the base model in situ (the operator's `train=N`): the first N arrays a codec
//! compresses are kept, then a model is trained on them on a background thread; compression
//! goes on without one meanwhile and uses it once it is there.

use super::Model;
use crate::block::fold3;
use crate::dtype::ElementType;
#[cfg(feature = "train")]
use crate::error::Error;
use std::sync::{Arc, Mutex, OnceLock};

/// Arrays kept to learn from: values as f32 and their 3D view.
type Collected = Vec<(Vec<f32>, [usize; 3])>;

/// The operator's `train=N`: collects the first N arrays, then trains on a background thread;
/// compression goes on without a model meanwhile and uses it once it is there.
#[derive(Debug)]
pub(crate) struct Trainer {
    want: usize,
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    seconds: f64,
    /// None once training started.
    collected: Mutex<Option<Collected>>,
    trained: OnceLock<Arc<Model>>,
}

impl Trainer {
    pub(crate) fn new(want: usize, seconds: f64) -> Trainer {
        Trainer {
            want,
            seconds,
            collected: Mutex::new(Some(Vec::new())),
            trained: OnceLock::new(),
        }
    }

    /// The model once trained.
    pub(crate) fn trained(&self) -> Option<Arc<Model>> {
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
        std::thread::spawn(move || me.train(arrays));
    }

    #[cfg(feature = "train")]
    fn train(&self, arrays: Collected) {
        use crate::base::train::{fit, Sample, TrainOptions};
        let samples: Vec<Sample> = arrays
            .iter()
            .map(|(v, shape)| Sample {
                values: v,
                shape: *shape,
            })
            .collect();
        let opts = TrainOptions {
            seconds: self.seconds,
            ..TrainOptions::default()
        };
        let trained = fit(&samples, &opts, |_| {}).and_then(|(bytes, curve)| {
            let m = Model::from_safetensors(&bytes).map_err(Error::Model)?;
            Ok((m, curve))
        });
        match trained {
            Ok((m, curve)) => {
                eprintln!(
                    "residuum: base model trained on {} arrays: {} steps in {:.1} s, loss {:.3e}",
                    arrays.len(),
                    curve.len(),
                    curve.last().map_or(0.0, |p| p.seconds),
                    curve.last().map_or(f64::NAN, |p| p.loss)
                );
                let _ = self.trained.set(Arc::new(m));
            }
            Err(e) => eprintln!("residuum: training the base model failed: {e}"),
        }
    }

    #[cfg(not(feature = "train"))]
    fn train(&self, _: Collected) {}
}
