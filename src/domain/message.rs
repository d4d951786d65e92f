//! Renders alert transitions into the texts duty officers read: an email (Chinese first, then
//! English) and a short SMS.
//!
//! Fed by [`Transition`]s and the network (names, targets, routing); feeds the notifier, which
//! only delivers. Pure, so every message is covered by golden tests. Times are shown in China
//! Standard Time (UTC+8), the time the bureaus work in.

use super::alert::{State, Transition};
use super::gb3838::{self, LimitValue};
use super::network::{Network, Station};
use super::param::Param;
use chrono::{DateTime, FixedOffset, Utc};

/// A rendered email, before addressing.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub subject: String,
    pub body: String,
}

/// Everything a message says about one transition, looked up once.
struct Facts<'a> {
    station: &'a Station,
    river_name: &'a str,
    operator_name: &'a str,
    unit: &'a str,
    limit: Option<LimitValue>,
    multiple: Option<f64>,
}

impl<'a> Facts<'a> {
    fn new(t: &'a Transition, net: &'a Network) -> Option<Facts<'a>> {
        let station = net.station(&t.station)?;
        let river_name = net.river(&station.river).map_or("", |r| r.name.as_str());
        let operator_name = net.bureau(&station.city).map_or("", |b| b.name.as_str());
        let limit = gb3838::limits(t.param, station.water_body).map(|l| l.limit(station.target));
        let shown = match t.state {
            State::Firing => t.evidence,
            State::Resolved => t.peak,
        };
        let multiple = gb3838::exceedance(t.param, station.water_body, shown.value, station.target);
        Some(Facts {
            station,
            river_name,
            operator_name,
            unit: t.param.unit().symbol(),
            limit,
            multiple,
        })
    }
}

/// China Standard Time, UTC+8.
fn cst() -> FixedOffset {
    // 8 h is within FixedOffset's ±24 h range, so this never falls back.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

fn local(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn with_unit(value: f64, unit: &str) -> String {
    if unit.is_empty() {
        format!("{value}")
    } else {
        format!("{value} {unit}")
    }
}

fn limit_text(limit: LimitValue, unit: &str) -> String {
    match limit {
        LimitValue::AtMost(v) => format!("≤ {}", with_unit(v, unit)),
        LimitValue::AtLeast(v) => format!("≥ {}", with_unit(v, unit)),
        LimitValue::Between(lo, hi) => format!("{lo}–{hi}"),
    }
}

fn param_zh(p: Param) -> String {
    format!("{}（{}）", p.name_zh(), p.key())
}

/// Renders the email for one transition; `None` when the station is not in the network
/// (never the case for transitions the daemon produced from its own config).
pub fn email(t: &Transition, net: &Network) -> Option<Email> {
    let f = Facts::new(t, net)?;
    let s = f.station;
    let p = t.param;
    let target = s.target;
    let boundary_zh = if s.boundary { " · 跨界断面" } else { "" };
    let boundary_en = if s.boundary {
        " · boundary section"
    } else {
        ""
    };
    let limit_zh = f
        .limit
        .map(|l| format!("（限值 {}）", limit_text(l, f.unit)))
        .unwrap_or_default();
    let limit_en = f
        .limit
        .map(|l| format!(" (limit {})", limit_text(l, f.unit)))
        .unwrap_or_default();
    let multiple_zh = f
        .multiple
        .map(|m| format!("超标倍数：{m:.1}\n"))
        .unwrap_or_default();
    let multiple_en = f
        .multiple
        .map(|m| format!("Exceedance multiple: {m:.1}\n"))
        .unwrap_or_default();
    let ev = t.evidence;
    let peak = t.peak;
    let (subject, head_zh, lines_zh, head_en, lines_en) = match t.state {
        State::Firing => (
            format!(
                "【riverwatch {}预警】{} {} {} {} 劣于{}类目标 | {} alert: {} {} worse than class {} target at {}",
                t.level.name_zh(),
                f.river_name,
                s.name,
                p.name_zh(),
                with_unit(ev.value, f.unit),
                target,
                capitalise(t.level.key()),
                p.key(),
                with_unit(ev.value, f.unit),
                target.roman_en(),
                s.id,
            ),
            format!("【水质预警 · {}】已触发", t.level.name_zh()),
            format!(
                "监测值：{}（{}类）\n水质目标：{}类{}\n{}监测时间：{}（北京时间）\n首次超标：{}（北京时间）\n",
                with_unit(ev.value, f.unit),
                ev.class,
                target,
                limit_zh,
                multiple_zh,
                local(ev.ts),
                local(t.since),
            ),
            format!("[Water-quality alert · {}] FIRING", t.level.key().to_uppercase()),
            format!(
                "Value: {} (class {})\nTarget: class {}{}\n{}Reading time: {} UTC+8\nFirst exceedance: {} UTC+8\n",
                with_unit(ev.value, f.unit),
                ev.class.roman_en(),
                target.roman_en(),
                limit_en,
                multiple_en,
                local(ev.ts),
                local(t.since),
            ),
        ),
        State::Resolved => (
            format!(
                "【riverwatch 预警解除】{} {} {} 恢复达标（{}类目标） | Resolved: {} back within class {} target at {}",
                f.river_name,
                s.name,
                p.name_zh(),
                target,
                p.key(),
                target.roman_en(),
                s.id,
            ),
            format!("【水质预警解除 · 原{}】", t.level.name_zh()),
            format!(
                "最新监测值：{}（{}类）\n水质目标：{}类{}\n期间最高：{}（{}类，{}）\n{}持续时间：{} 至 {}（北京时间）\n",
                with_unit(ev.value, f.unit),
                ev.class,
                target,
                limit_zh,
                with_unit(peak.value, f.unit),
                peak.class,
                local(peak.ts),
                multiple_zh.replace("超标倍数", "最高超标倍数"),
                local(t.since),
                local(ev.ts),
            ),
            format!("[Water-quality alert RESOLVED · was {}]", t.level.key()),
            format!(
                "Latest value: {} (class {})\nTarget: class {}{}\nPeak: {} (class {}, {} UTC+8)\n{}Episode: {} to {} UTC+8\n",
                with_unit(ev.value, f.unit),
                ev.class.roman_en(),
                target.roman_en(),
                limit_en,
                with_unit(peak.value, f.unit),
                peak.class.roman_en(),
                local(peak.ts),
                multiple_en.replace("Exceedance multiple", "Peak exceedance multiple"),
                local(t.since),
                local(ev.ts),
            ),
        ),
    };
    let river_id = &s.river;
    let body = format!(
        "{head_zh}\n\
         断面：{name}（{id}）· {river} · {operator}运维{boundary_zh}\n\
         项目：{param_zh}\n\
         {lines_zh}\
         告警编号：{alert_id}\n\
         说明：本预警由 riverwatch 自动监测预警系统发出，不是政府发布的突发环境事件预警。\n\
         \n\
         {head_en}\n\
         Station: {name} ({id}) · river {river} ({river_id}) · operated by {city}{boundary_en}\n\
         Parameter: {param_en} ({key})\n\
         {lines_en}\
         Alert id: {alert_id}\n\
         Note: issued automatically by riverwatch; this is not a government emergency warning.\n",
        name = s.name,
        id = s.id,
        river = f.river_name,
        operator = f.operator_name,
        city = s.city,
        param_zh = param_zh(p),
        param_en = p.name_en(),
        key = p.key(),
        alert_id = t.alert_id,
    );
    Some(Email { subject, body })
}

/// Renders the SMS text: Chinese only, short enough for one 70-character message in the usual
/// case (station names longer than about 12 characters make it longer).
pub fn sms(t: &Transition, net: &Network) -> Option<String> {
    let f = Facts::new(t, net)?;
    let s = f.station;
    let unit = f.unit.replace(' ', "");
    let short_time = |ts: DateTime<Utc>| ts.with_timezone(&cst()).format("%m-%d %H:%M").to_string();
    Some(match t.state {
        State::Firing => format!(
            "【riverwatch{}预警】{}{}{}{}({}类)劣于{}类目标{} {}",
            t.level.name_zh(),
            s.name,
            t.param.name_zh(),
            t.evidence.value,
            unit,
            t.evidence.class,
            s.target,
            f.multiple
                .map(|m| format!("超标{m:.1}倍"))
                .unwrap_or_default(),
            short_time(t.evidence.ts),
        ),
        State::Resolved => format!(
            "【riverwatch预警解除】{}{}恢复达标({}类目标) {}",
            s.name,
            t.param.name_zh(),
            s.target,
            short_time(t.evidence.ts),
        ),
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Evidence, Level, Rule};
    use crate::domain::gb3838::Class;
    use crate::domain::network::fixtures::network;
    use chrono::TimeZone;

    fn firing() -> Transition {
        let since = Utc.with_ymd_and_hms(2026, 11, 25, 22, 0, 0).unwrap();
        let ev = Evidence {
            ts: Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(),
            value: 1.2,
            class: Class::IV,
        };
        Transition {
            station: "shijiao".into(),
            rule: Rule::Exceedance,
            param: Param::Nh3n,
            state: State::Firing,
            level: Level::Yellow,
            alert_id: "shijiao-exceedance-nh3n-20261125T220000Z".into(),
            since,
            evidence: ev,
            peak: ev,
        }
    }

    #[test]
    fn firing_email_golden() {
        let e = email(&firing(), &network()).unwrap();
        assert_eq!(
            e.subject,
            "【riverwatch 黄色预警】北江 shijiao section 氨氮 1.2 mg/L 劣于Ⅱ类目标 | Yellow alert: nh3n 1.2 mg/L worse than class II target at shijiao"
        );
        let expected = "\
【水质预警 · 黄色】已触发
断面：shijiao section（shijiao）· 北江 · 清远市生态环境局运维 · 跨界断面
项目：氨氮（nh3n）
监测值：1.2 mg/L（Ⅳ类）
水质目标：Ⅱ类（限值 ≤ 0.5 mg/L）
超标倍数：1.4
监测时间：2026-11-26 10:00（北京时间）
首次超标：2026-11-26 06:00（北京时间）
告警编号：shijiao-exceedance-nh3n-20261125T220000Z
说明：本预警由 riverwatch 自动监测预警系统发出，不是政府发布的突发环境事件预警。

[Water-quality alert · YELLOW] FIRING
Station: shijiao section (shijiao) · river 北江 (bei) · operated by qingyuan · boundary section
Parameter: ammonia nitrogen (NH3-N) (nh3n)
Value: 1.2 mg/L (class IV)
Target: class II (limit ≤ 0.5 mg/L)
Exceedance multiple: 1.4
Reading time: 2026-11-26 10:00 UTC+8
First exceedance: 2026-11-26 06:00 UTC+8
Alert id: shijiao-exceedance-nh3n-20261125T220000Z
Note: issued automatically by riverwatch; this is not a government emergency warning.
";
        assert_eq!(e.body, expected);
    }

    #[test]
    fn resolved_email_reports_peak_and_episode() {
        let mut t = firing();
        t.state = State::Resolved;
        t.peak.value = 1.8;
        t.evidence = Evidence {
            ts: Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            value: 0.3,
            class: Class::II,
        };
        let e = email(&t, &network()).unwrap();
        assert!(e
            .subject
            .starts_with("【riverwatch 预警解除】北江 shijiao section 氨氮 恢复达标"));
        for line in [
            "最新监测值：0.3 mg/L（Ⅱ类）",
            "期间最高：1.8 mg/L（Ⅳ类，2026-11-26 10:00）",
            "最高超标倍数：2.6",
            "持续时间：2026-11-26 06:00 至 2026-11-26 18:00（北京时间）",
            "Peak exceedance multiple: 2.6",
        ] {
            assert!(e.body.contains(line), "missing {line:?} in\n{}", e.body);
        }
    }

    #[test]
    fn sms_golden_and_short() {
        let text = sms(&firing(), &network()).unwrap();
        assert_eq!(
            text,
            "【riverwatch黄色预警】shijiao section氨氮1.2mg/L(Ⅳ类)劣于Ⅱ类目标超标1.4倍 11-26 10:00"
        );
        assert!(text.chars().count() <= 70, "{} chars", text.chars().count());
    }

    #[test]
    fn ph_and_do_have_no_multiple() {
        let mut t = firing();
        t.param = Param::Do;
        t.evidence.value = 1.5;
        t.evidence.class = Class::WORSE_THAN_V;
        let e = email(&t, &network()).unwrap();
        assert!(
            e.body.contains("水质目标：Ⅱ类（限值 ≥ 6 mg/L）"),
            "{}",
            e.body
        );
        assert!(!e.body.contains("超标倍数"));
        t.param = Param::Ph;
        let e = email(&t, &network()).unwrap();
        assert!(e.body.contains("（限值 6–9）"), "{}", e.body);
    }
}
