//! The MQTT channel: every alert transition and incident event, as JSON, to
//! `<[mqtt] alerts_topic>/<station>` (`riverwatch/alerts/<station>` by default, SPEC §3), QoS 1,
//! for other systems (a bureau's platform, a city dashboard) that subscribe.
//!
//! A feed, not a bureau's channel: it answers no [`Channel::recipients`] and drafts one item
//! per event through [`Channel::feed`] (which events: `notify::feed`), whatever the bureaus,
//! so the message is published once. Fed by the judging task through the outbox like every
//! channel, and by its delivery worker with one item at a time: the item is delivered when
//! the broker's PUBACK arrives; a broker that is down or does not answer within
//! [`ACK_TIMEOUT`] is a transient failure, retried by the worker with backoff, so a broker
//! outage delays alerts but loses none. QoS 1 is at least once: a connection lost between
//! the broker's taking a message and its PUBACK reaching us sends it again, under the same
//! `key`, by which a subscriber drops the copy.
//!
//! Its own connection (`<[mqtt] client_id>-out`, clean session, no last will), beside the
//! ingest's persistent one: a publish waiting for its PUBACK never holds up the
//! acknowledgements of readings, and a clean session means rumqttc drops, rather than sends
//! again after a reconnect, a publish the worker will retry itself. One task ([`drive`])
//! polls the event loop and matches each PUBACK to the delivery waiting for it; it ends,
//! with a DISCONNECT, when the channel is dropped.
//!
//! Its settings are `[mqtt]`'s (`ingest::mqtt::config`: the broker, credentials and TLS it
//! shares with the source, plus `alerts_topic` and `publish_alerts`), so it has no
//! `config.rs` of its own.
//!
//! The payload ([`payload`], schema version 1, documented in the README): `version`, `kind`
//! (`alert` or `incident`), `id`, `rule`, `level`, `state`, `event`, `station`, `param`,
//! `value`, `limit`, `ts`, `incident`, `bureaus`, `text` (the short Chinese text) and
//! `key`; about 600 bytes, far below any broker's limit (mosquitto's default is 256 MiB).

use super::feed::Event;
use super::outbox::Item;
use super::{Channel, Draft, Names, SendError, Sending, SetupError};
use crate::domain::message::Text;
use crate::domain::network::Contacts;
use crate::ingest::mqtt::config::MqttConfig;
use chrono::SecondsFormat;
use rumqttc::{AsyncClient, Event as Polled, EventLoop, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Key `mqtt`, `/readyz` object `mqtt_alerts` (the ingest connection is `mqtt`), said "MQTT
/// alert".
pub const NAMES: Names = Names {
    key: "mqtt",
    component: "mqtt_alerts",
    noun: "MQTT alert",
};

/// How long a delivery waits for the broker's PUBACK before it counts as failed (and is
/// retried).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the channel from `[mqtt]`: disabled (publishing nothing) when `publish_alerts` is
/// false, else connected (in a task of its own, spawned here) to the broker the daemon reads
/// from, with the same credentials and TLS. Must be called inside the runtime.
///
/// # Errors
/// [`SetupError::Setting`] when the password or a TLS file cannot be read, or outside a
/// runtime.
pub fn from_config(cfg: &MqttConfig) -> Result<Arc<dyn Channel>, SetupError> {
    if !cfg.publish_alerts {
        return Ok(Arc::new(MqttSink::Disabled));
    }
    let password = match &cfg.password {
        Some(source) => Some(
            source
                .resolve()
                .map_err(|e| format!("mqtt.password ({source:?}): {e}"))?,
        ),
        None => None,
    };
    let mut options = crate::ingest::mqtt::options(cfg, password.as_ref())
        .map_err(|e| SetupError::Setting(e.to_string()))?;
    options
        .set_client_id(format!("{}-out", cfg.client_id))
        .set_clean_session(true)
        .set_manual_acks(false)
        .set_request_channel_capacity(REQUESTS);
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        SetupError::Setting("the MQTT alert channel is built outside a runtime".into())
    })?;
    let (client, eventloop) = AsyncClient::new(options, REQUESTS);
    let (jobs, rx) = mpsc::channel(JOBS);
    runtime.spawn(drive(eventloop, client, rx));
    Ok(Arc::new(MqttSink::Publishing {
        prefix: cfg.alerts_topic.clone(),
        jobs,
    }))
}

/// Room in rumqttc's request channel: one delivery at a time and its DISCONNECT, with slack.
const REQUESTS: usize = 16;
/// Room for deliveries handed to the driver: the one worker sends one at a time.
const JOBS: usize = 4;

/// The MQTT channel.
pub enum MqttSink {
    /// `[mqtt] publish_alerts = false`: drafts nothing.
    Disabled,
    Publishing {
        /// `[mqtt] alerts_topic`.
        prefix: String,
        /// To the task that owns the connection; closed when the channel is dropped.
        jobs: mpsc::Sender<Job>,
    },
}

/// One publish handed to [`drive`], answered once the broker acknowledged it or it failed.
pub struct Job {
    topic: String,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), SendError>>,
}

/// The JSON payload of one event (schema version 1).
pub fn payload(event: &Event) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "kind": event.subject.key(),
        "id": event.id,
        "rule": event.rule,
        "level": event.level,
        "state": event.state,
        "event": event.event,
        "station": event.station,
        "param": event.param,
        "value": event.value,
        "limit": event.limit,
        "ts": event.ts.to_rfc3339_opts(SecondsFormat::Secs, true),
        "incident": event.incident,
        "bureaus": event.bureaus,
        "text": event.text,
        "key": event.key,
    })
}

impl MqttSink {
    async fn publish(&self, item: &Item) -> Result<(), SendError> {
        let MqttSink::Publishing { jobs, .. } = self else {
            return Err(SendError::Permanent(
                "MQTT alerts are no longer published ([mqtt] publish_alerts = false)".into(),
            ));
        };
        let Some(topic) = item.to.first() else {
            return Err(SendError::Permanent("an MQTT alert without a topic".into()));
        };
        let (done, answer) = oneshot::channel();
        let job = Job {
            topic: topic.clone(),
            payload: item.text.clone().into_bytes(),
            done,
        };
        if jobs.send(job).await.is_err() {
            return Err(SendError::Transient(
                "the MQTT connection has stopped".into(),
            ));
        }
        match tokio::time::timeout(ACK_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SendError::Transient(
                "the MQTT connection has stopped".into(),
            )),
            Err(_) => Err(SendError::Transient(format!(
                "no PUBACK from the broker within {} s",
                ACK_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl Channel for MqttSink {
    fn names(&self) -> Names {
        NAMES
    }

    /// None: the channel reaches no bureau's people.
    fn recipients(&self, _to: &Contacts) -> Vec<String> {
        Vec::new()
    }

    fn drafts(&self, _text: &Text, _to: Vec<String>) -> Vec<Draft> {
        Vec::new()
    }

    /// One item to `<prefix>/<station>`, keyed `<event key>.mqtt`, its text the JSON payload.
    fn feed(&self, event: &Event) -> Option<Draft> {
        let MqttSink::Publishing { prefix, .. } = self else {
            return None;
        };
        Some(Draft {
            suffix: NAMES.key.into(),
            to: vec![format!("{prefix}/{}", event.station)],
            subject: String::new(),
            text: payload(event).to_string(),
        })
    }

    fn describe(&self, item: &Item) -> String {
        format!(
            "MQTT alert to {} for {} ({})",
            item.to.first().map_or("", String::as_str),
            item.alert_id,
            item.state
        )
    }

    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
        Box::pin(self.publish(item))
    }
}

/// The deliveries waiting for the broker: queued (in publish order, until rumqttc gives
/// them a packet id as it writes them) and written (by packet id, until their PUBACK).
#[derive(Default)]
struct Waiting {
    queued: VecDeque<oneshot::Sender<Result<(), SendError>>>,
    written: HashMap<u16, oneshot::Sender<Result<(), SendError>>>,
}

impl Waiting {
    /// Fails every waiting delivery: the connection is gone and, the session being clean,
    /// rumqttc will not send them again; the worker retries each.
    fn fail_all(&mut self, why: &str) {
        let all = self
            .queued
            .drain(..)
            .chain(self.written.drain().map(|(_, d)| d));
        for done in all {
            let _ = done.send(Err(SendError::Transient(why.to_string())));
        }
    }
}

/// Polls the event loop, hands jobs to the client while connected (and fails them at once
/// while not, so the worker's backoff paces the retries), and answers each job on its PUBACK.
/// Ends when every sender of `jobs` is gone, with a DISCONNECT.
async fn drive(mut eventloop: EventLoop, client: AsyncClient, mut jobs: mpsc::Receiver<Job>) {
    let mut waiting = Waiting::default();
    let mut connected = false;
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        let polled = tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                if job.done.is_closed() {
                    // Its delivery gave up waiting; the worker sends it again.
                    continue;
                }
                if !connected {
                    let _ = job.done.send(Err(SendError::Transient(
                        "not connected to the MQTT broker".into(),
                    )));
                    continue;
                }
                match client.try_publish(job.topic, QoS::AtLeastOnce, false, job.payload) {
                    Ok(()) => waiting.queued.push_back(job.done),
                    Err(e) => {
                        let _ = job.done.send(Err(SendError::Transient(format!(
                            "cannot queue the MQTT publish: {e}"
                        ))));
                    }
                }
                continue;
            }
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Polled::Incoming(Packet::ConnAck(_))) => {
                connected = true;
                backoff = Duration::from_millis(100);
                if failing {
                    tracing::info!("MQTT alert connection restored");
                }
                failing = false;
            }
            Ok(Polled::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some(done) = waiting.queued.pop_front() {
                    waiting.written.insert(pkid, done);
                }
            }
            Ok(Polled::Incoming(Packet::PubAck(ack))) => {
                if let Some(done) = waiting.written.remove(&ack.pkid) {
                    let _ = done.send(Ok(()));
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected = false;
                waiting.fail_all(&format!("MQTT connection lost: {e}"));
                if !failing {
                    tracing::warn!(error = %e, retry_in = ?backoff, "MQTT alert connection lost; reconnecting");
                    failing = true;
                }
                // Jobs keep being answered (failed) while the broker is away.
                let pause = tokio::time::sleep(backoff);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        _ = &mut pause => break,
                        job = jobs.recv() => match job {
                            Some(job) => {
                                let _ = job.done.send(Err(SendError::Transient(
                                    "not connected to the MQTT broker".into(),
                                )));
                            }
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    if connected && client.try_disconnect().is_ok() {
        let deadline = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                ev = eventloop.poll() => match ev {
                    Ok(Polled::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::feed;

    fn sink() -> MqttSink {
        let (jobs, _rx) = mpsc::channel(1);
        MqttSink::Publishing {
            prefix: "riverwatch/alerts".into(),
            jobs,
        }
    }

    /// Golden: the payload of the fixture's exceedance, every schema field present.
    #[test]
    fn an_alert_payload_has_the_documented_fields() {
        let net = crate::domain::message::tests::named();
        let t = crate::domain::message::tests::firing();
        let event = feed::alert_event(&t, &net).expect("an event");
        let v = payload(&event);
        let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "bureaus", "event", "id", "incident", "key", "kind", "level", "limit", "param",
                "rule", "state", "station", "text", "ts", "value", "version"
            ]
        );
        assert_eq!(v["version"], 1);
        assert_eq!(v["kind"], "alert");
        assert_eq!(v["id"], t.alert_id.as_str());
        assert_eq!(v["rule"], "exceedance");
        assert_eq!(v["state"], "firing");
        assert_eq!(v["event"], "fired");
        assert_eq!(v["station"], "shijiao");
        assert_eq!(v["param"], "nh3n");
        assert_eq!(v["value"], t.evidence.value);
        assert_eq!(v["limit"], 0.5, "class Ⅱ NH3-N");
        assert_eq!(v["ts"], "2026-11-26T02:00:00Z");
        assert_eq!(v["bureaus"], serde_json::json!(["guangzhou", "qingyuan"]));
        assert_eq!(
            v["key"],
            "shijiao-exceedance-nh3n-20261126t060000.fired.20261126t020000z"
        );
        assert!(
            v["text"].as_str().is_some_and(|s| s.chars().count() <= 70),
            "{}",
            v["text"]
        );
    }

    /// One item per transition, to `<prefix>/<station>`, whatever the bureaus; nothing for
    /// reminders or for a disabled channel; every golden transition's payload far below a
    /// broker's limits.
    #[test]
    fn one_item_per_transition_to_the_station_topic() {
        let net = crate::domain::message::tests::named();
        let email: Arc<dyn Channel> = Arc::new(crate::notify::email::EmailSink::Folder {
            dir: std::env::temp_dir(),
            from: "rw <rw@example.org>".parse().expect("mailbox"),
        });
        let channels: Vec<Arc<dyn Channel>> = vec![email, Arc::new(sink())];
        for (name, t, _) in crate::domain::message::tests::cases() {
            let items = feed::items(&t, &net, &channels);
            if t.kind == crate::domain::alert::Kind::Reminder || !t.rule.notifies() {
                assert!(items.is_empty(), "{name}");
                continue;
            }
            assert_eq!(items.len(), 1, "{name}: one item");
            let i = &items[0];
            assert_eq!(i.channel, "mqtt");
            assert_eq!(i.to, [format!("riverwatch/alerts/{}", t.station)], "{name}");
            assert!(i.key.ends_with(".mqtt"), "{}", i.key);
            assert!(i.text.len() < 2048, "{name}: {} bytes", i.text.len());
            let v: serde_json::Value = serde_json::from_str(&i.text).expect("json");
            assert_eq!(v["station"], t.station.as_str());
            assert!(
                crate::notify::render(&t, &net, &channels)
                    .iter()
                    .all(|i| i.channel != "mqtt"),
                "{name}: no per-bureau item"
            );
        }
        let disabled: Vec<Arc<dyn Channel>> = vec![Arc::new(MqttSink::Disabled)];
        let t = crate::domain::message::tests::firing();
        assert!(feed::items(&t, &net, &disabled).is_empty());
    }

    /// A disabled channel refuses what is still queued for it (it will never be published);
    /// a stopped connection is a transient failure.
    #[tokio::test]
    async fn what_cannot_be_published_is_classified() {
        let item = Item {
            to: vec!["riverwatch/alerts/shijiao".into()],
            ..crate::notify::outbox::tests::item("k1", "mqtt")
        };
        assert!(matches!(
            MqttSink::Disabled.send(&item).await,
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            sink().send(&item).await,
            Err(SendError::Transient(_))
        ));
    }
}
