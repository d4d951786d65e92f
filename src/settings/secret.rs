//! Secrets: where they come from (`*_env` or `*_file`, never inline) and a holder that never
//! prints its value.
//!
//! `config` (and each adapter's own section) records a [`SecretSource`] per secret; the shell resolves it into a [`Secret`] when
//! it builds the adapters, so `check-config` works on a machine that does not hold the secrets.

use std::fmt;
use std::path::PathBuf;

/// Where a secret is read from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// Resolves an optional secret named by config key `key`; the error names the key.
///
/// # Errors
/// `"<key>: <why>"` when the secret is configured and cannot be read.
pub fn resolve_optional(
    source: Option<&SecretSource>,
    key: &'static str,
) -> Result<Option<Secret>, KeyedSecretError> {
    source
        .map(|s| {
            s.resolve()
                .map_err(|source| KeyedSecretError { key, source })
        })
        .transpose()
}

/// A [`SecretError`] with the config key whose secret it is (`mqtt.password`).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {source}")]
pub struct KeyedSecretError {
    pub key: &'static str,
    pub source: SecretError,
}

impl SecretSource {
    /// Reads the secret. A file's trailing newline is dropped, as editors add one.
    ///
    /// # Errors
    /// [`SecretError`] naming the variable or file; never the value.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env(name) => std::env::var(name)
                .map(Secret)
                .map_err(|_| SecretError::Unset(name.clone())),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|source| SecretError::Unreadable {
                    path: path.clone(),
                    source,
                }),
        }
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A secret value. `Debug` and `Display` print `***`, so it can sit in any struct that is
/// logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to read the value; call it at the point of use.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn file_secret_drops_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(SecretSource::File(path).resolve().unwrap().expose(), "abc");
        let missing = SecretSource::Env("RIVERWATCH_TEST_UNSET_VARIABLE".into()).resolve();
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("RIVERWATCH_TEST_UNSET_VARIABLE"));
    }
}
