//! The notify counters beside their metric names, and the delivery events that log once and
//! count: one [`Counts`] per registered channel, built from the channel list, so a new
//! channel gets its `riverwatch_notifications_total` samples and its `/readyz` object without
//! an edit here or in the HTTP module.
//!
//! Fed by the delivery workers (`notify::Worker`), which report each outcome as an event
//! ([`Counts::sent`], [`Counts::refused`], [`Counts::retrying`]); read by `http`, which
//! writes [`Channels::prometheus`] into `/metrics` and [`Channels::readiness`] into `/readyz`.

use super::{Channel, SetupError};
use crate::telemetry::Metrics;
use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Notifications by channel and outcome (`channel`, `outcome` = `sent` | `failed`).
pub const NOTIFICATIONS: &str = "riverwatch_notifications_total";
const NOTIFICATIONS_HELP: &str = "Notifications by channel and outcome.";
/// Transient delivery failures that were retried, all channels together.
pub const RETRIES: &str = "riverwatch_notify_retries_total";
const RETRIES_HELP: &str = "Notification deliveries that failed transiently and were retried.";
pub const FAILING: &str = "riverwatch_notify_channel_failing";
const FAILING_HELP: &str =
    "1 while the channel's last delivery attempt failed and is being retried (as /readyz shows), else 0.";

/// The counters of one channel.
#[derive(Debug, Default)]
pub struct Counts {
    /// Notifications delivered.
    sent: AtomicU64,
    /// Notifications refused permanently (moved to `failed/`, dead-lettered).
    failed: AtomicU64,
    /// Attempts that failed transiently and were retried.
    retries: AtomicU64,
    /// 1 while the last attempt failed transiently: `/readyz` shows the channel failing.
    failing: AtomicU64,
}

impl Counts {
    /// A notification was delivered (and recorded so) after `tries` attempts.
    pub fn sent(&self, what: &str, tries: u32, key: &str) {
        tracing::info!(tries, key = %key, "sent {what}");
        Metrics::add(&self.sent, 1);
        Metrics::set(&self.failing, 0);
    }

    /// A notification was refused permanently and is not retried.
    pub fn refused(&self, what: &str, why: &str) {
        tracing::error!(error = %why, "{what} refused permanently; not retried (outbox failed/ and dead-letter file)");
        Metrics::add(&self.failed, 1);
    }

    /// Attempt `tries` failed transiently; the next comes after `retry_in`. Logged as a
    /// warning the first time, at debug level after that, so an outage is one line per
    /// notification, not one per attempt.
    pub fn retrying(&self, what: &str, why: &str, tries: u32, retry_in: Duration) {
        Metrics::add(&self.retries, 1);
        Metrics::set(&self.failing, 1);
        if tries == 1 {
            tracing::warn!(error = %why, ?retry_in, "{what} failed; retrying");
        } else {
            tracing::debug!(error = %why, ?retry_in, tries, "{what} failed again");
        }
    }

    /// Delivered so far.
    pub fn sent_total(&self) -> u64 {
        Metrics::get(&self.sent)
    }

    /// Whether the last attempt failed transiently.
    pub fn is_failing(&self) -> bool {
        Metrics::get(&self.failing) == 1
    }
}

/// A channel as the daemon runs it: the channel and its counters.
pub struct Registered {
    pub channel: Arc<dyn Channel>,
    pub counts: Counts,
}

/// The registered channels with their counters, in registration order (the order of the
/// metric samples and of the delivery workers).
pub struct Channels {
    list: Vec<Arc<Registered>>,
}

/// One channel's state as `/readyz` shows it.
pub struct Readiness {
    /// The `/readyz` object's name (`smtp`, `sms`).
    pub component: &'static str,
    /// What the channel delivers, for the sentence (`email`, `SMS`).
    pub noun: &'static str,
    /// Whether the last attempt failed transiently.
    pub failing: bool,
}

impl Channels {
    /// Gives each channel its counters. Refuses a key that cannot name outbox files
    /// (empty, or anything but lowercase ASCII letters, digits and `_`) and a key used twice
    /// (two workers would send the same files).
    pub fn new(channels: Vec<Arc<dyn Channel>>) -> Result<Channels, SetupError> {
        let mut list: Vec<Arc<Registered>> = Vec::new();
        for channel in channels {
            let key = channel.key();
            let usable = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !usable {
                return Err(SetupError::Channel(
                    key,
                    "not lowercase letters, digits and _",
                ));
            }
            if list.iter().any(|r| r.channel.key() == key) {
                return Err(SetupError::Channel(key, "registered twice"));
            }
            list.push(Arc::new(Registered {
                channel,
                counts: Counts::default(),
            }));
        }
        Ok(Channels { list })
    }

    /// The channels with their counters, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Registered>> {
        self.list.iter()
    }

    /// The bare channels, for rendering.
    pub fn channels(&self) -> Vec<Arc<dyn Channel>> {
        self.list.iter().map(|r| Arc::clone(&r.channel)).collect()
    }

    /// The counters of the channel named `key`.
    pub fn counts(&self, key: &str) -> Option<&Counts> {
        self.list
            .iter()
            .find(|r| r.channel.key() == key)
            .map(|r| &r.counts)
    }

    pub fn readiness(&self) -> impl Iterator<Item = Readiness> + '_ {
        self.list.iter().map(|r| Readiness {
            component: r.channel.names().component,
            noun: r.channel.noun(),
            failing: r.counts.is_failing(),
        })
    }

    /// Appends the notify metrics in the Prometheus text format: the retries, then the
    /// notifications by channel and outcome.
    pub fn prometheus(&self, out: &mut String) {
        let retries: u64 = self
            .list
            .iter()
            .map(|r| Metrics::get(&r.counts.retries))
            .sum();
        let _ = writeln!(
            out,
            "# HELP {RETRIES} {RETRIES_HELP}\n# TYPE {RETRIES} counter\n{RETRIES} {retries}"
        );
        let _ = writeln!(
            out,
            "# HELP {NOTIFICATIONS} {NOTIFICATIONS_HELP}\n# TYPE {NOTIFICATIONS} counter"
        );
        for r in &self.list {
            for (outcome, counter) in [("sent", &r.counts.sent), ("failed", &r.counts.failed)] {
                let _ = writeln!(
                    out,
                    "{NOTIFICATIONS}{{channel=\"{}\",outcome=\"{outcome}\"}} {}",
                    r.channel.key(),
                    Metrics::get(counter)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP {FAILING} {FAILING_HELP}\n# TYPE {FAILING} gauge"
        );
        for r in &self.list {
            let _ = writeln!(
                out,
                "{FAILING}{{channel=\"{}\"}} {}",
                r.channel.key(),
                u8::from(r.counts.is_failing())
            );
        }
    }
}
