//! A station reading as the core sees it, and its judgement against GB 3838.
//!
//! Readings come from the payload decoders (JSON or HJ 212) already validated: finite values,
//! known parameters, a UTC timestamp. `judge` turns one reading and its station into the
//! per-parameter classes and the overall class that the store writes and the alert rules read.

use super::gb3838::{self, Class};
use super::network::{Profile, Station};
use super::param::{DataFlag, Param};
use super::profile::round_half_even;
use chrono::{DateTime, Utc};

/// One measured value with the instrument's flag, if the station sent one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub param: Param,
    /// The value as stored, in the parameter's unit (SPEC §4). For a result below the
    /// detection limit, the limit (the reported one, else the station's).
    pub value: f64,
    pub flag: Option<DataFlag>,
    /// The result was below the detection limit (未检出): stored as `<key>_bdl = true` and
    /// judged as half the limit.
    pub below_detection: bool,
}

impl Measured {
    /// A plain measured value without a flag.
    pub fn plain(param: Param, value: f64) -> Measured {
        Measured {
            param,
            value,
            flag: None,
            below_detection: false,
        }
    }

    /// A value may be judged when the instrument did not mark it invalid (SPEC §4: flags other
    /// than N or T mean maintenance, faults or setpoints). No flag means normal.
    pub fn is_judgeable(&self) -> bool {
        self.flag.is_none_or(DataFlag::is_valid)
    }

    /// The value GB 3838 judges: half the detection limit for a censored result
    /// (《地表水环境质量监测数据统计技术规定（试行）》, 环办监测函〔2020〕82号, point 7), else the
    /// value itself.
    pub fn judged_value(&self) -> f64 {
        if self.below_detection {
            self.value / 2.0
        } else {
            self.value
        }
    }
}

/// A value as a station reported it, before the station's detection limits apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reported {
    Number(f64),
    /// Below the detection limit: `0.025L` (HJ/T 91) and `<0.025` (SL 219) carry the limit;
    /// `ND` and `未检出` do not.
    BelowLimit(Option<f64>),
}

impl Reported {
    /// Reads the text of a censored result — `"0.025L"`, `"<0.025"`, `"ND"`, `"未检出"` —
    /// or, where `numbers` is true (CSV cells), a plain number. `None` for anything else.
    pub fn parse(text: &str, numbers: bool) -> Option<Reported> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("nd") || t == "未检出" {
            return Some(Reported::BelowLimit(None));
        }
        let limit = |x: &str| {
            x.trim()
                .parse::<f64>()
                .ok()
                .map(|l| Reported::BelowLimit(Some(l)))
        };
        if let Some(rest) = t.strip_prefix('<') {
            return limit(rest);
        }
        if let Some(rest) = t.strip_suffix('L').or_else(|| t.strip_suffix('l')) {
            return limit(rest);
        }
        if numbers {
            return t.parse::<f64>().ok().map(Reported::Number);
        }
        None
    }
}

/// Why one reported value was refused; the reading's other values stand.
#[derive(Debug, Clone, PartialEq)]
pub struct BadValue(pub String);

/// Turns one reported value into a [`Measured`] at `station`: refuses what no instrument can
/// report (non-finite, a negative concentration, pH outside 0–14), and applies the detection
/// limit (WATER.md §5.6): a censored result, or a plain number strictly below the station's
/// limit, is stored as the limit with `below_detection` set; a number equal to the limit is
/// taken as it is. Every decoder (JSON, HJ 212, `assess` CSV) goes through here, so they agree.
pub fn measure(
    station: &Station,
    param: Param,
    reported: Reported,
    flag: Option<DataFlag>,
) -> Result<Measured, BadValue> {
    let bad = |why: String| Err(BadValue(why));
    let (value, below_detection) = match reported {
        Reported::Number(v) => match station.detection_limit(param) {
            Some(dl) if v.is_finite() && v >= 0.0 && v < dl => (dl, true),
            _ => (v, false),
        },
        Reported::BelowLimit(Some(l)) => (l, true),
        Reported::BelowLimit(None) => match station.detection_limit(param) {
            Some(dl) => (dl, true),
            None => {
                return bad(format!(
                    "{param} is reported below the detection limit, and station {:?} has no \
                     detection_limit for it",
                    station.id
                ))
            }
        },
    };
    if !value.is_finite() {
        return bad(format!("{param} is not a finite number"));
    }
    if param == Param::Ph && !(0.0..=14.0).contains(&value) {
        return bad(format!("ph = {value} is outside 0–14"));
    }
    if param.is_non_negative() && value < 0.0 {
        return bad(format!("{param} = {value} is negative"));
    }
    if below_detection && value <= 0.0 {
        return bad(format!(
            "{param}: a detection limit of {value} is not positive"
        ));
    }
    Ok(Measured {
        param,
        value,
        flag,
        below_detection,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub station: String,
    pub ts: DateTime<Utc>,
    /// Sorted by parameter, one entry per parameter.
    pub values: Vec<Measured>,
    pub seq: Option<u64>,
}

impl Reading {
    /// A reading of plain values (no instrument flags, no sequence number).
    pub fn of_values(station: &str, ts: DateTime<Utc>, values: &[(Param, f64)]) -> Reading {
        Reading {
            station: station.to_string(),
            ts,
            values: values
                .iter()
                .map(|&(param, value)| Measured::plain(param, value))
                .collect(),
            seq: None,
        }
    }
}

/// The class of one judged value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub param: Param,
    pub value: f64,
    pub class: Class,
}

/// What the single-factor method says about one reading at its station.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// Classes of the evaluated, judgeable parameters, in parameter order.
    pub judged: Vec<Judged>,
    /// The worst of them; `None` when the reading holds no evaluated parameter.
    pub overall: Option<Class>,
}

impl Judgement {
    /// The judged values worse than the station's target class.
    pub fn exceeding(&self, target: Class) -> impl Iterator<Item = &Judged> {
        self.judged.iter().filter(move |j| j.class > target)
    }
}

/// Judges a reading by the station's profile: the single-factor method over its evaluated
/// parameters, or the national real-time rule (five parameters, rounded values).
pub fn judge(station: &Station, reading: &Reading) -> Judgement {
    let judged: Vec<Judged> = reading
        .values
        .iter()
        .filter(|m| m.is_judgeable())
        .filter_map(|m| {
            let value = match station.profile {
                Profile::Full => station.evaluates(m.param).then_some(m.judged_value())?,
                Profile::NationalRealtime(precision) => {
                    round_half_even(m.judged_value(), precision.of(m.param)?)
                }
            };
            gb3838::classify(m.param, station.water_body, value).map(|class| Judged {
                param: m.param,
                value: m.judged_value(),
                class,
            })
        })
        .collect();
    let overall = gb3838::overall(judged.iter().map(|j| j.class));
    Judgement { judged, overall }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::network::fixtures::station;
    use chrono::TimeZone;

    fn reading(values: &[(Param, f64, Option<DataFlag>)]) -> Reading {
        Reading {
            station: "shijiao".into(),
            ts: Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(),
            values: values
                .iter()
                .map(|&(param, value, flag)| Measured {
                    flag,
                    ..Measured::plain(param, value)
                })
                .collect(),
            seq: None,
        }
    }

    #[test]
    fn overall_class_over_evaluated_and_valid_values() {
        let s = station("shijiao", "qingyuan", 2, true);
        type Values<'a> = &'a [(Param, f64, Option<DataFlag>)];
        let table: &[(Values, Option<u8>)] = &[
            // NH3-N 1.2 is class Ⅳ and dominates.
            (
                &[
                    (Param::Ph, 7.4, None),
                    (Param::Nh3n, 1.2, None),
                    (Param::Do, 6.8, None),
                ],
                Some(4),
            ),
            // Temperature and TN (river) are not evaluated; conductivity has no limits.
            (
                &[
                    (Param::Temp, 35.0, None),
                    (Param::Tn, 5.0, None),
                    (Param::Cond, 900.0, None),
                ],
                None,
            ),
            // A value under maintenance (M) is stored but not judged.
            (
                &[
                    (Param::Nh3n, 3.0, Some(DataFlag::M)),
                    (Param::Do, 7.6, None),
                ],
                Some(1),
            ),
            // T (above range) is valid and judged.
            (&[(Param::Nh3n, 3.0, Some(DataFlag::T))], Some(6)),
        ];
        for (values, expected) in table {
            let j = judge(&s, &reading(values));
            assert_eq!(j.overall.map(Class::number), *expected, "{values:?}");
        }
    }

    #[test]
    fn exceeding_lists_values_worse_than_target() {
        let s = station("shijiao", "qingyuan", 2, true);
        let j = judge(
            &s,
            &reading(&[(Param::Nh3n, 1.2, None), (Param::Tp, 0.05, None)]),
        );
        let worse: Vec<Param> = j.exceeding(s.target).map(|x| x.param).collect();
        assert_eq!(worse, [Param::Nh3n]);
    }
}

#[cfg(test)]
mod national_realtime {
    //! The national real-time publication's classes (WATER.md §2.6, issue examples).
    use super::*;
    use crate::domain::gb3838::WaterBody;
    use crate::domain::network::fixtures::station;
    use crate::domain::profile::Precision;
    use chrono::TimeZone;

    fn class(precision: Precision, body: WaterBody, values: &[(Param, f64)]) -> Option<u8> {
        let mut s = station("s", "qingyuan", 2, false);
        s.profile = Profile::NationalRealtime(precision);
        s.water_body = body;
        let ts = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let r = Reading::of_values("s", ts, values);
        judge(&s, &r).overall.map(Class::number)
    }

    #[test]
    fn reproduces_published_classes() {
        use Param::*;
        use WaterBody::{Lake, River};
        let y2025 = Precision::Y2025;
        let now = Precision::default();
        type Row<'a> = (Precision, WaterBody, &'a [(Param, f64)], Option<u8>);
        let table: &[Row] = &[
            (y2025, River, &[(Tp, 0.1005)], Some(2)),
            (y2025, River, &[(Do, 5.994)], Some(2)),
            (y2025, River, &[(Ph, 9.02)], Some(1)),
            (y2025, River, &[(Ph, 9.6)], Some(6)),
            // TN never counts, even at a lake station; temperature neither.
            (y2025, Lake, &[(Tp, 0.02), (Tn, 5.0), (Temp, 35.0)], Some(2)),
            (y2025, River, &[(Tn, 5.0)], None),
            (now, River, &[(Do, 5.995)], Some(2)),
            (now, River, &[(Do, 5.994)], Some(3)),
            // Lake TP limits at a lake station: 0.1005 rounds to 0.100, class Ⅳ (raw: Ⅴ).
            (now, Lake, &[(Tp, 0.1005)], Some(4)),
            // The full method would see COD; this profile does not.
            (now, River, &[(Cod, 45.0), (Nh3n, 0.3)], Some(2)),
        ];
        for (precision, body, values, expected) in table {
            assert_eq!(
                class(*precision, *body, values),
                *expected,
                "{values:?} with {precision:?}"
            );
        }
    }
}
