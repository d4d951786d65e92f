//! Incidents (SPEC §7): the alerts of one pollution event along a reach, grouped so that each
//! bureau hears of the event — opened, escalated, spread, arrival confirmed or not downstream,
//! ended — instead of once per rule, station and parameter. The model is the Danube's AEWS
//! and the Rhine's IWAP practice: a warning, its confirmation by the downstream station, and
//! an end of alert.
//!
//! Fed by the screen with each reading's alert transitions and judged values, in reading
//! order, and with wall time on the offline timer; returns [`IncidentEvent`]s (what the shell
//! stores as `wq_incident` points and notifies) and marks each transition that belongs to an
//! incident with its id, so the shell does not notify it on its own. Pure: time is an
//! argument.
//!
//! The grouping rule:
//! - An exceedance that fires and belongs to no open incident opens one, at its station (the
//!   origin), for its parameter, from its first exceeding reading (`since`). The reach is the
//!   origin and every station down its `downstream` chain, each with an expected-arrival window:
//!   `since` + the travel time summed along the chain, ± the arrival tolerance.
//! - An alert joins an open incident when it concerns the origin or a station the incident has
//!   reached (any parameter: other parameters at a station of an open incident join it), or a
//!   station of the reach for the incident's parameter with an episode that started by the end
//!   of that station's window; and an `upstream` warning joins the incident of the exceedance it
//!   follows. Firing alerts that were notified on their own before (an early warning at the
//!   origin, or at a reach station for the incident's parameter) are adopted when the incident
//!   opens: their later transitions are the incident's.
//! - Alerts of the `data` level (station faults, offline) never join: they are about the
//!   station, not the water.
//! - Arrival at a reach station is confirmed by the first judged value of the parameter inside
//!   the window that exceeds the station's target class or has risen (in the harmful direction)
//!   by at least `confirm_share` of the origin's excess over its limit, against the last value
//!   before the window; it is not confirmed when a reading after the window finds neither, or
//!   when the station goes offline past its window. A diluted plume is a real outcome.
//! - The incident ends when none of its alerts fires and no arrival is pending.
//!
//! Levels: an incident's level is the highest of its alerts; a rise above the level last
//! announced is an escalation.

use super::alert::{Context, Kind, Level, Rule, Transition};
use super::gb3838::{self, Class, Limits};
use super::network::{Network, Station};
use super::param::Param;
use chrono::{DateTime, Duration, Utc};

/// Settings of the grouping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncidentConfig {
    /// Half the width of each expected-arrival window (the rules' arrival tolerance).
    pub tolerance: Duration,
    /// The share of the origin's excess over its limit that a downstream rise must reach to
    /// confirm the arrival (0–1).
    pub confirm_share: f64,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            tolerance: Duration::hours(2),
            confirm_share: 0.3,
        }
    }
}

/// What became of the expected arrival at a reach station.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// The window is open or still ahead.
    Pending,
    /// A value inside the window showed the plume.
    Confirmed { ts: DateTime<Utc>, value: f64 },
    /// The window closed without such a value.
    NotConfirmed,
}

/// A station down the origin's chain and when the water should get there.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach {
    pub station: String,
    /// `since` + the summed travel time.
    pub expected: DateTime<Utc>,
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
    /// The station's last judged value of the parameter before the window, the level a rise
    /// is measured from.
    pub baseline: Option<f64>,
    pub arrival: Arrival,
    /// Whether an exceedance of the parameter has been reported here (by the arrival or a
    /// later `spread`), so it is told once.
    pub exceeded: bool,
}

/// An alert of the incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub alert_id: String,
    pub station: String,
    pub rule: Rule,
    pub param: Option<Param>,
    pub level: Level,
    pub firing: bool,
}

/// The worst value of the incident's parameter seen at one of its stations.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    pub station: String,
    pub ts: DateTime<Utc>,
    pub value: f64,
    pub class: Option<Class>,
}

/// One pollution event along a reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Stable across replays: the origin exceedance's alert id with `incident` for the rule.
    pub id: String,
    pub param: Param,
    pub river: String,
    pub origin: String,
    /// The origin's first exceeding reading.
    pub since: DateTime<Utc>,
    /// The origin's value when the exceedance fired; its excess over the origin's limit, in
    /// the harmful direction, is what downstream rises are measured against. Kept as read
    /// (not the difference) so saved state restores it exactly.
    pub origin_value: f64,
    /// The highest level announced.
    pub level: Level,
    pub members: Vec<Member>,
    /// Downstream stations in chain order (the origin is not one).
    pub reach: Vec<Reach>,
    pub peak: Peak,
    /// Reading time of the newest event, the end time once ended.
    pub last_ts: DateTime<Utc>,
}

impl Incident {
    /// The stations the water has reached: the origin, and reach stations whose arrival was
    /// confirmed or that report an exceedance.
    pub fn stations_reached(&self) -> Vec<&str> {
        let mut out = vec![self.origin.as_str()];
        out.extend(
            self.reach
                .iter()
                .filter(|r| r.exceeded || matches!(r.arrival, Arrival::Confirmed { .. }))
                .map(|r| r.station.as_str()),
        );
        out
    }

    fn reached(&self, station: &str) -> bool {
        self.stations_reached().contains(&station)
    }

    fn member_mut(&mut self, alert_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.alert_id == alert_id)
    }

    fn is_over(&self) -> bool {
        !self.members.iter().any(|m| m.firing)
            && !self.reach.iter().any(|r| r.arrival == Arrival::Pending)
    }
}

/// What happened to an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Opened,
    /// Its level rose above the one announced.
    Escalated,
    /// An exceedance at a reach station whose arrival was confirmed below the limit.
    Spread {
        station: String,
    },
    ArrivalConfirmed {
        station: String,
        ts: DateTime<Utc>,
        value: f64,
    },
    ArrivalNotConfirmed {
        station: String,
    },
    Ended,
}

impl EventKind {
    /// Every [`EventKind::key`], in order (metrics count each).
    pub const KEYS: [&'static str; 6] = [
        "opened",
        "escalated",
        "spread",
        "arrival_confirmed",
        "arrival_not_confirmed",
        "ended",
    ];

    /// The `state` field of `wq_incident` (SPEC §6).
    pub fn key(&self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Escalated => "escalated",
            EventKind::Spread { .. } => "spread",
            EventKind::ArrivalConfirmed { .. } => "arrival_confirmed",
            EventKind::ArrivalNotConfirmed { .. } => "arrival_not_confirmed",
            EventKind::Ended => "ended",
        }
    }

    /// The station a station-specific event concerns.
    pub fn station(&self) -> Option<&str> {
        match self {
            EventKind::Spread { station }
            | EventKind::ArrivalConfirmed { station, .. }
            | EventKind::ArrivalNotConfirmed { station } => Some(station),
            EventKind::Opened | EventKind::Escalated | EventKind::Ended => None,
        }
    }
}

/// One incident transition: the incident as it stands after it, what happened, and when
/// (reading time, or wall time for a window closed by the clock).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentEvent {
    pub incident: Incident,
    pub kind: EventKind,
    pub ts: DateTime<Utc>,
    /// The alert transition that caused it (the exceedance that opened, escalated or spread
    /// it), whose facts the message repeats; `None` for events of values or the clock.
    pub cause: Option<Transition>,
}

impl IncidentEvent {
    /// Unique per incident and event, stable across replays: the base of the notifications'
    /// idempotency keys.
    pub fn key(&self) -> String {
        match self.kind.station() {
            Some(s) => format!("{}.{}.{s}", self.incident.id, self.kind.key()),
            None => format!("{}.{}", self.incident.id, self.kind.key()),
        }
    }
}

/// The open incidents, and the firing alerts that belong to none (to adopt).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incidents {
    cfg: IncidentConfig,
    open: Vec<Incident>,
    loose: Vec<Member>,
}

/// A value's badness in the parameter's harmful direction: larger is worse.
fn badness(limits: &Limits, value: f64) -> f64 {
    match limits {
        Limits::Max(_) => value,
        Limits::Min(_) => -value,
        Limits::Range(lo, hi) => (value - (lo + hi) / 2.0).abs(),
    }
}

/// The station's limits for `param` and its target-class limit's badness.
fn limit_badness(station: &Station, param: Param) -> Option<(Limits, f64)> {
    let limits = gb3838::limits(param, station.water_body)?;
    let edge = match limits.limit(station.target) {
        gb3838::LimitValue::AtMost(v) | gb3838::LimitValue::AtLeast(v) => badness(&limits, v),
        gb3838::LimitValue::Between(lo, hi) => (hi - lo) / 2.0,
    };
    Some((limits, edge))
}

impl Incidents {
    pub fn new(cfg: IncidentConfig) -> Incidents {
        Incidents {
            cfg,
            ..Incidents::default()
        }
    }

    /// The open incidents.
    pub fn open(&self) -> &[Incident] {
        &self.open
    }

    /// One reading at `station`: first its judged values (arrivals downstream), then its alert
    /// transitions, in order; each transition that belongs to an incident gets its id in
    /// `Transition::incident`. Returns the events, in order.
    pub fn reading(
        &mut self,
        net: &Network,
        station: &Station,
        ts: DateTime<Utc>,
        values: &[(Param, f64, Class)],
        transitions: &mut [Transition],
    ) -> Vec<IncidentEvent> {
        let mut out = Vec::new();
        self.values(net, station, ts, values, &mut out);
        for t in transitions.iter_mut() {
            self.transition(net, t, &mut out);
        }
        self.end_finished(ts, &mut out);
        out
    }

    /// Transitions without a reading (the offline timer's). A window is decided by the
    /// station's own readings (reading time), never by the clock alone: after an outage a
    /// logger's backlog brings the window's values late, and they still count. A station that
    /// goes offline past its window decides it "not confirmed" — no data is no arrival seen.
    pub fn tick(
        &mut self,
        net: &Network,
        now: DateTime<Utc>,
        transitions: &mut [Transition],
    ) -> Vec<IncidentEvent> {
        let mut out = Vec::new();
        for t in transitions.iter_mut() {
            self.transition(net, t, &mut out);
        }
        self.end_finished(now, &mut out);
        out
    }

    /// An `offline` alert firing at a reach station after its window: not confirmed.
    fn silent(&mut self, t: &Transition, out: &mut Vec<IncidentEvent>) {
        for inc in &mut self.open {
            let Some(k) = inc.reach.iter().position(|r| {
                r.station == t.station && r.arrival == Arrival::Pending && t.evidence.ts > r.latest
            }) else {
                continue;
            };
            inc.reach[k].arrival = Arrival::NotConfirmed;
            inc.last_ts = inc.last_ts.max(t.evidence.ts);
            out.push(IncidentEvent {
                incident: inc.clone(),
                kind: EventKind::ArrivalNotConfirmed {
                    station: t.station.clone(),
                },
                ts: t.evidence.ts,
                cause: None,
            });
        }
    }

    /// Arrival decisions from one reading's judged values at `station`.
    fn values(
        &mut self,
        net: &Network,
        station: &Station,
        ts: DateTime<Utc>,
        values: &[(Param, f64, Class)],
        out: &mut Vec<IncidentEvent>,
    ) {
        let share = self.cfg.confirm_share;
        for inc in &mut self.open {
            let Some(k) = inc.reach.iter().position(|r| r.station == station.id) else {
                continue;
            };
            if inc.reach[k].arrival != Arrival::Pending {
                continue;
            }
            // Any reading after the window decides it, with or without a valid value of the
            // parameter: a probe QC failed through the window showed no arrival either.
            if ts > inc.reach[k].latest {
                inc.reach[k].arrival = Arrival::NotConfirmed;
                let station = inc.reach[k].station.clone();
                inc.last_ts = inc.last_ts.max(ts);
                out.push(IncidentEvent {
                    incident: inc.clone(),
                    kind: EventKind::ArrivalNotConfirmed { station },
                    ts,
                    cause: None,
                });
                continue;
            }
            let Some(&(_, value, class)) = values.iter().find(|(p, _, _)| *p == inc.param) else {
                continue;
            };
            let Some((limits, _)) = limit_badness(station, inc.param) else {
                continue;
            };
            let excess = net
                .station(&inc.origin)
                .and_then(|o| limit_badness(o, inc.param))
                .map_or(0.0, |(l, edge)| badness(&l, inc.origin_value) - edge);
            let r = &mut inc.reach[k];
            if ts < r.earliest {
                r.baseline = Some(value);
                continue;
            }
            let base = *r.baseline.get_or_insert(value);
            let exceeds = class > station.target;
            let rose = badness(&limits, value) - badness(&limits, base) >= share * excess;
            if exceeds || (rose && excess > 0.0) {
                r.arrival = Arrival::Confirmed { ts, value };
                r.exceeded = exceeds;
                let station = r.station.clone();
                inc.last_ts = inc.last_ts.max(ts);
                if exceeds
                    && (Some(class), badness(&limits, value))
                        > (inc.peak.class, badness(&limits, inc.peak.value))
                {
                    inc.peak = Peak {
                        station: station.clone(),
                        ts,
                        value,
                        class: Some(class),
                    };
                }
                out.push(IncidentEvent {
                    incident: inc.clone(),
                    kind: EventKind::ArrivalConfirmed { station, ts, value },
                    ts,
                    cause: None,
                });
            }
        }
    }

    /// Assigns one alert transition: to the incident it belongs to (updating it), or opens
    /// one, or keeps it loose.
    fn transition(&mut self, net: &Network, t: &mut Transition, out: &mut Vec<IncidentEvent>) {
        if t.rule == Rule::Offline && t.kind == Kind::Fired {
            self.silent(t, out);
        }
        if t.rule.is_data() {
            return;
        }
        let ts = t.evidence.ts;
        // A transition of an alert already grouped.
        if let Some(inc) = self
            .open
            .iter_mut()
            .find(|i| i.members.iter().any(|m| m.alert_id == t.alert_id))
        {
            t.incident = Some(inc.id.clone());
            if let Some(m) = inc.member_mut(&t.alert_id) {
                m.level = t.level;
                m.firing = t.kind != Kind::Resolved;
            }
            inc.last_ts = inc.last_ts.max(ts);
            note_peak(net, inc, t);
            escalate(inc, t, out);
            return;
        }
        if t.kind != Kind::Fired {
            // A loose alert's later transition: notified on its own, as before.
            if t.kind == Kind::Resolved {
                self.loose.retain(|m| m.alert_id != t.alert_id);
            } else if let Some(m) = self.loose.iter_mut().find(|m| m.alert_id == t.alert_id) {
                m.level = t.level;
            }
            return;
        }
        let member = Member {
            alert_id: t.alert_id.clone(),
            station: t.station.clone(),
            rule: t.rule,
            param: t.param,
            level: t.level,
            firing: true,
        };
        if let Some(inc) = self.open.iter_mut().find(|i| joins(i, t)) {
            t.incident = Some(inc.id.clone());
            inc.members.push(member);
            inc.last_ts = inc.last_ts.max(ts);
            note_peak(net, inc, t);
            if t.rule == Rule::Exceedance && t.param == Some(inc.param) {
                if let Some(k) = inc.reach.iter().position(|r| r.station == t.station) {
                    let r = &mut inc.reach[k];
                    if !r.exceeded {
                        r.exceeded = true;
                        let station = r.station.clone();
                        let kind = match r.arrival {
                            Arrival::Confirmed { .. } => EventKind::Spread { station },
                            Arrival::Pending | Arrival::NotConfirmed => {
                                r.arrival = Arrival::Confirmed {
                                    ts,
                                    value: t.evidence.value,
                                };
                                EventKind::ArrivalConfirmed {
                                    station,
                                    ts,
                                    value: t.evidence.value,
                                }
                            }
                        };
                        out.push(IncidentEvent {
                            incident: inc.clone(),
                            kind,
                            ts,
                            cause: Some(t.clone()),
                        });
                    }
                }
            }
            escalate(inc, t, out);
            return;
        }
        match (t.rule, t.param, net.station(&t.station)) {
            (Rule::Exceedance, Some(param), Some(origin)) => {
                let inc = self.opened(net, origin, param, t, member);
                t.incident = Some(inc.id.clone());
                out.push(IncidentEvent {
                    incident: inc.clone(),
                    kind: EventKind::Opened,
                    ts,
                    cause: Some(t.clone()),
                });
                self.open.push(inc);
            }
            _ => self.loose.push(member),
        }
    }

    /// A new incident at `origin` for the exceedance `t`, adopting the loose alerts it covers.
    fn opened(
        &mut self,
        net: &Network,
        origin: &Station,
        param: Param,
        t: &Transition,
        member: Member,
    ) -> Incident {
        let tol = self.cfg.tolerance;
        let mut reach = Vec::new();
        let mut travel = Duration::zero();
        let mut at = origin;
        // The chain is validated acyclic at load; the bound only guards a hand-built network.
        while let Some(d) = &at.downstream {
            let Some(next) = net.station(&d.station) else {
                break;
            };
            if reach.len() >= net.stations.len() {
                break;
            }
            travel += Duration::from_std(d.travel_time).unwrap_or_else(|_| Duration::zero());
            let expected = t.since + travel;
            reach.push(Reach {
                station: next.id.clone(),
                expected,
                earliest: expected - tol,
                latest: expected + tol,
                baseline: None,
                arrival: Arrival::Pending,
                exceeded: false,
            });
            at = next;
        }
        let peak = Peak {
            station: origin.id.clone(),
            ts: t.peak.ts,
            value: t.peak.value,
            class: t.peak.class,
        };
        let mut members = vec![member];
        let covered = |m: &Member| {
            m.station == origin.id
                || (m.param == Some(param) && reach.iter().any(|r| r.station == m.station))
        };
        members.extend(self.loose.iter().filter(|m| covered(m)).cloned());
        self.loose.retain(|m| !covered(m));
        Incident {
            id: t.alert_id.replacen("-exceedance-", "-incident-", 1),
            param,
            river: origin.river.clone(),
            origin: origin.id.clone(),
            since: t.since,
            origin_value: t.evidence.value,
            level: t.level,
            members,
            reach,
            peak,
            last_ts: t.evidence.ts,
        }
    }

    /// Ends the incidents with nothing firing and nothing pending.
    fn end_finished(&mut self, ts: DateTime<Utc>, out: &mut Vec<IncidentEvent>) {
        let mut k = 0;
        while k < self.open.len() {
            if self.open[k].is_over() {
                let mut inc = self.open.remove(k);
                inc.last_ts = inc.last_ts.max(ts);
                out.push(IncidentEvent {
                    incident: inc,
                    kind: EventKind::Ended,
                    ts,
                    cause: None,
                });
            } else {
                k += 1;
            }
        }
    }

    /// The state to keep across a restart: the open incidents and the loose firing alerts.
    pub fn save(&self) -> (Vec<Incident>, Vec<Member>) {
        (self.open.clone(), self.loose.clone())
    }

    /// Restores what [`Incidents::save`] returned.
    pub fn restore(&mut self, open: Vec<Incident>, loose: Vec<Member>) {
        self.open = open;
        self.loose = loose;
    }
}

fn badness_of(station: &Station, param: Param, value: f64) -> f64 {
    gb3838::limits(param, station.water_body).map_or(value, |l| badness(&l, value))
}

/// Whether the new alert `t` (fired) belongs to `inc`.
fn joins(inc: &Incident, t: &Transition) -> bool {
    if let (Rule::Upstream, Context::Upstream { from_alert, .. }) = (t.rule, &t.context) {
        return inc.members.iter().any(|m| &m.alert_id == from_alert);
    }
    if inc.reached(&t.station) {
        return true;
    }
    // At a reach station, an episode of the incident's parameter that began between the
    // event's start upstream and the end of the station's window: the water cannot arrive
    // before it left, and what begins after the window is a plume of its own.
    t.param == Some(inc.param)
        && t.since >= inc.since
        && inc
            .reach
            .iter()
            .any(|r| r.station == t.station && t.since <= r.latest)
}

/// The worst value of the incident's parameter: from an exceedance's peak.
fn note_peak(net: &Network, inc: &mut Incident, t: &Transition) {
    if t.rule != Rule::Exceedance || t.param != Some(inc.param) {
        return;
    }
    let Some(station) = net.station(&t.station) else {
        return;
    };
    let candidate = (t.peak.class, badness_of(station, inc.param, t.peak.value));
    let current = (
        inc.peak.class,
        badness_of(station, inc.param, inc.peak.value),
    );
    if candidate > current {
        inc.peak = Peak {
            station: t.station.clone(),
            ts: t.peak.ts,
            value: t.peak.value,
            class: t.peak.class,
        };
    }
}

/// An escalation when `t` raises the incident above the level announced.
fn escalate(inc: &mut Incident, t: &Transition, out: &mut Vec<IncidentEvent>) {
    if t.kind != Kind::Resolved && t.level > inc.level {
        inc.level = t.level;
        out.push(IncidentEvent {
            incident: inc.clone(),
            kind: EventKind::Escalated,
            ts: t.evidence.ts,
            cause: Some(t.clone()),
        });
    }
}

#[cfg(test)]
pub(crate) mod tests;
