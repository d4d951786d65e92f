//! The email channel: one email per bureau to all of its addresses, over SMTP with lettre
//! (plain, STARTTLS or TLS, with authentication), or as `.eml` files in a folder (the demo's
//! outbox).
//!
//! Fed by `notify::render` (the judging task in `alerts`), which asks [`EmailSink`] as a
//! [`Channel`] for a bureau's addresses and to address a rendered text to them, and by the
//! email delivery worker with rendered notifications. The body goes out as UTF-8 plain text
//! with 8bit transfer encoding, so a saved `.eml` reads as it is (`less` shows the Chinese);
//! a relay that does not announce 8BITMIME gets the same text quoted-printable instead.
//! The Message-ID is the notification's idempotency key, so a copy delivered twice is recognisable
//! as the same message. Answers: accepted is delivered; only an explicit 5xx from the relay is
//! permanent; a refused connection, a TLS failure or a timeout is transient.

pub mod config;
mod relay;

use super::outbox::Item;
use super::{Channel, Draft, Names, SendError, Sending, SetupError};
use crate::domain::message::Text;
use crate::domain::network::Contacts;
use crate::settings::secret::Secret;
use config::{SmtpConfig, SmtpSecurity};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::Message;
use relay::{Relay, RelayError, Security};
use std::path::PathBuf;

/// The email channel's names: key `email`; its `/readyz` component is the relay, `smtp`.
pub const NAMES: Names = Names {
    component: "smtp",
    ..Names::of("email")
};

/// Builds the email channel from `[smtp]`, resolving the password; `run` needs it.
pub fn from_config(smtp: Option<&SmtpConfig>) -> Result<std::sync::Arc<dyn Channel>, SetupError> {
    let smtp = smtp.ok_or(SetupError::Required {
        section: "smtp",
        why: "alerts are emailed",
    })?;
    let password = smtp
        .password
        .as_ref()
        .map(|p| p.resolve().map_err(|e| format!("smtp.password: {e}")))
        .transpose()?;
    Ok(std::sync::Arc::new(EmailSink::smtp(smtp, password)?))
}

pub enum EmailSink {
    Smtp {
        /// Boxed: its TLS settings are large beside the folder variant.
        relay: Box<Relay>,
        from: Mailbox,
        /// Bound on one whole send, connecting included, so a relay that stops answering
        /// mid-dialogue cannot hold the notifier.
        timeout: std::time::Duration,
    },
    /// Writes each message to `<dir>/<alert id>.<state>.<bureau>.eml`.
    Folder { dir: PathBuf, from: Mailbox },
}

impl EmailSink {
    /// Builds the SMTP transport; the password is resolved by the caller.
    pub fn smtp(cfg: &SmtpConfig, password: Option<Secret>) -> Result<EmailSink, SetupError> {
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("smtp.from: {e}"))?;
        let tls_parameters = || -> Result<TlsParameters, SetupError> {
            let mut b = TlsParameters::builder(cfg.host.clone());
            if let Some(ca) = &cfg.ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("smtp.ca_file {}: {e}", ca.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("smtp.ca_file {}: {e}", ca.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| SetupError::Setting(format!("SMTP TLS settings: {e}")))
        };
        let security = match cfg.security {
            SmtpSecurity::Plain => Security::Plain,
            SmtpSecurity::StartTls => Security::StartTls(tls_parameters()?),
            SmtpSecurity::Tls => Security::Tls(tls_parameters()?),
        };
        let credentials = match (&cfg.username, password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            )),
            _ => None,
        };
        Ok(EmailSink::Smtp {
            relay: Box::new(Relay::new(
                cfg.host.clone(),
                cfg.port,
                security,
                credentials,
                cfg.timeout,
            )),
            from,
            timeout: cfg.timeout,
        })
    }

    fn from(&self) -> &Mailbox {
        match self {
            EmailSink::Smtp { from, .. } | EmailSink::Folder { from, .. } => from,
        }
    }

    pub async fn send(&self, item: &Item) -> Result<(), SendError> {
        match self {
            EmailSink::Smtp { relay, timeout, .. } => {
                let send = |message: Message| async move {
                    match tokio::time::timeout(*timeout, relay.send(&message)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(Some(e)),
                        Err(_) => Err(None),
                    }
                };
                let mut result = send(build(self.from(), item, Transfer::EightBit)?).await;
                if matches!(&result, Err(Some(RelayError::Smtp(e))) if e.is_client()) {
                    // lettre refuses, before sending anything, a non-ASCII message to a relay
                    // that does not announce 8BITMIME: the same text, quoted-printable, is
                    // ASCII and goes through any relay.
                    result = send(build(self.from(), item, Transfer::QuotedPrintable)?).await;
                }
                match result {
                    Ok(()) => Ok(()),
                    // lettre calls neither a refused connection nor a timeout permanent; only
                    // an explicit 5xx from the server is.
                    Err(Some(RelayError::Smtp(e))) if e.is_permanent() => {
                        Err(SendError::Permanent(e.to_string()))
                    }
                    Err(Some(e)) => Err(SendError::Transient(e.to_string())),
                    Err(None) => Err(SendError::Transient(format!(
                        "the SMTP relay did not finish within {timeout:?}"
                    ))),
                }
            }
            EmailSink::Folder { dir, .. } => {
                let message = build(self.from(), item, Transfer::EightBit)?;
                let name = format!("{}.{}.{}.eml", item.alert_id, item.state, item.bureau);
                tokio::fs::write(dir.join(name), message.formatted())
                    .await
                    .map_err(|e| {
                        SendError::Transient(format!("cannot write to {}: {e}", dir.display()))
                    })
            }
        }
    }
}

impl Channel for EmailSink {
    fn names(&self) -> Names {
        NAMES
    }

    fn recipients(&self, to: &Contacts) -> Vec<String> {
        to.email.clone()
    }

    /// One email to all of the addresses.
    fn drafts(&self, text: &Text, to: Vec<String>) -> Vec<Draft> {
        vec![Draft {
            suffix: "email".into(),
            to,
            subject: text.subject.clone(),
            text: text.body.clone(),
        }]
    }

    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
        Box::pin(EmailSink::send(self, item))
    }
}

/// How the body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    /// UTF-8 as it is: readable in a saved `.eml`; needs a relay with 8BITMIME.
    EightBit,
    /// ASCII only, for a relay without 8BITMIME.
    QuotedPrintable,
}

/// The most octets a line may hold in SMTP, without its CRLF (RFC 5321 §4.5.3.1.6, RFC 5322
/// §2.1.1).
const MAX_LINE: usize = 998;

/// The body in `transfer` encoding. lettre's own choice refuses 8bit for any line of 76
/// octets or more (RFC 5322's recommended 78 characters; a line of 26 Chinese characters is
/// 78 octets), so the 8bit body is checked here against what SMTP requires — lines within
/// 998 octets, CRLF line ends, no NUL — and handed over as encoded; a body that fails (a very
/// long configured name) goes quoted-printable, which wraps it.
fn body(text: &str, transfer: Transfer) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let eight_bit = transfer == Transfer::EightBit
        && !crlf.contains('\0')
        && crlf
            .split("\r\n")
            .all(|line| line.len() <= MAX_LINE && !line.contains('\r'));
    if eight_bit {
        return Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit);
    }
    Body::new_with_encoding(text.to_string(), ContentTransferEncoding::QuotedPrintable)
        .unwrap_or_else(|_| Body::new(text.to_string()))
}

/// Builds the message for one bureau: all of its addresses in To, named after the bureau, the
/// body in `transfer` encoding. A bad address cannot get better by retrying, so every error is
/// permanent.
fn build(from: &Mailbox, item: &Item, transfer: Transfer) -> Result<Message, SendError> {
    let id: String = item
        .key
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"<>@\"".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut b = Message::builder()
        .from(from.clone())
        .subject(item.subject.clone())
        .message_id(Some(format!("<{id}@riverwatch>")));
    for address in &item.to {
        let address = address
            .parse()
            .map_err(|e| SendError::Permanent(format!("{address:?}: {e}")))?;
        b = b.to(Mailbox::new(Some(item.bureau_name.clone()), address));
    }
    b.singlepart(
        SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body(&item.text, transfer)),
    )
    .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(subject: &str, text: &str) -> Item {
        Item {
            key: "shijiao-exceedance-nh3n-20261126t060000.fired.20261126t020000z.qingyuan.email"
                .into(),
            channel: "email".into(),
            alert_id: "shijiao-exceedance-nh3n-20261126T060000".into(),
            state: "firing".into(),
            level: None,
            station: None,
            bureau: "qingyuan".into(),
            bureau_name: "清远市生态环境局".into(),
            to: vec!["duty@qy.example.org".into()],
            subject: subject.into(),
            text: text.into(),
        }
    }

    /// The `.eml` the folder channel writes holds the rendered body verbatim in UTF-8 (8bit,
    /// not base64), so `less` shows the Chinese; the subject is encoded in its header as
    /// headers must be.
    #[tokio::test]
    async fn an_eml_holds_the_body_verbatim_in_utf8() {
        let net = crate::domain::network::fixtures::network();
        let text = crate::domain::message::text(&crate::domain::message::tests::firing(), &net)
            .expect("the fixture station renders");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let sink = EmailSink::Folder {
            dir: dir.path().to_path_buf(),
            from: "riverwatch <rw@example.org>".parse().expect("mailbox"),
        };
        sink.send(&item(&text.subject, &text.body))
            .await
            .expect("written");
        let path = dir
            .path()
            .join("shijiao-exceedance-nh3n-20261126T060000.firing.qingyuan.eml");
        let raw = std::fs::read(&path).expect("the .eml");
        let eml = String::from_utf8(raw)
            .expect("UTF-8 throughout")
            .replace("\r\n", "\n");
        let (headers, body) = eml.split_once("\n\n").expect("headers, then the body");
        assert!(
            headers.contains("Content-Transfer-Encoding: 8bit"),
            "{headers}"
        );
        assert!(
            headers.contains("Content-Type: text/plain; charset=utf-8"),
            "{headers}"
        );
        // lettre ends the message with a line break of its own.
        assert_eq!(body.strip_suffix('\n'), Some(text.body.as_str()));
        assert!(body.contains("规则：超标（exceedance）"));
    }

    /// For a relay without 8BITMIME, and for a line too long for 8bit, the same text goes
    /// quoted-printable, which decodes to the body unchanged.
    #[test]
    fn quoted_printable_carries_the_same_text() {
        let from: Mailbox = "riverwatch <rw@example.org>".parse().expect("mailbox");
        let long = format!("断面：{}\n第二行\n", "石".repeat(340));
        for (transfer, text) in [
            (Transfer::QuotedPrintable, "监测值：1.2 mg/L（Ⅳ类）\n"),
            (Transfer::EightBit, long.as_str()),
        ] {
            let message = build(&from, &item("s", text), transfer).expect("built");
            let eml = String::from_utf8(message.formatted()).expect("ASCII");
            assert!(eml.is_ascii(), "{eml}");
            assert!(
                eml.contains("Content-Transfer-Encoding: quoted-printable"),
                "{eml}"
            );
            let (_, body) = eml.split_once("\r\n\r\n").expect("a body");
            // lettre ends the message with a CRLF of its own.
            assert_eq!(decode_qp(body), text.replace('\n', "\r\n") + "\r\n");
        }
    }

    /// Quoted-printable decoding (RFC 2045 §6.7), enough for the test above.
    fn decode_qp(s: &str) -> String {
        let s = s.replace("=\r\n", "");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("a byte"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("UTF-8")
    }

    /// A relay that accepts the connection and never says a word: the send gives up after
    /// the configured timeout instead of hanging the notifier.
    #[tokio::test]
    async fn a_silent_relay_times_out_as_transient() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let cfg = SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::Plain,
            from: "riverwatch <rw@example.org>".into(),
            username: None,
            password: None,
            ca_file: None,
            timeout: std::time::Duration::from_millis(300),
        };
        let sink = EmailSink::smtp(&cfg, None).unwrap();
        let item = item("s", "b");
        let began = tokio::time::Instant::now();
        let result = sink.send(&item).await;
        assert!(
            matches!(&result, Err(SendError::Transient(e)) if e.contains("did not finish")),
            "{result:?}"
        );
        assert!(began.elapsed() < std::time::Duration::from_secs(5));
        hold.abort();
    }
}
