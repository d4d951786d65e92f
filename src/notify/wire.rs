//! What the HTTP channels share on the wire: fitting a text into a vendor's size limit, the
//! HMAC-SHA256 both DingTalk's 加签 and the signed webhook use, and reading a vendor's verdict
//! from an `{"errcode": …}` answer through a channel's classification table.
//!
//! Fed by the channels' `drafts` (fitting, pure) and `send` (signing, classifying); feeds
//! nothing else. No I/O here: the answers come in as status and body text, so every row of
//! every table is unit-tested.

use super::SendError;
use base64::Engine;

/// The marker a truncated text ends with, so a reader knows there was more.
pub const MORE: &str = "…";

/// `text` cut to at most `max` bytes of UTF-8, ending in [`MORE`] when cut. The cut falls on
/// a character boundary, and on a line end when one lies in the second half of the room, so
/// the first lines (station, parameter, value, level: what an officer needs) stay whole.
/// `max` below the marker's 3 bytes gives the marker's prefix that fits (nothing).
pub fn fit_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let Some(room) = max.checked_sub(MORE.len()) else {
        return String::new();
    };
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let head = match head.rfind('\n') {
        Some(nl) if nl >= room / 2 => &head[..=nl],
        _ => head,
    };
    format!("{head}{MORE}")
}

/// `text` cut to at most `max` characters, ending in [`MORE`] when cut (an SMS segment is
/// counted in characters, not bytes).
pub fn fit_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{head}{MORE}")
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, message).as_ref().to_vec()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 (with padding) of `bytes`, as DingTalk's 加签 wants before URL-encoding.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What a vendor's error code asks of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Sending again later can succeed (rate limit, system busy): retried with backoff.
    Retry,
    /// Sending again cannot help (bad key, bad signature, bad message): dead-lettered.
    Refuse,
}

/// One row of a channel's table of documented error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub code: i64,
    pub reaction: Reaction,
    /// What the vendor says it means, for logs and the README.
    pub meaning: &'static str,
}

/// One draft per robot or endpoint of `to` (non-secret labels such as `guangzhou.wecom[0]`),
/// keyed `<key><i>` by its place in the bureau's list, each with `subject` and the text
/// `text_for(label)` makes for it.
pub fn one_per_label(
    key: &str,
    to: Vec<String>,
    subject: &str,
    text_for: impl Fn(&str) -> String,
) -> Vec<super::Draft> {
    to.into_iter()
        .enumerate()
        .map(|(i, label)| super::Draft {
            suffix: format!("{key}{i}"),
            subject: subject.to_string(),
            text: text_for(&label),
            to: vec![label],
        })
        .collect()
}

/// How logs name one delivery to labelled robots: `<noun> to <labels> for <alert> (<state>)`;
/// the labels are not secret, unlike the URLs behind them.
pub fn describe(noun: &str, item: &super::outbox::Item) -> String {
    format!(
        "{noun} to {} for {} ({})",
        item.to.join(","),
        item.alert_id,
        item.state
    )
}

/// How transport-level answers are read by every HTTP channel: 2xx goes on to the body;
/// 408 (timeout), 429 (too many requests) and 5xx are retried, as are 3xx (not followed);
/// any other 4xx is refused (the request itself is wrong).
pub fn status_verdict(status: u16, vendor: &str, answer: &str) -> Result<(), SendError> {
    let why = || format!("{vendor} answered HTTP {status}: {answer}");
    match status {
        200..=299 => Ok(()),
        408 | 429 => Err(SendError::Transient(why())),
        400..=499 => Err(SendError::Permanent(why())),
        _ => Err(SendError::Transient(why())),
    }
}

/// The verdict of an answer `{"errcode": n, "errmsg": "…"}` (WeCom, DingTalk): HTTP status
/// first ([`status_verdict`]), then `errcode` 0 delivered, a code of `table` as its row says,
/// any other code refused (an unknown code is not worth retrying for ever, and the refusal is
/// dead-lettered where an operator sees it). A 2xx body that is not such JSON is refused too:
/// the vendor always answers so, so something else answered.
pub fn errcode_verdict(
    status: u16,
    body: &str,
    table: &[Code],
    vendor: &str,
) -> Result<(), SendError> {
    let answer: String = body.chars().take(300).collect();
    status_verdict(status, vendor, &answer)?;
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    // A number, or a number written as a string (`"errcode":"0"`), as some gateways answer.
    let errcode = |v: &serde_json::Value| {
        let e = v.get("errcode")?;
        e.as_i64().or_else(|| e.as_str()?.trim().parse().ok())
    };
    let Some(code) = parsed.as_ref().and_then(errcode) else {
        return Err(SendError::Permanent(format!(
            "{vendor} answered without an errcode: {answer}"
        )));
    };
    if code == 0 {
        return Ok(());
    }
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("errmsg")?.as_str())
        .unwrap_or("");
    match table.iter().find(|c| c.code == code) {
        Some(c) => {
            let why = format!("{vendor} errcode {code} ({}): {msg}", c.meaning);
            Err(match c.reaction {
                Reaction::Retry => SendError::Transient(why),
                Reaction::Refuse => SendError::Permanent(why),
            })
        }
        None => Err(SendError::Permanent(format!(
            "{vendor} errcode {code} (not documented as retryable): {msg}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn texts_are_cut_on_a_boundary_with_a_marker() {
        for (text, max, expected) in [
            ("short", 10, "short"),
            ("abcdefghij", 10, "abcdefghij"),
            ("abcdefghijk", 10, "abcdefg…"),
            // 氨 is 3 bytes: the cut never splits it.
            ("氨氨氨氨", 10, "氨氨…"),
            // A line end in the second half of the room: the cut keeps whole lines.
            ("line one\nline two is long", 16, "line one\n…"),
            // None there: as many characters as fit.
            ("a\nbcdefghijklmnop", 10, "a\nbcdef…"),
            ("abc", 2, ""),
        ] {
            let got = fit_bytes(text, max);
            assert_eq!(got, expected, "{text:?} in {max}");
            assert!(got.len() <= max);
        }
        assert_eq!(fit_chars("一二三四五", 5), "一二三四五");
        assert_eq!(fit_chars("一二三四五六", 5), "一二三四…");
    }

    proptest! {
        /// Any text fits any room, stays valid UTF-8 (a `String`), and is a prefix of the
        /// original plus the marker when cut.
        #[test]
        fn any_text_fits(text in "\\PC{0,200}", max in 0usize..400) {
            let got = fit_bytes(&text, max);
            prop_assert!(got.len() <= max);
            if text.len() <= max {
                prop_assert_eq!(&got, &text);
            } else if !got.is_empty() {
                let head = got.strip_suffix(MORE).expect("marker");
                prop_assert!(text.starts_with(head));
            }
        }
    }

    /// RFC 4231 test case 2, so the HMAC is the standard one.
    #[test]
    fn hmac_is_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn errcode_answers_are_read_through_the_table() {
        let table = [
            Code {
                code: 45009,
                reaction: Reaction::Retry,
                meaning: "rate limit",
            },
            Code {
                code: 93000,
                reaction: Reaction::Refuse,
                meaning: "bad key",
            },
        ];
        let check = |status: u16, body: &str| match errcode_verdict(status, body, &table, "v") {
            Ok(()) => "delivered",
            Err(SendError::Transient(_)) => "transient",
            Err(SendError::Permanent(_)) => "permanent",
        };
        for (status, body, outcome) in [
            (200, r#"{"errcode":0,"errmsg":"ok"}"#, "delivered"),
            (200, r#"{"errcode":"0","errmsg":"ok"}"#, "delivered"),
            (200, r#"{"errcode":45009,"errmsg":"freq"}"#, "transient"),
            (200, r#"{"errcode":"45009","errmsg":"freq"}"#, "transient"),
            (
                200,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
                "permanent",
            ),
            (200, r#"{"errcode":12345,"errmsg":"?"}"#, "permanent"),
            (200, "<html>portal</html>", "permanent"),
            (200, r#"{"ok":true}"#, "permanent"),
            (404, "", "permanent"),
            (429, "", "transient"),
            (408, "", "transient"),
            (502, "", "transient"),
            (302, "", "transient"),
        ] {
            assert_eq!(check(status, body), outcome, "{status} {body}");
        }
    }
}
