//! The stored schema (SPEC §6): which points a reading and an alert transition become.
//!
//! Fed by the screen stage with judged readings and transitions; feeds the batcher with line
//! protocol. Pure. A reading written twice yields the same series and timestamp, so a
//! redelivered message overwrites itself instead of counting twice.

use super::line_protocol::{encode, Field, Point};
use crate::domain::alert::Transition;
use crate::domain::gb3838;
use crate::domain::message;
use crate::domain::network::{Network, Station};
use crate::domain::reading::{Judgement, Reading};

pub const READINGS: &str = "water_quality";
pub const ALERTS: &str = "wq_alert";

/// Appends the `water_quality` point of one reading: every value as a float field under its
/// parameter key, and `wq_class` when the reading holds an evaluated parameter.
pub fn reading(station: &Station, r: &Reading, j: &Judgement, out: &mut String) {
    let mut fields: Vec<(&str, Field)> = r
        .values
        .iter()
        .map(|m| (m.param.key(), Field::Float(m.value)))
        .collect();
    if let Some(class) = j.overall {
        fields.push(("wq_class", Field::Int(i64::from(class.number()))));
    }
    encode(
        &Point {
            measurement: READINGS,
            tags: vec![
                ("station", &station.id),
                ("river", &station.river),
                ("city", &station.city),
            ],
            fields,
            ts_ms: r.ts.timestamp_millis(),
        },
        out,
    );
}

/// Appends the `wq_alert` point of one transition, stamped with the reading time that caused
/// it (Grafana shows it as an annotation there).
pub fn alert(net: &Network, t: &Transition, out: &mut String) {
    let Some(station) = net.station(&t.station) else {
        return;
    };
    let limit =
        gb3838::limits(t.param, station.water_body).map(|l| l.limit(station.target).number());
    let subject = message::email(t, net)
        .map(|e| e.subject)
        .unwrap_or_default();
    let mut fields = vec![
        ("state", Field::Str(t.state.key())),
        ("value", Field::Float(t.evidence.value)),
        ("alert_id", Field::Str(&t.alert_id)),
        ("message", Field::Str(&subject)),
    ];
    if let Some(limit) = limit {
        fields.insert(2, ("limit", Field::Float(limit)));
    }
    encode(
        &Point {
            measurement: ALERTS,
            tags: vec![
                ("station", &station.id),
                ("river", &station.river),
                ("city", &station.city),
                ("rule", t.rule.key()),
                ("param", t.param.key()),
                ("level", t.level.key()),
            ],
            fields,
            ts_ms: t.evidence.ts.timestamp_millis(),
        },
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Evidence, Level, Rule, State};
    use crate::domain::gb3838::Class;
    use crate::domain::network::fixtures::network;
    use crate::domain::param::{DataFlag, Param};
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
                },
                Measured {
                    param: Param::Ph,
                    value: 7.42,
                    flag: None,
                },
                Measured {
                    param: Param::Do,
                    value: 6.8,
                    flag: None,
                },
                Measured {
                    param: Param::Nh3n,
                    value: 3.0,
                    flag: Some(DataFlag::M),
                },
                Measured {
                    param: Param::Tp,
                    value: 0.08,
                    flag: None,
                },
            ],
            seq: Some(1234),
        };
        let mut out = String::new();
        reading(s, &r, &judge(s, &r), &mut out);
        // NH3-N under maintenance is stored but does not make the class: DO 6.8 is Ⅱ.
        assert_eq!(
            out,
            "water_quality,city=qingyuan,river=bei,station=shijiao temp=22.5,ph=7.42,do=6.8,nh3n=3,tp=0.08,wq_class=2i 1795658400000\n"
        );
    }

    #[test]
    fn alert_point_golden() {
        let net = network();
        let ev = Evidence {
            ts: Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(),
            value: 1.2,
            class: Class::IV,
        };
        let t = Transition {
            station: "shijiao".into(),
            rule: Rule::Exceedance,
            param: Param::Nh3n,
            state: State::Firing,
            level: Level::Yellow,
            alert_id: "shijiao-exceedance-nh3n-20261126T020000Z".into(),
            since: ev.ts,
            evidence: ev,
            peak: ev,
        };
        let mut out = String::new();
        alert(&net, &t, &mut out);
        let expected_prefix = "wq_alert,city=qingyuan,level=yellow,param=nh3n,river=bei,rule=exceedance,station=shijiao state=\"firing\",value=1.2,limit=0.5,alert_id=\"shijiao-exceedance-nh3n-20261126T020000Z\",message=\"【riverwatch 黄色预警】北江";
        assert!(out.starts_with(expected_prefix), "{out}");
        assert!(out.ends_with(" 1795658400000\n"), "{out}");
    }
}
