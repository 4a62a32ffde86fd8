//! Operator parameters: parsed and validated once, at creation, with errors that name the key.

use crate::error::{Error, Result};

/// How values are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bit-exact: zstd over the element bytes, raw where zstd would expand.
    Lossless,
}

impl Mode {
    pub fn code(self) -> u8 {
        match self {
            Mode::Lossless => 0,
        }
    }

    pub fn from_code(code: u8) -> Result<Self> {
        match code {
            0 => Ok(Mode::Lossless),
            other => Err(Error::Corrupt(format!("unknown mode code {other}"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Lossless => "lossless",
        }
    }
}

/// Validated codec settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mode: Mode,
    /// zstd level for lossless coding.
    pub level: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Lossless,
            level: DEFAULT_LEVEL,
        }
    }
}

const DEFAULT_LEVEL: i32 = 3;
const ACCEPTED: &str = "mode, level";
/// Keys ADIOS2 itself puts into a plugin operator's parameters.
const ADIOS2_KEYS: [&str; 3] = ["pluginname", "pluginlibrary", "verbose"];

impl Config {
    /// Parses `key=value` pairs. Keys are case-insensitive, as ADIOS2 lower-cases them anyway.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Config>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut cfg = Config::default();
        for (k, v) in pairs {
            let key = k.as_ref().trim().to_ascii_lowercase();
            let value = v.as_ref().trim();
            let bad = |reason: &str| Error::BadParameter {
                key: key.clone(),
                value: value.to_string(),
                reason: reason.to_string(),
            };
            match key.as_str() {
                "mode" => {
                    cfg.mode = match value.to_ascii_lowercase().as_str() {
                        "lossless" => Mode::Lossless,
                        _ => return Err(bad("supported modes: lossless")),
                    }
                }
                "level" => {
                    let level: i32 = value
                        .parse()
                        .map_err(|_| bad("expected an integer 1..=19"))?;
                    if !(1..=19).contains(&level) {
                        return Err(bad("expected an integer 1..=19"));
                    }
                    cfg.level = level;
                }
                k if ADIOS2_KEYS.contains(&k) => {}
                _ => {
                    return Err(Error::UnknownParameter {
                        key,
                        accepted: ACCEPTED,
                    })
                }
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys_case_insensitively() {
        let c = Config::from_pairs([("Mode", "LOSSLESS"), ("level", "7"), ("pluginname", "x")])
            .unwrap();
        assert_eq!(c.mode, Mode::Lossless);
        assert_eq!(c.level, 7);
    }

    #[test]
    fn rejects_unknown_key_and_bad_values() {
        let e = Config::from_pairs([("colour", "red")]).unwrap_err();
        assert!(e.to_string().contains("unknown parameter 'colour'"), "{e}");
        for (k, v) in [
            ("mode", "fast"),
            ("level", "0"),
            ("level", "x"),
            ("level", "20"),
        ] {
            let e = Config::from_pairs([(k, v)]).unwrap_err();
            assert!(matches!(e, Error::BadParameter { .. }), "{k}={v}: {e}");
            assert!(e.to_string().contains(k), "{e}");
        }
    }
}
