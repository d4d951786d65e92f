//! The alert rules (SPEC §7): from a station's readings to observations for the lifecycle in
//! `alert`. This module is the dispatcher: it keeps each station's rule state, runs QC, the
//! judgement and the rules in a fixed order, and carries the few ways rules affect each other.
//! Each rule lives in a file of its own, with its evaluation and its state: `station_fault`,
//! `exceedance`, `class`, `trend`, `shift`, `rate`, `offline`, `upstream`.
//!
//! Fed by the screen stage with each decoded reading, in arrival order, and by a timer the
//! shell drives (`tick`, for `offline`); returns QC flags, revised flags of the previous
//! reading, the judgement on validated values, and alert transitions. Pure: reading time comes
//! with the reading; wall time (`now`, for staleness) is an argument.
//!
//! The order, per reading (transitions come out in it):
//! 1. `offline` resolves on a current reading.
//! 2. QC of every value, then `station_fault` per parameter.
//! 3. The GB 3838 judgement of the validated values, then `exceedance` per judged parameter.
//!    An exceedance that fires or resolves warns or clears the downstream station
//!    (`upstream`); one that resolves restarts the parameter's trend and rate windows, or the
//!    passing plume would read as a rising trend.
//! 4. `class` on the overall class.
//! 5. Per validated parameter with a harmful direction, not older than the newest the rules
//!    took: the rate and trend windows take the value, then `trend` and `shift` decide.
//! 6. `rate`, after every parameter: red needs two or more parameters changing at once, and
//!    the upstream neighbour's sudden change.
//!
//! How rules meet, here and nowhere else: while a parameter's exceedance fires, its blue
//! early warnings (trend, shift, rate) hold rather than fire — they would only repeat what the
//! officer already knows; and a transition for a parameter with an open upstream warning
//! records the upstream alert it follows.
//!
//! Event time against arrival time: a reading is judged at its own time, whenever it arrives,
//! but live state follows current data only. Every episode ignores an observation not newer
//! than the newest it has seen (`alert`), so a late reading never clears, nor counts toward
//! clearing, an alert that newer readings raised; the trend, shift and rate windows skip a
//! value older than their newest; and `offline` listens to current readings only.
//!
//! Adding a rule: its variant in `alert::Rule` (key, whether it notifies), a file here with
//! its state and its evaluation returning `Observation`s, and in this file the module, its
//! state in `ParamState` or `StationState` and its call in its place in the order; its
//! message in `message`. Counters follow `Rule::ALL`.

mod class;
mod exceedance;
mod offline;
mod rate;
mod shift;
mod station_fault;
mod trend;
mod upstream;

pub use trend::MAX_TREND_POINTS;

use super::alert::{
    Episodes, Evidence, Kind, Level, Obs, Observation, Persistence, Rule, Transition,
};
use super::gb3838::{self, Class, Limits};
use super::network::{Network, Station};
use super::param::Param;
use super::qc::{self, Flag};
use super::reading::{judge, Judgement, Reading};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// Settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleConfig {
    /// `exceedance` and `class`.
    pub persistence: Persistence,
    /// `station_fault`: a fault fires when it persists, `fire_after` of the last `window`
    /// values of a parameter (`[alerts] fault_fire_after`, `fault_window`; default 4 of 6),
    /// and resolves after `clear_after` good values. Four, because one isolated spike can fail
    /// three values: the spike test (as ioos_qc's) compares each value with the mean of its two
    /// neighbours, so a large spike fails itself and both neighbours; a lone spike or a lone
    /// flagged value never fires.
    pub fault: Persistence,
    /// Fraction of the limit a value must be inside it to clear an exceedance.
    pub hysteresis: f64,
    pub trend_window: Duration,
    pub trend_alpha: f64,
    /// Which Mann–Kendall variance decides significance: Hamed–Rao's, corrected for the
    /// autocorrelation of 4-hourly values, by default; the original test's as an option.
    pub trend_test: super::trend::TrendTest,
    pub trend_horizon: Duration,
    pub trend_min_points: usize,
    /// The trend window must span at least this long: hourly data with a diurnal cycle look
    /// like a trend over a few hours.
    pub trend_min_span: Duration,
    pub shift_baseline: usize,
    /// A chart signal warns only when the value moved from the baseline by at least this
    /// fraction of the target limit: a parameter with a tiny spread otherwise "shifts" by
    /// amounts no one would act on.
    pub shift_min_change: f64,
    pub cusum_k: f64,
    pub cusum_h: f64,
    pub ewma_lambda: f64,
    pub ewma_l: f64,
    pub rate_window: Duration,
    /// A change over `rate_window` larger than this fraction of the target limit breaches.
    pub rate_fraction: f64,
    /// `offline` after cadence × this factor without a reading.
    pub offline_factor: f64,
    /// Half the width of the expected-arrival window downstream: the travel time is an
    /// estimate (flow changes it), so arrival is announced and judged as a window.
    pub arrival_tolerance: Duration,
    /// The share of the upstream excess over its limit a downstream rise must reach, inside
    /// the arrival window, to confirm that the water arrived (`incident`).
    pub arrival_share: f64,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            persistence: Persistence::default(),
            fault: Persistence {
                fire_after: 4,
                window: 6,
                clear_after: 2,
                renotify: None,
            },
            hysteresis: 0.1,
            trend_window: Duration::days(7),
            trend_alpha: 0.05,
            trend_test: super::trend::TrendTest::HamedRao,
            trend_horizon: Duration::days(3),
            trend_min_points: 10,
            trend_min_span: Duration::days(2),
            shift_baseline: 30,
            shift_min_change: 0.2,
            cusum_k: 0.5,
            cusum_h: 5.0,
            ewma_lambda: 0.1,
            ewma_l: 2.814,
            rate_window: Duration::hours(8),
            rate_fraction: 0.5,
            offline_factor: 2.0,
            arrival_tolerance: Duration::hours(2),
            arrival_share: 0.3,
        }
    }
}

impl RuleConfig {
    /// The `trend` rule's test on a window's `values` (oldest first): `trend_test` at
    /// `trend_alpha`. `None` below 3 values. Cost O(w²) for
    /// w values (see `trend::decision`).
    pub fn trend_verdict(&self, values: &[f64]) -> Option<super::trend::Verdict> {
        self.trend_verdict_on(&super::trend::mann_kendall(values)?, values)
    }

    /// [`RuleConfig::trend_verdict`] given the original test of `values`, as the trend rule
    /// asks it (it has S already, to skip the test when S points the harmless way).
    pub fn trend_verdict_on(
        &self,
        original: &super::trend::MannKendall,
        values: &[f64],
    ) -> Option<super::trend::Verdict> {
        self.trend_test
            .verdict_on(original, values, self.trend_alpha)
    }
}

/// Quick rules decide on one signal; they clear after this many quiet readings.
const QUICK: Persistence = Persistence {
    fire_after: 1,
    window: 1,
    clear_after: 2,
    renotify: None,
};

/// What one reading yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The QARTOD flag of each value, as stored in `<key>_qc`.
    pub qc: Vec<(Param, Flag)>,
    /// Flags of the station's previous values that the new one settled (the spike test):
    /// (parameter, that reading's time, its final flag).
    pub revised: Vec<(Param, DateTime<Utc>, Flag)>,
    /// The judgement on validated values only.
    pub judgement: Judgement,
    pub transitions: Vec<Transition>,
}

fn evidence(ts: DateTime<Utc>, value: f64, class: Option<Class>) -> Evidence {
    Evidence { ts, value, class }
}

/// The rule state of one parameter at one station.
#[derive(Debug, Default)]
struct ParamState {
    qc: qc::Stream,
    /// Time of the newest validated value the rules took: an older or equal one is a replay.
    last_t: Option<i64>,
    rate: rate::Window,
    trend: trend::Window,
    chart: shift::Chart,
}

/// The rule state of one station.
#[derive(Debug, Default)]
struct StationState {
    id: String,
    offline: offline::Clock,
    episodes: Episodes,
    /// The parameters seen, found by a short scan of this list, which is kept apart from their
    /// state (some 600 bytes each) so the scan reads one cache line.
    param_keys: Vec<Param>,
    /// `params[i]` is the state of `param_keys[i]`.
    params: Vec<ParamState>,
    sudden: rate::Sudden,
    upstream: upstream::Warnings,
}

impl StationState {
    fn param(&mut self, p: Param) -> &mut ParamState {
        let i = match self.param_keys.iter().position(|q| *q == p) {
            Some(i) => i,
            None => {
                // One at a time: a station adds a parameter a handful of times in its life,
                // and doubling would leave room for twice its parameters' state.
                self.params.reserve_exact(1);
                self.params.push(ParamState::default());
                self.param_keys.push(p);
                self.params.len() - 1
            }
        };
        &mut self.params[i]
    }

    /// Feeds one observation to its episode at this station.
    fn observe(&mut self, out: &mut Vec<Transition>, o: Observation) {
        let (rule, param) = (o.rule, o.param);
        if let Some(mut t) = self.episodes.observe(&self.id, o) {
            if let Some(p) = param.filter(|_| rule != Rule::Upstream) {
                t.follows = self.upstream.follows(p);
            }
            out.push(t);
        }
    }

    /// Feeds an early warning (trend, shift, rate): a blue breach adds nothing while the
    /// parameter's exceedance is firing, and holds instead.
    fn observe_early(&mut self, out: &mut Vec<Transition>, mut o: Observation) {
        if o.obs == Obs::Breach(Level::Blue)
            && self
                .episodes
                .get(Rule::Exceedance, o.param)
                .is_some_and(|e| e.is_firing())
        {
            o.obs = Obs::Hold;
        }
        self.observe(out, o);
    }
}

/// All rule state of the daemon: per station, found by one lookup of its id per reading.
#[derive(Debug, Default)]
pub struct Rules {
    cfg: RuleConfig,
    index: HashMap<String, usize>,
    stations: Vec<StationState>,
}

/// Whether larger values are worse (true) or smaller (DO); `None` for pH and parameters
/// without limits.
fn harmful_up(param: Param, station: &Station) -> Option<bool> {
    match gb3838::limits(param, station.water_body)? {
        Limits::Max(_) => Some(true),
        Limits::Min(_) => Some(false),
        Limits::Range(..) => None,
    }
}

fn target_limit(param: Param, station: &Station) -> Option<f64> {
    gb3838::limits(param, station.water_body).map(|l| l.limit(station.target).number())
}

impl Rules {
    pub fn new(cfg: RuleConfig) -> Rules {
        Rules {
            cfg,
            ..Rules::default()
        }
    }

    /// The index of a station's state, made on first use.
    fn slot(&mut self, id: &str) -> usize {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.stations.len();
        self.index.insert(id.to_string(), i);
        self.stations.push(StationState {
            id: id.to_string(),
            ..StationState::default()
        });
        i
    }

    /// Starts the offline clocks of every station at `now`, so a station that never reports
    /// is noticed too.
    pub fn start(&mut self, net: &Network, now: DateTime<Utc>) {
        self.start_for(net.stations.iter(), now);
    }

    /// As `start`, for the stations this instance owns: a station another instance takes in
    /// is never heard here, and must not go offline here.
    pub fn start_for<'a>(
        &mut self,
        stations: impl Iterator<Item = &'a Station>,
        now: DateTime<Utc>,
    ) {
        for s in stations {
            let i = self.slot(&s.id);
            self.stations[i].offline.start(now);
        }
    }

    /// Applies QC and every reading rule to one reading of `station`, received at wall time
    /// `now`, in the order the module docs give.
    pub fn reading(
        &mut self,
        net: &Network,
        station: &Station,
        r: &Reading,
        now: DateTime<Utc>,
    ) -> Outcome {
        let cfg = self.cfg;
        let mut out = Vec::new();
        let ts = r.ts;
        let t = ts.timestamp();
        let me = self.slot(&station.id);
        let st = &mut self.stations[me];
        if let Some(o) = st.offline.reading(&cfg, station, ts, now) {
            st.observe(&mut out, o);
        }

        // QC, and the faults it reveals.
        let mut qc_flags = Vec::with_capacity(r.values.len());
        let mut revised = Vec::new();
        // Judged by `judge`, which reads only the time and the values: no copy of the id.
        let mut validated = Reading {
            station: String::new(),
            ts: r.ts,
            values: Vec::with_capacity(r.values.len()),
            seq: r.seq,
        };
        // The QC notes of suspect values that are judged all the same.
        let mut suspect: Vec<(Param, qc::Test)> = Vec::new();
        for m in &r.values {
            let plan = station.qc_plan(m.param);
            let floor = station.detection_limit(m.param);
            let verdict = st.param(m.param).qc.push(t, m.value, &plan, floor);
            qc_flags.push((m.param, verdict.flag));
            if let Some((prev, flag)) = verdict.revised {
                if let Some(at) = DateTime::from_timestamp(prev, 0) {
                    revised.push((m.param, at, flag));
                }
            }
            st.observe(&mut out, station_fault::observe(&cfg, m, &verdict, ts));
            if verdict.flag.is_judgeable() && m.is_judgeable() {
                validated.values.push(*m);
                if let (Flag::Suspect, Some(test)) = (verdict.flag, verdict.note) {
                    suspect.push((m.param, test));
                }
            }
        }

        // Judgement and the water-quality rules, on validated values only.
        let j = judge(station, &validated);
        let exceeding = j.exceeding(station.target).count();
        for x in &j.judged {
            let o = exceedance::observe(&cfg, station, x, exceeding, &suspect, ts);
            let before = out.len();
            let st = &mut self.stations[me];
            st.observe(&mut out, o);
            // At most one transition per observation; transitions are rare, so a copy here
            // costs nothing.
            if let Some(t) = out.get(before).cloned() {
                if t.kind == Kind::Resolved {
                    // The trend is an early warning before an exceedance; after one, its
                    // windows restart, or the passing plume would read as a rising trend.
                    let p = st.param(x.param);
                    p.rate.restart();
                    p.trend.restart();
                }
                self.warn_downstream(net, station, &t, &mut out);
            }
        }
        let st = &mut self.stations[me];
        if let Some(o) = class::observe(&cfg, station, j.overall, exceeding, ts) {
            st.observe(&mut out, o);
        }

        // The early warnings. (parameter, value, the change when the rate rule breaches)
        let mut rates: Vec<(Param, f64, Option<rate::Change>)> = Vec::new();
        for m in &validated.values {
            let Some(up) = harmful_up(m.param, station) else {
                continue;
            };
            if !station.evaluates(m.param) {
                continue;
            }
            let limit = target_limit(m.param, station);
            let ps = st.param(m.param);
            if ps.last_t.is_some_and(|last| t <= last) {
                continue;
            }
            ps.last_t = Some(t);
            let value = m.judged_value();
            let earlier = ps.rate.add(&cfg, up, t, value);
            // Evaluated when a value opens a bucket: the window changes little within one.
            let trend = if ps.trend.add(&cfg, t, value) {
                ps.trend.observe(&cfg, m.param, up, limit, ts)
            } else {
                None
            };
            let shift = ps
                .chart
                .decision(&cfg, station, m.param, up, value, ts)
                .map(|d| shift::observation(m.param, value, ts, d));
            let change = limit
                .and_then(|l| rate::change(&cfg, up, l, earlier, value, t))
                .map(|c| rate::Change {
                    steepest: ps.rate.steepest(up),
                    ..c
                });
            if let Some(o) = trend {
                st.observe_early(&mut out, o);
            }
            if let Some(o) = shift {
                st.observe_early(&mut out, o);
            }
            if limit.is_some() {
                rates.push((m.param, value, change));
            }
        }
        let sudden = rates.iter().filter(|r| r.2.is_some()).count();
        if sudden >= 2 {
            st.sudden.record(ts);
        }
        let red = sudden >= 2
            && rate::confirmed_upstream(net, station, ts, |id| {
                self.index.get(id).map(|&k| &self.stations[k].sudden)
            });
        let st = &mut self.stations[me];
        for (param, value, change) in rates {
            st.observe_early(
                &mut out,
                rate::observe(param, value, change, sudden, red, ts),
            );
        }
        Outcome {
            qc: qc_flags,
            revised,
            judgement: j,
            transitions: out,
        }
    }

    /// An exceedance firing (or resolving) here warns (or clears) the downstream station.
    fn warn_downstream(
        &mut self,
        net: &Network,
        station: &Station,
        t: &Transition,
        out: &mut Vec<Transition>,
    ) {
        let (Some(d), Some(_)) = (&station.downstream, t.param) else {
            return;
        };
        if net.station(&d.station).is_none() {
            return;
        }
        let k = self.slot(&d.station);
        let down = &mut self.stations[k];
        if let Some(o) =
            down.upstream
                .exceedance(station, d.travel_time, self.cfg.arrival_tolerance, t)
        {
            down.observe(out, o);
        }
    }

    /// The alert episodes, to keep across restarts, sorted by key (equal states save equally).
    pub fn save_alerts(&self) -> Vec<super::alert::Saved> {
        let mut out = Vec::new();
        for st in &self.stations {
            st.episodes.save(&st.id, &mut out);
        }
        out.sort_by(|a, b| {
            (&a.key.station, a.key.rule, a.key.param).cmp(&(
                &b.key.station,
                b.key.rule,
                b.key.param,
            ))
        });
        out
    }

    /// Restores episodes saved by an earlier run: a firing alert stays firing (no repeat),
    /// and a redelivered reading older than an episode's last observation counts nothing.
    pub fn restore_alerts(&mut self, saved: Vec<super::alert::Saved>) {
        for s in saved {
            let k = self.slot(&s.key.station);
            self.stations[k].episodes.restore(s);
        }
    }

    /// The offline rule, on wall time: call it periodically.
    pub fn tick(&mut self, net: &Network, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        for s in &net.stations {
            let Some(&k) = self.index.get(&s.id) else {
                continue;
            };
            let st = &mut self.stations[k];
            if let Some(o) = st.offline.tick(&self.cfg, s, now) {
                st.observe(&mut out, o);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
