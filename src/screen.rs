//! Screen: decodes each message, applies QC, judges its readings, runs the alert rules, and
//! hands points to the store and notifications to the outbox. A timer drives the `offline`
//! rule on wall time.
//!
//! Fed by the MQTT ingest ([`Inbound`], in receive order); feeds the store with one [`Entry`]
//! per message (so acknowledgements stay in order, refused messages included) and the
//! persistent outbox with the notifications of its transitions. The rule state (QC streams,
//! trend windows, alert episodes) and the HJ 212 reassembly are owned by this one task, so the
//! readings of a station are judged in the order they arrive. Refusals are counted, logged
//! once and dead-lettered here.
//!
//! Durability of alerts: when a message causes transitions, their notifications are written
//! to the outbox and the alert episodes to `alerts.json` (both synced) before the message's
//! entry goes to the store, so before it can be acknowledged. A crash before that point
//! redelivers the message, and the same transition (same idempotency keys) is produced again;
//! a crash after it finds the episode already firing. The episodes are also saved every 30 s
//! while readings arrive and when the screen stops, so persistence counts survive too.

use crate::deadletter::DeadLetter;
use crate::domain::alert::{Kind, Transition};
use crate::domain::hj212::{CodeMap, Reassembly};
use crate::domain::network::{Network, Station};
use crate::domain::reading::Reading;
use crate::domain::rules::Rules;
use crate::ingest::mqtt::{Ack, Inbound};
use crate::ingest::payload::{
    decode_hj212, decode_json, station_for_topic, Decoded, Format, PayloadLimits,
};
use crate::notify::outbox::Outbox;
use crate::store::{points, Entry};
use crate::telemetry::{Metrics, RefusalKind};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// How often changed alert state is saved when no transition forced a save.
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// Where transitions are made durable.
pub struct Durable {
    pub outbox: Arc<Outbox>,
    /// One per delivery worker, woken after an enqueue.
    pub wake: Vec<Arc<Notify>>,
    /// `alerts.json`.
    pub state: PathBuf,
    pub sms_enabled: bool,
    /// The API's view, kept current, and the silences and acknowledgements it holds.
    pub live: Arc<crate::api::Live>,
}

/// How long the packets of a split HJ 212 message may take to arrive.
const SPLIT_TIMEOUT: chrono::Duration = chrono::Duration::minutes(5);

pub struct Screen {
    /// Stations, rivers and bureaus: topic resolution, targets, routing.
    net: Arc<Network>,
    /// Size and clock-skew limits a payload must respect.
    limits: PayloadLimits,
    /// QC, judgement and alert rules, with their per-station state.
    rules: Rules,
    /// Where refused payloads and readings are kept for the operator.
    deadletter: Arc<DeadLetter>,
    /// Counters of received, refused and alerted.
    metrics: Arc<Metrics>,
    /// Per-station HJ 212 code maps: the standard map with the station's overrides.
    codes: HashMap<String, CodeMap>,
    /// Split HJ 212 messages waiting for their other packets.
    reassembly: Reassembly,
    /// (station, code) pairs already logged as unknown, so each is logged once.
    unknown_logged: HashSet<(String, String)>,
    durable: Durable,
    /// Whether the alert state changed since it was last saved.
    dirty: bool,
}

impl Screen {
    pub fn new(
        net: Arc<Network>,
        limits: PayloadLimits,
        rules: Rules,
        deadletter: Arc<DeadLetter>,
        metrics: Arc<Metrics>,
        durable: Durable,
    ) -> Screen {
        let codes = net
            .stations
            .iter()
            .map(|s| (s.id.clone(), CodeMap::with_overrides(&s.hj212_codes)))
            .collect();
        Screen {
            net,
            limits,
            rules,
            deadletter,
            metrics,
            codes,
            reassembly: Reassembly::default(),
            unknown_logged: HashSet::new(),
            durable,
            dirty: false,
        }
    }

    /// Runs until the input closes. Makes transitions durable first, so an alert is never
    /// behind the write of the batch that holds its reading, and never lost once that
    /// message is acknowledged. Every 10 s of wall time (or the shortest cadence, if
    /// shorter), checks which stations have gone silent.
    pub async fn run(mut self, mut input: mpsc::Receiver<Inbound>, store: mpsc::Sender<Entry>) {
        // Often enough to notice the most frequent station's silence promptly.
        let period = self
            .net
            .stations
            .iter()
            .map(|s| s.cadence)
            .min()
            .unwrap_or_default()
            .clamp(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(10),
            );
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_save = tokio::time::Instant::now();
        loop {
            let (entry, transitions) = tokio::select! {
                msg = input.recv() => match msg {
                    Some(msg) => {
                        self.dirty = true;
                        self.process(msg, Utc::now())
                    }
                    None => break,
                },
                _ = timer.tick() => match self.tick(Utc::now()) {
                    Some(done) => done,
                    None => {
                        if self.dirty && last_save.elapsed() >= SAVE_EVERY {
                            self.save_state().await;
                            last_save = tokio::time::Instant::now();
                        }
                        continue;
                    }
                },
            };
            if !transitions.is_empty() {
                self.make_durable(&transitions).await;
                last_save = tokio::time::Instant::now();
            }
            if store.send(entry).await.is_err() {
                tracing::error!("the store has stopped; stopping the screen stage");
                break;
            }
        }
        if self.dirty {
            self.save_state().await;
        }
    }

    /// Writes the transitions' notifications to the outbox and saves the alert state, both
    /// synced, retrying until the disk takes them: until then nothing behind them is
    /// acknowledged, so a full or failing disk delays alerts but does not lose them. The
    /// screen waits for the file work, but on tokio's blocking pool: the runtime's one worker
    /// thread keeps serving the MQTT loop, the store and the API through the fsyncs.
    async fn make_durable(&mut self, transitions: &[Transition]) {
        let now = Utc::now();
        let items: Vec<_> = transitions
            .iter()
            .filter(|t| t.rule.notifies())
            .filter(|t| match self.durable.live.muted(t, now) {
                Some(why) => {
                    tracing::info!(alert_id = %t.alert_id, kind = ?t.kind, %why, "notifications held back");
                    false
                }
                None => true,
            })
            .flat_map(|t| crate::notify::render(t, &self.net, self.durable.sms_enabled))
            .collect();
        let items = Arc::new(items);
        let mut logged = false;
        loop {
            let (outbox, batch) = (Arc::clone(&self.durable.outbox), Arc::clone(&items));
            let written = tokio::task::spawn_blocking(move || outbox.enqueue(&batch))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match written {
                Ok(added) => {
                    if added < items.len() {
                        tracing::info!(
                            skipped = items.len() - added,
                            "notifications already in the outbox or sent (a redelivered message); not queued again"
                        );
                    }
                    break;
                }
                Err(e) => {
                    if !logged {
                        tracing::error!(error = %e, "cannot write to the outbox; ingest waits until it can");
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        Metrics::set(
            &self.metrics.outbox_pending,
            self.durable.outbox.count_pending() as u64,
        );
        self.save_state().await;
        for w in &self.durable.wake {
            w.notify_one();
        }
    }

    /// Saves the alert episodes, retrying until the disk takes them; the encoding and the
    /// synced write run on the blocking pool (see `make_durable`).
    async fn save_state(&mut self) {
        let saved = Arc::new(self.rules.save_alerts());
        let mut logged = false;
        loop {
            let (path, episodes) = (self.durable.state.clone(), Arc::clone(&saved));
            let Err(e) = tokio::task::spawn_blocking(move || crate::state::save(&path, &episodes))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            else {
                break;
            };
            if !logged {
                tracing::error!(error = %e, file = %self.durable.state.display(), "cannot save the alert state; ingest waits until it can");
                logged = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.dirty = false;
    }

    /// The `offline` rule: transitions for stations silent too long, as an entry that carries
    /// their alert points and nothing to acknowledge.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<(Entry, Vec<Transition>)> {
        let net = Arc::clone(&self.net);
        let transitions = self.rules.tick(&net, now);
        if transitions.is_empty() {
            return None;
        }
        let mut lines = String::new();
        for t in &transitions {
            self.record(&net, t, &mut lines);
        }
        let entry = Entry {
            ack: Ack::none(),
            lines,
            topic: String::new(),
        };
        Some((entry, transitions))
    }

    fn record(&self, net: &Network, t: &Transition, lines: &mut String) {
        match t.kind {
            Kind::Fired => self.metrics.alert_fired(t.level, t.rule),
            Kind::Resolved => Metrics::add(&self.metrics.alerts_resolved, 1),
            Kind::Escalated | Kind::Reminder => {}
        }
        tracing::info!(
            alert_id = %t.alert_id, kind = ?t.kind, rule = t.rule.key(), level = t.level.key(),
            station = %t.station, param = t.param.map_or("", |p| p.key()), value = t.evidence.value,
            "alert transition"
        );
        points::alert(net, t, lines);
        self.durable.live.transition(t);
    }

    /// Decodes and judges one message. `now` refuses readings from the future and times out
    /// incomplete split HJ 212 messages.
    pub fn process(&mut self, mut msg: Inbound, now: DateTime<Utc>) -> (Entry, Vec<Transition>) {
        Metrics::add(&self.metrics.messages_received, 1);
        for (mn, qn) in self.reassembly.expire(now, SPLIT_TIMEOUT) {
            tracing::warn!(%mn, %qn, "a split HJ 212 message did not complete within 5 min; its packets are dropped");
        }
        // Room for a reading's line at once (about 300 bytes), rather than growing to it.
        let mut lines = String::with_capacity(512);
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
            Ok((station, format)) => {
                let decoded = match format {
                    Format::Json => decode_json(station, &msg.payload, now, self.limits),
                    Format::Hj212 => {
                        // Every configured station has its map (built in `new`); borrowing it
                        // beside the reassembly needs no copy.
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
                            &msg.payload,
                            now,
                            self.limits,
                            map,
                            &mut self.reassembly,
                        );
                        self.log_unknown_codes(station, &out.unknown_codes);
                        if let Some(ack) = out.ack {
                            msg.ack = msg
                                .ack
                                .with_reply(format!("{}/ack", msg.topic), ack.into_bytes());
                        }
                        out.decoded
                    }
                };
                self.judge(
                    &net,
                    station,
                    &msg,
                    decoded,
                    now,
                    &mut lines,
                    &mut transitions,
                );
            }
        }
        let entry = Entry {
            ack: msg.ack,
            lines,
            topic: msg.topic,
        };
        (entry, transitions)
    }

    /// Refuses what must be refused, then judges, encodes and runs the alert rules on the
    /// readings, in reading-time order; `now` is the wall time of receipt.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        net: &Network,
        station: &Station,
        msg: &Inbound,
        mut decoded: Decoded,
        now: DateTime<Utc>,
        lines: &mut String,
        transitions: &mut Vec<Transition>,
    ) {
        for (element, refusal) in &decoded.refused {
            let (index, payload) = match element {
                Some(e) => (Some(e.index), e.json.as_slice()),
                None => (None, &msg.payload[..]),
            };
            self.refuse(&msg.topic, &refusal.reason, refusal.kind, index, payload);
        }
        // A backlog may arrive out of order; the alert rules want reading-time order.
        decoded.readings.sort_by_key(|r: &Reading| r.ts);
        Metrics::add(
            &self.metrics.readings_received,
            decoded.readings.len() as u64,
        );
        for r in &decoded.readings {
            let outcome = self.rules.reading(net, station, r, now);
            self.durable
                .live
                .reading(station, r, &outcome.qc, &outcome.judgement);
            points::reading(station, r, &outcome.judgement, &outcome.qc, lines);
            for (param, ts, flag) in &outcome.revised {
                points::qc_revision(station, *param, *ts, *flag, lines);
            }
            for t in outcome.transitions {
                self.record(net, &t, lines);
                // `class` is kept in the alert state and recorded, not notified (see
                // `make_durable`): it fires exactly when an exceedance does, and the exceedance
                // message says which parameter and by how much.
                transitions.push(t);
            }
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

    fn refuse(
        &self,
        topic: &str,
        reason: &str,
        kind: RefusalKind,
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
