//! A `[[bureau]] dingtalk = [{ url_env = "…", secret_env = "…", … }]` entry: one DingTalk (钉钉)
//! custom robot. Its URL carries the access token (a secret, `url_env`/`url_file`); its 加签
//! secret (`SEC…`, `secret_env`/`secret_file`) is optional, as a robot may be secured by
//! keywords or an IP list instead; `keywords` (one of them must appear in every message when
//! the robot is secured so), `at_mobiles` and `at_all` (who is @-mentioned) are plain.
//!
//! Fed by `config`, which deserializes each entry into [`RawDingtalk`] and calls
//! [`validate`]; feeds the DingTalk channel ([`super::from_config`]).

use crate::settings::secret::SecretSource;
use crate::settings::{secret_source, Problems};
use serde::Deserialize;
use std::path::Path;

/// One robot.
#[derive(Debug, Clone, PartialEq)]
pub struct DingtalkRobot {
    /// `guangzhou.dingtalk[0]`: what outbox files and logs name.
    pub label: String,
    /// `https://oapi.dingtalk.com/robot/send?access_token=…`.
    pub url: SecretSource,
    /// The 加签 secret; without it requests go unsigned.
    pub secret: Option<SecretSource>,
    /// The robot's custom keywords: a message holding none of them gets the first one.
    pub keywords: Vec<String>,
    /// Phone numbers @-mentioned in every message.
    pub at_mobiles: Vec<String>,
    /// Whether every message @-mentions the whole group.
    pub at_all: bool,
}

/// The entry as written; `url` and `secret` are accepted only to say why they are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDingtalk {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<String>,
    secret: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    at_mobiles: Vec<String>,
    #[serde(default)]
    at_all: bool,
}

/// Validates one entry at config key `at` (`bureau[0].dingtalk[0]`). `None` after recording
/// the problem.
pub fn validate(
    raw: &RawDingtalk,
    label: String,
    at: &str,
    base: &Path,
    p: &mut Problems,
) -> Option<DingtalkRobot> {
    for (key, given) in [("url", raw.url.is_some()), ("secret", raw.secret.is_some())] {
        if given {
            p.add(
                format!("{at}.{key}"),
                format!("secrets are never written in the config file: use {key}_env (a variable's name) or {key}_file (a path)"),
            );
        }
    }
    let url = secret_source(
        raw.url_env.clone(),
        raw.url_file.clone(),
        &format!("{at}.url"),
        base,
        p,
    );
    if url.is_none() && raw.url.is_none() {
        p.add(at, "needs url_env or url_file (the robot's webhook URL)");
    }
    let secret = secret_source(
        raw.secret_env.clone(),
        raw.secret_file.clone(),
        &format!("{at}.secret"),
        base,
        p,
    );
    for (i, k) in raw.keywords.iter().enumerate() {
        if k.trim().is_empty() {
            p.add(format!("{at}.keywords[{i}]"), "must not be empty");
        }
    }
    for (i, phone) in raw.at_mobiles.iter().enumerate() {
        let digits = phone.strip_prefix('+').unwrap_or(phone);
        if !(5..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            p.add(
                format!("{at}.at_mobiles[{i}]"),
                format!("{phone:?} is not a phone number like \"13800000000\""),
            );
        }
    }
    Some(DingtalkRobot {
        label,
        url: url?,
        secret,
        keywords: raw.keywords.clone(),
        at_mobiles: raw.at_mobiles.clone(),
        at_all: raw.at_all,
    })
}
