//! The DingTalk (钉钉) channel: one markdown message per custom robot of a bureau, POSTed to
//! the robot's webhook URL (`https://oapi.dingtalk.com/robot/send?access_token=…`), signed
//! with 加签 when the robot has a secret, as DingTalk documents the custom robot:
//! <https://open.dingtalk.com/document/robots/custom-robot-access> and
//! <https://open.dingtalk.com/document/robots/customize-robot-security-settings>.
//!
//! Fed by `notify::render` (the judging task), which asks [`DingtalkSink`] as a [`Channel`]
//! for a bureau's robots (labels such as `guangzhou.dingtalk[0]`; URL and secret resolved at
//! start, never written to the outbox or a log) and for the markdown of a notification; and by
//! the DingTalk delivery worker with one outbox item.
//!
//! 加签: `timestamp` (milliseconds since the epoch, taken at each attempt: DingTalk refuses one
//! more than an hour off) and `sign` = URL-encoded base64 of HMAC-SHA256(secret,
//! `timestamp + "\n" + secret`), added to the URL's query ([`sign`]). The message is
//! `{"msgtype":"markdown","markdown":{"title","text"},"at":{"atMobiles","isAtAll"}}`; the text
//! holds one of the robot's keywords (the first is put in front when none appears) and the
//! `@phone` mentions DingTalk wants in the text, and is at most [`MAX_BYTES`]. DingTalk answers
//! HTTP 200 with `{"errcode":0,"errmsg":"ok"}` or another errcode; [`CODES`] says which are
//! retried. DingTalk has no idempotency key: a copy sent twice reaches the group twice.

pub mod config;

use super::outbox::Item;
use super::wire::{self, Code, Reaction};
use super::{resolve_url, Channel, Draft, Names, SendError, Sending, SetupError};
use crate::domain::message::Text;
use crate::domain::network::Contacts;
use crate::settings::secret::Secret;
use config::DingtalkRobot;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Key `dingtalk`, `/readyz` component `dingtalk`, said "DingTalk message".
pub const NAMES: Names = Names {
    noun: "DingTalk message",
    ..Names::of("dingtalk")
};

/// The most bytes (UTF-8) of a markdown text riverwatch sends. DingTalk's own bound on a
/// message is larger; this one is WeCom's, so a duty room reads the same text on both, and it
/// is more than a phone screen shows.
pub const MAX_BYTES: usize = 4096;

/// The most bytes of the title (the notification preview).
pub const MAX_TITLE_BYTES: usize = 128;

const TIMEOUT: Duration = Duration::from_secs(10);

/// DingTalk's documented custom-robot error codes and what each asks of us (the robot's
/// error codes: <https://open.dingtalk.com/document/robots/custom-robot-access>). Any other
/// non-zero errcode is refused.
pub const CODES: &[Code] = &[
    Code {
        code: -1,
        reaction: Reaction::Retry,
        meaning: "system busy",
    },
    Code {
        code: 130101,
        reaction: Reaction::Retry,
        meaning: "send too fast: over 20 messages a minute",
    },
    Code {
        code: 90030,
        reaction: Reaction::Retry,
        meaning: "webhook over limit: the robot's sending limit",
    },
    Code {
        code: 410100,
        reaction: Reaction::Retry,
        meaning: "send too fast: rate limited",
    },
    Code {
        code: 660026,
        reaction: Reaction::Retry,
        meaning: "sending limit reached",
    },
    Code {
        code: 300001,
        reaction: Reaction::Refuse,
        meaning: "the access token does not exist",
    },
    Code {
        code: 310000,
        reaction: Reaction::Refuse,
        meaning:
            "security check failed: keyword missing, bad sign, stale timestamp or IP not allowed",
    },
    Code {
        code: 400101,
        reaction: Reaction::Refuse,
        meaning: "the access token does not exist",
    },
    Code {
        code: 400102,
        reaction: Reaction::Refuse,
        meaning: "the robot is disabled",
    },
    Code {
        code: 400105,
        reaction: Reaction::Refuse,
        meaning: "unsupported message type",
    },
    Code {
        code: 400106,
        reaction: Reaction::Refuse,
        meaning: "the robot does not exist",
    },
];

/// A robot as the running channel holds it.
struct Robot {
    url: Secret,
    secret: Option<Secret>,
    keywords: Vec<String>,
    at_mobiles: Vec<String>,
    at_all: bool,
}

/// Builds the DingTalk channel from every bureau's robots, resolving URLs and secrets.
///
/// # Errors
/// [`SetupError::Setting`] naming the robot's config source when a secret cannot be read or
/// the URL is not an http(s) URL.
pub fn from_config(robots: &[DingtalkRobot]) -> Result<Arc<dyn Channel>, SetupError> {
    let mut by_label = BTreeMap::new();
    for r in robots {
        let secret = match &r.secret {
            Some(s) => Some(
                s.resolve()
                    .map_err(|e| format!("{} secret ({s:?}): {e}", r.label))?,
            ),
            None => None,
        };
        by_label.insert(
            r.label.clone(),
            Robot {
                url: resolve_url(&r.url, &r.label)?,
                secret,
                keywords: r.keywords.clone(),
                at_mobiles: r.at_mobiles.clone(),
                at_all: r.at_all,
            },
        );
    }
    Ok(Arc::new(DingtalkSink {
        client: super::http_client(TIMEOUT)?,
        robots: by_label,
    }))
}

/// The DingTalk channel. No `Debug`: it holds the robots' URLs and secrets.
pub struct DingtalkSink {
    client: reqwest::Client,
    robots: BTreeMap<String, Robot>,
}

/// The 加签 query parameters for `timestamp_ms`: (`timestamp`, `sign`), `sign` being the
/// base64 of HMAC-SHA256(secret, `"{timestamp}\n{secret}"`) before URL-encoding (the query
/// builder encodes it).
pub fn sign(secret: &str, timestamp_ms: i64) -> (String, String) {
    let to_sign = format!("{timestamp_ms}\n{secret}");
    let mac = wire::hmac_sha256(secret.as_bytes(), to_sign.as_bytes());
    (timestamp_ms.to_string(), wire::base64(&mac))
}

/// The markdown text of a notification for a robot with `keywords` that mentions
/// `at_mobiles`: the subject as a heading, the body, the mentions, within [`MAX_BYTES`]; the
/// first keyword in front when none appears in the text it would otherwise send.
pub fn markdown(text: &Text, keywords: &[String], at_mobiles: &[String]) -> String {
    let mentions: String = at_mobiles.iter().map(|m| format!(" @{m}")).collect();
    let tail = if mentions.is_empty() {
        String::new()
    } else {
        format!("\n\n{}", mentions.trim_start())
    };
    let full = format!("### {}\n\n{}", text.subject, text.body);
    let head = match keywords.first() {
        Some(first) if !keywords.iter().any(|k| full.contains(k.as_str())) => {
            format!("{first}\n\n")
        }
        _ => String::new(),
    };
    let room = MAX_BYTES.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", wire::fit_bytes(&full, room))
}

impl DingtalkSink {
    /// The request body for one item to `robot`.
    fn body(item: &Item, at_mobiles: &[String], at_all: bool) -> serde_json::Value {
        serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"title": item.subject, "text": item.text},
            "at": {"atMobiles": at_mobiles, "isAtAll": at_all},
        })
    }

    async fn post(&self, item: &Item) -> Result<(), SendError> {
        let label = item.to.first().map_or("", String::as_str);
        let Some(robot) = self.robots.get(label) else {
            return Err(SendError::Permanent(format!(
                "robot {label} is no longer configured"
            )));
        };
        let mut request = self.client.post(robot.url.expose());
        if let Some(secret) = &robot.secret {
            let (timestamp, sign) = sign(secret.expose(), chrono::Utc::now().timestamp_millis());
            request = request.query(&[("timestamp", timestamp), ("sign", sign)]);
        }
        let request = request.json(&Self::body(item, &robot.at_mobiles, robot.at_all));
        let (status, body) = super::exchange(request, "DingTalk").await?;
        wire::errcode_verdict(status, &body, CODES, "DingTalk")
    }
}

impl Channel for DingtalkSink {
    fn names(&self) -> Names {
        NAMES
    }

    /// The robots of `to` this channel knows.
    fn recipients(&self, to: &Contacts) -> Vec<String> {
        to.dingtalk
            .iter()
            .filter(|l| self.robots.contains_key(*l))
            .cloned()
            .collect()
    }

    /// One message per robot, keyed `dingtalk<i>` by the robot's place in the list, each with
    /// that robot's keyword and mentions.
    fn drafts(&self, text: &Text, to: Vec<String>) -> Vec<Draft> {
        let title = wire::fit_bytes(&text.subject, MAX_TITLE_BYTES);
        wire::one_per_label("dingtalk", to, &title, |label| {
            let (keywords, at) = self
                .robots
                .get(label)
                .map_or((&[][..], &[][..]), |r| (&r.keywords[..], &r.at_mobiles[..]));
            markdown(text, keywords, at)
        })
    }

    fn describe(&self, item: &Item) -> String {
        wire::describe("DingTalk message", item)
    }

    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
        Box::pin(self.post(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let check = |body: &str| match wire::errcode_verdict(200, body, CODES, "DingTalk") {
            Ok(()) => "delivered",
            Err(SendError::Transient(_)) => "retried",
            Err(SendError::Permanent(_)) => "refused",
        };
        for (code, outcome) in [
            (0, "delivered"),
            (-1, "retried"),
            (130101, "retried"),
            (90030, "retried"),
            (410100, "retried"),
            (660026, "retried"),
            (300001, "refused"),
            (310000, "refused"),
            (400101, "refused"),
            (400102, "refused"),
            (400105, "refused"),
            (400106, "refused"),
            (88, "refused"),
        ] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"x"}}"#);
            assert_eq!(check(&body), outcome, "errcode {code}");
        }
    }

    /// The signature of DingTalk's documented recipe, computed independently (Python's
    /// `hmac.new(secret, f"{ts}\n{secret}", sha256)` then base64).
    #[test]
    fn sign_follows_the_documented_recipe() {
        let (ts, sign) = sign("SECtest", 1_700_000_000_000);
        assert_eq!(ts, "1700000000000");
        assert_eq!(sign, "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g=");
    }

    #[test]
    fn keywords_and_mentions_are_in_the_text() {
        let text = Text {
            subject: "【黄色】石角 氨氮超标".into(),
            body: "氨氮 1.2 mg/L\n".repeat(500),
            short: String::new(),
        };
        let kw = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let md = markdown(&text, &kw(&["水质预警"]), &kw(&["13800000000"]));
        assert!(
            md.starts_with("水质预警\n\n### 【黄色】石角 氨氮超标\n\n氨氮"),
            "{md}"
        );
        assert!(md.ends_with("…\n\n@13800000000"), "{md}");
        assert!(md.len() <= MAX_BYTES);
        // A keyword already present is not repeated; no mentions, no tail.
        let md = markdown(&text, &kw(&["其他", "氨氮"]), &[]);
        assert!(md.starts_with("### "), "{md}");
    }
}
