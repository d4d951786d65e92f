//! The `shift` rule (blue), per parameter: a CUSUM or EWMA chart signals a shift in the
//! harmful direction from a baseline of the first validated values, by at least
//! `shift_min_change` of the target limit.
//!
//! Fed by the dispatcher with each validated value of a parameter with a harmful direction;
//! returns the observation for the episode of (station, `shift`, parameter) once the baseline
//! is set. Its state is the chart pair and what they were set up on (the baseline's mean,
//! spread and period, which the message states), or the baseline still being gathered.

use super::{evidence, target_limit, Observation, RuleConfig, QUICK};
use crate::domain::alert::{Context, Level, Obs, Rule};
use crate::domain::network::Station;
use crate::domain::param::Param;
use crate::domain::trend::{Cusum, Ewma, Shift};
use chrono::{DateTime, Utc};

/// The control charts of one parameter at one station.
#[derive(Debug, Default)]
pub(super) struct Chart {
    /// The first validated values with their reading times, until the charts are set up from
    /// them (then emptied).
    baseline: Vec<(DateTime<Utc>, f64)>,
    cusum: Option<Cusum>,
    ewma: Option<Ewma>,
    /// What the charts were set up on, for messages: (mean, standard deviation, first and
    /// last reading time of the baseline values).
    set_on: Option<(f64, f64, DateTime<Utc>, DateTime<Utc>)>,
}

impl Chart {
    /// The rule on `value` of `param` (harmful when rising if `up`): sets the charts up on
    /// the first `shift_baseline` values, then feeds them; `None` while the baseline is still
    /// being gathered. `ts` is the value's reading time; [`observation`] dates what it says.
    pub(super) fn decision(
        &mut self,
        cfg: &RuleConfig,
        station: &Station,
        param: Param,
        up: bool,
        value: f64,
        ts: DateTime<Utc>,
    ) -> Option<(Obs, Context)> {
        if self.cusum.is_none() {
            self.baseline.push((ts, value));
            if self.baseline.len() < cfg.shift_baseline {
                return None;
            }
            let n = self.baseline.len() as f64;
            let mean = self.baseline.iter().map(|b| b.1).sum::<f64>() / n;
            let sd = (self
                .baseline
                .iter()
                .map(|b| (b.1 - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0))
                .sqrt();
            if sd <= 0.0 || !sd.is_finite() {
                // A constant baseline gives no scale; wait for one that varies.
                self.baseline.remove(0);
                return None;
            }
            self.cusum = Some(Cusum::new(mean, sd, cfg.cusum_k, cfg.cusum_h));
            self.ewma = Some(Ewma::new(mean, sd, cfg.ewma_lambda, cfg.ewma_l));
            let from = self.baseline.first().map_or(ts, |b| b.0);
            self.set_on = Some((mean, sd, from, ts));
            self.baseline = Vec::new();
            return None;
        }
        let harmful = if up { Shift::Up } else { Shift::Down };
        let by_cusum = self.cusum.as_mut().and_then(|c| c.push(value)) == Some(harmful);
        let by_ewma = self.ewma.as_mut().and_then(|e| e.push(value)) == Some(harmful);
        let moved = self
            .cusum
            .as_ref()
            .map_or(0.0, |c| if up { value - c.mu0 } else { c.mu0 - value });
        let floor =
            target_limit(param, station).map_or(f64::INFINITY, |l| cfg.shift_min_change * l);
        let set_on = self
            .set_on
            .filter(|_| (by_cusum || by_ewma) && moved >= floor);
        Some(
            if let Some((baseline, sd, baseline_from, baseline_to)) = set_on {
                (
                    Obs::Breach(Level::Blue),
                    Context::Shift {
                        up,
                        chart: if by_cusum { "CUSUM" } else { "EWMA" },
                        baseline,
                        sd,
                        baseline_from,
                        baseline_to,
                    },
                )
            } else {
                (Obs::Clear, Context::None)
            },
        )
    }
}

/// The shift rule's observation of `value` of `param` at reading time `ts`, from the chart's
/// decision.
pub(super) fn observation(
    param: Param,
    value: f64,
    ts: DateTime<Utc>,
    (obs, context): (Obs, Context),
) -> Observation {
    Observation {
        rule: Rule::Shift,
        param: Some(param),
        evidence: evidence(ts, value, None),
        obs,
        policy: QUICK,
        context,
    }
}
