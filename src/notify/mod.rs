//! Notify: turns alert transitions into notifications for the bureaus that must hear of
//! them, keeps them in the persistent [`outbox`], and delivers them with retries.
//!
//! Fed by the screen stage, which calls [`render`] and `Outbox::enqueue` for each batch of
//! transitions before the message that caused them is acknowledged; one [`Worker`]
//! per channel (email, SMS) then sends the outbox's pending notifications through the sinks in
//! [`email`] and [`sms`], one at a time in enqueue order, so a bureau never reads a resolution
//! before its alert, and an SMTP outage does not hold back SMS. A failed delivery is retried
//! with exponential backoff (1 s doubling to 30 s) while it is transient; a permanent refusal
//! (SMTP 5xx, gateway 4xx) is logged, counted, moved to the outbox's `failed/` and written to
//! the dead-letter file. A notification leaves the outbox only once delivered, so SMTP or the
//! gateway being down, or riverwatch being killed, delays it but never loses it.

pub mod email;
pub mod outbox;
pub mod sms;

use crate::deadletter::DeadLetter;
use crate::domain::alert::Transition;
use crate::domain::message;
use crate::domain::network::Network;
use crate::telemetry::Metrics;
use outbox::{Channel, Item, Outbox, Pending};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Whether a failed delivery may succeed later.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

/// Longest wait between two attempts of one notification.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The notifications of one transition: an email per bureau with email addresses, an SMS
/// per phone number (when a gateway is configured), each with its idempotency key.
pub fn render(t: &Transition, net: &Network, sms_enabled: bool) -> Vec<Item> {
    let Some(station) = net.station(&t.station) else {
        return Vec::new();
    };
    let (Some(mail), Some(text)) = (message::email(t, net), message::sms(t, net)) else {
        return Vec::new();
    };
    let base = format!(
        "{}.{}.{}",
        t.alert_id,
        t.kind.key(),
        t.evidence.ts.format("%Y%m%dT%H%M%SZ")
    )
    .to_lowercase();
    let mut out = Vec::new();
    for bureau in net.recipients(station, t.rule) {
        let item =
            |channel: Channel, key: String, to: Vec<String>, subject: &str, text: &str| Item {
                key,
                channel,
                alert_id: t.alert_id.clone(),
                state: t.state.key().to_string(),
                bureau: bureau.id.clone(),
                bureau_name: bureau.name.clone(),
                to,
                subject: subject.to_string(),
                text: text.to_string(),
            };
        if !bureau.email.is_empty() {
            out.push(item(
                Channel::Email,
                format!("{base}.{}.email", bureau.id),
                bureau.email.clone(),
                &mail.subject,
                &mail.body,
            ));
        }
        if sms_enabled {
            for (i, phone) in bureau.sms.iter().enumerate() {
                out.push(item(
                    Channel::Sms,
                    format!("{base}.{}.sms{i}", bureau.id),
                    vec![phone.clone()],
                    "",
                    &text,
                ));
            }
        }
    }
    out
}

/// What a delivery worker needs.
pub struct Worker {
    pub outbox: Arc<Outbox>,
    pub channel: Channel,
    pub sink: Sink,
    pub metrics: Arc<Metrics>,
    pub deadletter: Arc<DeadLetter>,
    /// Woken by the screen after an enqueue.
    pub wake: Arc<Notify>,
}

/// The sink of one channel.
pub enum Sink {
    Email(email::EmailSink),
    Sms(sms::SmsSink),
}

impl Sink {
    async fn send(&self, item: &Item) -> Result<(), SendError> {
        match self {
            Sink::Email(s) => s.send(item).await,
            Sink::Sms(s) => s.send(item).await,
        }
    }
}

/// How a notification is named in logs: the phone number masked.
fn describe(item: &Item) -> String {
    match item.channel {
        Channel::Email => format!(
            "email to {} for {} ({})",
            item.bureau, item.alert_id, item.state
        ),
        Channel::Sms => format!(
            "SMS to {} of {} for {} ({})",
            item.to.first().map_or_else(String::new, |p| masked(p)),
            item.bureau,
            item.alert_id,
            item.state
        ),
    }
}

impl Worker {
    /// Delivers pending notifications forever; abort it to stop (what is pending stays in
    /// the outbox for the next start).
    pub async fn deliver(self) {
        loop {
            let outbox = Arc::clone(&self.outbox);
            let channel = self.channel;
            let pending = match tokio::task::spawn_blocking(move || outbox.pending(channel)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the outbox; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "the outbox reader failed; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            if pending.is_empty() {
                // The timeout is a safety net only: every enqueue wakes the workers.
                let _ = tokio::time::timeout(Duration::from_secs(5), self.wake.notified()).await;
                continue;
            }
            for p in pending {
                self.one(p).await;
            }
        }
    }

    async fn one(&self, p: Pending) {
        let what = describe(&p.item);
        let mut backoff = Duration::from_secs(1);
        let mut tries = 0u32;
        let (sent, failed, failing) = match self.channel {
            Channel::Email => (
                &self.metrics.emails_sent,
                &self.metrics.emails_failed,
                &self.metrics.email_failing,
            ),
            Channel::Sms => (
                &self.metrics.sms_sent,
                &self.metrics.sms_failed,
                &self.metrics.sms_failing,
            ),
        };
        loop {
            tries += 1;
            match self.sink.send(&p.item).await {
                Ok(()) => {
                    // The delivery is recorded before anything else: every step between the
                    // server's acceptance and this record is a window in which a crash sends
                    // the notification again.
                    if let Err(e) = self.outbox.delivered(&p) {
                        tracing::error!(error = %e, "{what} was sent but cannot be marked so; it may be sent again after a restart");
                    }
                    tracing::info!(tries, key = %p.item.key, "sent {what}");
                    Metrics::add(sent, 1);
                    Metrics::set(failing, 0);
                    break;
                }
                Err(SendError::Permanent(e)) => {
                    tracing::error!(error = %e, "{what} refused permanently; not retried (outbox failed/ and dead-letter file)");
                    Metrics::add(failed, 1);
                    self.deadletter.record(
                        &format!("notify/{}", self.channel.key()),
                        &format!("{what} refused permanently: {e}"),
                        None,
                        p.item.key.as_bytes(),
                    );
                    if let Err(e) = self.outbox.failed(&p) {
                        tracing::error!(error = %e, "cannot move a refused notification out of the outbox");
                    }
                    break;
                }
                Err(SendError::Transient(e)) => {
                    Metrics::add(&self.metrics.notify_retries, 1);
                    Metrics::set(failing, 1);
                    if tries == 1 {
                        tracing::warn!(error = %e, retry_in = ?backoff, "{what} failed; retrying");
                    } else {
                        tracing::debug!(error = %e, retry_in = ?backoff, tries, "{what} failed again");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        Metrics::set(
            &self.metrics.outbox_pending,
            self.outbox.count_pending() as u64,
        );
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

    #[test]
    fn phone_numbers_are_masked() {
        assert_eq!(masked("+8613800001234"), "+86*******1234");
        assert_eq!(masked("12345"), "12345");
    }
}
