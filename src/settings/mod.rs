//! What every config section is built from: the problem list, secret references
//! ([`secret`]), units ([`units`]) and the field parsers several sections share (durations,
//! sizes, secrets, URLs).
//!
//! Fed by `config` and by the adapters that own their sections (`ingest::mqtt::config`,
//! `store::influx::config`, `notify::email::config`, `notify::sms::config`); feeds nothing.
//! A leaf: it imports nothing from the crate, so an adapter can validate its own section
//! without importing `config`, which imports the adapters to assemble the whole file — that
//! would be a cycle.

pub mod secret;
pub mod units;

use secret::SecretSource;
use std::path::Path;
use std::time::Duration;

/// One thing wrong with the file, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// Collects problems while validation goes on; shown as `key: message` parts joined by `; `
/// when a single field's problems are the error (a command-line option). The second list
/// holds the keys whose value could not be read at all (a wrong type): later checks of such a
/// key, which see only a placeholder, add nothing.
#[derive(Debug, Default)]
pub struct Problems(pub(crate) Vec<Problem>, pub(crate) Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Problems {
    /// Records one problem under its key path (`mqtt.port`, `station[3].id`).
    /// Problems of a key at or under a broken one (see [`Problems::add_broken`]) are dropped:
    /// they would be about a placeholder, not the operator's value.
    pub fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        if self.is_broken(&key) {
            return;
        }
        self.0.push(Problem {
            key,
            message: message.into(),
        });
    }

    /// Records that `key`'s value could not be read (wrong type, missing, unknown), with why;
    /// nothing more is said about it or the keys under it.
    pub fn add_broken(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        self.add(key.clone(), message);
        self.1.push(key);
    }

    /// Whether `key` is, or lies under, a key recorded by [`Problems::add_broken`].
    pub fn is_broken(&self, key: &str) -> bool {
        self.1.iter().any(|b| {
            key.strip_prefix(b.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}

/// The secret `key` names through `<key>_env` (a variable's name) or `<key>_file` (a path,
/// resolved against `base`); `None` when neither is set or the pair is wrong (recorded).
pub fn secret_source(
    env: Option<String>,
    file: Option<String>,
    key: &str,
    base: &Path,
    p: &mut Problems,
) -> Option<SecretSource> {
    match (env, file) {
        (Some(_), Some(_)) => {
            p.add(key, format!("set either {key}_env or {key}_file, not both"));
            None
        }
        (Some(var), None) if var.is_empty() => {
            p.add(format!("{key}_env"), "must name an environment variable");
            None
        }
        (Some(var), None) => Some(SecretSource::Env(var)),
        (None, Some(path)) => Some(SecretSource::File(base.join(path))),
        (None, None) => None,
    }
}

/// A duration field (`"30s"`, `"1h30m"`; see [`units`]), `default` when absent; zero and
/// malformed values are recorded and give [`Duration::ZERO`].
pub fn duration(text: Option<&str>, default: &str, key: &str, p: &mut Problems) -> Duration {
    let text = text.unwrap_or(default);
    match units::parse_duration(text) {
        Ok(d) if d.is_zero() => {
            p.add(key, "must be longer than zero");
            Duration::ZERO
        }
        Ok(d) => d,
        Err(e) => {
            p.add(key, e.to_string());
            Duration::ZERO
        }
    }
}

/// A size field in bytes (`"256KiB"`, `"2GiB"`; see [`units`]), `default` when absent; a
/// malformed value is recorded and gives 0.
pub fn size(text: Option<&str>, default: &str, key: &str, p: &mut Problems) -> u64 {
    units::parse_size(text.unwrap_or(default)).unwrap_or_else(|e| {
        p.add(key, e.to_string());
        0
    })
}

/// Host and port of a URL whose scheme is one of `schemes` (with its default port), and
/// the scheme matched: `(host, port, scheme)`, IPv6 hosts without brackets. `None` when the
/// text is not such a URL (recorded under `key`).
pub fn host_port(
    text: &str,
    schemes: &[(&str, u16)],
    key: &str,
    p: &mut Problems,
) -> Option<(String, u16, String)> {
    let url = match reqwest::Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            p.add(key, format!("{text:?} is not a URL: {e}"));
            return None;
        }
    };
    let Some(&(scheme, default_port)) = schemes.iter().find(|(s, _)| *s == url.scheme()) else {
        let names: Vec<_> = schemes.iter().map(|(s, _)| format!("{s}://")).collect();
        p.add(
            key,
            format!("{text:?}: scheme must be one of {}", names.join(", ")),
        );
        return None;
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        p.add(key, format!("{text:?} has no host"));
        return None;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Some((host, url.port().unwrap_or(default_port), scheme.to_string()))
}
