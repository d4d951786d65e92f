//! Trend statistics for the early warning (WATER.md §6): Mann–Kendall with tie correction,
//! its Hamed–Rao (1998) variance correction for autocorrelated series, Sen's slope on real
//! time, tabular CUSUM and EWMA control charts.
//!
//! Fed by windows of validated values (the daemon's per-station history, or a whole series in
//! `assess`); feeds the `trend` and `shift` rules and `assess`'s trend objects. Pure: times are
//! seconds since the epoch, given by the caller. The Mann–Kendall results equal pymannkendall's
//! `original_test`, and the Hamed–Rao results its `hamed_rao_modification_test` (both checked
//! in `tests/crosscheck.rs`); Sen's slope is per day of real time, where pymannkendall counts
//! steps.

use statrs::distribution::{ContinuousCDF, Normal};

/// Mann–Kendall test of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    pub n: usize,
    pub s: i64,
    pub var_s: f64,
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
    pub tau: f64,
}

/// The direction a test at level α finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Increasing,
    Decreasing,
    NoTrend,
}

impl Direction {
    /// pymannkendall's words.
    pub fn word(self) -> &'static str {
        match self {
            Direction::Increasing => "increasing",
            Direction::Decreasing => "decreasing",
            Direction::NoTrend => "no trend",
        }
    }
}

fn sign(d: f64) -> i64 {
    if d > 0.0 {
        1
    } else if d < 0.0 {
        -1
    } else {
        0
    }
}

/// The Mann–Kendall statistics of `values` (time order); `None` below 2 values.
pub fn mann_kendall(values: &[f64]) -> Option<MannKendall> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mut s: i64 = 0;
    for i in 0..n - 1 {
        for j in i + 1..n {
            s += sign(values[j] - values[i]);
        }
    }
    // Tie groups: equal values, as pymannkendall counts them.
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
        i = j;
    }
    let nf = n as f64;
    let var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    let z = match s {
        0 => 0.0,
        _ if var_s <= 0.0 => 0.0,
        s if s > 0 => (s as f64 - 1.0) / var_s.sqrt(),
        s => (s as f64 + 1.0) / var_s.sqrt(),
    };
    let p = 2.0 * (1.0 - standard_normal().cdf(z.abs()));
    Some(MannKendall {
        n,
        s,
        var_s,
        z,
        p,
        tau: s as f64 / (0.5 * nf * (nf - 1.0)),
    })
}

fn standard_normal() -> Normal {
    // Mean 0 and standard deviation 1 are valid parameters, so this never fails.
    Normal::standard()
}

impl MannKendall {
    /// The direction at significance `alpha` (two-sided), as pymannkendall decides it.
    pub fn direction(&self, alpha: f64) -> Direction {
        direction_of(self.z, alpha)
    }
}

/// pymannkendall's decision: a trend when |z| exceeds z_{1−α/2}, its sign the direction.
fn direction_of(z: f64, alpha: f64) -> Direction {
    let critical = standard_normal().inverse_cdf(1.0 - alpha / 2.0);
    if z.abs() <= critical {
        Direction::NoTrend
    } else if z > 0.0 {
        Direction::Increasing
    } else {
        Direction::Decreasing
    }
}

/// The Hamed–Rao (1998) modified Mann–Kendall test of one series: the same S as the original
/// test, with Var(S) scaled by n_ns, the factor by which the autocorrelation of the series
/// inflates (or shrinks) it. Four-hourly water-quality values are strongly autocorrelated, and
/// the original test, which assumes independent values, calls trends in such series far more
/// often than its α.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HamedRao {
    /// Number of values.
    pub n: usize,
    /// Mann–Kendall S, as in the original test.
    pub s: i64,
    /// The correction factor n/n* = 1 + 2/(n(n−1)(n−2)) · Σᵢ (n−i)(n−i−1)(n−i−2) ρᵢ over the
    /// significant lag-i autocorrelations ρᵢ of the ranks of the Sen-detrended series. It can
    /// be negative when the significant ρᵢ are strongly negative.
    pub n_ns: f64,
    /// The corrected variance, Var(S) · n_ns (the tie-corrected Var(S) of the original test).
    pub var_s: f64,
    /// (S ∓ 1)/√var_s, 0 when S = 0; `None` when var_s ≤ 0 and S ≠ 0: the correction left no
    /// variance to test with, and pymannkendall has NaN there (an infinite z at exactly 0).
    pub z: Option<f64>,
    /// Two-sided p-value of `z`; `None` with it.
    pub p: Option<f64>,
}

/// The Hamed–Rao modified Mann–Kendall test of `values` (time order, equally spaced), exactly
/// as pymannkendall 1.4.3's `hamed_rao_modification_test(x, alpha, lag=None)` computes it
/// (Hamed & Rao 1998, J. Hydrol. 204:182–196; WATER.md §6.1):
///
/// 1. detrend with Sen's slope β over index steps: x′ᵢ = xᵢ − β·i for i = 1…n;
/// 2. rank x′ (ties get their average rank);
/// 3. the autocorrelation ρₖ of the ranks for every lag k = 1…n−1 (covariances divided by n);
/// 4. keep the ρₖ outside ±z_{1−α/2}/√n — pymannkendall's rule, so the variance depends on
///    `alpha`, the level the caller tests at;
/// 5. n_ns and Var* = Var(S)·n_ns, then z and p as in the original test.
///
/// One case differs from pymannkendall on purpose: when the detrended series is constant (an
/// exactly linear series) its ranks carry no autocorrelation, so n_ns is 1, where pymannkendall
/// divides 0 by 0. `None` below 3 values. Cost O(n²) time (S, the n(n−1)/2 Sen slopes with a
/// linear-time median, the n lags) and O(n²) memory for the slopes: 80 µs for 180 values
/// (criterion, `hamed_rao_180`), of which the Sen slopes take about two thirds.
pub fn hamed_rao(values: &[f64], alpha: f64) -> Option<HamedRao> {
    mann_kendall(values)?.hamed_rao(values, alpha)
}

impl MannKendall {
    /// Hamed–Rao's correction of this test, which must be the original test of `values`
    /// (see [`hamed_rao`]): for a caller that already has it and would otherwise pay for S
    /// twice. `None` below 3 values, or when `values` is not as long as this test's series.
    pub fn hamed_rao(&self, values: &[f64], alpha: f64) -> Option<HamedRao> {
        let n = values.len();
        if n < 3 || n != self.n {
            return None;
        }
        let nf = n as f64;
        // pymannkendall's `sens_slope`: index steps, whatever the times.
        let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
        for i in 0..n - 1 {
            for j in i + 1..n {
                slopes.push((values[j] - values[i]) / (j - i) as f64);
            }
        }
        let beta = median(&mut slopes)?;
        let detrended: Vec<f64> = values
            .iter()
            .enumerate()
            .map(|(i, x)| x - (i + 1) as f64 * beta)
            .collect();
        let ranks = average_ranks(&detrended);
        // Ranks are multiples of ½ and their mean is (n+1)/2, so the centred ranks and every sum
        // of their products below are exact: the ρₖ equal numpy's bit for bit, and a ρₖ on the
        // edge of the interval falls on the same side as in pymannkendall.
        let mean = (nf + 1.0) / 2.0;
        let y: Vec<f64> = ranks.iter().map(|r| r - mean).collect();
        let acov = |k: usize| y.iter().zip(&y[k..]).map(|(a, b)| a * b).sum::<f64>() / nf;
        let acov0 = acov(0);
        let bound = standard_normal().inverse_cdf(1.0 - alpha / 2.0) / nf.sqrt();
        let mut sum = 0.0;
        if acov0 > 0.0 {
            // Lags n−2 and n−1 have a zero weight; pymannkendall still visits them.
            for k in 1..n {
                let rho = acov(k) / acov0;
                if !(-bound..=bound).contains(&rho) {
                    let (n, k) = (n as i64, k as i64);
                    let w = (n - k) * (n - k - 1) * (n - k - 2);
                    sum += w as f64 * rho;
                }
            }
        }
        let n_ns = 1.0 + (2.0 / (nf * (nf - 1.0) * (nf - 2.0))) * sum;
        let var_s = self.var_s * n_ns;
        let z = match self.s {
            0 => Some(0.0),
            _ if var_s <= 0.0 => None,
            s if s > 0 => Some((s as f64 - 1.0) / var_s.sqrt()),
            s => Some((s as f64 + 1.0) / var_s.sqrt()),
        };
        Some(HamedRao {
            n,
            s: self.s,
            n_ns,
            var_s,
            z,
            p: z.map(|z| 2.0 * (1.0 - standard_normal().cdf(z.abs()))),
        })
    }
}

impl HamedRao {
    /// The direction at significance `alpha` (two-sided), as pymannkendall decides it; no trend
    /// when the test has no z.
    pub fn direction(&self, alpha: f64) -> Direction {
        direction_of(self.z.unwrap_or(0.0), alpha)
    }
}

/// Ranks from 1, ties sharing their average rank (scipy's `rankdata`, method "average").
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && values[order[j]] == values[order[i]] {
            j += 1;
        }
        // Positions i..j (from 0) share the mean of ranks i+1..=j.
        let rank = (i + 1 + j) as f64 / 2.0;
        for &k in &order[i..j] {
            ranks[k] = rank;
        }
        i = j;
    }
    ranks
}

/// Which Mann–Kendall test decides that a window has a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrendTest {
    /// Hamed–Rao's autocorrelation-corrected variance: the default, because 4-hourly values
    /// are autocorrelated and the original test calls trends in a trend-free autocorrelated
    /// series far more often than its α.
    #[default]
    HamedRao,
    /// The original test, which assumes independent values.
    Original,
}

/// What a trend test concluded at a level α.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub direction: Direction,
    /// Two-sided p-value; `None` when the test is undefined (see [`HamedRao::z`]), and then
    /// the direction is `NoTrend`.
    pub p: Option<f64>,
}

impl TrendTest {
    /// Every test, in the order the config names them.
    pub const ALL: [TrendTest; 2] = [TrendTest::HamedRao, TrendTest::Original];

    /// The config's spelling: `"hamed_rao"` or `"original"`.
    pub fn key(self) -> &'static str {
        match self {
            TrendTest::HamedRao => "hamed_rao",
            TrendTest::Original => "original",
        }
    }

    pub fn from_key(key: &str) -> Option<TrendTest> {
        TrendTest::ALL.into_iter().find(|t| t.key() == key)
    }

    /// This test's verdict on `values` (time order, equally spaced) at significance `alpha`;
    /// `None` below 3 values, for either test, so that the choice of test never changes when
    /// the rule starts. Cost O(n²).
    pub fn verdict(self, values: &[f64], alpha: f64) -> Option<Verdict> {
        self.verdict_on(&mann_kendall(values)?, values, alpha)
    }

    /// [`TrendTest::verdict`] for a caller that already has the original test of `values`.
    pub fn verdict_on(self, original: &MannKendall, values: &[f64], alpha: f64) -> Option<Verdict> {
        match self {
            TrendTest::HamedRao => original.hamed_rao(values, alpha).map(|hr| Verdict {
                direction: hr.direction(alpha),
                p: hr.p,
            }),
            TrendTest::Original => (values.len() >= 3).then_some(Verdict {
                direction: original.direction(alpha),
                p: Some(original.p),
            }),
        }
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    // Selection, not a sort: Sen's slope takes the median of w(w-1)/2 slopes, and a sort of
    // them made the trend rule O(w² log w) per reading; selection keeps it O(w²).
    let n = v.len();
    let (lower, upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    Some(if n % 2 == 1 {
        upper
    } else {
        // The largest of the lower half is the other middle value.
        let below = lower
            .iter()
            .copied()
            .max_by(f64::total_cmp)
            .unwrap_or(upper);
        (below + upper) / 2.0
    })
}

/// Sen's slope and Conover's intercept of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenLine {
    /// Units per second.
    pub slope: f64,
    /// Value of the line at t = 0.
    pub intercept: f64,
}

impl SenLine {
    pub fn per_day(&self) -> f64 {
        self.slope * 86_400.0
    }

    pub fn at(&self, t: i64) -> f64 {
        self.intercept + self.slope * t as f64
    }
}

/// Sen's slope over real time: the median of (x_j − x_i)/(t_j − t_i) for i < j; the
/// intercept is median(x) − median(t)·slope. `None` below 2 values or when all times are equal.
pub fn sen(times: &[i64], values: &[f64]) -> Option<SenLine> {
    let n = values.len().min(times.len());
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dt = (times[j] - times[i]) as f64;
            if dt != 0.0 {
                slopes.push((values[j] - values[i]) / dt);
            }
        }
    }
    let slope = median(&mut slopes)?;
    // Times relative to the first, so the products stay exact for epoch seconds.
    let t0 = times[0];
    let mut rel: Vec<f64> = times[..n].iter().map(|t| (t - t0) as f64).collect();
    let mut xs = values[..n].to_vec();
    let intercept_rel = median(&mut xs)? - median(&mut rel)? * slope;
    Some(SenLine {
        slope,
        intercept: intercept_rel - slope * t0 as f64,
    })
}

/// When a Sen line crosses `limit` after `from` (seconds), if it is heading towards it.
pub fn crossing(line: &SenLine, from: i64, limit: f64) -> Option<i64> {
    let now = line.at(from);
    if line.slope == 0.0 {
        return None;
    }
    let dt = (limit - now) / line.slope;
    (dt > 0.0 && dt.is_finite()).then(|| from + dt.ceil() as i64)
}

/// Tabular CUSUM (Page): upper and lower sums on a baseline mean μ₀ and deviation σ, with
/// reference k·σ and decision interval h·σ; both sums restart at zero after a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cusum {
    pub mu0: f64,
    pub sigma: f64,
    pub k: f64,
    pub h: f64,
    pub upper: f64,
    pub lower: f64,
}

/// Which way a control chart signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    Up,
    Down,
}

impl Cusum {
    pub fn new(mu0: f64, sigma: f64, k: f64, h: f64) -> Cusum {
        Cusum {
            mu0,
            sigma,
            k,
            h,
            upper: 0.0,
            lower: 0.0,
        }
    }

    /// Adds one value; returns the shift it signals, if any.
    pub fn push(&mut self, x: f64) -> Option<Shift> {
        let (kk, hh) = (self.k * self.sigma, self.h * self.sigma);
        self.upper = (x - (self.mu0 + kk) + self.upper).max(0.0);
        self.lower = ((self.mu0 - kk) - x + self.lower).max(0.0);
        let signal = if self.upper > hh {
            Some(Shift::Up)
        } else if self.lower > hh {
            Some(Shift::Down)
        } else {
            None
        };
        if signal.is_some() {
            self.upper = 0.0;
            self.lower = 0.0;
        }
        signal
    }
}

/// EWMA chart (Roberts): z_i = λx_i + (1−λ)z_{i−1} from z_0 = μ₀, with exact time-varying
/// limits μ₀ ± L·σ·√(λ/(2−λ)·(1 − (1−λ)^{2i})).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    pub mu0: f64,
    pub sigma: f64,
    pub lambda: f64,
    pub l: f64,
    pub z: f64,
    pub i: u32,
}

impl Ewma {
    pub fn new(mu0: f64, sigma: f64, lambda: f64, l: f64) -> Ewma {
        Ewma {
            mu0,
            sigma,
            lambda,
            l,
            z: mu0,
            i: 0,
        }
    }

    /// The current upper control limit.
    pub fn ucl(&self) -> f64 {
        let lam = self.lambda;
        let factor = lam / (2.0 - lam) * (1.0 - (1.0 - lam).powi(2 * self.i as i32));
        self.mu0 + self.l * self.sigma * factor.sqrt()
    }

    pub fn lcl(&self) -> f64 {
        2.0 * self.mu0 - self.ucl()
    }

    pub fn push(&mut self, x: f64) -> Option<Shift> {
        self.i += 1;
        self.z = self.lambda * x + (1.0 - self.lambda) * self.z;
        if self.z > self.ucl() {
            Some(Shift::Up)
        } else if self.z < self.lcl() {
            Some(Shift::Down)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mann_kendall_vectors_of_water_md() {
        // (series, S, Var(S), Z, p, direction)
        type Row<'a> = (&'a [f64], i64, f64, f64, f64, Direction);
        let table: &[Row] = &[
            (
                &[
                    0.42, 0.45, 0.44, 0.47, 0.47, 0.50, 0.49, 0.53, 0.55, 0.55, 0.58, 0.61,
                ],
                60,
                210.6667,
                4.064940,
                4.8045e-05,
                Direction::Increasing,
            ),
            (
                &[7.1, 7.0, 7.2, 6.9, 7.1, 7.0, 7.2, 7.1, 6.9, 7.0],
                -7,
                115.6667,
                -0.557888,
                0.576921,
                Direction::NoTrend,
            ),
        ];
        for &(x, s, var_s, z, p, dir) in table {
            let mk = mann_kendall(x).unwrap();
            assert_eq!(mk.s, s, "{x:?}");
            assert!(close(mk.var_s, var_s, 1e-4), "{} vs {var_s}", mk.var_s);
            assert!(close(mk.z, z, 1e-6), "{} vs {z}", mk.z);
            assert!(close(mk.p, p, 1e-6 * p.max(1e-3)), "{} vs {p}", mk.p);
            assert_eq!(mk.direction(0.05), dir);
        }
        let mk = mann_kendall(table[0].0).unwrap();
        assert!(close(mk.tau, 0.90909, 1e-5));
    }

    #[test]
    fn hamed_rao_vectors_of_pymannkendall() {
        // pymannkendall 1.4.3 `hamed_rao_modification_test(x, alpha)`: (name, series, α, S,
        // corrected Var(S), n_ns, z, p, direction). The interval that picks the significant
        // lags widens with a smaller α, so one series has two rows.
        type Row<'a> = (
            &'a str,
            &'a [f64],
            f64,
            i64,
            f64,
            f64,
            Option<f64>,
            Option<f64>,
            Direction,
        );
        let alternating: Vec<f64> = (0..20)
            .map(|i| {
                let noise = if i % 2 == 0 { 0.004 } else { -0.004 };
                ((0.20 + 0.01 * i as f64 + noise) * 1000.0).round() / 1000.0
            })
            .collect();
        let cyclic = [
            0.30, 0.31, 0.33, 0.34, 0.33, 0.31, 0.30, 0.29, 0.30, 0.32, 0.35, 0.36, 0.35, 0.33,
            0.31, 0.30, 0.31, 0.33, 0.36, 0.38, 0.37, 0.35, 0.33, 0.32,
        ];
        // An AR(1) week (φ = 0.8) whose significant autocorrelations make n_ns negative.
        let negative = [
            0.266, 0.292, 0.327, 0.302, 0.258, 0.29, 0.277, 0.274, 0.279, 0.293, 0.334, 0.325,
            0.315, 0.305, 0.283, 0.283, 0.265, 0.29, 0.296, 0.337, 0.357, 0.347, 0.32, 0.327,
            0.346, 0.334, 0.315, 0.312, 0.303, 0.303, 0.329, 0.316, 0.325, 0.348, 0.349, 0.376,
            0.359, 0.338, 0.348, 0.327, 0.29, 0.33,
        ];
        let table: &[Row] = &[
            (
                "no significant lag: the original test",
                &[
                    0.42, 0.45, 0.44, 0.47, 0.47, 0.50, 0.49, 0.53, 0.55, 0.55, 0.58, 0.61,
                ],
                0.05,
                60,
                210.66666666666666,
                1.0,
                Some(4.064939627745434),
                Some(4.804489684473445e-05),
                Direction::Increasing,
            ),
            (
                "alternating noise on a rise shrinks the variance",
                &alternating,
                0.05,
                190,
                154.20277777777775,
                0.16231871345029236,
                Some(15.220036909778761),
                Some(0.0),
                Direction::Increasing,
            ),
            (
                "the same at α = 0.01",
                &alternating,
                0.01,
                190,
                350.1861111111111,
                0.36861695906432745,
                Some(10.099790039526576),
                Some(0.0),
                Direction::Increasing,
            ),
            (
                "a cycle: negative correlation at half its period",
                &cyclic,
                0.05,
                77,
                984.6962068940828,
                0.620998238528957,
                Some(2.4219348685809563),
                Some(0.015438117236005189),
                Direction::Increasing,
            ),
            (
                "negative n_ns: no z, no trend",
                &negative,
                0.05,
                367,
                -1341.338791483268,
                -0.15778600064501447,
                None,
                None,
                Direction::NoTrend,
            ),
            (
                "the same at α = 0.01 keeps fewer lags",
                &negative,
                0.01,
                367,
                6313.01051763256,
                0.7426197526917492,
                Some(4.606412530938926),
                Some(4.096752687532401e-06),
                Direction::Increasing,
            ),
            (
                // pymannkendall divides 0 by 0 here and says "no trend".
                "an exactly linear series: constant residuals, n_ns = 1",
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                0.05,
                45,
                125.0,
                1.0,
                Some(44.0 / 125f64.sqrt()),
                Some(8.303070332638107e-05),
                Direction::Increasing,
            ),
            (
                "a constant series",
                &[3.0; 10],
                0.05,
                0,
                0.0,
                1.0,
                Some(0.0),
                Some(1.0),
                Direction::NoTrend,
            ),
        ];
        let same = |a: Option<f64>, b: Option<f64>, tol: f64| match (a, b) {
            (Some(a), Some(b)) => close(a, b, tol),
            (None, None) => true,
            _ => false,
        };
        for &(name, x, alpha, s, var_s, n_ns, z, p, dir) in table {
            let hr = hamed_rao(x, alpha).unwrap();
            assert_eq!((hr.n, hr.s), (x.len(), s), "{name}");
            assert!(close(hr.var_s, var_s, 1e-9), "{name}: {hr:?}");
            assert!(close(hr.n_ns, n_ns, 1e-12), "{name}: {hr:?}");
            assert!(same(hr.z, z, 1e-9), "{name}: {hr:?}");
            assert!(same(hr.p, p, 1e-6), "{name}: {hr:?}");
            assert_eq!(hr.direction(alpha), dir, "{name}");
            let verdict = TrendTest::HamedRao.verdict(x, alpha).unwrap();
            assert_eq!((verdict.direction, verdict.p), (dir, hr.p), "{name}");
        }
        assert_eq!(hamed_rao(&[1.0, 2.0], 0.05), None, "below 3 values");
    }

    #[test]
    fn average_ranks_as_scipy() {
        assert_eq!(
            average_ranks(&[0.3, 0.1, 0.3, 0.2, 0.3, -0.0, 0.0]),
            [6.0, 3.0, 6.0, 4.0, 6.0, 1.5, 1.5]
        );
    }

    #[test]
    fn trend_tests_by_key_and_verdict() {
        for t in TrendTest::ALL {
            assert_eq!(TrendTest::from_key(t.key()), Some(t));
        }
        assert_eq!(TrendTest::from_key("hamed-rao"), None);
        assert_eq!(TrendTest::default(), TrendTest::HamedRao);
        let x = [7.1, 7.0, 7.2, 6.9, 7.1, 7.0, 7.2, 7.1, 6.9, 7.0];
        let v = TrendTest::Original.verdict(&x, 0.05).unwrap();
        assert_eq!(v.direction, Direction::NoTrend);
        assert!(close(v.p.unwrap(), 0.576921, 1e-6));
        // Reusing the original test gives the same answer, and only for its own series.
        let mk = mann_kendall(&x).unwrap();
        assert_eq!(mk.hamed_rao(&x, 0.05), hamed_rao(&x, 0.05));
        assert_eq!(mk.hamed_rao(&x[..5], 0.05), None);
        for t in TrendTest::ALL {
            assert_eq!(t.verdict_on(&mk, &x, 0.05), t.verdict(&x, 0.05));
            assert_eq!(t.verdict(&x[..2], 0.05), None, "{t:?}: below 3 values");
        }
    }

    #[test]
    fn sen_slope_on_real_time() {
        // WATER.md §6.4: 0.016 per step, intercept 0.407 (in steps). Steps of 4 h: 0.096/day.
        let x = [
            0.42, 0.45, 0.44, 0.47, 0.47, 0.50, 0.49, 0.53, 0.55, 0.55, 0.58, 0.61,
        ];
        let t: Vec<i64> = (0..12).map(|i| 1_767_225_600 + i * 4 * 3600).collect();
        let line = sen(&t, &x).unwrap();
        assert!(
            close(line.per_day(), 0.016 * 6.0, 1e-12),
            "{}",
            line.per_day()
        );
        assert!(close(line.at(t[0]), 0.407, 1e-9), "{}", line.at(t[0]));
        // A linear series has its exact slope, even with irregular times.
        let t = [0, 100, 250, 1000, 1001];
        let x: Vec<f64> = t.iter().map(|&t| 2.0 + 0.01 * t as f64).collect();
        let line = sen(&t, &x).unwrap();
        assert!(close(line.slope, 0.01, 1e-12) && close(line.intercept, 2.0, 1e-9));
        assert_eq!(crossing(&line, 1000, 22.0), Some(2000));
        assert_eq!(crossing(&line, 1000, 1.0), None, "heading away");
    }

    #[test]
    fn cusum_and_ewma_worked_example() {
        // WATER.md §6.7: NH3-N, μ₀ 0.30, σ 0.05; both signal at sample 8.
        let x = [0.31, 0.29, 0.30, 0.33, 0.36, 0.38, 0.41, 0.40, 0.43];
        // The C⁺ column, summed without a decision interval (no reset).
        let mut open = Cusum::new(0.30, 0.05, 0.5, f64::INFINITY);
        let uppers: Vec<f64> = x
            .iter()
            .map(|&v| {
                open.push(v);
                open.upper
            })
            .collect();
        let expected = [0.0, 0.0, 0.0, 0.005, 0.04, 0.095, 0.18, 0.255, 0.36];
        for (u, e) in uppers.iter().zip(expected) {
            assert!(close(*u, e, 1e-9), "{uppers:?}");
        }
        // With h = 4 (H = 0.2) it signals at sample 8 and restarts from zero.
        let mut c = Cusum::new(0.30, 0.05, 0.5, 4.0);
        let signals: Vec<_> = x.iter().map(|&v| c.push(v)).collect();
        assert_eq!(signals.iter().position(Option::is_some), Some(7));
        assert_eq!(signals[7], Some(Shift::Up));
        assert!(close(c.upper, 0.105, 1e-9), "{}", c.upper);

        let mut e = Ewma::new(0.30, 0.05, 0.2, 2.962);
        let signals: Vec<_> = x.iter().map(|&v| e.push(v)).collect();
        assert_eq!(signals.iter().position(Option::is_some), Some(7));
        let mut e = Ewma::new(0.30, 0.05, 0.2, 2.962);
        for &v in &x[..8] {
            e.push(v);
        }
        assert!(
            close(e.z, 0.3563, 1e-4) && close(e.ucl(), 0.3487, 1e-4),
            "{} {}",
            e.z,
            e.ucl()
        );
    }
}
