//! The alert lifecycle: per (station, rule, parameter), quiet → firing → resolved, with
//! persistence on both edges (SPEC §7).
//!
//! Fed by judged readings in reading-time order (the screen stage calls [`AlertBook::observe`]);
//! returns the transitions, which the shell stores as `wq_alert` points and hands to the
//! notifier. Pure: time is the reading's own timestamp, so replays decide exactly as live data.
//!
//! This first version carries rule `exceedance` (a validated value worse than the target
//! class). A reading whose timestamp is not newer than the last one seen for a parameter is
//! ignored, so a redelivered or replayed message never counts twice toward persistence.

use super::gb3838::Class;
use super::network::Station;
use super::param::Param;
use super::reading::Judgement;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A validated value worse than the station's target class.
    Exceedance,
}

impl Rule {
    pub fn key(self) -> &'static str {
        match self {
            Rule::Exceedance => "exceedance",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// riverwatch's own levels, lowest first (SPEC §7). Not the government's emergency warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Data,
    Blue,
    Yellow,
    Orange,
    Red,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Data,
        Level::Blue,
        Level::Yellow,
        Level::Orange,
        Level::Red,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Level::Data => "data",
            Level::Blue => "blue",
            Level::Yellow => "yellow",
            Level::Orange => "orange",
            Level::Red => "red",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Level::Data => "数据",
            Level::Blue => "蓝色",
            Level::Yellow => "黄色",
            Level::Orange => "橙色",
            Level::Red => "红色",
        }
    }
}

/// How many consecutive readings open and close an episode. Both are at least 1 (checked by
/// `config`), so a single reading can never both fire and resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    pub fire_after: u32,
    pub clear_after: u32,
}

impl Default for Persistence {
    /// Two consecutive exceeding readings fire; two consecutive compliant ones resolve.
    fn default() -> Self {
        Persistence {
            fire_after: 2,
            clear_after: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Firing,
    Resolved,
}

impl State {
    pub fn key(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// One reading's value of the alerting parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    pub ts: DateTime<Utc>,
    pub value: f64,
    pub class: Class,
}

/// A change of an episode's state: what the store records and the notifier sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub station: String,
    pub rule: Rule,
    pub param: Param,
    pub state: State,
    pub level: Level,
    /// Stable across replays: derived from the station, rule, parameter and episode start.
    pub alert_id: String,
    /// Reading time of the first exceeding reading of the episode.
    pub since: DateTime<Utc>,
    /// The reading that caused this transition.
    pub evidence: Evidence,
    /// The worst value seen during the episode (equal to `evidence` when firing).
    pub peak: Evidence,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Quiet {
        /// Consecutive exceeding readings so far, with the first one's time.
        streak: u32,
        first: Option<DateTime<Utc>>,
    },
    Firing {
        id: String,
        since: DateTime<Utc>,
        level: Level,
        /// Consecutive compliant readings so far.
        clearing: u32,
        peak: Evidence,
    },
}

/// The lifecycle of one (station, rule, parameter).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    phase: Phase,
    /// Newest reading time observed; older or equal readings are ignored.
    last_ts: Option<DateTime<Utc>>,
}

impl Default for Episode {
    fn default() -> Self {
        Episode {
            phase: Phase::Quiet {
                streak: 0,
                first: None,
            },
            last_ts: None,
        }
    }
}

/// Key of one episode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub station: String,
    pub rule: Rule,
    pub param: Param,
}

impl Episode {
    pub fn is_firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. })
    }

    /// Feeds one observation; `breach` is the level when the value breaks the rule, `None`
    /// when it complies. Returns the transition this observation causes, if any.
    pub fn observe(
        &mut self,
        key: &AlertKey,
        evidence: Evidence,
        breach: Option<Level>,
        persistence: Persistence,
    ) -> Option<Transition> {
        if self.last_ts.is_some_and(|last| evidence.ts <= last) {
            return None;
        }
        self.last_ts = Some(evidence.ts);
        match (&mut self.phase, breach) {
            (Phase::Quiet { streak, first }, Some(level)) => {
                *streak += 1;
                let since = *first.get_or_insert(evidence.ts);
                if *streak < persistence.fire_after {
                    return None;
                }
                let id = alert_id(key, since);
                self.phase = Phase::Firing {
                    id: id.clone(),
                    since,
                    level,
                    clearing: 0,
                    peak: evidence,
                };
                Some(transition(
                    key,
                    State::Firing,
                    level,
                    id,
                    since,
                    evidence,
                    evidence,
                ))
            }
            (Phase::Quiet { streak, first }, None) => {
                *streak = 0;
                *first = None;
                None
            }
            (Phase::Firing { clearing, peak, .. }, Some(_)) => {
                *clearing = 0;
                if evidence.class > peak.class
                    || (evidence.class == peak.class && evidence.value > peak.value)
                {
                    *peak = evidence;
                }
                None
            }
            (
                Phase::Firing {
                    id,
                    since,
                    level,
                    clearing,
                    peak,
                },
                None,
            ) => {
                *clearing += 1;
                if *clearing < persistence.clear_after {
                    return None;
                }
                let t = transition(
                    key,
                    State::Resolved,
                    *level,
                    id.clone(),
                    *since,
                    evidence,
                    *peak,
                );
                self.phase = Phase::Quiet {
                    streak: 0,
                    first: None,
                };
                Some(t)
            }
        }
    }
}

fn alert_id(key: &AlertKey, since: DateTime<Utc>) -> String {
    format!(
        "{}-{}-{}-{}",
        key.station,
        key.rule,
        key.param,
        since.format("%Y%m%dT%H%M%SZ")
    )
}

fn transition(
    key: &AlertKey,
    state: State,
    level: Level,
    alert_id: String,
    since: DateTime<Utc>,
    evidence: Evidence,
    peak: Evidence,
) -> Transition {
    Transition {
        station: key.station.clone(),
        rule: key.rule,
        param: key.param,
        state,
        level,
        alert_id,
        since,
        evidence,
        peak,
    }
}

/// The level of an exceedance: orange when worse than class Ⅴ, yellow otherwise.
pub fn exceedance_level(class: Class) -> Level {
    if class == Class::WORSE_THAN_V {
        Level::Orange
    } else {
        Level::Yellow
    }
}

/// Every episode of every station: the alert state of the daemon.
#[derive(Debug, Default)]
pub struct AlertBook {
    episodes: HashMap<AlertKey, Episode>,
    persistence: Persistence,
}

impl AlertBook {
    pub fn new(persistence: Persistence) -> Self {
        AlertBook {
            episodes: HashMap::new(),
            persistence,
        }
    }

    /// Applies the rules to one judged reading and returns the transitions it causes, in
    /// parameter order.
    pub fn observe(
        &mut self,
        station: &Station,
        ts: DateTime<Utc>,
        judgement: &Judgement,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        for j in &judgement.judged {
            let key = AlertKey {
                station: station.id.clone(),
                rule: Rule::Exceedance,
                param: j.param,
            };
            let breach = (j.class > station.target).then(|| exceedance_level(j.class));
            let evidence = Evidence {
                ts,
                value: j.value,
                class: j.class,
            };
            let persistence = self.persistence;
            let episode = self.episodes.entry(key.clone()).or_default();
            out.extend(episode.observe(&key, evidence, breach, persistence));
        }
        out
    }

    /// Number of episodes currently firing, for the summary and metrics.
    pub fn firing(&self) -> usize {
        self.episodes.values().filter(|e| e.is_firing()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::network::fixtures::station;
    use crate::domain::param::Param;
    use crate::domain::reading::{judge, Measured, Reading};
    use chrono::{Duration, TimeZone};

    /// Runs a series of NH3-N values, 4 h apart, at a class-Ⅱ station and returns each
    /// reading's transition as "F<level>" / "R" / ".".
    fn check(values: &[f64], persistence: Persistence) -> String {
        let s = station("shijiao", "qingyuan", 2, true);
        let mut book = AlertBook::new(persistence);
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
        let mut out = String::new();
        for (i, &v) in values.iter().enumerate() {
            let r = Reading {
                station: s.id.clone(),
                ts: t0 + Duration::hours(4 * i as i64),
                values: vec![Measured {
                    param: Param::Nh3n,
                    value: v,
                    flag: None,
                }],
                seq: None,
            };
            let ts = book.observe(&s, r.ts, &judge(&s, &r));
            out.push_str(&match ts.as_slice() {
                [] => ".".to_string(),
                [t] if t.state == State::Firing => format!("F{}", &t.level.key()[..1]),
                [_] => "R".to_string(),
                many => panic!("one parameter gave {} transitions", many.len()),
            });
            out.push(' ');
        }
        out.trim_end().to_string()
    }

    #[test]
    fn lifecycle_table() {
        let p2 = Persistence::default();
        let p1 = Persistence {
            fire_after: 1,
            clear_after: 1,
        };
        let table: &[(&[f64], Persistence, &str)] = &[
            // Two exceeding readings fire; two compliant ones resolve.
            (&[0.3, 1.2, 1.3, 1.1, 0.4, 0.3, 0.3], p2, ". . Fy . . R ."),
            // A single spike never fires.
            (&[0.3, 1.2, 0.3, 1.2, 0.3], p2, ". . . . ."),
            // One compliant reading inside an episode does not resolve it.
            (&[1.2, 1.2, 0.3, 1.2, 0.3, 0.3], p2, ". Fy . . . R"),
            // Worse than class Ⅴ is orange.
            (&[2.5, 2.6], p2, ". Fo"),
            // Compliant on the limit itself (0.5 is class Ⅱ).
            (&[0.5, 0.5, 0.5], p2, ". . ."),
            (&[1.2, 0.3, 1.2, 0.3], p1, "Fy R Fy R"),
        ];
        for &(values, persistence, expected) in table {
            assert_eq!(check(values, persistence), expected, "{values:?}");
        }
    }

    #[test]
    fn replayed_readings_do_not_count_twice() {
        let s = station("shijiao", "qingyuan", 2, true);
        let mut book = AlertBook::new(Persistence::default());
        let ts = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
        let r = Reading {
            station: s.id.clone(),
            ts,
            values: vec![Measured {
                param: Param::Nh3n,
                value: 1.2,
                flag: None,
            }],
            seq: None,
        };
        let j = judge(&s, &r);
        assert!(book.observe(&s, ts, &j).is_empty());
        assert!(book.observe(&s, ts, &j).is_empty(), "same reading again");
        assert!(book.observe(&s, ts - Duration::hours(1), &j).is_empty());
        assert_eq!(book.firing(), 0);
        let fired = book.observe(&s, ts + Duration::hours(4), &j);
        assert_eq!(fired.len(), 1);
        assert_eq!(
            fired[0].alert_id,
            "shijiao-exceedance-nh3n-20261126T000000Z"
        );
        assert_eq!(fired[0].since, ts);
        assert_eq!(book.firing(), 1);
    }

    #[test]
    fn resolved_transition_reports_the_peak_and_keeps_the_id() {
        let s = station("shijiao", "qingyuan", 2, true);
        let mut book = AlertBook::new(Persistence::default());
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
        let mut all = Vec::new();
        for (i, v) in [1.2, 1.8, 1.4, 0.3, 0.2].into_iter().enumerate() {
            let r = Reading {
                station: s.id.clone(),
                ts: t0 + Duration::hours(i as i64),
                values: vec![Measured {
                    param: Param::Nh3n,
                    value: v,
                    flag: None,
                }],
                seq: None,
            };
            all.extend(book.observe(&s, r.ts, &judge(&s, &r)));
        }
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].alert_id, all[1].alert_id);
        assert_eq!(all[1].state, State::Resolved);
        assert_eq!(all[1].peak.value, 1.8);
        assert_eq!(all[1].evidence.value, 0.2);
    }
}

#[cfg(test)]
mod properties {
    //! Invariants of the lifecycle, over random series of NH3-N values and persistence settings.
    use super::*;
    use crate::domain::network::fixtures::station;
    use crate::domain::reading::{judge, Measured, Reading};
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    proptest! {
        // Failures are reported in the test output; no regression files in the tree.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn transitions_respect_persistence_and_alternate(
            values in proptest::collection::vec(0.0f64..3.0, 1..60),
            fire_after in 1u32..5,
            clear_after in 1u32..5,
        ) {
            let s = station("shijiao", "qingyuan", 2, true);
            let persistence = Persistence { fire_after, clear_after };
            let mut book = AlertBook::new(persistence);
            let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let exceeding: Vec<bool> = values.iter().map(|&v| v > 0.5).collect();
            let mut last: Option<Transition> = None;
            for (i, &v) in values.iter().enumerate() {
                let r = Reading {
                    station: s.id.clone(),
                    ts: t0 + Duration::hours(i as i64),
                    values: vec![Measured { param: Param::Nh3n, value: v, flag: None }],
                    seq: None,
                };
                for t in book.observe(&s, r.ts, &judge(&s, &r)) {
                    let window = |n: u32| &exceeding[(i + 1).saturating_sub(n as usize)..=i];
                    match t.state {
                        State::Firing => {
                            // Never fires before `fire_after` consecutive exceeding readings.
                            prop_assert!(i + 1 >= fire_after as usize);
                            prop_assert!(window(fire_after).iter().all(|&e| e));
                            prop_assert!(last.as_ref().is_none_or(|l| l.state == State::Resolved));
                        }
                        State::Resolved => {
                            // Never resolves before `clear_after` consecutive compliant readings.
                            prop_assert!(window(clear_after).iter().all(|&e| !e));
                            let firing = last.as_ref().expect("a resolution follows a firing");
                            prop_assert_eq!(firing.state, State::Firing);
                            prop_assert_eq!(&firing.alert_id, &t.alert_id);
                        }
                    }
                    last = Some(t);
                }
            }
        }
    }
}
