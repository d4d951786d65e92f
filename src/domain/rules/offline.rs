//! The `offline` rule (data level): no current reading for cadence × `offline_factor` of wall
//! time. Current means stamped within that threshold of `now`: an older (backfilled) reading
//! is stored and judged, but neither resolves `offline` nor restarts its clock.
//!
//! Fed by the dispatcher with every reading's time and wall time, and by its `tick` on wall
//! time; returns the observations for the station's `offline` episode. Its state is the
//! station's clock: the wall time of its last current reading.

use super::{evidence, Observation, RuleConfig};
use crate::domain::alert::Persistence;
use crate::domain::alert::{Context, Level, Obs, Rule};
use crate::domain::network::Station;
use chrono::{DateTime, Duration, Utc};

/// When a station was last heard from.
#[derive(Debug, Default)]
pub(super) struct Clock {
    /// Wall time of the last current reading (or of the start); `None` until either. A
    /// backfilled reading leaves it alone: it says nothing about whether the station reports.
    arrival: Option<DateTime<Utc>>,
}

impl Clock {
    /// Starts the clock at `now` unless a reading started it already.
    pub(super) fn start(&mut self, now: DateTime<Utc>) {
        self.arrival.get_or_insert(now);
    }

    /// A reading stamped `ts` arrived at wall time `now`. Only a current reading — stamped
    /// within the offline threshold of `now` — shows that the station reports again: it ends
    /// an offline episode and restarts the clock. A backfilled one (a logger emptying its
    /// memory) is stored and judged but says nothing about now: resolving on it would fire
    /// `offline` again one threshold later, three messages for one outage. The observation is
    /// on wall time, as `tick`'s are.
    pub(super) fn reading(
        &mut self,
        cfg: &RuleConfig,
        station: &Station,
        ts: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Observation> {
        if now - ts > after(cfg, station) {
            return None;
        }
        self.arrival = Some(now);
        Some(Observation {
            rule: Rule::Offline,
            param: None,
            evidence: evidence(now, 0.0, None),
            obs: Obs::Clear,
            policy: Persistence::ONCE,
            context: Context::None,
        })
    }

    /// The rule on wall time `now`: a breach once the station has been silent too long.
    pub(super) fn tick(
        &self,
        cfg: &RuleConfig,
        station: &Station,
        now: DateTime<Utc>,
    ) -> Option<Observation> {
        let last = self.arrival?;
        (now - last > after(cfg, station)).then(|| Observation {
            rule: Rule::Offline,
            param: None,
            evidence: evidence(now, 0.0, None),
            obs: Obs::Breach(Level::Data),
            policy: Persistence::ONCE,
            context: Context::Offline { last },
        })
    }
}

/// How long `station` may stay silent before `offline` fires: cadence × `offline_factor`.
/// A reading stamped more than this before `now` is a backfill, not a sign of life.
fn after(cfg: &RuleConfig, station: &Station) -> Duration {
    let cadence = Duration::from_std(station.cadence).unwrap_or_else(|_| Duration::hours(4));
    Duration::milliseconds((cadence.num_milliseconds() as f64 * cfg.offline_factor) as i64)
}
