//! The alert lifecycle (SPEC §7): per (station, rule, parameter), quiet → pending → firing →
//! resolved, with m-of-n persistence, a hysteresis band, consecutive clearing, escalation when
//! the level rises, and reminders while firing.
//!
//! Fed by `rules`, which turns each validated reading into one [`Obs`] per rule and parameter
//! (breach at a level, hold inside the hysteresis band, or clear); returns the transitions,
//! which the shell stores as `wq_alert` points and hands to the notifier. Pure: time is the
//! reading's own timestamp, so replays decide exactly as live data. An observation whose time
//! is not newer than the last one of its episode is ignored, so a redelivered or replayed
//! message never counts twice, and a late (backfilled) reading never clears, nor counts toward
//! clearing, an alert that newer readings raised.

use super::gb3838::Class;
use super::hj212::cst;
use super::param::Param;
use super::trend::TrendTest;
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A validated value worse than the station's target class.
    Exceedance,
    /// The overall class worse than the target.
    Class,
    /// A significant Mann–Kendall trend whose Sen line reaches the target limit soon.
    Trend,
    /// A CUSUM or EWMA shift from the station's baseline.
    Shift,
    /// A value changing faster than its rate limit.
    Rate,
    /// QC fail or an instrument fault flag (D, B).
    StationFault,
    /// No reading within the expected cadence.
    Offline,
    /// An exceedance firing upstream, expected to arrive here.
    Upstream,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Exceedance,
        Rule::Class,
        Rule::Trend,
        Rule::Shift,
        Rule::Rate,
        Rule::StationFault,
        Rule::Offline,
        Rule::Upstream,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Rule::Exceedance => "exceedance",
            Rule::Class => "class",
            Rule::Trend => "trend",
            Rule::Shift => "shift",
            Rule::Rate => "rate",
            Rule::StationFault => "station_fault",
            Rule::Offline => "offline",
            Rule::Upstream => "upstream",
        }
    }

    /// Data alerts go to the operating city's station operators, not to both bureaus.
    pub fn is_data(self) -> bool {
        matches!(self, Rule::StationFault | Rule::Offline)
    }

    /// Whether the rule's transitions are notified; every transition is recorded and kept in
    /// the alert state either way. `class` is not: it fires exactly when an exceedance does,
    /// and the exceedance message already says which parameter and by how much. A match
    /// without a catch-all, so a new rule has to decide.
    pub fn notifies(self) -> bool {
        match self {
            Rule::Class => false,
            Rule::Exceedance
            | Rule::Trend
            | Rule::Shift
            | Rule::Rate
            | Rule::StationFault
            | Rule::Offline
            | Rule::Upstream => true,
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

/// How an episode opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Fires when at least `fire_after` of the last `window` observations breach.
    pub fire_after: u32,
    pub window: u32,
    /// Resolves after this many consecutive clear observations.
    pub clear_after: u32,
    /// While firing, a reminder after this much reading time without a notification.
    pub renotify: Option<Duration>,
}

impl Persistence {
    /// One reading fires, one resolves: station-level data rules (`offline`, `upstream`)
    /// resolve on the first good reading.
    pub const ONCE: Persistence = Persistence {
        fire_after: 1,
        window: 1,
        clear_after: 1,
        renotify: None,
    };
}

impl Default for Persistence {
    /// Two consecutive exceeding readings fire; two consecutive compliant ones resolve.
    fn default() -> Self {
        Persistence {
            fire_after: 2,
            window: 2,
            clear_after: 2,
            renotify: None,
        }
    }
}

/// What one observation says about a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obs {
    /// The rule is broken, at this level.
    Breach(Level),
    /// Neither broken nor clearly clear (inside the hysteresis band): counts for nothing and
    /// interrupts a clearing streak.
    Hold,
    /// Clearly compliant.
    Clear,
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

/// Why a transition is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fired,
    /// Still firing, at a higher level than last notified.
    Escalated,
    /// Still firing; the re-notify interval passed.
    Reminder,
    Resolved,
}

impl Kind {
    /// Stable name, part of notification idempotency keys.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Fired => "fired",
            Kind::Escalated => "escalated",
            Kind::Reminder => "reminder",
            Kind::Resolved => "resolved",
        }
    }

    pub fn state(self) -> State {
        match self {
            Kind::Resolved => State::Resolved,
            _ => State::Firing,
        }
    }
}

/// One reading's value of the alerting parameter (or the overall class for `class`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    pub ts: DateTime<Utc>,
    pub value: f64,
    pub class: Option<Class>,
}

/// Facts particular to a rule, for messages. Values are in the parameter's unit; rates per
/// hour and slopes per day are signed (negative when falling).
#[derive(Debug, Clone, PartialEq)]
pub enum Context {
    None,
    /// `trend`: when the Sen line reaches the target limit, from where, and the test's verdict.
    Trend {
        crossing: DateTime<Utc>,
        slope_per_day: f64,
        /// The p-value of `test` (two-sided).
        p: f64,
        /// The test that found the trend significant: Hamed–Rao's by default.
        test: TrendTest,
        /// The Sen line's value at `from`, the start of the trend window: where the rise
        /// started, the baseline the message measures the value's change against.
        baseline: f64,
        /// Time of the oldest value in the trend window.
        from: DateTime<Utc>,
        /// Values (trend buckets) in the window.
        points: usize,
    },
    /// `shift`: which way, by which chart, and from which baseline.
    Shift {
        up: bool,
        /// "CUSUM" or "EWMA".
        chart: &'static str,
        /// Mean and standard deviation of the baseline values the charts were set up on.
        baseline: f64,
        sd: f64,
        /// Reading times of the first and last baseline values.
        baseline_from: DateTime<Utc>,
        baseline_to: DateTime<Utc>,
    },
    /// `rate`: the change over the rate window, its steepest recent step, and how many
    /// parameters changed at once (red when the upstream neighbour changed too).
    Rate {
        /// The window's change (`change`) per hour since its oldest value (`from`).
        per_hour: f64,
        /// From the window's reference (its lowest value; highest when falling is harmful) to
        /// the newest value.
        change: f64,
        /// Time of the oldest value in the rate window.
        from: DateTime<Utc>,
        /// The steepest recent step in the harmful direction.
        steepest: Step,
        params: usize,
    },
    /// `station_fault`: why.
    Fault {
        reason: FaultReason,
    },
    /// `offline`: the last reading.
    Offline {
        last: DateTime<Utc>,
    },
    /// `exceedance` on a value QC found suspect: judged all the same (QC never hides
    /// pollution, WATER.md §5.5), with the test that doubted it, for the officer to verify.
    Suspect {
        test: super::qc::Test,
    },
    /// `upstream`: where the pollution comes from and when it should arrive: `arrival` is the
    /// first exceeding reading upstream plus the travel time, and the window `earliest` to
    /// `latest` is that ± the arrival tolerance (`[alerts] arrival_tolerance`). Carried by the
    /// resolving transition too, so its message can say which upstream event ended.
    Upstream {
        from: String,
        from_alert: String,
        arrival: DateTime<Utc>,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
}

/// One step of a parameter's series, for `rate`: between the validated readings at `from` and
/// `to`, a change of `per_hour` (signed) per hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub per_hour: f64,
}

/// Why a station fault fired (`station_fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultReason {
    /// The spike test, settled by the next value, failed the value read at `at`.
    Spike { at: DateTime<Utc> },
    /// A QC test failed the value (outside what the instrument can report, or a flat line);
    /// `None` when the verdict names no test.
    Qc(Option<super::qc::Test>),
    /// The data logger flagged the value: `D` (instrument fault) or `B` (communication fault).
    Flag(super::param::DataFlag),
}

/// The reason in English, times in China Standard Time as in every message.
impl fmt::Display for FaultReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultReason::Spike { at } => write!(
                f,
                "QC fail (spike) at {} UTC+8",
                at.with_timezone(&cst()).format("%Y-%m-%d %H:%M")
            ),
            FaultReason::Qc(test) => write!(
                f,
                "QC fail ({})",
                test.map_or("quality control", super::qc::Test::key)
            ),
            FaultReason::Flag(flag) => write!(f, "instrument flag {}", flag.letter()),
        }
    }
}

/// What a rule says about one reading (or one tick), for the episode of (station, `rule`,
/// `param`): each rule makes these, and the episodes turn them into transitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub rule: Rule,
    /// `None` for station-level rules (`class`, `offline`).
    pub param: Option<Param>,
    pub evidence: Evidence,
    pub obs: Obs,
    /// How the rule's episodes open and close.
    pub policy: Persistence,
    pub context: Context,
}

/// A change of an episode: what the store records and the notifier sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub station: String,
    pub rule: Rule,
    /// `None` for station-level rules (`class`, `offline`).
    pub param: Option<Param>,
    pub kind: Kind,
    pub state: State,
    pub level: Level,
    /// Stable across replays: derived from the station, rule, parameter and episode start.
    pub alert_id: String,
    /// Reading time of the first breaching observation of the episode.
    pub since: DateTime<Utc>,
    /// The observation that caused this transition.
    pub evidence: Evidence,
    /// The worst value seen during the episode.
    pub peak: Evidence,
    pub context: Context,
    /// An upstream event this alert follows from (station and alert id), if one is known.
    pub follows: Option<(String, String)>,
    /// The incident this alert belongs to (`incident`), set after the rules; its own
    /// notifications are then the incident's.
    pub incident: Option<String>,
}

/// Key of one episode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub station: String,
    pub rule: Rule,
    pub param: Option<Param>,
}

/// The id of the episode of (station, rule, parameter) that started at `since`:
/// `{station}-{rule}-{param}-{start}`, `param` being `station` for station-level rules and
/// `start` the episode's first breaching reading in China Standard Time (UTC+8) as
/// `YYYYMMDDThhmmss` — the time every message shows, so the id an officer reads beside
/// "首个超标读数：2026-11-26 06:00" ends in `20261126T060000`. Letters, digits, `-` and `_`
/// only, so it goes unescaped into URLs (`/api/v1/alerts/{id}/ack`) and file names; derived
/// from reading time, so a replay gives the same id. (Ids saved by earlier versions end in
/// UTC with a `Z`; a firing episode keeps its saved id.)
fn alert_id(station: &str, rule: Rule, param: Option<Param>, since: DateTime<Utc>) -> String {
    let param = param.map_or("station", Param::key);
    format!(
        "{station}-{rule}-{param}-{}",
        since.with_timezone(&cst()).format("%Y%m%dT%H%M%S")
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Quiet {
        /// The last `window` observations: Some(level) for a breach.
        recent: VecDeque<(DateTime<Utc>, Option<Level>)>,
    },
    /// Boxed: a station has dozens of episodes and few of them fire, so the quiet ones stay
    /// small.
    Firing(Box<SavedFiring>),
}

/// The lifecycle of one (station, rule, parameter).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    phase: Phase,
    last_ts: Option<DateTime<Utc>>,
}

impl Default for Episode {
    fn default() -> Self {
        Episode {
            phase: Phase::Quiet {
                recent: VecDeque::new(),
            },
            last_ts: None,
        }
    }
}

fn worse(a: &Evidence, b: &Evidence) -> bool {
    (a.class, a.value) > (b.class, b.value)
}

impl Episode {
    pub fn is_firing(&self) -> bool {
        matches!(self.phase, Phase::Firing(_))
    }

    /// The id of the firing episode, if any.
    pub fn firing_id(&self) -> Option<&str> {
        match &self.phase {
            Phase::Firing(f) => Some(&f.id),
            Phase::Quiet { .. } => None,
        }
    }

    /// Feeds one observation to the episode of (`station`, `o.rule`, `o.param`); returns the
    /// transition it causes, if any. The key comes in parts, so a caller needs no owned key.
    pub fn observe(&mut self, station: &str, o: Observation) -> Option<Transition> {
        let Observation {
            rule,
            param,
            evidence,
            obs,
            policy,
            context,
        } = o;
        if self.last_ts.is_some_and(|last| evidence.ts <= last) {
            return None;
        }
        self.last_ts = Some(evidence.ts);
        let make = |kind, level, id: String, since, peak| Transition {
            station: station.to_string(),
            rule,
            param,
            kind,
            state: Kind::state(kind),
            level,
            alert_id: id,
            since,
            evidence,
            peak,
            context: context.clone(),
            follows: None,
            incident: None,
        };
        match &mut self.phase {
            Phase::Quiet { recent } => {
                let breach = match obs {
                    Obs::Breach(level) => Some(level),
                    Obs::Hold | Obs::Clear => None,
                };
                // Clear observations outnumber all others; remembering one in an empty
                // window would only cost an allocation per episode.
                if breach.is_none() && recent.iter().all(|(_, l)| l.is_none()) {
                    recent.clear();
                    return None;
                }
                while recent.len() >= policy.window.max(1) as usize {
                    recent.pop_front();
                }
                recent.push_back((evidence.ts, breach));
                let breaches = || recent.iter().filter_map(|(t, l)| l.map(|l| (*t, l)));
                if breach.is_none() || (breaches().count() as u32) < policy.fire_after {
                    return None;
                }
                let (since, _) = breaches().next()?;
                let level = breaches().map(|b| b.1).max().unwrap_or(Level::Data);
                let id = alert_id(station, rule, param, since);
                self.phase = Phase::Firing(Box::new(SavedFiring {
                    id: id.clone(),
                    since,
                    level,
                    notified_at: evidence.ts,
                    clearing: 0,
                    peak: evidence,
                }));
                Some(make(Kind::Fired, level, id, since, evidence))
            }
            Phase::Firing(f) => {
                let SavedFiring {
                    id,
                    since,
                    level,
                    notified_at,
                    clearing,
                    peak,
                } = &mut **f;
                match obs {
                    Obs::Breach(new_level) => {
                        *clearing = 0;
                        if worse(&evidence, peak) {
                            *peak = evidence;
                        }
                        if new_level > *level {
                            *level = new_level;
                            *notified_at = evidence.ts;
                            return Some(make(
                                Kind::Escalated,
                                new_level,
                                id.clone(),
                                *since,
                                *peak,
                            ));
                        }
                        if policy
                            .renotify
                            .is_some_and(|every| evidence.ts - *notified_at >= every)
                        {
                            *notified_at = evidence.ts;
                            return Some(make(Kind::Reminder, *level, id.clone(), *since, *peak));
                        }
                        None
                    }
                    Obs::Hold => {
                        *clearing = 0;
                        None
                    }
                    Obs::Clear => {
                        *clearing += 1;
                        if *clearing < policy.clear_after {
                            return None;
                        }
                        let t = make(Kind::Resolved, *level, id.clone(), *since, *peak);
                        self.phase = Phase::Quiet {
                            recent: VecDeque::new(),
                        };
                        Some(t)
                    }
                }
            }
        }
    }
}

/// Every episode of one station, by rule and parameter: a short list in key order (a few
/// dozen at most), so a lookup is a binary search on two small values instead of hashing the
/// station's name for every observation. The keys sit apart from the episodes, so the search
/// reads two cache lines, not one per episode it passes.
#[derive(Debug, Default)]
pub struct Episodes {
    keys: Vec<(Rule, Option<Param>)>,
    /// `episodes[i]` is the episode of `keys[i]`.
    episodes: Vec<Episode>,
}

impl Episodes {
    /// Feeds one observation to the episode of (`station`, `o.rule`, `o.param`).
    pub fn observe(&mut self, station: &str, o: Observation) -> Option<Transition> {
        let key = (o.rule, o.param);
        let i = match self.keys.binary_search(&key) {
            Ok(i) => i,
            Err(i) => {
                self.insert(i, key, Episode::default());
                i
            }
        };
        self.episodes[i].observe(station, o)
    }

    pub fn get(&self, rule: Rule, param: Option<Param>) -> Option<&Episode> {
        self.keys
            .binary_search(&(rule, param))
            .ok()
            .and_then(|i| self.episodes.get(i))
    }

    fn insert(&mut self, i: usize, key: (Rule, Option<Param>), episode: Episode) {
        // Grown a few at a time: doubling would leave most stations with room for twice the
        // episodes they have.
        if self.keys.len() == self.keys.capacity() {
            self.keys.reserve_exact(4);
            self.episodes.reserve_exact(4);
        }
        self.keys.insert(i, key);
        self.episodes.insert(i, episode);
    }

    /// Number of episodes currently firing.
    pub fn firing(&self) -> usize {
        self.episodes.iter().filter(|e| e.is_firing()).count()
    }

    /// Every episode that is not at rest, as plain data for the shell to keep across
    /// restarts, in key order.
    pub fn save(&self, station: &str, out: &mut Vec<Saved>) {
        for ((rule, param), e) in self.keys.iter().zip(&self.episodes) {
            if e.last_ts.is_none() {
                continue;
            }
            let (recent, firing) = match &e.phase {
                Phase::Quiet { recent } => (recent.iter().copied().collect(), None),
                Phase::Firing(f) => (Vec::new(), Some((**f).clone())),
            };
            out.push(Saved {
                key: AlertKey {
                    station: station.to_string(),
                    rule: *rule,
                    param: *param,
                },
                last_ts: e.last_ts,
                recent,
                firing,
            });
        }
    }

    /// Restores one episode saved by [`Episodes::save`] (its station is the caller's
    /// concern), replacing the one with the same rule and parameter.
    pub fn restore(&mut self, s: Saved) {
        let phase = match s.firing {
            Some(f) => Phase::Firing(Box::new(f)),
            None => Phase::Quiet {
                recent: s.recent.into_iter().collect(),
            },
        };
        let episode = Episode {
            phase,
            last_ts: s.last_ts,
        };
        let k = (s.key.rule, s.key.param);
        match self.keys.binary_search(&k) {
            Ok(i) => self.episodes[i] = episode,
            Err(i) => self.insert(i, k, episode),
        }
    }
}

/// One episode as saved across restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub key: AlertKey,
    /// Time of the last observation: older or equal ones (redeliveries) are ignored.
    pub last_ts: Option<DateTime<Utc>>,
    /// While quiet: the recent observations (Some(level) for a breach) toward persistence.
    pub recent: Vec<(DateTime<Utc>, Option<Level>)>,
    /// While firing: the episode.
    pub firing: Option<SavedFiring>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SavedFiring {
    pub id: String,
    pub since: DateTime<Utc>,
    pub level: Level,
    pub notified_at: DateTime<Utc>,
    pub clearing: u32,
    pub peak: Evidence,
}

#[cfg(test)]
mod tests;
