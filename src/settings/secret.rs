//! Secrets: where they come from (`*_env` or `*_file`, never inline) and a holder that never
//! prints its value.
//!
//! `config` (and each adapter's own section) records a [`SecretSource`] per secret; the shell resolves it into a [`Secret`] when
//! it builds the adapters, so `check-config` works on a machine that does not hold the secrets.
//!
//! Order of lookup: systemd credentials first — when `$CREDENTIALS_DIRECTORY` is set (a unit's
//! `LoadCredential=`) and holds a file named after the `*_env` variable
//! (`$CREDENTIALS_DIRECTORY/RIVERWATCH_MQTT_PASSWORD`) or after the `*_file` path's file name,
//! that file is the secret — then the `*_file` path or the `*_env` variable itself. So the
//! service's dynamic user reads root-owned secrets through systemd, while `check-config` run
//! from a shell still finds the variable or file. An empty secret (after a file's trailing
//! newline is dropped) is refused: an unset password written as `X=` is a mistake, not a
//! password. See <https://systemd.io/CREDENTIALS/>.

use std::fmt;
use std::path::{Path, PathBuf};

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
    /// Reads the secret: from `$CREDENTIALS_DIRECTORY` when it holds this secret's
    /// credential, else from the variable or file (see the module docs). A file's trailing
    /// newline is dropped, as editors add one.
    ///
    /// # Errors
    /// [`SecretError`] naming the variable or file; never the value.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        self.resolve_with(credentials.as_deref())
    }

    /// [`SecretSource::resolve`] with the credentials directory given (`None`: not under
    /// systemd, or no `LoadCredential=`).
    ///
    /// # Errors
    /// [`SecretError`] naming the variable or file; never the value.
    pub fn resolve_with(&self, credentials: Option<&Path>) -> Result<Secret, SecretError> {
        if let Some(path) = credentials
            .filter(|dir| !dir.as_os_str().is_empty())
            .and_then(|dir| self.credential_name().map(|name| dir.join(name)))
        {
            match std::fs::read_to_string(&path) {
                Ok(text) => return file_secret(text, path),
                // Not loaded for this secret: fall back to the variable or file.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(SecretError::Unreadable { path, source }),
            }
        }
        match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(SecretError::EmptyVariable(name.clone())),
                Ok(v) => Ok(Secret(v)),
                Err(_) => Err(SecretError::Unset(name.clone())),
            },
            SecretSource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => file_secret(text, path.clone()),
                Err(source) => Err(SecretError::Unreadable {
                    path: path.clone(),
                    source,
                }),
            },
        }
    }

    /// The credential's name under `$CREDENTIALS_DIRECTORY`: the variable's name, or the
    /// file's name. `None` when it could not be a plain file name there.
    fn credential_name(&self) -> Option<&std::ffi::OsStr> {
        match self {
            SecretSource::Env(name) => Some(std::ffi::OsStr::new(name))
                .filter(|n| !name.is_empty() && !name.contains('/') && *n != "." && *n != ".."),
            SecretSource::File(path) => path.file_name(),
        }
    }
}

/// A secret read from a file (the configured one or a credential), its trailing newline
/// dropped; an empty one is refused.
fn file_secret(text: String, path: PathBuf) -> Result<Secret, SecretError> {
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        Err(SecretError::EmptyFile(path))
    } else {
        Ok(Secret(value.to_string()))
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("environment variable {0} is empty")]
    EmptyVariable(String),
    #[error("secret file {} is empty", .0.display())]
    EmptyFile(PathBuf),
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

    /// One case of the lookup order: what the credentials folder holds, what the configured
    /// file holds, and the outcome (`Ok(value)` or a fragment of the error).
    struct Case {
        source: &'static str,
        credential: Option<&'static str>,
        file: Option<&'static str>,
        want: Result<&'static str, &'static str>,
    }

    #[test]
    fn credentials_come_first_then_the_file_or_variable_and_empty_is_refused() {
        // Variables of this process are shared by every test thread, so each name is its own.
        std::env::set_var("RIVERWATCH_TEST_SECRET_SET", "from-env");
        std::env::set_var("RIVERWATCH_TEST_SECRET_EMPTY", "");
        let cases = [
            Case {
                source: "env:RIVERWATCH_TEST_SECRET_SET",
                credential: Some("from-credential\n"),
                file: None,
                want: Ok("from-credential"),
            },
            Case {
                source: "env:RIVERWATCH_TEST_SECRET_SET",
                credential: None,
                file: None,
                want: Ok("from-env"),
            },
            Case {
                source: "env:RIVERWATCH_TEST_SECRET_EMPTY",
                credential: None,
                file: None,
                want: Err("RIVERWATCH_TEST_SECRET_EMPTY is empty"),
            },
            Case {
                source: "env:RIVERWATCH_TEST_SECRET_EMPTY",
                credential: Some("x"),
                file: None,
                want: Ok("x"),
            },
            Case {
                source: "env:RIVERWATCH_TEST_SECRET_NEVER_SET",
                credential: None,
                file: None,
                want: Err("RIVERWATCH_TEST_SECRET_NEVER_SET is not set"),
            },
            Case {
                source: "env:RIVERWATCH_TEST_SECRET_NEVER_SET",
                credential: Some("\n"),
                file: None,
                want: Err("is empty"),
            },
            Case {
                source: "file:token",
                credential: Some("from-credential"),
                file: Some("from-file"),
                want: Ok("from-credential"),
            },
            Case {
                source: "file:token",
                credential: None,
                file: Some("from-file\r\n"),
                want: Ok("from-file"),
            },
            Case {
                source: "file:token",
                credential: None,
                file: Some("\n"),
                want: Err("is empty"),
            },
            Case {
                source: "file:token",
                credential: None,
                file: None,
                want: Err("cannot read secret file"),
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let creds = dir.path().join("credentials");
            std::fs::create_dir(&creds).unwrap();
            let secrets = dir.path().join("etc");
            std::fs::create_dir(&secrets).unwrap();
            let (kind, name) = c.source.split_once(':').unwrap();
            let source = match kind {
                "env" => SecretSource::Env(name.into()),
                _ => SecretSource::File(secrets.join(name)),
            };
            if let Some(text) = c.credential {
                std::fs::write(creds.join(name), text).unwrap();
            }
            if let Some(text) = c.file {
                std::fs::write(secrets.join(name), text).unwrap();
            }
            let got = source.resolve_with(Some(&creds));
            match (c.want, got) {
                (Ok(want), Ok(s)) => assert_eq!(s.expose(), want, "case {i}"),
                (Err(want), Err(e)) => {
                    assert!(e.to_string().contains(want), "case {i}: {e}")
                }
                (want, got) => panic!("case {i}: want {want:?}, got {got:?}"),
            }
        }
        // Without a credentials folder the variable is read directly.
        let source = SecretSource::Env("RIVERWATCH_TEST_SECRET_SET".into());
        assert_eq!(source.resolve_with(None).unwrap().expose(), "from-env");
    }
}
