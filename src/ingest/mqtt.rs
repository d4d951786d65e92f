//! The broker connection: subscribes to station topics, hands each message to the pipeline,
//! and acknowledges it once the pipeline says its readings are in custody.
//!
//! Feeds the screen stage with [`Inbound`] messages; fed back by the store with [`Ack`]s, in
//! receive order. Two tasks, because rumqttc deadlocks when `ack` is awaited in the task that
//! polls the event loop: [`drive`] polls (and never blocks on the pipeline, see below) and
//! [`acker`] sends acknowledgements.
//!
//! Session: QoS 1, clean session off and a fixed client id, so the broker keeps messages we
//! have not acknowledged across disconnects and restarts. Subscriptions are renewed on every
//! ConnAck, since a broker that lost the session also lost them. After an error the loop waits
//! with exponential backoff (0.1 s to 2 s) before reconnecting: the cap is low so that ingest
//! resumes within seconds of a broker restart, and one connection attempt every 2 s costs a
//! broker nothing.
//!
//! Bounds: the broker never has more than 65,535 unacknowledged QoS 1 messages out to one
//! client (the packet-identifier space), and usually far fewer (mosquitto's
//! `max_inflight_messages`). The inbound channel and rumqttc's request channel are sized to
//! that bound, so the poll loop never waits on the pipeline for QoS 1 traffic and keep-alives
//! keep flowing while InfluxDB is slow; backpressure reaches the broker by our not acking.
//! Acknowledgements carry the connection generation: after a reconnect the broker redelivers
//! everything unacknowledged, so acks of the older copies are dropped rather than sent on a
//! connection where their packet ids may mean other messages.

use crate::config::secret::Secret;
use crate::config::MqttConfig;
use crate::domain::network::Network;
use crate::telemetry::Metrics;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The topic filters of station data (SPEC §3): JSON readings and raw HJ 212 frames.
pub const FILTERS: [&str; 2] = ["wq/+/+/reading", "wq/+/+/hj212"];

/// The filters this instance subscribes to: every station's topics, or with `[mqtt] shard`
/// only those of the stations the shard owns (two per station), each behind
/// `$share/<group>/` when `[mqtt] shared_group` is set.
pub fn filters(cfg: &MqttConfig, net: &Network) -> Vec<String> {
    let topics: Vec<String> = match cfg.shard {
        None => FILTERS.iter().map(|f| f.to_string()).collect(),
        Some(shard) => net
            .stations
            .iter()
            .filter(|s| shard.owns(&s.id))
            .flat_map(|s| {
                ["reading", "hj212"].map(|kind| format!("wq/{}/{}/{kind}", s.river, s.id))
            })
            .collect(),
    };
    match &cfg.shared_group {
        None => topics,
        Some(group) => topics
            .into_iter()
            .map(|t| format!("$share/{group}/{t}"))
            .collect(),
    }
}

/// Capacity of the inbound channel and of rumqttc's request channel; see the module docs.
pub const INFLIGHT_BOUND: usize = 65_536;

/// What it takes to acknowledge one message, and what to publish once it is in custody.
#[derive(Debug)]
pub struct Ack {
    generation: u64,
    /// `None` for QoS 0 messages, which need no acknowledgement.
    /// The packet id and QoS of the message (all an acknowledgement needs); `None` for QoS 0
    /// messages. Kept small: every message's ack passes through two channels.
    publish: Option<(u16, QoS)>,
    /// A reply published (QoS 1) when the message is acknowledged: the HJ 212 data
    /// acknowledgement (CN=9014), which tells the station its data is safe.
    reply: Option<(String, Vec<u8>)>,
}

impl Ack {
    /// An ack that sends nothing, for messages that did not come from the broker (tests).
    pub fn none() -> Ack {
        Ack {
            generation: 0,
            publish: None,
            reply: None,
        }
    }

    pub fn with_reply(self, topic: String, payload: Vec<u8>) -> Ack {
        Ack {
            reply: Some((topic, payload)),
            ..self
        }
    }
}

/// One message from the broker.
#[derive(Debug)]
pub struct Inbound {
    pub topic: String,
    pub payload: bytes::Bytes,
    pub ack: Ack,
}

/// Where the ingest loop is in the shutdown sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Stop handing messages to the pipeline (the broker keeps the unacknowledged ones), but
    /// keep polling so the last acknowledgements go out.
    Draining,
    /// Acknowledgements are done: disconnect and return.
    Disconnect,
}

/// Builds the client options from config; the password is resolved by the caller.
pub fn options(cfg: &MqttConfig, password: Option<&Secret>) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(cfg.keep_alive)
        .set_request_channel_capacity(INFLIGHT_BOUND)
        // Accept any packet MQTT allows (256 MiB), so an oversize payload can be refused with a
        // reason; with a smaller limit it would break the connection and be redelivered forever.
        .set_max_packet_size(256 << 20, 1 << 20);
    if let Some(user) = &cfg.username {
        o.set_credentials(user, password.map(Secret::expose).unwrap_or_default());
    }
    if cfg.tls {
        let tls = match &cfg.ca_file {
            None => TlsConfiguration::default(),
            Some(ca) => {
                let ca =
                    std::fs::read(ca).map_err(|e| format!("mqtt.ca_file {}: {e}", ca.display()))?;
                let client_auth = match &cfg.client_cert {
                    None => None,
                    Some((cert, key)) => Some((
                        std::fs::read(cert).map_err(|e| {
                            format!("mqtt.client_cert_file {}: {e}", cert.display())
                        })?,
                        std::fs::read(key)
                            .map_err(|e| format!("mqtt.client_key_file {}: {e}", key.display()))?,
                    )),
                };
                TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth,
                }
            }
        };
        o.set_transport(Transport::Tls(tls));
    }
    Ok(o)
}

/// Creates the client handle and its event loop.
pub fn client(options: MqttOptions) -> (AsyncClient, EventLoop) {
    AsyncClient::new(options, INFLIGHT_BOUND)
}

/// Shared connection state, read by the acker and by readiness checks.
#[derive(Debug, Default)]
pub struct Session {
    /// Incremented on every ConnAck.
    generation: AtomicU64,
    /// 1 while connected.
    connected: AtomicU64,
    /// 1 once the broker granted every subscription of the current connection.
    subscribed: AtomicU64,
}

impl Session {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) == 1
    }

    /// Connected and subscribed: messages published from now on reach the pipeline.
    pub fn is_subscribed(&self) -> bool {
        self.is_connected() && self.subscribed.load(Ordering::Relaxed) == 1
    }
}

/// Polls the event loop until told to disconnect. `filters` are (re)subscribed on every
/// ConnAck.
pub async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    inbound: mpsc::Sender<Inbound>,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut inbound = Some(inbound);
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        let event = tokio::select! {
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow() } else { Phase::Disconnect };
                match now {
                    Phase::Running => {}
                    Phase::Draining => inbound = None,
                    Phase::Disconnect => break,
                }
                continue;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                session.generation.fetch_add(1, Ordering::Relaxed);
                session.connected.store(1, Ordering::Relaxed);
                session.subscribed.store(0, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
                failing = false;
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                // One SUBSCRIBE for every filter, so one SubAck says all are granted (a shard
                // subscribes two filters per station). try_ never waits: the request channel
                // is sized for the worst case.
                let many = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(many) {
                    tracing::error!(?filters, error = %e, "cannot queue the subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!(
                        ?filters,
                        "the broker refused a subscription (check its ACL)"
                    );
                } else {
                    session.subscribed.store(1, Ordering::Relaxed);
                    tracing::info!(?filters, "subscribed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(tx) = &inbound else {
                    // Draining: the broker redelivers this message to the next session.
                    continue;
                };
                if p.dup {
                    Metrics::add(&metrics.redeliveries, 1);
                }
                let ack = Ack {
                    reply: None,
                    generation: session.generation.load(Ordering::Relaxed),
                    publish: (p.qos != QoS::AtMostOnce).then_some((p.pkid, p.qos)),
                };
                let msg = Inbound {
                    topic: p.topic,
                    payload: p.payload,
                    ack,
                };
                // For QoS 1 the channel cannot be full (see module docs); QoS 0 floods wait here,
                // which pushes back on the broker through TCP.
                if tx.send(msg).await.is_err() {
                    inbound = None;
                }
            }
            Ok(_) => {}
            Err(e) => {
                session.connected.store(0, Ordering::Relaxed);
                if *phase.borrow() == Phase::Disconnect {
                    break;
                }
                if failing {
                    tracing::debug!(error = %e, retry_in = ?backoff, "MQTT still unreachable");
                } else {
                    tracing::warn!(error = %e, retry_in = ?backoff, "MQTT connection lost; reconnecting");
                    failing = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = phase.changed() => {
                        if *phase.borrow() != Phase::Running {
                            inbound = None;
                        }
                        if *phase.borrow() == Phase::Disconnect {
                            break;
                        }
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    disconnect(&mut eventloop, &client, &session).await;
}

/// Sends DISCONNECT and polls until it is written (or a short deadline passes), so the broker
/// does not publish our last will for a clean stop.
async fn disconnect(eventloop: &mut EventLoop, client: &AsyncClient, session: &Session) {
    if !session.is_connected() || client.try_disconnect().is_err() {
        return;
    }
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            ev = eventloop.poll() => match ev {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// Sends acknowledgements in the order the store releases them.
pub async fn acker(
    client: AsyncClient,
    mut acks: mpsc::Receiver<Ack>,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
) {
    while let Some(ack) = acks.recv().await {
        if let Some((pkid, _)) = ack.publish {
            if ack.generation != session.generation.load(Ordering::Relaxed) {
                tracing::debug!(pkid, "skipping the ack of a message from an earlier connection; the broker redelivers it");
                continue;
            }
        }
        if let Some((topic, payload)) = ack.reply {
            // Before the PUBACK: a crash in between redelivers the message and the reply is
            // sent again, which the station tolerates; the other order could lose it.
            if let Err(e) = client
                .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                .await
            {
                tracing::warn!(%topic, error = %e, "cannot publish the HJ 212 acknowledgement");
            }
        }
        let Some((pkid, qos)) = ack.publish else {
            continue;
        };
        // rumqttc acknowledges from a Publish's packet id and QoS alone; an empty one
        // allocates nothing.
        let mut publish = Publish::new(String::new(), qos, Vec::new());
        publish.pkid = pkid;
        match client.ack(&publish).await {
            Ok(()) => Metrics::add(&metrics.messages_acked, 1),
            Err(e) => {
                tracing::warn!(error = %e, "cannot send an acknowledgement; the broker will redeliver")
            }
        }
    }
}
