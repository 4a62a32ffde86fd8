//! Checks an ADIOS2 XML configuration before ADIOS2 reads it: the plugin libraries it names must
//! be findable, and residuum operations must have valid parameters. ADIOS2 itself creates
//! variable operations inside functions that may not throw, so without these checks a missing
//! plugin aborts the process and bad parameters only print a warning.

use super::error::{AdiosError, Result};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::path::Path;

/// What the configuration says about residuum.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Per IO name, the variables that carry a residuum operation, with its `fill=` if any.
    pub residuum_vars: HashMap<String, HashMap<String, Option<f64>>>,
}

impl Checked {
    /// The `fill=` of the residuum operation on `variable` of IO `io`, if it has one.
    pub fn fill(&self, io: &str, variable: &str) -> Option<f64> {
        self.residuum_vars.get(io)?.get(variable).copied().flatten()
    }
}

struct Operation {
    io: Option<String>,
    variable: Option<String>,
    params: Vec<(String, String)>,
}

fn param<'a>(op: &'a Operation, key: &str) -> Option<&'a str> {
    op.params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Plugin operators and operations in the document, with the IO and variable they belong to.
fn plugin_operations(xml: &str) -> std::result::Result<Vec<Operation>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let ancestor_name = |n: roxmltree::Node, tag: &str| {
        n.ancestors()
            .find(|a| a.has_tag_name(tag))
            .and_then(|a| a.attribute("name"))
            .map(str::to_string)
    };
    Ok(doc
        .descendants()
        .filter(|n| {
            matches!(n.tag_name().name(), "operator" | "operation")
                && n.attribute("type")
                    .is_some_and(|t| t.eq_ignore_ascii_case("plugin"))
        })
        .map(|n| Operation {
            io: ancestor_name(n, "io"),
            variable: ancestor_name(n, "variable"),
            params: n
                .children()
                .filter(|c| c.has_tag_name("parameter"))
                .filter_map(|p| {
                    Some((
                        p.attribute("key")?.to_string(),
                        p.attribute("value")?.to_string(),
                    ))
                })
                .collect(),
        })
        .collect())
}

/// The file names ADIOS2's loader tries for `lib` (prefix "" or "lib", suffix "" or ".so").
fn candidates(lib: &str) -> Vec<String> {
    ["", "lib"]
        .iter()
        .flat_map(|p| ["", ".so"].iter().map(move |s| format!("{p}{lib}{s}")))
        .collect()
}

/// Whether the dynamic loader can open `name` by its normal rules.
fn dlopen_finds(name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: valid C string; the handle is closed at once. Loading runs the library's static
    // initialisers, which for an ADIOS2 plugin is what ADIOS2 would do next anyway.
    unsafe {
        let h = libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if h.is_null() {
            return false;
        }
        libc::dlclose(h);
    }
    true
}

fn check_library(lib: &str) -> Result<()> {
    let search = std::env::var("ADIOS2_PLUGIN_PATH").unwrap_or_default();
    let names = candidates(lib);
    let found = if search.is_empty() {
        names.iter().any(|n| dlopen_finds(n))
    } else {
        search
            .split(':')
            .filter(|d| !d.is_empty())
            .any(|d| names.iter().any(|n| Path::new(d).join(n).is_file()))
    };
    if found {
        return Ok(());
    }
    Err(AdiosError::PluginNotFound {
        library: lib.to_string(),
        searched: if search.is_empty() {
            "the dynamic loader's default paths (ADIOS2_PLUGIN_PATH is not set)".into()
        } else {
            format!("ADIOS2_PLUGIN_PATH={search}")
        },
    })
}

pub(super) fn check_config(path: &Path) -> Result<Checked> {
    let err = |reason: String| AdiosError::Config {
        path: path.display().to_string(),
        reason,
    };
    // ADIOS2's own configurations are a few KB; 16 MiB leaves room for generated ones.
    let xml = crate::base::read_small_file(path, 16 << 20, "an ADIOS2 configuration")
        .map_err(|e| err(e.to_string()))?;
    let xml = String::from_utf8(xml).map_err(|e| err(e.to_string()))?;
    let mut checked = Checked::default();
    let mut libs_seen = HashSet::new();
    for op in plugin_operations(&xml).map_err(err)? {
        if let Some(lib) = param(&op, "PluginLibrary") {
            if libs_seen.insert(lib.to_string()) {
                check_library(lib)?;
            }
        }
        if !param(&op, "PluginName").is_some_and(|n| n.eq_ignore_ascii_case("residuum")) {
            continue;
        }
        let config =
            crate::Config::from_pairs(op.params.iter().map(|(k, v)| (k, v))).map_err(|source| {
                AdiosError::Operator {
                    variable: op
                        .variable
                        .clone()
                        .unwrap_or_else(|| "(operator definition)".into()),
                    source,
                }
            })?;
        if let (Some(io), Some(var)) = (op.io, op.variable) {
            let vars = checked.residuum_vars.entry(io).or_default();
            vars.insert(var, config.fill);
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plugin_operations_with_their_io_and_variable() {
        let xml = r#"<adios-config>
          <operator name="op" type="plugin"><parameter key="PluginLibrary" value="a_plugin"/></operator>
          <io name="w"><variable name="U">
            <operation type="Plugin"><parameter key="pluginlibrary" value="b_plugin"/>
            <parameter key="mode" value="lossless"/></operation>
          </variable>
          <variable name="V"><operation type="zfp"><parameter key="accuracy" value="1"/></operation></variable>
          </io></adios-config>"#;
        let ops = plugin_operations(xml).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(
            (ops[0].io.as_deref(), ops[0].variable.as_deref()),
            (None, None)
        );
        assert_eq!(param(&ops[0], "PluginLibrary"), Some("a_plugin"));
        assert_eq!(
            (ops[1].io.as_deref(), ops[1].variable.as_deref()),
            (Some("w"), Some("U"))
        );
        assert_eq!(param(&ops[1], "PluginLibrary"), Some("b_plugin"));
        assert!(plugin_operations("<adios-config>").is_err());
    }

    #[test]
    fn a_configuration_that_is_no_file_is_refused_unread() {
        // /dev/zero was read until memory ran out; a directory or a pipe is no configuration.
        for path in ["/dev/zero", "/"] {
            let e = check_config(Path::new(path)).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{path}: {e}");
        }
    }
}
