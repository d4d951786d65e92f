//! Alerts: the judging task. Decodes each message (the ingest's [`Decoder`]), runs the
//! [`Screen`] on it and on the offline timer, makes the resulting alert transitions durable — their notifications in the outbox,
//! the episodes in `alerts.json`, both synced on tokio's blocking pool — wakes the delivery
//! workers, and hands the judged message to the store.
//!
//! Fed by the input sources with [`Inbound`] messages (one bounded channel, receive order);
//! feeds the store with [`Judged`] ones and the notify workers through the outbox files; keeps
//! the API's view ([`Live`]) current, once per message.
//!
//! Durability of alerts: when a message causes transitions, their notifications are written
//! to the outbox and the alert episodes to `alerts.json` before the message goes on to the
//! store, so before it can be acknowledged. A crash before that point redelivers the message,
//! and the same transition (same idempotency keys) is produced again; a crash after it finds
//! the episode already firing. The episodes are also saved every 30 s while readings arrive
//! and when the task stops, so persistence counts survive too.
//!
//! Data-level transitions (station faults, offline) are never sent one by one: they join
//! their bureau's pending digest ([`Digests`]), saved to `digest.json` before `alerts.json`
//! (a crash in between redelivers the message; its entry is not added twice). On the timer,
//! with the wall time, the due digests are released: their notifications go to the outbox
//! (keyed by the digest's batch), then the pending digests are saved without them. A crash in
//! between releases the same batch again after the restart, under the same keys, and the
//! outbox drops the copy.
//!
//! Held notifications ([`Holds`], `held.json`): a transition or incident event muted by a
//! silence is still rendered, and its notifications kept with the silence; on the timer, those
//! of silences no longer in force go out if their alert still fires (once; see
//! `notify::hold`). A blue or data-level notification (digests included) for a bureau in its
//! quiet hours waits; at the end of the period, one summary per address goes out. Held
//! notifications are saved before `alerts.json`, and after a release once the released ones are
//! in the outbox, as digests are. Data-level transitions muted by a silence are not kept: a
//! station fault or an offline station under a silence is the maintenance the silence
//! announced, and its clearing reaches the digest as usual.
//!
//! Escalations (a bureau that has not acknowledged a yellow-or-above alert or incident within
//! its `escalate_after`) are decided on the same timer, with the wall time: the API's view
//! watches what each bureau was told ([`Live::watch`]) and says which escalations are due;
//! their notifications go to the outbox (keyed `<id>.unacknowledged<n>`), then the view
//! records them sent in `api.json`. A crash in between renders the same escalation again
//! after the restart, under the same keys, and the outbox drops the copy.

use crate::api::Live;
use crate::domain::alert::{Kind, Transition};
use crate::domain::digest::{Digests, Entry};
use crate::domain::flow::Judged;
use crate::domain::incident::{EventKind, IncidentEvent};
use crate::domain::network::Network;
use crate::domain::quiet::QuietHours;
use crate::domain::silence::Subject;
use crate::ingest::{Decoder, Inbound};
use crate::notify::hold::Holds;
use crate::notify::outbox::{Item, Outbox};
use crate::notify::Channel;
use crate::screen::Screen;
use crate::telemetry::Metrics;
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// How often changed alert state is saved when no transition forced a save.
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// Where transitions are made durable, and who hears of them.
pub struct Alerts {
    pub outbox: Arc<Outbox>,
    /// One per delivery worker, woken after an enqueue.
    pub wake: Vec<Arc<Notify>>,
    /// `alerts.json`.
    pub state: PathBuf,
    /// `digest.json`: the data-level transitions waiting for their bureau's digest.
    pub digest_state: PathBuf,
    /// The notification channels, which render each transition for the bureaus.
    pub channels: Vec<Arc<dyn Channel>>,
    /// The API's view, kept current, and the silences and acknowledgements it holds.
    pub live: Arc<Live>,
    /// `held.json`: the notifications held by silences and quiet hours.
    pub held_state: PathBuf,
    /// `[[bureau]] quiet_hours`, by bureau id.
    pub quiet_hours: BTreeMap<String, QuietHours>,
    pub metrics: Arc<Metrics>,
    /// `[alerts] renotify`: escalations after the first follow it; none when it is off.
    pub renotify: Option<chrono::Duration>,
}

impl Alerts {
    /// Runs until the input closes: judges each message, makes its transitions durable, then
    /// sends it to the store, so an alert is never behind the write of the batch that holds
    /// its reading, and never lost once that message is acknowledged. Every 10 s of wall time
    /// (or the shortest cadence or digest interval, if shorter), the due digests are released
    /// and the screen checks which stations went silent.
    pub async fn run(
        self,
        mut decoder: Decoder,
        mut screen: Screen,
        mut digests: Digests,
        mut holds: Holds,
        mut input: mpsc::Receiver<Inbound>,
        store: mpsc::Sender<Judged>,
    ) {
        // Often enough to notice the most frequent station's silence promptly, and to send a
        // digest soon after it is due.
        let interval = digests
            .interval()
            .to_std()
            .unwrap_or(Duration::from_secs(10));
        let period = screen
            .network()
            .stations
            .iter()
            .map(|s| s.cadence)
            .chain([interval])
            .chain(
                screen
                    .network()
                    .bureaus
                    .iter()
                    .filter_map(|b| b.escalation.as_ref().map(|e| e.after)),
            )
            .min()
            .unwrap_or_default()
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_save = tokio::time::Instant::now();
        let mut dirty = false;
        loop {
            let judged = tokio::select! {
                msg = input.recv() => match msg {
                    Some(msg) => {
                        dirty = true;
                        let now = Utc::now();
                        screen.judge(decoder.decode(msg, now), now)
                    }
                    None => break,
                },
                _ = timer.tick() => {
                    let now = Utc::now();
                    self.release_digests(screen.network(), &mut digests, &mut holds, now).await;
                    self.release_holds(screen.network(), &mut holds, now).await;
                    self.escalate(screen.network(), now).await;
                    match screen.tick(now) {
                        Some(judged) => judged,
                        None => {
                            if dirty && last_save.elapsed() >= SAVE_EVERY {
                                self.save_state(&screen).await;
                                dirty = false;
                                last_save = tokio::time::Instant::now();
                            }
                            continue;
                        }
                    }
                }
            };
            let watched = self.live.watch(screen.network(), &judged, Utc::now());
            if self.live.observe(screen.network(), &judged) | watched {
                // A resolved alert's acknowledgement leaves `api.json`: a synced write, so on
                // the blocking pool. A failure is logged by `persist`; the stale entry only
                // lingers in the file.
                let live = Arc::clone(&self.live);
                let _ = tokio::task::spawn_blocking(move || live.persist()).await;
            }
            for t in &judged.transitions {
                alert_changed(&self.metrics, t);
            }
            for e in &judged.incidents {
                incident_changed(&self.metrics, e);
            }
            if !judged.transitions.is_empty() || !judged.incidents.is_empty() {
                self.make_durable(
                    &screen,
                    &mut digests,
                    &mut holds,
                    &judged.transitions,
                    &judged.incidents,
                )
                .await;
                dirty = false;
                last_save = tokio::time::Instant::now();
            }
            if store.send(judged).await.is_err() {
                tracing::error!("the store has stopped; stopping the judging task");
                break;
            }
        }
        if dirty {
            self.save_state(&screen).await;
        }
    }

    /// Writes the transitions' notifications to the outbox, adds the data-level ones to their
    /// bureau's pending digest and saves it, and saves the alert state, all synced, retrying
    /// until the disk takes them: until then nothing behind them is acknowledged, so a full or
    /// failing disk delays alerts but does not lose them. The task waits for the file work,
    /// but on tokio's blocking pool: the runtime's one worker thread keeps serving the
    /// sources, the store and the API through the fsyncs.
    async fn make_durable(
        &self,
        screen: &Screen,
        digests: &mut Digests,
        holds: &mut Holds,
        transitions: &[Transition],
        incidents: &[IncidentEvent],
    ) {
        let now = Utc::now();
        let net = screen.network();
        let mut items = Vec::new();
        let mut digested = false;
        let mut held = false;
        let heard = transitions
            .iter()
            // An alert that belongs to an incident is told through the incident's events.
            .filter(|t| t.rule.notifies() && t.incident.is_none())
            .filter(|t| {
                if let Some(silence) = self.live.silencing(&Subject::of(t), now) {
                    tracing::info!(alert_id = %t.alert_id, kind = ?t.kind, %silence, "notifications held back by a silence");
                    // Kept for the silence's end, unless it resolved (nothing left to tell).
                    held |= match (t.kind, t.rule.is_data()) {
                        (_, true) => false,
                        (Kind::Resolved, _) => holds.forget(&t.alert_id),
                        _ => holds.silence(
                            &t.alert_id,
                            &silence,
                            crate::notify::render(t, net, &self.channels),
                        ),
                    };
                    return false;
                }
                if let Some(why) = self.live.muted(t, now) {
                    tracing::info!(alert_id = %t.alert_id, kind = ?t.kind, %why, "notifications held back");
                    return false;
                }
                // Told now: what a silence held of it is out of date.
                held |= holds.forget(&t.alert_id);
                true
            })
            .collect::<Vec<_>>();
        for t in heard {
            if !t.rule.is_data() {
                items.extend(crate::notify::render(t, net, &self.channels));
                continue;
            }
            // Data level: into the digest of each bureau that hears of it, never alone.
            let (Some(entry), Some(station)) = (Entry::of(t), net.station(&t.station)) else {
                continue;
            };
            for bureau in net.recipients(station, t.rule) {
                digested |= digests.add(&bureau.id, entry.clone(), now);
            }
        }
        for e in incidents {
            let rendered = crate::notify::render_incident(e, net, &self.channels);
            let id = &e.incident.id;
            if let Some(silence) = self.live.silencing(&Subject::of_incident(e), now) {
                tracing::info!(incident_id = %id, event = e.kind.key(), %silence, "notifications held back by a silence");
                held |= if e.kind == EventKind::Ended {
                    holds.forget(id)
                } else {
                    holds.silence(id, &silence, rendered)
                };
                continue;
            }
            held |= holds.forget(id);
            items.extend(rendered);
        }
        let (mut items, quiet) = holds.quiet(items, &self.quiet_hours, now);
        // The feeds (MQTT) carry every transition and incident event, silenced or not: see
        // `notify::feed`.
        for t in transitions {
            items.extend(crate::notify::feed::items(t, net, &self.channels));
        }
        for e in incidents {
            items.extend(crate::notify::feed::incident_items(e, net, &self.channels));
        }
        self.enqueue(items).await;
        if digested {
            self.save_digests(digests).await;
        }
        if held || quiet {
            self.save_holds(holds).await;
        }
        self.save_state(screen).await;
        self.wake_workers();
    }

    /// Releases the digests due at wall time `now`: their notifications to the outbox first,
    /// then the pending digests saved without them (see the module docs for a crash between).
    async fn release_digests(
        &self,
        net: &Network,
        digests: &mut Digests,
        holds: &mut Holds,
        now: chrono::DateTime<Utc>,
    ) {
        let released = digests.release(now);
        if released.is_empty() {
            return;
        }
        let mut items = Vec::new();
        for d in &released {
            let rendered = crate::notify::render_digest(d, net, &self.channels);
            tracing::info!(
                digest = %d.id(), bureau = %d.bureau, entries = d.entries.len(),
                notifications = rendered.len(), "digest of station faults and offline stations released"
            );
            items.extend(rendered);
        }
        // A digest is data level: in its bureau's quiet hours it waits with the rest.
        let (items, quiet) = holds.quiet(items, &self.quiet_hours, now);
        self.enqueue(items).await;
        if quiet {
            self.save_holds(holds).await;
        }
        self.save_digests(digests).await;
        self.wake_workers();
    }

    /// Releases, at wall time `now`, what silences held once they are no longer in force
    /// (their alert still firing) and what waited for quiet hours that ended (as summaries):
    /// into the outbox first, then `held.json` saved without them (see `notify::hold`).
    async fn release_holds(&self, net: &Network, holds: &mut Holds, now: chrono::DateTime<Utc>) {
        if holds.is_empty() {
            return;
        }
        let live = &self.live;
        let (released, mut changed) =
            holds.release_silenced(|s| live.silence_active(s, now), |id| live.is_open(id));
        if !released.is_empty() {
            tracing::info!(
                notifications = released.len(),
                "notifications held by a silence that ended released: their alerts still fire"
            );
        }
        // Released into quiet hours, a blue alert waits for their end like any other.
        let (mut items, quiet) = holds.quiet(released, &self.quiet_hours, now);
        let (summaries, ended) = holds.release_quiet(now, &self.quiet_hours, net, &self.channels);
        if !summaries.is_empty() {
            tracing::info!(
                summaries = summaries.len(),
                "quiet hours ended: summaries of the notifications that waited released"
            );
        }
        items.extend(summaries);
        changed |= quiet || ended;
        if !items.is_empty() {
            self.enqueue(items).await;
            self.wake_workers();
        }
        if changed {
            self.save_holds(holds).await;
        }
    }

    /// Saves the held notifications, retrying until the disk takes them (see `make_durable`).
    async fn save_holds(&self, holds: &Holds) {
        let holds = Arc::new(holds.clone());
        let path = self.held_state.clone();
        retry_on_blocking_pool("cannot save the held notifications", move || {
            crate::notify::hold::save(&path, &holds)
        })
        .await;
    }

    /// Sends the escalations due at wall time `now` to the bureaus' escalation recipients:
    /// their notifications to the outbox first, then recorded sent (see the module docs).
    async fn escalate(&self, net: &Network, now: chrono::DateTime<Utc>) {
        let due = self.live.escalations_due(net, self.renotify, now);
        if due.is_empty() {
            return;
        }
        let mut items = Vec::new();
        for d in &due {
            let rendered = crate::notify::render_escalation(d, net, &self.channels);
            tracing::info!(
                id = %d.target, bureau = %d.bureau, nth = d.nth, notifications = rendered.len(),
                "not acknowledged in time: escalated"
            );
            items.extend(rendered);
        }
        self.enqueue(items).await;
        let live = Arc::clone(&self.live);
        let due = Arc::new(due);
        retry_on_blocking_pool("cannot save the escalations sent", move || {
            live.escalated(&due, now).map_err(std::io::Error::other)
        })
        .await;
        self.wake_workers();
    }

    /// Writes `items` to the outbox, synced, retrying until the disk takes them.
    async fn enqueue(&self, items: Vec<Item>) {
        let items = Arc::new(items);
        let outbox = Arc::clone(&self.outbox);
        let added = retry_on_blocking_pool("cannot write to the outbox", move || {
            let added = outbox.enqueue(&items)?;
            Ok((added, items.len(), outbox.count_pending()))
        })
        .await;
        let (added, rendered, pending) = added;
        if added < rendered {
            tracing::info!(
                skipped = rendered - added,
                "notifications already in the outbox or sent (a redelivered message); not queued again"
            );
        }
        Metrics::set(&self.metrics.outbox_pending, pending as u64);
    }

    fn wake_workers(&self) {
        for w in &self.wake {
            w.notify_one();
        }
    }

    /// Saves the pending digests, retrying until the disk takes them (see `make_durable`).
    async fn save_digests(&self, digests: &Digests) {
        Metrics::set(
            &self.metrics.digests_pending,
            u64::from(!digests.is_empty()),
        );
        let queues = Arc::new(digests.save());
        let path = self.digest_state.clone();
        retry_on_blocking_pool("cannot save the pending digests", move || {
            crate::state::digest::save(&path, &queues)
        })
        .await;
    }

    /// Saves the alert episodes, retrying until the disk takes them; the encoding and the
    /// synced write run on the blocking pool (see `make_durable`).
    async fn save_state(&self, screen: &Screen) {
        let (incidents, loose) = screen.save_incidents();
        let state = Arc::new(crate::state::AlertState {
            episodes: screen.save_alerts(),
            incidents,
            loose,
        });
        let path = self.state.clone();
        retry_on_blocking_pool("cannot save the alert state", move || {
            crate::state::save(&path, &state)
        })
        .await;
    }
}

/// Runs `work` on the blocking pool until it succeeds, once a second after a failure, logging
/// the first failure with `what`: ingest waits (nothing behind is acknowledged) until the disk
/// takes the write.
async fn retry_on_blocking_pool<T: Send + 'static>(
    what: &'static str,
    work: impl Fn() -> std::io::Result<T> + Send + Sync + 'static,
) -> T {
    let work = Arc::new(work);
    let mut logged = false;
    loop {
        let w = Arc::clone(&work);
        match crate::state::on_blocking_pool(move || w()).await {
            Ok(v) => return v,
            Err(e) => {
                if !logged {
                    tracing::error!(error = %e, "{what}; ingest waits until it can");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The event "an alert changed": logged once and counted here.
fn alert_changed(metrics: &Metrics, t: &Transition) {
    match t.kind {
        Kind::Fired => metrics.alert_fired(t.level, t.rule),
        Kind::Resolved => Metrics::add(&metrics.alerts_resolved, 1),
        Kind::Escalated | Kind::Reminder => {}
    }
    tracing::info!(
        alert_id = %t.alert_id, kind = ?t.kind, rule = t.rule.key(), level = t.level.key(),
        station = %t.station, param = t.param.map_or("", |p| p.key()), value = t.evidence.value,
        "alert transition"
    );
}

/// The event "an incident changed": logged once and counted here.
fn incident_changed(metrics: &Metrics, e: &IncidentEvent) {
    metrics.incident_event(e.kind.key());
    tracing::info!(
        incident_id = %e.incident.id, event = e.kind.key(), level = e.incident.level.key(),
        station = e.kind.station().unwrap_or(&e.incident.origin), param = e.incident.param.key(),
        "incident event"
    );
}
