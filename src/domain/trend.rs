//! Trend statistics for the early warning (WATER.md §6): Mann–Kendall with tie correction,
//! Sen's slope on real time, tabular CUSUM and EWMA control charts.
//!
//! Fed by windows of validated values (the daemon's per-station history, or a whole series in
//! `assess`); feeds the `trend` and `shift` rules and `assess`'s trend objects. Pure: times are
//! seconds since the epoch, given by the caller. The Mann–Kendall results equal pymannkendall's
//! `original_test` (checked in `tests/crosscheck.rs`); Sen's slope is per day of real time,
//! where pymannkendall counts steps.

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
        let critical = standard_normal().inverse_cdf(1.0 - alpha / 2.0);
        if self.z.abs() <= critical {
            Direction::NoTrend
        } else if self.z > 0.0 {
            Direction::Increasing
        } else {
            Direction::Decreasing
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
