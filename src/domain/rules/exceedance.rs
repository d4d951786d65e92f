//! The `exceedance` rule, per parameter: a validated value worse than the station's target
//! class fires yellow, orange when worse than Ⅴ or when two or more parameters exceed; it
//! clears only inside the limit by the hysteresis margin, and holds in between. A value QC
//! found suspect is judged all the same (QC never hides pollution, WATER.md §5.5) and carries
//! the test that doubted it.
//!
//! Fed by the dispatcher with each judged value; returns the observation for the episode of
//! (station, `exceedance`, parameter). No state of its own; what its transitions set off
//! (the downstream warning, the restart of the early-warning windows) is the dispatcher's.

use super::{evidence, Observation, RuleConfig};
use crate::domain::alert::{Context, Level, Obs, Rule};
use crate::domain::gb3838::{self, Class, Limits};
use crate::domain::network::Station;
use crate::domain::param::Param;
use crate::domain::qc;
use crate::domain::reading::Judged;
use chrono::{DateTime, Utc};

/// The observation on judged value `x` of the reading stamped `ts`, when `exceeding` of its
/// parameters exceed the target; `suspect` holds the QC notes of the suspect values.
pub(super) fn observe(
    cfg: &RuleConfig,
    station: &Station,
    x: &Judged,
    exceeding: usize,
    suspect: &[(Param, qc::Test)],
    ts: DateTime<Utc>,
) -> Observation {
    let obs = if x.class > station.target {
        Obs::Breach(level(x.class, exceeding))
    } else if inside_margin(cfg.hysteresis, station, x.param, x.value) {
        Obs::Clear
    } else {
        Obs::Hold
    };
    let context = suspect
        .iter()
        .find(|(p, _)| *p == x.param)
        .map_or(Context::None, |&(_, test)| Context::Suspect { test });
    Observation {
        rule: Rule::Exceedance,
        param: Some(x.param),
        evidence: evidence(ts, x.value, Some(x.class)),
        obs,
        policy: cfg.persistence,
        context,
    }
}

/// The level of a breach of class `class` when `exceeding` parameters exceed: orange when
/// worse than Ⅴ or when two or more exceed, else yellow. `class` uses it too.
pub(super) fn level(class: Class, exceeding: usize) -> Level {
    if class == Class::WORSE_THAN_V || exceeding >= 2 {
        Level::Orange
    } else {
        Level::Yellow
    }
}

/// Whether `value` is inside the target limit by the `hysteresis` fraction (inside both
/// bounds by that fraction of the band, for a range).
fn inside_margin(hysteresis: f64, station: &Station, param: Param, value: f64) -> bool {
    let h = hysteresis;
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
