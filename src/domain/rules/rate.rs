//! The `rate` rule, per parameter: a change over `rate_window` larger than `rate_fraction` of
//! the target limit, in the harmful direction, warns blue; red when two or more parameters
//! change so at once and the upstream neighbour did too within the travel time.
//!
//! Fed by the dispatcher with each validated value of a parameter with a target limit (the
//! window takes every one, the change is measured on it), and then, once per reading, with
//! every parameter's change; returns the observations for the episodes of (station, `rate`,
//! parameter). Its state is the window per parameter and, per station, the times at which the
//! station changed suddenly, for its downstream neighbours to confirm red with.

use super::{evidence, Observation, RuleConfig, QUICK};
use crate::domain::alert::{Context, Level, Obs, Rule};
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
    /// Times of the validated values within the rate window, oldest first.
    times: VecDeque<i64>,
    /// The window's candidates for its reference — the lowest value when rising is harmful,
    /// the highest otherwise — as a monotonic queue of (time, value): its front is the
    /// reference, found in O(1) instead of by a scan of the window.
    extreme: VecDeque<(i64, f64)>,
}

impl Window {
    /// Adds value `v` at time `t` (harmful when rising if `up`). Returns the window as it was
    /// before the value: its oldest time and its reference value.
    pub(super) fn add(&mut self, cfg: &RuleConfig, up: bool, t: i64, v: f64) -> Option<(i64, f64)> {
        let rate_s = cfg.rate_window.num_seconds();
        while self.times.front().is_some_and(|&t0| t - t0 > rate_s)
            || self.times.len() >= MAX_RATE_POINTS
        {
            self.times.pop_front();
        }
        let oldest = self.times.front().copied();
        while self
            .extreme
            .front()
            .is_some_and(|&(t0, _)| oldest.is_none_or(|o| t0 < o))
        {
            self.extreme.pop_front();
        }
        let earlier = oldest.zip(self.extreme.front().map(|e| e.1));
        ring::push(&mut self.times, t);
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
        self.times.clear();
        self.extreme.clear();
    }
}

/// The change per hour when the newest value moved, within the rate window, further than
/// `rate_fraction` of the target limit in the harmful direction. `earlier` is the window
/// before the newest value: its oldest time, and its lowest value (highest when falling is
/// harmful).
pub(super) fn change(
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

/// The observation on `param`'s `value` in the reading stamped `ts`: a breach when it changed
/// (`change` per hour), at red when `red`, with the number of parameters that changed at once
/// (`sudden`).
pub(super) fn observe(
    param: Param,
    value: f64,
    change: Option<f64>,
    sudden: usize,
    red: bool,
    ts: DateTime<Utc>,
) -> Observation {
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
