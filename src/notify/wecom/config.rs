//! A `[[bureau]] wecom = [{ url_env = "…" }]` entry: one WeCom (企业微信) group robot, whose
//! webhook URL carries the robot's key and is therefore a secret (`url_env` or `url_file`).
//!
//! Fed by `config`, which deserializes each entry into [`RawWecom`] and calls [`validate`]
//! with the entry's label; feeds the WeCom channel ([`super::from_config`]).

use crate::settings::secret::SecretSource;
use crate::settings::{secret_source, Problems};
use serde::Deserialize;
use std::path::Path;

/// One robot: its label (`guangzhou.wecom[0]`, what outbox files and logs name) and where its
/// URL (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`) is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct WecomRobot {
    pub label: String,
    pub url: SecretSource,
}

/// The entry as written. `url` is accepted only to say why it is refused: the URL holds the
/// robot's key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWecom {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<String>,
}

/// Validates one entry at config key `at` (`bureau[0].wecom[0]`); secret files resolve
/// against `base`. `None` after recording the problem.
pub fn validate(
    raw: &RawWecom,
    label: String,
    at: &str,
    base: &Path,
    p: &mut Problems,
) -> Option<WecomRobot> {
    if raw.url.is_some() {
        p.add(
            format!("{at}.url"),
            "the robot's URL holds its key, a secret: use url_env (a variable's name) or url_file (a path)",
        );
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
    Some(WecomRobot { label, url: url? })
}
