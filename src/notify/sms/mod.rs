//! The SMS channel: one text per phone number of a bureau, sent as a POST to the configured
//! HTTP gateway with the JSON body template filled in, or as a line in a JSON-lines log (the
//! demo). Without `[sms]` the channel is disabled: it renders nothing (said once at start).
//!
//! Fed by `notify::render` (the judging task in `alerts`), which asks [`SmsSink`] as a [`Channel`]
//! for a bureau's phone numbers and to address the short text to each, and by the SMS delivery
//! worker with one rendered
//! notification (text and phone number). Each request carries the configured headers (secret values
//! resolved at start, never logged) and `Idempotency-Key`, the notification's key, so a gateway
//! that deduplicates can drop the rare second copy. Gateway answers: 2xx delivered, unless
//! `[sms] success` reads another verdict from the JSON answer ([`verdict`]: a code of its
//! `retry` list transient, any other permanent); 408, 429 (rate limits) and 5xx, timeouts and
//! refused connections transient; other 4xx permanent (the request itself is wrong). A text
//! is at most [`MAX_CHARS`] characters (one SMS), cut with a visible `…`.

pub mod config;

use super::outbox::Item;
use super::{Channel, Draft, Names, SendError, Sending, SetupError};
use crate::domain::message::Text;
use crate::domain::network::{Bureau, Contacts, Network};
use chrono::{SecondsFormat, Utc};
use config::{HeaderSource, SmsConfig, Success};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::path::PathBuf;
use std::sync::Arc;

/// The SMS channel's names: key `sms`, said "SMS" in sentences.
pub const NAMES: Names = Names {
    noun: "SMS",
    ..Names::of("sms")
};

/// The most characters of one text: one SMS of Chinese (UCS-2) text.
pub const MAX_CHARS: usize = 70;

/// Builds the SMS channel from `[sms]`; without it the channel is disabled, which is said
/// here, once, when bureaus of `net` list phone numbers.
pub fn from_config(sms: Option<&SmsConfig>, net: &Network) -> Result<Arc<dyn Channel>, SetupError> {
    let sink = match sms {
        Some(sms) => SmsSink::gateway(sms)?,
        None => {
            let phones = |b: &Bureau| {
                b.operators
                    .iter()
                    .chain([&b.duty])
                    .any(|c| !c.sms.is_empty())
            };
            if net.bureaus.iter().any(phones) {
                tracing::warn!("bureaus list SMS recipients but no [sms] gateway is configured; SMS are not sent");
            }
            SmsSink::Disabled
        }
    };
    Ok(Arc::new(sink))
}

pub enum SmsSink {
    Gateway {
        client: reqwest::Client,
        url: String,
        body: String,
        /// Configured headers; secret values are marked sensitive, so reqwest hides them in
        /// `Debug` output too.
        headers: HeaderMap,
        /// How a 2xx answer's body gives the provider's verdict.
        success: Option<Success>,
    },
    /// Appends `{"time","to","alert_id","state","text"}` lines.
    Log(PathBuf),
    /// No gateway configured: SMS recipients are skipped (logged once at start).
    Disabled,
}

/// A string as JSON string content, without the surrounding quotes, for template filling.
fn json_content(s: &str) -> String {
    let quoted = serde_json::Value::from(s).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Fills the body template; the phone number and text are JSON-escaped.
pub fn fill(template: &str, phone: &str, text: &str) -> String {
    template
        .replace("{phone}", &json_content(phone))
        .replace("{text}", &json_content(text))
}

impl SmsSink {
    /// Builds the gateway client, resolving secret header values; errors name the key.
    pub fn gateway(cfg: &SmsConfig) -> Result<SmsSink, SetupError> {
        let client = crate::outbound::client_builder(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut headers = HeaderMap::new();
        for (name, source) in &cfg.headers {
            let key = format!("sms.headers.{name}");
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{key}: {e}"))?;
            let mut value = match source {
                HeaderSource::Plain(v) => HeaderValue::from_str(v),
                HeaderSource::Secret(s) => {
                    let secret = s.resolve().map_err(|e| format!("{key}: {e}"))?;
                    HeaderValue::from_str(secret.expose())
                }
            }
            .map_err(|_| format!("{key}: the value is not a valid HTTP header value"))?;
            value.set_sensitive(matches!(source, HeaderSource::Secret(_)));
            headers.insert(header, value);
        }
        Ok(SmsSink::Gateway {
            client,
            url: cfg.url.clone(),
            body: cfg.body.clone(),
            headers,
            success: cfg.success.clone(),
        })
    }

    pub async fn send(&self, item: &Item) -> Result<(), SendError> {
        let phone = item.to.first().map_or("", String::as_str);
        let text = item.text.as_str();
        match self {
            SmsSink::Disabled => Err(SendError::Permanent("no SMS gateway is configured".into())),
            SmsSink::Gateway {
                client,
                url,
                body,
                headers,
                success,
            } => {
                let resp = client
                    .post(url)
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("Idempotency-Key", item.key.as_str())
                    .body(fill(body, phone, text))
                    .send()
                    .await
                    .map_err(|e| SendError::Transient(format!("SMS gateway unreachable: {e}")))?;
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let answer: String = text.chars().take(300).collect();
                classify(status, &answer)?;
                match success {
                    Some(rule) => verdict(rule, &text),
                    None => Ok(()),
                }
            }
            SmsSink::Log(path) => {
                use tokio::io::AsyncWriteExt;
                let mut line = serde_json::json!({
                    "time": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                    "to": phone,
                    "bureau": item.bureau,
                    "alert_id": item.alert_id,
                    "state": item.state,
                    "key": item.key,
                    "text": text,
                })
                .to_string();
                line.push('\n');
                let result = async {
                    let mut f = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await?;
                    f.write_all(line.as_bytes()).await
                }
                .await;
                result.map_err(|e| {
                    SendError::Transient(format!("cannot append to {}: {e}", path.display()))
                })
            }
        }
    }
}

/// The gateway's answer as a delivery outcome by its status: 2xx delivered (as far as the
/// status says); 408 and 429 transient (a timeout, a rate limit: later can succeed); other 4xx
/// permanent (the request itself is wrong, sending it again cannot help); anything else (5xx,
/// a 3xx we do not follow) transient. `answer` is the start of the body, for the log.
fn classify(status: reqwest::StatusCode, answer: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let why = format!("SMS gateway answered {status}: {answer}");
    if status.is_client_error() && !matches!(status.as_u16(), 408 | 429) {
        Err(SendError::Permanent(why))
    } else {
        Err(SendError::Transient(why))
    }
}

/// The provider's verdict in a 2xx answer `body` by `rule`: the value at its path equal to
/// `equals` (as text) delivered; one of `retry` transient; any other value, or an answer
/// without the path, permanent (the provider refused, and says why in the body).
pub fn verdict(rule: &Success, body: &str) -> Result<(), SendError> {
    let answer: String = body.chars().take(300).collect();
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let found = rule.path.iter().try_fold(parsed.as_ref(), |at, seg| {
        let at = at?;
        Some(match seg.parse::<usize>() {
            Ok(i) if at.is_array() => at.get(i),
            _ => at.get(seg.as_str()),
        })
    });
    let text = match found.flatten() {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
        _ => {
            return Err(SendError::Permanent(format!(
                "SMS gateway answered without {}: {answer}",
                rule.path.join(".")
            )))
        }
    };
    if text == rule.equals {
        Ok(())
    } else if rule.retry.contains(&text) {
        Err(SendError::Transient(format!(
            "SMS provider answered {text} (retried later): {answer}"
        )))
    } else {
        Err(SendError::Permanent(format!(
            "SMS provider answered {text}: {answer}"
        )))
    }
}

impl Channel for SmsSink {
    fn names(&self) -> Names {
        NAMES
    }

    /// The phone numbers of `to`; none when no gateway is configured.
    fn recipients(&self, to: &Contacts) -> Vec<String> {
        if matches!(self, SmsSink::Disabled) {
            return Vec::new();
        }
        to.sms.clone()
    }

    /// One text per phone number.
    fn drafts(&self, text: &Text, to: Vec<String>) -> Vec<Draft> {
        to.into_iter()
            .enumerate()
            .map(|(i, phone)| Draft {
                suffix: format!("sms{i}"),
                to: vec![phone],
                subject: String::new(),
                text: super::wire::fit_chars(&text.short, MAX_CHARS),
            })
            .collect()
    }

    /// The phone number masked.
    fn describe(&self, item: &Item) -> String {
        format!(
            "SMS to {} of {} for {} ({})",
            item.to.first().map_or_else(String::new, |p| masked(p)),
            item.bureau,
            item.alert_id,
            item.state
        )
    }

    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
        Box::pin(SmsSink::send(self, item))
    }
}

/// A phone number as logs show it: enough to tell recipients apart, not to call them.
pub fn masked(phone: &str) -> String {
    let keep = phone.len().saturating_sub(4);
    phone
        .char_indices()
        .map(|(i, c)| if (3..keep).contains(&i) { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Providers' answers read by a `success` rule: Aliyun's `Code`, Tencent Cloud's nested
    /// array, a numeric code; rate-limit codes of the retry list retried, others refused.
    #[test]
    fn provider_verdicts_are_read_from_the_body() {
        let rule = |path: &str, equals: &str, retry: &[&str]| Success {
            path: path.split('.').map(str::to_string).collect(),
            equals: equals.into(),
            retry: retry.iter().map(|s| s.to_string()).collect(),
        };
        let aliyun = rule("Code", "OK", &["isv.BUSINESS_LIMIT_CONTROL"]);
        let tencent = rule(
            "Response.SendStatusSet.0.Code",
            "Ok",
            &["LimitExceeded.PhoneNumberOneHourLimit"],
        );
        let numeric = rule("result", "0", &["-1"]);
        let check = |r: &Success, body: &str| match verdict(r, body) {
            Ok(()) => "delivered",
            Err(SendError::Transient(_)) => "retried",
            Err(SendError::Permanent(_)) => "refused",
        };
        for (r, body, outcome) in [
            (&aliyun, r#"{"Code":"OK","Message":"OK"}"#, "delivered"),
            (
                &aliyun,
                r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL"}"#,
                "retried",
            ),
            (
                &aliyun,
                r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL"}"#,
                "refused",
            ),
            (&aliyun, r#"{"Message":"no code"}"#, "refused"),
            (&aliyun, "not json", "refused"),
            (
                &tencent,
                r#"{"Response":{"SendStatusSet":[{"Code":"Ok"}]}}"#,
                "delivered",
            ),
            (
                &tencent,
                r#"{"Response":{"SendStatusSet":[{"Code":"LimitExceeded.PhoneNumberOneHourLimit"}]}}"#,
                "retried",
            ),
            (&tencent, r#"{"Response":{"SendStatusSet":[]}}"#, "refused"),
            (&numeric, r#"{"result":0}"#, "delivered"),
            (&numeric, r#"{"result":-1}"#, "retried"),
            (&numeric, r#"{"result":"0"}"#, "delivered"),
            (&numeric, r#"{"result":17}"#, "refused"),
        ] {
            assert_eq!(check(r, body), outcome, "{:?} {body}", r.path);
        }
    }

    #[test]
    fn template_is_filled_with_escaped_strings() {
        let body = fill(
            r#"{"to": "{phone}", "text": "{text}"}"#,
            "+8613800000000",
            "氨氮 \"1.2\"\n",
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["to"], "+8613800000000");
        assert_eq!(v["text"], "氨氮 \"1.2\"\n");
    }

    #[test]
    fn phone_numbers_are_masked() {
        assert_eq!(masked("+8613800001234"), "+86*******1234");
        assert_eq!(masked("12345"), "12345");
    }

    #[test]
    fn gateway_answers_are_classified() {
        use reqwest::StatusCode;
        let check = |code: u16| {
            let status = StatusCode::from_u16(code).unwrap();
            match classify(status, "why") {
                Ok(()) => "delivered",
                Err(SendError::Transient(_)) => "transient",
                Err(SendError::Permanent(_)) => "permanent",
            }
        };
        for (code, outcome) in [
            (200, "delivered"),
            (202, "delivered"),
            (301, "transient"),
            (400, "permanent"),
            (401, "permanent"),
            (408, "transient"),
            (429, "transient"),
            (500, "transient"),
            (503, "transient"),
        ] {
            assert_eq!(check(code), outcome, "HTTP {code}");
        }
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, "no such number"),
            Err(SendError::Permanent(
                "SMS gateway answered 400 Bad Request: no such number".into()
            ))
        );
    }
}
