//! Notify: turns alert transitions into notifications for the bureaus that must hear of
//! them, keeps them in the persistent [`outbox`], and delivers them with retries through the
//! registered [`Channel`]s.
//!
//! Fed by the judging task (`alerts`), which calls [`render`] and `Outbox::enqueue` for each batch
//! of transitions before the message that caused them is acknowledged, and [`address`] for each
//! digest of data-level alerts a bureau's operators receive; one [`Worker`] per channel
//! then sends the outbox's pending notifications of that channel, one at a time, in enqueue order
//! per recipient, so a bureau never reads a resolution before its alert, an SMTP outage does not
//! hold back SMS, and one robot or phone number that is down does not hold back another's. A
//! failed delivery is retried with exponential backoff (1 s doubling to 30 s) while it is
//! transient, its recipient's later notifications waiting behind it; a permanent refusal (SMTP 5xx, gateway 4xx) is logged, counted, moved to the outbox's
//! `failed/` and written to the dead-letter file. A notification leaves the outbox only once
//! delivered, so SMTP or the gateway being down, or riverwatch being killed, delays it but never
//! loses it.
//!
//! The seam: a channel is one folder here ([`email`], [`sms`], [`wecom`], [`dingtalk`],
//! [`webhook`], [`mqtt`]) implementing [`Channel`] —
//! its key, its addresses among a bureau's contacts, the drafts of a rendered text, one send and the
//! classification of the answer — with its config section in the folder's `config.rs`
//! (which `config` lists and validates), and one line in [`channels`], the only place that
//! lists them. The outbox, the workers, the metrics ([`metrics`]) and `/readyz` iterate that list,
//! so a new channel touches none of them. What the HTTP channels share (fitting a text to a
//! vendor's size limit, HMAC, reading an `errcode` answer through a channel's table) is in
//! [`wire`]. A feed — a channel for other systems, such as [`mqtt`] — reaches no bureau's
//! contacts: it drafts one item per alert transition or incident event through
//! [`Channel::feed`], which [`feed`] calls for the judging task.

pub mod dingtalk;
pub mod email;
pub mod feed;
pub mod hold;
pub mod metrics;
pub mod mqtt;
pub mod outbox;
pub mod sms;
pub mod webhook;
pub mod wecom;
pub mod wire;

use crate::deadletter::DeadLetter;
use crate::domain::alert::Transition;
use crate::domain::digest::{self, Digest};
use crate::domain::incident::IncidentEvent;
use crate::domain::message::{self, Text};
use crate::domain::network::{Bureau, Contacts, Network};
use crate::ingest::mqtt::config::MqttConfig;
use crate::settings::secret::{Secret, SecretSource};
use crate::state::on_blocking_pool;
use crate::telemetry::Metrics;
use email::config::SmtpConfig;
use metrics::Registered;
use outbox::{Item, Outbox, Pending};
use sms::config::SmsConfig;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Whether a failed delivery may succeed later.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

/// Why the channels cannot be built at start; each names the config key at fault.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A section `run` cannot do without.
    #[error("[{section}] is required by `run` ({why})")]
    Required {
        section: &'static str,
        why: &'static str,
    },
    /// A setting that cannot be used (a bad address, an unreadable secret, a bad header).
    #[error("{0}")]
    Setting(String),
    /// A channel key that cannot be used (a programming error in a channel, caught at start).
    #[error("notification channel {0:?}: {1}")]
    Channel(&'static str, &'static str),
}

/// The adapters build their messages with the config key first (`smtp.from: …`), so a
/// message is a [`SetupError::Setting`] as it stands.
impl From<String> for SetupError {
    fn from(why: String) -> SetupError {
        SetupError::Setting(why)
    }
}

/// One delivery attempt in flight. A boxed future rather than the `async-trait` crate: it
/// keeps [`Channel`] object-safe with no proc-macro in the build, and its one allocation per
/// notification is nothing beside an SMTP dialogue or an HTTP request.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// One notification of one bureau as a channel renders it; [`address`] adds what every
/// outbox [`Item`] carries (key, alert, state, bureau).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Tells this bureau's items of the channel apart in the idempotency key
    /// (`<origin>.<bureau>.<suffix>`, see [`Origin::key`]): `email`, `sms0`, `sms1`, …; stable
    /// for a given config, so the same notification always gets the same keys.
    pub suffix: String,
    /// The addresses this one notification goes to.
    pub to: Vec<String>,
    /// A subject line; empty where the channel has none.
    pub subject: String,
    /// The message text.
    pub text: String,
}

/// A channel's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// The channel's name in outbox file names (`<seq>-<key>-<id>.json`), the items'
    /// `"channel"` field, the `channel` label of `riverwatch_notifications_total` and the
    /// dead-letter reason (`notify/<key>`). Lowercase ASCII letters, digits and `_` only (the
    /// outbox splits file names at `-`); never renamed, or files already queued are orphaned.
    pub key: &'static str,
    /// The `/readyz` object that says whether this channel's deliveries succeed, named after
    /// the server it depends on (`smtp` for email).
    pub component: &'static str,
    /// What it delivers, as `/readyz` sentences and logs name it (`email`, `SMS`).
    pub noun: &'static str,
}

impl Names {
    /// A channel named `key` everywhere.
    pub const fn of(key: &'static str) -> Names {
        Names {
            key,
            component: key,
            noun: key,
        }
    }
}

/// A way of reaching a bureau: built once at start from config ([`channels`]), shared by the
/// screen (rendering) and this channel's delivery worker (sending).
pub trait Channel: Send + Sync {
    /// How the channel is named in files, metrics, readiness and logs.
    fn names(&self) -> Names;

    /// [`Names::key`].
    fn key(&self) -> &'static str {
        self.names().key
    }

    /// [`Names::noun`].
    fn noun(&self) -> &'static str {
        self.names().noun
    }

    /// The addresses this channel has among the contacts `to` (a bureau's duty officers or
    /// its operators); empty when they are not reached this way or the channel is disabled
    /// (then nothing is rendered for it).
    fn recipients(&self, to: &Contacts) -> Vec<String>;

    /// The notifications that carry `text` to `to` (some contacts' [`Channel::recipients`],
    /// never empty): one to all of them, or one each. Pure: no I/O, so the judging task may
    /// call it for every transition.
    fn drafts(&self, text: &Text, to: Vec<String>) -> Vec<Draft>;

    /// How logs name one notification: no secrets, phone numbers masked.
    fn describe(&self, item: &Item) -> String {
        format!(
            "{} to {} for {} ({})",
            self.noun(),
            item.bureau,
            item.alert_id,
            item.state
        )
    }

    /// A feed (a channel for other systems, not for a bureau's people) drafts here the one
    /// notification of an alert transition or incident event it publishes, whoever hears of
    /// it ([`feed`] decides which events, keys the item `<event key>.<suffix>`); channels
    /// that reach bureaus keep the default, none, and a feed answers no
    /// [`Channel::recipients`]. Pure, like [`Channel::drafts`].
    fn feed(&self, _event: &feed::Event) -> Option<Draft> {
        None
    }

    /// Sends one rendered item once, classifying the answer: `Ok` delivered,
    /// [`SendError::Transient`] retried with backoff, [`SendError::Permanent`] moved to
    /// `failed/` and dead-lettered. Must finish in bounded time (the worker waits for it).
    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a>;
}

/// The chat robots and webhooks of every bureau (`[[bureau]] wecom`, `dingtalk`, `webhook`),
/// each under its label (`guangzhou.wecom[0]`), which the bureau's [`Contacts`] list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatConfig {
    pub wecom: Vec<wecom::config::WecomRobot>,
    pub dingtalk: Vec<dingtalk::config::DingtalkRobot>,
    pub webhook: Vec<webhook::config::WebhookTarget>,
}

/// Every channel the daemon runs, in delivery-worker and metrics order: the ONE place a
/// channel is registered. Built inside the runtime (lettre's pool spawns its task when
/// built); secrets are resolved here. A channel whose section is missing either fails the
/// start (email) or is kept disabled, rendering nothing, after one log line (SMS); the chat
/// channels render nothing where no bureau lists a robot; the MQTT feed publishes every
/// event unless `[mqtt] publish_alerts = false`. Takes the channels' sections one by
/// one, since `config` (which assembles them) imports this module.
pub fn channels(
    smtp: Option<&SmtpConfig>,
    sms: Option<&SmsConfig>,
    chat: &ChatConfig,
    mqtt_out: &MqttConfig,
    net: &Network,
) -> Result<Vec<Arc<dyn Channel>>, SetupError> {
    Ok(vec![
        email::from_config(smtp)?,
        sms::from_config(sms, net)?,
        wecom::from_config(&chat.wecom)?,
        dingtalk::from_config(&chat.dingtalk)?,
        webhook::from_config(&chat.webhook)?,
        mqtt::from_config(mqtt_out)?,
    ])
}

/// A robot's or endpoint's URL read from its secret source and checked to be http(s); errors
/// name `label` and the source, never the value (it holds a key or token).
pub(crate) fn resolve_url(source: &SecretSource, label: &str) -> Result<Secret, SetupError> {
    let url = source
        .resolve()
        .map_err(|e| format!("{label} url ({source:?}): {e}"))?;
    match reqwest::Url::parse(url.expose()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(url),
        _ => Err(SetupError::Setting(format!(
            "{label} url ({source:?}): not an http(s) URL"
        ))),
    }
}

/// Sends one request of an HTTP channel and reads the answer: (status, body). A request that
/// gets no answer is transient; its error names `vendor`, never the URL (it may hold a key).
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
    vendor: &str,
) -> Result<(u16, String), SendError> {
    let resp = request
        .send()
        .await
        .map_err(|e| SendError::Transient(format!("{vendor} unreachable: {}", e.without_url())))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// The HTTP client of one channel: requests time out after `timeout`, so a delivery attempt
/// ends in bounded time.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, SetupError> {
    crate::outbound::client_builder(timeout)
        .build()
        .map_err(|e| SetupError::Setting(format!("cannot build the HTTP client: {e}")))
}

/// Longest wait between two attempts of one notification.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The notifications of one transition: for each bureau that must hear of it, what each
/// channel renders for its duty officers, in channel order, each with its idempotency key.
pub fn render(t: &Transition, net: &Network, channels: &[Arc<dyn Channel>]) -> Vec<Item> {
    let Some(station) = net.station(&t.station) else {
        return Vec::new();
    };
    let Some(text) = message::text(t, net) else {
        return Vec::new();
    };
    let origin = Origin::alert(t);
    net.recipients(station, t.rule)
        .into_iter()
        .flat_map(|bureau| address(&text, bureau, &bureau.duty, &origin, channels))
        .collect()
}

/// The notifications of one incident event: to the duty officers of every bureau concerned
/// by a station of its reach (both cities when it heads for a boundary section), through
/// every channel.
pub fn render_incident(
    e: &IncidentEvent,
    net: &Network,
    channels: &[Arc<dyn Channel>],
) -> Vec<Item> {
    let Some(text) = message::incident::text(e, net) else {
        return Vec::new();
    };
    let origin = Origin::incident(e);
    net.incident_recipients(&e.incident)
        .into_iter()
        .flat_map(|bureau| address(&text, bureau, &bureau.duty, &origin, channels))
        .collect()
}

/// The notifications of one escalation: to the `escalation` recipients of the bureau that did
/// not acknowledge, through every channel that reaches them, keyed
/// `<id>.unacknowledged<n>.<bureau>.<suffix>`, so an escalation rendered again after a crash
/// is recognised.
pub fn render_escalation(
    d: &crate::domain::escalation::Due,
    net: &Network,
    channels: &[Arc<dyn Channel>],
) -> Vec<Item> {
    let Some(bureau) = net.bureau(&d.bureau) else {
        return Vec::new();
    };
    let Some(escalation) = &bureau.escalation else {
        return Vec::new();
    };
    let text = message::escalation::text(
        &d.text,
        &message::escalation::Unacknowledged {
            id: &d.target,
            incident: d.incident,
            bureau: &bureau.name,
            after: escalation.after,
            since: d.since,
            nth: d.nth,
        },
    );
    let origin = Origin {
        key: format!("{}.unacknowledged{}", d.target, d.nth).to_lowercase(),
        alert_id: d.target.clone(),
        state: "unacknowledged".to_string(),
        level: Some(d.level.clone()),
        station: Some(d.station.clone()),
    };
    address(&text, bureau, &escalation.to, &origin, channels)
}

/// What every outbox item of one notification carries about where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The base of the items' idempotency keys, `<base>.<bureau>.<suffix>`: for a transition
    /// `<alert id>.<kind>.<reading time>`, for a digest `digest.<bureau>.<opened>`, lowercase.
    /// The same notification must always get the same base: the outbox recognises a
    /// notification produced again after a crash by its keys.
    pub key: String,
    /// The alert id, the incident's or the digest's id: logs and email file names show it.
    pub alert_id: String,
    /// `firing`, `resolved`, `digest`, `unacknowledged` (an escalation), or an incident event
    /// (`opened`, …, `ended`).
    pub state: String,
    /// The alert's level (`blue` … `red`), the incident's highest; `None` for a digest.
    pub level: Option<String>,
    /// The alert's station, the incident's origin; `None` for a digest (it spans stations).
    pub station: Option<String>,
}

impl Origin {
    /// What the notifications of one alert transition carry.
    pub fn alert(t: &Transition) -> Origin {
        Origin {
            key: format!(
                "{}.{}.{}",
                t.alert_id,
                t.kind.key(),
                t.evidence.ts.format("%Y%m%dT%H%M%SZ")
            )
            .to_lowercase(),
            alert_id: t.alert_id.clone(),
            state: t.state.key().to_string(),
            level: Some(t.level.key().to_string()),
            station: Some(t.station.clone()),
        }
    }

    /// What the notifications of one incident event carry.
    pub fn incident(e: &IncidentEvent) -> Origin {
        Origin {
            key: e.key().to_lowercase(),
            alert_id: e.incident.id.clone(),
            state: e.kind.key().to_string(),
            level: Some(e.incident.level.key().to_string()),
            station: Some(e.incident.origin.clone()),
        }
    }
}

/// The outbox items that carry `text` to the contacts `to` of `bureau` (its duty officers or
/// its operators) through every channel that has an address there, in channel order. Pure:
/// the judging task calls it for transitions ([`render`]) and digests alike.
pub fn address(
    text: &Text,
    bureau: &Bureau,
    to: &Contacts,
    origin: &Origin,
    channels: &[Arc<dyn Channel>],
) -> Vec<Item> {
    let mut out = Vec::new();
    for channel in channels {
        let addresses = channel.recipients(to);
        if addresses.is_empty() {
            continue;
        }
        for draft in channel.drafts(text, addresses) {
            out.push(Item {
                key: format!("{}.{}.{}", origin.key, bureau.id, draft.suffix),
                channel: channel.key().to_string(),
                alert_id: origin.alert_id.clone(),
                state: origin.state.clone(),
                level: origin.level.clone(),
                station: origin.station.clone(),
                bureau: bureau.id.clone(),
                bureau_name: bureau.name.clone(),
                to: draft.to,
                subject: draft.subject,
                text: draft.text,
            });
        }
    }
    out
}

/// The notifications of one digest of data-level alerts: to its bureau's operators (its duty
/// officers where it has none), through every channel, keyed by the digest's batch
/// (`digest.<bureau>.<opened>`), so a digest released again after a crash is recognised.
pub fn render_digest(d: &Digest, net: &Network, channels: &[Arc<dyn Channel>]) -> Vec<Item> {
    let Some(bureau) = net.bureau(&d.bureau) else {
        return Vec::new();
    };
    let origin = Origin {
        key: d.key(),
        alert_id: d.id(),
        state: "digest".to_string(),
        level: None,
        station: None,
    };
    let text = digest::text::text(d, net);
    address(&text, bureau, bureau.data_contacts(), &origin, channels)
}

/// What a delivery worker needs.
pub struct Worker {
    pub outbox: Arc<Outbox>,
    /// The channel it delivers for, with its counters.
    pub channel: Arc<Registered>,
    /// For the outbox gauge.
    pub metrics: Arc<Metrics>,
    pub deadletter: Arc<DeadLetter>,
    /// Woken by the judging task after an enqueue.
    pub wake: Arc<Notify>,
    /// Set when the daemon stops: the worker then returns as soon as its channel has nothing
    /// pending, so shutdown waits on the workers rather than polling the outbox.
    pub stopping: watch::Receiver<bool>,
}

/// A recipient (an address, a phone number, a robot's label) whose last attempt failed
/// transiently: when to try it again, the wait after that, and the attempts so far.
#[derive(Debug)]
struct Backoff {
    retry_at: tokio::time::Instant,
    next_wait: Duration,
    tries: u32,
}

/// What one attempt came to.
enum Attempt {
    /// Delivered or refused for good: the recipient's next notification may go.
    Done,
    /// Failed transiently: the recipient waits.
    Retry,
}

impl Worker {
    /// Delivers pending notifications until the daemon stops and nothing is pending for this
    /// channel; the shutdown sequence aborts it when the grace period ends first (what is
    /// pending stays in the outbox for the next start).
    ///
    /// Order and waiting are per recipient (the item's `to`): a recipient's notifications go
    /// in enqueue order, and one that fails transiently waits with exponential backoff (1 s
    /// doubling to 30 s) together with that recipient's later ones, while the other
    /// recipients' notifications go on. One robot or gateway number that is down never holds
    /// back another bureau's.
    pub async fn deliver(mut self) {
        let mut waiting: HashMap<String, Backoff> = HashMap::new();
        loop {
            let outbox = Arc::clone(&self.outbox);
            let key = self.channel.channel.key();
            let pending = match on_blocking_pool(move || outbox.pending(key)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            if pending.is_empty() {
                waiting.clear();
                if *self.stopping.borrow() {
                    return;
                }
                // The timeout is a safety net only: every enqueue wakes the workers.
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = self.stopping.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
            let now = tokio::time::Instant::now();
            // Recipients that wait: their notifications keep their order behind the one that
            // failed.
            let mut held: HashSet<String> = waiting
                .iter()
                .filter(|(_, b)| b.retry_at > now)
                .map(|(to, _)| to.clone())
                .collect();
            for p in pending {
                let to = p.item.to.join(",");
                if held.contains(&to) {
                    continue;
                }
                let backoff = waiting.remove(&to);
                match self.one(&p, backoff.as_ref()).await {
                    Attempt::Done => {}
                    Attempt::Retry => {
                        let (tries, wait) = backoff
                            .map_or((1, Duration::from_secs(1)), |b| (b.tries + 1, b.next_wait));
                        waiting.insert(
                            to.clone(),
                            Backoff {
                                retry_at: tokio::time::Instant::now() + wait,
                                next_wait: (wait * 2).min(MAX_BACKOFF),
                                tries,
                            },
                        );
                        held.insert(to);
                    }
                }
            }
            let outbox = Arc::clone(&self.outbox);
            if let Ok(left) = on_blocking_pool(move || Ok(outbox.count_pending())).await {
                Metrics::set(&self.metrics.outbox_pending, left as u64);
            }
            // Until the next recipient may be tried again, or something new is enqueued.
            if let Some(next) = waiting.values().map(|b| b.retry_at).min() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = self.stopping.changed() => {}
                    _ = tokio::time::sleep_until(next) => {}
                }
            }
        }
    }

    /// One attempt at `p`, whose recipient failed `backoff.tries` times before.
    async fn one(&self, p: &Pending, backoff: Option<&Backoff>) -> Attempt {
        let channel = &self.channel.channel;
        let counts = &self.channel.counts;
        let what = channel.describe(&p.item);
        let tries = backoff.map_or(1, |b| b.tries + 1);
        match channel.send(&p.item).await {
            Ok(()) => {
                // The delivery is recorded before anything else, and right here rather than
                // on the blocking pool: every instant between the server's acceptance and
                // this record is one in which a kill sends the notification again, and a
                // hand-off to another thread (and back) lengthened it when the runtime was
                // busy. The record is one synced append of a line (about 0.2 ms).
                if let Err(e) = self.outbox.delivered(p) {
                    tracing::error!(error = %e, "{what} was sent but cannot be marked so; it may be sent again after a restart");
                }
                counts.sent(&what, tries, &p.item.key);
                Attempt::Done
            }
            Err(SendError::Permanent(e)) => {
                counts.refused(&what, &e);
                self.deadletter.record(
                    &format!("notify/{}", channel.key()),
                    &format!("{what} refused permanently: {e}"),
                    None,
                    p.item.key.as_bytes(),
                );
                let (outbox, done) = (Arc::clone(&self.outbox), p.clone());
                if let Err(e) = on_blocking_pool(move || outbox.failed(&done)).await {
                    tracing::error!(error = %e, "cannot move a refused notification out of the outbox");
                }
                Attempt::Done
            }
            Err(SendError::Transient(e)) => {
                let wait = backoff.map_or(Duration::from_secs(1), |b| b.next_wait);
                counts.retrying(&what, &e, tries, wait);
                Attempt::Retry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::tests::firing;

    fn email() -> Arc<dyn Channel> {
        Arc::new(email::EmailSink::Folder {
            dir: std::env::temp_dir(),
            from: "rw <rw@example.org>".parse().expect("mailbox"),
        })
    }

    /// Both bureaus hear of a boundary exceedance; per bureau the email comes first, then an
    /// SMS per phone number, keys as the outbox has always named them; a disabled SMS channel
    /// renders nothing.
    #[test]
    fn render_asks_each_channel_for_each_bureau() {
        let mut net = crate::domain::network::fixtures::network();
        net.bureaus[1].duty.sms = vec!["+8613800000001".into(), "+8613800000002".into()];
        let t = firing();
        let sms: Arc<dyn Channel> = Arc::new(sms::SmsSink::Log("/dev/null".into()));
        let items = render(&t, &net, &[email(), sms]);
        let got: Vec<_> = items
            .iter()
            .map(|i| (i.channel.clone(), i.key.clone(), i.to.join(",")))
            .collect();
        let base = "shijiao-exceedance-nh3n-20261126t060000.fired.20261126t020000z";
        let expected: Vec<_> = [
            ("email", "guangzhou.email", "duty@guangzhou.example.org"),
            ("email", "qingyuan.email", "duty@qingyuan.example.org"),
            ("sms", "qingyuan.sms0", "+8613800000001"),
            ("sms", "qingyuan.sms1", "+8613800000002"),
        ]
        .iter()
        .map(|(c, k, to)| (c.to_string(), format!("{base}.{k}"), to.to_string()))
        .collect();
        assert_eq!(got, expected);
        assert!(items.iter().all(|i| i.state == "firing"));
        assert!(items[0].subject.contains("shijiao"), "{}", items[0].subject);
        assert!(items[2].subject.is_empty() && !items[2].text.is_empty());

        let disabled: Arc<dyn Channel> = Arc::new(sms::SmsSink::Disabled);
        let keys: Vec<_> = render(&t, &net, &[email(), disabled])
            .into_iter()
            .map(|i| i.channel)
            .collect();
        assert_eq!(keys, ["email", "email"], "no SMS without a gateway");
    }

    /// A digest goes to its bureau's operators where it has them, else to its duty officers,
    /// on every channel that has an address there, keyed by its batch.
    #[test]
    fn a_digest_goes_to_the_operators_else_to_the_duty_officers() {
        use crate::domain::digest::{Cause, Change, Entry};
        use crate::domain::network::Contacts;
        use chrono::TimeZone;
        let opened = chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 2, 0, 0)
            .single()
            .expect("time");
        let d = Digest {
            bureau: "qingyuan".into(),
            opened,
            released: opened + chrono::Duration::minutes(15),
            entries: vec![Entry {
                station: "shijiao".into(),
                rule: crate::domain::alert::Rule::StationFault,
                param: Some(crate::domain::param::Param::Ph),
                alert_id: "shijiao-station_fault-ph-20261126T020000Z".into(),
                change: Change::Fired,
                since: opened,
                at: opened,
                cause: Cause::Fault {
                    reason: "instrument flag D".into(),
                },
            }],
        };
        let sms: Arc<dyn Channel> = Arc::new(sms::SmsSink::Log("/dev/null".into()));
        let channels = [email(), sms];
        let sent = |net: &Network| -> Vec<(String, String, String)> {
            render_digest(&d, net, &channels)
                .into_iter()
                .map(|i| {
                    assert_eq!(
                        (i.alert_id.as_str(), i.state.as_str()),
                        ("digest-qingyuan-20261126T020000Z", "digest")
                    );
                    (i.channel, i.key, i.to.join(","))
                })
                .collect()
        };
        let base = "digest.qingyuan.20261126t020000z.qingyuan";
        let mut net = crate::domain::network::fixtures::network();
        net.bureaus[1].duty.sms = vec!["+8613800000001".into()];
        assert_eq!(
            sent(&net),
            [
                (
                    "email".into(),
                    format!("{base}.email"),
                    "duty@qingyuan.example.org".into()
                ),
                (
                    "sms".into(),
                    format!("{base}.sms0"),
                    "+8613800000001".into()
                ),
            ],
            "no operators: the duty officers"
        );
        net.bureaus[1].operators = Some(Contacts {
            email: vec!["ops@qingyuan.example.org".into()],
            ..Contacts::default()
        });
        assert_eq!(
            sent(&net),
            [(
                "email".into(),
                format!("{base}.email"),
                "ops@qingyuan.example.org".into()
            )],
            "operators: they alone"
        );
    }

    /// The five channels with robots and endpoints for both bureaus of the fixture network,
    /// their URLs and secrets in files (as `*_file` gives them).
    fn every_channel(net: &mut Network, dir: &std::path::Path) -> Vec<Arc<dyn Channel>> {
        use crate::settings::secret::SecretSource;
        let file = |name: &str, value: &str| {
            let path = dir.join(name);
            std::fs::write(&path, value).expect("write");
            SecretSource::File(path)
        };
        let mut chat = ChatConfig::default();
        for b in &mut net.bureaus {
            b.duty.sms = vec!["+8613800000001".into()];
            b.duty.wecom = vec![format!("{}.wecom[0]", b.id)];
            b.duty.dingtalk = vec![format!("{}.dingtalk[0]", b.id)];
            b.duty.webhook = vec![format!("{}.webhook[0]", b.id)];
            chat.wecom.push(wecom::config::WecomRobot {
                label: b.duty.wecom[0].clone(),
                url: file("w", "https://qyapi.example/send?key=k"),
            });
            chat.dingtalk.push(dingtalk::config::DingtalkRobot {
                label: b.duty.dingtalk[0].clone(),
                url: file("d", "https://oapi.example/robot/send?access_token=t"),
                secret: Some(file("ds", "SECx")),
                keywords: vec!["水质预警".into()],
                at_mobiles: vec!["13800000000".into()],
                at_all: false,
            });
            chat.webhook.push(webhook::config::WebhookTarget {
                label: b.duty.webhook[0].clone(),
                url: webhook::config::UrlSource::Plain("https://bus.example/alerts".into()),
                secret: file("hs", "whsec"),
            });
        }
        let sms: Arc<dyn Channel> = Arc::new(sms::SmsSink::Log("/dev/null".into()));
        let mut all = vec![email(), sms];
        all.push(wecom::from_config(&chat.wecom).expect("wecom"));
        all.push(dingtalk::from_config(&chat.dingtalk).expect("dingtalk"));
        all.push(webhook::from_config(&chat.webhook).expect("webhook"));
        all
    }

    /// Every golden transition, rendered through every channel, fits that channel's limits;
    /// the chat items name their robot by label, never by URL.
    #[tokio::test]
    async fn every_golden_message_fits_every_channel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut net = crate::domain::message::tests::named();
        let channels = every_channel(&mut net, dir.path());
        for (name, t, _) in crate::domain::message::tests::cases() {
            let items = render(&t, &net, &channels);
            let first = items.first().map(|i| i.bureau.clone()).unwrap_or_default();
            let seen: Vec<&str> = items
                .iter()
                .filter(|i| i.bureau == first)
                .map(|i| i.channel.as_str())
                .collect();
            assert_eq!(
                seen,
                ["email", "sms", "wecom", "dingtalk", "webhook"],
                "{name}: one bureau's items"
            );
            for i in &items {
                let fits = match i.channel.as_str() {
                    "sms" => i.text.chars().count() <= sms::MAX_CHARS,
                    "wecom" => i.text.len() <= wecom::MAX_BYTES,
                    "dingtalk" => {
                        i.text.len() <= dingtalk::MAX_BYTES
                            && i.subject.len() <= dingtalk::MAX_TITLE_BYTES
                            && i.text.contains("水质预警")
                            && i.text.contains("@13800000000")
                    }
                    "webhook" => i.text.len() <= webhook::MAX_TEXT_BYTES,
                    _ => true,
                };
                assert!(fits, "{name}: {} item of {} bytes", i.channel, i.text.len());
                if ["wecom", "dingtalk", "webhook"].contains(&i.channel.as_str()) {
                    assert_eq!(i.to, [format!("{}.{}[0]", i.bureau, i.channel)], "{name}");
                    let json = serde_json::to_string(i).expect("json");
                    assert!(
                        !json.contains("key=k") && !json.contains("access_token"),
                        "{json}"
                    );
                }
                assert_eq!(i.station.as_deref(), Some(t.station.as_str()));
                assert_eq!(i.level.as_deref(), Some(t.level.key()));
            }
        }
    }

    #[test]
    fn channel_keys_must_name_outbox_files_and_be_unique() {
        assert!(metrics::Channels::new(vec![email(), Arc::new(sms::SmsSink::Disabled)]).is_ok());
        let twice = metrics::Channels::new(vec![email(), email()]);
        assert!(
            matches!(twice, Err(SetupError::Channel("email", _))),
            "{:?}",
            twice.err()
        );
    }

    /// A channel whose recipient "down" fails transiently until `up` is set; every delivery
    /// is kept in order.
    struct Flaky {
        up: std::sync::atomic::AtomicBool,
        got: std::sync::Mutex<Vec<String>>,
    }

    impl Channel for Flaky {
        fn names(&self) -> Names {
            Names::of("flaky")
        }
        fn recipients(&self, _: &Contacts) -> Vec<String> {
            Vec::new()
        }
        fn drafts(&self, _: &Text, _: Vec<String>) -> Vec<Draft> {
            Vec::new()
        }
        fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
            Box::pin(async move {
                let down = item.to == ["down"];
                if down && !self.up.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(SendError::Transient("down".into()));
                }
                self.got.lock().expect("lock").push(item.key.clone());
                Ok(())
            })
        }
    }

    /// One recipient failing does not hold back another's notifications; its own wait and
    /// then go in order.
    #[tokio::test]
    async fn a_failing_recipient_waits_alone_and_keeps_its_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Arc::new(Outbox::open(&dir.path().join("outbox")).expect("outbox"));
        let item = |key: &str, to: &str| Item {
            to: vec![to.into()],
            ..outbox::tests::item(key, "flaky")
        };
        outbox
            .enqueue(&[
                item("a1", "down"),
                item("b1", "up"),
                item("a2", "down"),
                item("b2", "up"),
            ])
            .expect("enqueue");
        let flaky = Arc::new(Flaky {
            up: false.into(),
            got: Default::default(),
        });
        let channels =
            metrics::Channels::new(vec![flaky.clone() as Arc<dyn Channel>]).expect("channels");
        let (stop, stopping) = watch::channel(false);
        let worker = Worker {
            outbox: Arc::clone(&outbox),
            channel: Arc::clone(channels.iter().next().expect("registered")),
            metrics: Arc::default(),
            deadletter: Arc::new(
                DeadLetter::open(&dir.path().join("dead.jsonl")).expect("dead letters"),
            ),
            wake: Arc::new(Notify::new()),
            stopping,
        };
        let task = tokio::spawn(worker.deliver());
        let got = || flaky.got.lock().expect("lock").clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got() != ["b1", "b2"] {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", got());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flaky.up.store(true, std::sync::atomic::Ordering::SeqCst);
        stop.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the worker ends once the outbox is empty")
            .expect("no panic");
        assert_eq!(got(), ["b1", "b2", "a1", "a2"]);
        assert_eq!(outbox.count_pending(), 0);
    }
}
