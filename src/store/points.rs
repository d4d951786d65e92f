//! The stored schema (SPEC §6): which points a reading and an alert transition become.
//!
//! Fed by the store's encoder with judged readings and transitions; feeds the batcher with line
//! protocol. Pure. A reading written twice yields the same series and timestamp, so a
//! redelivered message overwrites itself instead of counting twice.

use super::line_protocol::{encode, Field, Point};
use crate::domain::alert::Transition;
use crate::domain::gb3838;
use crate::domain::incident::{EventKind, IncidentEvent};
use crate::domain::message;
use crate::domain::network::{Network, Station};
use crate::domain::param::Param;
use crate::domain::qc::Flag;
use crate::domain::reading::{Judgement, Reading};
use chrono::{DateTime, Utc};

pub const READINGS: &str = "water_quality";
pub const ALERTS: &str = "wq_alert";
pub const INCIDENTS: &str = "wq_incident";
pub const STATIONS: &str = "wq_station";

/// In key order, as `encode` writes them, so a reading's point needs no sorted copy.
fn tags(station: &Station) -> Vec<(&str, &str)> {
    vec![
        ("city", &station.city),
        ("river", &station.river),
        ("station", &station.id),
    ]
}

/// `<key>_qc` and `<key>_limit` of a parameter: field names of every reading, made once
/// rather than formatted for each value.
fn suffixed(p: Param) -> (&'static str, &'static str, &'static str) {
    type Names = Vec<(String, String, String)>;
    static NAMES: std::sync::OnceLock<Names> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        Param::ALL
            .iter()
            .map(|p| {
                let k = p.key();
                (format!("{k}_qc"), format!("{k}_limit"), format!("{k}_bdl"))
            })
            .collect()
    });
    Param::ALL
        .iter()
        .position(|q| *q == p)
        .and_then(|i| names.get(i))
        .map_or(("", "", ""), |(q, l, b)| {
            (q.as_str(), l.as_str(), b.as_str())
        })
}

/// The QC field of a parameter: `<key>_qc`.
fn qc_field(p: Param) -> &'static str {
    suffixed(p).0
}

/// Appends the `water_quality` point of one reading: every value as a float field under its
/// parameter key, its QARTOD flag as `<key>_qc`, `wq_class` when the reading holds an
/// evaluated, validated parameter, `<key>_bdl = true` where the value was below the detection
/// limit (the field `<key>` then holds the limit), and for each judged parameter with a one-sided limit the
/// station's target-class limit as `<key>_limit` — the line Grafana draws beside the values,
/// which a static dashboard could not know per station otherwise.
pub fn reading(
    station: &Station,
    r: &Reading,
    j: &Judgement,
    qc: &[(Param, Flag)],
    out: &mut String,
) {
    let mut fields: Vec<(&str, Field)> =
        Vec::with_capacity(2 * r.values.len() + 1 + j.judged.len());
    fields.extend(
        r.values
            .iter()
            .map(|m| (m.param.key(), Field::Float(m.value))),
    );
    fields.extend(
        qc.iter()
            .map(|(p, f)| (qc_field(*p), Field::Int(i64::from(f.code())))),
    );
    fields.extend(
        r.values
            .iter()
            .filter(|m| m.below_detection)
            .map(|m| (suffixed(m.param).2, Field::Bool(true))),
    );
    if let Some(class) = j.overall {
        fields.push(("wq_class", Field::Int(i64::from(class.number()))));
    }
    fields.extend(j.judged.iter().filter_map(|x| {
        match gb3838::limits(x.param, station.water_body)?.limit(station.target) {
            gb3838::LimitValue::AtMost(v) | gb3838::LimitValue::AtLeast(v) => {
                Some((suffixed(x.param).1, Field::Float(v)))
            }
            gb3838::LimitValue::Between(..) => None,
        }
    }));
    encode(
        &Point {
            measurement: READINGS,
            tags: tags(station),
            fields,
            ts_ms: r.ts.timestamp_millis(),
        },
        out,
    );
}

/// Who acknowledged, for which bureau, with what comment: the fields `ack_bureau`,
/// `acked_by` and `ack_comment` of an acknowledgement's point.
#[derive(Debug, Clone, Copy)]
pub struct AckedBy<'a> {
    pub bureau: &'a str,
    pub by: &'a str,
    pub comment: &'a str,
    pub at: DateTime<Utc>,
}

impl AckedBy<'_> {
    fn fields(&self) -> [(&str, Field<'_>); 3] {
        [
            ("ack_bureau", Field::Str(self.bureau)),
            ("ack_comment", Field::Str(self.comment)),
            ("acked_by", Field::Str(self.by)),
        ]
    }
}

/// Appends the `wq_alert` point of an acknowledgement made through the API: the alert's
/// series (same tags as its transitions), at the time of the acknowledgement, with state
/// `acknowledged` and who acknowledged for which bureau ([`AckedBy`]).
pub fn acknowledgement(
    station: &Station,
    rule: &str,
    param: Option<&str>,
    level: &str,
    alert_id: &str,
    ack: &AckedBy,
    out: &mut String,
) {
    let mut tags = tags(station);
    tags.push(("rule", rule));
    tags.push(("param", param.unwrap_or("")));
    tags.push(("level", level));
    let mut fields = vec![
        ("state", Field::Str("acknowledged")),
        ("alert_id", Field::Str(alert_id)),
        ("transition", Field::Str("acknowledged")),
        ("severity", Field::Str(level)),
    ];
    fields.extend(ack.fields());
    encode(
        &Point {
            measurement: ALERTS,
            tags,
            fields,
            ts_ms: ack.at.timestamp_millis(),
        },
        out,
    );
}

/// Appends the `wq_incident` point of an incident's acknowledgement through the API: state
/// `acknowledged`, the stations reached, and [`AckedBy`]'s fields, at the acknowledgement's
/// time.
pub fn incident_acknowledgement(
    incident_id: &str,
    level: &str,
    river: &str,
    stations: &str,
    ack: &AckedBy,
    out: &mut String,
) {
    let mut fields = vec![
        ("state", Field::Str("acknowledged")),
        ("stations", Field::Str(stations)),
        ("severity", Field::Str(level)),
    ];
    fields.extend(ack.fields());
    encode(
        &Point {
            measurement: INCIDENTS,
            tags: vec![
                ("incident_id", incident_id),
                ("level", level),
                ("river", river),
            ],
            fields,
            ts_ms: ack.at.timestamp_millis(),
        },
        out,
    );
}

/// Appends a correction of one stored QC flag (the spike test of a reading is settled by the
/// next one): the same series and time, so InfluxDB merges it into the stored point.
pub fn qc_revision(
    station: &Station,
    param: Param,
    ts: DateTime<Utc>,
    flag: Flag,
    out: &mut String,
) {
    let field = qc_field(param);
    encode(
        &Point {
            measurement: READINGS,
            tags: tags(station),
            fields: vec![(field, Field::Int(i64::from(flag.code())))],
            ts_ms: ts.timestamp_millis(),
        },
        out,
    );
}

/// Appends the `wq_alert` point of one transition, stamped with the time of the observation
/// that caused it (Grafana shows it as an annotation there).
pub fn alert(net: &Network, t: &Transition, out: &mut String) {
    let Some(station) = net.station(&t.station) else {
        return;
    };
    let limit = t
        .param
        .and_then(|p| gb3838::limits(p, station.water_body))
        .map(|l| l.limit(station.target).number());
    let subject = message::email(t, net)
        .map(|e| e.subject)
        .unwrap_or_default();
    let mut fields = vec![
        ("state", Field::Str(t.state.key())),
        ("value", Field::Float(t.evidence.value)),
        ("alert_id", Field::Str(&t.alert_id)),
        ("message", Field::Str(&subject)),
        // The kind of transition (`fired`, `escalated`, `reminder`, `resolved`), so counts of
        // new alerts leave escalations and reminders out; and the level again as a field, so
        // a query grouped across the `level` tag (one alert, its level risen) can read it.
        ("transition", Field::Str(t.kind.key())),
        ("severity", Field::Str(t.level.key())),
    ];
    if let Some(limit) = limit {
        fields.insert(2, ("limit", Field::Float(limit)));
    }
    if let Some(id) = &t.incident {
        fields.push(("incident_id", Field::Str(id)));
    }
    let mut tags = tags(station);
    tags.push(("rule", t.rule.key()));
    tags.push(("param", t.param.map_or("", Param::key)));
    tags.push(("level", t.level.key()));
    encode(
        &Point {
            measurement: ALERTS,
            tags,
            fields,
            ts_ms: t.evidence.ts.timestamp_millis(),
        },
        out,
    );
}

/// Appends the `wq_incident` point of one incident event (SPEC §6): tags `incident_id`,
/// `level`, `river`; fields `state` (the event), `stations` (reached so far, comma-separated
/// ids), `param`, `message` (the email subject). Stamped with the event's time plus the
/// event's position in `EventKind::KEYS` in milliseconds, so two events of one incident at
/// the same reading (a window closing as the incident ends) stay two points.
pub fn incident(net: &Network, e: &IncidentEvent, out: &mut String) {
    let i = &e.incident;
    let subject = message::incident::text(e, net)
        .map(|t| t.subject)
        .unwrap_or_default();
    let stations = i.stations_reached().join(",");
    let offset = EventKind::KEYS
        .iter()
        .position(|k| *k == e.kind.key())
        .unwrap_or(0) as i64;
    encode(
        &Point {
            measurement: INCIDENTS,
            tags: vec![
                ("incident_id", i.id.as_str()),
                ("level", i.level.key()),
                ("river", i.river.as_str()),
            ],
            fields: vec![
                ("state", Field::Str(e.kind.key())),
                ("stations", Field::Str(&stations)),
                ("param", Field::Str(i.param.key())),
                ("message", Field::Str(&subject)),
                // The level as a field, readable across the `level` tag as the incident
                // escalates.
                ("severity", Field::Str(i.level.key())),
            ],
            ts_ms: e.ts.timestamp_millis() + offset,
        },
        out,
    );
}

/// Appends the `wq_station` point of one configured station: tags `station`, `river`, `city`
/// and `boundary` (`true`/`false`); fields `name` and `target_class` (GB 3838 class 1–5),
/// stamped `at_ms` (the daemon's start). The register the dashboards read their list of
/// boundary sections from; written at each start, so a config change shows from then on.
pub fn station(station: &Station, at_ms: i64, out: &mut String) {
    let mut tags = tags(station);
    tags.insert(
        0,
        ("boundary", if station.boundary { "true" } else { "false" }),
    );
    encode(
        &Point {
            measurement: STATIONS,
            tags,
            fields: vec![
                ("name", Field::Str(&station.name)),
                (
                    "target_class",
                    Field::Int(i64::from(station.target.number())),
                ),
            ],
            ts_ms: at_ms,
        },
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Context, Evidence, Kind, Level, Rule};
    use crate::domain::gb3838::Class;
    use crate::domain::network::fixtures::network;
    use crate::domain::param::DataFlag;
    use crate::domain::reading::{judge, Measured};
    use chrono::{TimeZone, Utc};

    #[test]
    fn reading_point_golden() {
        let net = network();
        let s = net.station("shijiao").unwrap();
        let r = Reading {
            station: "shijiao".into(),
            ts: Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(),
            values: vec![
                Measured {
                    param: Param::Temp,
                    value: 22.5,
                    flag: None,
                    below_detection: false,
                },
                Measured {
                    param: Param::Ph,
                    value: 7.42,
                    flag: None,
                    below_detection: false,
                },
                Measured {
                    param: Param::Do,
                    value: 6.8,
                    flag: None,
                    below_detection: false,
                },
                Measured {
                    param: Param::Nh3n,
                    value: 3.0,
                    flag: Some(DataFlag::M),
                    below_detection: false,
                },
                Measured {
                    param: Param::Tp,
                    value: 0.08,
                    flag: None,
                    below_detection: false,
                },
            ],
            seq: Some(1234),
        };
        let mut out = String::new();
        let qc = [(Param::Ph, Flag::Good), (Param::Nh3n, Flag::Suspect)];
        reading(s, &r, &judge(s, &r), &qc, &mut out);
        // NH3-N under maintenance is stored but does not make the class: DO 6.8 is Ⅱ.
        assert_eq!(
            out,
            "water_quality,city=qingyuan,river=bei,station=shijiao temp=22.5,ph=7.42,do=6.8,nh3n=3,tp=0.08,ph_qc=1i,nh3n_qc=3i,wq_class=2i,do_limit=6,tp_limit=0.1 1795658400000\n"
        );
        let mut out = String::new();
        qc_revision(s, Param::Nh3n, r.ts, Flag::Fail, &mut out);
        assert_eq!(
            out,
            "water_quality,city=qingyuan,river=bei,station=shijiao nh3n_qc=4i 1795658400000\n"
        );
    }

    #[test]
    fn station_register_point_golden() {
        let net = network();
        let shijiao = net.station("shijiao").expect("shijiao");
        let mut out = String::new();
        station(shijiao, 1_795_658_400_000, &mut out);
        assert!(
            out.starts_with(
                "wq_station,boundary=true,city=qingyuan,river=bei,station=shijiao name=\""
            ),
            "{out}"
        );
        assert!(out.ends_with(",target_class=2i 1795658400000\n"), "{out}");
    }

    #[test]
    fn alert_point_golden() {
        let net = network();
        let ev = Evidence {
            ts: Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(),
            value: 1.2,
            class: Some(Class::IV),
        };
        let t = Transition {
            station: "shijiao".into(),
            rule: Rule::Exceedance,
            param: Some(Param::Nh3n),
            kind: Kind::Fired,
            state: Kind::Fired.state(),
            level: Level::Yellow,
            alert_id: "shijiao-exceedance-nh3n-20261126T020000Z".into(),
            since: ev.ts,
            evidence: ev,
            peak: ev,
            context: Context::None,
            follows: None,
            incident: None,
        };
        let mut out = String::new();
        alert(&net, &t, &mut out);
        let expected_prefix = "wq_alert,city=qingyuan,level=yellow,param=nh3n,river=bei,rule=exceedance,station=shijiao state=\"firing\",value=1.2,limit=0.5,alert_id=\"shijiao-exceedance-nh3n-20261126T020000Z\",message=\"【riverwatch 黄色预警】北江";
        assert!(out.starts_with(expected_prefix), "{out}");
        assert!(out.ends_with(" 1795658400000\n"), "{out}");
    }
}
