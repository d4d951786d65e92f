//! Boundary-section attainment (WATER.md §8.1): a section's class for a month by the
//! single-factor method over the month's mean of validated values, whether it met its target,
//! the items exceeding the target with their multiples, and 达标率 over section-months.
//!
//! Fed by the `report` command with monthly means read from InfluxDB; feeds its renderers.
//! Pure. The class is the station's own judgement (`reading::judge`, so its evaluated
//! parameters and profile apply); the main exceeding items follow WATER.md §2.3: the items
//! worse than the target, worst class first, ties by the multiple (C − C_target)/C_target, at
//! most three.

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
