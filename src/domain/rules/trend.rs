//! The `trend` rule (blue), per parameter: Mann–Kendall significant in the harmful direction
//! over a window spanning at least `trend_min_span`, the newest value above the window's
//! median, and the Sen line reaching the target limit within the horizon. The window restarts
//! when an exceedance of the parameter resolves (the dispatcher calls [`Window::restart`]).
//!
//! Fed by the dispatcher with each validated value of a parameter with a harmful direction;
//! returns the observation for the episode of (station, `trend`, parameter) when a value opens
//! a bucket. Its state is the window: at most [`MAX_TREND_POINTS`] bucket means (a bucket is
//! `trend_window / MAX_TREND_POINTS`), so the rule runs O(w²) once per bucket, w ≤ 200, and
//! nothing for the other values of the bucket.

use super::{evidence, Observation, RuleConfig, QUICK};
use crate::domain::alert::{Context, Level, Obs, Rule};
use crate::domain::param::Param;
use crate::domain::trend::{self, Direction};
use chrono::{DateTime, Utc};
use std::collections::VecDeque;

/// Most values a trend window holds (the oldest are dropped first).
pub const MAX_TREND_POINTS: usize = 200;

/// The trend window of one parameter at one station.
#[derive(Debug, Default)]
pub(super) struct Window {
    /// Validated values averaged per bucket of `trend_window / MAX_TREND_POINTS` (about 50
    /// minutes for 7 days), as (first time, mean), oldest first. Data at the usual 1 to 4 h
    /// cadence keep one value per bucket; 5-minute data still cover the whole window in at
    /// most `MAX_TREND_POINTS` values.
    points: VecDeque<(i64, f64)>,
    /// How many values the newest bucket averages.
    bucket_n: u32,
}

impl Window {
    /// Adds a value to the window; true when it opened a new bucket.
    pub(super) fn add(&mut self, cfg: &RuleConfig, t: i64, v: f64) -> bool {
        let window_s = cfg.trend_window.num_seconds();
        let bucket = (window_s / MAX_TREND_POINTS as i64).max(1);
        while self
            .points
            .front()
            .is_some_and(|&(t0, _)| t - t0 > window_s)
        {
            self.points.pop_front();
        }
        if let Some(last) = self.points.back_mut() {
            if last.0.div_euclid(bucket) == t.div_euclid(bucket) {
                self.bucket_n += 1;
                last.1 += (v - last.1) / f64::from(self.bucket_n);
                return false;
            }
        }
        while self.points.len() > MAX_TREND_POINTS {
            self.points.pop_front();
        }
        crate::domain::ring::push(&mut self.points, (t, v));
        self.bucket_n = 1;
        true
    }

    /// Forgets the window: after an exceedance the passing plume would read as a rising trend.
    pub(super) fn restart(&mut self) {
        self.points.clear();
    }

    /// The rule on the window for `param` (harmful when rising if `up`) at reading time `ts`,
    /// given its target `limit`: `None` while the window is too short or there is no limit.
    pub(super) fn observe(
        &mut self,
        cfg: &RuleConfig,
        param: Param,
        up: bool,
        limit: Option<f64>,
        ts: DateTime<Utc>,
    ) -> Option<Observation> {
        let (obs, context, value) = decision(cfg, up, limit, self.points.make_contiguous(), ts)?;
        Some(Observation {
            rule: Rule::Trend,
            param: Some(param),
            evidence: evidence(ts, value, None),
            obs,
            policy: QUICK,
            context,
        })
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
pub(super) fn decision(
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
        (false, Some(c)) => {
            let from = times.first().copied().unwrap_or(t_now);
            (
                Obs::Breach(Level::Blue),
                Context::Trend {
                    crossing: DateTime::from_timestamp(c, 0).unwrap_or(ts),
                    slope_per_day: line.per_day(),
                    p,
                    test: cfg.trend_test,
                    baseline: line.at(from),
                    from: DateTime::from_timestamp(from, 0).unwrap_or(ts),
                    points: times.len(),
                },
            )
        }
        (false, None) => (Obs::Clear, Context::None),
    };
    Some((obs, context, newest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn the_trend_test_decides_on_an_autocorrelated_week() {
        // A week of 4-hourly values from an AR(1) process (φ = 0.8) with no trend at all: the
        // original Mann–Kendall test calls it increasing (p = 0.0007), Hamed–Rao does not
        // (p = 0.089; pymannkendall 1.4.3, the 156th series of tests/fixtures/mk_ar1_false_alarms.json).
        // With a limit the Sen line reaches in about two days, only the original test warns.
        let values = [
            0.305, 0.285, 0.285, 0.296, 0.274, 0.268, 0.268, 0.251, 0.238, 0.258, 0.253, 0.254,
            0.257, 0.265, 0.268, 0.259, 0.233, 0.25, 0.259, 0.244, 0.238, 0.248, 0.252, 0.276,
            0.276, 0.287, 0.289, 0.326, 0.321, 0.333, 0.355, 0.361, 0.322, 0.31, 0.304, 0.322,
            0.338, 0.314, 0.289, 0.316, 0.317, 0.328,
        ];
        let hist: Vec<(i64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| ((t0() + Duration::hours(4 * i as i64)).timestamp(), v))
            .collect();
        let now = t0() + Duration::hours(4 * 41);
        let decide = |test| {
            let cfg = RuleConfig {
                trend_test: test,
                ..RuleConfig::default()
            };
            decision(&cfg, true, Some(0.34), &hist, now).map(|(obs, context, _)| (obs, context))
        };
        let Some((Obs::Breach(Level::Blue), Context::Trend { crossing, p, .. })) =
            decide(trend::TrendTest::Original)
        else {
            panic!("{:?}", decide(trend::TrendTest::Original))
        };
        assert!((p - 0.000689).abs() < 1e-6, "{p}");
        assert!(
            crossing > now && crossing - now < Duration::days(3),
            "{crossing}"
        );
        assert_eq!(
            decide(trend::TrendTest::HamedRao),
            Some((Obs::Clear, Context::None)),
            "the default test sees the autocorrelation"
        );
        assert_eq!(RuleConfig::default().trend_test, trend::TrendTest::HamedRao);
    }

    #[test]
    fn an_undefined_hamed_rao_test_holds_the_trend() {
        // The first 16 values of the slow rise above: the ranks of the detrended series alternate,
        // the significant autocorrelations make n_ns negative (pymannkendall: z = NaN, "no
        // trend"), and the rule neither fires nor clears where the original test warns.
        let hist: Vec<(i64, f64)> = (0..16)
            .map(|i| {
                let noise = if i % 2 == 0 { 0.004 } else { -0.004 };
                let ts = t0() + Duration::hours(4 * i);
                (ts.timestamp(), 0.20 + 0.01 * i as f64 + noise)
            })
            .collect();
        let values: Vec<f64> = hist.iter().map(|p| p.1).collect();
        let hr = trend::hamed_rao(&values, 0.05).unwrap();
        assert!(hr.n_ns < 0.0 && hr.z.is_none(), "{hr:?}");
        let now = t0() + Duration::hours(4 * 15);
        let obs = |cfg: &RuleConfig| decision(cfg, true, Some(0.5), &hist, now).map(|d| d.0);
        assert_eq!(obs(&RuleConfig::default()), Some(Obs::Hold));
        let original = RuleConfig {
            trend_test: trend::TrendTest::Original,
            ..RuleConfig::default()
        };
        assert_eq!(obs(&original), Some(Obs::Breach(Level::Blue)));
    }
}
