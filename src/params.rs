//! Operator parameters: parsed and validated once, at creation, with errors that name the key.
//!
//! | key | meaning |
//! |---|---|
//! | `mode` | `lossless` (default), `nrmse`, `abs`, `rel`, `psnr` |
//! | `target` | the bound for the mode: τ for nrmse, ε for abs/rel, dB for psnr |
//! | `nrmse`, `abs`, `rel`, `psnr` | shorthand: `nrmse=1e-5` is `mode=nrmse target=1e-5` |
//! | `range` | value range R for nrmse/rel/psnr: `block` (default: the range of each array compressed, i.e. each ADIOS2 block), `rank` or `global` (handed over by the application each step, see [`crate::insitu`]), or a number |
//! | `block` | block shape of the 3D view, e.g. `16x64x64`, at least 64 values (default: about 2^18 values, lossless 2^20) |
//! | `threads` | worker threads, at most [`MAX_THREADS`] (0, the default: `RESIDUUM_THREADS`, else the cores this process owns) |
//! | `level` | zstd level of the blocks stored as bytes (lossless ones, and lossy ones no coding serves), 1..=19 |
//! | `coder` | integer coder: `context` (default) or `planes` (zstd per bit plane) |
//! | `model` | a base model file (`residuum train`): blocks are also tried over its prediction |
//! | `residual` | residual coder: `auto` (default: LBRC, and the wavelet coder where it pays), `lbrc`, `wavelet`, `nglr` (LBRC with the NGLR network on every block it can serve; needs `nglr` or `train_nglr`) or `gae` (the baseline) |
//! | `nglr` | an NGLR network file (`residuum train --nglr`): LBRC also tries it as a predictor, per block by bits; the stream carries it where it saves more than its bytes |
//! | `train` | learn a base model from the first N arrays compressed that are not constant (then used like `model`) |
//! | `train_nglr` | learn an NGLR network from the first N arrays compressed that are not constant (then used like `nglr`) |
//! | `train_seconds` | time budget of that training's optimizer steps (default 30), on a background thread |
//! | `fill` | a number that marks missing values (e.g. `1e20`, `-999`): such values come back bit for bit and count neither in the range nor in the error (NaN and ±Inf always do so) |
//! | `base` | with `model`: `auto` (default: per block, whichever costs fewer bits) or `model` (every block over the model where it meets the bound, for comparisons) |
//! | `temporal` | temporal prediction: each block also coded over the previous step's reconstruction, every K-th step a keyframe (0, the default: off); in situ only |
//!
//! `range`, `base`, `model`, `residual`, `nglr`, `train`, `train_nglr` and `temporal` serve
//! the lossy modes: given a value other than their default with
//! `mode=lossless` they are refused, as are `range` with `abs`, `base=model` without a model,
//! and a network with `residual=gae` (all would go unused).

use crate::bound::Target;
use crate::dtype::ElementType;
use crate::error::{Error, ParameterError, Result};
pub use crate::pipeline::MAX_THREADS;

/// The environment variable `name` parsed by `parse`; None where unset. A value `parse`
/// refuses is ignored and said once per variable on standard error: where these are read (a
/// codec's thread count, the plugin's reader cache) there is no caller to return it to.
pub(crate) fn env_setting<T>(
    name: &'static str,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<T> {
    let v = std::env::var(name).ok()?;
    let parsed = parse(v.trim());
    if parsed.is_none() {
        static SAID: std::sync::Mutex<Vec<&str>> = std::sync::Mutex::new(Vec::new());
        let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
        if !said.contains(&name) {
            said.push(name);
            eprintln!("residuum: ignoring {name}={v:?}: not {what}");
        }
    }
    parsed
}

/// How the integers of LBRC blocks are entropy-coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntCoder {
    Context,
    Planes,
}

/// Where the value range R of range-relative targets (nrmse, rel, psnr) comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// The range of the array being compressed (an ADIOS2 block): always available.
    Block,
    /// All blocks of the variable this rank writes in the step, as handed over by the
    /// application (falls back to `Block`, which is never wider, so the bound still holds).
    Rank,
    /// All ranks' blocks, from an MPI all-reduce, as handed over by the application (same
    /// fallback).
    Global,
    /// A fixed value.
    Fixed(f64),
}

impl Range {
    pub fn name(self) -> &'static str {
        match self {
            Range::Block => "block",
            Range::Rank => "rank",
            Range::Global => "global",
            Range::Fixed(_) => "fixed",
        }
    }

    /// As `range=` gives it, for messages.
    fn given(self) -> String {
        match self {
            Range::Fixed(v) => v.to_string(),
            _ => self.name().to_string(),
        }
    }
}

/// The residual coder of lossy blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// LBRC, and for RMS targets (NRMSE, PSNR) also the wavelet coder: the smaller per block.
    Auto,
    Lbrc,
    /// The wavelet coder wherever it meets the bound, LBRC elsewhere (RMS targets only).
    Wavelet,
    /// LBRC with the NGLR network (`nglr=`) on every block it can serve.
    Nglr,
    /// The per-block PCA baseline.
    Gae,
}

/// Validated codec settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub target: Target,
    pub range: Range,
    pub block: Option<[usize; 3]>,
    /// 0: `RESIDUUM_THREADS`, else the cores this process owns.
    pub threads: usize,
    /// zstd level for lossless blocks.
    pub level: i32,
    pub coder: IntCoder,
    /// Base model file.
    pub model: Option<std::path::PathBuf>,
    pub residual: Residual,
    /// Code every block over the model (where it meets the bound), not only where it pays.
    pub force_model: bool,
    /// Arrays to learn a base model from (0: none).
    pub train: usize,
    /// Arrays to learn an NGLR network from (0: none).
    pub train_nglr: usize,
    pub train_seconds: f64,
    /// The value that marks missing data (`fill=`), if any.
    pub fill: Option<f64>,
    /// NGLR network file.
    pub nglr: Option<std::path::PathBuf>,
    /// Temporal prediction: every block is also offered the previous step's reconstruction,
    /// and every `temporal`-th step is a keyframe (0: off).
    pub temporal: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: Target::Lossless,
            range: Range::Block,
            block: None,
            threads: 0,
            level: 3,
            coder: IntCoder::Context,
            model: None,
            residual: Residual::Auto,
            force_model: false,
            train: 0,
            train_nglr: 0,
            train_seconds: 30.0,
            fill: None,
            nglr: None,
            temporal: 0,
        }
    }
}

const ACCEPTED: &str =
    "mode, target, nrmse, abs, rel, psnr, range, block, threads, level, coder, model, residual, base, train, train_nglr, train_seconds, fill, nglr, temporal";
/// Keys ADIOS2 itself puts into a plugin operator's parameters.
const ADIOS2_KEYS: [&str; 3] = ["pluginname", "pluginlibrary", "verbose"];

fn bad(key: &str, value: &str, reason: &str) -> Error {
    Error::Parameter(ParameterError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    })
}

/// The value a mode setting was given with: the bound for a shorthand (`nrmse=1e-4`), the mode
/// itself for `mode=`.
fn target_value(target: &Option<(String, f64)>, by: &str, mode: &str) -> String {
    match target {
        Some((k, t)) if k == by => t.to_string(),
        _ => mode.to_string(),
    }
}

fn positive(key: &str, value: &str) -> Result<f64> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| bad(key, value, "expected a positive number"))
}

fn threads_reason() -> String {
    format!("expected a count 0..={MAX_THREADS} (0: the cores owned)")
}

const LEVEL_REASON: &str = "expected an integer 1..=19";

/// Parses `AxBxC` (1 to 3 extents, the last ones of the 3D view).
fn block_shape(key: &str, value: &str) -> Result<[usize; 3]> {
    let ext: Vec<usize> = value
        .split(['x', 'X', ','])
        .map(|e| e.trim().parse::<usize>().ok().filter(|&v| v > 0))
        .collect::<Option<_>>()
        .filter(|v: &Vec<usize>| (1..=3).contains(&v.len()))
        .ok_or_else(|| bad(key, value, "expected 1 to 3 positive extents like 16x64x64"))?;
    let mut b = [1usize; 3];
    b[3 - ext.len()..].copy_from_slice(&ext);
    // Each block costs a table entry (17 bytes) and a payload head: tiny blocks expand the data
    // many times over and take minutes (1x1x1: 3.2 MB became 17 MB in 33 s).
    let values = b.iter().try_fold(1usize, |a, &e| a.checked_mul(e));
    if values.is_some_and(|v| v < MIN_BLOCK_VALUES) {
        return Err(bad(
            key,
            value,
            &format!("a block needs at least {MIN_BLOCK_VALUES} values"),
        ));
    }
    Ok(b)
}

/// The smallest block the `block` parameter accepts.
pub const MIN_BLOCK_VALUES: usize = 64;

/// The largest block: the integer coders count a block's symbols in 32 bits, and a block of
/// billions of values gains nothing over one of millions (default blocks hold about 2^18).
pub const MAX_BLOCK_VALUES: usize = 1 << 31;

impl Config {
    /// The bits of the fill value as an element of `dtype`, if one is set.
    pub fn fill_bits(&self, dtype: ElementType) -> Option<u64> {
        self.fill.map(|f| match dtype {
            ElementType::F32 => (f as f32).to_bits() as u64,
            ElementType::F64 => f.to_bits(),
        })
    }

    /// Checks settings as `from_pairs` does, for a `Config` built in code: values out of range
    /// and combinations that cannot work are errors, not silently lossless or ignored output.
    pub fn check(&self) -> Result<()> {
        let finite_positive = |v: f64| v.is_finite() && v > 0.0;
        let target = match self.target {
            Target::Lossless => None,
            Target::Nrmse(v) => Some(("nrmse", v)),
            Target::Abs(v) => Some(("abs", v)),
            Target::Rel(v) => Some(("rel", v)),
            Target::Psnr(v) => Some(("psnr", v)),
        };
        if let Some((key, v)) = target.filter(|&(_, v)| !finite_positive(v)) {
            return Err(bad(key, &v.to_string(), "expected a positive number"));
        }
        if let Range::Fixed(v) = self.range {
            if !finite_positive(v) {
                return Err(bad("range", &v.to_string(), "expected a positive number"));
            }
        }
        // Blocks smaller than the parameter takes (MIN_BLOCK_VALUES) only cost: allowed here.
        if let Some(b) = self.block {
            let shown = format!("{}x{}x{}", b[0], b[1], b[2]);
            if b.contains(&0) {
                return Err(bad("block", &shown, "expected 3 positive extents"));
            }
            let values = b.iter().try_fold(1usize, |a, &e| a.checked_mul(e));
            if values.is_none_or(|v| v > MAX_BLOCK_VALUES) {
                return Err(bad(
                    "block",
                    &shown,
                    &format!("a block holds at most {MAX_BLOCK_VALUES} values"),
                ));
            }
        }
        if self.threads > MAX_THREADS {
            return Err(bad("threads", &self.threads.to_string(), &threads_reason()));
        }
        if !(1..=19).contains(&self.level) {
            return Err(bad("level", &self.level.to_string(), LEVEL_REASON));
        }
        if let Some(f) = self.fill.filter(|f| !f.is_finite()) {
            return Err(bad("fill", &f.to_string(), "expected a finite number"));
        }
        if !finite_positive(self.train_seconds) {
            return Err(bad(
                "train_seconds",
                &self.train_seconds.to_string(),
                "expected a positive number",
            ));
        }
        if self.train > 0 && self.model.is_some() {
            return Err(bad(
                "train",
                &self.train.to_string(),
                "give either model or train",
            ));
        }
        if self.train_nglr > 0 && self.nglr.is_some() {
            return Err(bad(
                "train_nglr",
                &self.train_nglr.to_string(),
                "give either nglr or train_nglr",
            ));
        }
        if self.residual == Residual::Nglr && self.nglr.is_none() && self.train_nglr == 0 {
            return Err(bad(
                "residual",
                "nglr",
                "needs a network: nglr=PATH (residuum train --nglr) or train_nglr=N",
            ));
        }
        if self.force_model && self.model.is_none() && self.train == 0 {
            return Err(bad(
                "base",
                "model",
                "needs a model: model=PATH (residuum train) or train=N",
            ));
        }
        if self.residual == Residual::Gae && (self.nglr.is_some() || self.train_nglr > 0) {
            let key = if self.nglr.is_some() {
                "nglr"
            } else {
                "train_nglr"
            };
            return Err(bad(
                key,
                "(given with residual=gae)",
                "serves LBRC; GAE codes without a network",
            ));
        }
        if self.range != Range::Block && matches!(self.target, Target::Abs(_)) {
            return Err(bad(
                "range",
                &self.range.given(),
                "serves the relative targets (nrmse, rel, psnr); abs is absolute already",
            ));
        }
        if self.target == Target::Lossless {
            // Settings of the lossy coders only: given with mode=lossless (the default), they
            // would be ignored without a word.
            let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
            let lossy_only = [
                (
                    "temporal",
                    (self.temporal > 0).then(|| self.temporal.to_string()),
                ),
                ("train", (self.train > 0).then(|| self.train.to_string())),
                (
                    "train_nglr",
                    (self.train_nglr > 0).then(|| self.train_nglr.to_string()),
                ),
                ("model", path(&self.model)),
                ("nglr", path(&self.nglr)),
                (
                    "residual",
                    (self.residual != Residual::Auto)
                        .then(|| format!("{:?}", self.residual).to_lowercase()),
                ),
                (
                    "range",
                    (self.range != Range::Block).then(|| self.range.given()),
                ),
                ("base", self.force_model.then(|| "model".to_string())),
            ];
            if let Some((key, Some(value))) = lossy_only.into_iter().find(|(_, v)| v.is_some()) {
                return Err(bad(
                    key,
                    &value,
                    "serves the lossy modes (mode=lossless, the default, keeps every value); \
                     give a target such as nrmse=1e-5",
                ));
            }
        }
        // A transform spreads each coefficient's error over many values: it serves RMS
        // targets, not point-wise ones.
        if self.residual == Residual::Wavelet
            && !matches!(self.target, Target::Nrmse(_) | Target::Psnr(_))
        {
            return Err(bad(
                "residual",
                "wavelet",
                "the wavelet coder serves mode=nrmse or psnr (auto picks it where it pays)",
            ));
        }
        Ok(())
    }

    /// Parses `key=value` pairs. Keys are case-insensitive, as ADIOS2 lower-cases them anyway.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Config>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut cfg = Config::default();
        // The mode and the bound, each with the setting that gave it (key=value): one rule for
        // every way of saying them twice, a conflict is an error that names both settings.
        let mut mode: Option<(String, String)> = None;
        let mut target: Option<(String, f64)> = None;
        let mut seen: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            let key = k.as_ref().trim().to_ascii_lowercase();
            let value = v.as_ref().trim();
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                return Err(bad(
                    &key,
                    value,
                    &format!("'{key}' is already set to '{first}'"),
                ));
            }
            seen.push((key.clone(), value.to_string()));
            let conflict = |with: &str| bad(&key, value, &format!("conflicts with {with}"));
            match key.as_str() {
                "mode" => {
                    let m = value.to_ascii_lowercase();
                    if !["lossless", "nrmse", "abs", "rel", "psnr"].contains(&m.as_str()) {
                        return Err(bad(
                            &key,
                            value,
                            "supported modes: lossless, nrmse, abs, rel, psnr",
                        ));
                    }
                    if let Some((by, was)) = mode.as_ref().filter(|(_, was)| *was != m) {
                        return Err(conflict(&format!(
                            "{by}={}",
                            target_value(&target, by, was)
                        )));
                    }
                    mode = Some(("mode".into(), m));
                }
                "target" => {
                    if let Some((by, t)) = &target {
                        return Err(conflict(&format!("{by}={t}")));
                    }
                    target = Some(("target".into(), positive(&key, value)?));
                }
                "nrmse" | "abs" | "rel" | "psnr" => {
                    if let Some((by, was)) = mode.as_ref().filter(|(_, was)| *was != key) {
                        return Err(conflict(&format!(
                            "{by}={}",
                            target_value(&target, by, was)
                        )));
                    }
                    if let Some((by, t)) = &target {
                        return Err(conflict(&format!("{by}={t}")));
                    }
                    mode = Some((key.clone(), key.clone()));
                    target = Some((key.clone(), positive(&key, value)?));
                }
                "range" => {
                    cfg.range = match value.to_ascii_lowercase().as_str() {
                        "block" => Range::Block,
                        "rank" => Range::Rank,
                        "global" => Range::Global,
                        _ => Range::Fixed(positive(&key, value).map_err(|_| {
                            bad(
                                &key,
                                value,
                                "expected block, rank, global or a positive number",
                            )
                        })?),
                    }
                }
                "block" => cfg.block = Some(block_shape(&key, value)?),
                // Parsed here, their ranges checked with the rest (`check`).
                "threads" => {
                    cfg.threads = value
                        .parse()
                        .map_err(|_| bad(&key, value, &threads_reason()))?
                }
                "level" => cfg.level = value.parse().map_err(|_| bad(&key, value, LEVEL_REASON))?,
                "coder" => {
                    cfg.coder = match value.to_ascii_lowercase().as_str() {
                        "context" => IntCoder::Context,
                        "planes" => IntCoder::Planes,
                        _ => return Err(bad(&key, value, "supported coders: context, planes")),
                    }
                }
                "model" => cfg.model = Some(value.into()),
                "nglr" => cfg.nglr = Some(value.into()),
                "train" => {
                    cfg.train = value
                        .parse()
                        .map_err(|_| bad(&key, value, "expected a count of arrays"))?
                }
                "train_nglr" => {
                    cfg.train_nglr = value
                        .parse()
                        .map_err(|_| bad(&key, value, "expected a count of arrays"))?
                }
                "train_seconds" => cfg.train_seconds = positive(&key, value)?,
                "temporal" => {
                    cfg.temporal = value
                        .parse()
                        .map_err(|_| bad(&key, value, "expected a keyframe interval (0: off)"))?
                }
                "base" => {
                    cfg.force_model = match value.to_ascii_lowercase().as_str() {
                        "auto" => false,
                        "model" => true,
                        _ => return Err(bad(&key, value, "expected auto or model")),
                    }
                }
                "residual" => {
                    cfg.residual = match value.to_ascii_lowercase().as_str() {
                        "auto" => Residual::Auto,
                        "lbrc" => Residual::Lbrc,
                        "wavelet" => Residual::Wavelet,
                        "gae" => Residual::Gae,
                        "nglr" => Residual::Nglr,
                        _ => {
                            return Err(bad(
                                &key,
                                value,
                                "supported residual coders: auto, lbrc, wavelet, nglr, gae",
                            ))
                        }
                    }
                }
                "fill" => {
                    cfg.fill = Some(
                        value
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .ok_or_else(|| bad(&key, value, "expected a finite number"))?,
                    )
                }
                k if ADIOS2_KEYS.contains(&k) => {}
                _ => {
                    return Err(Error::Parameter(ParameterError::Unknown {
                        key,
                        accepted: ACCEPTED,
                    }))
                }
            }
        }
        let mode = mode.map(|(_, m)| m).unwrap_or_else(|| {
            if target.is_some() {
                String::new()
            } else {
                "lossless".into()
            }
        });
        cfg.target = match (mode.as_str(), target) {
            ("lossless", None) => Target::Lossless,
            ("lossless", Some((k, v))) => {
                return Err(bad(&k, &v.to_string(), "mode=lossless takes no target"))
            }
            ("", Some((_, v))) => {
                return Err(bad(
                    "target",
                    &v.to_string(),
                    "needs mode=nrmse|abs|rel|psnr",
                ))
            }
            (m, None) => {
                return Err(bad(
                    "mode",
                    m,
                    "needs target=<bound>, e.g. mode=nrmse target=1e-5",
                ))
            }
            ("nrmse", Some((_, v))) => Target::Nrmse(v),
            ("abs", Some((_, v))) => Target::Abs(v),
            ("rel", Some((_, v))) => Target::Rel(v),
            (_, Some((_, v))) => Target::Psnr(v),
        };
        cfg.check()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_of_the_lossy_coders_are_refused_with_lossless() {
        for (key, value) in [
            ("train", "4"),
            ("train_nglr", "4"),
            ("model", "m.safetensors"),
            ("nglr", "n.safetensors"),
            ("residual", "lbrc"),
            ("range", "global"),
            ("temporal", "5"),
        ] {
            let e = Config::from_pairs([(key, value)]).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("lossy modes"), "{key}: {e}");
            let lossy = Config::from_pairs([("nrmse", "1e-5"), (key, value)]);
            assert!(lossy.is_ok(), "{key}: {lossy:?}");
        }
        assert!(Config::from_pairs([("residual", "auto"), ("range", "block")]).is_ok());
        // Lossless streams have blocks too, LBRC's coded by the integer coder.
        assert!(Config::from_pairs([("block", "16x64x64"), ("coder", "planes")]).is_ok());
    }

    /// A `Config` built in code is checked as parsed settings are: before, `Codec::new` took a
    /// negative or NaN bound (and stored every block exactly), a NaN range or level 99.
    #[test]
    fn configs_built_in_code_are_checked_too() {
        let ok = Config {
            target: Target::Abs(0.5),
            ..Default::default()
        };
        assert!(crate::Codec::new(ok.clone()).is_ok());
        let bad = [
            Config {
                target: Target::Abs(-1.0),
                ..ok.clone()
            },
            Config {
                target: Target::Nrmse(f64::NAN),
                ..ok.clone()
            },
            Config {
                target: Target::Psnr(f64::INFINITY),
                ..ok.clone()
            },
            Config {
                range: Range::Fixed(f64::NAN),
                ..ok.clone()
            },
            Config {
                level: 99,
                ..ok.clone()
            },
            Config {
                block: Some([1, 1, 0]),
                ..ok.clone()
            },
            Config {
                fill: Some(f64::INFINITY),
                ..ok.clone()
            },
            Config {
                threads: MAX_THREADS + 1,
                ..ok.clone()
            },
            Config {
                train_seconds: 0.0,
                ..ok.clone()
            },
            Config {
                residual: Residual::Wavelet,
                ..ok.clone()
            },
            Config {
                temporal: 3,
                ..Default::default()
            },
        ];
        for cfg in bad {
            let e = crate::Codec::new(cfg.clone()).err();
            assert!(
                matches!(e, Some(Error::Parameter(ParameterError::BadValue { .. }))),
                "{cfg:?}: {e:?}"
            );
        }
    }

    #[test]
    fn parses_targets_in_both_spellings() {
        let c = Config::from_pairs([("Mode", "NRMSE"), ("target", "1e-5"), ("pluginname", "x")])
            .unwrap();
        assert_eq!(c.target, Target::Nrmse(1e-5));
        // A fill value, compared in the element type.
        let f = Config::from_pairs([("abs", "1"), ("fill", "1e20")]).unwrap();
        assert_eq!(
            f.fill_bits(ElementType::F32),
            Some(1e20f32.to_bits() as u64)
        );
        assert_eq!(f.fill_bits(ElementType::F64), Some(1e20f64.to_bits()));
        assert_eq!(
            Config::from_pairs([("abs", "0.5")]).unwrap().target,
            Target::Abs(0.5)
        );
        let c = Config::from_pairs([
            ("psnr", "80"),
            ("block", "8x16"),
            ("range", "2"),
            ("threads", "2"),
        ])
        .unwrap();
        assert_eq!(
            (c.target, c.block, c.range, c.threads),
            (Target::Psnr(80.0), Some([1, 8, 16]), Range::Fixed(2.0), 2)
        );
        assert_eq!(
            Config::from_pairs::<_, &str, &str>([]).unwrap().target,
            Target::Lossless
        );
        for (v, r) in [
            ("Global", Range::Global),
            ("rank", Range::Rank),
            ("block", Range::Block),
        ] {
            let c = Config::from_pairs([("nrmse", "1e-5"), ("range", v)]).unwrap();
            assert_eq!(c.range, r);
        }
    }

    #[test]
    fn rejects_unknown_keys_bad_values_and_conflicts() {
        let e = Config::from_pairs([("colour", "red")]).unwrap_err();
        assert!(e.to_string().contains("unknown parameter 'colour'"), "{e}");
        for pairs in [
            vec![("mode", "fast")],
            vec![("level", "0")],
            vec![("nrmse", "-1")],
            vec![("abs", "nan")],
            vec![("mode", "nrmse")],
            vec![("target", "1e-3")],
            vec![("mode", "abs"), ("rel", "1e-3")],
            vec![("block", "0x4")],
            vec![("block", "1x2x3x4")],
            vec![("coder", "magic")],
            vec![("range", "world")],
            vec![("range", "0")],
            vec![("threads", "100000")],
            vec![("block", "1x1x1")],
            vec![("block", "4x4x2")],
            vec![("block", "1x2x1073741825")],
            vec![("block", "99999999999x99999999999x99999999999")],
            vec![("threads", "99999999999")],
            vec![("fill", "nan")],
            vec![("fill", "missing")],
            // Given, then ignored without a word: base needs a model; GAE uses no network;
            // abs needs no range.
            vec![("nrmse", "1e-4"), ("base", "model")],
            vec![("nrmse", "1e-4"), ("residual", "gae"), ("train_nglr", "4")],
            vec![("abs", "1e-3"), ("range", "2")],
        ] {
            let e = Config::from_pairs(pairs.clone()).unwrap_err();
            assert!(
                matches!(e, Error::Parameter(ParameterError::BadValue { .. })),
                "{pairs:?}: {e}"
            );
        }
    }

    #[test]
    fn a_conflict_names_both_settings() {
        for (pairs, first, second) in [
            (
                vec![("nrmse", "1e-4"), ("mode", "abs")],
                "nrmse=0.0001",
                "'mode'",
            ),
            (
                vec![("mode", "abs"), ("nrmse", "1e-4")],
                "mode=abs",
                "'nrmse'",
            ),
            (
                vec![("nrmse", "1e-4"), ("target", "1e-2")],
                "nrmse=0.0001",
                "'target'",
            ),
            (
                vec![("target", "1e-2"), ("nrmse", "1e-4")],
                "target=0.01",
                "'nrmse'",
            ),
            (
                vec![("nrmse", "1e-4"), ("abs", "5")],
                "nrmse=0.0001",
                "'abs'",
            ),
            (vec![("threads", "2"), ("Threads", "3")], "'2'", "'threads'"),
        ] {
            let e = Config::from_pairs(pairs.clone()).unwrap_err().to_string();
            assert!(e.contains(first) && e.contains(second), "{pairs:?}: {e}");
        }
        // Saying the same thing in both spellings is no conflict.
        let c = Config::from_pairs([("mode", "nrmse"), ("nrmse", "1e-4")]).unwrap();
        assert_eq!(c.target, Target::Nrmse(1e-4));
    }
}
