//! The words of a digest: the email station operators read (Chinese first, then English; the
//! stations' display names; times in UTC+8, the time the bureaus work in) and one short
//! Chinese SMS that says how many stations need a visit and points to the email.
//!
//! Fed by a released [`Digest`] and the network (names); feeds the judging task, which
//! addresses the [`Text`] to the bureau's operators through every channel. Pure, so every
//! wording is pinned by golden tests (`tests.rs` beside the model).

use super::{Cause, Digest, Line};
use crate::domain::alert::Rule;
use crate::domain::hj212::cst;
use crate::domain::message::{Text, SMS_LIMIT};
use crate::domain::network::Network;
use crate::domain::param::Param;
use chrono::{DateTime, Utc};

fn local(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A span of time in UTC+8, the end without its date when it is the same day:
/// (`2026-11-26 10:00`, `10:15`).
fn span(from: DateTime<Utc>, to: DateTime<Utc>) -> (String, String) {
    let (a, b) = (from.with_timezone(&cst()), to.with_timezone(&cst()));
    let end = if a.date_naive() == b.date_naive() {
        b.format("%H:%M").to_string()
    } else {
        local(to)
    };
    (local(from), end)
}

/// A count of stations in English.
fn stations_en(n: usize) -> String {
    if n == 1 {
        "1 station".to_string()
    } else {
        format!("{n} stations")
    }
}

/// What went wrong, in both languages: (`设备故障`, `station fault`) or (`站点离线`, `offline`).
fn problem(rule: Rule) -> (&'static str, &'static str) {
    match rule {
        Rule::Offline => ("站点离线", "offline"),
        _ => ("设备故障", "station fault"),
    }
}

/// The digest's lines split into those still open and those cleared, each in network order
/// (then rule and parameter).
fn sorted<'a>(d: &'a Digest, net: &Network) -> (Vec<Line<'a>>, Vec<Line<'a>>) {
    let mut lines = d.lines();
    lines.sort_by_key(|l| {
        (
            net.position(l.station).unwrap_or(usize::MAX),
            l.station,
            l.rule,
            l.param,
            l.since,
        )
    });
    lines.into_iter().partition(|l| l.cleared.is_none())
}

fn distinct_stations(lines: &[Line<'_>]) -> usize {
    let mut ids: Vec<&str> = lines.iter().map(|l| l.station).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// The station and parameter a line is about: (`石角(界牌)（shijiao）pH值`,
/// `石角(界牌) (shijiao) pH (ph)`).
fn subject_of(line: &Line<'_>, net: &Network) -> (String, String) {
    let name = net
        .station(line.station)
        .map_or(line.station, |s| s.name.as_str());
    match line.param {
        Some(p) => (
            format!("{name}（{}）{}", line.station, p.name_zh()),
            format!("{name} ({}) {} ({})", line.station, p.name_en(), p.key()),
        ),
        None => (
            format!("{name}（{}）", line.station),
            format!("{name} ({})", line.station),
        ),
    }
}

/// One open problem: (`…：设备故障，自 … 起；instrument flag D`, `…: station fault since …`).
fn open_line(line: &Line<'_>, net: &Network) -> (String, String) {
    let (who_zh, who_en) = subject_of(line, net);
    let (what_zh, what_en) = problem(line.rule);
    let since = local(line.since);
    let (why_zh, why_en) = match line.cause {
        Cause::Fault { reason } => (format!("；{reason}"), format!("; {reason}")),
        Cause::Offline { last } => (
            format!("；最后数据 {}", local(*last)),
            format!("; last reading {} UTC+8", local(*last)),
        ),
        Cause::None => (String::new(), String::new()),
    };
    (
        format!("{who_zh}：{what_zh}，自 {since} 起{why_zh}"),
        format!("{who_en}: {what_en} since {since} UTC+8{why_en}"),
    )
}

/// One cleared problem: (`…：设备故障，… 至 …`, `…: station fault, … to … UTC+8`).
fn cleared_line(line: &Line<'_>, net: &Network) -> (String, String) {
    let (who_zh, who_en) = subject_of(line, net);
    let (what_zh, what_en) = problem(line.rule);
    let (from, to) = span(line.since, line.cleared.unwrap_or(line.since));
    (
        format!("{who_zh}：{what_zh}，{from} 至 {to}"),
        format!("{who_en}: {what_en}, {from} to {to} UTC+8"),
    )
}

/// What the open problems are, in a word: `设备故障`, `离线`, or both.
fn kinds_zh(open: &[Line<'_>]) -> &'static str {
    let offline = open.iter().any(|l| l.rule == Rule::Offline);
    let fault = open.iter().any(|l| l.rule != Rule::Offline);
    match (fault, offline) {
        (true, true) => "设备故障/离线",
        (false, true) => "离线",
        _ => "设备故障",
    }
}

/// Renders a digest for `net`'s bureau `d.bureau`: the email's subject and body and the SMS.
pub fn text(d: &Digest, net: &Network) -> Text {
    let bureau = net
        .bureau(&d.bureau)
        .map_or(d.bureau.as_str(), |b| b.name.as_str());
    let (open, cleared) = sorted(d, net);
    let n = distinct_stations(&open);

    let cleared_zh = if cleared.is_empty() {
        String::new()
    } else {
        format!("，{}项已恢复", cleared.len())
    };
    let cleared_en = if cleared.is_empty() {
        String::new()
    } else {
        format!(", {} cleared", cleared.len())
    };
    let subject = if open.is_empty() {
        format!(
            "【riverwatch 站点运维摘要】{bureau}：{}项设备故障/离线已恢复 | Station digest, {bureau}: {} cleared",
            cleared.len(),
            cleared.len()
        )
    } else {
        format!(
            "【riverwatch 站点运维摘要】{bureau}：{n}个站点{}{cleared_zh} | Station digest, {bureau}: {} with a fault or offline{cleared_en}",
            kinds_zh(&open),
            stations_en(n)
        )
    };

    let (from, to) = span(d.opened, d.released);
    let mut zh = format!("【站点运维摘要】{bureau}\n汇总时段：{from} 至 {to}（北京时间）\n");
    let mut en = format!("[Station digest] {bureau}\nPeriod: {from} to {to} UTC+8\n");
    if !open.is_empty() {
        zh.push_str(&format!("未恢复：{}项，涉及{n}个站点\n", open.len()));
        en.push_str(&format!(
            "Still open: {}, at {}\n",
            open.len(),
            stations_en(n)
        ));
        for (i, line) in open.iter().enumerate() {
            let (z, e) = open_line(line, net);
            zh.push_str(&format!("  {}. {z}\n", i + 1));
            en.push_str(&format!("  {}. {e}\n", i + 1));
        }
    }
    if !cleared.is_empty() {
        zh.push_str(&format!("已恢复：{}项\n", cleared.len()));
        en.push_str(&format!("Cleared: {}\n", cleared.len()));
        for (i, line) in cleared.iter().enumerate() {
            let (z, e) = cleared_line(line, net);
            zh.push_str(&format!("  {}. {z}\n", i + 1));
            en.push_str(&format!("  {}. {e}\n", i + 1));
        }
    }
    zh.push_str("说明：本摘要汇总站点设备故障与离线（数据级告警），由 riverwatch 自动发出，每个汇总时段最多一封；水质预警另行发送。\n");
    en.push_str("Note: station faults and offline stations (data level), issued automatically by riverwatch, at most one digest per period; water-quality alerts are sent separately.\n");

    Text {
        subject,
        body: format!("{zh}\n{en}"),
        short: sms(bureau, &open, cleared.len(), n, net),
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The SMS: the bureau, how many stations (or, for one problem, which), and a pointer to the
/// email; within [`SMS_LIMIT`] characters, the bureau's name shortened first if need be.
fn sms(bureau: &str, open: &[Line<'_>], cleared: usize, n: usize, net: &Network) -> String {
    let what = match open {
        [] => format!("{cleared}项设备故障/离线已恢复"),
        [one] => {
            let name = net
                .station(one.station)
                .map_or(one.station, |s| s.name.as_str());
            let param = one.param.map_or("", Param::name_zh);
            let word = match one.rule {
                Rule::Offline => "离线",
                _ => "设备故障",
            };
            let more = if cleared > 0 {
                format!("，{cleared}项已恢复")
            } else {
                String::new()
            };
            format!("{name}{param}{word}{more}")
        }
        _ => {
            let more = if cleared > 0 {
                format!("，{cleared}项已恢复")
            } else {
                String::new()
            };
            format!("{n}个站点{}{more}", kinds_zh(open))
        }
    };
    let head = "【riverwatch数据】";
    let tail = "，详见邮件";
    let full = format!("{head}{bureau}：{what}{tail}");
    if chars(&full) <= SMS_LIMIT {
        return full;
    }
    let room = SMS_LIMIT.saturating_sub(chars(head) + chars(&what) + chars(tail) + 1);
    if room >= 2 {
        let short: String = bureau.chars().take(room - 1).chain(['…']).collect();
        return format!("{head}{short}：{what}{tail}");
    }
    let all = format!("{head}{what}");
    if chars(&all) <= SMS_LIMIT {
        return all;
    }
    all.chars().take(SMS_LIMIT - 1).chain(['…']).collect()
}
