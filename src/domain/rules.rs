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
//!   an exceedance of the parameter resolves. Cost O(w²) per
//!   reading for a window of w ≤ `MAX_TREND_POINTS` values.
//! - `shift` per parameter (blue): CUSUM or EWMA on a baseline of the first validated values.
//! - `rate` per parameter (blue): a change over the rate window larger than a fraction of the
//!   target limit; red when two or more parameters change so at once and the upstream
//!   neighbour did too within the travel time.
//! - `offline` (data level): no reading for cadence × factor of wall time.
//! - While a parameter's exceedance fires, its blue early warnings (trend, shift, rate) hold
//!   rather than fire: they would only repeat what the officer already knows.
//! - `upstream` (blue) at the downstream station, when `exceedance` fires here: with the
//!   expected arrival (reading time + travel time); resolved when the exceedance resolves.

use super::alert::{
    AlertBook, AlertKey, Context, Evidence, Kind, Level, Obs, Persistence, Rule, Transition,
};
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

/// All rule state of the daemon.
#[derive(Debug, Default)]
pub struct Rules {
    cfg: RuleConfig,
    book: AlertBook,
    qc: HashMap<(String, Param), qc::Stream>,
    /// Validated (time s, value) per station and parameter, oldest first.
    history: HashMap<(String, Param), VecDeque<(i64, f64)>>,
    charts: HashMap<(String, Param), Chart>,
    /// Wall time of each station's last reading (or of the start).
    arrivals: HashMap<String, DateTime<Utc>>,
    /// Reading times at which a station changed suddenly in two or more parameters.
    sudden: HashMap<String, Vec<DateTime<Utc>>>,
    /// Open upstream warnings per downstream station, keyed by parameter.
    upstream: HashMap<(String, Param), Upstream>,
}

fn key(station: &str, rule: Rule, param: Option<Param>) -> AlertKey {
    AlertKey {
        station: station.to_string(),
        rule,
        param,
    }
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
            self.arrivals.entry(s.id.clone()).or_insert(now);
        }
    }

    fn observe(
        &mut self,
        out: &mut Vec<Transition>,
        key: AlertKey,
        ev: Evidence,
        obs: Obs,
        policy: Persistence,
        context: Context,
    ) {
        // A blue early warning adds nothing while the parameter's exceedance is firing.
        let early = matches!(key.rule, Rule::Trend | Rule::Shift | Rule::Rate);
        let obs = match obs {
            Obs::Breach(Level::Blue) if early && self.exceedance_firing(&key) => Obs::Hold,
            other => other,
        };
        let (station, rule, param) = (key.station.clone(), key.rule, key.param);
        if let Some(mut t) = self.book.observe(key, ev, obs, policy, context) {
            if let Some(p) = param {
                t.follows = self
                    .upstream
                    .get(&(station, p))
                    .filter(|_| rule != Rule::Upstream)
                    .map(|u| (u.from.clone(), u.alert.clone()));
            }
            out.push(t);
        }
    }

    fn exceedance_firing(&self, k: &AlertKey) -> bool {
        self.book
            .episode(&key(&k.station, Rule::Exceedance, k.param))
            .is_some_and(|e| e.is_firing())
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
        let mut out = Vec::new();
        let ts = r.ts;
        let t = ts.timestamp();
        // A reading ends an offline episode.
        self.arrivals.insert(station.id.clone(), now);
        self.observe(
            &mut out,
            key(&station.id, Rule::Offline, None),
            evidence(now, 0.0, None),
            Obs::Clear,
            ONCE,
            Context::None,
        );

        // QC, and the faults it reveals.
        let mut qc_flags = Vec::with_capacity(r.values.len());
        let mut revised = Vec::new();
        let mut validated = r.clone();
        validated.values.clear();
        for m in &r.values {
            let tests = station.qc_tests(m.param);
            let verdict = self
                .qc
                .entry((station.id.clone(), m.param))
                .or_default()
                .push(t, m.value, &tests);
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
                fault = Some("QC fail (out of range, rate of change or flat line)".into());
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
            self.observe(
                &mut out,
                key(&station.id, Rule::StationFault, Some(m.param)),
                evidence(ts, m.value, None),
                obs,
                QUICK,
                context,
            );
            if verdict.flag.is_judgeable() && m.is_judgeable() {
                validated.values.push(*m);
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
            let before = out.len();
            self.observe(
                &mut out,
                key(&station.id, Rule::Exceedance, Some(x.param)),
                evidence(ts, x.value, Some(x.class)),
                obs,
                self.cfg.persistence,
                Context::None,
            );
            let new: Vec<Transition> = out[before..].to_vec();
            for t in new {
                if t.kind == Kind::Resolved {
                    // The trend is an early warning before an exceedance; after one, its
                    // window restarts, or the passing plume would read as a rising trend.
                    self.history.remove(&(station.id.clone(), x.param));
                }
                self.warn_downstream(net, station, &t, &mut out);
            }
        }
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
            self.observe(
                &mut out,
                key(&station.id, Rule::Class, None),
                evidence(ts, f64::from(overall.number()), Some(overall)),
                obs,
                self.cfg.persistence,
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
            let key = (station.id.clone(), m.param);
            // Taken out of the map while the rules read it, and put back below: the rules
            // borrow `self` mutably, and copying the window for them cost more than all else.
            let mut hist = std::mem::take(self.history.entry(key.clone()).or_default());
            if hist.back().is_some_and(|&(last, _)| t <= last) {
                self.history.insert(key, hist);
                continue;
            }
            hist.push_back((t, m.value));
            let keep = self
                .cfg
                .trend_window
                .num_seconds()
                .max(self.cfg.rate_window.num_seconds());
            while hist.front().is_some_and(|&(t0, _)| t - t0 > keep)
                || hist.len() > MAX_TREND_POINTS
            {
                hist.pop_front();
            }
            let limit = target_limit(m.param, station);
            let window: &[(i64, f64)] = hist.make_contiguous();
            self.trend_rule(&mut out, station, m.param, up, limit, window, ts);
            self.shift_rule(&mut out, station, m.param, up, m.value, ts);
            if let Some(limit) = limit {
                rates.push((m.param, m.value, self.rate_of(up, limit, window, t)));
            }
            self.history.insert(key, hist);
        }
        let sudden = rates.iter().filter(|r| r.2.is_some()).count();
        if sudden >= 2 {
            self.sudden.entry(station.id.clone()).or_default().push(ts);
        }
        let red = sudden >= 2 && self.confirmed_upstream(net, station, ts);
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
            self.observe(
                &mut out,
                key(&station.id, Rule::Rate, Some(param)),
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

    #[allow(clippy::too_many_arguments)]
    fn trend_rule(
        &mut self,
        out: &mut Vec<Transition>,
        station: &Station,
        param: Param,
        up: bool,
        limit: Option<f64>,
        hist: &[(i64, f64)],
        ts: DateTime<Utc>,
    ) {
        let t_now = ts.timestamp();
        let from =
            hist.partition_point(|&(t0, _)| t_now - t0 > self.cfg.trend_window.num_seconds());
        let window = &hist[from..];
        let span = window
            .first()
            .zip(window.last())
            .map_or(0, |(a, b)| b.0 - a.0);
        let enough = window.len() >= self.cfg.trend_min_points
            && span >= self.cfg.trend_min_span.num_seconds();
        let (Some(limit), true) = (limit, enough) else {
            return;
        };
        let times: Vec<i64> = window.iter().map(|p| p.0).collect();
        let values: Vec<f64> = window.iter().map(|p| p.1).collect();
        let (Some(mk), Some(line)) = (trend::mann_kendall(&values), trend::sen(&times, &values))
        else {
            return;
        };
        let harmful = if up {
            Direction::Increasing
        } else {
            Direction::Decreasing
        };
        let current = line.at(t_now);
        let beyond = if up { current > limit } else { current < limit };
        // A receding plume still leaves an "increasing" window behind it; a real rise has its
        // newest value on the harmful side of the window's median.
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let newest = values[values.len() - 1];
        let rising_now = if up { newest > median } else { newest < median };
        let significant = mk.direction(self.cfg.trend_alpha) == harmful
            && mk.p < self.cfg.trend_alpha
            && rising_now;
        let crossing = trend::crossing(&line, t_now, limit)
            .filter(|&c| c - t_now <= self.cfg.trend_horizon.num_seconds());
        let (obs, context) = match (significant, beyond, crossing) {
            // Already past the limit: the exceedance rule speaks; the trend neither fires nor clears.
            (true, true, _) => (Obs::Hold, Context::None),
            (true, false, Some(c)) => (
                Obs::Breach(Level::Blue),
                Context::Trend {
                    crossing: DateTime::from_timestamp(c, 0).unwrap_or(ts),
                    slope_per_day: line.per_day(),
                    p: mk.p,
                },
            ),
            _ => (Obs::Clear, Context::None),
        };
        let value = values.last().copied().unwrap_or(0.0);
        self.observe(
            out,
            key(&station.id, Rule::Trend, Some(param)),
            evidence(ts, value, None),
            obs,
            QUICK,
            context,
        );
    }

    fn shift_rule(
        &mut self,
        out: &mut Vec<Transition>,
        station: &Station,
        param: Param,
        up: bool,
        value: f64,
        ts: DateTime<Utc>,
    ) {
        let cfg = self.cfg;
        let chart = self.charts.entry((station.id.clone(), param)).or_default();
        if chart.cusum.is_none() {
            chart.baseline.push(value);
            if chart.baseline.len() < cfg.shift_baseline {
                return;
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
                return;
            }
            chart.cusum = Some(Cusum::new(mean, sd, cfg.cusum_k, cfg.cusum_h));
            chart.ewma = Some(Ewma::new(mean, sd, cfg.ewma_lambda, cfg.ewma_l));
            return;
        }
        let harmful = if up { Shift::Up } else { Shift::Down };
        let by_cusum = chart.cusum.as_mut().and_then(|c| c.push(value)) == Some(harmful);
        let by_ewma = chart.ewma.as_mut().and_then(|e| e.push(value)) == Some(harmful);
        let moved =
            chart
                .cusum
                .as_ref()
                .map_or(0.0, |c| if up { value - c.mu0 } else { c.mu0 - value });
        let floor =
            target_limit(param, station).map_or(f64::INFINITY, |l| cfg.shift_min_change * l);
        let (obs, context) = if (by_cusum || by_ewma) && moved >= floor {
            (
                Obs::Breach(Level::Blue),
                Context::Shift {
                    up,
                    chart: if by_cusum { "CUSUM" } else { "EWMA" },
                },
            )
        } else {
            (Obs::Clear, Context::None)
        };
        self.observe(
            out,
            key(&station.id, Rule::Shift, Some(param)),
            evidence(ts, value, None),
            obs,
            QUICK,
            context,
        );
    }

    /// The change per hour when the newest value moved, within the rate window, further than
    /// `rate_fraction` of the target limit in the harmful direction.
    fn rate_of(&self, up: bool, limit: f64, hist: &[(i64, f64)], t_now: i64) -> Option<f64> {
        let (_, now_value) = *hist.last()?;
        // The history is in time order: the rate window is a slice of it.
        let from = hist.partition_point(|&(t0, _)| t_now - t0 > self.cfg.rate_window.num_seconds());
        let to = hist.partition_point(|&(t0, _)| t0 < t_now);
        let earlier = hist.get(from..to).filter(|e| !e.is_empty())?;
        let reference = if up {
            earlier.iter().map(|p| p.1).reduce(f64::min)?
        } else {
            earlier.iter().map(|p| p.1).reduce(f64::max)?
        };
        let change = if up {
            now_value - reference
        } else {
            reference - now_value
        };
        let hours = ((t_now - earlier[0].0) as f64 / 3600.0).max(1.0 / 60.0);
        (change > self.cfg.rate_fraction * limit).then(|| if up { change } else { -change } / hours)
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
            self.sudden.get(&u.id).is_some_and(|times| {
                times
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
        match t.kind {
            Kind::Fired => {
                let arrival = t.evidence.ts + travel;
                let up = Upstream {
                    from: station.id.clone(),
                    alert: t.alert_id.clone(),
                    arrival,
                };
                self.upstream.insert((d.station.clone(), param), up.clone());
                let ctx = Context::Upstream {
                    from: up.from,
                    from_alert: up.alert,
                    arrival,
                };
                self.observe(
                    out,
                    key(&d.station, Rule::Upstream, Some(param)),
                    ev,
                    Obs::Breach(Level::Blue),
                    ONCE,
                    ctx,
                );
            }
            Kind::Resolved => {
                self.observe(
                    out,
                    key(&d.station, Rule::Upstream, Some(param)),
                    ev,
                    Obs::Clear,
                    ONCE,
                    Context::None,
                );
                self.upstream.remove(&(d.station.clone(), param));
            }
            Kind::Escalated | Kind::Reminder => {}
        }
    }

    /// The alert episodes, to keep across restarts (see `AlertBook::save`).
    pub fn save_alerts(&self) -> Vec<super::alert::Saved> {
        self.book.save()
    }

    /// Restores episodes saved by an earlier run: a firing alert stays firing (no repeat),
    /// and a redelivered reading older than an episode's last observation counts nothing.
    pub fn restore_alerts(&mut self, saved: Vec<super::alert::Saved>) {
        self.book.restore(saved);
    }

    /// The offline rule, on wall time: call it periodically.
    pub fn tick(&mut self, net: &Network, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        for s in &net.stations {
            let Some(&last) = self.arrivals.get(&s.id) else {
                continue;
            };
            let allowed = Duration::from_std(s.cadence).unwrap_or_else(|_| Duration::hours(4));
            let allowed = Duration::milliseconds(
                (allowed.num_milliseconds() as f64 * self.cfg.offline_factor) as i64,
            );
            if now - last > allowed {
                self.observe(
                    &mut out,
                    key(&s.id, Rule::Offline, None),
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

#[cfg(test)]
mod tests;
