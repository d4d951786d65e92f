//! The `[sms]` section: the gateway URL, the JSON body template, the timeout, extra
//! headers (plain or secret) and the rule that reads the provider's verdict from its answer
//! (`success`), validated into [`SmsConfig`].
//!
//! Fed by `config`, which deserializes the table into [`RawSms`] and calls [`validate`];
//! feeds the SMS channel ([`super::SmsSink::gateway`]).

use crate::settings::secret::SecretSource;
use crate::settings::{duration, host_port, secret_source, Problems};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The SMS gateway's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsConfig {
    pub url: String,
    /// JSON body template; `{phone}` and `{text}` are replaced by JSON-escaped strings.
    pub body: String,
    pub timeout: Duration,
    /// Extra request headers (an API key, say); secret values come from the environment or a
    /// file.
    pub headers: Vec<(String, HeaderSource)>,
    /// How a 2xx answer says whether the provider took the message; `None`: any 2xx does.
    pub success: Option<Success>,
}

/// `success = { path = "Code", equals = "OK", retry = ["isv.BUSINESS_LIMIT_CONTROL"] }`: the
/// provider's verdict read from its JSON answer, for providers that answer HTTP 200 with an
/// error code in the body (Aliyun, Tencent Cloud, MAS gateways).
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// The dotted path to the verdict (`Code`, `Response.SendStatusSet.0.Code`): object keys,
    /// or array positions where the segment is a number.
    pub path: Vec<String>,
    /// The value that means delivered, compared as text (a JSON number by its digits).
    pub equals: String,
    /// Verdicts (as text) that mean "try again later" (a rate limit, a busy system); any other
    /// mismatch is a permanent refusal.
    pub retry: Vec<String>,
}

/// Where an SMS gateway header's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderSource {
    Plain(String),
    Secret(SecretSource),
}

/// The `[sms]` table as written; `url` is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSms {
    url: String,
    body: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, RawHeader>,
    success: Option<RawSuccess>,
}

/// `success = { path, equals, retry? }` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuccess {
    path: String,
    equals: Scalar,
    #[serde(default)]
    retry: Vec<Scalar>,
}

/// A provider's code as written: a string or an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
        }
    }
}

/// An SMS gateway header: a plain value, or a secret read from the environment or a file.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawHeader {
    Plain(String),
    Secret {
        value_env: Option<String>,
        value_file: Option<String>,
    },
}

/// Validates `[sms]`, every problem recorded under `sms.<key>`; always `Some` (a bad
/// header is dropped after its problem is recorded). Secret files resolve against `base`.
pub fn validate(raw: RawSms, base: &Path, p: &mut Problems) -> Option<SmsConfig> {
    host_port(&raw.url, &[("http", 80), ("https", 443)], "sms.url", p);
    let body = raw
        .body
        .unwrap_or_else(|| r#"{"to": "{phone}", "text": "{text}"}"#.into());
    for placeholder in ["{phone}", "{text}"] {
        if !body.contains(placeholder) {
            p.add("sms.body", format!("the template has no {placeholder}"));
        }
    }
    // The template must be JSON once its placeholders hold strings.
    let probe = body.replace("{phone}", "+86").replace("{text}", "x");
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&probe) {
        p.add("sms.body", format!("is not a JSON template: {e}"));
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let key = format!("sms.headers.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            p.add(
                &key,
                "is not an HTTP header name (letters, digits, - and _)",
            );
            continue;
        }
        let source = match value {
            RawHeader::Plain(v) => Some(HeaderSource::Plain(v)),
            RawHeader::Secret {
                value_env,
                value_file,
            } => {
                // One that names a source but a bad one is reported by `secret_source`.
                let neither = value_env.is_none() && value_file.is_none();
                match secret_source(value_env, value_file, &format!("{key}.value"), base, p) {
                    Some(s) => Some(HeaderSource::Secret(s)),
                    None => {
                        if neither {
                            p.add(&key, "needs value_env or value_file (or a plain string)");
                        }
                        None
                    }
                }
            }
        };
        headers.extend(source.map(|s| (name, s)));
    }
    let success = raw.success.and_then(|s| {
        let path: Vec<String> = s.path.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            p.add(
                "sms.success.path",
                format!(
                    "{:?} is not a dotted path like \"Code\" or \"Response.SendStatusSet.0.Code\"",
                    s.path
                ),
            );
            return None;
        }
        Some(Success {
            path,
            equals: s.equals.text(),
            retry: s.retry.into_iter().map(Scalar::text).collect(),
        })
    });
    Some(SmsConfig {
        url: raw.url,
        body,
        timeout: duration(raw.timeout.as_deref(), "10s", "sms.timeout", p),
        headers,
        success,
    })
}
