//! The MQTT source: subscribes to station topics, hands each message to the judging task,
//! and acknowledges it once the store says it is in custody.
//!
//! Registered as a [`Source`] in `app::start`; feeds the judging task with [`Inbound`]
//! messages; the store answers this source's [`Receipt`]s, in receive order, through its
//! `Acknowledger`, which queues the PUBACK (and the HJ 212 reply) on rumqttc's request
//! channel without waiting — awaiting there from the task that polls the event loop would
//! deadlock, and a task of its own would be one more hand-off per message. `drive` polls the
//! event loop and never blocks on the pipeline (see below). A receipt's token packs what an
//! acknowledgement needs (connection generation, QoS, packet id); no rumqttc type leaves this
//! file.
//!
//! Session: QoS 1, clean session off and a fixed client id, so the broker keeps messages we
//! have not acknowledged across disconnects and restarts. Subscriptions are renewed on every
//! ConnAck, since a broker that lost the session also lost them. After an error the loop waits
//! before reconnecting, as [`reconnect`] decides: exponential back-off with full jitter from
//! 0.1 s to 30 s, reset once a connection has held for a minute. A broker that closes our
//! connection right after accepting it, again and again, is another client with our client id
//! taking the session over: [`reconnect`] detects it, the loop logs it once per episode with
//! the remedy and counts it (`riverwatch_mqtt_takeovers_total`), and waits near the cap
//! meanwhile.
//!
//! Bounds: the broker never has more than 65,535 unacknowledged QoS 1 messages out to one
//! client (the packet-identifier space), and usually far fewer (mosquitto's
//! `max_inflight_messages`). The decoded channel and rumqttc's request channel are sized to
//! that bound, so the poll loop never waits on the pipeline for QoS 1 traffic and keep-alives
//! keep flowing while InfluxDB is slow; backpressure reaches the broker by our not acking.
//! Acknowledgements carry the connection generation: after a reconnect the broker redelivers
//! everything unacknowledged, so acks of the older copies are dropped rather than sent on a
//! connection where their packet ids may mean other messages.
//!
//! Status: this connection's last will is the retained `offline` of [`status`]; the source
//! publishes `online` (retained) after subscribing on every ConnAck and `offline` before a
//! clean DISCONNECT, both queued on the request channel like the acknowledgements.

pub mod config;
pub mod reconnect;
pub mod status;

use super::{Acknowledge, Inbound, Phase, Source, SourceIo};
use crate::domain::flow::Receipt;
use crate::domain::network::Network;
use crate::settings::secret::Secret;
use crate::telemetry::Metrics;
use config::MqttConfig;
use reconnect::{Ended, Reconnect};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS, StateError,
    TlsConfiguration, Transport,
};
use status::Status;
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

/// A receipt's token: connection generation (high bits), QoS (2 bits) and packet id (16 bits).
fn token(generation: u64, qos: QoS, pkid: u16) -> u64 {
    (generation << 18) | ((qos as u64) << 16) | u64::from(pkid)
}

/// The (generation, QoS, packet id) a token packs.
fn untoken(token: u64) -> (u64, QoS, u16) {
    let qos = match (token >> 16) & 3 {
        2 => QoS::ExactlyOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::AtMostOnce,
    };
    (token >> 18, qos, (token & 0xffff) as u16)
}

/// A TLS file named in `[mqtt]` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("mqtt.{key} {}: {source}", path.display())]
pub struct OptionsError {
    /// The config key (`ca_file`, `client_cert_file`, `client_key_file`).
    pub key: &'static str,
    pub path: std::path::PathBuf,
    pub source: std::io::Error,
}

/// Reads a TLS file named by `[mqtt] <key>`.
fn read_tls_file(key: &'static str, path: &std::path::Path) -> Result<Vec<u8>, OptionsError> {
    std::fs::read(path).map_err(|source| OptionsError {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// Builds the client options from config; the password is resolved by the caller.
///
/// # Errors
/// [`OptionsError`] when a TLS file cannot be read.
pub fn options(cfg: &MqttConfig, password: Option<&Secret>) -> Result<MqttOptions, OptionsError> {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(cfg.keep_alive)
        .set_request_channel_capacity(2 * INFLIGHT_BOUND)
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
                let ca = read_tls_file("ca_file", ca)?;
                let client_auth = match &cfg.client_cert {
                    None => None,
                    Some((cert, key)) => Some((
                        read_tls_file("client_cert_file", cert)?,
                        read_tls_file("client_key_file", key)?,
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

/// Creates the client handle and its event loop. The request channel holds an
/// acknowledgement and a reply for every message the broker may have in flight, so queuing
/// them never fails for want of room.
pub fn client(options: MqttOptions) -> (AsyncClient, EventLoop) {
    AsyncClient::new(options, 2 * INFLIGHT_BOUND)
}

/// Shared connection state, read by the acknowledger and by readiness checks.
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

/// The MQTT source, ready to run: the client, its event loop and the filters to subscribe.
pub struct MqttSource {
    eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    /// Announced on every ConnAck and before a clean stop; its `offline` is the last will.
    status: Status,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
}

impl MqttSource {
    /// Builds the client from `options`, with `status`'s `offline` as its last will;
    /// `session` is shared with readiness checks.
    pub fn new(
        mut options: MqttOptions,
        filters: Vec<String>,
        status: Status,
        session: Arc<Session>,
        metrics: Arc<Metrics>,
    ) -> MqttSource {
        options.set_last_will(status.will());
        let (client, eventloop) = client(options);
        MqttSource {
            eventloop,
            client,
            filters,
            status,
            session,
            metrics,
        }
    }
}

impl Source for MqttSource {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(Acknowledger {
            client: self.client.clone(),
            session: Arc::clone(&self.session),
            metrics: Arc::clone(&self.metrics),
        })
    }

    fn run(self: Box<Self>, io: SourceIo) -> super::Running {
        let MqttSource {
            mut eventloop,
            client,
            filters,
            status,
            session,
            metrics,
        } = *self;
        let SourceIo {
            index,
            messages,
            phase,
            ..
        } = io;
        Box::pin(async move {
            let to_pipeline = Pipeline { index, messages };
            drive(
                &mut eventloop,
                &client,
                &filters,
                &status,
                to_pipeline,
                &session,
                &metrics,
                phase,
            )
            .await;
            // By `Disconnect` the store has released its last receipts; their acknowledgements
            // sit in the request channel ahead of the DISCONNECT, so they go out first.
            disconnect(&mut eventloop, &client, &status, &session).await;
        })
    }
}

/// Where the poll loop hands messages: the judging task, with this source's index.
struct Pipeline {
    index: usize,
    messages: mpsc::Sender<Inbound>,
}

/// Polls the event loop until told to disconnect. `filters` are (re)subscribed and `status`
/// announced online on every ConnAck.
#[allow(clippy::too_many_arguments)]
async fn drive(
    eventloop: &mut EventLoop,
    client: &AsyncClient,
    filters: &[String],
    status: &Status,
    pipeline: Pipeline,
    session: &Session,
    metrics: &Metrics,
    mut phase: watch::Receiver<Phase>,
) {
    let mut inbound = Some(pipeline);
    let mut reconnect = Reconnect::default();
    // When the current connection's ConnAck arrived; `None` while disconnected.
    let mut connected_at: Option<tokio::time::Instant> = None;
    // Set after the first loss is logged, so a broker that stays away is logged once.
    let mut failing = false;
    let random = ring::rand::SystemRandom::new();
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
                Metrics::add(&metrics.mqtt_connects, 1);
                connected_at = Some(tokio::time::Instant::now());
                failing = false;
                if reconnect.in_takeover() {
                    tracing::debug!(
                        session_present = ack.session_present,
                        "connected to the MQTT broker"
                    );
                } else {
                    tracing::info!(
                        session_present = ack.session_present,
                        "connected to the MQTT broker"
                    );
                }
                // One SUBSCRIBE for every filter, so one SubAck says all are granted (a shard
                // subscribes two filters per station). try_ never waits: the request channel
                // is sized for the worst case.
                let many = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(many) {
                    tracing::error!(?filters, error = %e, "cannot queue the subscription");
                }
                announce(client, status, status::State::Online);
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
                    if reconnect.in_takeover() {
                        tracing::debug!(?filters, "subscribed");
                    } else {
                        tracing::info!(?filters, "subscribed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(to) = &mut inbound else {
                    // Draining: the broker redelivers this message to the next session.
                    continue;
                };
                if p.dup {
                    Metrics::add(&metrics.redeliveries, 1);
                }
                let generation = session.generation.load(Ordering::Relaxed);
                let receipt = Receipt {
                    source: to.index,
                    token: (p.qos != QoS::AtMostOnce).then(|| token(generation, p.qos, p.pkid)),
                    reply: None,
                };
                let msg = Inbound {
                    topic: p.topic,
                    payload: p.payload,
                    receipt,
                };
                // For QoS 1 the channel cannot be full (see module docs); QoS 0 floods wait here,
                // which pushes back on the broker through TCP.
                if to.messages.send(msg).await.is_err() {
                    inbound = None;
                }
            }
            Ok(_) => {}
            Err(e) => {
                session.connected.store(0, Ordering::Relaxed);
                if *phase.borrow() == Phase::Disconnect {
                    break;
                }
                let ended = match connected_at.take() {
                    None => Ended::NotConnected,
                    Some(at) if closed_by_broker(&e) => Ended::ClosedByBroker(at.elapsed()),
                    Some(at) => Ended::Failed(at.elapsed()),
                };
                let next = reconnect.lost(ended, random_fraction(&random));
                let retry_in = next.wait;
                if next.takeover_began {
                    Metrics::add(&metrics.mqtt_takeovers, 1);
                    tracing::error!(
                        client_id = %status.client_id,
                        closes = reconnect::TAKEOVER_AFTER,
                        ?retry_in,
                        "MQTT client-id takeover: the broker closed our connection {} times right after accepting it; another client uses client_id {:?} (mosquitto logs \"Client {} already connected, closing old connection\") — give each instance its own [mqtt] client_id; reconnecting every 15–30 s meanwhile",
                        reconnect::TAKEOVER_AFTER,
                        status.client_id,
                        status.client_id,
                    );
                } else if failing || reconnect.in_takeover() {
                    tracing::debug!(error = %e, ?retry_in, "MQTT still unreachable");
                } else {
                    tracing::warn!(error = %e, ?retry_in, "MQTT connection lost; reconnecting");
                }
                failing = true;
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = phase.changed() => {
                        if *phase.borrow() != Phase::Running {
                            inbound = None;
                        }
                        if *phase.borrow() == Phase::Disconnect {
                            break;
                        }
                    }
                }
            }
        }
        // Checked on every event: keep-alive answers arrive at least every `keep_alive`, so a
        // connection that has held is noticed within a minute and a half.
        if let Some(at) = connected_at {
            if at.elapsed() >= reconnect::STABLE && reconnect.held() {
                tracing::info!(
                    client_id = %status.client_id,
                    "the MQTT connection has held for a minute: the client-id takeover is over"
                );
            }
        }
    }
}

/// Whether the broker ended the connection (end of stream, reset): how a broker closes the
/// older of two connections with one client id. A keep-alive timeout or a protocol error is
/// not counted so.
fn closed_by_broker(e: &ConnectionError) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let closed = |e: &std::io::Error| {
        matches!(
            e.kind(),
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
        )
    };
    match e {
        ConnectionError::MqttState(StateError::ConnectionAborted) => true,
        ConnectionError::MqttState(StateError::Io(e)) | ConnectionError::Io(e) => closed(e),
        _ => false,
    }
}

/// A fraction uniform in [0, 1) from the system's random source (0.5 should it fail), for the
/// reconnection jitter.
fn random_fraction(random: &ring::rand::SystemRandom) -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    match random.fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / 4_294_967_296.0,
        Err(_) => 0.5,
    }
}

/// Queues `state` on `status.topic`, retained, QoS 1; never waits (see [`INFLIGHT_BOUND`]).
fn announce(client: &AsyncClient, status: &Status, state: status::State) {
    if let Err(e) = client.try_publish(
        status.topic.as_str(),
        QoS::AtLeastOnce,
        true,
        status.payload(state),
    ) {
        tracing::warn!(topic = %status.topic, state = state.key(), error = %e, "cannot publish the status");
    }
}

/// Announces `offline`, then sends DISCONNECT and polls until it is written (or a short
/// deadline passes), so the broker does not publish our last will for a clean stop: the
/// `offline` status, queued first, reaches the broker before the DISCONNECT on the same
/// stream.
async fn disconnect(
    eventloop: &mut EventLoop,
    client: &AsyncClient,
    status: &Status,
    session: &Session,
) {
    if !session.is_connected() {
        return;
    }
    announce(client, status, status::State::Offline);
    if client.try_disconnect().is_err() {
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

/// Answers receipts on the MQTT connection: the HJ 212 reply, then the PUBACK.
struct Acknowledger {
    client: AsyncClient,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
}

impl Acknowledge for Acknowledger {
    fn answer(&self, receipt: Receipt) {
        let publish = receipt.token.map(untoken);
        if let Some((generation, _, pkid)) = publish {
            if generation != self.session.generation.load(Ordering::Relaxed) {
                tracing::debug!(pkid, "skipping the ack of a message from an earlier connection; the broker redelivers it");
                return;
            }
        }
        if let Some(reply) = receipt.reply {
            // Before the PUBACK: a crash in between redelivers the message and the reply is
            // sent again, which the station tolerates; the other order could lose it.
            if let Err(e) =
                self.client
                    .try_publish(reply.to.as_str(), QoS::AtLeastOnce, false, reply.payload)
            {
                tracing::warn!(topic = %reply.to, error = %e, "cannot publish the HJ 212 acknowledgement");
            }
        }
        let Some((_, qos, pkid)) = publish else {
            return;
        };
        // rumqttc acknowledges from a Publish's packet id and QoS alone; an empty one
        // allocates nothing.
        let mut publish = Publish::new(String::new(), qos, Vec::new());
        publish.pkid = pkid;
        match self.client.try_ack(&publish) {
            Ok(()) => Metrics::add(&self.metrics.messages_acked, 1),
            Err(e) => {
                tracing::warn!(error = %e, "cannot send an acknowledgement; the broker will redeliver")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gives_back_what_it_packs() {
        for (generation, qos, pkid) in [
            (0, QoS::AtLeastOnce, 1),
            (1, QoS::ExactlyOnce, u16::MAX),
            ((1 << 46) - 1, QoS::AtLeastOnce, 12_345),
        ] {
            let (g, q, p) = untoken(token(generation, qos, pkid));
            assert_eq!((g, q, p), (generation, qos, pkid));
        }
    }
}
