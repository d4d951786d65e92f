//! The `rate` rule, per parameter: a change over `rate_window` larger than `rate_fraction` of
//! the target limit, in the harmful direction, warns blue; red when two or more parameters
//! change so at once and the upstream neighbour did too within the travel time. A breach
//! states the window's change and its steepest recent step per hour: over 8 h the average
//! hides a rise that took one reading.
//!
//! Fed by the dispatcher with each validated value of a parameter with a target limit (the
//! window takes every one, the change is measured on it), and then, once per reading, with
//! every parameter's change; returns the observations for the episodes of (station, `rate`,
//! parameter). Its state is the window per parameter and, per station, the times at which the
//! station changed suddenly, for its downstream neighbours to confirm red with.

use super::{evidence, Observation, RuleConfig, QUICK};
use crate::domain::alert::{Context, Level, Obs, Rule, Step};
use crate::domain::network::{Network, Station};
use crate::domain::param::Param;
use crate::domain::ring;
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// Most values the rate window holds (8 h of 1-minute data; the oldest are dropped first).
const MAX_RATE_POINTS: usize = 512;

/// How many sudden-change times a station remembers for its downstream neighbours.
const MAX_SUDDEN: usize = 64;

/// The rate window of one parameter at one station.
#[derive(Debug, Default)]
pub(super) struct Window {
    /// The validated values within the rate window as (time, value), oldest first: their
    /// times bound the window, and their steps give the steepest recent rise of a breach.
    points: VecDeque<(i64, f64)>,
    /// The window's candidates for its reference — the lowest value when rising is harmful,
    /// the highest otherwise — as a monotonic queue of (time, value): its front is the
    /// reference, found in O(1) instead of by a scan of the window.
    extreme: VecDeque<(i64, f64)>,
}

/// A step is measured over at least this long (seconds): at minute cadence a rise between
/// two consecutive values, per hour, is noise multiplied by sixty.
const MIN_STEP_S: i64 = 3600;

impl Window {
    /// Adds value `v` at time `t` (harmful when rising if `up`). Returns the window as it was
    /// before the value: its oldest time and its reference value.
    pub(super) fn add(&mut self, cfg: &RuleConfig, up: bool, t: i64, v: f64) -> Option<(i64, f64)> {
        let rate_s = cfg.rate_window.num_seconds();
        while self.points.front().is_some_and(|&(t0, _)| t - t0 > rate_s)
            || self.points.len() >= MAX_RATE_POINTS
        {
            self.points.pop_front();
        }
        let oldest = self.points.front().map(|p| p.0);
        while self
            .extreme
            .front()
            .is_some_and(|&(t0, _)| oldest.is_none_or(|o| t0 < o))
        {
            self.extreme.pop_front();
        }
        let earlier = oldest.zip(self.extreme.front().map(|e| e.1));
        ring::push(&mut self.points, (t, v));
        let dominated = |x: f64| if up { x >= v } else { x <= v };
        while self.extreme.back().is_some_and(|&(_, x)| dominated(x)) {
            self.extreme.pop_back();
        }
        ring::push(&mut self.extreme, (t, v));
        earlier
    }

    /// Forgets the window: the dispatcher restarts it, with the trend window, when an
    /// exceedance of the parameter resolves.
    pub(super) fn restart(&mut self) {
        self.points.clear();
        self.extreme.clear();
    }

    /// The steepest step in the harmful direction (rising if `up`) within the window, the
    /// newest value included: each value against the latest one at least [`MIN_STEP_S`]
    /// before it (at hourly or slower cadence, the previous value; the oldest when none is
    /// that old), and the newest against the window's reference before it; per hour of their
    /// distance, counted as at least [`MIN_STEP_S`]. `None` below two values. O(n) in the
    /// window's values; called on a breach only.
    pub(super) fn steepest(&self, up: bool) -> Option<Step> {
        let harm = |from: (i64, f64), to: (i64, f64)| {
            let rise = if up { to.1 - from.1 } else { from.1 - to.1 };
            rise * 3600.0 / (to.0 - from.0).max(MIN_STEP_S) as f64
        };
        let n = self.points.len();
        let newest = *self.points.back()?;
        // The window's reference before the newest value: the steepest step is never less
        // than the change the rule breached on.
        let reference = self
            .points
            .iter()
            .take(n.saturating_sub(1))
            .copied()
            .reduce(|a, b| {
                let better = if up { b.1 < a.1 } else { b.1 > a.1 };
                if better {
                    b
                } else {
                    a
                }
            })?;
        let mut best = (reference, newest, harm(reference, newest));
        let mut i = 0;
        for j in 1..n {
            let to = self.points[j];
            while i + 1 < j && to.0 - self.points[i + 1].0 >= MIN_STEP_S {
                i += 1;
            }
            let from = self.points[i];
            let rate = harm(from, to);
            if rate > best.2 {
                best = (from, to, rate);
            }
        }
        let (from, to, rate) = best;
        Some(Step {
            from: DateTime::from_timestamp(from.0, 0)?,
            to: DateTime::from_timestamp(to.0, 0)?,
            per_hour: if up { rate } else { -rate },
        })
    }
}

/// What the rate rule measured on a breach, for its message (see `Context::Rate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Change {
    /// The window's change per hour since its oldest value.
    pub(super) per_hour: f64,
    /// The window's change, from its reference to the newest value (signed).
    pub(super) change: f64,
    /// Time of the window's oldest value.
    pub(super) from: i64,
    pub(super) steepest: Option<Step>,
}

/// The change when the newest value moved, within the rate window, further than
/// `rate_fraction` of the target limit in the harmful direction. `earlier` is the window
/// before the newest value: its oldest time, and its lowest value (highest when falling is
/// harmful). The steepest step is left for [`Window::steepest`].
pub(super) fn change(
    cfg: &RuleConfig,
    up: bool,
    limit: f64,
    earlier: Option<(i64, f64)>,
    now_value: f64,
    t_now: i64,
) -> Option<Change> {
    let (first, reference) = earlier?;
    let change = if up {
        now_value - reference
    } else {
        reference - now_value
    };
    let hours = ((t_now - first) as f64 / 3600.0).max(1.0 / 60.0);
    let signed = if up { change } else { -change };
    (change > cfg.rate_fraction * limit).then_some(Change {
        per_hour: signed / hours,
        change: signed,
        from: first,
        steepest: None,
    })
}

/// The observation on `param`'s `value` in the reading stamped `ts`: a breach when it changed
/// (`change`), at red when `red`, with the number of parameters that changed at once
/// (`sudden`).
pub(super) fn observe(
    param: Param,
    value: f64,
    change: Option<Change>,
    sudden: usize,
    red: bool,
    ts: DateTime<Utc>,
) -> Observation {
    let (obs, context) = match change {
        Some(c) => (
            Obs::Breach(if red { Level::Red } else { Level::Blue }),
            Context::Rate {
                per_hour: c.per_hour,
                change: c.change,
                from: DateTime::from_timestamp(c.from, 0).unwrap_or(ts),
                // Never absent on a breach (the window holds the reference and the newest
                // value); the window's average stands in all the same.
                steepest: c.steepest.unwrap_or(Step {
                    from: DateTime::from_timestamp(c.from, 0).unwrap_or(ts),
                    to: ts,
                    per_hour: c.per_hour,
                }),
                params: sudden,
            },
        ),
        None => (Obs::Clear, Context::None),
    };
    Observation {
        rule: Rule::Rate,
        param: Some(param),
        evidence: evidence(ts, value, None),
        obs,
        policy: QUICK,
        context,
    }
}

/// Reading times at which a station changed suddenly in two or more parameters, the newest
/// `MAX_SUDDEN`.
#[derive(Debug, Default)]
pub(super) struct Sudden(VecDeque<DateTime<Utc>>);

impl Sudden {
    pub(super) fn record(&mut self, ts: DateTime<Utc>) {
        if self.0.len() >= MAX_SUDDEN {
            self.0.pop_front();
        }
        self.0.push_back(ts);
    }
}

/// Whether an upstream neighbour of `station` changed suddenly in two or more parameters
/// within the travel time before `ts` (with an hour's slack on either side). `sudden_at`
/// gives a station's record by id, `None` for a station never heard.
pub(super) fn confirmed_upstream<'a>(
    net: &Network,
    station: &Station,
    ts: DateTime<Utc>,
    sudden_at: impl Fn(&str) -> Option<&'a Sudden>,
) -> bool {
    net.stations.iter().any(|u| {
        let Some(d) = u.downstream.as_ref().filter(|d| d.station == station.id) else {
            return false;
        };
        let travel = Duration::from_std(d.travel_time).unwrap_or_else(|_| Duration::zero());
        let slack = Duration::hours(1);
        sudden_at(&u.id).is_some_and(|s| {
            s.0.iter()
                .any(|&tu| tu <= ts + slack && tu >= ts - travel - slack)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The steepest step a breach reports: between consecutive values at hourly or slower
    /// cadence, over at least an hour at minute cadence (noise per minute is not a rate per
    /// hour), in the harmful direction, signed.
    #[test]
    fn the_steepest_step() {
        let cfg = RuleConfig::default();
        let minutes = |m: i64| m * 60;
        // (points as (minutes, value), rising harmful, expected (from, to in minutes, per hour))
        type Case = (Vec<(i64, f64)>, bool, Option<(i64, i64, f64)>);
        let ten_minute: Vec<(i64, f64)> = (0..=12)
            .map(|i| {
                (
                    10 * i,
                    0.2 + 0.01 * i as f64 + if i == 12 { 0.3 } else { 0.0 },
                )
            })
            .collect();
        let cases: Vec<Case> = vec![
            // 4-hourly: the last step, not the window's average (0.1125 /h).
            (
                vec![(0, 0.2), (240, 0.3), (480, 1.1)],
                true,
                Some((240, 480, 0.2)),
            ),
            // 10-minute data: the newest against the value an hour before it.
            (ten_minute, true, Some((60, 120, 0.36))),
            // Falling DO: the steepest fall, negative.
            (
                vec![(0, 8.0), (60, 7.0), (120, 6.9)],
                false,
                Some((0, 60, -1.0)),
            ),
            // Everything rose within one reading's minute: counted over an hour.
            (vec![(0, 0.2), (1, 0.8)], true, Some((0, 1, 0.6))),
            (vec![(0, 0.2)], true, None),
        ];
        for (points, up, expected) in cases {
            let mut w = Window::default();
            for &(m, v) in &points {
                w.add(&cfg, up, minutes(m), v);
            }
            let got = w.steepest(up).map(|s| {
                (
                    s.from.timestamp() / 60,
                    s.to.timestamp() / 60,
                    (s.per_hour * 1e6).round() / 1e6,
                )
            });
            assert_eq!(got, expected, "{points:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]

        /// The rate window's monotonic queue gives what a scan of the window gives: its oldest
        /// time and its lowest (highest) value, before each new value.
        #[test]
        fn the_rate_reference_is_the_window_extreme(
            steps in proptest::collection::vec(1i64..7200, 1..300),
            values in proptest::collection::vec(0.0f64..2.0, 300),
            up in proptest::bool::ANY,
        ) {
            let cfg = RuleConfig::default();
            let mut ps = Window::default();
            let mut seen: Vec<(i64, f64)> = Vec::new();
            let mut t = 0;
            for (step, &v) in steps.iter().zip(&values) {
                t += step;
                let window: Vec<(i64, f64)> = seen
                    .iter()
                    .copied()
                    .filter(|&(t0, _)| t - t0 <= cfg.rate_window.num_seconds())
                    .collect();
                let expected = window.first().map(|&(first, _)| {
                    let vs = window.iter().map(|p| p.1);
                    (first, if up { vs.fold(f64::INFINITY, f64::min) } else { vs.fold(f64::NEG_INFINITY, f64::max) })
                });
                let earlier = ps.add(&cfg, up, t, v);
                proptest::prop_assert_eq!(earlier, expected);
                seen.push((t, v));
            }
        }
    }
}
