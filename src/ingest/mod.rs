//! Ingest: from a transport (today the MQTT broker) to [`Decoded`] messages with their custody
//! receipts.
//!
//! The seam is [`Source`]: a source owns its transport, hands each message with its receipt
//! to the pipeline as an [`Inbound`], and gives the store an
//! [`Acknowledge`](crate::domain::flow::Acknowledge) handle that answers the [`Receipt`]s the
//! store releases, in receive order. The [`Decoder`] turns an `Inbound` into a [`Decoded`]; it
//! runs at the head of the judging task, just before the screen, rather than in the source's
//! task: decoded readings are several times the size of the raw payload, and decoding ahead
//! of the screen kept a burst's worth of them queued (measured with `tests/bench.sh`: 15 MiB
//! more peak memory and 1.6 µs more CPU per reading than decoding just in time). [`mqtt`] is
//! the one source the daemon registers today (in `app::start`); a test source lives in
//! `tests/`. The [`Decoder`] is shared code, not a task: it resolves the
//! station, decodes JSON or HJ 212 (with HJ 212 split-message reassembly and code maps), and
//! records every refusal once — logged, counted and dead-lettered — so a source needs none of
//! that. Nothing of a transport's own types leaves the source: the receipt is opaque.

pub mod hj212_tcp;
pub mod mqtt;
pub mod payload;

use crate::deadletter::DeadLetter;
use crate::domain::flow::{Acknowledge, Decoded, Receipt, Reply};
use crate::domain::hj212::{CodeMap, Reassembly};
use crate::domain::network::{Network, Station};
use crate::telemetry::{Metrics, RefusalKind};
use chrono::{DateTime, Utc};
use payload::{decode_hj212, decode_json, station_for_topic, Format, PayloadLimits};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// One message as a transport delivered it.
#[derive(Debug)]
pub struct Inbound {
    /// The SPEC §3 topic that names the station and format (`wq/<river>/<station>/reading`
    /// or `.../hj212`).
    pub topic: String,
    pub payload: bytes::Bytes,
    /// The source's receipt; the decoder adds the HJ 212 reply to it.
    pub receipt: Receipt,
}

/// Where the daemon is in the shutdown sequence, as the sources see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Stop handing messages on (the transport keeps what is unacknowledged), but keep
    /// answering receipts so the last acknowledgements go out.
    Draining,
    /// Acknowledgements are done: disconnect and return.
    Disconnect,
}

/// What a source is given to run: where its messages go, and the shutdown phase.
pub struct SourceIo {
    /// This source's position in the daemon's source list; stamp it on every receipt
    /// (`Receipt::source`), so the store answers the receipt through this source's
    /// [`Acknowledge`](crate::domain::flow::Acknowledge).
    pub index: usize,
    /// To the judging task, which decodes and judges them; bounded (see `app`).
    pub messages: mpsc::Sender<Inbound>,
    pub phase: watch::Receiver<Phase>,
    /// Where a source records the input it refuses itself ([`record_refusal`]): a transport
    /// that checks who is talking (the HJ 212 TCP listener's MN and PW) refuses before the
    /// decoder sees anything.
    pub metrics: Arc<Metrics>,
    pub deadletter: Arc<DeadLetter>,
}

/// A running source's future.
pub type Running = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An input source: a transport that delivers station messages and takes their
/// acknowledgements back. Registered in one place, `app::start`'s source list.
pub trait Source: Send {
    /// How logs and readiness name it (`"mqtt"`).
    fn name(&self) -> &'static str;
    /// The handle the store answers this source's receipts with.
    fn acknowledger(&self) -> Arc<dyn Acknowledge>;
    /// Runs the source until `io.phase` says [`Phase::Disconnect`]: every message to
    /// `io.messages`, until `Draining`; then it sends what its acknowledger queued and
    /// disconnects.
    fn run(self: Box<Self>, io: SourceIo) -> Running;
}

/// How long the packets of a split HJ 212 message may take to arrive.
const SPLIT_TIMEOUT: chrono::Duration = chrono::Duration::minutes(5);

/// Turns transport messages into [`Decoded`] ones, recording each refusal (the "refused"
/// event: logged once, counted, dead-lettered).
pub struct Decoder {
    /// Stations, for topic resolution.
    net: Arc<Network>,
    /// Size and clock limits a payload must respect.
    limits: PayloadLimits,
    /// Per-station HJ 212 code maps: the standard map with the station's overrides.
    codes: HashMap<String, CodeMap>,
    /// Split HJ 212 messages waiting for their other packets.
    reassembly: Reassembly,
    /// (station, code) pairs already logged as unknown, so each is logged once.
    unknown_logged: HashSet<(String, String)>,
    deadletter: Arc<DeadLetter>,
    metrics: Arc<Metrics>,
}

impl Decoder {
    pub fn new(
        net: Arc<Network>,
        limits: PayloadLimits,
        deadletter: Arc<DeadLetter>,
        metrics: Arc<Metrics>,
    ) -> Decoder {
        let codes = net
            .stations
            .iter()
            .map(|s| (s.id.clone(), CodeMap::with_overrides(&s.hj212_codes)))
            .collect();
        Decoder {
            net,
            limits,
            codes,
            reassembly: Reassembly::default(),
            unknown_logged: HashSet::new(),
            deadletter,
            metrics,
        }
    }

    /// Decodes one message. `now` refuses readings from the future or too old and times out
    /// incomplete split HJ 212 messages. Always returns the message, with no readings when it
    /// was refused, so its receipt is answered in order.
    pub fn decode(&mut self, msg: Inbound, now: DateTime<Utc>) -> Decoded {
        Metrics::add(&self.metrics.messages_received, 1);
        for (mn, key) in self.reassembly.expire(now, SPLIT_TIMEOUT) {
            tracing::warn!(%mn, %key, "a split HJ 212 message did not complete within 5 min; its packets are dropped");
        }
        let Inbound {
            topic,
            payload,
            mut receipt,
        } = msg;
        let net = Arc::clone(&self.net);
        let (position, station, format) = match station_for_topic(&net, &topic) {
            Ok(found) => found,
            Err(refusal) => {
                self.refused(&topic, &refusal.reason, refusal.kind, None, &payload);
                return Decoded {
                    origin: topic,
                    receipt,
                    ..Decoded::default()
                };
            }
        };
        let decoded = match format {
            Format::Json => decode_json(station, &payload, now, self.limits),
            Format::Hj212 => {
                // Every configured station has its map (built in `new`); borrowing it beside
                // the reassembly needs no copy.
                let standard;
                let map = match self.codes.get(&station.id) {
                    Some(map) => map,
                    None => {
                        standard = CodeMap::default();
                        &standard
                    }
                };
                let out = decode_hj212(
                    station,
                    &payload,
                    now,
                    self.limits,
                    map,
                    &mut self.reassembly,
                );
                self.log_unknown_codes(station, &out.unknown_codes);
                if let Some(ack) = out.ack {
                    receipt.reply = Some(Reply {
                        to: format!("{topic}/ack"),
                        payload: ack.into_bytes(),
                    });
                }
                out.decoded
            }
        };
        for (element, refusal) in &decoded.refused {
            let (index, bytes) = match element {
                Some(e) => (Some(e.index), e.json.as_slice()),
                None => (None, &payload[..]),
            };
            self.refused(&topic, &refusal.reason, refusal.kind, index, bytes);
        }
        Metrics::add(
            &self.metrics.readings_received,
            decoded.readings.len() as u64,
        );
        Decoded {
            origin: topic,
            station: Some(position),
            readings: decoded.readings,
            receipt,
        }
    }

    fn log_unknown_codes(&mut self, station: &Station, codes: &[String]) {
        for code in codes {
            if self
                .unknown_logged
                .insert((station.id.clone(), code.clone()))
            {
                tracing::warn!(station = %station.id, %code, "HJ 212 pollutant code maps to no parameter; its values are not stored (add it to the station's hj212_codes)");
            }
        }
    }

    /// The event "input refused" ([`record_refusal`]).
    fn refused(
        &self,
        topic: &str,
        reason: &str,
        kind: RefusalKind,
        index: Option<usize>,
        payload: &[u8],
    ) {
        record_refusal(
            &self.deadletter,
            &self.metrics,
            topic,
            reason,
            kind,
            index,
            payload,
        );
    }
}

/// The event "input refused", wherever a source or the decoder decides it: logged once,
/// counted by kind, dead-lettered with the bytes. `origin` names where the input came from (an
/// MQTT topic, a TCP peer); `index` the element of a JSON array.
pub fn record_refusal(
    deadletter: &DeadLetter,
    metrics: &Metrics,
    origin: &str,
    reason: &str,
    kind: RefusalKind,
    index: Option<usize>,
    payload: &[u8],
) {
    metrics.refused(kind);
    match index {
        Some(i) => tracing::warn!(topic = %origin, index = i, %reason, "reading refused"),
        None => tracing::warn!(topic = %origin, %reason, "payload refused"),
    }
    deadletter.record(origin, reason, index, payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The daemon's decoder, as the judging task runs it, over the old-style split message of
    /// `payload`'s tests: one reading once both packets are in, and an incomplete message
    /// dropped by the timeout, without a refusal.
    #[test]
    fn the_decoder_reassembles_old_style_split_packets() {
        let dir = tempfile::tempdir().unwrap();
        let mut net = crate::domain::network::fixtures::network();
        net.stations[0].hj212_mn = Some("DM000001".into());
        let metrics = Arc::new(Metrics::default());
        let deadletter = Arc::new(DeadLetter::open(&dir.path().join("dead.jsonl")).unwrap());
        let limits = PayloadLimits {
            max_payload: 4096,
            max_future_skew: chrono::Duration::minutes(10),
            max_age: Some(chrono::Duration::days(365)),
        };
        let mut decoder = Decoder::new(Arc::new(net), limits, deadletter, Arc::clone(&metrics));
        let [first, second] = payload::tests::old_style_split();
        let inbound = |frame: &str| Inbound {
            topic: "wq/bei/shijiao/hj212".into(),
            payload: bytes::Bytes::from(frame.to_string()),
            receipt: Receipt::default(),
        };
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 3, 0, 0).unwrap();
        let readings = |d: &Decoded| {
            d.readings
                .iter()
                .map(|r| r.values.len())
                .collect::<Vec<_>>()
        };

        assert_eq!(readings(&decoder.decode(inbound(&first), now)), [0usize; 0]);
        let whole = decoder.decode(inbound(&second), now + chrono::Duration::seconds(5));
        assert_eq!((whole.station, readings(&whole)), (Some(0), vec![7]));

        // The second packet six minutes after the first: the first was given up, and the
        // second waits for a first that will not come.
        assert!(decoder.decode(inbound(&first), now).readings.is_empty());
        let late = decoder.decode(inbound(&second), now + chrono::Duration::minutes(6));
        assert!(late.readings.is_empty());
        assert_eq!(metrics.refused_total(), 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap(),
            ""
        );
    }
}
