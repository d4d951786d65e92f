//! Email delivery: over SMTP with lettre (plain, STARTTLS or TLS, with authentication), or as
//! `.eml` files in a folder (the demo's outbox).
//!
//! Fed by the notifier with a rendered message and its recipients; the body goes out as UTF-8
//! plain text in base64, so Chinese survives every relay. The Message-ID is derived from the
//! alert id, state and bureau, so a copy delivered twice is recognisable as the same message.

use super::SendError;
use crate::config::secret::Secret;
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::domain::alert::Transition;
use crate::domain::message::Email;
use crate::domain::network::Bureau;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;

pub enum EmailSink {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// Writes each message to `<dir>/<alert id>.<state>.<bureau>.eml`.
    Folder { dir: PathBuf, from: Mailbox },
}

impl EmailSink {
    /// Builds the SMTP transport; the password is resolved by the caller.
    pub fn smtp(cfg: &SmtpConfig, password: Option<Secret>) -> Result<EmailSink, String> {
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("smtp.from: {e}"))?;
        let tls_parameters = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(cfg.host.clone());
            if let Some(ca) = &cfg.ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("smtp.ca_file {}: {e}", ca.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("smtp.ca_file {}: {e}", ca.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| format!("SMTP TLS settings: {e}"))
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
        })
    }

    fn from(&self) -> &Mailbox {
        match self {
            EmailSink::Smtp { from, .. } | EmailSink::Folder { from, .. } => from,
        }
    }

    pub async fn send(
        &self,
        t: &Transition,
        bureau: &Bureau,
        mail: &Email,
    ) -> Result<(), SendError> {
        let message = build(self.from(), t, bureau, mail).map_err(SendError::Permanent)?;
        match self {
            EmailSink::Smtp { transport, .. } => match transport.send(message).await {
                Ok(_) => Ok(()),
                // lettre calls neither a refused connection nor a timeout permanent; only an
                // explicit 5xx from the server is.
                Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                Err(e) => Err(SendError::Transient(e.to_string())),
            },
            EmailSink::Folder { dir, .. } => {
                let name = format!("{}.{}.{}.eml", t.alert_id, t.state.key(), bureau.id);
                tokio::fs::write(dir.join(name), message.formatted())
                    .await
                    .map_err(|e| {
                        SendError::Transient(format!("cannot write to {}: {e}", dir.display()))
                    })
            }
        }
    }
}

/// Builds the message for one bureau: all of its addresses in To, named after the bureau.
fn build(from: &Mailbox, t: &Transition, bureau: &Bureau, mail: &Email) -> Result<Message, String> {
    let mut b = Message::builder()
        .from(from.clone())
        .subject(mail.subject.clone())
        .message_id(Some(format!(
            "<{}.{}.{}@riverwatch>",
            t.alert_id,
            t.state.key(),
            bureau.id
        )));
    for address in &bureau.email {
        let address = address.parse().map_err(|e| format!("{address:?}: {e}"))?;
        b = b.to(Mailbox::new(Some(bureau.name.clone()), address));
    }
    b.singlepart(
        SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .header(ContentTransferEncoding::Base64)
            .body(mail.body.clone()),
    )
    .map_err(|e| format!("cannot build the email: {e}"))
}
