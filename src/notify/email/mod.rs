//! The email channel: one email per bureau to all of its addresses, over SMTP with lettre
//! (plain, STARTTLS or TLS, with authentication), or as `.eml` files in a folder (the demo's
//! outbox).
//!
//! Fed by `notify::render` (the judging task in `alerts`), which asks [`EmailSink`] as a
//! [`Channel`] for a bureau's addresses and to address a rendered text to them, and by the
//! email delivery worker with rendered notifications. The body goes out as UTF-8 plain text in base64, so Chinese survives every relay.
//! The Message-ID is the notification's idempotency key, so a copy delivered twice is recognisable
//! as the same message. Answers: accepted is delivered; only an explicit 5xx from the relay is
//! permanent; a refused connection, a TLS failure or a timeout is transient.

pub mod config;

use super::outbox::Item;
use super::{Channel, Draft, Names, SendError, Sending, SetupError};
use crate::domain::message::Text;
use crate::domain::network::Contacts;
use crate::settings::secret::Secret;
use config::{SmtpConfig, SmtpSecurity};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
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
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// Bound on one whole send: lettre's own timeout covers connecting only, so a relay
        /// that stops answering mid-dialogue would otherwise hold the notifier for minutes.
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
        let tls = match cfg.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
                .port(cfg.port)
                .tls(tls)
                .timeout(Some(cfg.timeout));
        if let (Some(user), Some(password)) = (&cfg.username, password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(EmailSink::Smtp {
            transport: builder.build(),
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
        let message = build(self.from(), item)?;
        match self {
            EmailSink::Smtp {
                transport, timeout, ..
            } => match tokio::time::timeout(*timeout, transport.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                // lettre calls neither a refused connection nor a timeout permanent; only an
                // explicit 5xx from the server is.
                Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                Ok(Err(e)) => Err(SendError::Transient(e.to_string())),
                Err(_) => Err(SendError::Transient(format!(
                    "the SMTP relay did not finish within {timeout:?}"
                ))),
            },
            EmailSink::Folder { dir, .. } => {
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

/// Builds the message for one bureau: all of its addresses in To, named after the bureau.
/// A bad address cannot get better by retrying, so every error is permanent.
fn build(from: &Mailbox, item: &Item) -> Result<Message, SendError> {
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
            .header(ContentTransferEncoding::Base64)
            .body(item.text.clone()),
    )
    .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let item = Item {
            key: "a.fired.20261126T000000Z.qingyuan.email".into(),
            channel: "email".into(),
            alert_id: "a".into(),
            state: "firing".into(),
            bureau: "qingyuan".into(),
            bureau_name: "清远市生态环境局".into(),
            to: vec!["duty@qy.example.org".into()],
            subject: "s".into(),
            text: "b".into(),
        };
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
