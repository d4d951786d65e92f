//! Quiet hours per bureau (SPEC §7, `[[bureau]] quiet_hours = "22:00-07:00"`): during a
//! bureau's quiet period its blue and data-level notifications wait, and at the period's end
//! they go out merged, one summary per bureau and channel; yellow and above never wait.
//!
//! Fed by the config (the window, parsed by [`QuietHours::parse`]) and by the judging task
//! (`alerts`), which asks, for each rendered notification and wall time, whether it waits
//! ([`waits`], [`QuietHours::end_after`]), keeps what waits across restarts, and at the end
//! asks for the summary's words ([`summary`]), which it addresses through the channel the
//! notifications were for. Pure: the wall time is an argument.
//!
//! The window is read in China Standard Time (UTC+8), the time the bureaus work in; it may
//! wrap midnight (`22:00-07:00` is quiet from 22:00 to 07:00 the next morning). Its start is
//! inside it, its end is not. Start and end must differ: a window of no length or of the whole
//! day would be a setting that says nothing or one that silences a level for good.

use super::alert::Level;
use super::hj212::cst;
use super::message::{Text, SMS_LIMIT};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use std::fmt;

/// A daily quiet period in UTC+8, `start` inclusive, `end` exclusive, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Minutes after local midnight.
    start: u32,
    end: u32,
}

/// Why a `quiet_hours` setting is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietError(pub String);

impl fmt::Display for QuietError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `hh:mm` (two digits each, 24-hour clock) → minutes after midnight.
fn minutes(text: &str) -> Option<u32> {
    let b = text.trim().as_bytes();
    let digit = |i: usize| {
        b.get(i)
            .filter(|c| c.is_ascii_digit())
            .map(|c| u32::from(c - b'0'))
    };
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let (h, m) = (digit(0)? * 10 + digit(1)?, digit(3)? * 10 + digit(4)?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl QuietHours {
    /// Parses `"22:00-07:00"` (24-hour clock, UTC+8).
    pub fn parse(text: &str) -> Result<QuietHours, QuietError> {
        let bad = || {
            QuietError(format!(
                "{text:?} is not a daily window like \"22:00-07:00\" (hh:mm-hh:mm, UTC+8)"
            ))
        };
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start == end {
            return Err(QuietError(format!(
                "{text:?} starts and ends at the same time: a quiet period needs a length, and cannot last all day"
            )));
        }
        Ok(QuietHours { start, end })
    }

    /// Minutes after local midnight of `now`, with the seconds as a fraction dropped.
    fn minute_of(now: DateTime<Utc>) -> u32 {
        let local = now.with_timezone(&cst());
        local.hour() * 60 + local.minute()
    }

    /// Whether `now` falls in a quiet period.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let m = Self::minute_of(now);
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }

    /// The end of the quiet period `now` falls in; `None` when `now` is not quiet.
    pub fn end_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.contains(now) {
            return None;
        }
        let local = now.with_timezone(&cst());
        let end = NaiveTime::from_hms_opt(self.end / 60, self.end % 60, 0)?;
        let today = cst()
            .from_local_datetime(&local.date_naive().and_time(end))
            .single()?
            .with_timezone(&Utc);
        Some(if today > now {
            today
        } else {
            today + Duration::days(1)
        })
    }

    /// As the config writes it: `22:00-07:00`.
    pub fn text(&self) -> String {
        format!("{}-{}", hhmm(self.start), hhmm(self.end))
    }
}

/// Whether a notification of `level` waits for the end of quiet hours: blue and data do;
/// `None` is a digest of station faults and offline stations, which is data level. Yellow
/// and above never wait.
pub fn waits(level: Option<Level>) -> bool {
    level.is_none_or(|l| l <= Level::Blue)
}

/// One notification that waited, as the summary lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// When it would have gone out (wall time).
    pub at: DateTime<Utc>,
    /// Its one line: the email's subject, or the SMS or chat text.
    pub headline: String,
    /// Its full text where the headline is only a subject (an email's body); empty otherwise.
    pub detail: String,
}

fn local(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&cst())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The summary of the `notes` that waited through `hours` for `bureau` (its display name),
/// released at `released`: an email listing each (time and headline, then their full texts)
/// in Chinese, then English, and one short Chinese SMS pointing to it.
pub fn summary(bureau: &str, hours: &QuietHours, released: DateTime<Utc>, notes: &[Note]) -> Text {
    let n = notes.len();
    let window = hours.text();
    let subject = format!(
        "【riverwatch 静默时段汇总】{bureau}：{n}条蓝色/数据级通知 | Quiet-hours summary, {bureau}: {n} blue or data-level notification{}",
        if n == 1 { "" } else { "s" }
    );
    let mut zh = format!(
        "【静默时段汇总】{bureau}\n静默时段：每日 {window}（北京时间），于 {} 结束\n期间暂缓发送的蓝色预警与数据级通知共{n}条（黄色及以上预警从不暂缓）：\n",
        local(released)
    );
    let mut en = format!(
        "[Quiet-hours summary] {bureau}\nQuiet hours: {window} UTC+8 daily, ended {} UTC+8\n{n} blue or data-level notification{} held during them, listed above by time (yellow and above are never held).\n",
        local(released),
        if n == 1 { " was" } else { "s were" }
    );
    for (i, note) in notes.iter().enumerate() {
        zh.push_str(&format!(
            "  {}. {} {}\n",
            i + 1,
            local(note.at),
            note.headline
        ));
    }
    let details: Vec<(usize, &Note)> = notes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.detail.is_empty())
        .collect();
    let mut full = String::new();
    if !details.is_empty() {
        full.push_str("\n—— 原文 / Full texts ——\n");
        for (i, note) in details {
            full.push_str(&format!(
                "\n({}) {}\n{}\n",
                i + 1,
                note.headline,
                note.detail.trim_end()
            ));
        }
    }
    en.push_str("Note: issued automatically by riverwatch at the end of the bureau's quiet hours, one summary per channel.\n");
    zh.push_str("说明：本汇总由 riverwatch 在本局静默时段结束时自动发出，每个渠道一条。\n");
    let mut short = format!("【riverwatch】{bureau}静默时段内暂缓{n}条蓝色/数据级通知，详见邮件。");
    if short.chars().count() > SMS_LIMIT {
        short = format!("【riverwatch】静默时段内暂缓{n}条蓝色/数据级通知，详见邮件。");
    }
    Text {
        subject,
        body: format!("{zh}\n{en}{full}"),
        short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2026-11-26 in UTC+8.
        cst()
            .with_ymd_and_hms(2026, 11, 26, h, m, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn windows_parse_or_say_why() {
        for (text, ok) in [
            ("22:00-07:00", true),
            ("07:00-22:00", true),
            ("00:00-23:59", true),
            ("22:00-22:00", false),
            ("22:00", false),
            ("24:00-07:00", false),
            ("22:60-07:00", false),
            ("22h-07h", false),
            ("", false),
        ] {
            let got = QuietHours::parse(text);
            assert_eq!(got.is_ok(), ok, "{text:?}: {got:?}");
            if let Ok(q) = got {
                assert_eq!(q.text(), text);
            }
        }
        assert!(
            QuietHours::parse("22:00-22:00").is_err_and(|e| e.to_string().contains("same time"))
        );
    }

    #[test]
    fn a_window_holds_its_start_not_its_end_and_may_wrap_midnight() {
        let wrap = QuietHours::parse("22:00-07:00").expect("window");
        let day = QuietHours::parse("12:00-13:30").expect("window");
        for (q, (h, m), expected, end) in [
            (wrap, (21, 59), false, None),
            (wrap, (22, 0), true, Some(at(7, 0) + Duration::days(1))),
            (wrap, (23, 59), true, Some(at(7, 0) + Duration::days(1))),
            (wrap, (0, 0), true, Some(at(7, 0))),
            (wrap, (6, 59), true, Some(at(7, 0))),
            (wrap, (7, 0), false, None),
            (wrap, (12, 0), false, None),
            (day, (11, 59), false, None),
            (day, (12, 0), true, Some(at(13, 30))),
            (day, (13, 29), true, Some(at(13, 30))),
            (day, (13, 30), false, None),
        ] {
            let now = at(h, m);
            assert_eq!(q.contains(now), expected, "{} at {h:02}:{m:02}", q.text());
            assert_eq!(q.end_after(now), end, "{} at {h:02}:{m:02}", q.text());
        }
    }

    #[test]
    fn only_blue_and_data_wait() {
        for (level, expected) in [
            (None, true),
            (Some(Level::Data), true),
            (Some(Level::Blue), true),
            (Some(Level::Yellow), false),
            (Some(Level::Orange), false),
            (Some(Level::Red), false),
        ] {
            assert_eq!(waits(level), expected, "{level:?}");
        }
    }

    proptest::proptest! {
        /// A moment inside a window (start ≤ t < end, wrapping or not) waits, a moment outside
        /// does not, and what waits ends at the window's next end, within a day.
        #[test]
        fn inside_is_held_outside_is_not(
            start in 0u32..1440,
            len in 1u32..1440,
            offset in 0u32..1440,
            secs in 0i64..60,
            day in 0i64..400,
        ) {
            let end = (start + len) % 1440;
            let q = QuietHours::parse(&format!("{}-{}", hhmm(start), hhmm(end))).expect("window");
            let minute = (start + offset) % 1440;
            let now = at(0, 0) + Duration::days(day) + Duration::minutes(i64::from(minute)) + Duration::seconds(secs);
            let inside = offset < len;
            proptest::prop_assert_eq!(q.contains(now), inside);
            match q.end_after(now) {
                Some(e) => {
                    proptest::prop_assert!(inside);
                    proptest::prop_assert!(e > now && e - now <= Duration::days(1));
                    proptest::prop_assert_eq!(QuietHours::minute_of(e), end);
                    proptest::prop_assert!(!q.contains(e));
                }
                None => proptest::prop_assert!(!inside),
            }
            for level in [Level::Yellow, Level::Orange, Level::Red] {
                proptest::prop_assert!(!waits(Some(level)));
            }
        }
    }

    /// The summary's words, pinned.
    #[test]
    fn golden_summary() {
        let q = QuietHours::parse("22:00-07:00").expect("window");
        let notes = [
            Note {
                at: at(23, 10) - Duration::days(1),
                headline: "【riverwatch 蓝色预警】石角(界牌) 氨氮 变化过快 | Blue: rate".into(),
                detail: "氨氮 1 小时内上升 0.9 mg/L。\nNH3-N rose 0.9 mg/L in 1 h.\n".into(),
            },
            Note {
                at: at(2, 30),
                headline:
                    "【riverwatch 站点运维摘要】广州市生态环境局：1个站点离线 | Station digest"
                        .into(),
                detail: String::new(),
            },
        ];
        let text = summary("广州市生态环境局", &q, at(7, 0), &notes);
        assert_eq!(
            text.subject,
            "【riverwatch 静默时段汇总】广州市生态环境局：2条蓝色/数据级通知 | Quiet-hours summary, 广州市生态环境局: 2 blue or data-level notifications"
        );
        assert_eq!(
            text.body,
            "【静默时段汇总】广州市生态环境局
静默时段：每日 22:00-07:00（北京时间），于 2026-11-26 07:00 结束
期间暂缓发送的蓝色预警与数据级通知共2条（黄色及以上预警从不暂缓）：
  1. 2026-11-25 23:10 【riverwatch 蓝色预警】石角(界牌) 氨氮 变化过快 | Blue: rate
  2. 2026-11-26 02:30 【riverwatch 站点运维摘要】广州市生态环境局：1个站点离线 | Station digest
说明：本汇总由 riverwatch 在本局静默时段结束时自动发出，每个渠道一条。

[Quiet-hours summary] 广州市生态环境局
Quiet hours: 22:00-07:00 UTC+8 daily, ended 2026-11-26 07:00 UTC+8
2 blue or data-level notifications were held during them, listed above by time (yellow and above are never held).
Note: issued automatically by riverwatch at the end of the bureau's quiet hours, one summary per channel.

—— 原文 / Full texts ——

(1) 【riverwatch 蓝色预警】石角(界牌) 氨氮 变化过快 | Blue: rate
氨氮 1 小时内上升 0.9 mg/L。
NH3-N rose 0.9 mg/L in 1 h.
"
        );
        assert_eq!(
            text.short,
            "【riverwatch】广州市生态环境局静默时段内暂缓2条蓝色/数据级通知，详见邮件。"
        );
        assert!(text.short.chars().count() <= SMS_LIMIT);
    }
}
