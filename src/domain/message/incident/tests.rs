//! Golden tests of every incident message kind: the email (Chinese, then English) and the
//! SMS, on the fixture network's 七星岗 → 石角(界牌) reach.

use super::*;
use crate::domain::alert::Level;
use crate::domain::incident::{Member, Peak, Reach};
use crate::domain::network::fixtures::network;
use crate::domain::param::Param;
use chrono::TimeZone;

fn h(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 22, 0, 0).unwrap() + chrono::Duration::hours(hours)
}

fn net() -> Network {
    let mut n = network();
    for s in &mut n.stations {
        s.name = match s.id.as_str() {
            "qixinggang" => "七星岗".into(),
            "shijiao" => "石角(界牌)".into(),
            _ => s.name.clone(),
        };
    }
    n
}

fn incident(arrival: Arrival) -> Incident {
    Incident {
        id: "qixinggang-incident-nh3n-20261128T060000".into(),
        param: Param::Nh3n,
        river: "bei".into(),
        origin: "qixinggang".into(),
        since: h(0),
        origin_value: 1.2,
        level: Level::Yellow,
        members: vec![Member {
            alert_id: "qixinggang-exceedance-nh3n-20261128T060000".into(),
            station: "qixinggang".into(),
            rule: crate::domain::alert::Rule::Exceedance,
            param: Some(Param::Nh3n),
            level: Level::Yellow,
            firing: true,
        }],
        reach: vec![Reach {
            station: "shijiao".into(),
            expected: h(10),
            earliest: h(8),
            latest: h(12),
            baseline: Some(0.2),
            arrival,
            exceeded: false,
        }],
        peak: Peak {
            station: "qixinggang".into(),
            ts: h(1),
            value: 1.2,
            class: Class::new(4),
        },
        last_ts: h(1),
    }
}

fn event(kind: EventKind, arrival: Arrival, ts: DateTime<Utc>) -> IncidentEvent {
    IncidentEvent {
        incident: incident(arrival),
        kind,
        ts,
        cause: None,
    }
}

/// The incident after its peak at 七星岗 passed class Ⅴ (orange).
fn escalated() -> IncidentEvent {
    let mut e = event(EventKind::Escalated, Arrival::Pending, h(5));
    e.incident.level = Level::Orange;
    e.incident.peak = Peak {
        station: "qixinggang".into(),
        ts: h(5),
        value: 2.3,
        class: Class::new(6),
    };
    e
}

#[test]
fn every_event_kind_golden() {
    let confirmed = Arrival::Confirmed {
        ts: h(9),
        value: 0.9,
    };
    let cases = [
        (
            event(EventKind::Opened, Arrival::Pending, h(1)),
            "【riverwatch黄色预警】北江氨氮污染事件：七星岗氨氮超标 | ammonia nitrogen (NH3-N) incident on 北江: opened at 七星岗",
            "北江 氨氮污染事件（黄色）\n事件开始：七星岗氨氮超标（Ⅱ类限值 ≤ 0.5 mg/L），首个超标读数 2026-11-28 06:00（北京时间）；2026-11-28 07:00 为 1.2 mg/L（Ⅳ类）\n预计到达 石角(界牌)：11-28 14:00–18:00（北京时间）\n下游：石角(界牌)待确认\n通报：广州市生态环境局、清远市生态环境局\n事件编号：qixinggang-incident-nh3n-20261128T060000（起点首次超标 2026-11-28 06:00 北京时间）\n\nPollution incident on 北江: ammonia nitrogen (NH3-N) (yellow level)\nOpened: ammonia nitrogen (NH3-N) exceeds the class II limit ≤ 0.5 mg/L at 七星岗: first exceeding reading 2026-11-28 06:00 UTC+8; 1.2 mg/L at 2026-11-28 07:00 UTC+8 (class IV)\nExpected at 石角(界牌) around 11-28 14:00–18:00 UTC+8\nDownstream: 石角(界牌) pending\nTold: 广州市生态环境局, 清远市生态环境局\nIncident qixinggang-incident-nh3n-20261128T060000 (first exceeding reading at the origin 2026-11-28 06:00 UTC+8)\n",
            "【riverwatch黄色】北江七星岗氨氮超标，预计11-28 14:00–18:00到达石角(界牌)",
        ),
        (
            event(EventKind::ArrivalConfirmed { station: "shijiao".into(), ts: h(9), value: 0.9 }, confirmed.clone(), h(9)),
            "【riverwatch黄色预警】北江氨氮污染事件：到达石角(界牌)已确认 | ammonia nitrogen (NH3-N) incident on 北江: arrival confirmed at 石角(界牌)",
            "",
            "【riverwatch黄色】北江七星岗氨氮污染15:00到达石角(界牌)，现0.9 mg/L（Ⅱ类限值0.5）",
        ),
        (
            event(EventKind::ArrivalNotConfirmed { station: "shijiao".into() }, Arrival::NotConfirmed, h(16)),
            "【riverwatch黄色预警】北江氨氮污染事件：石角(界牌)未确认到达 | ammonia nitrogen (NH3-N) incident on 北江: arrival not confirmed at 石角(界牌)",
            "",
            "【riverwatch黄色】北江石角(界牌)在预计11-28 14:00–18:00内未见七星岗氨氮污染到达",
        ),
        (
            event(EventKind::Spread { station: "shijiao".into() }, confirmed.clone(), h(13)),
            "【riverwatch黄色预警】北江氨氮污染事件：扩散至石角(界牌) | ammonia nitrogen (NH3-N) incident on 北江: spread to 石角(界牌)",
            "",
            "【riverwatch黄色】北江氨氮污染扩散至石角(界牌)，19:00超标（Ⅱ类限值0.5）",
        ),
        (
            escalated(),
            "【riverwatch橙色预警】北江氨氮污染事件：升级为橙色 | ammonia nitrogen (NH3-N) incident on 北江: escalated to orange",
            "",
            "【riverwatch橙色】北江七星岗氨氮11:00为2.3 mg/L，升级为橙色",
        ),
        (
            event(EventKind::Ended, confirmed, h(20)),
            "【riverwatch黄色预警】北江氨氮污染事件：事件结束 | ammonia nitrogen (NH3-N) incident on 北江: ended",
            "",
            "【riverwatch黄色】北江七星岗氨氮事件07:00结束，峰值1.2 mg/L（七星岗）",
        ),
    ];
    for (e, subject, body, sms) in cases {
        let t = text(&e, &net()).expect("rendered");
        assert_eq!(t.subject, subject, "{:?}", e.kind);
        if !body.is_empty() {
            assert_eq!(t.body, body, "{:?}", e.kind);
        }
        assert_eq!(t.short, sms, "{:?}", e.kind);
        assert!(t.short.chars().count() <= SMS_LIMIT, "{}", t.short);
        assert!(t.body.contains(&e.incident.id), "the id is in every body");
    }
}

#[test]
fn the_ended_body_gives_peak_duration_and_stations() {
    let mut e = event(
        EventKind::Ended,
        Arrival::Confirmed {
            ts: h(9),
            value: 0.9,
        },
        h(20),
    );
    e.incident.last_ts = h(20);
    let t = text(&e, &net()).expect("rendered");
    assert!(
        t.body.contains(
            "事件结束：2026-11-29 02:00（北京时间），历时约 20 小时；峰值 七星岗 1.2 mg/L（Ⅳ类）；涉及站点：七星岗、石角(界牌)"
        ),
        "{}",
        t.body
    );
    assert!(
        t.body.contains("Ended at 2026-11-29 02:00 UTC+8 after about 20 h; peak 1.2 mg/L at 七星岗 (class IV); stations: 七星岗, 石角(界牌)"),
        "{}",
        t.body
    );
}

#[test]
fn long_names_still_fit_one_sms() {
    let mut n = net();
    for s in &mut n.stations {
        s.name = "一个非常非常非常非常非常非常非常非常长的断面名称".into();
    }
    let e = event(EventKind::Opened, Arrival::Pending, h(1));
    let t = text(&e, &n).expect("rendered");
    assert!(t.short.chars().count() <= SMS_LIMIT, "{}", t.short);
}
