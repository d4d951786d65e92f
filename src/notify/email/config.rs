//! The `[smtp]` section: the relay URL (and how it is secured), the sender, credentials, a
//! private CA and the timeout, validated into [`SmtpConfig`].
//!
//! Fed by `config`, which deserializes the table into [`RawSmtp`] and calls [`validate`];
//! feeds the email channel ([`super::EmailSink::smtp`]).

use crate::settings::secret::SecretSource;
use crate::settings::{duration, host_port, secret_source, Problems};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://` without options: no TLS (a local relay).
    Plain,
    /// `smtp://...?tls=starttls`: upgrade with STARTTLS, refuse to send without it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

/// The email channel's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    /// CA certificate to trust for a relay with a private certificate.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// The `[smtp]` table as written; `url` and `from` are required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    url: String,
    from: String,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    ca_file: Option<String>,
    timeout: Option<String>,
}

/// Validates `[smtp]`, every problem recorded under `smtp.<key>`; `None` when the URL is
/// not an `smtp://` or `smtps://` URL. Relative paths are resolved against `base`.
pub fn validate(raw: RawSmtp, base: &Path, p: &mut Problems) -> Option<SmtpConfig> {
    let (host, port, scheme) = host_port(&raw.url, &[("smtp", 25), ("smtps", 465)], "smtp.url", p)?;
    let query = reqwest::Url::parse(&raw.url)
        .ok()
        .and_then(|u| u.query().map(str::to_string));
    let security = match (scheme.as_str(), query.as_deref()) {
        ("smtps", None) => SmtpSecurity::Tls,
        ("smtp", None) => SmtpSecurity::Plain,
        ("smtp", Some("tls=starttls")) => SmtpSecurity::StartTls,
        (_, Some(q)) => {
            p.add(
                "smtp.url",
                format!("unknown option {q:?} (only smtp://...?tls=starttls)"),
            );
            SmtpSecurity::Plain
        }
        _ => SmtpSecurity::Plain,
    };
    if raw.from.parse::<lettre::message::Mailbox>().is_err() {
        p.add(
            "smtp.from",
            format!(
                "{:?} is not a mailbox like \"riverwatch <alerts@example.org>\"",
                raw.from
            ),
        );
    }
    let password = secret_source(
        raw.password_env,
        raw.password_file,
        "smtp.password",
        base,
        p,
    );
    if password.is_some() != raw.username.is_some() {
        p.add(
            "smtp.username",
            "username and a password (password_env or password_file) go together",
        );
    }
    Some(SmtpConfig {
        host,
        port,
        security,
        from: raw.from,
        username: raw.username,
        password,
        ca_file: raw.ca_file.map(|f| base.join(f)),
        timeout: duration(raw.timeout.as_deref(), "30s", "smtp.timeout", p),
    })
}
