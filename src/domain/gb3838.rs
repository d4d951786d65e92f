//! GB 3838-2002 Table 1 and the single-factor method (WATER.md §1–2).
//!
//! Fed by judged readings (a parameter, a value, the station's water body and target class);
//! feeds the alert rules, stored `wq_class` and rendered messages. Pure: the limit table is a
//! constant and every function is total.

use super::param::Param;
use std::fmt;

/// A GB 3838 water-quality class, 1..=5 for Ⅰ..Ⅴ and 6 for 劣Ⅴ (worse than Ⅴ). Higher is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Class(u8);

impl Class {
    pub const I: Class = Class(1);
    pub const II: Class = Class(2);
    pub const III: Class = Class(3);
    pub const IV: Class = Class(4);
    pub const V: Class = Class(5);
    /// 劣Ⅴ: no class limit is met.
    pub const WORSE_THAN_V: Class = Class(6);

    /// A class from its number, 1..=6.
    pub fn new(n: u8) -> Option<Class> {
        (1..=6).contains(&n).then_some(Class(n))
    }

    /// A target class must be one of Ⅰ..Ⅴ: 劣Ⅴ is not a water-use function.
    pub fn target(n: u8) -> Option<Class> {
        (1..=5).contains(&n).then_some(Class(n))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    /// Index into a five-entry limit row; only meaningful for classes Ⅰ..Ⅴ.
    fn index(self) -> usize {
        usize::from(self.0 - 1)
    }

    pub fn roman(self) -> &'static str {
        ["Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "劣Ⅴ"][usize::from(self.0 - 1)]
    }

    /// English rendering for the second half of messages.
    pub fn roman_en(self) -> &'static str {
        ["I", "II", "III", "IV", "V", "worse than V"][usize::from(self.0 - 1)]
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.roman())
    }
}

/// Rivers and lakes/reservoirs differ in their TP limits, and TN counts only for lakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaterBody {
    River,
    Lake,
}

/// Which side of a limit is compliant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limits {
    /// Value must be ≤ the class limit (most items).
    Max([f64; 5]),
    /// Value must be ≥ the class limit (DO).
    Min([f64; 5]),
    /// Value must lie in [lo, hi] for every class (pH).
    Range(f64, f64),
}

impl Limits {
    /// The limit a value is compared with for one class, as messages show it. For pH the range
    /// is the same for every class, so the pair is returned.
    pub fn limit(&self, class: Class) -> LimitValue {
        match self {
            Limits::Max(row) => LimitValue::AtMost(row[class.index()]),
            Limits::Min(row) => LimitValue::AtLeast(row[class.index()]),
            Limits::Range(lo, hi) => LimitValue::Between(*lo, *hi),
        }
    }
}

/// One class limit in a form a message can print.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitValue {
    AtMost(f64),
    AtLeast(f64),
    Between(f64, f64),
}

impl LimitValue {
    /// The single number stored in the `limit` field of `wq_alert` (for pH, the bound crossed
    /// is not known here, so the upper bound is stored).
    pub fn number(self) -> f64 {
        match self {
            LimitValue::AtMost(v) | LimitValue::AtLeast(v) => v,
            LimitValue::Between(_, hi) => hi,
        }
    }
}

/// GB 3838-2002 Table 1 limits for a parameter in a water body; `None` for parameters that
/// have no class limits (temperature, conductivity, turbidity, chlorophyll a).
pub fn limits(param: Param, body: WaterBody) -> Option<Limits> {
    use Limits::{Max, Min, Range};
    Some(match param {
        Param::Ph => Range(6.0, 9.0),
        Param::Do => Min([7.5, 6.0, 5.0, 3.0, 2.0]),
        Param::Codmn => Max([2.0, 4.0, 6.0, 10.0, 15.0]),
        Param::Cod => Max([15.0, 15.0, 20.0, 30.0, 40.0]),
        Param::Bod5 => Max([3.0, 3.0, 4.0, 6.0, 10.0]),
        Param::Nh3n => Max([0.15, 0.5, 1.0, 1.5, 2.0]),
        Param::Tp => match body {
            WaterBody::River => Max([0.02, 0.1, 0.2, 0.3, 0.4]),
            WaterBody::Lake => Max([0.01, 0.025, 0.05, 0.1, 0.2]),
        },
        Param::Tn => Max([0.2, 0.5, 1.0, 1.5, 2.0]),
        Param::Cu => Max([0.01, 1.0, 1.0, 1.0, 1.0]),
        Param::Zn => Max([0.05, 1.0, 1.0, 2.0, 2.0]),
        Param::F => Max([1.0, 1.0, 1.0, 1.5, 1.5]),
        Param::Se => Max([0.01, 0.01, 0.01, 0.02, 0.02]),
        Param::As => Max([0.05, 0.05, 0.05, 0.1, 0.1]),
        Param::Hg => Max([0.00005, 0.00005, 0.0001, 0.001, 0.001]),
        Param::Cd => Max([0.001, 0.005, 0.005, 0.005, 0.01]),
        Param::Cr6 => Max([0.01, 0.05, 0.05, 0.05, 0.1]),
        Param::Pb => Max([0.01, 0.01, 0.05, 0.05, 0.1]),
        Param::Cn => Max([0.005, 0.05, 0.2, 0.2, 0.2]),
        Param::Phenol => Max([0.002, 0.002, 0.005, 0.01, 0.1]),
        Param::Oil => Max([0.05, 0.05, 0.05, 0.5, 1.0]),
        Param::Las => Max([0.2, 0.2, 0.2, 0.3, 0.3]),
        Param::S2 => Max([0.05, 0.1, 0.2, 0.5, 1.0]),
        Param::Fcoli => Max([200.0, 2000.0, 10000.0, 20000.0, 40000.0]),
        Param::Temp | Param::Cond | Param::Turb | Param::Chla => return None,
    })
}

/// The class of one value: the best class whose limit it meets (so where limits are equal the
/// better class wins), or 劣Ⅴ when none is met. pH outside 6–9 is coded 劣Ⅴ by convention
/// (WATER.md §1.1 note 2). `None` when the parameter has no class limits.
pub fn classify(param: Param, body: WaterBody, value: f64) -> Option<Class> {
    let limits = limits(param, body)?;
    let meets = |row: &[f64; 5], ok: &dyn Fn(f64) -> bool| {
        row.iter()
            .position(|&l| ok(l))
            .and_then(|i| Class::new(i as u8 + 1))
            .unwrap_or(Class::WORSE_THAN_V)
    };
    Some(match limits {
        Limits::Max(row) => meets(&row, &|l| value <= l),
        Limits::Min(row) => meets(&row, &|l| value >= l),
        Limits::Range(lo, hi) if (lo..=hi).contains(&value) => Class::I,
        Limits::Range(..) => Class::WORSE_THAN_V,
    })
}

/// The evaluated parameter set by default (SPEC §7, WATER.md §2.1): the 21 items of Table 1
/// other than temperature, TN and fecal coliform, plus TN for lakes and reservoirs.
pub fn default_evaluated(body: WaterBody) -> Vec<Param> {
    Param::ALL
        .iter()
        .copied()
        .filter(|&p| limits(p, body).is_some())
        .filter(|&p| p != Param::Fcoli)
        .filter(|&p| p != Param::Tn || body == WaterBody::Lake)
        .collect()
}

/// Overall class by the single-factor method: the worst class among the evaluated items that
/// have a class. `None` when no evaluated item was measured.
pub fn overall(classes: impl IntoIterator<Item = Class>) -> Option<Class> {
    classes.into_iter().max()
}

/// Exceedance multiple against the target class, (C − C_target)/C_target (WATER.md §2.3), for
/// `max` items that are worse than the target. DO and pH get none, as in Guangdong reporting.
pub fn exceedance(param: Param, body: WaterBody, value: f64, target: Class) -> Option<f64> {
    match limits(param, body)? {
        Limits::Max(row) => {
            let limit = row[target.index()];
            (value > limit).then(|| (value - limit) / limit)
        }
        Limits::Min(_) | Limits::Range(..) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WaterBody::{Lake, River};

    fn check(param: Param, body: WaterBody, value: f64, expected: Option<u8>) {
        assert_eq!(
            classify(param, body, value).map(Class::number),
            expected,
            "{param} = {value} in {body:?}"
        );
    }

    #[test]
    fn classifies_values_per_table_1() {
        let table: &[(Param, WaterBody, f64, Option<u8>)] = &[
            // NH3-N: limits 0.15 / 0.5 / 1.0 / 1.5 / 2.0, value on a limit meets it.
            (Param::Nh3n, River, 0.15, Some(1)),
            (Param::Nh3n, River, 0.151, Some(2)),
            (Param::Nh3n, River, 0.5, Some(2)),
            (Param::Nh3n, River, 0.82, Some(3)),
            (Param::Nh3n, River, 1.2, Some(4)),
            (Param::Nh3n, River, 2.0, Some(5)),
            (Param::Nh3n, River, 2.01, Some(6)),
            // Equal limits: the better class wins (COD 15 is class Ⅰ).
            (Param::Cod, River, 15.0, Some(1)),
            (Param::Cod, River, 15.5, Some(3)),
            (Param::Cu, River, 0.5, Some(2)),
            (Param::Pb, River, 0.01, Some(1)),
            (Param::Pb, River, 0.02, Some(3)),
            // DO is a lower bound.
            (Param::Do, River, 7.5, Some(1)),
            (Param::Do, River, 7.49, Some(2)),
            (Param::Do, River, 5.0, Some(3)),
            (Param::Do, River, 2.0, Some(5)),
            (Param::Do, River, 1.99, Some(6)),
            // pH: inside 6–9 meets every class; outside is 劣Ⅴ by convention.
            (Param::Ph, River, 6.0, Some(1)),
            (Param::Ph, River, 9.0, Some(1)),
            (Param::Ph, River, 9.02, Some(6)),
            (Param::Ph, River, 5.9, Some(6)),
            // TP differs between rivers and lakes.
            (Param::Tp, River, 0.1, Some(2)),
            (Param::Tp, Lake, 0.1, Some(4)),
            (Param::Tp, River, 0.1005, Some(3)),
            (Param::Tp, Lake, 0.025, Some(2)),
            (Param::Tp, Lake, 0.21, Some(6)),
            // Hg, the smallest limits in the table.
            (Param::Hg, River, 0.00005, Some(1)),
            (Param::Hg, River, 0.00008, Some(3)),
            (Param::Hg, River, 0.002, Some(6)),
            (Param::Fcoli, River, 1500.0, Some(2)),
            // No class limits.
            (Param::Temp, River, 25.0, None),
            (Param::Cond, River, 300.0, None),
            (Param::Turb, River, 12.0, None),
            (Param::Chla, Lake, 0.01, None),
        ];
        for &(param, body, value, expected) in table {
            check(param, body, value, expected);
        }
    }

    #[test]
    fn every_table_1_item_has_limits() {
        let with_limits = Param::ALL
            .iter()
            .filter(|&&p| limits(p, River).is_some())
            .count();
        // 24 items, minus water temperature (no class limits) = 23, TP counted once.
        assert_eq!(with_limits, 23);
    }

    #[test]
    fn default_evaluated_sets() {
        let river = default_evaluated(River);
        assert_eq!(river.len(), 21, "the 21 items of 环办〔2011〕22号");
        for p in [Param::Temp, Param::Tn, Param::Fcoli] {
            assert!(!river.contains(&p), "{p} must not be evaluated for rivers");
        }
        let lake = default_evaluated(Lake);
        assert_eq!(lake.len(), 22);
        assert!(lake.contains(&Param::Tn));
    }

    #[test]
    fn exceedance_vs_target() {
        let table: &[(Param, f64, u8, Option<f64>)] = &[
            // "氨氮超Ⅱ类标准限值": 1.2 against 0.5 is 1.4 times over.
            (Param::Nh3n, 1.2, 2, Some(1.4)),
            (Param::Nh3n, 0.5, 2, None),
            (Param::Tp, 0.12, 2, Some(0.2)),
            (Param::Codmn, 9.0, 3, Some(0.5)),
            (Param::Do, 1.0, 2, None),
            (Param::Ph, 10.0, 2, None),
            (Param::Temp, 40.0, 2, None),
        ];
        for &(param, value, target, expected) in table {
            let got = exceedance(param, River, value, Class::target(target).unwrap());
            match (got, expected) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-9, "{param}: {g} vs {e}"),
                (g, e) => assert_eq!(g, e, "{param} = {value}"),
            }
        }
    }

    #[test]
    fn overall_is_the_worst_class() {
        let classes = [Class::II, Class::IV, Class::I];
        assert_eq!(overall(classes), Some(Class::IV));
        assert_eq!(overall([]), None);
    }

    #[test]
    fn class_numbers_and_names() {
        assert_eq!(Class::new(0), None);
        assert_eq!(Class::new(7), None);
        assert_eq!(Class::target(6), None);
        assert_eq!(Class::WORSE_THAN_V.roman(), "劣Ⅴ");
        assert_eq!(Class::II.to_string(), "Ⅱ");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Failures are reported in the test output; no regression files in the tree.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Worse water never gets a better class: classes rise with concentration (fall with
        /// DO), for every parameter with limits.
        #[test]
        fn class_is_monotone(a in 0.0f64..50_000.0, b in 0.0f64..50_000.0, lake in any::<bool>()) {
            let body = if lake { WaterBody::Lake } else { WaterBody::River };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            for p in Param::ALL {
                match limits(p, body) {
                    Some(Limits::Max(_)) => prop_assert!(classify(p, body, lo) <= classify(p, body, hi), "{}", p),
                    Some(Limits::Min(_)) => prop_assert!(classify(p, body, lo) >= classify(p, body, hi), "{}", p),
                    _ => {}
                }
            }
        }

        /// A value is worse than its target exactly when it has an exceedance multiple (for
        /// `max` items), and the multiple is positive.
        #[test]
        fn exceedance_agrees_with_class(v in 0.0f64..5.0, target in 1u8..=5) {
            let target = Class::target(target).unwrap();
            for p in [Param::Nh3n, Param::Tp, Param::Codmn, Param::Cod, Param::Pb] {
                let worse = classify(p, WaterBody::River, v).unwrap() > target;
                let multiple = exceedance(p, WaterBody::River, v, target);
                prop_assert_eq!(worse, multiple.is_some(), "{} = {}", p, v);
                prop_assert!(multiple.is_none_or(|m| m > 0.0));
            }
        }
    }
}
