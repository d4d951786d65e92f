//! The `class` rule, per station: the overall class of a reading worse than the target, at
//! the level `exceedance` gives it. Recorded and kept in the alert state but not notified
//! (`Rule::notifies`): it always coincides with an exceedance, whose message says which
//! parameter and by how much.
//!
//! Fed by the dispatcher with each reading's judgement; returns the observation for the
//! episode of (station, `class`). No state of its own.

use super::{evidence, exceedance, Observation, RuleConfig};
use crate::domain::alert::{Context, Obs, Rule};
use crate::domain::gb3838::Class;
use crate::domain::network::Station;
use chrono::{DateTime, Utc};

/// The observation on the reading stamped `ts` with overall class `overall` (`None` when it
/// holds no evaluated parameter: nothing to observe), when `exceeding` parameters exceed.
pub(super) fn observe(
    cfg: &RuleConfig,
    station: &Station,
    overall: Option<Class>,
    exceeding: usize,
    ts: DateTime<Utc>,
) -> Option<Observation> {
    let overall = overall?;
    let obs = if overall > station.target {
        Obs::Breach(exceedance::level(overall, exceeding))
    } else {
        Obs::Clear
    };
    Some(Observation {
        rule: Rule::Class,
        param: None,
        evidence: evidence(ts, f64::from(overall.number()), Some(overall)),
        obs,
        policy: cfg.persistence,
        context: Context::None,
    })
}
