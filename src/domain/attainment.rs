//! Boundary-section attainment (WATER.md §8.1): a section's class for a month by the
//! single-factor method over the month's mean of validated values, whether it met its target,
//! the items exceeding the target with their multiples, and 达标率 over section-months.
//!
//! Fed by the `report` command with monthly means read from InfluxDB; feeds its renderers.
//! Pure. The class is the station's own judgement (`reading::judge`, so its evaluated
//! parameters and profile apply); the main exceeding items follow WATER.md §2.3: the items
//! worse than the target, worst class first, ties by the multiple (C − C_target)/C_target, at
//! most three.
//!
//! Coverage (how much of a section-month the data cover) is counted here too: the cadence
//! slots of the assessed window that hold at least one valid reading, against the slots the
//! station's cadence promises. Below a minimum coverage no class is claimed ([`claim`]).

use super::gb3838::{self, Class};
use super::network::Station;
use super::param::Param;
use super::reading::{judge, Reading};
use chrono::{DateTime, Utc};

/// One section in one month.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionMonth {
    /// `None` when the month holds no validated evaluated value: not evaluated.
    pub class: Option<Class>,
    pub target: Class,
    /// `None` when not evaluated.
    pub met: Option<bool>,
    /// Items worse than the target: (parameter, class, multiple where one is defined).
    pub exceeding: Vec<(Param, Class, Option<f64>)>,
}

impl SectionMonth {
    /// The main exceeding items, at most three.
    pub fn main_items(&self) -> &[(Param, Class, Option<f64>)] {
        &self.exceeding[..self.exceeding.len().min(3)]
    }
}

/// Judges a month's means (`ts` is any time in the month; it only labels the reading).
pub fn assess(station: &Station, ts: DateTime<Utc>, means: &[(Param, f64)]) -> SectionMonth {
    let reading = Reading::of_values(&station.id, ts, means);
    let j = judge(station, &reading);
    let mut exceeding: Vec<(Param, Class, Option<f64>)> = j
        .exceeding(station.target)
        .map(|x| {
            let multiple = gb3838::exceedance(x.param, station.water_body, x.value, station.target);
            (x.param, x.class, multiple)
        })
        .collect();
    exceeding.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(b.2.unwrap_or(0.0).total_cmp(&a.2.unwrap_or(0.0)))
    });
    SectionMonth {
        class: j.overall,
        target: station.target,
        met: j.overall.map(|c| c <= station.target),
        exceeding,
    }
}

/// How much of a window the data cover: `valid` cadence slots that hold at least one valid
/// reading (one with a class, i.e. an evaluated parameter that passed QC) out of `expected`
/// slots of the station's cadence. Counting slots rather than readings keeps a station that
/// reports more often than its cadence from making up for days without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    pub valid: u64,
    pub expected: u64,
}

impl Coverage {
    /// The coverage of a window of `window_s` seconds by `slots_with_data` slots of
    /// `cadence_s` seconds (the slots start at the window's start). `expected` is the number
    /// of whole slots in the window, at least 1 for a non-empty window (a trailing part-slot
    /// is not expected to hold a reading, but one found there still counts, up to
    /// `expected`). A zero cadence is taken as 1 s.
    pub fn of(slots_with_data: u64, window_s: u64, cadence_s: u64) -> Coverage {
        let expected = if window_s == 0 {
            0
        } else {
            (window_s / cadence_s.max(1)).max(1)
        };
        Coverage {
            valid: slots_with_data.min(expected),
            expected,
        }
    }

    /// `valid / expected` in 0..=1; 0 for an empty window.
    pub fn ratio(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.valid as f64 / self.expected as f64
        }
    }

    /// Whether a class may be claimed at the minimum share `min` (0..=1).
    pub fn suffices(&self, min: f64) -> bool {
        self.expected > 0 && self.ratio() >= min
    }
}

/// What a report may claim for a section-month: `month` where its coverage reaches `min`,
/// else a section-month without class, verdict or exceeding items (数据不足, insufficient
/// data), which 达标率 does not count as evaluated.
pub fn claim(month: SectionMonth, coverage: Coverage, min: f64) -> SectionMonth {
    if coverage.suffices(min) {
        month
    } else {
        SectionMonth {
            class: None,
            target: month.target,
            met: None,
            exceeding: Vec::new(),
        }
    }
}

/// 达标率 in percent: section-months that met their target over those evaluated; `None` when
/// none was evaluated.
pub fn rate<'a>(months: impl IntoIterator<Item = &'a SectionMonth>) -> Option<f64> {
    let (met, evaluated) = months
        .into_iter()
        .filter_map(|m| m.met)
        .fold((0u32, 0u32), |(met, n), ok| (met + u32::from(ok), n + 1));
    (evaluated > 0).then(|| f64::from(met) * 100.0 / f64::from(evaluated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::network::fixtures::station;
    use chrono::TimeZone;

    fn month(values: &[(Param, f64)]) -> SectionMonth {
        let s = station("shijiao", "qingyuan", 2, true);
        let ts = Utc
            .with_ymd_and_hms(2026, 11, 15, 0, 0, 0)
            .single()
            .expect("time");
        assess(&s, ts, values)
    }

    #[test]
    fn a_month_is_judged_on_its_means_against_the_target() {
        // Class Ⅱ target. NH3-N 1.3 is Ⅳ (multiple 1.6 vs 0.5), TP 0.16 is Ⅲ (0.6 vs 0.1),
        // CODMn 4.4 is Ⅲ (0.1 vs 4), DO 5.5 is Ⅲ (no multiple), pH never exceeds.
        let m = month(&[
            (Param::Ph, 7.4),
            (Param::Do, 5.5),
            (Param::Codmn, 4.4),
            (Param::Nh3n, 1.3),
            (Param::Tp, 0.16),
        ]);
        assert_eq!(m.class, Class::new(4));
        assert_eq!(m.met, Some(false));
        let items: Vec<(Param, u8, Option<f64>)> = m
            .exceeding
            .iter()
            .map(|&(p, c, x)| (p, c.number(), x.map(|v| (v * 100.0).round() / 100.0)))
            .collect();
        assert_eq!(
            items,
            [
                (Param::Nh3n, 4, Some(1.6)),
                (Param::Tp, 3, Some(0.6)),
                (Param::Codmn, 3, Some(0.1)),
                (Param::Do, 3, None),
            ]
        );
        assert_eq!(m.main_items().len(), 3, "at most three main items");

        let clean = month(&[(Param::Nh3n, 0.4), (Param::Do, 7.0)]);
        assert_eq!((clean.class, clean.met), (Class::new(2), Some(true)));
        assert!(clean.exceeding.is_empty());
        let empty = month(&[]);
        assert_eq!((empty.class, empty.met), (None, None));
    }

    #[test]
    fn coverage_counts_cadence_slots_of_the_window() {
        const DAY: u64 = 86_400;
        const H4: u64 = 4 * 3600;
        // (slots with data, window s, cadence s, expected valid, expected slots, ratio)
        let cases: [(u64, u64, u64, u64, u64, f64); 9] = [
            // November, 4 h cadence: 6 a day × 30 days.
            (180, 30 * DAY, H4, 180, 180, 1.0),
            // 3 days of data in November: 18 of 180.
            (18, 30 * DAY, H4, 18, 180, 0.1),
            // February 2027 at 1 h.
            (504, 28 * DAY, 3600, 504, 672, 0.75),
            // A range ending on the 26th: 26 days of the month are expected.
            (156, 26 * DAY, H4, 156, 156, 1.0),
            // 7 h does not divide 30 days: 102 whole slots; a reading in the part-slot counts
            // but coverage stops at 100 %.
            (103, 30 * DAY, 7 * 3600, 102, 102, 1.0),
            // A window shorter than the cadence still expects one reading.
            (0, 3600, H4, 0, 1, 0.0),
            (1, 3600, H4, 1, 1, 1.0),
            // Empty window: nothing expected, nothing claimed.
            (0, 0, H4, 0, 0, 0.0),
            // A zero cadence is read as 1 s rather than dividing by zero.
            (10, 10, 0, 10, 10, 1.0),
        ];
        for (slots, window, cadence, valid, expected, ratio) in cases {
            let c = Coverage::of(slots, window, cadence);
            assert_eq!(
                (c.valid, c.expected),
                (valid, expected),
                "{slots} slots, {window} s at {cadence} s"
            );
            assert!((c.ratio() - ratio).abs() < 1e-12, "{c:?}");
        }
    }

    #[test]
    fn no_class_is_claimed_below_the_minimum_coverage() {
        let m = month(&[(Param::Nh3n, 0.4)]);
        // (valid, expected, minimum, claimed)
        let cases = [
            (18, 180, 0.75, false),
            (135, 180, 0.75, true),
            (134, 180, 0.75, false),
            (0, 180, 0.0, true),
            (0, 0, 0.0, false),
            (180, 180, 1.0, true),
        ];
        for (valid, expected, min, claimed) in cases {
            let c = Coverage { valid, expected };
            let got = claim(m.clone(), c, min);
            assert_eq!(c.suffices(min), claimed, "{c:?} at {min}");
            if claimed {
                assert_eq!(got, m);
            } else {
                assert_eq!((got.class, got.met), (None, None), "{c:?} at {min}");
                assert!(got.exceeding.is_empty());
                assert_eq!(rate(&[got]), None, "not an evaluated section-month");
            }
        }
    }

    #[test]
    fn the_rate_counts_evaluated_section_months() {
        // Shenzhen, Q2 2016 (WATER.md §8.1): 1 of 12 section-months → 8.3 %.
        let met = month(&[(Param::Nh3n, 0.4)]);
        let failed = month(&[(Param::Nh3n, 1.3)]);
        let none = month(&[]);
        let mut months = vec![met];
        months.extend(std::iter::repeat_n(failed, 11));
        months.push(none);
        let r = rate(&months).expect("evaluated");
        assert_eq!((r * 10.0).round() / 10.0, 8.3);
        assert_eq!(rate(&[month(&[])]), None);
    }
}
