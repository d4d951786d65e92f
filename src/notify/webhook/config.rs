//! A `[[bureau]] webhook = [{ url = "…", secret_env = "…" }]` entry: one endpoint of the
//! bureau's own platform that receives signed JSON. The URL may be plain (`url`) or a secret
//! (`url_env`/`url_file`, for a URL with a token in it); the signing secret is required
//! (`secret_env`/`secret_file`).
//!
//! Fed by `config`, which deserializes each entry into [`RawWebhook`] and calls
//! [`validate`]; feeds the webhook channel ([`super::from_config`]).

use crate::settings::secret::SecretSource;
use crate::settings::{host_port, secret_source, Problems};
use serde::Deserialize;
use std::path::Path;

/// Where an endpoint's URL comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum UrlSource {
    Plain(String),
    Secret(SecretSource),
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    /// `guangzhou.webhook[0]`: what outbox files and logs name.
    pub label: String,
    pub url: UrlSource,
    /// The HMAC-SHA256 key the body is signed with.
    pub secret: SecretSource,
}

/// The entry as written; `secret` is accepted only to say why it is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<String>,
    secret: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
}

/// Validates one entry at config key `at` (`bureau[0].webhook[0]`). `None` after recording
/// the problem.
pub fn validate(
    raw: &RawWebhook,
    label: String,
    at: &str,
    base: &Path,
    p: &mut Problems,
) -> Option<WebhookTarget> {
    if raw.secret.is_some() {
        p.add(
            format!("{at}.secret"),
            "secrets are never written in the config file: use secret_env (a variable's name) or secret_file (a path)",
        );
    }
    let url_key = format!("{at}.url");
    let secret_url = secret_source(raw.url_env.clone(), raw.url_file.clone(), &url_key, base, p);
    let url = match (&raw.url, secret_url) {
        (Some(_), Some(_)) => {
            p.add(&url_key, "set url, url_env or url_file, one of them");
            None
        }
        (Some(u), None) => {
            host_port(u, &[("http", 80), ("https", 443)], &url_key, p);
            Some(UrlSource::Plain(u.clone()))
        }
        (None, Some(s)) => Some(UrlSource::Secret(s)),
        (None, None) => {
            p.add(at, "needs url (or url_env, url_file)");
            None
        }
    };
    let secret = secret_source(
        raw.secret_env.clone(),
        raw.secret_file.clone(),
        &format!("{at}.secret"),
        base,
        p,
    );
    if secret.is_none() && raw.secret.is_none() {
        p.add(
            at,
            "needs secret_env or secret_file: every delivery is signed (HMAC-SHA256)",
        );
    }
    Some(WebhookTarget {
        label,
        url: url?,
        secret: secret?,
    })
}
