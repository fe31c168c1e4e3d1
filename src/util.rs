//! Small host-side helpers that several layers share and that know nothing of GPUs or models:
//! atomic file writes, percentiles and `key.path=value` config overrides. They sit at the bottom
//! of the dependency order (with [`crate::error`]), so every layer may use them.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest config text lookahead parses: a config file, a JSON object of settings, one
/// `key=value` assignment: 1 MiB. A whole config is a few kilobytes, and parsing TOML takes
/// about a hundred times a document's size in memory (a 50 MB array took 5.8 GB), so a larger
/// text is refused before it is parsed.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Refuses `len` bytes of config text from `what` (the file, the argument) above
/// [`MAX_CONFIG_BYTES`], naming it and the limit.
pub fn check_config_size(what: &str, len: usize) -> Result<()> {
    if len <= MAX_CONFIG_BYTES {
        return Ok(());
    }
    let why = format!(
        "{len} bytes; a config may have at most {MAX_CONFIG_BYTES} bytes (1 MiB), and a whole one is a few kilobytes"
    );
    Err(Error::config(what, why))
}

/// The text of the config file `path`, refused past [`MAX_CONFIG_BYTES`] before more than that
/// is read (whatever the file is: a pipe, a device, a file still growing).
pub fn read_config_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let (mut file, mut bytes) = (std::fs::File::open(path).map_err(io)?, Vec::new());
    (&mut file).take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    // The file's size where it has one (a pipe's is unknown: what was read).
    let size = file.metadata().map_or(0, |m| m.len() as usize).max(bytes.len());
    check_config_size(&path.display().to_string(), size)?;
    String::from_utf8(bytes).map_err(|e| Error::config(path.display().to_string(), format!("not UTF-8 text: {e}")))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// folder. A crash at any point leaves either the old file or the new one, never a mixture, and
/// a failed write removes its temporary file. The temporary file has an unpredictable name and
/// is created exclusively (`O_EXCL`: it never opens an existing file or follows a symlink), and
/// the rename replaces a symlink at `path` rather than writing through it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir).map_err(io)?;
    tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all()).map_err(io)?;
    // On failure the temporary file is removed when `persist` hands it back and it drops.
    tmp.persist(path).map_err(|e| io(e.error))?;
    // The rename is durable only once the folder's entry is on disk.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Checks, before any work, that a file can be written at `path` (what [`write_atomic`] will
/// need): not a folder, its folder exists, and a file can be created there (an exclusively
/// created probe file with an unpredictable name, removed at once).
pub fn check_writable(path: &Path) -> Result<()> {
    let fail = |reason: String| Error::Io { path: path.display().to_string(), source: std::io::Error::other(reason) };
    if path.is_dir() {
        return Err(fail("is a folder; give a file name".into()));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if dir.exists() && !dir.is_dir() {
        return Err(fail(format!("{} is a file, not a folder", dir.display())));
    }
    if !dir.is_dir() {
        return Err(fail(format!("the folder {} does not exist", dir.display())));
    }
    tempfile::Builder::new()
        .prefix(".lookahead-probe-")
        .tempfile_in(dir)
        .map_err(|e| fail(format!("cannot create files in {}: {e}", dir.display())))?;
    Ok(())
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `values` by the nearest-rank rule on the sorted values
/// (`sorted[round((n − 1)·q)]`); NaN sorts last. `None` for an empty slice.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let i = ((sorted.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// Parses one `key.path=value` assignment. The value is TOML (`500`, `"tsinf"`, `[32, 32]`);
/// a bare word that is not TOML is taken as a string (`propagation=tsinf`).
pub fn parse_assignment(assignment: &str) -> Result<(String, toml::Value)> {
    if assignment.len() > MAX_CONFIG_BYTES {
        let key = assignment.split('=').next().unwrap_or("").trim().chars().take(80).collect::<String>();
        check_config_size(&format!("{key} (an assignment)"), assignment.len())?;
    }
    let (key, value) = assignment
        .split_once('=')
        .ok_or_else(|| Error::config(assignment.trim(), "expected key=value (e.g. planner.population=500)"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(Error::config(assignment.trim(), "the key is empty or has an empty part"));
    }
    let v = value.trim();
    let parsed = match toml::from_str::<toml::Table>(&format!("v = {v}")) {
        Ok(mut t) => t.remove("v").expect("the table was parsed from `v = ...`"),
        // A whole number TOML refuses is out of range, not a word.
        Err(_)
            if !v.is_empty() && v.trim_start_matches(['-', '+']).chars().all(|c| c.is_ascii_digit()) && v.len() > 1 =>
        {
            return Err(Error::config(key, format!("the number {v} is out of range")));
        }
        // A list or table that is not TOML is a mistake, not a word.
        Err(e) if v.starts_with('[') || v.starts_with('{') => {
            let why = e.message().trim().to_string();
            return Err(Error::config(key, format!("{v} is not a TOML list or table ({why})")));
        }
        Err(_) => toml::Value::String(v.to_string()),
    };
    Ok((key.to_string(), parsed))
}

/// Merges `src` into `dst`, accepting only keys present in `schema` (a serialised default of
/// the same config) or listed in `optional` (full key paths of `Option` fields, which
/// serialisation leaves out when unset). `path` prefixes the keys named in errors.
pub fn merge_checked(
    dst: &mut toml::Table,
    src: toml::Table,
    schema: &toml::Table,
    path: &str,
    optional: &[&str],
) -> Result<()> {
    let mut errs = Vec::new();
    merge_into(dst, src, schema, path, optional, &mut errs);
    Error::collect(errs)
}

/// [`merge_checked`]'s walk: every problem is collected, none stops the others.
fn merge_into(
    dst: &mut toml::Table,
    src: toml::Table,
    schema: &toml::Table,
    path: &str,
    optional: &[&str],
    errs: &mut Vec<Error>,
) {
    for (k, v) in src {
        let full = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        match (schema.get(&k), v) {
            (Some(toml::Value::Table(sub_schema)), toml::Value::Table(sub)) => {
                let entry = dst.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match entry.as_table_mut() {
                    Some(t) => merge_into(t, sub, sub_schema, &full, optional, errs),
                    None => errs.push(Error::config(&full, "expected a table")),
                }
            }
            (Some(toml::Value::Table(_)), _) => errs.push(Error::config(&full, "expected a table of settings")),
            // A value of the wrong kind is reported and not merged, so the document stays
            // parseable and its other problems (ranges too) are reported with it.
            (Some(expected), v) => match kind_mismatch(expected, &v) {
                Some(why) => errs.push(Error::config(&full, why)),
                None => {
                    dst.insert(k, v);
                }
            },
            (None, v) if optional.contains(&full.as_str()) => {
                dst.insert(k, v);
            }
            (None, _) => errs.push(Error::config(&full, "unknown key")),
        }
    }
}

/// Why `v` cannot stand where the schema has `expected` (the configs' integers are all
/// unsigned), or None when it can (element types and enum names are left to deserialisation).
fn kind_mismatch(expected: &toml::Value, v: &toml::Value) -> Option<String> {
    use toml::Value as V;
    let shown = || match v {
        V::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    match (expected, v) {
        (V::Integer(_), V::Integer(i)) if *i < 0 => Some(format!("{i} is negative; expected a whole number ≥ 0")),
        (V::Integer(_), V::Integer(_)) | (V::Float(_), V::Float(_) | V::Integer(_)) => None,
        (V::Integer(_), _) => Some(format!("{} is not a whole number", shown())),
        (V::Float(_), _) => Some(format!("{} is not a number", shown())),
        (V::Boolean(_), V::Boolean(_)) | (V::String(_), V::String(_)) | (V::Array(_), V::Array(_)) => None,
        (V::Boolean(_), _) => Some(format!("{} is not true or false", shown())),
        (V::String(_), _) => Some(format!("{} is not a word or a quoted string", shown())),
        (V::Array(_), _) => Some(format!("{} is not a list (e.g. [200, 200])", shown())),
        _ => None,
    }
}

/// Applies `key.path=value` assignments to `table` (see [`parse_assignment`]), checking every
/// key against `schema` and `optional` as [`merge_checked`] does; `path` prefixes the keys
/// named in errors.
pub fn apply_assignments(
    table: &mut toml::Table,
    schema: &toml::Table,
    assignments: &[String],
    path: &str,
    optional: &[&str],
) -> Result<()> {
    // Every assignment is tried: all unknown keys and malformed assignments are reported at once.
    let mut errs = Vec::new();
    for s in assignments {
        let (key, value) = match parse_assignment(s) {
            Ok(kv) => kv,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        let mut nested = toml::Table::new();
        let parts: Vec<&str> = key.split('.').collect();
        let mut cursor = &mut nested;
        for p in &parts[..parts.len() - 1] {
            cursor = cursor
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("inserted as a table just above");
        }
        cursor.insert(parts[parts.len() - 1].to_string(), value);
        match merge_checked(table, nested, schema, path, optional) {
            Ok(()) => {}
            Err(Error::InvalidConfigs(many)) => errs.extend(many),
            Err(e) => errs.push(e),
        }
    }
    Error::collect(errs)
}

/// `base` (a config section named `section`, e.g. `train`) with `key=value` assignments applied
/// one by one (the key may carry the section); an unknown key or a value of the wrong type is a
/// config error naming `section.key`. `optional` lists the section's keys that `base` may leave
/// unset (as `section.key`).
pub fn with_assignments<T>(base: &T, section: &str, optional: &[&str], assignments: &[String]) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let schema = toml::Table::try_from(base).map_err(|e| Error::config(section, e.to_string()))?;
    let mut table = schema.clone();
    let prefix = format!("{section}.");
    // Each assignment is tried on its own and one that fails is left out, so that every problem
    // is reported at once.
    let mut errs = Vec::new();
    for a in assignments {
        let bare = a.trim();
        let bare = bare.strip_prefix(&prefix).unwrap_or(bare);
        let key = match parse_assignment(bare) {
            Ok((key, _)) => key,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        let mut next = table.clone();
        if let Err(e) = apply_assignments(&mut next, &schema, &[bare.to_string()], section, optional) {
            errs.push(e);
            continue;
        }
        match next.clone().try_into::<T>() {
            Ok(_) => table = next,
            Err(e) => errs.push(Error::config(format!("{section}.{key}"), e.message().to_string())),
        }
    }
    Error::collect(errs)?;
    table.try_into().map_err(|e: toml::de::Error| Error::config(section, e.message().to_string()))
}

/// The keys whose values differ between two configs, as `key: a's here, b's there` (with
/// `here`/`there` naming the two), in key order.
pub fn config_differences<T: serde::Serialize>(a: &T, b: &T, here: &str, there: &str) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a), serde_json::to_value(b));
    let (Ok(a), Ok(b)) = (a, b) else { return vec!["the config does not serialise".into()] };
    let mut out = Vec::new();
    json_differences(&a, &b, "", here, there, &mut out);
    out
}

/// The paths below `key` where `a` and `b` differ, walking objects key by key.
fn json_differences(
    a: &serde_json::Value,
    b: &serde_json::Value,
    key: &str,
    here: &str,
    there: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                let (va, vb) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                json_differences(va, vb, &path, here, there, out);
            }
        }
        _ if a != b => out.push(format!("{key}: {a} {here}, {b} {there}")),
        _ => {}
    }
}

/// The `section.key` paths that a config file's table and `key.path=value` assignments name.
fn user_keys(file: Option<&toml::Table>, sets: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = sets.iter().filter_map(|s| parse_assignment(s).ok()).map(|(k, _)| k).collect();
    for (section, value) in file.into_iter().flatten() {
        match value.as_table() {
            Some(t) => keys.extend(t.keys().map(|k| format!("{section}.{k}"))),
            None => keys.push(section.clone()),
        }
    }
    keys
}

/// A config of type `T` resolved in layers: `base` (a preset, serialised to find the known keys),
/// then a TOML file's text, then `key.path=value` assignments, then `validate`. Unknown keys are
/// named with their path, a value of the wrong kind with the key the user wrote, and every
/// problem of every layer is reported at once. `optional` lists the full key paths of `Option`
/// fields that serialisation leaves out when unset. `adjust` sees the merged table and the
/// `section.key` paths the user named (in the file or the assignments) before it is parsed.
/// A file past [`MAX_CONFIG_BYTES`] is refused before it is parsed.
pub fn resolve_layers<T>(
    base: &T,
    file: Option<&str>,
    sets: &[String],
    optional: &[&str],
    adjust: impl Fn(&mut toml::Table, &[String]),
    validate: impl Fn(&T) -> Result<()>,
) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut table = toml::Table::try_from(base).map_err(|e| Error::config("config", e.to_string()))?;
    let schema = table.clone();
    // Every problem is collected: unknown keys and values of the wrong kind are left out of the
    // merge (so the rest still parses), then the ranges of the merged config are checked.
    let mut errs = Vec::new();
    let mut take = |r: Result<()>| match r {
        Ok(()) => {}
        Err(Error::InvalidConfigs(v)) => errs.extend(v),
        Err(e) => errs.push(e),
    };
    let mut named = user_keys(None, sets);
    if let Some(text) = file {
        check_config_size("config file", text.len())?;
        let user: toml::Table = toml::from_str(text).map_err(|e| Error::config("config file", e.to_string()))?;
        named = user_keys(Some(&user), sets);
        take(merge_checked(&mut table, user, &schema, "", optional));
    }
    take(apply_assignments(&mut table, &schema, sets, "", optional));
    adjust(&mut table, &named);
    // The merged document is parsed as text so that a type error has a position, which is turned
    // into the key the user wrote (the merged text's line numbers are nobody's file).
    let text = toml::to_string(&table).map_err(|e| Error::config("config", e.to_string()))?;
    let parsed = toml::from_str::<T>(&text).map_err(|e| {
        let key = e.span().and_then(|s| key_at(&text, s.start)).unwrap_or_else(|| "config".to_string());
        Error::config(key, e.message().to_string())
    });
    match parsed {
        Ok(cfg) => {
            take(validate(&cfg));
            Error::collect(errs).map(|()| cfg)
        }
        Err(e) => {
            errs.push(e);
            Err(if errs.len() == 1 { errs.remove(0) } else { Error::InvalidConfigs(errs) })
        }
    }
}

/// The `section.key` of the line holding byte `offset` of a TOML document written by
/// `toml::to_string` (one `key = value` per line under `[section]` headers).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = before[..line_start]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .map(|l| l.trim().trim_matches(|c| c == '[' || c == ']').to_string());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), Some(3.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 1.0), Some(5.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.0), Some(1.0));
    }

    #[test]
    fn assignments_reject_unknown_keys_with_their_path() {
        let schema: toml::Table = toml::from_str("a = \"ts1\"\n[s]\nb = 2").unwrap();
        let mut t = schema.clone();
        apply_assignments(&mut t, &schema, &["s.b=5".into(), "a=tsinf".into()], "", &[]).unwrap();
        assert_eq!(t["s"]["b"].as_integer(), Some(5));
        assert_eq!(t["a"].as_str(), Some("tsinf"));
        let e = apply_assignments(&mut t, &schema, &["s.c=1".into()], "cfg", &[]).unwrap_err();
        assert!(e.to_string().contains("cfg.s.c: unknown key"), "{e}");
        // A value of the wrong kind is refused, naming the key, and not merged; every problem of
        // the call is reported.
        let e = apply_assignments(&mut t, &schema, &["s.b=many".into(), "s.b=-1".into(), "x=1".into()], "", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.b: \"many\" is not a whole number") && e.contains("negative") && e.contains("x:"), "{e}");
        assert_eq!(t["s"]["b"].as_integer(), Some(5));
        assert!(parse_assignment("novalue").is_err());
        assert!(parse_assignment("a..b=1").is_err());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("lookahead-util-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomic(&dir.join("missing/f.txt"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A symlink where the file goes is replaced, never written through: the file it points to
    /// keeps its bytes (a planted link cannot make a run truncate or overwrite a file elsewhere).
    #[cfg(unix)]
    #[test]
    fn atomic_write_replaces_a_symlink_instead_of_following_it() {
        let dir = std::env::temp_dir().join(format!("lookahead-util-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let elsewhere = dir.join("elsewhere.txt");
        std::fs::write(&elsewhere, b"keep me").unwrap();
        let p = dir.join("metrics.jsonl");
        std::os::unix::fs::symlink(&elsewhere, &p).unwrap();
        // Links planted where a predictable temporary name would go are never opened.
        let planted =
            [format!(".metrics.jsonl.tmp-{}", std::process::id()), format!(".lookahead-probe-{}", std::process::id())];
        for name in &planted {
            std::os::unix::fs::symlink(&elsewhere, dir.join(name)).unwrap();
        }
        write_atomic(&p, b"new").unwrap();
        check_writable(&p).unwrap();
        for name in &planted {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep me");
        assert!(!std::fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        // Two files only: no temporary left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        check_writable(&p).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `v` for a message: plain for ordinary magnitudes, scientific otherwise (`1e300`, not 301
/// digits), and `NaN` / `inf` as Rust writes them.
pub fn short_float(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-3..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod short_float_tests {
    #[test]
    fn large_and_tiny_values_are_written_in_scientific_notation() {
        use super::short_float;
        assert_eq!(short_float(1e300), "1e300");
        assert_eq!(short_float(-2.5e-7), "-2.5e-7");
        assert_eq!(short_float(60.0), "60");
        assert_eq!(short_float(0.25), "0.25");
        assert_eq!(short_float(f64::NAN), "NaN");
    }
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The mean and the population standard deviation of `v` (both NaN for no values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt())
}
