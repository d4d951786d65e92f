//! Renders alert transitions into the texts duty officers read: an email (Chinese first, then
//! the same content in English) and a short Chinese SMS, for every rule and every kind of
//! transition (fired, escalated, reminder, resolved).
//!
//! Fed by [`Transition`]s and the network (names, targets, routing); feeds the notifier, which
//! only delivers, and the `message` field of stored alerts (the email's subject). Pure, so every
//! message is covered by golden tests (`message/golden/`).
//!
//! What a message says, in this order: plain words first — what happened, the value with its
//! class against the target limit, what to expect — then the facts line by line, and last the
//! method (CUSUM, Hamed–Rao, Sen's slope) for whoever checks it. Every time is China Standard
//! Time (UTC+8), the time the bureaus work in, and so is the time in alert ids. Stations,
//! rivers and bureaus are named by their configured names in both languages; ids appear only
//! as references beside them. A time of day alone means the reading's own day; any other day
//! is written out.

pub mod escalation;
pub mod incident;

use super::alert::{Context, FaultReason, Kind, Level, Rule, Step, Transition};
use super::gb3838::{self, Class, LimitValue};
use super::hj212::cst;
use super::network::{Network, Station};
use super::param::{DataFlag, Param};
use super::qc::Test;
use super::trend::TrendTest;
use chrono::{DateTime, Duration, NaiveDate, Utc};

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

// Times, all in China Standard Time.

fn date(ts: DateTime<Utc>) -> NaiveDate {
    ts.with_timezone(&cst()).date_naive()
}

/// "2026-11-26 10:00".
fn full(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// "10:00".
fn hm(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst()).format("%H:%M").to_string()
}

/// "11月26日".
fn day_zh(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst()).format("%-m月%-d日").to_string()
}

/// "26 Nov".
fn day_en(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst()).format("%-d %b").to_string()
}

/// "11月26日 10:00".
fn when_zh(ts: DateTime<Utc>) -> String {
    format!("{} {}", day_zh(ts), hm(ts))
}

/// "26 Nov 10:00".
fn when_en(ts: DateTime<Utc>) -> String {
    format!("{} {}", day_en(ts), hm(ts))
}

/// "11月26日10:00": the SMS spends no character on a space.
fn when_sms(ts: DateTime<Utc>) -> String {
    format!("{}{}", day_zh(ts), hm(ts))
}

/// A span from `from` to `to` in the email's facts: "2026-11-26 09:00 至 10:00" within one day,
/// both dates otherwise: (Chinese, English).
fn span_full(from: DateTime<Utc>, to: DateTime<Utc>) -> (String, String) {
    if date(from) == date(to) {
        (
            format!("{} 至 {}", full(from), hm(to)),
            format!("{} to {}", full(from), hm(to)),
        )
    } else {
        (
            format!("{} 至 {}", full(from), full(to)),
            format!("{} to {}", full(from), full(to)),
        )
    }
}

/// An expected-arrival window, said relative to the `reading`'s day: times of day alone
/// when the whole window falls on that day, the date where it does not, so "08:00–10:00"
/// never stands for another day's hours: (Chinese, English, SMS).
fn window(
    reading: DateTime<Utc>,
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
) -> (String, String, String) {
    let (r, e, l) = (date(reading), date(earliest), date(latest));
    let (from, to) = (hm(earliest), hm(latest));
    if e == l && e == r {
        let w = format!("{from}–{to}");
        (w.clone(), w.clone(), w)
    } else if e == l {
        (
            format!("{} {from}–{to}", day_zh(earliest)),
            format!("{from}–{to} on {}", day_en(earliest)),
            format!("{}{from}–{to}", day_zh(earliest)),
        )
    } else {
        let (start_zh, start_sms) = if e == r {
            (from.clone(), from)
        } else {
            (when_zh(earliest), when_sms(earliest))
        };
        (
            format!("{start_zh}–{}", when_zh(latest)),
            format!("{} – {}", when_en(earliest), when_en(latest)),
            format!("{start_sms}–{}", when_sms(latest)),
        )
    }
}

/// A duration in whole days from two days on, in hours from one hour, else in minutes:
/// (Chinese, English).
fn span_words(d: Duration) -> (String, String) {
    let minutes = d.num_minutes();
    let hours = minutes as f64 / 60.0;
    if hours >= 48.0 {
        let days = (hours / 24.0).round();
        (format!("{days} 天"), format!("{days} days"))
    } else if minutes >= 60 {
        let h = num(hours);
        (format!("{h} 小时"), format!("{h} h"))
    } else {
        (format!("{minutes} 分钟"), format!("{minutes} min"))
    }
}

// Numbers and units.

/// A number as people read it: four significant digits at most (no more than four decimals),
/// trailing zeros dropped. Measured values keep what they were reported with (1.2 stays 1.2);
/// computed ones (means, rates) lose the float noise.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 4) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn with_unit(v: f64, unit: &str) -> String {
    if unit.is_empty() {
        num(v)
    } else {
        format!("{} {unit}", num(v))
    }
}

/// As [`with_unit`], without the space: the SMS's form.
fn with_unit_sms(v: f64, unit: &str) -> String {
    format!("{}{unit}", num(v))
}

fn limit_text(limit: LimitValue, unit: &str) -> String {
    match limit {
        LimitValue::AtMost(v) => format!("≤ {}", with_unit(v, unit)),
        LimitValue::AtLeast(v) => format!("≥ {}", with_unit(v, unit)),
        LimitValue::Between(lo, hi) => format!("{}–{}", num(lo), num(hi)),
    }
}

/// The limit's bare numbers, for the SMS: "0.5", "6", "6–9".
fn limit_sms(limit: LimitValue) -> String {
    match limit {
        LimitValue::AtMost(v) | LimitValue::AtLeast(v) => num(v),
        LimitValue::Between(lo, hi) => format!("{}–{}", num(lo), num(hi)),
    }
}

/// A change from `base`, in per cent with its sign ("+119%"); empty when there is no base to
/// compare with.
fn percent(change: f64, base: f64) -> String {
    if base.abs() < 1e-9 || !base.is_finite() {
        String::new()
    } else {
        format!("{:+.0}%", change / base * 100.0)
    }
}

/// Words for a direction: (Chinese verb, English participle), e.g. ("上升", "rising").
fn rising(up: bool) -> (&'static str, &'static str) {
    if up {
        ("上升", "rising")
    } else {
        ("下降", "falling")
    }
}

// Names for people.

/// The rule's name: (Chinese, English). The Chinese names are those of the bureaus' own
/// warning notices; the rule's key stays beside the Chinese one as a reference for silences
/// and searches.
fn rule_name(rule: Rule) -> (&'static str, &'static str) {
    match rule {
        Rule::Exceedance => ("超标", "exceedance of the target class"),
        Rule::Class => ("水质类别", "overall water-quality class"),
        Rule::Trend => ("趋势预警", "trend early warning"),
        Rule::Shift => ("突变预警", "shift from the baseline"),
        Rule::Rate => ("快速变化", "rapid change"),
        Rule::StationFault => ("站点故障", "station fault"),
        Rule::Offline => ("站点离线", "station offline"),
        Rule::Upstream => ("上游来水预警", "pollution arriving from upstream"),
    }
}

/// What the SMS calls the warning that ended.
fn rule_sms(rule: Rule) -> &'static str {
    match rule {
        Rule::Exceedance => "超标",
        Rule::Class => "水质类别",
        Rule::Trend => "趋势预警",
        Rule::Shift => "突变预警",
        Rule::Rate => "快速变化预警",
        Rule::StationFault => "站点故障",
        Rule::Offline => "离线",
        Rule::Upstream => "上游来水预警",
    }
}

fn test_name(test: Option<Test>) -> (&'static str, &'static str) {
    match test {
        Some(Test::GrossRange) => ("量程检验", "gross range test"),
        Some(Test::Spike) => ("尖峰检验", "spike test"),
        Some(Test::RateOfChange) => ("变化率检验", "rate-of-change test"),
        Some(Test::FlatLine) => ("平直线检验", "flat-line test"),
        None => ("质量控制", "quality control"),
    }
}

/// A station fault's reason: (Chinese, English, SMS).
fn fault_words(reason: &FaultReason) -> (String, String, String) {
    match reason {
        FaultReason::Spike { at } => (
            format!("尖峰检验判定 {} 的值失真", when_zh(*at)),
            format!("the spike test failed the value of {} UTC+8", when_en(*at)),
            format!("{}的值尖峰失真", when_sms(*at)),
        ),
        FaultReason::Qc(test) => {
            let (zh, en) = test_name(*test);
            (
                format!("质控判定无效（{zh}）"),
                format!("failed QC ({en})"),
                format!("质控无效({zh})"),
            )
        }
        FaultReason::Flag(flag) => {
            let (zh, en) = match flag {
                DataFlag::D => ("仪器故障", "instrument fault"),
                DataFlag::B => ("通讯异常", "communication fault"),
                _ => ("仪器标记", "instrument flag"),
            };
            let c = flag.letter();
            (
                format!("数采仪标记 {c}（{zh}）"),
                format!("data logger flag {c} ({en})"),
                format!("标记{c}({zh})"),
            )
        }
    }
}

/// The trend test, for the details: (Chinese, English). The p-value is the named test's, so
/// Hamed–Rao's is never called the original Mann–Kendall's.
fn trend_test_name(test: TrendTest) -> (&'static str, &'static str) {
    match test {
        TrendTest::HamedRao => (
            "Hamed–Rao 检验（自相关修正的 Mann–Kendall 趋势检验）",
            "Hamed–Rao test (Mann–Kendall trend test corrected for autocorrelation)",
        ),
        TrendTest::Original => (
            "Mann–Kendall 趋势检验（原始方法）",
            "Mann–Kendall trend test (original)",
        ),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

// The SMS.

/// The most characters one SMS carries in Chinese (UCS-2): longer texts are split by
/// gateways into several messages that may arrive out of order.
pub const SMS_LIMIT: usize = 70;

/// Station names are cut to this many characters (with "…") when the SMS is too long.
const SHORT_NAME: usize = 6;

/// A part of an SMS after its head; [`fit`] drops or shortens the least important first.
#[derive(Debug, Clone)]
enum Piece {
    /// Always kept; cut with "…" only as a last resort.
    Text(String),
    /// A station's name: cut to [`SHORT_NAME`] characters before anything essential goes.
    Name(String),
    /// Useful, not essential (the exceedance multiple, a QC note): dropped first.
    Extra(String),
    /// The reading time: dropped after the names are cut (the email has it).
    Time(String),
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn cut(s: &str, n: usize) -> String {
    if chars(s) <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).chain(['…']).collect()
    }
}

/// Assembles the SMS, shortening deliberately until it fits [`SMS_LIMIT`]: first the short
/// head ("【黄色预警】" for "【riverwatch黄色预警】"), then without the extras, then with
/// station names cut to [`SHORT_NAME`] characters, then without the time, and only last the
/// rest cut with "…".
fn fit(head: (String, String), pieces: &[Piece]) -> String {
    let render = |head: &str, extras: bool, short_names: bool, time: bool| {
        let mut s = head.to_string();
        for p in pieces {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Name(n) if short_names => s.push_str(&cut(n, SHORT_NAME)),
                Piece::Name(n) => s.push_str(n),
                Piece::Extra(e) if extras => s.push_str(e),
                Piece::Time(t) if time => s.push_str(t),
                Piece::Extra(_) | Piece::Time(_) => {}
            }
        }
        s
    };
    let attempts = [
        (&head.0, true, false, true),
        (&head.1, true, false, true),
        (&head.1, false, false, true),
        (&head.1, false, true, true),
        (&head.1, false, true, false),
    ];
    for (h, extras, short_names, time) in attempts {
        let text = render(h, extras, short_names, time);
        if chars(&text) <= SMS_LIMIT {
            return text;
        }
    }
    let rest = render("", false, true, false);
    let room = SMS_LIMIT.saturating_sub(chars(&head.1));
    format!("{}{}", head.1, cut(&rest, room))
}

// What a message says.

/// Two texts built side by side: Chinese and English.
#[derive(Debug, Default)]
struct Both(String, String);

impl Both {
    /// Appends one line to each.
    fn line(&mut self, zh: impl AsRef<str>, en: impl AsRef<str>) {
        self.0.push_str(zh.as_ref());
        self.0.push('\n');
        self.1.push_str(en.as_ref());
        self.1.push('\n');
    }
}

/// Everything a message says beyond its frame, built once per transition by
/// [`Facts::words`] and assembled by [`email`] and [`sms`].
#[derive(Default)]
struct Words {
    /// What happened, for the subject: (Chinese, English).
    what: (String, String),
    /// The plain sentences that open the body.
    summary: Both,
    /// The facts, one line each.
    facts: Both,
    /// The method, for whoever checks it; empty for most rules.
    method: Both,
    /// The SMS after its head.
    sms: Vec<Piece>,
}

/// What one rule's words give back besides the body's lines: what happened, for the subject
/// (Chinese, English), and the SMS after its head.
type Said = ((String, String), Vec<Piece>);

/// What most messages say, in the forms they say it: the station's name, the parameter's
/// names, the target class, the transition's evidence and unit, the value with its class
/// (Chinese, English, SMS) and the target limit (the same three forms).
struct Shared<'a> {
    s: &'a str,
    pz: &'static str,
    pe: &'static str,
    target: Class,
    ev: super::alert::Evidence,
    unit: &'static str,
    vz: String,
    ve: String,
    vs: String,
    lz: String,
    le: String,
    ls: String,
}

impl Shared<'_> {
    /// The value line of the facts, under `label` (Chinese, English).
    fn value_line(&self, facts: &mut Both, label: (&str, &str)) {
        facts.line(
            format!("{}：{}", label.0, self.vz),
            format!("{}: {}", label.1, self.ve),
        );
    }

    /// The SMS's reading time, dropped first of the essentials.
    fn time(&self) -> Piece {
        Piece::Time(format!(" {}", when_sms(self.ev.ts)))
    }

    /// The SMS of most messages: the station's name, one text and the reading time.
    fn sms(&self, text: String) -> Vec<Piece> {
        vec![self.name(), Piece::Text(text), self.time()]
    }

    /// The station's name, which opens most SMS texts.
    fn name(&self) -> Piece {
        Piece::Name(self.s.into())
    }

    /// The value with its unit and no class, for rules that judge the reading rather than
    /// the water.
    fn plain_value(&self) -> String {
        with_unit(self.ev.value, self.unit)
    }

    /// The value line of the facts without a class, under `label` (Chinese, English).
    fn plain_value_line(&self, facts: &mut Both, label: (&str, &str)) {
        let v = self.plain_value();
        facts.line(format!("{}：{v}", label.0), format!("{}: {v}", label.1));
    }

    /// The SMS's value now and the target limit: "现1.2mg/L(Ⅳ类),Ⅱ类限值0.5".
    fn now_sms(&self) -> String {
        format!("现{},{}", self.vs, self.ls)
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

    fn param_zh(&self) -> &'static str {
        self.t.param.map_or("", Param::name_zh)
    }

    fn param_en(&self) -> &'static str {
        self.t.param.map_or("", Param::name_en)
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

    /// A value's class: the rule's when it judged one, else this station's class of it.
    fn class_of(&self, value: f64, given: Option<Class>) -> Option<Class> {
        given.or_else(|| gb3838::classify(self.t.param?, self.station.water_body, value))
    }

    /// A value with its unit and class: (Chinese, English, SMS), e.g. "1.2 mg/L（Ⅳ类）",
    /// "1.2 mg/L (class IV)", "1.2mg/L(Ⅳ类)".
    fn value(&self, v: f64, given: Option<Class>) -> (String, String, String) {
        let unit = self.unit();
        let (shown, sms) = (with_unit(v, unit), with_unit_sms(v, unit));
        match self.class_of(v, given) {
            Some(c) => (
                format!("{shown}（{c}类）"),
                format!("{shown} (class {})", c.roman_en()),
                format!("{sms}({c}类)"),
            ),
            None => (shown.clone(), shown, sms),
        }
    }

    /// The target limit in words: (Chinese, English, SMS), e.g. "Ⅱ类限值 ≤ 0.5 mg/L",
    /// "class II limit ≤ 0.5 mg/L", "Ⅱ类限值0.5"; the target class alone for a parameter
    /// without one.
    fn limit_words(&self) -> (String, String, String) {
        let target = self.station.target;
        match self.limit() {
            Some(l) => (
                format!("{target}类限值 {}", limit_text(l, self.unit())),
                format!(
                    "class {} limit {}",
                    target.roman_en(),
                    limit_text(l, self.unit())
                ),
                format!("{target}类限值{}", limit_sms(l)),
            ),
            None => (
                format!("{target}类目标"),
                format!("class {} target", target.roman_en()),
                format!("{target}类目标"),
            ),
        }
    }

    fn target_line(&self, out: &mut Both) {
        let target = self.station.target;
        let unit = self.unit();
        match self.limit() {
            Some(l) => out.line(
                format!("水质目标：{target}类（限值 {}）", limit_text(l, unit)),
                format!(
                    "Target: class {} (limit {})",
                    target.roman_en(),
                    limit_text(l, unit)
                ),
            ),
            None => out.line(
                format!("水质目标：{target}类"),
                format!("Target: class {}", target.roman_en()),
            ),
        }
    }

    fn episode_line(&self, out: &mut Both) {
        let (zh, en) = span_full(self.t.since, self.t.evidence.ts);
        out.line(
            format!("持续时间：{zh}（北京时间）"),
            format!("Episode: {en} UTC+8"),
        );
    }

    /// The words of every rule and kind. A match without a catch-all, so a new rule has to
    /// decide what its messages say.
    fn words(&self) -> Words {
        let sh = self.shared();
        let mut w = Words::default();
        let (what, sms) = match (self.t.kind, self.t.rule) {
            (Kind::Resolved, Rule::Exceedance | Rule::Class) => self.exceedance_ended(&sh, &mut w),
            (Kind::Resolved, Rule::Offline) => self.back_online(&sh, &mut w),
            (Kind::Resolved, Rule::StationFault) => self.fault_cleared(&sh, &mut w),
            (Kind::Resolved, Rule::Upstream) => self.upstream_ended(&sh, &mut w),
            (Kind::Resolved, Rule::Trend | Rule::Shift | Rule::Rate) => {
                self.early_warning_ended(&sh, &mut w)
            }
            (_, Rule::Exceedance) => self.exceedance(&sh, &mut w),
            (_, Rule::Class) => self.class(&sh, &mut w),
            (_, Rule::Trend) => self.trend(&sh, &mut w),
            (_, Rule::Shift) => self.shift(&sh, &mut w),
            (_, Rule::Rate) => self.rate(&sh, &mut w),
            (_, Rule::StationFault) => self.fault(&sh, &mut w),
            (_, Rule::Offline) => self.offline(&sh, &mut w),
            (_, Rule::Upstream) => self.upstream(&sh, &mut w),
        };
        w.what = what;
        w.sms = sms;
        w
    }

    /// What most messages say, computed once per transition.
    fn shared(&self) -> Shared<'_> {
        let ev = self.t.evidence;
        let (vz, ve, vs) = self.value(ev.value, ev.class);
        let (lz, le, ls) = self.limit_words();
        Shared {
            s: self.station.name.as_str(),
            pz: self.param_zh(),
            pe: self.param_en(),
            target: self.station.target,
            ev,
            unit: self.unit(),
            vz,
            ve,
            vs,
            lz,
            le,
            ls,
        }
    }

    /// The value under `label` and the target below it: the two facts most rules open with.
    fn value_facts(&self, sh: &Shared, facts: &mut Both, label: (&str, &str)) {
        sh.value_line(facts, label);
        self.target_line(facts);
    }

    /// The upstream station behind a warning and its alert, as a line of the facts.
    fn upstream_line(&self, facts: &mut Both, from: &str, from_name: &str, from_alert: &str) {
        facts.line(
            format!("上游断面：{from_name}（{from}），告警 {from_alert}"),
            format!("Upstream station: {from_name} ({from}), alert {from_alert}"),
        );
    }

    /// An exceedance (or class) back within the target: the latest value, the peak and the
    /// episode.
    fn exceedance_ended(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, target) = (sh.s, sh.target);
        let t = self.t;
        let (pkz, pke, pks) = self.value(t.peak.value, t.peak.class);
        let (what_zh, what_en, head_zh, head_en) = if t.rule == Rule::Class {
            (
                format!("水质恢复达标（{target}类目标）"),
                format!(
                    "overall class back within the class {} target",
                    target.roman_en()
                ),
                format!("{s} 水质恢复达标（{target}类目标）。"),
                format!(
                    "{s}: the overall class is back within the class {} target.",
                    target.roman_en()
                ),
            )
        } else {
            (
                format!("{} 恢复达标（{target}类目标）", sh.pz),
                format!(
                    "{} back within the class {} target",
                    sh.pe,
                    target.roman_en()
                ),
                format!(
                    "{s} {}恢复达标：最新 {}，{}；期间最高 {pkz}，出现在 {}。",
                    sh.pz,
                    sh.vz,
                    sh.lz,
                    when_zh(t.peak.ts)
                ),
                format!(
                    "{s}: {} is back within the target: latest {}, {}; the peak was {pke} at {} UTC+8.",
                    sh.pe,
                    sh.ve,
                    sh.le,
                    when_en(t.peak.ts)
                ),
            )
        };
        w.summary.line(head_zh, head_en);
        if t.rule == Rule::Exceedance {
            self.value_facts(sh, &mut w.facts, ("最新监测值", "Latest value"));
            w.facts.line(
                format!("期间最高：{pkz}，{}（北京时间）", full(t.peak.ts)),
                format!("Peak: {pke}, {} UTC+8", full(t.peak.ts)),
            );
            if let Some(m) = self.multiple(t.peak.value) {
                w.facts.line(
                    format!("最高超标倍数：{m:.1}"),
                    format!("Peak exceedance multiple: {m:.1}"),
                );
            }
        }
        self.episode_line(&mut w.facts);
        let sms = if t.rule == Rule::Class {
            sh.sms(format!("水质恢复达标({target}类目标)"))
        } else {
            vec![
                sh.name(),
                Piece::Text(format!("{}恢复达标,{}", sh.pz, sh.now_sms())),
                Piece::Extra(format!(",期间最高{pks}")),
                sh.time(),
            ]
        };
        ((what_zh, what_en), sms)
    }

    /// A station reporting again.
    fn back_online(&self, sh: &Shared, w: &mut Words) -> Said {
        let s = sh.s;
        w.summary.line(
            format!("{s} 恢复上报数据。"),
            format!("{s} is reporting again."),
        );
        self.episode_line(&mut w.facts);
        (
            ("站点恢复上报数据".into(), "station reporting again".into()),
            sh.sms("恢复上报数据".into()),
        )
    }

    /// A station fault cleared.
    fn fault_cleared(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe) = (sh.s, sh.pz, sh.pe);
        w.summary.line(
            format!("{s} {pz}数据恢复正常，站点故障已解除。"),
            format!("{s}: {pe} data are valid again; the station fault has cleared."),
        );
        sh.plain_value_line(&mut w.facts, ("最新监测值", "Latest value"));
        self.episode_line(&mut w.facts);
        (
            (
                format!("{pz} 站点故障已解除"),
                format!("{pe} station fault cleared"),
            ),
            sh.sms(format!("{pz}数据恢复正常")),
        )
    }

    /// The upstream exceedance behind a warning ended: which one, and this station's limit.
    fn upstream_ended(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe) = (sh.s, sh.pz, sh.pe);
        let Context::Upstream {
            from, from_alert, ..
        } = &self.t.context
        else {
            return self.early_warning_ended(sh, w);
        };
        let from_name = self.station_name(from);
        w.summary.line(
            format!(
                "上游{from_name}{pz}超标已解除，最新 {}；{s}的上游来水预警解除，本断面{}。",
                sh.vz, sh.lz
            ),
            format!(
                "The {pe} exceedance upstream at {from_name} has ended, latest {}; the warning for {s} is lifted; the {} applies here.",
                sh.ve, sh.le
            ),
        );
        self.upstream_line(&mut w.facts, from, &from_name, from_alert);
        self.value_facts(
            sh,
            &mut w.facts,
            ("上游最新监测值", "Latest value upstream"),
        );
        self.episode_line(&mut w.facts);
        (
            (
                format!("上游{from_name}{pz}超标已解除"),
                format!("upstream {pe} exceedance at {from_name} ended"),
            ),
            vec![
                Piece::Text("上游".into()),
                Piece::Name(from_name.clone()),
                Piece::Text(format!("{pz}超标已解除,现{},", sh.vs)),
                sh.name(),
                Piece::Text(format!("来水预警解除,{}", sh.ls)),
                sh.time(),
            ],
        )
    }

    /// A blue early warning (trend, shift, rate) ended: the value, its class and the limit,
    /// and a plain word when the value is still worse than the target (another alert covers
    /// that; this one's ending must not read as the all-clear).
    fn early_warning_ended(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe, target) = (sh.s, sh.pz, sh.pe, sh.target);
        let rule = self.t.rule;
        let (rz, re) = rule_name(rule);
        let still = self
            .class_of(sh.ev.value, sh.ev.class)
            .is_some_and(|c| c > target);
        w.summary.line(
            format!("{s} {pz}{rz}已解除：最新 {}，{}。", sh.vz, sh.lz),
            format!(
                "{s}: the {re} for {pe} has cleared: latest {}, {}.",
                sh.ve, sh.le
            ),
        );
        if still {
            w.summary.line(
                format!("注意：最新值仍劣于{target}类目标。"),
                format!(
                    "Note: the latest value is still worse than the class {} target.",
                    target.roman_en()
                ),
            );
        }
        self.value_facts(sh, &mut w.facts, ("最新监测值", "Latest value"));
        self.episode_line(&mut w.facts);
        let mut sms = vec![
            sh.name(),
            Piece::Text(format!("{pz}{}已解除,{}", rule_sms(rule), sh.now_sms())),
        ];
        if still {
            sms.push(Piece::Text(",仍超标".into()));
        }
        sms.push(sh.time());
        (
            (format!("{pz}{rz}已解除"), format!("{pe} {re} cleared")),
            sms,
        )
    }

    /// An exceedance firing, escalated or still firing: value, class, limit, multiple, and the QC
    /// note of a suspect value.
    fn exceedance(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe, target) = (sh.s, sh.pz, sh.pe, sh.target);
        let m = self.multiple(sh.ev.value);
        let (mz, me, ms) = m.map_or_else(Default::default, |m| {
            (
                format!("，超标 {m:.1} 倍"),
                format!(", exceedance multiple {m:.1}"),
                format!(",超标{m:.1}倍"),
            )
        });
        w.summary.line(
            format!("{s} {pz} {}，劣于{}{mz}。", sh.vz, sh.lz),
            format!("{s}: {pe} {}, worse than the {}{me}.", sh.ve, sh.le),
        );
        self.value_facts(sh, &mut w.facts, ("监测值", "Value"));
        if let Some(m) = m {
            w.facts.line(
                format!("超标倍数：{m:.1}"),
                format!("Exceedance multiple: {m:.1}"),
            );
        }
        let mut sms = vec![
            sh.name(),
            Piece::Text(format!("{pz}{}劣于{}", sh.vs, sh.ls)),
            Piece::Extra(ms),
        ];
        if let Context::Suspect { test } = &self.t.context {
            // Judged all the same: QC must never hide pollution; the officer verifies.
            let (tz, te) = test_name(Some(*test));
            w.facts.line(
                format!("质控提示：该值被{tz}判为可疑，仍按实测值评价，请核实"),
                format!("QC note: suspect by the {te}; judged as measured, please verify"),
            );
            sms.push(Piece::Extra(",质控可疑请核实".into()));
        }
        sms.push(sh.time());
        let value = sh.plain_value();
        (
            (
                format!("{pz} {value} 劣于{target}类目标"),
                format!(
                    "{pe} {value} worse than the class {} target",
                    target.roman_en()
                ),
            ),
            sms,
        )
    }

    /// The overall class worse than the target (recorded, not notified).
    fn class(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, target) = (sh.s, sh.target);
        let c = sh.ev.class.unwrap_or(Class::WORSE_THAN_V);
        w.summary.line(
            format!("{s} 水质为{c}类，劣于{target}类目标。"),
            format!(
                "{s}: overall class {}, worse than the class {} target.",
                c.roman_en(),
                target.roman_en()
            ),
        );
        w.facts.line(
            format!("水质类别：{c}类"),
            format!("Overall class: {}", c.roman_en()),
        );
        self.target_line(&mut w.facts);
        (
            (
                format!("水质{c}类 劣于{target}类目标"),
                format!(
                    "overall class {} worse than the class {} target",
                    c.roman_en(),
                    target.roman_en()
                ),
            ),
            sh.sms(format!("水质{c}类劣于{target}类目标")),
        )
    }

    /// A trend: the rise in plain words and the projected crossing; the test in the details.
    fn trend(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe, unit) = (sh.s, sh.pz, sh.pe, sh.unit);
        let Context::Trend {
            crossing,
            slope_per_day,
            p,
            test,
            baseline,
            from,
            points,
        } = &self.t.context
        else {
            return self.other(sh, w);
        };
        let up = *slope_per_day >= 0.0;
        let (rz, re) = rising(up);
        let change = sh.ev.value - baseline;
        let (dz, de) = span_words(sh.ev.ts - *from);
        let slope = with_unit(slope_per_day.abs(), unit);
        let (size, start) = (with_unit(change.abs(), unit), with_unit(*baseline, unit));
        let pct = percent(change, *baseline);
        w.summary.line(
            format!(
                "{s} {pz}持续{rz}：现 {}，近 {dz}{rz} {size}（起点 {start}）；按目前趋势，预计 {} 超过{}。",
                sh.vz,
                when_zh(*crossing),
                sh.lz
            ),
            format!(
                "{s}: {pe} has been {re} for {de}: now {}, {} {size} since the start ({start}); at this pace it passes the {} around {} UTC+8.",
                sh.ve,
                if up { "up" } else { "down" },
                sh.le,
                when_en(*crossing)
            ),
        );
        self.value_facts(sh, &mut w.facts, ("监测值", "Value"));
        w.facts.line(
            format!("趋势起点：{start}（{}，趋势线）", full(*from)),
            format!("Trend start: {start} ({} UTC+8, trend line)", full(*from)),
        );
        w.facts.line(
            format!("变化：{rz} {size}（{pct}），每日约 {slope}"),
            format!("Change: {re} {size} ({pct}), about {slope} per day"),
        );
        w.facts.line(
            format!("预计超标时间：{}（北京时间）", full(*crossing)),
            format!("Projected exceedance: {} UTC+8", full(*crossing)),
        );
        let (tz, te) = trend_test_name(*test);
        let sen = with_unit(*slope_per_day, unit);
        w.method.line(
            format!(
                "技术细节：{tz}，p = {p:.4}；Sen 斜率 {sen}/日；{points} 个值，{} 起",
                full(*from)
            ),
            format!(
                "Details: {te}, p = {p:.4}; Sen slope {sen} per day; {points} values since {} UTC+8",
                full(*from)
            ),
        );
        (
            (
                format!(
                    "{pz} 持续{rz}，预计 {} 超过{}类限值",
                    when_zh(*crossing),
                    sh.target
                ),
                format!(
                    "{pe} {re}, projected to pass the class {} limit around {} UTC+8",
                    sh.target.roman_en(),
                    when_en(*crossing)
                ),
            ),
            vec![
                sh.name(),
                Piece::Text(format!(
                    "{pz}持续{rz},现{},预计{}超{}",
                    sh.vs,
                    when_sms(*crossing),
                    sh.ls
                )),
            ],
        )
    }

    /// A shift from the baseline: the baseline, its period and the change; the chart in the
    /// details.
    fn shift(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe, unit) = (sh.s, sh.pz, sh.pe, sh.unit);
        let Context::Shift {
            up,
            chart,
            baseline,
            sd,
            baseline_from,
            baseline_to,
        } = &self.t.context
        else {
            return self.other(sh, w);
        };
        let (hz, he) = if *up {
            ("高于", "above")
        } else {
            ("低于", "below")
        };
        let (rz, re) = if *up {
            ("升高", "up")
        } else {
            ("降低", "down")
        };
        let change = sh.ev.value - baseline;
        let pct = percent(change, *baseline);
        let b = with_unit(*baseline, unit);
        let d = with_unit(change.abs(), unit);
        let period_zh = format!("{}–{}", day_zh(*baseline_from), day_zh(*baseline_to));
        let period_en = format!("{} – {}", day_en(*baseline_from), day_en(*baseline_to));
        w.summary.line(
            format!(
                "{s} {pz}明显{hz}基线：现 {}，基线 {b}（{period_zh}均值），{rz} {d}（{pct}）；{}。",
                sh.vz, sh.lz
            ),
            format!(
                "{s}: {pe} is clearly {he} its baseline: now {}, baseline {b} (mean of {period_en}), {re} {d} ({pct}); {}.",
                sh.ve, sh.le
            ),
        );
        self.value_facts(sh, &mut w.facts, ("监测值", "Value"));
        let (pz_, pe_) = span_full(*baseline_from, *baseline_to);
        w.facts.line(
            format!("基线：{b}（{pz_} 的均值，北京时间）"),
            format!("Baseline: {b} (mean of {pe_} UTC+8)"),
        );
        w.facts.line(
            format!("变化：较基线{rz} {d}（{pct}）"),
            format!("Change: {re} {d} from the baseline ({pct})"),
        );
        let sd = with_unit(*sd, unit);
        w.method.line(
            format!("技术细节：{chart} 控制图发出信号（基线均值 {b}，标准差 {sd}）"),
            format!(
                "Details: {chart} control chart signal (baseline mean {b}, standard deviation {sd})"
            ),
        );
        (
            (
                format!("{pz} 明显{hz}基线（{}）", sh.lz),
                format!("{pe} clearly {he} its baseline ({})", sh.le),
            ),
            sh.sms(format!(
                "{pz}明显{hz}基线{},{}",
                with_unit_sms(*baseline, unit),
                sh.now_sms()
            )),
        )
    }

    /// A rapid change: the steepest recent step per hour and the window's change; red when
    /// several parameters changed at once after the upstream station did.
    fn rate(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe, unit) = (sh.s, sh.pz, sh.pe, sh.unit);
        let t = self.t;
        let Context::Rate {
            per_hour,
            change,
            from,
            steepest,
            params,
        } = &self.t.context
        else {
            return self.other(sh, w);
        };
        let Step {
            from: s_from,
            to: s_to,
            per_hour: s_rate,
        } = *steepest;
        let up = *change >= 0.0;
        let (rz, re) = rising(up);
        let steep = with_unit(s_rate.abs(), unit);
        let steep_sms = with_unit_sms(s_rate.abs(), unit);
        let (hz, he) = span_words(sh.ev.ts - *from);
        let step_zh = if date(s_from) == date(s_to) {
            format!("{}–{}", when_zh(s_from), hm(s_to))
        } else {
            format!("{}–{}", when_zh(s_from), when_zh(s_to))
        };
        let step_en = if date(s_from) == date(s_to) {
            format!("{}–{}", when_en(s_from), hm(s_to))
        } else {
            format!("{} – {}", when_en(s_from), when_en(s_to))
        };
        let total = with_unit(change.abs(), unit);
        let red = *params >= 2 && t.level == Level::Red;
        if red {
            w.summary.line(
                format!(
                    "{s} {pz}等 {params} 项指标同时突变，上游断面此前已出现同样突变；{pz}最陡每小时{rz} {steep}，现 {}，{}。",
                    sh.vz, sh.lz
                ),
                format!(
                    "{s}: {pe} and {} more parameters changed suddenly at once, as the upstream station did before; {pe} {re} {steep} per hour at the steepest, now {}, {}.",
                    params - 1,
                    sh.ve,
                    sh.le
                ),
            );
        } else {
            w.summary.line(
                format!(
                    "{s} {pz}快速{rz}：最陡每小时{rz} {steep}（{step_zh}），近 {hz}共{rz} {total}；现 {}，{}。",
                    sh.vz, sh.lz
                ),
                format!(
                    "{s}: {pe} {re} fast: {steep} per hour at the steepest ({step_en} UTC+8), {total} over the last {he}; now {}, {}.",
                    sh.ve, sh.le
                ),
            );
        }
        self.value_facts(sh, &mut w.facts, ("监测值", "Value"));
        let (sz, se) = span_full(s_from, s_to);
        w.facts.line(
            format!("最陡变化：每小时{rz} {steep}（{sz}，北京时间）"),
            format!("Steepest change: {re} {steep} per hour ({se} UTC+8)"),
        );
        // An average per hour over less than an hour would outrun the steepest step, which
        // is counted over an hour at least.
        let (az, ae) = if sh.ev.ts - *from >= Duration::hours(1) {
            let avg = with_unit(per_hour.abs(), unit);
            (
                format!("（平均每小时 {avg}）"),
                format!(" ({avg} per hour on average)"),
            )
        } else {
            (String::new(), String::new())
        };
        w.facts.line(
            format!("窗口变化：近 {hz}{rz} {total}{az}"),
            format!("Over the window: {re} {total} in {he}{ae}"),
        );
        let now = sh.now_sms();
        if red {
            (
                (
                    format!("{pz}等{params}项指标同时突变，上游已先出现"),
                    format!(
                        "{pe} and {} more changing suddenly, as upstream before",
                        params - 1
                    ),
                ),
                sh.sms(format!("{pz}等{params}项同时突变,上游已先出现,{pz}{now}")),
            )
        } else {
            (
                (
                    format!("{pz} 快速{rz}（最陡每小时 {steep}）"),
                    format!("{pe} {re} fast ({steep} per hour at the steepest)"),
                ),
                sh.sms(format!("{pz}快速{rz},最陡每小时{steep_sms},{now}")),
            )
        }
    }

    /// A station fault and its reason.
    fn fault(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe) = (sh.s, sh.pz, sh.pe);
        let Context::Fault { reason } = &self.t.context else {
            return self.other(sh, w);
        };
        let (rz, re, rs) = fault_words(reason);
        w.summary.line(
            format!("{s} {pz}数据异常：{rz}，请检查仪器和数据。"),
            format!("{s}: {pe} data fault: {re}; please check the instrument and its data."),
        );
        sh.plain_value_line(&mut w.facts, ("监测值", "Value"));
        w.facts.line(format!("原因：{rz}"), format!("Reason: {re}"));
        (
            (
                format!("{pz} 仪器或数据异常"),
                format!("{pe} instrument or data fault"),
            ),
            sh.sms(format!("{pz}数据异常:{rs}")),
        )
    }

    /// A silent station: its last reading and its cadence.
    fn offline(&self, sh: &Shared, w: &mut Words) -> Said {
        let s = sh.s;
        let Context::Offline { last } = &self.t.context else {
            return self.other(sh, w);
        };
        let minutes = self.station.cadence.as_secs() / 60;
        w.summary.line(
            format!(
                "{s} 已离线：最后数据 {} 到达，应每 {minutes} 分钟上报一次；请检查站点供电、通讯和数采仪。",
                when_zh(*last)
            ),
            format!(
                "{s} is offline: the last reading arrived {} UTC+8, and it should report every {minutes} min; please check the station's power, link and data logger.",
                when_en(*last)
            ),
        );
        w.facts.line(
            format!("最后数据到达：{}（北京时间）", full(*last)),
            format!("Last reading received: {} UTC+8", full(*last)),
        );
        w.facts.line(
            format!("应上报周期：{minutes} 分钟"),
            format!("Expected every {minutes} min"),
        );
        (
            (
                format!("站点离线（最后数据 {}）", when_zh(*last)),
                format!("station offline (last reading {} UTC+8)", when_en(*last)),
            ),
            vec![
                sh.name(),
                Piece::Text(format!("离线,最后数据{}", when_sms(*last))),
            ],
        )
    }

    /// Pollution on its way from upstream: the upstream value and the arrival window here.
    fn upstream(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe) = (sh.s, sh.pz, sh.pe);
        let Context::Upstream {
            from,
            from_alert,
            arrival,
            earliest,
            latest,
        } = &self.t.context
        else {
            return self.other(sh, w);
        };
        let from_name = self.station_name(from);
        let (wz, we, ws) = window(sh.ev.ts, *earliest, *latest);
        let (fz, fe) = if date(*earliest) == date(*latest) {
            let d = earliest.with_timezone(&cst()).format("%Y-%m-%d");
            let f = format!("{d} {}–{}", hm(*earliest), hm(*latest));
            (f.clone(), f)
        } else {
            (
                format!("{} 至 {}", full(*earliest), full(*latest)),
                format!("{} to {}", full(*earliest), full(*latest)),
            )
        };
        let (tz, te) = span_words(*arrival - *earliest);
        w.summary.line(
            format!(
                "上游{from_name}{pz} {}超标，预计 {wz} 到达{s}（北京时间）；本断面{}。",
                sh.vz, sh.lz
            ),
            format!(
                "Upstream at {from_name}, {pe} exceeds at {}; it is expected at {s} around {we} (UTC+8); the {} applies here.",
                sh.ve, sh.le
            ),
        );
        self.upstream_line(&mut w.facts, from, &from_name, from_alert);
        self.value_facts(sh, &mut w.facts, ("上游监测值", "Value upstream"));
        w.facts.line(
            format!(
                "预计到达时间：{fz}（北京时间；按传播时间估计 {}，前后 {tz}）",
                hm(*arrival)
            ),
            format!(
                "Expected arrival: {fe} UTC+8 (travel-time estimate {} ± {te})",
                hm(*arrival)
            ),
        );
        (
            (
                format!("上游{from_name}{pz}超标，预计 {wz} 到达"),
                format!("{pe} exceeding upstream at {from_name}, expected here around {we} UTC+8"),
            ),
            vec![
                Piece::Text("上游".into()),
                Piece::Name(from_name.clone()),
                Piece::Text(format!("{pz}{}超标,预计{ws}到达", sh.vs)),
                sh.name(),
                Piece::Text(format!(",{}", sh.ls)),
            ],
        )
    }

    /// A rule without its context (never produced by the rules): the value, its class and the
    /// limit all the same.
    fn other(&self, sh: &Shared, w: &mut Words) -> Said {
        let (s, pz, pe) = (sh.s, sh.pz, sh.pe);
        let (rz, re) = rule_name(self.t.rule);
        w.summary.line(
            format!("{s} {pz}{rz}：{}，{}。", sh.vz, sh.lz),
            format!("{s}: {pe} {re}: {}, {}.", sh.ve, sh.le),
        );
        self.value_facts(sh, &mut w.facts, ("监测值", "Value"));
        (
            (format!("{pz}{rz}"), format!("{pe} {re}")),
            sh.sms(format!("{pz}{rz},{},{}", sh.vs, sh.ls)),
        )
    }
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

/// What the time of the transition's reading is called, and what the episode's start is
/// (`None` where the start says nothing the reading does not): (Chinese, English) each.
#[allow(clippy::type_complexity)]
fn time_labels(rule: Rule) -> ((&'static str, &'static str), (&'static str, &'static str)) {
    match rule {
        Rule::Exceedance | Rule::Class => (
            ("监测时间", "Reading time"),
            ("首个超标读数", "First exceeding reading"),
        ),
        Rule::Trend | Rule::Shift | Rule::Rate => (
            ("监测时间", "Reading time"),
            ("首次发出信号", "First signalled"),
        ),
        Rule::StationFault => (
            ("监测时间", "Reading time"),
            ("首个异常读数", "First faulty reading"),
        ),
        Rule::Offline => (("判定时间", "Judged at"), ("判定离线", "Judged offline")),
        Rule::Upstream => (
            ("上游监测时间", "Upstream reading time"),
            ("预警开始", "Warning since"),
        ),
    }
}

/// Renders the email for one transition; `None` when the station is not in the network
/// (never the case for transitions the daemon produced from its own config).
pub fn email(t: &Transition, net: &Network) -> Option<Email> {
    let f = facts(t, net)?;
    let s = f.station;
    let level_zh = t.level.name_zh();
    let level_en = t.level.key();
    let words = f.words();
    let (what_zh, what_en) = &words.what;
    let subject = match t.kind {
        Kind::Fired => format!(
            "【riverwatch {level_zh}预警】{} {} {what_zh} | {} alert at {}: {what_en}",
            f.river,
            s.name,
            capitalise(level_en),
            s.name
        ),
        Kind::Escalated => format!(
            "【riverwatch 升级为{level_zh}预警】{} {} {what_zh} | Escalated to {level_en} at {}: {what_en}",
            f.river, s.name, s.name
        ),
        Kind::Reminder => format!(
            "【riverwatch {level_zh}预警·持续】{} {} {what_zh} | Still firing ({level_en}) at {}: {what_en}",
            f.river, s.name, s.name
        ),
        Kind::Resolved => format!(
            "【riverwatch 预警解除】{} {} {what_zh} | Resolved at {}: {what_en}",
            f.river, s.name, s.name
        ),
    };
    let upper = level_en.to_uppercase();
    let (head_zh, head_en) = match t.kind {
        Kind::Fired => (
            format!("【水质预警 · {level_zh}】已触发"),
            format!("[Water-quality alert · {upper}] FIRING"),
        ),
        Kind::Escalated => (
            format!("【水质预警 · {level_zh}】已升级"),
            format!("[Water-quality alert · {upper}] ESCALATED"),
        ),
        Kind::Reminder => (
            format!("【水质预警 · {level_zh}】持续中"),
            format!("[Water-quality alert · {upper}] STILL FIRING"),
        ),
        Kind::Resolved => (
            format!("【水质预警解除 · 原{level_zh}】"),
            format!("[Water-quality alert RESOLVED · was {level_en}]"),
        ),
    };
    let (rule_zh, rule_en) = rule_name(t.rule);
    let (boundary_zh, boundary_en) = if s.boundary {
        (" · 跨界断面", " · boundary section")
    } else {
        ("", "")
    };
    let mut frame = Both::default();
    frame.line(
        format!(
            "断面：{}（{}）· {} · {}运维{boundary_zh}",
            s.name, s.id, f.river, f.operator
        ),
        format!(
            "Station: {} ({}) · {} · operated by {}{boundary_en}",
            s.name, s.id, f.river, f.operator
        ),
    );
    if let Some(p) = t.param {
        frame.line(
            format!("项目：{}（{}）", p.name_zh(), p.key()),
            format!("Parameter: {}", p.name_en()),
        );
    }
    frame.line(
        format!("规则：{rule_zh}（{}）", t.rule.key()),
        format!("Rule: {rule_en}"),
    );
    let mut times = Both::default();
    let ((reading_zh, reading_en), (since_zh, since_en)) = time_labels(t.rule);
    times.line(
        format!("{reading_zh}：{}（北京时间）", full(t.evidence.ts)),
        format!("{reading_en}: {} UTC+8", full(t.evidence.ts)),
    );
    if t.kind != Kind::Resolved && t.since != t.evidence.ts {
        times.line(
            format!("{since_zh}：{}（北京时间）", full(t.since)),
            format!("{since_en}: {} UTC+8", full(t.since)),
        );
    }
    times.line(
        format!("告警编号：{}", t.alert_id),
        format!("Alert id: {}", t.alert_id),
    );
    if let Some((station, alert)) = &t.follows {
        let name = f.station_name(station);
        times.line(
            format!("关联上游告警：{name}（{station}）{alert}"),
            format!("Follows upstream alert: {alert} at {name}"),
        );
    }
    let body = format!(
        "{head_zh}\n{}{}{}{}{}\
         说明：本预警由 riverwatch 自动监测预警系统发出，不是政府发布的突发环境事件预警。\n\
         \n\
         {head_en}\n{}{}{}{}{}\
         Note: issued automatically by riverwatch; this is not a government emergency warning.\n",
        words.summary.0,
        frame.0,
        words.facts.0,
        times.0,
        words.method.0,
        words.summary.1,
        frame.1,
        words.facts.1,
        times.1,
        words.method.1,
    );
    Some(Email { subject, body })
}

/// Renders the SMS text: Chinese only, always within one 70-character message (see [`fit`]
/// for how it is shortened when station names or the description are long).
pub fn sms(t: &Transition, net: &Network) -> Option<String> {
    let f = facts(t, net)?;
    let level = t.level.name_zh();
    let head = match t.kind {
        Kind::Fired => (
            format!("【riverwatch{level}预警】"),
            format!("【{level}预警】"),
        ),
        Kind::Reminder => (
            format!("【riverwatch{level}预警·持续】"),
            format!("【{level}预警·持续】"),
        ),
        Kind::Escalated => (
            format!("【riverwatch升级{level}预警】"),
            format!("【升级{level}预警】"),
        ),
        Kind::Resolved => ("【riverwatch预警解除】".into(), "【预警解除】".into()),
    };
    Some(fit(head, &f.words().sms))
}

// Crate-visible for its golden transition, which notify's tests render too.
#[cfg(test)]
pub(crate) mod tests;
