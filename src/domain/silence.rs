//! Silences and acknowledgements (SPEC §7, §8): which alert transitions are recorded but not
//! notified, and the rules that keep a silence from hurting.
//!
//! Fed by the HTTP API, through the shell, with the silences operators ask for ([`Draft`],
//! checked by [`Draft::check`]) and the alerts they acknowledged; asked by the judging task
//! (`alerts`), for each transition and incident event, whether its notifications are held
//! back ([`silencing`], [`muted`]). Pure: `now` is an argument.
//!
//! The rules of a silence, so that one cannot mute everything forever:
//! - it names what it matches: at least one of station, rule and parameter (an absent field
//!   matches everything, but not all three may be absent);
//! - it ends within the configured maximum (`[alerts] max_silence`, default 7 days);
//! - it matches only the levels it lists, and when it lists none, [`DEFAULT_LEVELS`] (data,
//!   blue, yellow): orange and red are muted only by a silence that names them;
//! - it records who asked (`author`) and why (`reason`), and when it `starts`.
//!
//! An incident event is matched as what opens an incident is: an `exceedance` at the station
//! the event concerns (the origin, or the reach station it names), for the incident's
//! parameter, at the incident's level. What a silence held is the shell's to keep: when the
//! silence ends while the alert still fires, the shell notifies it then.
//!
//! An acknowledged alert sends no more reminders; an escalation still goes out, since the
//! level rose after the officer acknowledged it, and so does the resolution.

use super::alert::{Kind, Level, Rule, Transition};
use super::incident::IncidentEvent;
use super::param::Param;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use std::fmt;

/// The levels a silence mutes when it lists none: never orange or red.
pub const DEFAULT_LEVELS: [Level; 3] = [Level::Data, Level::Blue, Level::Yellow];

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: String,
    pub station: Option<String>,
    pub rule: Option<Rule>,
    pub param: Option<Param>,
    /// The levels it mutes, lowest first, never empty.
    pub levels: Vec<Level>,
    /// When it was created (wall time).
    pub starts: DateTime<Utc>,
    /// When it ends (wall time): `starts` plus its duration, or the moment it was ended.
    pub until: DateTime<Utc>,
    /// Who asked for it.
    pub author: String,
    pub reason: String,
}

/// What a silence is matched against: one transition's or incident event's station, rule,
/// parameter and level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subject<'a> {
    pub station: &'a str,
    pub rule: Rule,
    pub param: Option<Param>,
    pub level: Level,
}

impl<'a> Subject<'a> {
    pub fn of(t: &'a Transition) -> Subject<'a> {
        Subject {
            station: &t.station,
            rule: t.rule,
            param: t.param,
            level: t.level,
        }
    }

    /// An incident event as an `exceedance` at the station it concerns (see the module docs).
    pub fn of_incident(e: &'a IncidentEvent) -> Subject<'a> {
        Subject {
            station: e.kind.station().unwrap_or(&e.incident.origin),
            rule: Rule::Exceedance,
            param: Some(e.incident.param),
            level: e.incident.level,
        }
    }
}

impl Silence {
    /// In force at `now`: started and not ended.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts <= now && now < self.until
    }

    pub fn matches_subject(&self, s: &Subject<'_>, now: DateTime<Utc>) -> bool {
        self.is_active(now)
            && self.levels.contains(&s.level)
            && self.station.as_deref().is_none_or(|x| x == s.station)
            && self.rule.is_none_or(|r| r == s.rule)
            && self.param.is_none_or(|p| Some(p) == s.param)
    }

    pub fn matches(&self, t: &Transition, now: DateTime<Utc>) -> bool {
        self.matches_subject(&Subject::of(t), now)
    }
}

/// A silence as asked for, its fields already parsed (unknown stations, rules and parameters
/// are the shell's to refuse, since it knows the network).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub station: Option<String>,
    pub rule: Option<Rule>,
    pub param: Option<Param>,
    /// `None`: [`DEFAULT_LEVELS`].
    pub levels: Option<Vec<Level>>,
    pub duration: Duration,
    pub author: String,
    pub reason: String,
}

/// Why a silence is refused; its `Display` is the answer's `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No station, rule or parameter: it would match every alert.
    NoMatcher,
    /// Zero or negative.
    NotPositive,
    /// Longer than `[alerts] max_silence`; carries the maximum as configured ("7d").
    TooLong {
        max: String,
    },
    /// `levels` given but empty.
    NoLevels,
    NoAuthor,
    NoReason,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NoMatcher => f.write_str(
                "a silence must name what it matches: at least one of station, rule and param",
            ),
            Refused::NotPositive => f.write_str("duration must be positive"),
            Refused::TooLong { max } => write!(
                f,
                "duration is longer than the maximum silence of {max} ([alerts] max_silence)"
            ),
            Refused::NoLevels => f.write_str(
                "levels, when given, must list at least one level (leave it out for data, blue and yellow)",
            ),
            Refused::NoAuthor => f.write_str("author is required (who asks for the silence)"),
            Refused::NoReason => f.write_str("reason is required"),
        }
    }
}

impl Draft {
    /// The silence this draft makes at `now` under the maximum duration `max` (`max_text` is
    /// how the config wrote it, for the refusal), named `id`; or why it is refused.
    pub fn check(
        self,
        id: String,
        now: DateTime<Utc>,
        max: Duration,
        max_text: &str,
    ) -> Result<Silence, Refused> {
        if self.station.is_none() && self.rule.is_none() && self.param.is_none() {
            return Err(Refused::NoMatcher);
        }
        if self.duration <= Duration::zero() {
            return Err(Refused::NotPositive);
        }
        if self.duration > max {
            return Err(Refused::TooLong {
                max: max_text.to_string(),
            });
        }
        let mut levels = match self.levels {
            Some(l) if l.is_empty() => return Err(Refused::NoLevels),
            Some(l) => l,
            None => DEFAULT_LEVELS.to_vec(),
        };
        levels.sort_unstable();
        levels.dedup();
        if self.author.trim().is_empty() {
            return Err(Refused::NoAuthor);
        }
        if self.reason.trim().is_empty() {
            return Err(Refused::NoReason);
        }
        Ok(Silence {
            id,
            station: self.station,
            rule: self.rule,
            param: self.param,
            levels,
            starts: now,
            until: now + self.duration,
            author: self.author.trim().to_string(),
            reason: self.reason,
        })
    }
}

/// The first silence in force at `now` that matches `subject`, if any.
pub fn silencing<'s>(
    subject: &Subject<'_>,
    silences: &'s [Silence],
    now: DateTime<Utc>,
) -> Option<&'s Silence> {
    silences.iter().find(|s| s.matches_subject(subject, now))
}

/// Why a transition's notifications are held back, if they are.
pub fn muted(
    t: &Transition,
    silences: &[Silence],
    acked: &HashSet<String>,
    now: DateTime<Utc>,
) -> Option<String> {
    if let Some(s) = silencing(&Subject::of(t), silences, now) {
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
            levels: DEFAULT_LEVELS.to_vec(),
            starts: now,
            until: now + chrono::Duration::hours(1),
            author: "张三".into(),
            reason: "maintenance".into(),
        };
        let nh3n = t("shijiao", Rule::Exceedance, Some(Param::Nh3n), Kind::Fired);
        let offline = t("gaoqiao", Rule::Offline, None, Kind::Fired);
        let orange = Transition {
            level: Level::Orange,
            ..nh3n.clone()
        };
        let table = [
            (silence(None, None, None), &nh3n, true),
            (silence(Some("shijiao"), None, None), &nh3n, true),
            (silence(Some("shijiao"), None, None), &offline, false),
            (silence(None, Some(Rule::Offline), None), &offline, true),
            (silence(None, Some(Rule::Offline), None), &nh3n, false),
            (silence(None, None, Some(Param::Tp)), &nh3n, false),
            (silence(None, None, Some(Param::Nh3n)), &nh3n, true),
            (silence(None, None, Some(Param::Nh3n)), &offline, false),
            // Orange is muted only by a silence that lists it.
            (silence(Some("shijiao"), None, None), &orange, false),
            (
                Silence {
                    levels: vec![Level::Orange],
                    ..silence(Some("shijiao"), None, None)
                },
                &orange,
                true,
            ),
            (
                Silence {
                    levels: vec![Level::Orange],
                    ..silence(Some("shijiao"), None, None)
                },
                &nh3n,
                false,
            ),
        ];
        let none = HashSet::new();
        for (s, tr, expected) in table {
            assert_eq!(
                muted(tr, std::slice::from_ref(&s), &none, now).is_some(),
                expected,
                "{s:?}"
            );
            let (before, later) = (s.starts - chrono::Duration::seconds(1), s.until);
            assert!(
                muted(tr, std::slice::from_ref(&s), &none, before).is_none(),
                "not begun"
            );
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

    /// The rules that keep a silence from hurting: each draft against its verdict.
    #[test]
    fn a_silence_names_what_it_matches_ends_in_time_and_spares_orange_and_red() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 26, 3, 0, 0)
            .single()
            .expect("time");
        let max = chrono::Duration::days(7);
        let draft = || Draft {
            station: Some("shijiao".into()),
            rule: None,
            param: None,
            levels: None,
            duration: chrono::Duration::hours(2),
            author: "张三".into(),
            reason: "maintenance".into(),
        };
        let ok = |levels: &[Level]| Ok(levels.to_vec());
        type Verdict = Result<Vec<Level>, Refused>;
        let table: Vec<(&str, Draft, Verdict)> = vec![
            ("station only, default levels", draft(), ok(&DEFAULT_LEVELS)),
            (
                "rule only",
                Draft {
                    station: None,
                    rule: Some(Rule::Offline),
                    ..draft()
                },
                ok(&DEFAULT_LEVELS),
            ),
            (
                "param only",
                Draft {
                    station: None,
                    param: Some(Param::Tp),
                    ..draft()
                },
                ok(&DEFAULT_LEVELS),
            ),
            (
                "no matcher",
                Draft {
                    station: None,
                    ..draft()
                },
                Err(Refused::NoMatcher),
            ),
            (
                "no matcher, even with every level",
                Draft {
                    station: None,
                    levels: Some(Level::ALL.to_vec()),
                    ..draft()
                },
                Err(Refused::NoMatcher),
            ),
            (
                "exactly the maximum",
                Draft {
                    duration: max,
                    ..draft()
                },
                ok(&DEFAULT_LEVELS),
            ),
            (
                "3650 days",
                Draft {
                    duration: chrono::Duration::days(3650),
                    ..draft()
                },
                Err(Refused::TooLong { max: "7d".into() }),
            ),
            (
                "a second over the maximum",
                Draft {
                    duration: max + chrono::Duration::seconds(1),
                    ..draft()
                },
                Err(Refused::TooLong { max: "7d".into() }),
            ),
            (
                "zero",
                Draft {
                    duration: chrono::Duration::zero(),
                    ..draft()
                },
                Err(Refused::NotPositive),
            ),
            (
                "orange and red named, sorted, once each",
                Draft {
                    levels: Some(vec![Level::Red, Level::Orange, Level::Red]),
                    ..draft()
                },
                ok(&[Level::Orange, Level::Red]),
            ),
            (
                "empty levels",
                Draft {
                    levels: Some(Vec::new()),
                    ..draft()
                },
                Err(Refused::NoLevels),
            ),
            (
                "no author",
                Draft {
                    author: "  ".into(),
                    ..draft()
                },
                Err(Refused::NoAuthor),
            ),
            (
                "no reason",
                Draft {
                    reason: String::new(),
                    ..draft()
                },
                Err(Refused::NoReason),
            ),
        ];
        for (what, d, expected) in table {
            let got = d.check("s1".into(), now, max, "7d");
            assert_eq!(got.clone().map(|s| s.levels), expected, "{what}");
            if let Ok(s) = got {
                assert_eq!((s.starts, s.author.as_str()), (now, "张三"), "{what}");
                assert!(s.until > now && s.until - now <= max, "{what}");
            }
        }
        assert!(Refused::TooLong { max: "7d".into() }
            .to_string()
            .contains("maximum silence of 7d"));
    }

    proptest::proptest! {
        /// Whatever it names, a silence that does not list orange or red never mutes them.
        #[test]
        fn a_silence_without_levels_never_mutes_orange_or_red(
            station in proptest::option::of("shijiao|gaoqiao"),
            rule in proptest::option::of(proptest::sample::select(Rule::ALL.to_vec())),
            param in proptest::option::of(proptest::sample::select(vec![Param::Nh3n, Param::Tp, Param::Do])),
            level in proptest::sample::select(vec![Level::Orange, Level::Red]),
            hours in 1i64..=168,
        ) {
            let now = Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).single().expect("time");
            let draft = Draft {
                station: station.clone(),
                rule,
                param,
                levels: None,
                duration: chrono::Duration::hours(hours),
                author: "a".into(),
                reason: "r".into(),
            };
            if let Ok(s) = draft.check("s".into(), now, chrono::Duration::days(7), "7d") {
                let subject = Subject {
                    station: station.as_deref().unwrap_or("shijiao"),
                    rule: rule.unwrap_or(Rule::Exceedance),
                    param,
                    level,
                };
                proptest::prop_assert!(!s.matches_subject(&subject, now));
            }
        }
    }
}
