//! Checks, before ADIOS2 does, that the plugin libraries an XML configuration names can be found.
//! ADIOS2 creates variable operations inside functions that may not throw, so a missing plugin
//! would abort the process there instead of returning an error.

use super::error::{AdiosError, Result};
use std::ffi::CString;
use std::path::Path;

/// The `PluginLibrary` values of plugin operators and operations in `config`.
fn plugin_libraries(xml: &str) -> std::result::Result<Vec<String>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let mut libs = Vec::new();
    for node in doc.descendants().filter(|n| {
        matches!(n.tag_name().name(), "operator" | "operation")
            && n.attribute("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("plugin"))
    }) {
        for p in node.children().filter(|c| c.has_tag_name("parameter")) {
            if p.attribute("key")
                .is_some_and(|k| k.eq_ignore_ascii_case("pluginlibrary"))
            {
                if let Some(v) = p.attribute("value") {
                    if !libs.iter().any(|l| l == v) {
                        libs.push(v.to_string());
                    }
                }
            }
        }
    }
    Ok(libs)
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

pub(super) fn check_config(path: &Path) -> Result<()> {
    let err = |reason: String| AdiosError::Config {
        path: path.display().to_string(),
        reason,
    };
    let xml = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let libs = plugin_libraries(&xml).map_err(err)?;
    let search = std::env::var("ADIOS2_PLUGIN_PATH").unwrap_or_default();
    for lib in libs {
        let names = candidates(&lib);
        let found = if search.is_empty() {
            names.iter().any(|n| dlopen_finds(n))
        } else {
            search
                .split(':')
                .filter(|d| !d.is_empty())
                .any(|d| names.iter().any(|n| Path::new(d).join(n).is_file()))
        };
        if !found {
            return Err(AdiosError::PluginNotFound {
                library: lib,
                searched: if search.is_empty() {
                    "the dynamic loader's default paths (ADIOS2_PLUGIN_PATH is not set)".into()
                } else {
                    format!("ADIOS2_PLUGIN_PATH={search}")
                },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plugin_libraries_in_operations_and_operators() {
        let xml = r#"<adios-config>
          <operator name="op" type="plugin"><parameter key="PluginLibrary" value="a_plugin"/></operator>
          <io name="w"><variable name="U">
            <operation type="Plugin"><parameter key="pluginlibrary" value="b_plugin"/>
            <parameter key="mode" value="lossless"/></operation>
          </variable>
          <variable name="V"><operation type="zfp"><parameter key="PluginLibrary" value="no"/></operation></variable>
          </io></adios-config>"#;
        assert_eq!(plugin_libraries(xml).unwrap(), ["a_plugin", "b_plugin"]);
        assert!(plugin_libraries("<adios-config>").is_err());
    }
}
