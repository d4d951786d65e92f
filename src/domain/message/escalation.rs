//! Renders an escalation (SPEC §7): a bureau did not acknowledge a yellow-or-above alert or
//! incident within its `escalate_after`, so its `escalation` recipients are told — Chinese
//! first, then English, then the notification the duty officers received.
//!
//! Fed by the judging task with the text the bureau was last sent (kept by `api::Live`) and
//! what the escalation is about; feeds the notifier. Pure; times in China Standard Time.

use super::{cut, full, Text, SMS_LIMIT};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What went unacknowledged, by whom, for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Unacknowledged<'a> {
    /// The alert's or the incident's id.
    pub id: &'a str,
    /// Whether `id` names an incident.
    pub incident: bool,
    /// The bureau's display name (广州市生态环境局).
    pub bureau: &'a str,
    /// The bureau's `escalate_after`.
    pub after: Duration,
    /// When the bureau was first notified.
    pub since: DateTime<Utc>,
    /// 1 for the first escalation, 2 for the next (after the re-notify interval), …
    pub nth: u32,
}

/// A duration as people say it: "30 分钟" / "30 min", "2 小时" / "2 h", "45 秒" / "45 s".
fn span(d: Duration) -> (String, String) {
    let s = d.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        (format!("{} 小时", s / 3600), format!("{} h", s / 3600))
    } else if s >= 60 && s % 60 == 0 {
        (format!("{} 分钟", s / 60), format!("{} min", s / 60))
    } else {
        (format!("{s} 秒"), format!("{s} s"))
    }
}

/// The escalation of `u`, around `original` (the notification the bureau was sent).
pub fn text(original: &Text, u: &Unacknowledged) -> Text {
    let (zh, en) = span(u.after);
    let (what_zh, what_en) = if u.incident {
        ("事件", "incident")
    } else {
        ("预警", "alert")
    };
    let again = if u.nth > 1 {
        (
            format!("（第 {} 次）", u.nth),
            format!(" (reminder {})", u.nth),
        )
    } else {
        (String::new(), String::new())
    };
    let subject = format!(
        "【未确认升级{}】{} {zh}内未确认 | Not acknowledged: escalated{} ({}, {en}) — {}",
        again.0, u.bureau, again.1, u.bureau, original.subject
    );
    let head = format!("【未确认升级】{}{}未确认：", u.bureau, zh.replace(' ', ""));
    let room = SMS_LIMIT.saturating_sub(head.chars().count());
    let short = format!("{head}{}", cut(&original.short, room));
    let body = format!(
        "【未确认升级】{bureau}在 {zh}内未确认以下{what_zh}{again_zh}，现通知升级联系人。\n\
         编号：{id}\n\
         首次通知：{since}（北京时间）\n\
         \n\
         [Not acknowledged: escalated] {bureau} has not acknowledged the {what_en} below within {en}{again_en}; its escalation contacts are told now.\n\
         Id: {id}\n\
         First notified: {since} UTC+8\n\
         \n\
         ---- 原通知 / the notification sent ----\n\
         {subject}\n\
         \n\
         {body}",
        bureau = u.bureau,
        again_zh = again.0,
        again_en = again.1,
        id = u.id,
        since = full(u.since),
        subject = original.subject,
        body = original.body,
    );
    Text {
        subject,
        body,
        short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::tests::{firing, named};
    use chrono::TimeZone;

    fn unacked(nth: u32, after: Duration) -> Unacknowledged<'static> {
        Unacknowledged {
            id: "shijiao-exceedance-nh3n-20261126T060000",
            incident: false,
            bureau: "广州市生态环境局",
            after,
            since: Utc
                .with_ymd_and_hms(2026, 11, 26, 2, 5, 0)
                .single()
                .expect("time"),
            nth,
        }
    }

    fn rendered(t: &Text) -> String {
        format!(
            "== subject\n{}\n== sms\n{}\n== body\n{}",
            t.subject, t.short, t.body
        )
    }

    #[test]
    fn escalations_read_as_their_golden_files() {
        let original = crate::domain::message::text(&firing(), &named()).expect("rendered");
        let cases = [
            (
                "escalation.first",
                unacked(1, Duration::from_secs(1800)),
                include_str!("golden/escalation.first.txt"),
            ),
            (
                "escalation.again",
                unacked(2, Duration::from_secs(7200)),
                include_str!("golden/escalation.again.txt"),
            ),
        ];
        for (name, u, golden) in cases {
            let got = rendered(&text(&original, &u));
            assert_eq!(
                got.trim_end(),
                golden.trim_end(),
                "<<<golden {name}\n{got}\n>>>golden"
            );
        }
    }

    #[test]
    fn the_sms_stays_one_message_and_says_who_did_not_acknowledge() {
        let original = crate::domain::message::text(&firing(), &named()).expect("rendered");
        for secs in [3, 59, 60, 1800, 3600, 5400, 86_400] {
            let t = text(&original, &unacked(1, Duration::from_secs(secs)));
            assert!(t.short.chars().count() <= SMS_LIMIT, "{secs}: {}", t.short);
            assert!(
                t.short.starts_with("【未确认升级】广州市生态环境局"),
                "{}",
                t.short
            );
            assert!(t.subject.contains("Not acknowledged: escalated"));
            assert!(t.body.contains(&original.body));
        }
    }
}
