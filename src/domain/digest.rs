//! Digests of data-level alerts (SPEC §7): station faults and offline stations reach the
//! operating bureau's station operators grouped, at most one digest per bureau per interval,
//! never one message per transition. A noisy network then costs its operators one message a
//! quarter hour, not one per sensor hiccup, and duty officers hear only of the water.
//!
//! Fed by the judging task (`alerts`) with each data-level [`Transition`] (as an [`Entry`]) and
//! the bureau it is routed to, and with the wall time on its timer; returns the [`Digest`]s that
//! are due, which the shell renders ([`text`]), addresses to the bureau's
//! `Bureau::data_contacts` and makes durable, and the pending batches as plain data
//! ([`Digests::save`]) for the shell to keep across restarts. Pure: no clock, the wall time is
//! an argument.
//!
//! The grouping rule, per bureau:
//! - The first entry opens a batch at the wall time it arrives (`opened`); entries arriving
//!   before `opened + interval` join it; a later one opens the next batch.
//! - A batch is released at `opened + interval`, and never sooner than `interval` after the
//!   bureau's previous digest: at most one digest per bureau per interval.
//! - An entry already pending, or sent in the bureau's last digest (the same alert id and
//!   change: a message redelivered after a crash produces the same transition again), is not
//!   added twice.
//!
//! Why a batch closes at `opened + interval` even when it is released later: its digest's
//! idempotency key is derived from `opened`, and a crash after the digest went to the outbox
//! but before the shell saved the batch as released makes the restarted daemon release it
//! again. By then the interval has passed, so nothing new can have joined it: the second
//! release holds exactly the entries of the first, under the same key, and the outbox drops it.

pub mod text;

use super::alert::{Context, Kind, Rule, Transition};
use super::param::Param;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// Whether an entry tells that a problem began or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    Fired,
    Resolved,
}

impl Change {
    pub const ALL: [Change; 2] = [Change::Fired, Change::Resolved];

    /// Stable name, as the saved state holds it.
    pub fn key(self) -> &'static str {
        match self {
            Change::Fired => "fired",
            Change::Resolved => "resolved",
        }
    }

    pub fn from_key(key: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.key() == key)
    }
}

/// What the message says of the cause.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// Nothing more than the rule (a resolution).
    None,
    /// `station_fault`: the reason (`instrument flag D`, `QC fail (gross_range_test)`).
    Fault { reason: String },
    /// `offline`: the wall time of the station's last current reading.
    Offline { last: DateTime<Utc> },
}

/// One data-level transition waiting for its bureau's digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub station: String,
    /// `station_fault` or `offline`.
    pub rule: Rule,
    /// The faulty parameter; `None` for `offline`.
    pub param: Option<Param>,
    /// The alert episode's id (as `wq_alert` stores it).
    pub alert_id: String,
    pub change: Change,
    /// When the problem began: the first faulty reading's time, or the wall time at which the
    /// station was found silent.
    pub since: DateTime<Utc>,
    /// When this change happened: the reading (or, for `offline`, the wall time) that caused it.
    pub at: DateTime<Utc>,
    pub cause: Cause,
}

impl Entry {
    /// The entry of a data-level transition that fired or resolved; `None` for any other (a
    /// water-quality rule, or a reminder, which a digest has no use for: the operators were
    /// told once and are told again when it clears).
    pub fn of(t: &Transition) -> Option<Entry> {
        if !t.rule.is_data() {
            return None;
        }
        let change = match t.kind {
            Kind::Fired => Change::Fired,
            Kind::Resolved => Change::Resolved,
            Kind::Escalated | Kind::Reminder => return None,
        };
        let cause = match &t.context {
            // Kept as its words (English, times in UTC+8), as the digest lists it.
            Context::Fault { reason } => Cause::Fault {
                reason: reason.to_string(),
            },
            Context::Offline { last } => Cause::Offline { last: *last },
            _ => Cause::None,
        };
        Some(Entry {
            station: t.station.clone(),
            rule: t.rule,
            param: t.param,
            alert_id: t.alert_id.clone(),
            change,
            since: t.since,
            at: t.evidence.ts,
            cause,
        })
    }

    fn same(&self, other: &Entry) -> bool {
        self.alert_id == other.alert_id && self.change == other.change
    }
}

/// Entries that arrived within one interval, waiting to be released together.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Wall time of its first entry: it names the digest and decides when it is due.
    pub opened: DateTime<Utc>,
    /// In arrival order.
    pub entries: Vec<Entry>,
}

/// One bureau's pending batches and its last digest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queue {
    /// Wall time of this bureau's last digest: the next one waits an interval after it.
    pub released: Option<DateTime<Utc>>,
    /// The entries of that digest, as (alert id, change): a transition produced again once it
    /// went out (a crash after `digest.json` took its entry but before `alerts.json` took its
    /// episode, and a restart after the digest was due) is not sent again. Kept while the
    /// queue is, at least an interval after that digest.
    pub sent: Vec<(String, Change)>,
    /// Oldest first; only the last takes new entries, and only within its interval.
    pub batches: Vec<Batch>,
}

/// One bureau's digest, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub bureau: String,
    /// When its first entry arrived (wall time).
    pub opened: DateTime<Utc>,
    /// When it was released (wall time).
    pub released: DateTime<Utc>,
    /// In arrival order.
    pub entries: Vec<Entry>,
}

/// One line of a digest: an alert episode with what the digest knows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub station: &'a str,
    pub rule: Rule,
    pub param: Option<Param>,
    pub alert_id: &'a str,
    pub since: DateTime<Utc>,
    /// The cause as the firing told it; [`Cause::None`] when the firing was in an earlier
    /// digest.
    pub cause: &'a Cause,
    /// When it cleared, if it did within this digest.
    pub cleared: Option<DateTime<Utc>>,
}

impl Digest {
    /// `digest-<bureau>-<opened, UTC>`: what logs, outbox items and email file names call it.
    pub fn id(&self) -> String {
        format!(
            "digest-{}-{}",
            self.bureau,
            self.opened.format("%Y%m%dT%H%M%SZ")
        )
    }

    /// The base of its notifications' idempotency keys: `digest.<bureau>.<opened>`, lowercase;
    /// the same batch always gets the same key.
    pub fn key(&self) -> String {
        format!(
            "digest.{}.{}",
            self.bureau,
            self.opened.format("%Y%m%dT%H%M%SZ")
        )
        .to_lowercase()
    }

    /// One line per alert episode, by station, rule and parameter: the problems still open
    /// (fired, not cleared within this digest) and the ones that cleared (`cleared` set),
    /// whether they began within this digest or an earlier one.
    pub fn lines(&self) -> Vec<Line<'_>> {
        let mut by_alert: BTreeMap<(&str, Rule, Option<Param>, &str), Line<'_>> = BTreeMap::new();
        for e in &self.entries {
            let line = by_alert
                .entry((&e.station, e.rule, e.param, &e.alert_id))
                .or_insert(Line {
                    station: &e.station,
                    rule: e.rule,
                    param: e.param,
                    alert_id: &e.alert_id,
                    since: e.since,
                    cause: &Cause::None,
                    cleared: None,
                });
            match e.change {
                Change::Fired => line.cause = &e.cause,
                Change::Resolved => line.cleared = Some(e.at),
            }
        }
        by_alert.into_values().collect()
    }
}

/// Every bureau's pending digest entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Digests {
    /// `[alerts] digest_interval`.
    interval: Duration,
    /// By bureau id.
    queues: BTreeMap<String, Queue>,
}

impl Digests {
    /// No entry pending; a digest per `interval` at most (a shorter one than a second counts
    /// as a second).
    pub fn new(interval: Duration) -> Digests {
        Digests {
            interval: interval.max(Duration::seconds(1)),
            queues: BTreeMap::new(),
        }
    }

    /// The state [`Digests::save`] gave, under a possibly changed interval.
    pub fn restore(interval: Duration, saved: Vec<(String, Queue)>) -> Digests {
        let mut d = Digests::new(interval);
        d.queues = saved
            .into_iter()
            .filter(|(_, q)| q.released.is_some() || !q.batches.is_empty())
            .collect();
        d
    }

    /// Every bureau's queue, by bureau id, for the shell to keep across restarts.
    pub fn save(&self) -> Vec<(String, Queue)> {
        self.queues
            .iter()
            .map(|(b, q)| (b.clone(), q.clone()))
            .collect()
    }

    /// The shortest time between two digests of one bureau.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether no entry is pending.
    pub fn is_empty(&self) -> bool {
        self.queues.values().all(|q| q.batches.is_empty())
    }

    /// Adds `entry` for `bureau`, arrived at wall time `now`; false when it was pending
    /// already or went out in the bureau's last digest (then nothing changed).
    pub fn add(&mut self, bureau: &str, entry: Entry, now: DateTime<Utc>) -> bool {
        let interval = self.interval;
        let queue = self.queues.entry(bureau.to_string()).or_default();
        let mut pending = queue.batches.iter().flat_map(|b| &b.entries);
        let sent = queue
            .sent
            .iter()
            .any(|(id, change)| *id == entry.alert_id && *change == entry.change);
        if sent || pending.any(|e| e.same(&entry)) {
            return false;
        }
        match queue.batches.last_mut() {
            Some(open) if now < open.opened + interval => open.entries.push(entry),
            _ => queue.batches.push(Batch {
                opened: now,
                entries: vec![entry],
            }),
        }
        true
    }

    /// When the next digest is due, if any entry is pending: the shell's timer need not look
    /// sooner.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.queues.values().filter_map(|q| self.due(q)).min()
    }

    /// When `queue`'s oldest batch is due: an interval after it opened, and an interval after
    /// the bureau's last digest.
    fn due(&self, queue: &Queue) -> Option<DateTime<Utc>> {
        let first = queue.batches.first()?;
        let after_last = queue.released.map(|r| r + self.interval);
        Some((first.opened + self.interval).max(after_last.unwrap_or(first.opened)))
    }

    /// Releases every digest due at wall time `now`, at most one per bureau, by bureau id;
    /// forgets the bureaus with nothing pending whose last digest is an interval old.
    pub fn release(&mut self, now: DateTime<Utc>) -> Vec<Digest> {
        let mut out = Vec::new();
        let due: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| self.due(q).is_some_and(|at| at <= now))
            .map(|(b, _)| b.clone())
            .collect();
        for bureau in due {
            let Some(queue) = self.queues.get_mut(&bureau) else {
                continue;
            };
            let batch = queue.batches.remove(0);
            queue.released = Some(now);
            queue.sent = batch
                .entries
                .iter()
                .map(|e| (e.alert_id.clone(), e.change))
                .collect();
            out.push(Digest {
                bureau,
                opened: batch.opened,
                released: now,
                entries: batch.entries,
            });
        }
        let interval = self.interval;
        self.queues
            .retain(|_, q| !q.batches.is_empty() || q.released.is_some_and(|r| now < r + interval));
        out
    }
}

#[cfg(test)]
mod tests;
