//! The `station_fault` rule (data level), per parameter: QC fail, or instrument flag D or B.
//! A spike found when the next reading arrives counts at that reading. A fault must persist
//! before it fires (`RuleConfig::fault`, 4 of the last 6 values by default): a noisy probe's
//! isolated spikes are QC's business, flagged in the data, and no one's to visit the station.
//!
//! Fed by the dispatcher with each value and its QC verdict, before the judgement; returns the
//! observation for the episode of (station, `station_fault`, parameter). No state of its own:
//! the QC stream that decides is the dispatcher's, since every rule reads its flags.

use super::{evidence, Observation, RuleConfig};
use crate::domain::alert::{Context, FaultReason, Level, Obs, Rule};
use crate::domain::param::DataFlag;
use crate::domain::qc::{self, Flag};
use crate::domain::reading::Measured;
use chrono::{DateTime, Utc};

/// The observation on value `m` of the reading stamped `ts`, given its QC `verdict`. Of
/// several reasons the instrument's flag wins, then this value's QC, then the previous value's
/// spike.
pub(super) fn observe(
    cfg: &RuleConfig,
    m: &Measured,
    verdict: &qc::Verdict,
    ts: DateTime<Utc>,
) -> Observation {
    let mut fault = None;
    if let Some((prev, Flag::Fail)) = verdict.revised {
        fault = Some(FaultReason::Spike {
            at: DateTime::from_timestamp(prev, 0).unwrap_or(ts),
        });
    }
    if verdict.flag == Flag::Fail {
        fault = Some(FaultReason::Qc(verdict.note));
    }
    if let Some(f @ (DataFlag::D | DataFlag::B)) = m.flag {
        fault = Some(FaultReason::Flag(f));
    }
    let obs = if fault.is_some() {
        Obs::Breach(Level::Data)
    } else {
        Obs::Clear
    };
    Observation {
        rule: Rule::StationFault,
        param: Some(m.param),
        evidence: evidence(ts, m.value, None),
        obs,
        policy: cfg.fault,
        context: fault.map_or(Context::None, |reason| Context::Fault { reason }),
    }
}
