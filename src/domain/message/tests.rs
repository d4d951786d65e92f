//! Golden tests of rendered alerts: what a duty officer reads, rule by rule.

use super::*;
use crate::domain::alert::{Evidence, Level};
use crate::domain::network::fixtures::network;
use chrono::TimeZone;

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, 0, 0).unwrap()
}

pub(crate) fn firing() -> Transition {
    let ev = Evidence {
        ts: at(2),
        value: 1.2,
        class: Some(Class::IV),
    };
    Transition {
        station: "shijiao".into(),
        rule: Rule::Exceedance,
        param: Some(Param::Nh3n),
        kind: Kind::Fired,
        state: Kind::Fired.state(),
        level: Level::Yellow,
        alert_id: "shijiao-exceedance-nh3n-20261125T220000Z".into(),
        since: Utc.with_ymd_and_hms(2026, 11, 25, 22, 0, 0).unwrap(),
        evidence: ev,
        peak: ev,
        context: Context::None,
        follows: None,
        incident: None,
    }
}

#[test]
fn exceedance_email_golden() {
    let e = email(&firing(), &network()).unwrap();
    assert_eq!(
        e.subject,
        "【riverwatch 黄色预警】北江 shijiao section 氨氮 1.2 mg/L 劣于Ⅱ类目标 | Yellow alert: nh3n 1.2 mg/L worse than class II target at shijiao"
    );
    let expected = "\
【水质预警 · 黄色】已触发
断面：shijiao section（shijiao）· 北江 · 清远市生态环境局运维 · 跨界断面
项目：氨氮（nh3n）
规则：超标（exceedance）
监测值：1.2 mg/L（Ⅳ类）
水质目标：Ⅱ类（限值 ≤ 0.5 mg/L）
超标倍数：1.4
监测时间：2026-11-26 10:00（北京时间）
首次触发：2026-11-26 06:00（北京时间）
告警编号：shijiao-exceedance-nh3n-20261125T220000Z
说明：本预警由 riverwatch 自动监测预警系统发出，不是政府发布的突发环境事件预警。

[Water-quality alert · YELLOW] FIRING
Station: shijiao section (shijiao) · river 北江 (bei) · operated by qingyuan · boundary section
Parameter: ammonia nitrogen (NH3-N) (nh3n)
Rule: exceedance (exceedance)
Value: 1.2 mg/L (class IV)
Target: class II (limit ≤ 0.5 mg/L)
Exceedance multiple: 1.4
Reading time: 2026-11-26 10:00 UTC+8
First triggered: 2026-11-26 06:00 UTC+8
Alert id: shijiao-exceedance-nh3n-20261125T220000Z
Note: issued automatically by riverwatch; this is not a government emergency warning.
";
    assert_eq!(e.body, expected);
}

#[test]
fn resolved_exceedance_reports_peak_and_episode() {
    let mut t = firing();
    t.kind = Kind::Resolved;
    t.state = Kind::Resolved.state();
    t.peak = Evidence {
        ts: at(2),
        value: 1.8,
        class: Some(Class::V),
    };
    t.evidence = Evidence {
        ts: at(10),
        value: 0.3,
        class: Some(Class::II),
    };
    let e = email(&t, &network()).unwrap();
    assert!(e.subject.starts_with("【riverwatch 预警解除】北江 shijiao section 氨氮 恢复达标（Ⅱ类目标） | Resolved: nh3n back within class II target"), "{}", e.subject);
    for line in [
        "最新监测值：0.3 mg/L（Ⅱ类）",
        "期间最高：1.8 mg/L（Ⅴ类），2026-11-26 10:00（北京时间）",
        "最高超标倍数：2.6",
        "持续时间：2026-11-26 06:00 至 2026-11-26 18:00（北京时间）",
        "Peak exceedance multiple: 2.6",
    ] {
        assert!(e.body.contains(line), "missing {line:?} in\n{}", e.body);
    }
    assert!(!e.body.contains("首次触发"));
}

#[test]
fn every_rule_renders() {
    type Case<'a> = (Rule, Option<Param>, Level, Context, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            Rule::Trend,
            Some(Param::Nh3n),
            Level::Blue,
            Context::Trend {
                crossing: at(20),
                slope_per_day: 0.0123,
                p: 0.0004,
            },
            "氨氮 呈上升趋势，预计 11-27 04:00 超过Ⅱ类限值",
            "预计超标时间：2026-11-27 04:00（北京时间）",
        ),
        (
            Rule::Upstream,
            Some(Param::Nh3n),
            Level::Blue,
            Context::Upstream {
                from: "qixinggang".into(),
                from_alert: "qixinggang-exceedance-nh3n-x".into(),
                arrival: at(12),
                earliest: at(10),
                latest: at(14),
            },
            "上游qixinggang section氨氮超标，预计 11-26 20:00 到达",
            "预计到达时间：2026-11-26 20:00（北京时间）",
        ),
        (
            Rule::Offline,
            None,
            Level::Data,
            Context::Offline { last: at(0) },
            "站点离线（最后数据 11-26 08:00）",
            "应上报周期：240 分钟",
        ),
        (
            Rule::StationFault,
            Some(Param::Nh3n),
            Level::Data,
            Context::Fault {
                reason: "instrument flag D".into(),
            },
            "氨氮 仪器或数据异常",
            "原因：instrument flag D",
        ),
        (
            Rule::Shift,
            Some(Param::Do),
            Level::Blue,
            Context::Shift {
                up: false,
                chart: "CUSUM",
            },
            "溶解氧 较基线明显降低（CUSUM）",
            "规则：突变预警（shift）",
        ),
        (
            Rule::Rate,
            Some(Param::Nh3n),
            Level::Blue,
            Context::Rate {
                per_hour: 0.08,
                params: 1,
            },
            "氨氮 快速上升（每小时 0.08 mg/L）",
            "规则：快速变化（rate）",
        ),
        (
            Rule::Rate,
            Some(Param::Nh3n),
            Level::Red,
            Context::Rate {
                per_hour: 0.08,
                params: 3,
            },
            "氨氮等3项指标同时突变，上游已先出现",
            "【水质预警 · 红色】已触发",
        ),
    ];
    // SMS lengths with the real names.
    let mut named = network();
    for (s, name) in named.stations.iter_mut().zip(["石角(界牌)", "七星岗"]) {
        s.name = name.to_string();
    }
    for (rule, param, level, context, subject, body) in cases {
        let mut t = firing();
        t.rule = rule;
        t.param = param;
        t.level = level;
        t.context = context;
        let e = email(&t, &network()).unwrap();
        assert!(e.subject.contains(subject), "{rule}: {}", e.subject);
        assert!(
            e.body.contains(body),
            "{rule}: {body:?} missing in\n{}",
            e.body
        );
        let text = sms(&t, &named).unwrap();
        assert!(
            text.chars().count() <= 70,
            "{rule}: {} chars: {text}",
            text.chars().count()
        );
    }
}

#[test]
fn sms_golden_and_short() {
    let text = sms(&firing(), &network()).unwrap();
    assert_eq!(
        text,
        "【riverwatch黄色预警】shijiao section氨氮1.2mg/L(Ⅳ类)劣于Ⅱ类目标超标1.4倍 11-26 10:00"
    );
    assert!(text.chars().count() <= 70);
}

#[test]
fn follows_and_escalation() {
    let mut t = firing();
    t.kind = Kind::Escalated;
    t.level = Level::Orange;
    t.follows = Some((
        "qixinggang".into(),
        "qixinggang-exceedance-nh3n-20261125T120000Z".into(),
    ));
    let e = email(&t, &network()).unwrap();
    assert!(
        e.subject.starts_with("【riverwatch 升级为橙色预警】"),
        "{}",
        e.subject
    );
    assert!(e.body.contains("关联上游告警：qixinggang section（qixinggang）qixinggang-exceedance-nh3n-20261125T120000Z"), "{}", e.body);
    assert!(e.body.contains(
        "Follows upstream alert: qixinggang-exceedance-nh3n-20261125T120000Z at qixinggang"
    ));
}

#[test]
fn ph_and_do_have_no_multiple() {
    let mut t = firing();
    t.param = Some(Param::Do);
    t.evidence.value = 1.5;
    t.evidence.class = Some(Class::WORSE_THAN_V);
    let e = email(&t, &network()).unwrap();
    assert!(
        e.body.contains("水质目标：Ⅱ类（限值 ≥ 6 mg/L）"),
        "{}",
        e.body
    );
    assert!(!e.body.contains("超标倍数"));
    t.param = Some(Param::Ph);
    let e = email(&t, &network()).unwrap();
    assert!(e.body.contains("（限值 6–9）"), "{}", e.body);
}

#[test]
fn sms_always_fits_one_message() {
    let mut long = network();
    long.stations[0].name =
        "北江干流清远市清城区石角镇界牌村下游约二百米处国家地表水考核断面(水质自动监测站)".into();
    let mut t = firing();
    let full = sms(&t, &network()).unwrap();
    assert!(
        full.starts_with("【riverwatch黄色预警】"),
        "short names keep the full text: {full}"
    );
    for (rule, context) in [
        (Rule::Exceedance, Context::None),
        (
            Rule::Upstream,
            Context::Upstream {
                from: "qixinggang".into(),
                from_alert: "x".into(),
                arrival: at(12),
                earliest: at(10),
                latest: at(14),
            },
        ),
        (
            Rule::Trend,
            Context::Trend {
                crossing: at(20),
                slope_per_day: 0.1,
                p: 0.01,
            },
        ),
    ] {
        t.rule = rule;
        t.context = context;
        let text = sms(&t, &long).unwrap();
        assert!(
            text.chars().count() <= SMS_LIMIT,
            "{} chars: {text}",
            text.chars().count()
        );
        assert!(
            text.contains("北江干流清…"),
            "the station name is cut, not dropped: {text}"
        );
    }
    // Exceedance with a long name: the short head, no multiple, the value kept.
    t.rule = Rule::Exceedance;
    t.context = Context::None;
    let text = sms(&t, &long).unwrap();
    assert!(
        text.starts_with("【黄色预警】") && text.contains("氨氮1.2mg/L(Ⅳ类)劣于Ⅱ类目标"),
        "{text}"
    );
}
