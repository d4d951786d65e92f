//! SMS delivery: a POST to the configured HTTP gateway with the JSON body template filled in,
//! or a line in a JSON-lines log (the demo).
//!
//! Fed by the outbox's SMS worker with one rendered notification (text and phone number).
//! Each request carries the configured headers (secret values resolved at start, never
//! logged) and `Idempotency-Key`, the notification's key, so a gateway that deduplicates can
//! drop the rare second copy. Gateway answers: 2xx delivered; 4xx permanent (the request
//! itself is wrong); 5xx, timeouts and refused connections transient.

use super::outbox::Item;
use super::SendError;
use crate::config::{HeaderSource, SmsConfig};
use chrono::{SecondsFormat, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::path::PathBuf;

pub enum SmsSink {
    Gateway {
        client: reqwest::Client,
        url: String,
        body: String,
        /// Configured headers; secret values are marked sensitive, so reqwest hides them in
        /// `Debug` output too.
        headers: HeaderMap,
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
    pub fn gateway(cfg: &SmsConfig) -> Result<SmsSink, String> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
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
        })
    }

    /// False when no gateway is configured, so recipients are skipped rather than counted.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, SmsSink::Disabled)
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
                if status.is_success() {
                    return Ok(());
                }
                let answer: String = resp
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                let why = format!("SMS gateway answered {status}: {answer}");
                if status.is_client_error() {
                    Err(SendError::Permanent(why))
                } else {
                    Err(SendError::Transient(why))
                }
            }
            SmsSink::Log(path) => {
                use tokio::io::AsyncWriteExt;
                let mut line = serde_json::json!({
                    "time": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                    "to": phone,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
