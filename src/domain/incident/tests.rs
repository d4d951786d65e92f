//! Incident scenarios on the pure core, through the real rules: one spill from its opening to
//! its end with the arrival confirmed downstream; a diluted plume not confirmed; a plume later
//! than its window and a second spill days later open incidents of their own; early warnings
//! before the exceedance are adopted; every event count stays within the notification budget.

use super::*;
use crate::domain::network::fixtures::reach_network;
use crate::domain::reading::Reading;
use crate::domain::rules::{RuleConfig, Rules};
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn h(hours: i64) -> DateTime<Utc> {
    t0() + Duration::hours(hours)
}

/// The fixture network with 七星岗 draining into 石角(界牌) in 10 h.
fn net() -> Network {
    reach_network()
}

/// The daemon's order: the rules, then the incidents, per reading (shared with the restart
/// property test of `state`, which swaps `incidents` for a reloaded copy).
pub(crate) struct Pipeline {
    rules: Rules,
    pub(crate) incidents: Incidents,
    transitions: Vec<Transition>,
    pub(crate) events: Vec<IncidentEvent>,
}

impl Pipeline {
    pub(crate) fn new() -> Pipeline {
        Pipeline {
            rules: Rules::new(RuleConfig::default()),
            incidents: Incidents::new(IncidentConfig::default()),
            transitions: Vec::new(),
            events: Vec::new(),
        }
    }

    /// One NH3-N reading of `station`, `hours` after 2026-11-01 00:00 UTC.
    pub(crate) fn feed(&mut self, net: &Network, station: &str, hours: i64, nh3n: f64) {
        let s = net.station(station).unwrap();
        let r = Reading::of_values(station, h(hours), &[(Param::Nh3n, nh3n)]);
        let mut out = self.rules.reading(net, s, &r, h(hours));
        let values: Vec<_> = out
            .judgement
            .judged
            .iter()
            .map(|j| (j.param, j.value, j.class))
            .collect();
        self.events.extend(
            self.incidents
                .reading(net, s, r.ts, &values, &mut out.transitions),
        );
        self.transitions.extend(out.transitions);
    }

    fn kinds(&self) -> Vec<(String, &'static str)> {
        self.events
            .iter()
            .map(|e| (e.incident.id.clone(), e.kind.key()))
            .collect()
    }
}

/// 七星岗 exceeds from hour 8 (fires at 12, resolves at 20); 石角 follows `downstream`
/// (hour, NH3-N) on a 0.2 mg/L baseline.
fn spill(downstream: &[(i64, f64)]) -> (Network, Pipeline) {
    let net = net();
    let mut p = Pipeline::new();
    let upstream = [
        (0, 0.2),
        (4, 0.2),
        (8, 1.2),
        (12, 1.4),
        (16, 0.2),
        (20, 0.2),
    ];
    let mut feed: Vec<(&str, i64, f64)> = upstream
        .iter()
        .map(|&(hr, v)| ("qixinggang", hr, v))
        .collect();
    feed.extend(downstream.iter().map(|&(hr, v)| ("shijiao", hr, v)));
    feed.sort_by_key(|(_, hr, _)| *hr);
    for (s, hr, v) in feed {
        p.feed(&net, s, hr, v);
    }
    (net, p)
}

#[test]
fn a_spill_is_one_incident_confirmed_downstream_then_ended() {
    // Window at 石角: since (hour 8) + 10 h ± 2 h = hours 16–20.
    let (net, p) = spill(&[
        (0, 0.2),
        (4, 0.2),
        (8, 0.2),
        (12, 0.2),
        (16, 0.3),
        (20, 0.9),
        (24, 0.95),
        (28, 0.2),
        (32, 0.2),
    ]);
    let id = "qixinggang-incident-nh3n-20261101T160000".to_string();
    assert_eq!(
        p.kinds(),
        [
            (id.clone(), "opened"),
            (id.clone(), "arrival_confirmed"),
            (id.clone(), "ended"),
        ],
        "{:#?}",
        p.events
    );
    let opened = &p.events[0];
    assert_eq!(opened.ts, h(12), "opened when the exceedance fired");
    assert_eq!(
        (
            opened.incident.reach[0].earliest,
            opened.incident.reach[0].latest
        ),
        (h(16), h(20)),
        "the window counts from the first exceeding reading"
    );
    assert_eq!(
        p.events[1].kind,
        EventKind::ArrivalConfirmed {
            station: "shijiao".into(),
            ts: h(20),
            value: 0.9
        }
    );
    // Both cities hear of it: it heads for a boundary section.
    let bureaus: Vec<&str> = net
        .incident_recipients(&opened.incident)
        .iter()
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(bureaus, ["guangzhou", "qingyuan"]);
    // Every water-quality alert of the event is grouped, so none is notified on its own —
    // but the early warning that fired before the exceedance was confirmed (the rate of the
    // jump, one reading ahead), which is the point of early warning.
    let loose: Vec<_> = p
        .transitions
        .iter()
        .filter(|t| !t.rule.is_data() && t.incident.is_none())
        .map(|t| (t.rule, t.kind, t.evidence.ts))
        .collect();
    assert_eq!(loose, [(Rule::Rate, Kind::Fired, h(8))]);
    assert!(opened.incident.members.iter().any(|m| m.rule == Rule::Rate));
    let ended = &p.events[2].incident;
    assert_eq!(ended.stations_reached(), ["qixinggang", "shijiao"]);
    assert_eq!(ended.peak.station, "qixinggang");
    assert_eq!(ended.peak.value, 1.4);
}

#[test]
fn a_diluted_plume_is_not_confirmed_and_the_incident_ends() {
    let (_, p) = spill(&[
        (0, 0.2),
        (8, 0.2),
        (12, 0.2),
        (16, 0.22),
        (20, 0.25),
        (24, 0.2),
    ]);
    let kinds: Vec<&str> = p.events.iter().map(|e| e.kind.key()).collect();
    assert_eq!(kinds, ["opened", "arrival_not_confirmed", "ended"]);
    assert_eq!(
        p.events[1].ts,
        h(24),
        "decided by the first reading after the window"
    );
}

#[test]
fn a_station_offline_past_its_window_decides_it_and_the_clock_alone_does_not() {
    let (net, mut p) = spill(&[(0, 0.2), (8, 0.2)]);
    assert_eq!(p.incidents.open().len(), 1);
    // The clock alone never decides: a backlog may still bring the window's values.
    assert!(p.incidents.tick(&net, h(40), &mut []).is_empty());
    let mut offline = [Transition {
        param: None,
        context: Context::None,
        ..transition("shijiao", Rule::Offline, Kind::Fired, Level::Data, 30, 30)
    }];
    let events = p.incidents.tick(&net, h(30), &mut offline);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.key()).collect();
    assert_eq!(kinds, ["arrival_not_confirmed", "ended"]);
    assert!(p.incidents.open().is_empty());
}

#[test]
fn a_plume_later_than_its_window_opens_its_own_incident() {
    let (_, p) = spill(&[
        (0, 0.2),
        (16, 0.2),
        (20, 0.2),
        (24, 0.2),
        (40, 0.9),
        (44, 0.9),
    ]);
    let kinds = p.kinds();
    let first = "qixinggang-incident-nh3n-20261101T160000".to_string();
    let second = "shijiao-incident-nh3n-20261103T000000".to_string();
    assert_eq!(
        kinds,
        [
            (first.clone(), "opened"),
            (first.clone(), "arrival_not_confirmed"),
            (first, "ended"),
            (second, "opened"),
        ]
    );
}

#[test]
fn two_spills_days_apart_make_two_incidents() {
    let net = net();
    let mut p = Pipeline::new();
    for day in [0, 5] {
        let base = day * 24;
        for (hr, v) in [(0, 0.2), (4, 1.2), (8, 1.3), (12, 0.2), (16, 0.2)] {
            p.feed(&net, "qixinggang", base + hr, v);
        }
        for hr in [20, 24] {
            p.feed(&net, "shijiao", base + hr, 0.2);
        }
    }
    let opened: Vec<String> = p
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Opened)
        .map(|e| e.incident.id.clone())
        .collect();
    assert_eq!(opened.len(), 2, "{:#?}", p.kinds());
    assert_ne!(opened[0], opened[1]);
    assert!(p.incidents.open().is_empty());
}

/// A hand-made transition of `rule` at `station`.
fn transition(
    station: &str,
    rule: Rule,
    kind: Kind,
    level: Level,
    since: i64,
    at: i64,
) -> Transition {
    let evidence = crate::domain::alert::Evidence {
        ts: h(at),
        value: 1.0,
        class: Class::new(4),
    };
    Transition {
        station: station.into(),
        rule,
        param: Some(Param::Nh3n),
        kind,
        state: kind.state(),
        level,
        alert_id: format!(
            "{station}-{}-nh3n-{}",
            rule.key(),
            h(since).format("%Y%m%dT%H%M%SZ")
        ),
        since: h(since),
        evidence,
        peak: evidence,
        context: Context::None,
        follows: None,
        incident: None,
    }
}

/// [`transition`] at 七星岗, the origin of the hand-made cases.
fn at_qx(rule: Rule, kind: Kind, level: Level, since: i64, at: i64) -> Transition {
    transition("qixinggang", rule, kind, level, since, at)
}

#[test]
fn an_early_warning_notifies_on_its_own_then_joins_the_incident() {
    let net = net();
    let mut inc = Incidents::new(IncidentConfig::default());
    let qx = net.station("qixinggang").unwrap();
    let mut trend = [at_qx(Rule::Trend, Kind::Fired, Level::Blue, 0, 0)];
    inc.reading(&net, qx, h(0), &[], &mut trend);
    assert_eq!(
        trend[0].incident, None,
        "before any exceedance it is an early warning"
    );
    let mut fired = [at_qx(Rule::Exceedance, Kind::Fired, Level::Yellow, 4, 8)];
    let events = inc.reading(&net, qx, h(8), &[], &mut fired);
    assert_eq!(events.len(), 1);
    assert!(events[0]
        .incident
        .members
        .iter()
        .any(|m| m.rule == Rule::Trend));
    // Its resolution mid-incident is the incident's, not a blue "resolved" of its own.
    let mut resolved = [at_qx(Rule::Trend, Kind::Resolved, Level::Blue, 0, 12)];
    inc.reading(&net, qx, h(12), &[], &mut resolved);
    assert_eq!(resolved[0].incident, Some(events[0].incident.id.clone()));
}

#[test]
fn a_level_rise_escalates_once() {
    let net = net();
    let mut inc = Incidents::new(IncidentConfig::default());
    let qx = net.station("qixinggang").unwrap();
    let mut ts = [
        at_qx(Rule::Exceedance, Kind::Fired, Level::Yellow, 0, 4),
        at_qx(Rule::Exceedance, Kind::Escalated, Level::Orange, 0, 8),
        at_qx(Rule::Exceedance, Kind::Reminder, Level::Orange, 0, 12),
    ];
    let events = inc.reading(&net, qx, h(12), &[], &mut ts);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.key()).collect();
    assert_eq!(kinds, ["opened", "escalated"]);
    assert_eq!(events[1].incident.level, Level::Orange);
}

#[test]
fn data_alerts_never_join() {
    let net = net();
    let mut inc = Incidents::new(IncidentConfig::default());
    let qx = net.station("qixinggang").unwrap();
    let mut ts = [
        at_qx(Rule::Exceedance, Kind::Fired, Level::Yellow, 0, 4),
        at_qx(Rule::StationFault, Kind::Fired, Level::Data, 4, 4),
    ];
    inc.reading(&net, qx, h(4), &[], &mut ts);
    assert!(ts[0].incident.is_some());
    assert_eq!(ts[1].incident, None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the plume does downstream, an incident's events stay within the
        /// notification budget (opened, escalated, spread or arrival, ended: at most one each
        /// per station), and every incident that opens ends once its alerts clear and its
        /// window passes.
        #[test]
        fn events_stay_within_the_budget_and_every_incident_ends(
            peak in 0.6f64..4.0,
            downstream in proptest::collection::vec(0.0f64..2.5, 8),
        ) {
            let net = net();
            let mut p = Pipeline::new();
            let up = [(0, 0.2), (4, peak), (8, peak), (12, 0.2), (16, 0.2)];
            let mut feed: Vec<(&str, i64, f64)> =
                up.iter().map(|&(hr, v)| ("qixinggang", hr, v)).collect();
            feed.extend(downstream.iter().enumerate().map(|(i, v)| ("shijiao", i as i64 * 4 + 2, *v)));
            // And quiet water after, so every episode clears.
            feed.extend((0..4).map(|i| ("shijiao", 34 + i * 4, 0.2)));
            feed.sort_by_key(|(_, hr, _)| *hr);
            for (s, hr, v) in feed {
                p.feed(&net, s, hr, v);
            }
            let mut per_incident: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
            for e in &p.events {
                per_incident.entry(e.incident.id.clone()).or_default().push(e.kind.key());
            }
            for (id, kinds) in &per_incident {
                prop_assert!(kinds.len() <= 5, "{id}: {kinds:?}");
                prop_assert_eq!(kinds.first(), Some(&"opened"));
                prop_assert_eq!(kinds.last(), Some(&"ended"), "{}: {:?}", id, kinds);
                prop_assert_eq!(kinds.iter().filter(|k| **k == "ended").count(), 1);
            }
            prop_assert!(p.incidents.open().is_empty());
        }
    }
}

#[test]
fn hourly_a_late_plume_and_a_second_spill_make_three_incidents() {
    // Hourly: 七星岗 exceeds at hours 10–12 and again at 70–72; 石角 stays clean through the
    // first window (hours 18–22) but exceeds at 30–32, too late for it.
    let net = net();
    let mut p = Pipeline::new();
    for hr in 0..100 {
        let up = if (10..13).contains(&hr) || (70..73).contains(&hr) {
            1.2
        } else {
            0.2
        };
        let down = if (30..33).contains(&hr) { 0.9 } else { 0.2 };
        p.feed(&net, "qixinggang", hr, up);
        p.feed(&net, "shijiao", hr, down);
    }
    let summary: Vec<(String, &str)> = p
        .kinds()
        .into_iter()
        .map(|(id, k)| (id.split('-').next().unwrap_or_default().to_string(), k))
        .collect();
    let ended = summary.iter().filter(|(_, k)| *k == "ended").count();
    assert_eq!(ended, 3, "{summary:?} {:#?}", p.incidents.open());
    assert!(
        summary.contains(&("qixinggang".into(), "arrival_not_confirmed")),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("shijiao".into(), "opened")),
        "{summary:?}"
    );
}
