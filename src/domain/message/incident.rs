//! Renders incident events into what both bureaus read: an email (Chinese first, then
//! English) and one SMS, for each event kind — opened (with every downstream station's
//! expected arrival window), escalated, spread, arrival confirmed or not, ended (peak,
//! duration, stations).
//!
//! Fed by `incident::IncidentEvent`s and the network (display names); feeds the notifier and
//! the `message` field of `wq_incident`. Pure; times in China Standard Time (UTC+8), the time
//! the bureaus work in, ids included.

use super::{Text, SMS_LIMIT};
use crate::domain::gb3838::Class;
use crate::domain::hj212::cst;
use crate::domain::incident::{Arrival, EventKind, Incident, IncidentEvent};
use crate::domain::network::Network;
use chrono::{DateTime, Utc};
use std::fmt::Write;

fn local(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A window as `11-28 14:00–18:00`, or with both dates when it spans midnight.
fn window(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let (a, b) = (from.with_timezone(&cst()), to.with_timezone(&cst()));
    if a.date_naive() == b.date_naive() {
        format!("{}–{}", a.format("%m-%d %H:%M"), b.format("%H:%M"))
    } else {
        format!("{}–{}", a.format("%m-%d %H:%M"), b.format("%m-%d %H:%M"))
    }
}

/// The expected-arrival window at a reach station, as [`window`] writes it.
fn expected_at(i: &Incident, station: &str) -> String {
    i.reach
        .iter()
        .find(|r| r.station == station)
        .map(|r| window(r.earliest, r.latest))
        .unwrap_or_default()
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

struct Names<'a> {
    net: &'a Network,
    i: &'a Incident,
}

impl Names<'_> {
    fn station(&self, id: &str) -> String {
        self.net
            .station(id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    }

    fn river(&self) -> String {
        self.net
            .rivers
            .iter()
            .find(|r| r.id == self.i.river)
            .map_or_else(|| self.i.river.clone(), |r| r.name.clone())
    }

    fn value(&self, v: f64) -> String {
        let unit = self.i.param.unit().symbol();
        if unit.is_empty() {
            format!("{}", round(v))
        } else {
            format!("{} {unit}", round(v))
        }
    }

    fn class(c: Option<Class>) -> (String, String) {
        c.map_or_else(
            || (String::new(), String::new()),
            |c| {
                (
                    format!("（{}类）", c.roman()),
                    format!(" (class {})", c.roman_en()),
                )
            },
        )
    }

    fn reached(&self) -> (String, String) {
        let names: Vec<String> = self
            .i
            .stations_reached()
            .iter()
            .map(|s| self.station(s))
            .collect();
        (names.join("、"), names.join(", "))
    }

    /// The target-class limit of the incident's parameter at `station`: (Chinese, English,
    /// SMS), e.g. ("Ⅱ类限值 ≤ 0.5 mg/L", "class II limit ≤ 0.5 mg/L", "Ⅱ类限值0.5").
    fn limit(&self, station: &str) -> (String, String, String) {
        let Some(s) = self.net.station(station) else {
            return Default::default();
        };
        let Some(limits) = crate::domain::gb3838::limits(self.i.param, s.water_body) else {
            return Default::default();
        };
        let unit = self.i.param.unit().symbol();
        let (sign, v) = match limits.limit(s.target) {
            crate::domain::gb3838::LimitValue::AtMost(v) => ("≤", format!("{}", round(v))),
            crate::domain::gb3838::LimitValue::AtLeast(v) => ("≥", format!("{}", round(v))),
            crate::domain::gb3838::LimitValue::Between(lo, hi) => ("", format!("{lo}–{hi}")),
        };
        let with_unit = if unit.is_empty() {
            v.clone()
        } else {
            format!("{v} {unit}")
        };
        (
            format!("{}类限值 {sign} {with_unit}", s.target.roman()),
            format!("class {} limit {sign} {with_unit}", s.target.roman_en()),
            format!("{}类限值{v}", s.target.roman()),
        )
    }

    /// The names of the bureaus told, in configured order.
    fn bureaus(&self) -> Vec<&str> {
        self.net
            .incident_recipients(self.i)
            .iter()
            .map(|b| b.name.as_str())
            .collect()
    }
}

/// What one event says: the subject's Chinese and English parts, the Chinese and English body
/// lines, and the SMS part.
struct Said {
    what_zh: String,
    what_en: String,
    zh: String,
    en: String,
    sms: String,
}

/// Reading time as `HH:MM` in UTC+8, with the date when it is not `same_day_as`'s.
fn clock(ts: DateTime<Utc>, same_day_as: DateTime<Utc>) -> String {
    let (a, b) = (ts.with_timezone(&cst()), same_day_as.with_timezone(&cst()));
    if a.date_naive() == b.date_naive() {
        a.format("%H:%M").to_string()
    } else {
        a.format("%m-%d %H:%M").to_string()
    }
}

fn said(e: &IncidentEvent, n: &Names) -> Said {
    let i = &e.incident;
    let param_zh = i.param.name_zh();
    let param_en = i.param.name_en();
    let origin = n.station(&i.origin);
    let (mut zh, mut en) = (String::new(), String::new());
    match &e.kind {
        EventKind::Opened => {
            let (cz, ce) = Names::class(i.peak.class);
            let (lz, le, _) = n.limit(&i.origin);
            let _ = writeln!(
                zh,
                "事件开始：{origin}{param_zh}超标（{lz}），首个超标读数 {}（北京时间）；{} 为 {}{cz}",
                local(i.since),
                local(i.peak.ts),
                n.value(i.peak.value)
            );
            let _ = writeln!(
                en,
                "Opened: {param_en} exceeds the {le} at {origin}: first exceeding reading {} UTC+8; {} at {} UTC+8{ce}",
                local(i.since),
                n.value(i.peak.value),
                local(i.peak.ts)
            );
            let mut first = None;
            for r in &i.reach {
                let name = n.station(&r.station);
                let _ = writeln!(
                    zh,
                    "预计到达 {name}：{}（北京时间）",
                    window(r.earliest, r.latest)
                );
                let _ = writeln!(
                    en,
                    "Expected at {name} around {} UTC+8",
                    window(r.earliest, r.latest)
                );
                first.get_or_insert((name, window(r.earliest, r.latest)));
            }
            let sms = match &first {
                Some((name, w)) => format!("{origin}{param_zh}超标，预计{w}到达{name}"),
                None => format!("{origin}{param_zh}超标{}", n.value(i.peak.value)),
            };
            Said {
                what_zh: format!("{origin}{param_zh}超标"),
                what_en: format!("opened at {origin}"),
                zh,
                en,
                sms,
            }
        }
        EventKind::Escalated => {
            let at = n.station(&i.peak.station);
            let (cz, ce) = Names::class(i.peak.class);
            let _ = writeln!(
                zh,
                "事件升级为{}：{at}{param_zh} {}{cz}",
                i.level.name_zh(),
                n.value(i.peak.value)
            );
            let _ = writeln!(
                en,
                "Escalated to {}: {param_en} at {at} {}{ce}",
                i.level.key(),
                n.value(i.peak.value)
            );
            Said {
                what_zh: format!("升级为{}", i.level.name_zh()),
                what_en: format!("escalated to {}", i.level.key()),
                sms: format!(
                    "{at}{param_zh}{}为{}，升级为{}",
                    clock(i.peak.ts, e.ts),
                    n.value(i.peak.value),
                    i.level.name_zh()
                ),
                zh,
                en,
            }
        }
        EventKind::Spread { station } => {
            let at = n.station(station);
            let (lz, le, ls) = n.limit(station);
            // The exceedance that spread it, with its reading; the event's own time without.
            let (ts, value, class) = e.cause.as_ref().map_or((e.ts, None, None), |t| {
                (t.evidence.ts, Some(t.evidence.value), t.evidence.class)
            });
            let (cz, ce) = Names::class(class);
            let (shown_zh, shown_en, shown_sms) = value.map_or_else(Default::default, |v| {
                let v = n.value(v);
                (format!(" {v}{cz}"), format!(": {v}{ce}"), format!("为{v}"))
            });
            let _ = writeln!(
                zh,
                "污染扩散：{at}{param_zh}超标（{lz}），{}（北京时间）{shown_zh}",
                local(ts)
            );
            let _ = writeln!(
                en,
                "Spread: {param_en} exceeds the {le} at {at} at {} UTC+8{shown_en}",
                local(ts)
            );
            Said {
                what_zh: format!("扩散至{at}"),
                what_en: format!("spread to {at}"),
                sms: format!(
                    "{param_zh}污染扩散至{at}，{}{shown_sms}超标（{ls}）",
                    clock(ts, e.ts)
                ),
                zh,
                en,
            }
        }
        EventKind::ArrivalConfirmed { station, ts, value } => {
            let at = n.station(station);
            let expected = expected_at(i, station);
            let (lz, le, ls) = n.limit(station);
            let base = i
                .reach
                .iter()
                .find(|r| &r.station == station)
                .and_then(|r| r.baseline);
            let (from_zh, from_en) = base.map_or_else(Default::default, |b| {
                (
                    format!("（此前 {}）", n.value(b)),
                    format!(" (from {})", n.value(b)),
                )
            });
            let _ = writeln!(
                zh,
                "到达确认：{at} {}（北京时间）{param_zh} 升至 {}{from_zh}，{lz}；预计时段 {expected}",
                local(*ts),
                n.value(*value)
            );
            let _ = writeln!(
                en,
                "Arrival confirmed at {at}: {param_en} rose to {}{from_en} at {} UTC+8 ({le}; expected {expected})",
                n.value(*value),
                local(*ts)
            );
            Said {
                what_zh: format!("到达{at}已确认"),
                what_en: format!("arrival confirmed at {at}"),
                sms: format!(
                    "{origin}{param_zh}污染{}到达{at}，现{}（{ls}）",
                    clock(*ts, e.ts),
                    n.value(*value)
                ),
                zh,
                en,
            }
        }
        EventKind::ArrivalNotConfirmed { station } => {
            let at = n.station(station);
            let expected = expected_at(i, station);
            let _ = writeln!(
                zh,
                "未确认到达：{at}在预计时段 {expected} 内{param_zh}未见明显升高（可能已稀释或推迟）"
            );
            let _ = writeln!(
                en,
                "Arrival not confirmed at {at}: no clear rise of {param_en} within {expected} UTC+8 (diluted or delayed)"
            );
            Said {
                what_zh: format!("{at}未确认到达"),
                what_en: format!("arrival not confirmed at {at}"),
                sms: format!("{at}在预计{expected}内未见{origin}{param_zh}污染到达"),
                zh,
                en,
            }
        }
        EventKind::Ended => {
            let hours = (i.last_ts - i.since).num_minutes() as f64 / 60.0;
            let at = n.station(&i.peak.station);
            let (cz, ce) = Names::class(i.peak.class);
            let (rz, re) = n.reached();
            let _ = writeln!(
                zh,
                "事件结束：{}（北京时间），历时约 {:.0} 小时；峰值 {at} {}{cz}；涉及站点：{rz}",
                local(i.last_ts),
                hours,
                n.value(i.peak.value)
            );
            let _ = writeln!(
                en,
                "Ended at {} UTC+8 after about {hours:.0} h; peak {} at {at}{ce}; stations: {re}",
                local(i.last_ts),
                n.value(i.peak.value)
            );
            Said {
                what_zh: "事件结束".to_string(),
                what_en: "ended".to_string(),
                sms: format!(
                    "{origin}{param_zh}事件{}结束，峰值{}（{at}）",
                    clock(i.last_ts, i.since),
                    n.value(i.peak.value)
                ),
                zh,
                en,
            }
        }
    }
}

/// Renders one incident event; `None` when its origin is not in the network.
pub fn text(e: &IncidentEvent, net: &Network) -> Option<Text> {
    let i = &e.incident;
    net.station(&i.origin)?;
    let n = Names { net, i };
    let Said {
        what_zh,
        what_en,
        zh,
        en,
        sms,
    } = said(e, &n);
    let river = n.river();
    let level = i.level.name_zh();
    let param_zh = i.param.name_zh();
    let subject = format!(
        "【riverwatch{level}预警】{river}{param_zh}污染事件：{what_zh} | {} incident on {river}: {what_en}",
        i.param.name_en()
    );
    let mut body = String::new();
    let _ = writeln!(body, "{river} {param_zh}污染事件（{level}）");
    body.push_str(&zh);
    let (arrivals_zh, arrivals_en): (Vec<String>, Vec<String>) = i
        .reach
        .iter()
        .map(|r| {
            let (zh, en) = match r.arrival {
                Arrival::Pending => ("待确认", "pending"),
                Arrival::Confirmed { .. } => ("已到达", "arrived"),
                Arrival::NotConfirmed => ("未确认", "not confirmed"),
            };
            let name = n.station(&r.station);
            (format!("{name}{zh}"), format!("{name} {en}"))
        })
        .unzip();
    if !arrivals_zh.is_empty() {
        let _ = writeln!(body, "下游：{}", arrivals_zh.join("，"));
    }
    let told = n.bureaus();
    let _ = writeln!(body, "通报：{}", told.join("、"));
    // The alert behind the event, with every fact its own message gives (value, class,
    // target and limit, multiple), so the incident says no less than the alert would.
    let cause = e
        .cause
        .as_ref()
        .and_then(|t| super::email(t, net))
        .map(|m| m.body);
    let _ = writeln!(
        body,
        "事件编号：{}（起点首次超标 {} 北京时间）",
        i.id,
        local(i.since)
    );
    body.push('\n');
    let _ = writeln!(
        body,
        "Pollution incident on {river}: {} ({} level)",
        i.param.name_en(),
        i.level.key()
    );
    body.push_str(&en);
    if !arrivals_en.is_empty() {
        let _ = writeln!(body, "Downstream: {}", arrivals_en.join(", "));
    }
    let _ = writeln!(body, "Told: {}", told.join(", "));
    let _ = writeln!(
        body,
        "Incident {} (first exceeding reading at the origin {} UTC+8)",
        i.id,
        local(i.since)
    );
    if let Some(cause) = cause {
        let _ = write!(body, "\n——\n{cause}");
    }
    let head = format!("【riverwatch{level}】{river}");
    // An incident with nowhere downstream to warn is its alert: the alert's own SMS says it
    // best (value, class) within the limit.
    let alone = e.kind == EventKind::Opened && i.reach.is_empty();
    let mut short = match e.cause.as_ref().filter(|_| alone) {
        Some(t) => super::sms(t, net).unwrap_or_else(|| format!("{head}{sms}")),
        None => format!("{head}{sms}"),
    };
    if short.chars().count() > SMS_LIMIT {
        short = short.chars().take(SMS_LIMIT - 1).collect::<String>() + "…";
    }
    Some(Text {
        subject,
        body,
        short,
    })
}

#[cfg(test)]
mod tests;
