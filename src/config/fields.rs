//! Reading one TOML table into its raw struct field by field, and saying what a wrong field
//! should hold in an operator's words.
//!
//! Fed by `config` with each top-level table and each `[[bureau]]`, `[[river]]` and
//! `[[station]]` entry; feeds the raw structs back to it. serde stops at the first wrong field
//! and names Rust types (`expected i64`); read that way, one wrong field would drop its whole
//! station, and every key that refers to the station would then fail too ("… is not a
//! configured station"). So [`lenient`] locates the failing field (`serde_path_to_error`),
//! records it once with the type as an operator would say it ("an integer 1–5 (a GB 3838
//! class)", "a duration like \"30s\""), puts a placeholder of the right type in its place (or
//! drops an unknown key) and reads the table again. The field's key is recorded as broken
//! ([`Problems::add_broken`]), so the placeholder's own value draws no further problem.

use crate::settings::Problems;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

/// The most fields fixed in one table before giving up on it: every round fixes one field, so
/// only a pathological file reaches it.
const MAX_ROUNDS: usize = 200;

/// Deserializes `value` into `T`, recording each wrong, missing or unknown field under `at`
/// (`station[1].target_class`) and reading the rest. `None` only when the value is not a
/// table at all, or cannot be mended (recorded under `at`).
pub(super) fn lenient<T: DeserializeOwned>(
    mut value: toml::Value,
    at: &str,
    p: &mut Problems,
) -> Option<T> {
    if !value.is_table() {
        p.add_broken(
            at,
            format!("must be a table, not {}", found(value.type_str())),
        );
        return None;
    }
    for _ in 0..MAX_ROUNDS {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let mut path: Vec<Segment> = err.path().iter().cloned().collect();
        let inner = err.into_inner();
        // serde_path_to_error does not see into every value toml reads (an `Option` field
        // fails inside toml's own access); toml then names the keys itself, `in `a.b``.
        if path.is_empty() {
            let shown = inner.to_string();
            if let Some(keys) = shown
                .lines()
                .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
            {
                path = keys
                    .split('.')
                    .map(|k| Segment::Map { key: k.to_string() })
                    .collect();
            }
        }
        let message = inner.message().to_string();
        if !mend(&mut value, &path, &message, at, p) {
            p.add_broken(at, message.split_whitespace().collect::<Vec<_>>().join(" "));
            return None;
        }
    }
    p.add_broken(at, "too many wrong fields to read this table");
    None
}

/// Records the problem serde found at `path` and changes `value` so the next read passes
/// that field. `false` when it cannot (the problem is then recorded by the caller).
fn mend(
    value: &mut toml::Value,
    path: &[Segment],
    message: &str,
    at: &str,
    p: &mut Problems,
) -> bool {
    if let Some(field) = between(message, "missing field `", "`") {
        let Some(container) = walk(value, path).and_then(|v| v.as_table_mut()) else {
            return false;
        };
        let key = format!("{}.{field}", key_of(at, path));
        if p.is_broken(&key) {
            // A placeholder we put there for a wrong field: nothing more to say, but the
            // field may not be optional; leave the table to be dropped.
            return false;
        }
        p.add_broken(&key, "required");
        // A string is the commonest required type; a wrong guess is mended next round.
        container.insert(field.to_string(), toml::Value::String(String::new()));
        return true;
    }
    if let Some(field) = between(message, "unknown field `", "`") {
        // The path may or may not end at the unknown key itself.
        let container_path = match path.last() {
            Some(Segment::Map { key }) if key == field => &path[..path.len() - 1],
            _ => path,
        };
        let Some(container) = walk(value, container_path).and_then(|v| v.as_table_mut()) else {
            return false;
        };
        let known = message
            .split_once("expected ")
            .map(|(_, k)| format!(" (known: {})", k.replace("one of ", "").replace('`', "")))
            .unwrap_or_default();
        p.add_broken(
            format!("{}.{field}", key_of(at, container_path)),
            format!("unknown key{known}"),
        );
        container.remove(field);
        return true;
    }
    if path.is_empty() {
        return false;
    }
    let expected = message
        .rsplit_once(", expected ")
        .map(|(_, e)| e)
        .unwrap_or("");
    let want = placeholder(expected, message);
    let mut path = path.to_vec();
    // toml names a list's key but not the element: find the first element of another type.
    if let (Some(want), Some(toml::Value::Array(items))) = (&want, walk(value, &path)) {
        if !want.is_array() {
            if let Some(i) = items.iter().position(|v| v.type_str() != want.type_str()) {
                path.push(Segment::Seq { index: i });
            }
        }
    }
    let key = key_of(at, &path);
    let Some(slot) = walk(value, &path) else {
        return false;
    };
    let found_text = found(slot.type_str());
    let shown = shown_value(slot);
    p.add_broken(
        &key,
        format!(
            "must be {}, not {found_text}{shown}",
            operator_type(&key, expected)
        ),
    );
    match want {
        Some(v) => *slot = v,
        None => return false,
    }
    true
}

/// The text between `start` and the next `end` in `s`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// The value at `path` inside `value`.
fn walk<'a>(value: &'a mut toml::Value, path: &[Segment]) -> Option<&'a mut toml::Value> {
    let mut at = value;
    for seg in path {
        at = match seg {
            Segment::Map { key } => at.as_table_mut()?.get_mut(key)?,
            Segment::Seq { index } => at.as_array_mut()?.get_mut(*index)?,
            // Option, newtype and enum wrappers add no level in TOML.
            _ => at,
        };
    }
    Some(at)
}

/// The problem key of `path` under `at`: `station[1].qc.ph.fail_span`, `bureau[0].email[2]`.
fn key_of(at: &str, path: &[Segment]) -> String {
    let mut key = at.to_string();
    for seg in path {
        match seg {
            Segment::Map { key: k } => {
                key.push('.');
                key.push_str(k);
            }
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            _ => {}
        }
    }
    key
}

/// The key without list indices and with the parameter of a per-parameter table generalised:
/// `station[1].qc.ph.spike_test` → `station.qc.*.spike_test`.
pub(super) fn pattern(key: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Keys written as durations ("30s", "4h"), by their last part.
const DURATIONS: &[&str] = &[
    "cadence",
    "travel_time",
    "timeout",
    "keep_alive",
    "flush_interval",
    "escalate_after",
    "renotify",
    "arrival_tolerance",
    "digest_interval",
    "max_silence",
    "min_span",
    "horizon",
    "max_future_skew",
    "max_age",
    "idle_timeout",
    "frame_timeout",
];

/// The type a key holds, as an operator would say it: first by the key (its meaning),
/// then by serde's `expected` text (its Rust type).
pub(super) fn operator_type(key: &str, expected: &str) -> String {
    let pattern = pattern(key);
    let pattern = pattern.as_str();
    let last = pattern.rsplit('.').next().unwrap_or(pattern);
    // An element of a list (`email[1]`) is judged by its own type, not the list's.
    let element = key.ends_with(']');
    let by_key = match (pattern, last) {
        _ if element => None,
        (_, "target_class") => Some("an integer 1–5 (a GB 3838 class)"),
        ("trend.window" | "rate.window", _) => Some("a duration like \"30s\""),
        (_, l) if DURATIONS.contains(&l) => Some("a duration like \"30s\""),
        (_, "max_size" | "max_payload") => Some("a size like \"2GiB\""),
        (_, "quiet_hours") => Some("a time range like \"22:00-07:00\" (UTC+8)"),
        (_, "email" | "sms" | "evaluate") => Some("a list of strings"),
        (_, "fail_span" | "suspect_span") => Some("a list of two numbers like [0.0, 14.0]"),
        (_, "precision" | "detection_limit") => Some("a table of parameter keys and numbers"),
        (p, _) if p.starts_with("sms.headers.") => {
            Some("a string, or a table like { value_env = \"NAME\" } or { value_file = \"PATH\" }")
        }
        ("sms.success.equals", _) => Some("a string or a number (the provider's success value)"),
        (p, _) if p.contains(".hj212_codes.") => {
            Some("a parameter key like \"se\" or a table like { param = \"se\", unit = \"ug/L\" }")
        }
        _ => None,
    };
    if let Some(kind) = by_key {
        return kind.to_string();
    }
    match expected.split_whitespace().next().unwrap_or("") {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "an integer".into()
        }
        "f32" | "f64" => "a number".into(),
        "a" | "an" => match expected {
            "a boolean" => "true or false".into(),
            "a string" | "a borrowed string" => "a string".into(),
            "a sequence" => "a list".into(),
            "a map" => "a table".into(),
            e if e.starts_with("an array of length") => {
                format!("a list of {}", e.trim_start_matches("an array of length "))
            }
            e => e.into(),
        },
        "struct" => "a table".into(),
        _ if expected.is_empty() => "another kind of value (see the README for this key)".into(),
        _ => expected.into(),
    }
}

/// A TOML value's kind, as the operator wrote it.
fn found(type_str: &str) -> &'static str {
    match type_str {
        "string" => "a string",
        "integer" => "an integer",
        "float" => "a number",
        "boolean" => "true or false",
        "datetime" => "a date",
        "array" => "a list",
        "table" => "a table",
        _ => "another type",
    }
}

/// A short rendering of a scalar value (`5`, `"two"`), for the message; nothing for lists
/// and tables, and nothing long.
fn shown_value(v: &toml::Value) -> String {
    let text = match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => v.to_string(),
        _ => return String::new(),
    };
    if text.chars().count() > 40 {
        String::new()
    } else {
        format!(" {text}")
    }
}

/// A value of the type serde expected, to read the rest of the table past a wrong field.
fn placeholder(expected: &str, message: &str) -> Option<toml::Value> {
    use toml::Value;
    if message.contains("untagged enum") {
        return Some(Value::String(String::new()));
    }
    let first = expected.split_whitespace().next().unwrap_or("");
    Some(match first {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            Value::Integer(0)
        }
        "f32" | "f64" => Value::Float(0.0),
        "struct" => Value::Table(Default::default()),
        _ => match expected {
            "a boolean" => Value::Boolean(false),
            "a string" | "a borrowed string" => Value::String(String::new()),
            "a sequence" => Value::Array(Vec::new()),
            "a map" => Value::Table(Default::default()),
            e if e.starts_with("an array of length") => {
                let n: usize = e.trim_start_matches("an array of length ").parse().ok()?;
                Value::Array(vec![Value::Float(0.0); n])
            }
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Entry {
        id: String,
        target_class: i64,
        cadence: Option<String>,
        boundary: Option<bool>,
        email: Option<Vec<String>>,
        hysteresis: Option<f64>,
        fail_span: Option<[f64; 2]>,
    }

    fn read(text: &str) -> (Option<Entry>, Vec<String>) {
        let value: toml::Value = toml::from_str(text).unwrap();
        let mut p = Problems::default();
        let got = lenient::<Entry>(value, "station[1]", &mut p);
        (
            got,
            p.0.iter()
                .map(|x| format!("{}: {}", x.key, x.message))
                .collect(),
        )
    }

    /// Each wrong field, the one problem it draws, and the entry still read.
    #[test]
    fn a_wrong_field_is_named_in_operator_words_and_the_entry_is_kept() {
        let cases = [
            (
                r#"id = "a"
target_class = "two""#,
                r#"station[1].target_class: must be an integer 1–5 (a GB 3838 class), not a string "two""#,
            ),
            (
                "id = \"a\"\ntarget_class = 2\ncadence = 4",
                "station[1].cadence: must be a duration like \"30s\", not an integer 4",
            ),
            (
                "id = \"a\"\ntarget_class = 2\nboundary = \"yes\"",
                "station[1].boundary: must be true or false, not a string \"yes\"",
            ),
            (
                "id = \"a\"\ntarget_class = 2\nemail = \"x@y.org\"",
                "station[1].email: must be a list of strings, not a string \"x@y.org\"",
            ),
            (
                "id = \"a\"\ntarget_class = 2\nemail = [\"x@y.org\", 5]",
                "station[1].email[1]: must be a string, not an integer 5",
            ),
            (
                "id = \"a\"\ntarget_class = 2\nhysteresis = \"high\"",
                "station[1].hysteresis: must be a number, not a string \"high\"",
            ),
            (
                "id = \"a\"\ntarget_class = 2\nfail_span = 3",
                "station[1].fail_span: must be a list of two numbers like [0.0, 14.0], not an integer 3",
            ),
            ("id = 7\ntarget_class = 2", "station[1].id: must be a string, not an integer 7"),
            ("target_class = 2", "station[1].id: required"),
            (
                "id = \"a\"\ntarget_class = 2\ncolour = \"red\"",
                "station[1].colour: unknown key (known: id, target_class, cadence, boundary, email, hysteresis, fail_span)",
            ),
        ];
        for (text, want) in cases {
            let (got, problems) = read(text);
            assert!(got.is_some(), "{text}: entry dropped: {problems:?}");
            assert_eq!(problems, vec![want.to_string()], "{text}");
        }
    }

    #[test]
    fn several_wrong_fields_are_each_named_once() {
        let (got, problems) = read("id = 1\ntarget_class = \"x\"\ncadence = true\nextra = 1");
        assert!(got.is_some());
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn a_non_table_is_refused_whole() {
        let mut p = Problems::default();
        let got = lenient::<Entry>(toml::Value::Integer(3), "station[0]", &mut p);
        assert!(got.is_none());
        assert_eq!(p.0[0].message, "must be a table, not an integer");
    }

    proptest! {
        /// Whatever scalar sits where a duration belongs, the message speaks of a duration
        /// and never of a Rust type.
        #[test]
        fn no_rust_type_reaches_the_operator(n in any::<i64>(), x in -1e9f64..1e9, b in any::<bool>(), pick in 0usize..3) {
            let value = match pick {
                0 => n.to_string(),
                1 => format!("{x:?}"),
                _ => b.to_string(),
            };
            let (got, problems) = read(&format!("id = \"a\"\ntarget_class = {value}\ncadence = {value}"));
            prop_assert!(got.is_some());
            let text = problems.join("\n");
            prop_assert!(text.contains("cadence: must be a duration like \"30s\""), "{}", text);
            for rust in ["i64", "f64", "u32", "Option", "struct ", "sequence"] {
                prop_assert!(!text.contains(rust), "{}", text);
            }
        }
    }

    #[test]
    fn patterns_drop_indices() {
        assert_eq!(
            pattern("station[1].qc.ph.spike_test"),
            "station.qc.ph.spike_test"
        );
        assert_eq!(pattern("bureau[0].email[2]"), "bureau.email");
    }
}
