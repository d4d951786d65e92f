//! The gauges of the pipeline's state on `/metrics`, computed at each scrape from the API's
//! view (`api::Live`) — here, beside the handler, since `telemetry` sits below `api` in the
//! module graph: how long ago each station last reported and last gave a valid value per
//! parameter, and how many alerts fire and incidents are open, by level. Fed by the `/metrics`
//! handler with the views and the scrape time; feeds its text exposition.
//!
//! Ages are seconds at scrape time, as operators ask ("how long since 石角 reported?"); a
//! station or parameter not heard from since start has no series (an alert rule on absence
//! covers it: `absent(...)` or the `offline` alert).

use crate::api::{AlertView, IncidentView, StationView};
use crate::domain::alert::Level;
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

const READING_AGE: &str = "riverwatch_station_last_reading_age_seconds";
const VALID_AGE: &str = "riverwatch_station_last_valid_age_seconds";
const FIRING: &str = "riverwatch_alerts_firing";
const OPEN: &str = "riverwatch_incidents_open";

/// Seconds from `then` to `now`, never negative (a reading stamped slightly ahead of the
/// server's clock counts as fresh).
fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    ((now - then).num_milliseconds().max(0) as f64) / 1000.0
}

/// Appends the freshness, firing-alert and open-incident gauges. `incidents` may hold ended
/// ones (as `GET /api/v1/incidents` does); only `open` ones count.
pub fn prometheus(
    stations: &[StationView],
    alerts: &[AlertView],
    incidents: &[IncidentView],
    now: DateTime<Utc>,
    out: &mut String,
) {
    let _ = writeln!(
        out,
        "# HELP {READING_AGE} Seconds since the station's latest reading (by its own time stamp).\n# TYPE {READING_AGE} gauge"
    );
    for s in stations {
        if let Some(t) = s.last_reading {
            let _ = writeln!(
                out,
                "{READING_AGE}{{station=\"{}\"}} {:.3}",
                s.id,
                age(t, now)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP {VALID_AGE} Seconds since the station's latest valid value of a parameter (QC flag not fail or missing).\n# TYPE {VALID_AGE} gauge"
    );
    for s in stations {
        for (param, t) in &s.last_valid {
            let _ = writeln!(
                out,
                "{VALID_AGE}{{station=\"{}\",param=\"{param}\"}} {:.3}",
                s.id,
                age(*t, now)
            );
        }
    }
    let by_level = |levels: &mut dyn Iterator<Item = &str>| {
        let mut counts = [0u64; Level::ALL.len()];
        for level in levels {
            if let Some(i) = Level::ALL.iter().position(|l| l.key() == level) {
                counts[i] += 1;
            }
        }
        counts
    };
    let firing = by_level(&mut alerts.iter().map(|a| a.level.as_str()));
    let open = by_level(
        &mut incidents
            .iter()
            .filter(|i| i.state == "open")
            .map(|i| i.level.as_str()),
    );
    for (name, help, counts) in [
        (
            FIRING,
            "Alerts firing now (acknowledged or not), by level.",
            firing,
        ),
        (OPEN, "Incidents open now, by level.", open),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (level, n) in Level::ALL.iter().zip(counts) {
            let _ = writeln!(out, "{name}{{level=\"{}\"}} {n}", level.key());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn station(id: &str, last: Option<i64>, valid: &[(&'static str, i64)]) -> StationView {
        let at = |s: i64| DateTime::from_timestamp(s, 0).expect("time");
        StationView {
            id: id.into(),
            name: id.into(),
            river: "bei".into(),
            city: "qingyuan".into(),
            target_class: 2,
            boundary: false,
            last_reading: last.map(at),
            last_valid: valid.iter().map(|&(p, s)| (p, at(s))).collect(),
            values: BTreeMap::new(),
            qc: BTreeMap::new(),
            class: None,
            alerts: Vec::new(),
        }
    }

    #[test]
    fn ages_are_seconds_at_scrape_time_and_absent_stations_have_no_series() {
        let now = DateTime::from_timestamp(10_000, 0).expect("time");
        let stations = [
            station("shijiao", Some(9_400), &[("nh3n", 9_400), ("do", 8_800)]),
            station("qixinggang", None, &[]),
            // Stamped ahead of the server's clock: fresh, not negative.
            station("lianjiangkou", Some(10_030), &[]),
        ];
        let mut out = String::new();
        prometheus(&stations, &[], &[], now, &mut out);
        for (line, present) in [
            ("riverwatch_station_last_reading_age_seconds{station=\"shijiao\"} 600.000", true),
            ("riverwatch_station_last_valid_age_seconds{station=\"shijiao\",param=\"nh3n\"} 600.000", true),
            ("riverwatch_station_last_valid_age_seconds{station=\"shijiao\",param=\"do\"} 1200.000", true),
            ("riverwatch_station_last_reading_age_seconds{station=\"lianjiangkou\"} 0.000", true),
            ("riverwatch_alerts_firing{level=\"red\"} 0", true),
            ("riverwatch_incidents_open{level=\"data\"} 0", true),
        ] {
            assert_eq!(out.lines().any(|l| l == line), present, "{line} in\n{out}");
        }
        assert!(!out.contains("qixinggang"), "{out}");
    }
}
