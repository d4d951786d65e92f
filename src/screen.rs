//! Screen: decodes each message, judges its readings, runs the alert rules, and hands points to
//! the store and transitions to the notifier.
//!
//! Fed by the MQTT ingest ([`Inbound`], in receive order); feeds the store with one [`Entry`]
//! per message (so acknowledgements stay in order, refused messages included) and the notifier
//! with [`Transition`]s. The only stateful part is the alert book, owned by this one task, so
//! readings of a station are judged in the order they arrive. Refusals are counted, logged once
//! and dead-lettered here.

use crate::deadletter::DeadLetter;
use crate::domain::alert::{AlertBook, State, Transition};
use crate::domain::network::Network;
use crate::domain::reading::judge;
use crate::ingest::mqtt::Inbound;
use crate::ingest::payload::{decode_json, station_for_topic, Format, PayloadLimits};
use crate::store::{points, Entry};
use crate::telemetry::Metrics;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Screen {
    pub net: Arc<Network>,
    pub limits: PayloadLimits,
    pub book: AlertBook,
    pub deadletter: Arc<DeadLetter>,
    pub metrics: Arc<Metrics>,
}

impl Screen {
    /// Runs until the input closes. Sends to the notifier first, so an alert is never behind
    /// the write of the batch that holds its reading.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Inbound>,
        store: mpsc::Sender<Entry>,
        notify: mpsc::Sender<Transition>,
    ) {
        while let Some(msg) = input.recv().await {
            let (entry, transitions) = self.process(msg, Utc::now());
            for t in transitions {
                if notify.send(t).await.is_err() {
                    tracing::error!("the notifier has stopped; an alert transition is not sent");
                }
            }
            if store.send(entry).await.is_err() {
                tracing::error!("the store has stopped; stopping the screen stage");
                return;
            }
        }
    }

    /// Decodes and judges one message. `now` is only used to refuse readings from the future.
    pub fn process(&mut self, msg: Inbound, now: DateTime<Utc>) -> (Entry, Vec<Transition>) {
        Metrics::add(&self.metrics.messages_received, 1);
        let mut lines = String::new();
        let mut transitions = Vec::new();
        let net = Arc::clone(&self.net);
        match station_for_topic(&net, &msg.topic) {
            Err(refusal) => {
                self.refuse(
                    &msg.topic,
                    &refusal.reason,
                    refusal.kind,
                    None,
                    &msg.payload,
                );
            }
            Ok((station, Format::Json)) => {
                let mut decoded = decode_json(&station.id, &msg.payload, now, self.limits);
                for (element, refusal) in &decoded.refused {
                    let (index, payload) = match element {
                        Some(e) => (Some(e.index), e.json.as_slice()),
                        None => (None, &msg.payload[..]),
                    };
                    self.refuse(&msg.topic, &refusal.reason, refusal.kind, index, payload);
                }
                // A backlog may arrive out of order; the alert rules want reading-time order.
                decoded.readings.sort_by_key(|r| r.ts);
                Metrics::add(
                    &self.metrics.readings_received,
                    decoded.readings.len() as u64,
                );
                for r in &decoded.readings {
                    let j = judge(station, r);
                    points::reading(station, r, &j, &mut lines);
                    for t in self.book.observe(station, r.ts, &j) {
                        match t.state {
                            State::Firing => self.metrics.alert_fired(t.level),
                            State::Resolved => Metrics::add(&self.metrics.alerts_resolved, 1),
                        }
                        tracing::info!(
                            alert_id = %t.alert_id, state = t.state.key(), level = t.level.key(),
                            station = %t.station, param = %t.param, value = t.evidence.value,
                            "alert transition"
                        );
                        points::alert(&net, &t, &mut lines);
                        transitions.push(t);
                    }
                }
            }
        }
        let entry = Entry {
            ack: msg.ack,
            lines,
            topic: msg.topic,
        };
        (entry, transitions)
    }

    fn refuse(
        &self,
        topic: &str,
        reason: &str,
        kind: crate::telemetry::RefusalKind,
        index: Option<usize>,
        payload: &[u8],
    ) {
        self.metrics.refused(kind);
        match index {
            Some(i) => tracing::warn!(%topic, index = i, %reason, "reading refused"),
            None => tracing::warn!(%topic, %reason, "payload refused"),
        }
        self.deadletter.record(topic, reason, index, payload);
    }
}
