//! Settings from Python: a JSON object (`json.dumps` of a dict) becomes the engine's
//! `key.path=value` assignments, so that it goes through the same checks as `--set` on the
//! command line (lookahead::util): every unknown key and every value of the wrong kind is
//! reported at once, naming its key path.

use lookahead::error::{Error, Result};
use lookahead::util;
use serde_json::Value;

/// Keys of `[planner]` that its defaults leave unset.
pub const PLANNER_OPTIONAL: &[&str] = &["planner.action_lower", "planner.action_upper"];
/// Keys of `[train]` that its defaults leave unset.
pub const TRAIN_OPTIONAL: &[&str] = &["train.clip_grad_norm"];

/// The assignments that the JSON object `json` stands for: nested objects become key paths
/// (`{"planner": {"horizon": 30}}` → `planner.horizon=30`), each value written as TOML, and
/// every key is put under `section.` unless `section` is empty. A value that TOML cannot hold
/// (null, an integer beyond 2^63) is an error naming its key; all are reported at once.
pub fn assignments(json: &str, section: &str) -> Result<Vec<String>> {
    util::check_config_size("config", json.len())?;
    let value: Value = serde_json::from_str(json).map_err(|e| Error::config("config", format!("not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Error::config("config", "expected a JSON object of settings"));
    };
    let (mut out, mut errs) = (Vec::new(), Vec::new());
    for (k, v) in map {
        let key = if section.is_empty() { k } else { format!("{section}.{k}") };
        flatten(key, v, &mut out, &mut errs);
    }
    Error::collect(errs).map(|()| out)
}

/// Appends `key=value` for `v` (or for each entry of an object, under `key.`) to `out`.
fn flatten(key: String, v: Value, out: &mut Vec<String>, errs: &mut Vec<Error>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(format!("{key}.{k}"), v, out, errs);
            }
        }
        Value::Null => errs.push(Error::config(key, "null is not a setting (leave the key out for its default)")),
        v => match toml::Value::try_from(&v) {
            Ok(t) => out.push(format!("{key}={t}")),
            Err(e) => errs.push(Error::config(key, format!("{v} cannot be a setting ({e})"))),
        },
    }
}

/// `base` (the defaults of the config section `section`, e.g. `planner`) with the settings of
/// the JSON object `json` applied, as [`util::with_assignments`] applies `key=value`
/// assignments; `optional` lists the section's keys that `base` may leave unset.
pub fn section<T>(base: &T, section: &str, optional: &[&str], json: Option<&str>) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let sets = json.map(|j| assignments(j, section)).transpose()?.unwrap_or_default();
    util::with_assignments(base, section, optional, &sets)
}

/// A config's TOML text (a resolved config, a run folder's `config.toml`) as a JSON object of
/// the same keys and values, sections as nested objects, for Python to read as a dict; refused
/// past `MAX_CONFIG_BYTES` as every config text is.
#[pyo3::pyfunction]
pub fn config_as_json(config_toml: &str) -> pyo3::PyResult<String> {
    use crate::errors::OrPy;
    util::check_config_size("config", config_toml.len()).py()?;
    let value: toml::Table =
        toml::from_str(config_toml).map_err(|e| Error::config("config", format!("not TOML: {e}"))).py()?;
    serde_json::to_string(&value).map_err(|e| Error::config("config", e.to_string())).py()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_become_key_paths_with_toml_values() {
        let json = r#"{"seed": 3, "planner": {"horizon": 30, "propagation": "tsinf"}, "lr": 0.1}"#;
        let sets = assignments(json, "").unwrap();
        assert!(sets.contains(&"planner.horizon=30".to_string()), "{sets:?}");
        assert!(sets.contains(&"planner.propagation=\"tsinf\"".to_string()), "{sets:?}");
        assert!(sets.contains(&"seed=3".to_string()) && sets.contains(&"lr=0.1".to_string()), "{sets:?}");
        let e = assignments(r#"{"a": null, "b": {"c": 18446744073709551615}}"#, "s").unwrap_err().to_string();
        assert!(e.contains("s.a:") && e.contains("s.b.c:"), "{e}");
        assert_eq!(assignments(r#"{"horizon": 5}"#, "planner").unwrap(), ["planner.horizon=5"]);
        assert!(assignments("[1]", "").is_err() && assignments("{", "").is_err());
    }
}
