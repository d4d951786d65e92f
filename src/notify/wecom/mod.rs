//! The WeCom (企业微信) channel: one markdown message per group robot of a bureau, POSTed to the
//! robot's webhook URL (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`), as WeCom
//! documents the group robot: <https://developer.work.weixin.qq.com/document/path/91770>.
//!
//! Fed by `notify::render` (the judging task), which asks [`WecomSink`] as a [`Channel`] for a
//! bureau's robots (labels such as `guangzhou.wecom[0]`; the URL, which holds the robot's key,
//! is resolved at start and never written to the outbox or a log) and for the markdown of a
//! notification; and by the WeCom delivery worker with one outbox item. Without robots in any
//! bureau the channel renders nothing.
//!
//! The message is `{"msgtype":"markdown","markdown":{"content":…}}`, the content at most
//! [`MAX_BYTES`] bytes of UTF-8 (the documented limit), cut with a visible `…`. WeCom answers
//! HTTP 200 with `{"errcode":0,"errmsg":"ok"}` when it takes the message and with another
//! errcode when it does not; [`CODES`] says which are retried. WeCom has no idempotency key:
//! the rare copy sent twice (delivered, then a crash before the outbox recorded it) reaches
//! the group twice.

pub mod config;

use super::outbox::Item;
use super::wire::{self, Code, Reaction};
use super::{resolve_url, Channel, Draft, Names, SendError, Sending, SetupError};
use crate::domain::message::Text;
use crate::domain::network::Contacts;
use crate::settings::secret::Secret;
use config::WecomRobot;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Key `wecom`, `/readyz` component `wecom`, said "WeCom message".
pub const NAMES: Names = Names {
    noun: "WeCom message",
    ..Names::of("wecom")
};

/// The most bytes (UTF-8) of a markdown message's content, as WeCom documents it.
pub const MAX_BYTES: usize = 4096;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// WeCom's documented error codes that a robot answers, and what each asks of us
/// (global error codes: <https://developer.work.weixin.qq.com/document/path/90313>). Any other
/// non-zero errcode is refused.
pub const CODES: &[Code] = &[
    Code {
        code: -1,
        reaction: Reaction::Retry,
        meaning: "system busy",
    },
    Code {
        code: 45009,
        reaction: Reaction::Retry,
        meaning: "API rate limit reached (20 messages a minute per robot)",
    },
    Code {
        code: 45033,
        reaction: Reaction::Retry,
        meaning: "too many concurrent calls",
    },
    Code {
        code: 93000,
        reaction: Reaction::Refuse,
        meaning: "invalid webhook URL: the robot's key is wrong",
    },
    Code {
        code: 93004,
        reaction: Reaction::Refuse,
        meaning: "the robot is disabled",
    },
    Code {
        code: 40008,
        reaction: Reaction::Refuse,
        meaning: "invalid message type",
    },
    Code {
        code: 40058,
        reaction: Reaction::Refuse,
        meaning: "invalid parameter (a field missing or too long)",
    },
    Code {
        code: 44004,
        reaction: Reaction::Refuse,
        meaning: "the content is empty",
    },
];

/// Builds the WeCom channel from every bureau's robots, resolving their URLs.
///
/// # Errors
/// [`SetupError::Setting`] naming the robot's config source when its URL cannot be read or is
/// not an http(s) URL (the value itself is never shown).
pub fn from_config(robots: &[WecomRobot]) -> Result<Arc<dyn Channel>, SetupError> {
    let mut urls = BTreeMap::new();
    for r in robots {
        urls.insert(r.label.clone(), resolve_url(&r.url, &r.label)?);
    }
    Ok(Arc::new(WecomSink {
        client: super::http_client(TIMEOUT)?,
        urls,
    }))
}

/// The WeCom channel. No `Debug`: it holds the robots' URLs.
pub struct WecomSink {
    client: reqwest::Client,
    /// Robot label → webhook URL (with the key).
    urls: BTreeMap<String, Secret>,
}

impl WecomSink {
    /// The markdown of a notification: the subject as a heading, then the body, within
    /// [`MAX_BYTES`].
    pub fn content(text: &Text) -> String {
        wire::fit_bytes(&format!("### {}\n{}", text.subject, text.body), MAX_BYTES)
    }

    /// The request body for one item.
    pub fn body(item: &Item) -> serde_json::Value {
        serde_json::json!({"msgtype": "markdown", "markdown": {"content": item.text}})
    }

    async fn post(&self, item: &Item) -> Result<(), SendError> {
        let label = item.to.first().map_or("", String::as_str);
        let Some(url) = self.urls.get(label) else {
            return Err(SendError::Permanent(format!(
                "robot {label} is no longer configured"
            )));
        };
        let request = self.client.post(url.expose()).json(&Self::body(item));
        let (status, body) = super::exchange(request, "WeCom").await?;
        wire::errcode_verdict(status, &body, CODES, "WeCom")
    }
}

impl Channel for WecomSink {
    fn names(&self) -> Names {
        NAMES
    }

    /// The robots of `to` this channel knows.
    fn recipients(&self, to: &Contacts) -> Vec<String> {
        to.wecom
            .iter()
            .filter(|l| self.urls.contains_key(*l))
            .cloned()
            .collect()
    }

    /// One message per robot, keyed `wecom<i>` by the robot's place in the list.
    fn drafts(&self, text: &Text, to: Vec<String>) -> Vec<Draft> {
        let content = Self::content(text);
        wire::one_per_label("wecom", to, &text.subject, |_| content.clone())
    }

    fn describe(&self, item: &Item) -> String {
        wire::describe("WeCom message", item)
    }

    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
        Box::pin(self.post(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each documented code reacts as the table says; the classification is the README's.
    #[test]
    fn answers_are_classified() {
        let check = |body: &str| match wire::errcode_verdict(200, body, CODES, "WeCom") {
            Ok(()) => "delivered",
            Err(SendError::Transient(_)) => "retried",
            Err(SendError::Permanent(_)) => "refused",
        };
        for (code, outcome) in [
            (0, "delivered"),
            (-1, "retried"),
            (45009, "retried"),
            (45033, "retried"),
            (93000, "refused"),
            (93004, "refused"),
            (40008, "refused"),
            (40058, "refused"),
            (44004, "refused"),
            (60020, "refused"),
        ] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"x"}}"#);
            assert_eq!(check(&body), outcome, "errcode {code}");
        }
    }

    #[test]
    fn the_message_is_markdown_within_the_limit() {
        let text = Text {
            subject: "【黄色】石角 氨氮超标".into(),
            body: "第一行\n".repeat(2000),
            short: String::new(),
        };
        let content = WecomSink::content(&text);
        assert!(content.len() <= MAX_BYTES, "{}", content.len());
        assert!(content.starts_with("### 【黄色】石角 氨氮超标\n第一行\n"));
        assert!(content.ends_with(wire::MORE));
        let item = Item {
            text: content.clone(),
            ..crate::notify::outbox::tests::item("k", "wecom")
        };
        assert_eq!(
            WecomSink::body(&item),
            serde_json::json!({"msgtype": "markdown", "markdown": {"content": content}})
        );
    }
}
