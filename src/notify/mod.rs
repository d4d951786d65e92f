//! Notify: turns alert transitions into emails and SMS for the bureaus that must hear of them,
//! and delivers them with retries.
//!
//! Fed by the screen stage with [`Transition`]s in order; renders them with the pure
//! `domain::message` and hands them to the sinks in [`email`] and [`sms`]. A failed delivery is
//! retried with exponential backoff (1 s doubling to 60 s) while it is transient; a permanent
//! refusal (SMTP 5xx, gateway 4xx) is logged and counted, not retried. Deliveries are made one
//! at a time in transition order, so a bureau never reads a resolution before its alert.
//!
//! This first version keeps its queue in memory: what is queued when the process dies is lost.
//! The persistent outbox replaces the queue without changing the sinks.

pub mod email;
pub mod sms;

use crate::domain::alert::Transition;
use crate::domain::message;
use crate::domain::network::Network;
use crate::telemetry::Metrics;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Whether a failed delivery may succeed later.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

pub struct Notifier {
    pub net: Arc<Network>,
    pub email: email::EmailSink,
    pub sms: sms::SmsSink,
    pub metrics: Arc<Metrics>,
}

impl Notifier {
    /// Delivers every transition until the input closes.
    pub async fn run(self, mut input: mpsc::Receiver<Transition>) {
        while let Some(t) = input.recv().await {
            self.deliver(&t).await;
        }
    }

    async fn deliver(&self, t: &Transition) {
        let Some(station) = self.net.station(&t.station) else {
            return;
        };
        let (Some(mail), Some(text)) = (message::email(t, &self.net), message::sms(t, &self.net))
        else {
            return;
        };
        for bureau in self.net.recipients(station, t.rule) {
            if !bureau.email.is_empty() {
                let what = format!(
                    "email to {} for {} ({})",
                    bureau.id,
                    t.alert_id,
                    t.state.key()
                );
                let ok = retry(&what, || self.email.send(t, bureau, &mail)).await;
                let counter = if ok {
                    &self.metrics.emails_sent
                } else {
                    &self.metrics.emails_failed
                };
                Metrics::add(counter, 1);
            }
            let phones = if self.sms.is_enabled() {
                bureau.sms.as_slice()
            } else {
                &[]
            };
            for phone in phones {
                let what = format!(
                    "SMS to {} of {} for {} ({})",
                    masked(phone),
                    bureau.id,
                    t.alert_id,
                    t.state.key()
                );
                let ok = retry(&what, || self.sms.send(t, phone, &text)).await;
                let counter = if ok {
                    &self.metrics.sms_sent
                } else {
                    &self.metrics.sms_failed
                };
                Metrics::add(counter, 1);
            }
        }
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

/// Runs `attempt` until it succeeds (true) or fails permanently (false).
async fn retry<F, Fut>(what: &str, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), SendError>>,
{
    let mut backoff = Duration::from_secs(1);
    let mut tries = 0u32;
    loop {
        tries += 1;
        match attempt().await {
            Ok(()) => {
                tracing::info!(tries, "sent {what}");
                return true;
            }
            Err(SendError::Permanent(e)) => {
                tracing::error!(error = %e, "{what} refused permanently; not retried");
                return false;
            }
            Err(SendError::Transient(e)) => {
                if tries == 1 {
                    tracing::warn!(error = %e, retry_in = ?backoff, "{what} failed; retrying");
                } else {
                    tracing::debug!(error = %e, retry_in = ?backoff, tries, "{what} failed again");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
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
