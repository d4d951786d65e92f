//! Golden tests of rendered alerts: what a duty officer reads, rule by rule and kind by kind.
//! Each case's subject, SMS and email body are kept in `golden/<case>.txt`, so a change of
//! wording shows as a diff of those files; a failing case prints what it rendered between
//! `<<<golden <case>` and `>>>golden` for review.

use super::*;
use crate::domain::alert::{Evidence, Level};
use crate::domain::network::fixtures::network;
use crate::domain::param::DataFlag;
use chrono::TimeZone;

/// 2026-11-26 at `h` UTC (`h` + 8 in China Standard Time).
fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, 0, 0).unwrap()
}

fn ev(ts: DateTime<Utc>, value: f64, class: Option<Class>) -> Evidence {
    Evidence { ts, value, class }
}

/// A yellow NH3-N exceedance at the boundary section 石角, first exceeding at 06:00 and
/// confirmed at 10:00 (UTC+8).
pub(crate) fn firing() -> Transition {
    let e = ev(at(2), 1.2, Some(Class::IV));
    Transition {
        station: "shijiao".into(),
        rule: Rule::Exceedance,
        param: Some(Param::Nh3n),
        kind: Kind::Fired,
        state: Kind::Fired.state(),
        level: Level::Yellow,
        alert_id: "shijiao-exceedance-nh3n-20261126T060000".into(),
        since: Utc.with_ymd_and_hms(2026, 11, 25, 22, 0, 0).unwrap(),
        evidence: e,
        peak: e,
        context: Context::None,
        follows: None,
        incident: None,
    }
}

/// The fixture network with the stations' real names (notify's tests render it too).
pub(crate) fn named() -> Network {
    let mut net = network();
    for (s, name) in net.stations.iter_mut().zip(["石角(界牌)", "七星岗"]) {
        s.name = name.to_string();
    }
    net
}

/// `firing()` turned into another rule, kind, level and context, with the evidence given.
fn case(
    rule: Rule,
    param: Option<Param>,
    kind: Kind,
    level: Level,
    context: Context,
    evidence: Evidence,
) -> Transition {
    let mut t = firing();
    t.rule = rule;
    t.param = param;
    t.kind = kind;
    t.state = kind.state();
    t.level = level;
    t.context = context;
    t.evidence = evidence;
    t.peak = evidence;
    t
}

fn upstream_context(arrival: DateTime<Utc>) -> Context {
    Context::Upstream {
        from: "qixinggang".into(),
        from_alert: "qixinggang-exceedance-nh3n-20261126T000000".into(),
        arrival,
        earliest: arrival - chrono::Duration::hours(1),
        latest: arrival + chrono::Duration::hours(1),
    }
}

fn trend_context() -> Context {
    Context::Trend {
        crossing: at(20),
        slope_per_day: 0.0612,
        p: 0.00041,
        test: TrendTest::HamedRao,
        baseline: 0.25,
        from: Utc.with_ymd_and_hms(2026, 11, 19, 2, 0, 0).unwrap(),
        points: 42,
    }
}

fn shift_context(up: bool, baseline: f64, sd: f64) -> Context {
    Context::Shift {
        up,
        chart: "CUSUM",
        baseline,
        sd,
        baseline_from: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        baseline_to: Utc.with_ymd_and_hms(2026, 11, 5, 20, 0, 0).unwrap(),
    }
}

fn rate_context(params: usize) -> Context {
    Context::Rate {
        per_hour: 0.1125,
        change: 0.9,
        from: at(2) - chrono::Duration::hours(8),
        steepest: Step {
            from: at(1),
            to: at(2),
            per_hour: 0.6,
        },
        params,
    }
}

/// Every message kind the rules produce, by golden file name, each with the alert id its
/// episode's start gives (notify's tests render them through every channel).
pub(crate) fn cases() -> Vec<(&'static str, Transition, &'static str)> {
    cases_as_built()
        .into_iter()
        .map(|(name, t, golden)| (name, with_id(t), golden))
        .collect()
}

fn cases_as_built() -> Vec<(&'static str, Transition, &'static str)> {
    let nh3n = Some(Param::Nh3n);
    let mut escalated = firing();
    escalated.kind = Kind::Escalated;
    escalated.level = Level::Orange;
    escalated.evidence = ev(at(6), 2.4, Some(Class::WORSE_THAN_V));
    escalated.peak = escalated.evidence;
    escalated.follows = Some((
        "qixinggang".into(),
        "qixinggang-exceedance-nh3n-20261125T200000".into(),
    ));
    let mut reminder = firing();
    reminder.kind = Kind::Reminder;
    reminder.evidence = ev(at(14), 1.4, Some(Class::IV));
    let mut resolved = firing();
    resolved.kind = Kind::Resolved;
    resolved.state = Kind::Resolved.state();
    resolved.peak = ev(at(2), 1.8, Some(Class::V));
    resolved.evidence = ev(at(10), 0.3, Some(Class::II));
    let mut suspect = firing();
    suspect.context = Context::Suspect {
        test: crate::domain::qc::Test::Spike,
    };
    let mut red = case(
        Rule::Rate,
        nh3n,
        Kind::Escalated,
        Level::Red,
        rate_context(3),
        ev(at(2), 1.2, None),
    );
    red.since = at(2);
    let quick = |rule, kind, level, context, e: Evidence| {
        let mut t = case(rule, nh3n, kind, level, context, e);
        if kind != Kind::Resolved {
            // Quick rules fire on the one signalling reading.
            t.since = e.ts;
        }
        t
    };
    let blue_resolved = |rule, value, class| {
        let mut t = quick(
            rule,
            Kind::Resolved,
            Level::Blue,
            Context::None,
            ev(at(10), value, class),
        );
        t.since = at(2);
        t
    };
    let mut offline = case(
        Rule::Offline,
        None,
        Kind::Fired,
        Level::Data,
        Context::Offline {
            last: at(0) - chrono::Duration::hours(8),
        },
        ev(at(1), 0.0, None),
    );
    offline.since = at(1);
    let mut online = offline.clone();
    online.kind = Kind::Resolved;
    online.state = Kind::Resolved.state();
    online.context = Context::None;
    online.evidence = ev(at(3), 0.0, None);
    let mut upstream_resolved = quick(
        Rule::Upstream,
        Kind::Resolved,
        Level::Blue,
        upstream_context(at(11)),
        ev(at(9), 0.4, Some(Class::II)),
    );
    upstream_resolved.since = at(1);
    vec![
        (
            "exceedance.fired",
            firing(),
            include_str!("golden/exceedance.fired.txt"),
        ),
        (
            "exceedance.escalated",
            escalated,
            include_str!("golden/exceedance.escalated.txt"),
        ),
        (
            "exceedance.reminder",
            reminder,
            include_str!("golden/exceedance.reminder.txt"),
        ),
        (
            "exceedance.resolved",
            resolved,
            include_str!("golden/exceedance.resolved.txt"),
        ),
        (
            "exceedance.suspect",
            suspect,
            include_str!("golden/exceedance.suspect.txt"),
        ),
        (
            "trend.fired",
            quick(
                Rule::Trend,
                Kind::Fired,
                Level::Blue,
                trend_context(),
                ev(at(2), 0.42, None),
            ),
            include_str!("golden/trend.fired.txt"),
        ),
        (
            "trend.resolved",
            blue_resolved(Rule::Trend, 0.38, None),
            include_str!("golden/trend.resolved.txt"),
        ),
        (
            "shift.fired",
            quick(
                Rule::Shift,
                Kind::Fired,
                Level::Blue,
                shift_context(true, 0.21, 0.031),
                ev(at(2), 0.46, None),
            ),
            include_str!("golden/shift.fired.txt"),
        ),
        (
            "shift.do.fired",
            {
                let mut t = quick(
                    Rule::Shift,
                    Kind::Fired,
                    Level::Blue,
                    shift_context(false, 7.8, 0.42),
                    ev(at(2), 5.1, None),
                );
                t.param = Some(Param::Do);
                t
            },
            include_str!("golden/shift.do.fired.txt"),
        ),
        (
            "shift.resolved",
            blue_resolved(Rule::Shift, 0.62, None),
            include_str!("golden/shift.resolved.txt"),
        ),
        (
            "rate.fired",
            quick(
                Rule::Rate,
                Kind::Fired,
                Level::Blue,
                rate_context(1),
                ev(at(2), 1.2, None),
            ),
            include_str!("golden/rate.fired.txt"),
        ),
        (
            "rate.escalated",
            red,
            include_str!("golden/rate.escalated.txt"),
        ),
        (
            "rate.resolved",
            blue_resolved(Rule::Rate, 0.45, None),
            include_str!("golden/rate.resolved.txt"),
        ),
        (
            "station_fault.fired",
            quick(
                Rule::StationFault,
                Kind::Fired,
                Level::Data,
                Context::Fault {
                    reason: FaultReason::Flag(DataFlag::D),
                },
                ev(at(2), 0.05, None),
            ),
            include_str!("golden/station_fault.fired.txt"),
        ),
        (
            "station_fault.spike",
            quick(
                Rule::StationFault,
                Kind::Fired,
                Level::Data,
                Context::Fault {
                    reason: FaultReason::Spike { at: at(1) },
                },
                ev(at(2), 0.31, None),
            ),
            include_str!("golden/station_fault.spike.txt"),
        ),
        (
            "station_fault.resolved",
            {
                let mut t = quick(
                    Rule::StationFault,
                    Kind::Resolved,
                    Level::Data,
                    Context::None,
                    ev(at(6), 0.3, None),
                );
                t.since = at(2);
                t
            },
            include_str!("golden/station_fault.resolved.txt"),
        ),
        (
            "offline.fired",
            offline,
            include_str!("golden/offline.fired.txt"),
        ),
        (
            "offline.resolved",
            online,
            include_str!("golden/offline.resolved.txt"),
        ),
        (
            "upstream.fired",
            quick(
                Rule::Upstream,
                Kind::Fired,
                Level::Blue,
                upstream_context(at(1)),
                ev(at(0) - chrono::Duration::hours(5), 1.2, Some(Class::IV)),
            ),
            include_str!("golden/upstream.fired.txt"),
        ),
        (
            "upstream.next_day",
            quick(
                Rule::Upstream,
                Kind::Fired,
                Level::Blue,
                upstream_context(at(16)),
                ev(at(2), 1.2, Some(Class::IV)),
            ),
            include_str!("golden/upstream.next_day.txt"),
        ),
        (
            "upstream.resolved",
            upstream_resolved,
            include_str!("golden/upstream.resolved.txt"),
        ),
    ]
}

/// The transition with the alert id its episode start gives (as `alert` makes it).
fn with_id(mut t: Transition) -> Transition {
    t.alert_id = format!(
        "{}-{}-{}-{}",
        t.station,
        t.rule,
        t.param.map_or("station", Param::key),
        t.since.with_timezone(&cst()).format("%Y%m%dT%H%M%S")
    );
    t
}

/// The golden file's form of one transition's texts.
fn rendered(t: &Transition, net: &Network) -> String {
    let Text {
        subject,
        body,
        short,
    } = text(t, net).expect("the station is in the network");
    format!("== subject\n{subject}\n== sms\n{short}\n== body\n{body}")
}

#[test]
fn every_message_kind_matches_its_golden_file() {
    let net = named();
    let mut differ = Vec::new();
    for (name, t, golden) in cases() {
        let got = rendered(&t, &net);
        if got != golden {
            eprintln!("<<<golden {name}\n{got}>>>golden");
            differ.push(name);
        }
    }
    assert!(differ.is_empty(), "rendered differently: {differ:?}");
}

/// Every SMS of every case fits one message; class and limit are in every blue message and
/// in every one at yellow or above (email in both languages, and the SMS).
#[test]
fn blue_and_above_messages_state_class_and_limit() {
    let net = named();
    for (name, t, _) in cases() {
        let Text { body, short, .. } = text(&t, &net).unwrap();
        assert!(chars(&short) <= SMS_LIMIT, "{name}: {short}");
        if t.level < Level::Blue {
            continue;
        }
        let (zh, en) = body.split_once("\n\n").unwrap();
        let first_zh = zh.lines().nth(1).unwrap();
        let first_en = en.lines().nth(1).unwrap();
        assert!(
            first_zh.contains("类）") && first_zh.contains("类限值"),
            "{name}: the opening words give class and limit: {first_zh}"
        );
        assert!(
            first_en.contains("(class ") && first_en.contains("limit"),
            "{name}: {first_en}"
        );
        assert!(zh.contains("水质目标：Ⅱ类（限值"), "{name}: {zh}");
        assert!(en.contains("Target: class II (limit"), "{name}: {en}");
        assert!(
            short.contains("类)") && short.contains("Ⅱ类限值"),
            "{name}: {short}"
        );
    }
}

/// Times are UTC+8 everywhere; ids shown carry UTC+8 too (no `…Z` beside UTC+8 bodies); the
/// English names the bureau, stations and rule for people; the trend's p-value is never
/// called the original Mann–Kendall's; the method names sit in the details only.
#[test]
fn messages_speak_in_local_time_and_display_names() {
    let net = named();
    for (name, t, _) in cases() {
        let Text {
            subject,
            body,
            short,
        } = text(&t, &net).unwrap();
        for text in [&subject, &body, &short] {
            let utc = text.matches("UTC").count();
            assert_eq!(utc, text.matches("UTC+8").count(), "{name}: {text}");
            assert!(!text.contains("00Z"), "{name}: a UTC id in {text}");
            assert!(!text.contains("Mann-Kendall p"), "{name}: {text}");
        }
        let (_, en) = body.split_once("\n\n").unwrap();
        assert!(en.contains("operated by 清远市生态环境局"), "{name}: {en}");
        assert!(!en.contains("(exceedance)"), "{name}: {en}");
        assert!(!subject.contains("at shijiao"), "{name}: {subject}");
        for method in ["CUSUM", "EWMA", "Hamed", "Mann", "Sen "] {
            for line in body.lines().filter(|l| l.contains(method)) {
                assert!(
                    line.starts_with("技术细节：") || line.starts_with("Details: "),
                    "{name}: {method} outside the details: {line}"
                );
            }
        }
    }
}

#[test]
fn arrival_windows_say_the_date_only_when_it_is_not_the_readings_day() {
    // Reading at 11-26 10:00 UTC+8 (02:00 UTC).
    type Case<'a> = (u32, u32, &'a str, &'a str, &'a str);
    let cases: [Case; 4] = [
        (0, 2, "08:00–10:00", "08:00–10:00", "08:00–10:00"),
        (
            16,
            18,
            "11月27日 00:00–02:00",
            "00:00–02:00 on 27 Nov",
            "11月27日00:00–02:00",
        ),
        (
            15,
            17,
            "23:00–11月27日 01:00",
            "26 Nov 23:00 – 27 Nov 01:00",
            "23:00–11月27日01:00",
        ),
        (
            39,
            41,
            "11月27日 23:00–11月28日 01:00",
            "27 Nov 23:00 – 28 Nov 01:00",
            "11月27日23:00–11月28日01:00",
        ),
    ];
    for (from, to, zh, en, sms) in cases {
        let hour = |h: u32| at(0) + chrono::Duration::hours(i64::from(h));
        assert_eq!(
            window(at(2), hour(from), hour(to)),
            (zh.to_string(), en.to_string(), sms.to_string()),
            "{from}–{to} UTC"
        );
    }
}

#[test]
fn numbers_read_as_people_write_them() {
    for (v, shown) in [
        (1.2, "1.2"),
        (0.5, "0.5"),
        (6.0, "6"),
        (0.0533333, "0.0533"),
        (0.1125, "0.1125"),
        (12.345, "12.35"),
        (1234.6, "1235"),
        (0.0, "0"),
        (-0.00001, "0"),
    ] {
        assert_eq!(num(v), shown, "{v}");
    }
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
fn sms_shortens_long_names_deliberately() {
    let mut long = named();
    long.stations[0].name =
        "北江干流清远市清城区石角镇界牌村下游约二百米处国家地表水考核断面(水质自动监测站)".into();
    // Short names keep the full head.
    let full = sms(&firing(), &named()).unwrap();
    assert!(full.starts_with("【riverwatch黄色预警】"), "{full}");
    for (name, t, _) in cases() {
        let text = sms(&t, &long).unwrap();
        assert!(chars(&text) <= SMS_LIMIT, "{name}: {text}");
        assert!(
            text.contains("北江干流清…") || text.contains(long.stations[0].name.as_str()),
            "{name}: the station name is cut, not dropped: {text}"
        );
    }
    // Exceedance with a long name: the short head, no multiple, the value kept.
    let text = sms(&firing(), &long).unwrap();
    assert!(
        text.starts_with("【黄色预警】") && text.contains("氨氮1.2mg/L(Ⅳ类)劣于Ⅱ类限值0.5"),
        "{text}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]

    /// Every SMS of every rule and kind, at any level, with station names of any length and
    /// any values, fits one message.
    #[test]
    fn every_sms_fits_one_message(
        here in "[\\u{4e00}-\\u{9fa5}()]{1,90}",
        upstream in "[\\u{4e00}-\\u{9fa5}()]{1,90}",
        rule in 0..Rule::ALL.len(),
        kind in 0..4usize,
        level in 0..Level::ALL.len(),
        param in 0..Param::ALL.len(),
        value in -1.0e6f64..1.0e6,
        hours in 0i64..2000,
    ) {
        let mut net = named();
        net.stations[0].name = here;
        net.stations[1].name = upstream;
        let rule = Rule::ALL[rule];
        let kind = [Kind::Fired, Kind::Escalated, Kind::Reminder, Kind::Resolved][kind];
        let later = at(2) + chrono::Duration::hours(hours);
        let context = match rule {
            Rule::Trend => Context::Trend {
                crossing: later,
                slope_per_day: value / 100.0,
                p: 0.01,
                test: TrendTest::Original,
                baseline: value / 2.0,
                from: at(0) - chrono::Duration::days(7),
                points: 200,
            },
            Rule::Shift => shift_context(value > 0.0, value / 3.0, 0.1),
            Rule::Rate => rate_context(hours as usize % 20),
            Rule::StationFault => Context::Fault { reason: FaultReason::Spike { at: later } },
            Rule::Offline => Context::Offline { last: later },
            Rule::Upstream => upstream_context(later),
            Rule::Exceedance | Rule::Class => Context::None,
        };
        let t = case(
            rule,
            Some(Param::ALL[param]),
            kind,
            Level::ALL[level],
            context,
            ev(at(2), value, None),
        );
        let text = sms(&t, &net).unwrap();
        proptest::prop_assert!(chars(&text) <= SMS_LIMIT, "{} chars: {}", chars(&text), text);
    }
}

#[test]
fn spans_read_in_days_hours_or_minutes() {
    for (minutes, zh, en) in [
        (10, "10 分钟", "10 min"),
        (60, "1 小时", "1 h"),
        (8 * 60, "8 小时", "8 h"),
        (90, "1.5 小时", "1.5 h"),
        (7 * 24 * 60 - 30, "7 天", "7 days"),
    ] {
        assert_eq!(
            span_words(chrono::Duration::minutes(minutes)),
            (zh.to_string(), en.to_string())
        );
    }
}
