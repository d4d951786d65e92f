//! The alert rules (SPEC §7): from a station's readings to observations for the lifecycle in
//! `alert`, with the per-station state each rule needs — QC streams, trend windows, control
//! charts, recent values, arrivals, upstream events.
//!
//! Fed by the screen stage with each decoded reading, in arrival order, and by a timer the
//! shell drives (`tick`, for `offline`); returns QC flags, revised flags of the previous
//! reading, the judgement on validated values, and alert transitions. Pure: reading time comes
//! with the reading; wall time (`now`, for staleness) is an argument.
//!
//! Rules and their observations:
//! - `station_fault` (data level): QC fail, or instrument flag D or B; a spike found when the
//!   next reading arrives counts at that reading.
//! - `exceedance` per parameter: worse than the target class (yellow; orange when worse than
//!   Ⅴ or when two or more parameters exceed); clear only inside the limit by the hysteresis
//!   margin, hold in between.
//! - `class`: the overall class worse than the target (recorded; it always coincides with an
//!   exceedance, which is what is notified).
//! - `trend` per parameter (blue): Mann–Kendall significant in the harmful direction over a
//!   window spanning at least `trend_min_span`, the newest value above the window's median,
//!   and the Sen line reaching the target limit within the horizon; the window restarts when
//!   an exceedance of the parameter resolves. The window holds at most `MAX_TREND_POINTS`
//!   bucket means (a bucket is `trend_window / MAX_TREND_POINTS`), and the rule runs when a
//!   value opens a bucket: O(w²) then, w ≤ 200, nothing for the other values of the bucket.
//! - `shift` per parameter (blue): CUSUM or EWMA on a baseline of the first validated values.
//! - `rate` per parameter (blue): a change over the rate window larger than a fraction of the
//!   target limit; red when two or more parameters change so at once and the upstream
//!   neighbour did too within the travel time.
//! - `offline` (data level): no current reading for cadence × factor of wall time. Current
//!   means stamped within that threshold of `now`: an older (backfilled) reading is stored and
//!   judged, but neither resolves `offline` nor restarts its clock.
//! - While a parameter's exceedance fires, its blue early warnings (trend, shift, rate) hold
//!   rather than fire: they would only repeat what the officer already knows.
//! - `upstream` (blue) at the downstream station, when `exceedance` fires here: with the
//!   expected arrival (reading time + travel time); resolved when the exceedance resolves.
//!
//! Event time against arrival time: a reading is judged at its own time, whenever it arrives,
//! but live state follows current data only. Every episode ignores an observation not newer
//! than the newest it has seen (`alert`), so a late reading never clears, nor counts toward
//! clearing, an alert that newer readings raised; the trend, shift and rate windows skip a
//! value older than their newest; and `offline` listens to current readings only.

use super::alert::{Context, Episodes, Evidence, Kind, Level, Obs, Persistence, Rule, Transition};
use super::gb3838::{self, Class, Limits};
use super::network::{Network, Station};
use super::param::{DataFlag, Param};
use super::qc::{self, Flag};
use super::reading::{judge, Judgement, Reading};
use super::trend::{self, Cusum, Direction, Ewma, Shift};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, VecDeque};

/// Most values a trend window holds (the oldest are dropped first).
pub const MAX_TREND_POINTS: usize = 200;

/// Settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleConfig {
    /// `exceedance` and `class`.
    pub persistence: Persistence,
    /// Fraction of the limit a value must be inside it to clear an exceedance.
    pub hysteresis: f64,
    pub trend_window: Duration,
    pub trend_alpha: f64,
    /// Which Mann–Kendall variance decides significance: Hamed–Rao's, corrected for the
    /// autocorrelation of 4-hourly values, by default; the original test's as an option.
    pub trend_test: trend::TrendTest,
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
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            persistence: Persistence::default(),
            hysteresis: 0.1,
            trend_window: Duration::days(7),
            trend_alpha: 0.05,
            trend_test: trend::TrendTest::HamedRao,
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
        }
    }
}

impl RuleConfig {
    /// The `trend` rule's test on a window's `values` (oldest first): `trend_test` at
    /// `trend_alpha`. `None` below 3 values. Cost O(w²) for w values (see `trend_decision`).
    pub fn trend_verdict(&self, values: &[f64]) -> Option<trend::Verdict> {
        self.trend_verdict_on(&trend::mann_kendall(values)?, values)
    }

    /// [`RuleConfig::trend_verdict`] given the original test of `values`, as `trend_decision`
    /// asks it (it has S already, to skip the test when S points the harmless way).
    pub fn trend_verdict_on(
        &self,
        original: &trend::MannKendall,
        values: &[f64],
    ) -> Option<trend::Verdict> {
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

/// Station-level data rules resolve on the first good reading.
const ONCE: Persistence = Persistence {
    fire_after: 1,
    window: 1,
    clear_after: 1,
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

#[derive(Debug, Default)]
struct Chart {
    /// The first validated values, until the charts are set up from them (then emptied).
    baseline: Vec<f64>,
    cusum: Option<Cusum>,
    ewma: Option<Ewma>,
}

/// A downstream station's warning from upstream.
#[derive(Debug, Clone, PartialEq)]
struct Upstream {
    from: String,
    alert: String,
    arrival: DateTime<Utc>,
}

/// Most values the rate window holds (8 h of 1-minute data; the oldest are dropped first).
const MAX_RATE_POINTS: usize = 512;

/// How many sudden-change times a station remembers for its downstream neighbours.
const MAX_SUDDEN: usize = 64;

/// The rule state of one parameter at one station.
#[derive(Debug, Default)]
struct ParamState {
    qc: qc::Stream,
    /// Time of the newest validated value the rules took: an older or equal one is a replay.
    last_t: Option<i64>,
    /// Times of the validated values within the rate window, oldest first.
    rate: VecDeque<i64>,
    /// The window's candidates for its reference — the lowest value when rising is harmful,
    /// the highest otherwise — as a monotonic queue of (time, value): its front is the
    /// reference, found in O(1) instead of by a scan of the window.
    extreme: VecDeque<(i64, f64)>,
    /// The trend window: validated values averaged per bucket of `trend_window /
    /// MAX_TREND_POINTS` (about 50 minutes for 7 days), as (first time, mean), oldest first.
    /// Data at the usual 1 to 4 h cadence keep one value per bucket; 5-minute data still
    /// cover the whole window in at most `MAX_TREND_POINTS` values.
    trend: VecDeque<(i64, f64)>,
    /// How many values the newest bucket averages.
    bucket_n: u32,
    chart: Chart,
}

impl ParamState {
    /// Adds a validated value to the windows. Returns the rate window as it was before the
    /// value — its oldest time and its reference value — and whether the value opened a new
    /// trend bucket.
    fn add(&mut self, cfg: &RuleConfig, up: bool, t: i64, v: f64) -> (Option<(i64, f64)>, bool) {
        let rate_s = cfg.rate_window.num_seconds();
        while self.rate.front().is_some_and(|&t0| t - t0 > rate_s)
            || self.rate.len() >= MAX_RATE_POINTS
        {
            self.rate.pop_front();
        }
        let oldest = self.rate.front().copied();
        while self
            .extreme
            .front()
            .is_some_and(|&(t0, _)| oldest.is_none_or(|o| t0 < o))
        {
            self.extreme.pop_front();
        }
        let earlier = oldest.zip(self.extreme.front().map(|e| e.1));
        super::ring::push(&mut self.rate, t);
        let dominated = |x: f64| if up { x >= v } else { x <= v };
        while self.extreme.back().is_some_and(|&(_, x)| dominated(x)) {
            self.extreme.pop_back();
        }
        super::ring::push(&mut self.extreme, (t, v));
        (earlier, self.add_trend(cfg, t, v))
    }

    /// Adds a value to the trend window; true when it opened a new bucket.
    fn add_trend(&mut self, cfg: &RuleConfig, t: i64, v: f64) -> bool {
        let window_s = cfg.trend_window.num_seconds();
        let bucket = (window_s / MAX_TREND_POINTS as i64).max(1);
        while self.trend.front().is_some_and(|&(t0, _)| t - t0 > window_s) {
            self.trend.pop_front();
        }
        if let Some(last) = self.trend.back_mut() {
            if last.0.div_euclid(bucket) == t.div_euclid(bucket) {
                self.bucket_n += 1;
                last.1 += (v - last.1) / f64::from(self.bucket_n);
                return false;
            }
        }
        while self.trend.len() > MAX_TREND_POINTS {
            self.trend.pop_front();
        }
        super::ring::push(&mut self.trend, (t, v));
        self.bucket_n = 1;
        true
    }
}

/// The rule state of one station.
#[derive(Debug, Default)]
struct StationState {
    id: String,
    /// Wall time of the last current reading (or of the start); `None` until either. A
    /// backfilled reading leaves it alone: it says nothing about whether the station reports.
    arrival: Option<DateTime<Utc>>,
    episodes: Episodes,
    /// The parameters seen, found by a short scan of this list, which is kept apart from their
    /// state (some 600 bytes each) so the scan reads one cache line.
    param_keys: Vec<Param>,
    /// `params[i]` is the state of `param_keys[i]`.
    params: Vec<ParamState>,
    /// Reading times at which the station changed suddenly in two or more parameters.
    sudden: VecDeque<DateTime<Utc>>,
    /// Open warnings from upstream, by parameter.
    upstream: Vec<(Param, Upstream)>,
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

    /// Feeds one observation to the episode of (this station, `rule`, `param`).
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        out: &mut Vec<Transition>,
        rule: Rule,
        param: Option<Param>,
        ev: Evidence,
        obs: Obs,
        policy: Persistence,
        context: Context,
    ) {
        // A blue early warning adds nothing while the parameter's exceedance is firing.
        let early = matches!(rule, Rule::Trend | Rule::Shift | Rule::Rate);
        let obs = match obs {
            Obs::Breach(Level::Blue)
                if early
                    && self
                        .episodes
                        .get(Rule::Exceedance, param)
                        .is_some_and(|e| e.is_firing()) =>
            {
                Obs::Hold
            }
            other => other,
        };
        if let Some(mut t) = self
            .episodes
            .observe(&self.id, rule, param, ev, obs, policy, context)
        {
            if let Some(p) = param.filter(|_| rule != Rule::Upstream) {
                t.follows = self
                    .upstream
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, u)| (u.from.clone(), u.alert.clone()));
            }
            out.push(t);
        }
    }
}

/// All rule state of the daemon: per station, found by one lookup of its id per reading.
#[derive(Debug, Default)]
pub struct Rules {
    cfg: RuleConfig,
    index: HashMap<String, usize>,
    stations: Vec<StationState>,
}

fn evidence(ts: DateTime<Utc>, value: f64, class: Option<Class>) -> Evidence {
    Evidence { ts, value, class }
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
            self.stations[i].arrival.get_or_insert(now);
        }
    }

    /// Applies QC and every reading rule to one reading of `station`, received at wall time
    /// `now`.
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
        let current = now - ts <= self.offline_after(station);
        let st = &mut self.stations[me];
        // Only a current reading — stamped within the offline threshold of `now` — shows that
        // the station reports again: it ends an offline episode and restarts the clock. A
        // backfilled one (a logger emptying its memory) is stored and judged below but says
        // nothing about now: resolving on it would fire `offline` again one threshold later,
        // three messages for one outage. The observation is on wall time, as `tick`'s are.
        if current {
            st.arrival = Some(now);
            st.observe(
                &mut out,
                Rule::Offline,
                None,
                evidence(now, 0.0, None),
                Obs::Clear,
                ONCE,
                Context::None,
            );
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
            let mut fault = None;
            if let Some((prev, flag)) = verdict.revised {
                if let Some(at) = DateTime::from_timestamp(prev, 0) {
                    revised.push((m.param, at, flag));
                }
                if flag == Flag::Fail {
                    fault = Some(format!(
                        "QC fail (spike) at {}",
                        DateTime::from_timestamp(prev, 0)
                            .unwrap_or(ts)
                            .format("%Y-%m-%d %H:%M UTC")
                    ));
                }
            }
            if verdict.flag == Flag::Fail {
                fault = Some(format!(
                    "QC fail ({})",
                    verdict.note.map_or("quality control", qc::Test::key)
                ));
            }
            if let Some(f @ (DataFlag::D | DataFlag::B)) = m.flag {
                fault = Some(format!("instrument flag {}", f.letter()));
            }
            let obs = if fault.is_some() {
                Obs::Breach(Level::Data)
            } else {
                Obs::Clear
            };
            let context = fault.map_or(Context::None, |reason| Context::Fault { reason });
            st.observe(
                &mut out,
                Rule::StationFault,
                Some(m.param),
                evidence(ts, m.value, None),
                obs,
                QUICK,
                context,
            );
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
            let level = if x.class == Class::WORSE_THAN_V || exceeding >= 2 {
                Level::Orange
            } else {
                Level::Yellow
            };
            let obs = if x.class > station.target {
                Obs::Breach(level)
            } else if self.inside_margin(station, x.param, x.value) {
                Obs::Clear
            } else {
                Obs::Hold
            };
            let context = suspect
                .iter()
                .find(|(p, _)| *p == x.param)
                .map_or(Context::None, |&(_, test)| Context::Suspect { test });
            let before = out.len();
            let st = &mut self.stations[me];
            st.observe(
                &mut out,
                Rule::Exceedance,
                Some(x.param),
                evidence(ts, x.value, Some(x.class)),
                obs,
                cfg.persistence,
                context,
            );
            // At most one transition per observation; transitions are rare, so a copy here
            // costs nothing.
            if let Some(t) = out.get(before).cloned() {
                if t.kind == Kind::Resolved {
                    // The trend is an early warning before an exceedance; after one, its
                    // windows restart, or the passing plume would read as a rising trend.
                    let p = st.param(x.param);
                    p.rate.clear();
                    p.extreme.clear();
                    p.trend.clear();
                }
                self.warn_downstream(net, station, &t, &mut out);
            }
        }
        let st = &mut self.stations[me];
        if let Some(overall) = j.overall {
            let obs = if overall > station.target {
                Obs::Breach(if overall == Class::WORSE_THAN_V || exceeding >= 2 {
                    Level::Orange
                } else {
                    Level::Yellow
                })
            } else {
                Obs::Clear
            };
            st.observe(
                &mut out,
                Rule::Class,
                None,
                evidence(ts, f64::from(overall.number()), Some(overall)),
                obs,
                cfg.persistence,
                Context::None,
            );
        }
        // (parameter, value, change per hour when the rate rule breaches)
        let mut rates: Vec<(Param, f64, Option<f64>)> = Vec::new();
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
            // Evaluated when a value opens a bucket: the window changes little within one.
            let (earlier, opened) = ps.add(&cfg, up, t, m.judged_value());
            let trend = if opened {
                trend_decision(&cfg, up, limit, ps.trend.make_contiguous(), ts)
            } else {
                None
            };
            let shift = shift_decision(&cfg, &mut ps.chart, station, m.param, up, m.judged_value());
            let change = limit.and_then(|l| rate_of(&cfg, up, l, earlier, m.judged_value(), t));
            if let Some((obs, context, value)) = trend {
                st.observe(
                    &mut out,
                    Rule::Trend,
                    Some(m.param),
                    evidence(ts, value, None),
                    obs,
                    QUICK,
                    context,
                );
            }
            if let Some((obs, context)) = shift {
                st.observe(
                    &mut out,
                    Rule::Shift,
                    Some(m.param),
                    evidence(ts, m.judged_value(), None),
                    obs,
                    QUICK,
                    context,
                );
            }
            if limit.is_some() {
                rates.push((m.param, m.judged_value(), change));
            }
        }
        let sudden = rates.iter().filter(|r| r.2.is_some()).count();
        if sudden >= 2 {
            if st.sudden.len() >= MAX_SUDDEN {
                st.sudden.pop_front();
            }
            st.sudden.push_back(ts);
        }
        let red = sudden >= 2 && self.confirmed_upstream(net, station, ts);
        let st = &mut self.stations[me];
        for (param, value, change) in rates {
            let (obs, context) = match change {
                Some(per_hour) => (
                    Obs::Breach(if red { Level::Red } else { Level::Blue }),
                    Context::Rate {
                        per_hour,
                        params: sudden,
                    },
                ),
                None => (Obs::Clear, Context::None),
            };
            st.observe(
                &mut out,
                Rule::Rate,
                Some(param),
                evidence(ts, value, None),
                obs,
                QUICK,
                context,
            );
        }
        Outcome {
            qc: qc_flags,
            revised,
            judgement: j,
            transitions: out,
        }
    }

    fn inside_margin(&self, station: &Station, param: Param, value: f64) -> bool {
        let h = self.cfg.hysteresis;
        match gb3838::limits(param, station.water_body) {
            Some(Limits::Max(row)) => {
                value <= row[usize::from(station.target.number() - 1)] * (1.0 - h)
            }
            Some(Limits::Min(row)) => {
                value >= row[usize::from(station.target.number() - 1)] * (1.0 + h)
            }
            Some(Limits::Range(lo, hi)) => {
                let band = (hi - lo) * h;
                value >= lo + band && value <= hi - band
            }
            None => true,
        }
    }

    /// Whether an upstream neighbour changed suddenly in two or more parameters within the
    /// travel time before `ts` (with an hour's slack on either side).
    fn confirmed_upstream(&self, net: &Network, station: &Station, ts: DateTime<Utc>) -> bool {
        net.stations.iter().any(|u| {
            let Some(d) = u.downstream.as_ref().filter(|d| d.station == station.id) else {
                return false;
            };
            let travel = Duration::from_std(d.travel_time).unwrap_or_else(|_| Duration::zero());
            let slack = Duration::hours(1);
            self.index.get(&u.id).is_some_and(|&k| {
                self.stations[k]
                    .sudden
                    .iter()
                    .any(|&tu| tu <= ts + slack && tu >= ts - travel - slack)
            })
        })
    }

    /// An exceedance firing (or resolving) here warns (or clears) the downstream station.
    fn warn_downstream(
        &mut self,
        net: &Network,
        station: &Station,
        t: &Transition,
        out: &mut Vec<Transition>,
    ) {
        let (Some(d), Some(param)) = (&station.downstream, t.param) else {
            return;
        };
        if net.station(&d.station).is_none() {
            return;
        }
        let travel = Duration::from_std(d.travel_time).unwrap_or_else(|_| Duration::zero());
        let ev = evidence(t.evidence.ts, t.evidence.value, t.evidence.class);
        let k = self.slot(&d.station);
        let down = &mut self.stations[k];
        match t.kind {
            Kind::Fired => {
                let arrival = t.evidence.ts + travel;
                let up = Upstream {
                    from: station.id.clone(),
                    alert: t.alert_id.clone(),
                    arrival,
                };
                down.upstream.retain(|(q, _)| *q != param);
                down.upstream.push((param, up.clone()));
                let ctx = Context::Upstream {
                    from: up.from,
                    from_alert: up.alert,
                    arrival,
                };
                down.observe(
                    out,
                    Rule::Upstream,
                    Some(param),
                    ev,
                    Obs::Breach(Level::Blue),
                    ONCE,
                    ctx,
                );
            }
            Kind::Resolved => {
                down.observe(
                    out,
                    Rule::Upstream,
                    Some(param),
                    ev,
                    Obs::Clear,
                    ONCE,
                    Context::None,
                );
                down.upstream.retain(|(q, _)| *q != param);
            }
            Kind::Escalated | Kind::Reminder => {}
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

    /// How long `station` may stay silent before `offline` fires: cadence × `offline_factor`.
    /// A reading stamped more than this before `now` is a backfill, not a sign of life.
    fn offline_after(&self, station: &Station) -> Duration {
        let cadence = Duration::from_std(station.cadence).unwrap_or_else(|_| Duration::hours(4));
        Duration::milliseconds((cadence.num_milliseconds() as f64 * self.cfg.offline_factor) as i64)
    }

    /// The offline rule, on wall time: call it periodically.
    pub fn tick(&mut self, net: &Network, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        for s in &net.stations {
            let Some(&k) = self.index.get(&s.id) else {
                continue;
            };
            let allowed = self.offline_after(s);
            let st = &mut self.stations[k];
            let Some(last) = st.arrival else {
                continue;
            };
            if now - last > allowed {
                st.observe(
                    &mut out,
                    Rule::Offline,
                    None,
                    evidence(now, 0.0, None),
                    Obs::Breach(Level::Data),
                    ONCE,
                    Context::Offline { last },
                );
            }
        }
        out
    }
}

/// The trend rule on the window `hist` (oldest first): the observation, its context and the
/// newest value; `None` while the window is too short or the parameter has no limit. Cost
/// O(w²) for a window of w ≤ `MAX_TREND_POINTS` values, cheapest checks first: the newest
/// value against the median (linear); Mann–Kendall's w(w−1)/2 pairs, and the sign of S;
/// then, with the default Hamed–Rao test, Sen's slopes over index steps (19,900 at w = 200,
/// with a linear-time median) to detrend and the w lags of the ranks' autocorrelation (about
/// 80 µs at w = 180, ten times Mann–Kendall); and, only when the trend is significant, Sen's
/// slopes on real time for the projection. The rule runs once per trend bucket, so a 5-minute
/// parameter pays it once in ten readings.
fn trend_decision(
    cfg: &RuleConfig,
    up: bool,
    limit: Option<f64>,
    hist: &[(i64, f64)],
    ts: DateTime<Utc>,
) -> Option<(Obs, Context, f64)> {
    let t_now = ts.timestamp();
    let from = hist.partition_point(|&(t0, _)| t_now - t0 > cfg.trend_window.num_seconds());
    let window = &hist[from..];
    let span = window
        .first()
        .zip(window.last())
        .map_or(0, |(a, b)| b.0 - a.0);
    let enough = window.len() >= cfg.trend_min_points && span >= cfg.trend_min_span.num_seconds();
    let (Some(limit), true) = (limit, enough) else {
        return None;
    };
    let values: Vec<f64> = window.iter().map(|p| p.1).collect();
    let harmful = if up {
        Direction::Increasing
    } else {
        Direction::Decreasing
    };
    // A receding plume still leaves an "increasing" window behind it; a real rise has its
    // newest value on the harmful side of the window's median.
    let newest = values[values.len() - 1];
    let mut scratch = values.clone();
    let mid = scratch.len() / 2;
    let (_, &mut median, _) = scratch.select_nth_unstable_by(mid, f64::total_cmp);
    let rising_now = if up { newest > median } else { newest < median };
    if !rising_now {
        // Decided without the test, the costly part of the rule.
        return Some((Obs::Clear, Context::None, newest));
    }
    // Either test's z has the sign of S, so a window whose S points the harmless way is
    // decided by the original test alone, before Hamed–Rao's detrending.
    let original = trend::mann_kendall(&values)?;
    if !(if up { original.s > 0 } else { original.s < 0 }) {
        return Some((Obs::Clear, Context::None, newest));
    }
    let verdict = cfg.trend_verdict_on(&original, &values)?;
    let Some(p) = verdict.p else {
        // Hamed–Rao's correction left no variance to test with: strongly negative
        // autocorrelations at the significant lags, as alternating noise on a steady rise
        // gives for a few window lengths. The test says nothing either way, so the trend
        // neither fires nor clears (a clear would resolve a rise that is still going on).
        return Some((Obs::Hold, Context::None, newest));
    };
    if !(verdict.direction == harmful && p < cfg.trend_alpha) {
        // No trend: Sen's line on real time is not needed.
        return Some((Obs::Clear, Context::None, newest));
    }
    let times: Vec<i64> = window.iter().map(|p| p.0).collect();
    let line = trend::sen(&times, &values)?;
    let current = line.at(t_now);
    let beyond = if up { current > limit } else { current < limit };
    let crossing = trend::crossing(&line, t_now, limit)
        .filter(|&c| c - t_now <= cfg.trend_horizon.num_seconds());
    let (obs, context) = match (beyond, crossing) {
        // Already past the limit: the exceedance rule speaks; the trend neither fires nor clears.
        (true, _) => (Obs::Hold, Context::None),
        (false, Some(c)) => (
            Obs::Breach(Level::Blue),
            Context::Trend {
                crossing: DateTime::from_timestamp(c, 0).unwrap_or(ts),
                slope_per_day: line.per_day(),
                p,
            },
        ),
        (false, None) => (Obs::Clear, Context::None),
    };
    Some((obs, context, newest))
}

/// The shift rule: sets the charts up on the first `shift_baseline` values, then feeds them;
/// `None` while the baseline is still being gathered.
fn shift_decision(
    cfg: &RuleConfig,
    chart: &mut Chart,
    station: &Station,
    param: Param,
    up: bool,
    value: f64,
) -> Option<(Obs, Context)> {
    if chart.cusum.is_none() {
        chart.baseline.push(value);
        if chart.baseline.len() < cfg.shift_baseline {
            return None;
        }
        let n = chart.baseline.len() as f64;
        let mean = chart.baseline.iter().sum::<f64>() / n;
        let sd = (chart
            .baseline
            .iter()
            .map(|x| (x - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt();
        if sd <= 0.0 || !sd.is_finite() {
            // A constant baseline gives no scale; wait for one that varies.
            chart.baseline.remove(0);
            return None;
        }
        chart.cusum = Some(Cusum::new(mean, sd, cfg.cusum_k, cfg.cusum_h));
        chart.ewma = Some(Ewma::new(mean, sd, cfg.ewma_lambda, cfg.ewma_l));
        chart.baseline = Vec::new();
        return None;
    }
    let harmful = if up { Shift::Up } else { Shift::Down };
    let by_cusum = chart.cusum.as_mut().and_then(|c| c.push(value)) == Some(harmful);
    let by_ewma = chart.ewma.as_mut().and_then(|e| e.push(value)) == Some(harmful);
    let moved = chart
        .cusum
        .as_ref()
        .map_or(0.0, |c| if up { value - c.mu0 } else { c.mu0 - value });
    let floor = target_limit(param, station).map_or(f64::INFINITY, |l| cfg.shift_min_change * l);
    Some(if (by_cusum || by_ewma) && moved >= floor {
        (
            Obs::Breach(Level::Blue),
            Context::Shift {
                up,
                chart: if by_cusum { "CUSUM" } else { "EWMA" },
            },
        )
    } else {
        (Obs::Clear, Context::None)
    })
}

/// The change per hour when the newest value moved, within the rate window, further than
/// `rate_fraction` of the target limit in the harmful direction. `earlier` is the window
/// before the newest value: its oldest time, and its lowest value (highest when falling is
/// harmful).
fn rate_of(
    cfg: &RuleConfig,
    up: bool,
    limit: f64,
    earlier: Option<(i64, f64)>,
    now_value: f64,
    t_now: i64,
) -> Option<f64> {
    let (first, reference) = earlier?;
    let change = if up {
        now_value - reference
    } else {
        reference - now_value
    };
    let hours = ((t_now - first) as f64 / 3600.0).max(1.0 / 60.0);
    (change > cfg.rate_fraction * limit).then(|| if up { change } else { -change } / hours)
}

#[cfg(test)]
mod tests;
