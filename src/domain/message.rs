//! Renders alert transitions into the texts duty officers read: an email (Chinese first, then
//! English) and a short SMS, for every rule and every kind of transition (fired, escalated,
//! reminder, resolved).
//!
//! Fed by [`Transition`]s and the network (names, targets, routing); feeds the notifier, which
//! only delivers, and the `message` field of stored alerts. Pure, so every message is covered
//! by golden tests. Times are shown in China Standard Time (UTC+8), the time the bureaus work
//! in.

pub mod incident;

use super::alert::{Context, Kind, Rule, Transition};
use super::gb3838::{self, Class, LimitValue};
use super::hj212::cst;
use super::network::{Network, Station};
use super::param::Param;
use chrono::{DateTime, Utc};

/// A rendered email, before addressing.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub subject: String,
    pub body: String,
}

/// One notification's words in every form a channel uses: the email's subject and body (for
/// email and channels with room for detail), and the SMS text (for phones and chat robots
/// that want one short line).
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub subject: String,
    pub body: String,
    /// Chinese, at most 70 characters (one SMS).
    pub short: String,
}

/// Renders [`email`] and [`sms`] together; `None` when the station is not in the network.
pub fn text(t: &Transition, net: &Network) -> Option<Text> {
    let Email { subject, body } = email(t, net)?;
    Some(Text {
        subject,
        body,
        short: sms(t, net)?,
    })
}

fn local(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn short(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst()).format("%m-%d %H:%M").to_string()
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

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The rule's name in both languages.
fn rule_name(rule: Rule) -> (&'static str, &'static str) {
    match rule {
        Rule::Exceedance => ("超标", "exceedance"),
        Rule::Class => ("水质类别", "class"),
        Rule::Trend => ("趋势预警", "trend"),
        Rule::Shift => ("突变预警", "shift"),
        Rule::Rate => ("快速变化", "rate of change"),
        Rule::StationFault => ("站点故障", "station fault"),
        Rule::Offline => ("站点离线", "offline"),
        Rule::Upstream => ("上游来水预警", "upstream warning"),
    }
}

/// Everything a message says, looked up once.
struct Facts<'a> {
    t: &'a Transition,
    station: &'a Station,
    river: &'a str,
    operator: &'a str,
    net: &'a Network,
}

impl Facts<'_> {
    fn unit(&self) -> &'static str {
        self.t.param.map_or("", |p| p.unit().symbol())
    }

    fn limit(&self) -> Option<LimitValue> {
        let p = self.t.param?;
        gb3838::limits(p, self.station.water_body).map(|l| l.limit(self.station.target))
    }

    fn multiple(&self, value: f64) -> Option<f64> {
        gb3838::exceedance(
            self.t.param?,
            self.station.water_body,
            value,
            self.station.target,
        )
    }

    fn station_name(&self, id: &str) -> String {
        self.net
            .station(id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    }

    fn value(&self, v: f64, class: Option<Class>) -> (String, String) {
        let shown = with_unit(v, self.unit());
        match class {
            Some(c) => (
                format!("{shown}（{c}类）"),
                format!("{shown} (class {})", c.roman_en()),
            ),
            None => (shown.clone(), shown),
        }
    }

    /// What happened, for the subject: (Chinese, English).
    fn what(&self) -> (String, String) {
        let t = self.t;
        let target = self.station.target;
        let p_zh = t.param.map_or("", Param::name_zh);
        let key = t.param.map_or("", Param::key);
        let unit = self.unit();
        if t.kind == Kind::Resolved {
            let (zh, en) = rule_name(t.rule);
            return match t.rule {
                Rule::Exceedance => (
                    format!("{p_zh} 恢复达标（{target}类目标）"),
                    format!("{key} back within class {} target", target.roman_en()),
                ),
                Rule::Offline => ("站点恢复上报数据".into(), "station reporting again".into()),
                _ => (
                    format!("{p_zh}{zh}已解除"),
                    format!("{key} {en} cleared").trim().to_string(),
                ),
            };
        }
        let v = t.evidence.value;
        let up_word = |up: bool| {
            if up {
                ("上升", "rising")
            } else {
                ("下降", "falling")
            }
        };
        match (&t.rule, &t.context) {
            (Rule::Exceedance, _) => (
                format!("{p_zh} {} 劣于{target}类目标", with_unit(v, unit)),
                format!(
                    "{key} {} worse than class {} target",
                    with_unit(v, unit),
                    target.roman_en()
                ),
            ),
            (Rule::Class, _) => {
                let c = t.evidence.class.unwrap_or(Class::WORSE_THAN_V);
                (
                    format!("水质{c}类 劣于{target}类目标"),
                    format!(
                        "overall class {} worse than class {} target",
                        c.roman_en(),
                        target.roman_en()
                    ),
                )
            }
            (Rule::Trend, Context::Trend { crossing, .. }) => {
                let up = t.param.is_none_or(|p| p != Param::Do);
                let (zh, en) = up_word(up);
                (
                    format!(
                        "{p_zh} 呈{zh}趋势，预计 {} 超过{target}类限值",
                        short(*crossing)
                    ),
                    format!(
                        "{key} {en}, projected to pass the class {} limit at {} UTC+8",
                        target.roman_en(),
                        short(*crossing)
                    ),
                )
            }
            (Rule::Shift, Context::Shift { up, chart }) => {
                let (zh, en) = if *up {
                    ("升高", "up")
                } else {
                    ("降低", "down")
                };
                (
                    format!("{p_zh} 较基线明显{zh}（{chart}）"),
                    format!("{key} shifted {en} from its baseline ({chart})"),
                )
            }
            (Rule::Rate, Context::Rate { params, .. })
                if *params >= 2 && t.level == super::alert::Level::Red =>
            {
                (
                    format!("{p_zh}等{params}项指标同时突变，上游已先出现"),
                    format!(
                        "{key} and {} more changing suddenly, as upstream before",
                        params - 1
                    ),
                )
            }
            (Rule::Rate, Context::Rate { per_hour, .. }) => {
                let (zh, en) = up_word(*per_hour >= 0.0);
                (
                    format!(
                        "{p_zh} 快速{zh}（每小时 {}）",
                        with_unit(round3(per_hour.abs()), unit)
                    ),
                    format!(
                        "{key} {en} fast ({} per hour)",
                        with_unit(round3(per_hour.abs()), unit)
                    ),
                )
            }
            (Rule::StationFault, _) => (
                format!("{p_zh} 仪器或数据异常"),
                format!("{key} instrument or data fault"),
            ),
            (Rule::Offline, Context::Offline { last }) => (
                format!("站点离线（最后数据 {}）", short(*last)),
                format!("station offline (last reading {} UTC+8)", short(*last)),
            ),
            (Rule::Upstream, Context::Upstream { from, arrival, .. }) => (
                format!(
                    "上游{}{p_zh}超标，预计 {} 到达",
                    self.station_name(from),
                    short(*arrival)
                ),
                format!(
                    "upstream {key} exceedance at {from}, expected here at {} UTC+8",
                    short(*arrival)
                ),
            ),
            (rule, _) => {
                let (zh, en) = rule_name(*rule);
                (format!("{p_zh}{zh}"), format!("{key} {en}"))
            }
        }
    }

    /// Rule-specific lines of the body: (Chinese, English), each line ending in a newline.
    fn details(&self) -> (String, String) {
        let t = self.t;
        let target = self.station.target;
        let unit = self.unit();
        let (mut zh, mut en) = (String::new(), String::new());
        let limit = self.limit();
        let target_lines = |zh: &mut String, en: &mut String| {
            let lz = limit
                .map(|l| format!("（限值 {}）", limit_text(l, unit)))
                .unwrap_or_default();
            let le = limit
                .map(|l| format!(" (limit {})", limit_text(l, unit)))
                .unwrap_or_default();
            zh.push_str(&format!("水质目标：{target}类{lz}\n"));
            en.push_str(&format!("Target: class {}{le}\n", target.roman_en()));
        };
        let ev = t.evidence;
        let episode = |zh: &mut String, en: &mut String| {
            zh.push_str(&format!(
                "持续时间：{} 至 {}（北京时间）\n",
                local(t.since),
                local(ev.ts)
            ));
            en.push_str(&format!(
                "Episode: {} to {} UTC+8\n",
                local(t.since),
                local(ev.ts)
            ));
        };
        match (t.kind, t.rule, &t.context) {
            (Kind::Resolved, Rule::Exceedance, _) => {
                let (vz, ve) = self.value(ev.value, ev.class);
                let (pz, pe) = self.value(t.peak.value, t.peak.class);
                zh.push_str(&format!("最新监测值：{vz}\n"));
                en.push_str(&format!("Latest value: {ve}\n"));
                target_lines(&mut zh, &mut en);
                zh.push_str(&format!(
                    "期间最高：{pz}，{}（北京时间）\n",
                    local(t.peak.ts)
                ));
                en.push_str(&format!("Peak: {pe}, {} UTC+8\n", local(t.peak.ts)));
                if let Some(m) = self.multiple(t.peak.value) {
                    zh.push_str(&format!("最高超标倍数：{m:.1}\n"));
                    en.push_str(&format!("Peak exceedance multiple: {m:.1}\n"));
                }
                episode(&mut zh, &mut en);
                return (zh, en);
            }
            (Kind::Resolved, _, _) => {
                episode(&mut zh, &mut en);
                return (zh, en);
            }
            (_, Rule::Exceedance, _) | (_, Rule::Class, _) => {
                let (vz, ve) = if t.rule == Rule::Class {
                    let c = ev.class.unwrap_or(Class::WORSE_THAN_V);
                    (format!("{c}类"), format!("class {}", c.roman_en()))
                } else {
                    self.value(ev.value, ev.class)
                };
                zh.push_str(&format!("监测值：{vz}\n"));
                en.push_str(&format!("Value: {ve}\n"));
                target_lines(&mut zh, &mut en);
                if let Some(m) = self
                    .multiple(ev.value)
                    .filter(|_| t.rule == Rule::Exceedance)
                {
                    zh.push_str(&format!("超标倍数：{m:.1}\n"));
                    en.push_str(&format!("Exceedance multiple: {m:.1}\n"));
                }
                if let Context::Suspect { test } = &t.context {
                    // Judged all the same: QC must never hide pollution; the officer verifies.
                    zh.push_str(&format!(
                        "质控提示：该值被质控判为可疑（{}），仍按实测值评价，请核实\n",
                        test.key()
                    ));
                    en.push_str(&format!(
                        "QC note: suspect by {}; judged as measured, please verify\n",
                        test.key()
                    ));
                }
            }
            (
                _,
                Rule::Trend,
                Context::Trend {
                    crossing,
                    slope_per_day,
                    p,
                },
            ) => {
                zh.push_str(&format!("最新监测值：{}\n", with_unit(ev.value, unit)));
                en.push_str(&format!("Latest value: {}\n", with_unit(ev.value, unit)));
                target_lines(&mut zh, &mut en);
                zh.push_str(&format!(
                    "趋势：Sen斜率 {}/日，Mann-Kendall p = {:.4}\n",
                    with_unit(round3(*slope_per_day), unit),
                    p
                ));
                en.push_str(&format!(
                    "Trend: Sen slope {} per day, Mann-Kendall p = {:.4}\n",
                    with_unit(round3(*slope_per_day), unit),
                    p
                ));
                zh.push_str(&format!("预计超标时间：{}（北京时间）\n", local(*crossing)));
                en.push_str(&format!(
                    "Projected exceedance: {} UTC+8\n",
                    local(*crossing)
                ));
            }
            (
                _,
                Rule::Upstream,
                Context::Upstream {
                    from,
                    from_alert,
                    arrival,
                    ..
                },
            ) => {
                zh.push_str(&format!(
                    "上游断面：{}（{from}），告警 {from_alert}\n",
                    self.station_name(from)
                ));
                en.push_str(&format!(
                    "Upstream station: {} ({from}), alert {from_alert}\n",
                    self.station_name(from)
                ));
                zh.push_str(&format!(
                    "上游监测值：{}\n",
                    self.value(ev.value, ev.class).0
                ));
                en.push_str(&format!(
                    "Upstream value: {}\n",
                    self.value(ev.value, ev.class).1
                ));
                zh.push_str(&format!("预计到达时间：{}（北京时间）\n", local(*arrival)));
                en.push_str(&format!("Expected arrival: {} UTC+8\n", local(*arrival)));
            }
            (_, Rule::StationFault, Context::Fault { reason }) => {
                zh.push_str(&format!(
                    "监测值：{}\n原因：{reason}\n",
                    with_unit(ev.value, unit)
                ));
                en.push_str(&format!(
                    "Value: {}\nReason: {reason}\n",
                    with_unit(ev.value, unit)
                ));
            }
            (_, Rule::Offline, Context::Offline { last }) => {
                zh.push_str(&format!(
                    "最后数据到达：{}（北京时间）\n应上报周期：{} 分钟\n",
                    local(*last),
                    self.station.cadence.as_secs() / 60
                ));
                en.push_str(&format!(
                    "Last reading received: {} UTC+8\nExpected every {} min\n",
                    local(*last),
                    self.station.cadence.as_secs() / 60
                ));
            }
            _ => {
                zh.push_str(&format!("监测值：{}\n", with_unit(ev.value, unit)));
                en.push_str(&format!("Value: {}\n", with_unit(ev.value, unit)));
            }
        }
        (zh, en)
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn facts<'a>(t: &'a Transition, net: &'a Network) -> Option<Facts<'a>> {
    let station = net.station(&t.station)?;
    Some(Facts {
        t,
        station,
        river: net.river(&station.river).map_or("", |r| r.name.as_str()),
        operator: net.bureau(&station.city).map_or("", |b| b.name.as_str()),
        net,
    })
}

/// Renders the email for one transition; `None` when the station is not in the network
/// (never the case for transitions the daemon produced from its own config).
pub fn email(t: &Transition, net: &Network) -> Option<Email> {
    let f = facts(t, net)?;
    let s = f.station;
    let level_zh = t.level.name_zh();
    let level_en = t.level.key();
    let (what_zh, what_en) = f.what();
    let subject = match t.kind {
        Kind::Fired => format!("【riverwatch {level_zh}预警】{} {} {what_zh} | {} alert: {what_en} at {}", f.river, s.name, capitalise(level_en), s.id),
        Kind::Escalated => format!("【riverwatch 升级为{level_zh}预警】{} {} {what_zh} | Escalated to {level_en}: {what_en} at {}", f.river, s.name, s.id),
        Kind::Reminder => format!("【riverwatch {level_zh}预警·持续】{} {} {what_zh} | Still firing ({level_en}): {what_en} at {}", f.river, s.name, s.id),
        Kind::Resolved => format!("【riverwatch 预警解除】{} {} {what_zh} | Resolved: {what_en} at {}", f.river, s.name, s.id),
    };
    let (head_zh, head_en) = match t.kind {
        Kind::Fired => (
            format!("【水质预警 · {level_zh}】已触发"),
            format!("[Water-quality alert · {}] FIRING", level_en.to_uppercase()),
        ),
        Kind::Escalated => (
            format!("【水质预警 · {level_zh}】已升级"),
            format!(
                "[Water-quality alert · {}] ESCALATED",
                level_en.to_uppercase()
            ),
        ),
        Kind::Reminder => (
            format!("【水质预警 · {level_zh}】持续中"),
            format!(
                "[Water-quality alert · {}] STILL FIRING",
                level_en.to_uppercase()
            ),
        ),
        Kind::Resolved => (
            format!("【水质预警解除 · 原{level_zh}】"),
            format!("[Water-quality alert RESOLVED · was {level_en}]"),
        ),
    };
    let (rule_zh, rule_en) = rule_name(t.rule);
    let boundary_zh = if s.boundary { " · 跨界断面" } else { "" };
    let boundary_en = if s.boundary {
        " · boundary section"
    } else {
        ""
    };
    let (param_zh, param_en) = match t.param {
        Some(p) => (
            format!("项目：{}（{}）\n", p.name_zh(), p.key()),
            format!("Parameter: {} ({})\n", p.name_en(), p.key()),
        ),
        None => (String::new(), String::new()),
    };
    let (detail_zh, detail_en) = f.details();
    let (first_zh, first_en) = if t.kind == Kind::Resolved {
        (String::new(), String::new())
    } else {
        (
            format!("首次触发：{}（北京时间）\n", local(t.since)),
            format!("First triggered: {} UTC+8\n", local(t.since)),
        )
    };
    let (follows_zh, follows_en) = match &t.follows {
        Some((station, alert)) => (
            format!(
                "关联上游告警：{}（{station}）{alert}\n",
                f.station_name(station)
            ),
            format!("Follows upstream alert: {alert} at {station}\n"),
        ),
        None => (String::new(), String::new()),
    };
    let body = format!(
        "{head_zh}\n\
         断面：{name}（{id}）· {river} · {operator}运维{boundary_zh}\n\
         {param_zh}\
         规则：{rule_zh}（{rule}）\n\
         {detail_zh}\
         监测时间：{ts}（北京时间）\n\
         {first_zh}\
         告警编号：{alert_id}\n\
         {follows_zh}\
         说明：本预警由 riverwatch 自动监测预警系统发出，不是政府发布的突发环境事件预警。\n\
         \n\
         {head_en}\n\
         Station: {name} ({id}) · river {river} ({river_id}) · operated by {city}{boundary_en}\n\
         {param_en}\
         Rule: {rule_en} ({rule})\n\
         {detail_en}\
         Reading time: {ts} UTC+8\n\
         {first_en}\
         Alert id: {alert_id}\n\
         {follows_en}\
         Note: issued automatically by riverwatch; this is not a government emergency warning.\n",
        name = s.name,
        id = s.id,
        river = f.river,
        river_id = s.river,
        operator = f.operator,
        city = s.city,
        rule = t.rule.key(),
        ts = local(t.evidence.ts),
        alert_id = t.alert_id,
    );
    Some(Email { subject, body })
}

/// The most characters one SMS carries in Chinese (UCS-2): longer texts are split by
/// gateways into several messages that may arrive out of order.
pub const SMS_LIMIT: usize = 70;

/// The parts of an SMS, most important first; [`fit`] drops or shortens the least important
/// until the text fits one message.
struct SmsParts {
    /// "【riverwatch黄色预警】", and the short form "【黄色预警】".
    head: (String, String),
    station: String,
    what: String,
    /// "超标1.4倍": useful, not essential.
    extra: String,
    time: String,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Assembles the SMS, shortening deliberately until it fits [`SMS_LIMIT`]: first the short
/// head, then without the extra detail, then the station name cut to 6 characters, then
/// without the time (the email has it), and only last the description cut with "…".
fn fit(p: SmsParts) -> String {
    let join = |head: &str, station: &str, extra: &str, time: &str, what: &str| {
        let time = if time.is_empty() {
            String::new()
        } else {
            format!(" {time}")
        };
        format!("{head}{station}{what}{extra}{time}")
    };
    let cut = |s: &str, n: usize| -> String {
        if chars(s) <= n {
            s.to_string()
        } else {
            s.chars().take(n.saturating_sub(1)).chain(['…']).collect()
        }
    };
    let station_short = cut(&p.station, 6);
    let attempts = [
        join(&p.head.0, &p.station, &p.extra, &p.time, &p.what),
        join(&p.head.1, &p.station, &p.extra, &p.time, &p.what),
        join(&p.head.1, &p.station, "", &p.time, &p.what),
        join(&p.head.1, &station_short, "", &p.time, &p.what),
        join(&p.head.1, &station_short, "", "", &p.what),
    ];
    if let Some(text) = attempts.iter().find(|t| chars(t) <= SMS_LIMIT) {
        return text.clone();
    }
    let room = SMS_LIMIT.saturating_sub(chars(&p.head.1) + chars(&station_short));
    join(&p.head.1, &station_short, "", "", &cut(&p.what, room))
}

/// Renders the SMS text: Chinese only, always within one 70-character message (see [`fit`]
/// for how it is shortened when the station name or the description is long).
pub fn sms(t: &Transition, net: &Network) -> Option<String> {
    let f = facts(t, net)?;
    let s = f.station;
    let (what, _) = f.what();
    let level = t.level.name_zh();
    let (head, what, extra) = match t.kind {
        Kind::Resolved => (
            (
                "【riverwatch预警解除】".to_string(),
                "【预警解除】".to_string(),
            ),
            what,
            String::new(),
        ),
        Kind::Escalated => (
            (
                format!("【riverwatch升级{level}预警】"),
                format!("【升级{level}预警】"),
            ),
            what,
            String::new(),
        ),
        _ if t.rule == Rule::Exceedance => {
            let class = t
                .evidence
                .class
                .map(|c| format!("({c}类)"))
                .unwrap_or_default();
            let what = format!(
                "{}{}{}{class}劣于{}类目标",
                t.param.map_or("", Param::name_zh),
                t.evidence.value,
                f.unit().replace(' ', ""),
                s.target
            );
            let extra = f
                .multiple(t.evidence.value)
                .map(|m| format!("超标{m:.1}倍"))
                .unwrap_or_default();
            (
                (
                    format!("【riverwatch{level}预警】"),
                    format!("【{level}预警】"),
                ),
                what,
                extra,
            )
        }
        _ => (
            (
                format!("【riverwatch{level}预警】"),
                format!("【{level}预警】"),
            ),
            what,
            String::new(),
        ),
    };
    Some(fit(SmsParts {
        head,
        station: s.name.clone(),
        what,
        extra,
        time: short(t.evidence.ts),
    }))
}

// Crate-visible for its golden transition, which notify's tests render too.
#[cfg(test)]
pub(crate) mod tests;
