//! Silences and acknowledgements (SPEC §7): which alert transitions are recorded but not
//! notified.
//!
//! Fed by the HTTP API, through the shell, with the silences operators created and the alerts
//! they acknowledged; asked by the judging task (`alerts`), for each transition, whether its
//! notifications are held back. Pure: `now` is an argument. A silence matches on any of
//! station, rule and parameter (an absent field matches everything) until its end time. An
//! acknowledged alert sends no more reminders; an escalation still goes out, since the level
//! rose after the officer acknowledged it, and so does the resolution.

use super::alert::{Kind, Rule, Transition};
use super::param::Param;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: String,
    pub station: Option<String>,
    pub rule: Option<Rule>,
    pub param: Option<Param>,
    pub until: DateTime<Utc>,
    pub reason: String,
}

impl Silence {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }

    pub fn matches(&self, t: &Transition, now: DateTime<Utc>) -> bool {
        self.is_active(now)
            && self.station.as_ref().is_none_or(|s| *s == t.station)
            && self.rule.is_none_or(|r| r == t.rule)
            && self.param.is_none_or(|p| Some(p) == t.param)
    }
}

/// Why a transition's notifications are held back, if they are.
pub fn muted(
    t: &Transition,
    silences: &[Silence],
    acked: &HashSet<String>,
    now: DateTime<Utc>,
) -> Option<String> {
    if let Some(s) = silences.iter().find(|s| s.matches(t, now)) {
        return Some(format!("silence {} ({})", s.id, s.reason));
    }
    (t.kind == Kind::Reminder && acked.contains(&t.alert_id))
        .then(|| format!("alert {} acknowledged", t.alert_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Context, Evidence, Level};
    use chrono::TimeZone;

    fn t(station: &str, rule: Rule, param: Option<Param>, kind: Kind) -> Transition {
        let ts = Utc
            .with_ymd_and_hms(2026, 11, 26, 2, 0, 0)
            .single()
            .expect("time");
        let ev = Evidence {
            ts,
            value: 1.0,
            class: None,
        };
        Transition {
            station: station.into(),
            rule,
            param,
            kind,
            state: kind.state(),
            level: Level::Yellow,
            alert_id: format!("{station}-{rule}"),
            since: ts,
            evidence: ev,
            peak: ev,
            context: Context::None,
            follows: None,
            incident: None,
        }
    }

    #[test]
    fn silences_match_on_their_fields_until_they_end() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 26, 3, 0, 0)
            .single()
            .expect("time");
        let silence = |station: Option<&str>, rule, param| Silence {
            id: "s1".into(),
            station: station.map(String::from),
            rule,
            param,
            until: now + chrono::Duration::hours(1),
            reason: "maintenance".into(),
        };
        let nh3n = t("shijiao", Rule::Exceedance, Some(Param::Nh3n), Kind::Fired);
        let offline = t("gaoqiao", Rule::Offline, None, Kind::Fired);
        let table = [
            (silence(None, None, None), &nh3n, true),
            (silence(Some("shijiao"), None, None), &nh3n, true),
            (silence(Some("shijiao"), None, None), &offline, false),
            (silence(None, Some(Rule::Offline), None), &offline, true),
            (silence(None, Some(Rule::Offline), None), &nh3n, false),
            (silence(None, None, Some(Param::Tp)), &nh3n, false),
            (silence(None, None, Some(Param::Nh3n)), &nh3n, true),
            (silence(None, None, Some(Param::Nh3n)), &offline, false),
        ];
        let none = HashSet::new();
        for (s, tr, expected) in table {
            assert_eq!(
                muted(tr, std::slice::from_ref(&s), &none, now).is_some(),
                expected,
                "{s:?}"
            );
            let later = s.until;
            assert!(muted(tr, &[s], &none, later).is_none(), "ended");
        }
    }

    #[test]
    fn an_acknowledged_alert_sends_no_reminder_but_escalates_and_resolves() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 26, 3, 0, 0)
            .single()
            .expect("time");
        let acked: HashSet<String> = ["shijiao-exceedance".to_string()].into();
        for (kind, expected) in [
            (Kind::Reminder, true),
            (Kind::Escalated, false),
            (Kind::Resolved, false),
        ] {
            let tr = t("shijiao", Rule::Exceedance, Some(Param::Nh3n), kind);
            assert_eq!(muted(&tr, &[], &acked, now).is_some(), expected, "{kind:?}");
        }
    }
}
