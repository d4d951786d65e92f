//! The `upstream` rule (blue), per parameter, at the downstream station: an exceedance firing
//! at its upstream neighbour, with the expected arrival counted from the first exceeding
//! reading upstream (the episode's pending start, not the confirming reading: with a 4-hourly
//! cadence that would announce the water one reading late) plus the travel time, as a window
//! of ± the arrival tolerance; resolved when that exceedance resolves.
//!
//! Fed by the dispatcher with each exceedance transition of the upstream station; returns the
//! observation for the downstream station's episode of (station, `upstream`, parameter). Its
//! state, at the downstream station, is the open warnings by parameter: every other alert of
//! that parameter there records the upstream alert it follows.

use super::{evidence, Observation};
use crate::domain::alert::Persistence;
use crate::domain::alert::{Context, Kind, Level, Obs, Rule, Transition};
use crate::domain::network::Station;
use crate::domain::param::Param;
use chrono::{DateTime, Duration, Utc};

/// A downstream station's warning from upstream.
#[derive(Debug, Clone, PartialEq)]
struct Upstream {
    from: String,
    alert: String,
    arrival: DateTime<Utc>,
}

/// The open warnings from upstream at one station, by parameter.
#[derive(Debug, Default)]
pub(super) struct Warnings(Vec<(Param, Upstream)>);

impl Warnings {
    /// The upstream alert (station, alert id) an alert of `param` here follows, if one is open.
    pub(super) fn follows(&self, param: Param) -> Option<(String, String)> {
        self.0
            .iter()
            .find(|(q, _)| *q == param)
            .map(|(_, u)| (u.from.clone(), u.alert.clone()))
    }

    /// Exceedance transition `t` at `from`, `travel` upstream of this station: a firing one
    /// opens (or replaces) the warning for its parameter and breaches; a resolving one closes
    /// it and clears; escalations and reminders change nothing.
    pub(super) fn exceedance(
        &mut self,
        from: &Station,
        travel: std::time::Duration,
        tolerance: Duration,
        t: &Transition,
    ) -> Option<Observation> {
        let param = t.param?;
        let travel = Duration::from_std(travel).unwrap_or_else(|_| Duration::zero());
        let ev = evidence(t.evidence.ts, t.evidence.value, t.evidence.class);
        let (obs, context) = match t.kind {
            Kind::Fired => {
                let arrival = t.since + travel;
                let up = Upstream {
                    from: from.id.clone(),
                    alert: t.alert_id.clone(),
                    arrival,
                };
                self.0.retain(|(q, _)| *q != param);
                self.0.push((param, up.clone()));
                let ctx = Context::Upstream {
                    from: up.from,
                    from_alert: up.alert,
                    arrival,
                    earliest: arrival - tolerance,
                    latest: arrival + tolerance,
                };
                (Obs::Breach(Level::Blue), ctx)
            }
            Kind::Resolved => {
                // The resolving transition says which event ended (its message names the
                // upstream station); a resolution with no open warning says nothing more.
                let open = self.0.iter().position(|(q, _)| *q == param);
                let ctx = open.map_or(Context::None, |i| {
                    let (_, up) = self.0.remove(i);
                    Context::Upstream {
                        from: up.from,
                        from_alert: up.alert,
                        arrival: up.arrival,
                        earliest: up.arrival - tolerance,
                        latest: up.arrival + tolerance,
                    }
                });
                (Obs::Clear, ctx)
            }
            Kind::Escalated | Kind::Reminder => return None,
        };
        Some(Observation {
            rule: Rule::Upstream,
            param: Some(param),
            evidence: ev,
            obs,
            policy: Persistence::ONCE,
            context,
        })
    }
}
