//! The webhook channel: one signed JSON POST per endpoint of a bureau's own platform (a
//! message bus, a duty system), for bureaus that route alerts themselves.
//!
//! Fed by `notify::render` (the judging task), which asks [`WebhookSink`] as a [`Channel`]
//! for a bureau's endpoints (labels such as `guangzhou.webhook[0]`; URL and signing secret
//! resolved at start, never written to the outbox or a log) and by the webhook delivery
//! worker with one outbox item.
//!
//! The body ([`payload`], schema version 1, documented in the README) carries the
//! notification's idempotency key, alert id, state, level, station, bureau, subject and text
//! (at most [`MAX_TEXT_BYTES`]). Headers: `Content-Type: application/json`,
//! `Idempotency-Key` (the key again, for receivers that deduplicate at the HTTP layer),
//! `X-Riverwatch-Timestamp` (Unix seconds of this attempt) and `X-Riverwatch-Signature:
//! sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` ([`signature`]), so the receiver
//! checks both who sent it and that it is fresh. Answers: 2xx delivered, unless the body is
//! JSON with a non-zero `errcode` (refused); 408, 429, 5xx and unreachable retried; other
//! 4xx refused.

pub mod config;

use super::outbox::Item;
use super::wire;
use super::{resolve_url, Channel, Draft, Names, SendError, Sending, SetupError};
use crate::domain::message::Text;
use crate::domain::network::Contacts;
use crate::settings::secret::Secret;
use config::{UrlSource, WebhookTarget};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Key `webhook`, said "webhook delivery".
pub const NAMES: Names = Names {
    noun: "webhook delivery",
    ..Names::of("webhook")
};

/// The most bytes of the `text` field.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// The header holding the attempt's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "X-Riverwatch-Timestamp";
/// The header holding `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Riverwatch-Signature";

const TIMEOUT: Duration = Duration::from_secs(10);

struct Endpoint {
    url: Secret,
    secret: Secret,
}

/// Builds the webhook channel from every bureau's endpoints, resolving URLs and secrets.
///
/// # Errors
/// [`SetupError::Setting`] naming the endpoint's config source when a secret cannot be read
/// or the URL is not an http(s) URL.
pub fn from_config(targets: &[WebhookTarget]) -> Result<Arc<dyn Channel>, SetupError> {
    let mut endpoints = BTreeMap::new();
    for t in targets {
        let url = match &t.url {
            UrlSource::Plain(u) => Secret::new(u.clone()),
            UrlSource::Secret(s) => resolve_url(s, &t.label)?,
        };
        let secret = t
            .secret
            .resolve()
            .map_err(|e| format!("{} secret ({:?}): {e}", t.label, t.secret))?;
        endpoints.insert(t.label.clone(), Endpoint { url, secret });
    }
    Ok(Arc::new(WebhookSink {
        client: super::http_client(TIMEOUT)?,
        endpoints,
    }))
}

/// The webhook channel. No `Debug`: it holds URLs and secrets.
pub struct WebhookSink {
    client: reqwest::Client,
    endpoints: BTreeMap<String, Endpoint>,
}

/// The JSON body of one item (schema version 1).
pub fn payload(item: &Item) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "key": item.key,
        "alert_id": item.alert_id,
        "state": item.state,
        "level": item.level,
        "station": item.station,
        "bureau": item.bureau,
        "bureau_name": item.bureau_name,
        "subject": item.subject,
        "text": item.text,
    })
}

/// `sha256=<lowercase hex of HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    format!("sha256={}", wire::hex(&wire::hmac_sha256(secret, &signed)))
}

/// A 2xx answer's body: JSON with a non-zero `errcode` is a refusal, anything else (empty,
/// text, JSON without it) a delivery.
fn answer_verdict(status: u16, body: &str) -> Result<(), SendError> {
    let answer: String = body.chars().take(300).collect();
    wire::status_verdict(status, "webhook", &answer)?;
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errcode")?.as_i64());
    match code {
        Some(c) if c != 0 => Err(SendError::Permanent(format!(
            "webhook answered errcode {c}: {answer}"
        ))),
        _ => Ok(()),
    }
}

impl WebhookSink {
    async fn post(&self, item: &Item) -> Result<(), SendError> {
        let label = item.to.first().map_or("", String::as_str);
        let Some(endpoint) = self.endpoints.get(label) else {
            return Err(SendError::Permanent(format!(
                "endpoint {label} is no longer configured"
            )));
        };
        let body = payload(item).to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let request = self
            .client
            .post(endpoint.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", item.key.as_str())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(
                    endpoint.secret.expose().as_bytes(),
                    timestamp,
                    body.as_bytes(),
                ),
            )
            .body(body);
        let (status, text) = super::exchange(request, "webhook").await?;
        answer_verdict(status, &text)
    }
}

impl Channel for WebhookSink {
    fn names(&self) -> Names {
        NAMES
    }

    fn recipients(&self, to: &Contacts) -> Vec<String> {
        to.webhook
            .iter()
            .filter(|l| self.endpoints.contains_key(*l))
            .cloned()
            .collect()
    }

    /// One delivery per endpoint, keyed `webhook<i>`; the text is the full body (the
    /// receiver's platform shows what it wants), within [`MAX_TEXT_BYTES`].
    fn drafts(&self, text: &Text, to: Vec<String>) -> Vec<Draft> {
        let body = wire::fit_bytes(&text.body, MAX_TEXT_BYTES);
        wire::one_per_label("webhook", to, &text.subject, |_| body.clone())
    }

    fn describe(&self, item: &Item) -> String {
        wire::describe("webhook delivery", item)
    }

    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
        Box::pin(self.post(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature of the README's recipe, computed independently (Python's
    /// `hmac.new(b"whsec", b'1700000000.{"a":1}', sha256).hexdigest()`).
    #[test]
    fn signature_follows_the_documented_recipe() {
        assert_eq!(
            signature(b"whsec", 1_700_000_000, br#"{"a":1}"#),
            "sha256=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
    }

    #[test]
    fn answers_are_classified() {
        let check = |status: u16, body: &str| match answer_verdict(status, body) {
            Ok(()) => "delivered",
            Err(SendError::Transient(_)) => "retried",
            Err(SendError::Permanent(_)) => "refused",
        };
        for (status, body, outcome) in [
            (200, "", "delivered"),
            (204, "", "delivered"),
            (200, r#"{"errcode":0}"#, "delivered"),
            (200, r#"{"ok":true}"#, "delivered"),
            (
                200,
                r#"{"errcode":401,"errmsg":"bad signature"}"#,
                "refused",
            ),
            (400, "", "refused"),
            (401, "", "refused"),
            (408, "", "retried"),
            (429, "", "retried"),
            (500, "", "retried"),
            (503, "", "retried"),
        ] {
            assert_eq!(check(status, body), outcome, "{status} {body}");
        }
    }

    #[test]
    fn the_payload_has_the_documented_fields() {
        let item = Item {
            level: Some("yellow".into()),
            station: Some("shijiao".into()),
            ..crate::notify::outbox::tests::item("k1", "webhook")
        };
        let v = payload(&item);
        let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "alert_id",
                "bureau",
                "bureau_name",
                "key",
                "level",
                "state",
                "station",
                "subject",
                "text",
                "version"
            ]
        );
        assert_eq!(
            (v["level"].as_str(), v["version"].as_i64()),
            (Some("yellow"), Some(1))
        );
    }
}
