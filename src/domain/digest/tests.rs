//! The digest model: which transitions become entries, how entries group into one digest per
//! bureau per interval, that nothing is lost or repeated across a restart or a crash around a
//! release, and the words operators read (golden tests).

use super::*;
use crate::domain::alert::{Evidence, Level};
use crate::domain::network::fixtures::{network, station};
use crate::domain::network::Network;
use chrono::TimeZone;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
}

fn secs(n: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(n)
}

const INTERVAL: i64 = 900;

/// A station-fault entry (`fired` or `resolved`) for pH at `station`, the episode beginning
/// `since` seconds after t0.
fn fault(station: &str, change: Change, since: i64) -> Entry {
    Entry {
        station: station.into(),
        rule: Rule::StationFault,
        param: Some(Param::Ph),
        alert_id: format!(
            "{station}-station_fault-ph-{}",
            secs(since).format("%Y%m%dT%H%M%SZ")
        ),
        change,
        since: secs(since),
        at: secs(since + if change == Change::Resolved { 600 } else { 0 }),
        cause: if change == Change::Fired {
            Cause::Fault {
                reason: "instrument flag D".into(),
            }
        } else {
            Cause::None
        },
    }
}

fn transition(rule: Rule, kind: Kind, context: Context) -> Transition {
    let ev = Evidence {
        ts: secs(60),
        value: 7.1,
        class: None,
    };
    Transition {
        station: "shijiao".into(),
        rule,
        param: (rule != Rule::Offline).then_some(Param::Ph),
        kind,
        state: kind.state(),
        level: Level::Data,
        alert_id: "shijiao-x".into(),
        since: secs(0),
        evidence: ev,
        peak: ev,
        context,
        follows: None,
        incident: None,
    }
}

#[test]
fn only_data_level_fired_and_resolved_transitions_are_entries() {
    let fault_ctx = Context::Fault {
        reason: crate::domain::alert::FaultReason::Flag(crate::domain::param::DataFlag::D),
    };
    let offline_ctx = Context::Offline { last: secs(-30) };
    // (rule, kind, context, expected change and cause)
    let cases = [
        (
            Rule::StationFault,
            Kind::Fired,
            fault_ctx.clone(),
            Some((
                Change::Fired,
                Cause::Fault {
                    reason: "instrument flag D".into(),
                },
            )),
        ),
        (
            Rule::StationFault,
            Kind::Resolved,
            Context::None,
            Some((Change::Resolved, Cause::None)),
        ),
        (
            Rule::Offline,
            Kind::Fired,
            offline_ctx,
            Some((Change::Fired, Cause::Offline { last: secs(-30) })),
        ),
        (
            Rule::Offline,
            Kind::Resolved,
            Context::None,
            Some((Change::Resolved, Cause::None)),
        ),
        (Rule::StationFault, Kind::Reminder, fault_ctx, None),
        (Rule::Exceedance, Kind::Fired, Context::None, None),
        (Rule::Trend, Kind::Resolved, Context::None, None),
    ];
    for (rule, kind, context, expected) in cases {
        let got = Entry::of(&transition(rule, kind, context)).map(|e| {
            assert_eq!((e.since, e.at, e.rule), (secs(0), secs(60), rule));
            (e.change, e.cause)
        });
        assert_eq!(got, expected, "{rule:?} {kind:?}");
    }
}

/// One step of a scenario: add an entry for a bureau at a second, or release at a second.
enum Step {
    Add(&'static str, Entry, i64),
    Release(i64),
}

/// A released digest as the table writes it: (bureau, opened, released, the entries' stations
/// and changes), times in seconds after t0.
type Seen = (String, i64, i64, Vec<(String, Change)>);

/// Runs `steps` on a fresh model; returns every digest released.
fn check(steps: Vec<Step>) -> Vec<Seen> {
    let mut d = Digests::new(Duration::seconds(INTERVAL));
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Add(bureau, e, at) => {
                d.add(bureau, e, secs(at));
            }
            Step::Release(at) => {
                for g in d.release(secs(at)) {
                    out.push((
                        g.bureau.clone(),
                        (g.opened - t0()).num_seconds(),
                        (g.released - t0()).num_seconds(),
                        g.entries
                            .iter()
                            .map(|e| (e.station.clone(), e.change))
                            .collect(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn entries_group_into_one_digest_per_bureau_per_interval() {
    use Change::{Fired, Resolved};
    use Step::{Add, Release};
    let s = |id: &str, c: Change| (id.to_string(), c);
    // (what happens, the digests released)
    let cases: Vec<(&str, Vec<Step>, Vec<Seen>)> = vec![
        (
            "twenty faults within the interval: one digest, released an interval after the first",
            (0..20)
                .map(|i| Add("qingyuan", fault(&format!("s{i:02}"), Fired, i), i * 10))
                .chain([Release(899), Release(900), Release(1000)])
                .collect(),
            vec![(
                "qingyuan".into(),
                0,
                900,
                (0..20).map(|i| s(&format!("s{i:02}"), Fired)).collect(),
            )],
        ),
        (
            "an entry after the interval opens the next batch",
            vec![
                Add("qingyuan", fault("a", Fired, 0), 0),
                Add("qingyuan", fault("b", Fired, 0), 900),
                Release(950),
                Release(1800),
                Release(1849),
                Release(1850),
            ],
            vec![
                ("qingyuan".into(), 0, 950, vec![s("a", Fired)]),
                ("qingyuan".into(), 900, 1850, vec![s("b", Fired)]),
            ],
        ),
        (
            "the next digest waits an interval after the last one",
            // The batch opened at 0 is released late (the daemon was down), at 1000; the entry
            // of 950 opened the next batch, which waits an interval after that release.
            vec![
                Add("qingyuan", fault("a", Fired, 0), 0),
                Add("qingyuan", fault("b", Fired, 0), 950),
                Release(1000),
                Release(1850),
                Release(1899),
                Release(1900),
            ],
            vec![
                ("qingyuan".into(), 0, 1000, vec![s("a", Fired)]),
                ("qingyuan".into(), 950, 1900, vec![s("b", Fired)]),
            ],
        ),
        (
            "bureaus are digested apart",
            vec![
                Add("qingyuan", fault("a", Fired, 0), 0),
                Add("guangzhou", fault("b", Fired, 0), 100),
                Release(900),
                Release(1000),
            ],
            vec![
                ("qingyuan".into(), 0, 900, vec![s("a", Fired)]),
                ("guangzhou".into(), 100, 1000, vec![s("b", Fired)]),
            ],
        ),
        (
            "a fault that fires and clears within the interval is one digest of both",
            vec![
                Add("qingyuan", fault("a", Fired, 0), 0),
                Add("qingyuan", fault("a", Resolved, 0), 600),
                Release(900),
            ],
            vec![(
                "qingyuan".into(),
                0,
                900,
                vec![s("a", Fired), s("a", Resolved)],
            )],
        ),
        (
            "the same transition twice (a redelivery) is one entry",
            vec![
                Add("qingyuan", fault("a", Fired, 0), 0),
                Add("qingyuan", fault("a", Fired, 0), 5),
                Release(900),
            ],
            vec![("qingyuan".into(), 0, 900, vec![s("a", Fired)])],
        ),
        (
            "the same transition after its digest went out (a restart) is not sent again",
            vec![
                Add("qingyuan", fault("a", Fired, 0), 0),
                Release(900),
                Add("qingyuan", fault("a", Fired, 0), 905),
                Add("qingyuan", fault("a", Resolved, 0), 910),
                Release(1810),
            ],
            vec![
                ("qingyuan".into(), 0, 900, vec![s("a", Fired)]),
                ("qingyuan".into(), 910, 1810, vec![s("a", Resolved)]),
            ],
        ),
        (
            "nothing pending, nothing released",
            vec![Release(0), Release(100_000)],
            vec![],
        ),
    ];
    for (name, steps, expected) in cases {
        assert_eq!(check(steps), expected, "{name}");
    }
}

#[test]
fn lines_merge_an_episode_and_keep_its_cause() {
    let d = Digest {
        bureau: "qingyuan".into(),
        opened: secs(0),
        released: secs(900),
        entries: vec![
            fault("b", Change::Fired, 0),
            fault("a", Change::Resolved, -3000),
            fault("b", Change::Resolved, 0),
            fault("c", Change::Fired, 10),
        ],
    };
    let lines: Vec<(&str, bool, Option<i64>)> = d
        .lines()
        .iter()
        .map(|l| {
            (
                l.station,
                matches!(l.cause, Cause::Fault { .. }),
                l.cleared.map(|c| (c - t0()).num_seconds()),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("a", false, Some(-2400)),
            ("b", true, Some(600)),
            ("c", true, None)
        ]
    );
    assert_eq!(d.id(), "digest-qingyuan-20261126T020000Z");
    assert_eq!(d.key(), "digest.qingyuan.20261126t020000z");
}

// ---- properties ------------------------------------------------------------------------

/// An operation on the model: (bureau 0–2, station 0–5, change, at which second), or a
/// release at a second.
#[derive(Debug, Clone)]
enum Op {
    Add(usize, usize, bool, i64),
    Release(i64),
}

const BUREAUS: [&str; 3] = ["guangzhou", "qingyuan", "third"];

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0usize..3, 0usize..6, any::<bool>(), 0i64..120).prop_map(|(b, s, r, dt)| Op::Add(b, s, r, dt)),
        1 => (0i64..1200).prop_map(Op::Release),
    ];
    proptest::collection::vec(op, 1..80)
}

/// The entry of an `Op::Add`: one episode per station (started at t0) fired or resolved.
fn entry_of(station: usize, resolved: bool) -> Entry {
    let change = if resolved {
        Change::Resolved
    } else {
        Change::Fired
    };
    fault(&format!("s{station}"), change, 0)
}

/// An entry as added: (bureau, alert id, change, arrival).
type Added = (String, String, Change, DateTime<Utc>);

/// Runs `ops` on `d`, time moving forward by each op's seconds from `clock`; returns the
/// digests released and the entries added.
fn play(d: &mut Digests, ops: &[Op], clock: &mut DateTime<Utc>) -> (Vec<Digest>, Vec<Added>) {
    let mut released = Vec::new();
    let mut added = Vec::new();
    for op in ops {
        match *op {
            Op::Add(b, s, r, dt) => {
                *clock += Duration::seconds(dt);
                let e = entry_of(s, r);
                let key = (BUREAUS[b].to_string(), e.alert_id.clone(), e.change, *clock);
                if d.add(BUREAUS[b], e, *clock) {
                    added.push(key);
                }
            }
            Op::Release(dt) => {
                *clock += Duration::seconds(dt);
                released.extend(d.release(*clock));
            }
        }
    }
    (released, added)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Every entry added is released exactly once, in a digest of its bureau opened at most
    /// an interval before it arrived; a bureau's digests are at least an interval apart.
    #[test]
    fn every_entry_is_released_once_and_digests_keep_their_interval(ops in ops()) {
        let interval = Duration::seconds(INTERVAL);
        let mut d = Digests::new(interval);
        let mut clock = t0();
        let (mut released, added) = play(&mut d, &ops, &mut clock);
        // Long enough for every pending batch, one interval each.
        for _ in 0..200 {
            clock += interval;
            released.extend(d.release(clock));
        }
        prop_assert!(d.is_empty());
        // Each released entry consumes the addition it came from: one of its bureau, alert
        // and change that arrived within the digest's interval.
        let mut unreleased = added.clone();
        for g in &released {
            prop_assert!(g.released >= g.opened + interval);
            for e in &g.entries {
                let at = unreleased.iter().position(|a| {
                    a.0 == g.bureau
                        && a.1 == e.alert_id
                        && a.2 == e.change
                        && g.opened <= a.3
                        && a.3 < g.opened + interval
                });
                prop_assert!(at.is_some(), "released but never added in its interval: {e:?}");
                if let Some(at) = at {
                    unreleased.remove(at);
                }
            }
        }
        prop_assert!(unreleased.is_empty(), "never released: {unreleased:?}");
        for b in BUREAUS {
            let times: Vec<_> = released.iter().filter(|g| g.bureau == b).map(|g| g.released).collect();
            for w in times.windows(2) {
                prop_assert!(w[1] - w[0] >= interval, "{b}: {w:?}");
            }
        }
    }

    /// A restart at any point (the saved queues restored) changes nothing that follows.
    #[test]
    fn a_restart_at_any_point_changes_nothing(ops in ops(), cut in 0usize..80) {
        let interval = Duration::seconds(INTERVAL);
        let cut = cut.min(ops.len());
        let mut straight = Digests::new(interval);
        let mut clock = t0();
        let (first, _) = play(&mut straight, &ops[..cut], &mut clock);
        let mut restarted = Digests::restore(interval, straight.save());
        prop_assert_eq!(&restarted.save(), &straight.save());
        let mut c2 = clock;
        let (a, _) = play(&mut straight, &ops[cut..], &mut clock);
        let (b, _) = play(&mut restarted, &ops[cut..], &mut c2);
        prop_assert_eq!(a, b);
        prop_assert!(first.iter().all(|g| g.released >= g.opened + interval));
    }

    /// A crash after a digest went to the outbox but before the model was saved: the
    /// restarted model (the state before the release) releases it again, later, after more
    /// entries arrived — with exactly the same entries under the same key, so the outbox's
    /// duplicate is the same notification.
    #[test]
    fn a_digest_released_again_after_a_crash_is_the_same_digest(
        before in ops(),
        after in ops(),
        delay in 0i64..3000,
    ) {
        let interval = Duration::seconds(INTERVAL);
        let mut d = Digests::new(interval);
        let mut clock = t0();
        play(&mut d, &before, &mut clock);
        // Release everything due, one release at a time, remembering the state before each.
        for _ in 0..20 {
            clock += Duration::seconds(300);
            let saved = d.save();
            let out = d.release(clock);
            if out.is_empty() {
                continue;
            }
            // Crash: the state before this release comes back; time has moved on.
            let mut again = Digests::restore(interval, saved);
            let mut c2 = clock + Duration::seconds(delay);
            let (later, _) = play(&mut again, &after, &mut c2);
            let mut all = later;
            for _ in 0..40 {
                c2 += interval;
                all.extend(again.release(c2));
            }
            for g in &out {
                let twin: Vec<&Digest> = all.iter().filter(|h| h.key() == g.key()).collect();
                prop_assert_eq!(twin.len(), 1, "{} released {} times", g.key(), twin.len());
                prop_assert_eq!(&twin[0].entries, &g.entries);
            }
            break;
        }
    }
}

// ---- the words -------------------------------------------------------------------------

/// The fixture network with twenty more Qingyuan stations, `s01` … `s20` (站点01 …).
fn twenty() -> Network {
    let mut net = network();
    for i in 1..=20 {
        let mut s = station(&format!("s{i:02}"), "qingyuan", 3, false);
        s.name = format!("站点{i:02}");
        net.stations.push(s);
    }
    net
}

fn digest(entries: Vec<Entry>) -> Digest {
    Digest {
        bureau: "qingyuan".into(),
        opened: secs(0),
        released: secs(900),
        entries,
    }
}

#[test]
fn twenty_faults_make_one_digest_golden() {
    let net = twenty();
    let d = digest(
        (1..=20)
            .map(|i| fault(&format!("s{i:02}"), Change::Fired, i * 5))
            .collect(),
    );
    let t = text::text(&d, &net);
    assert_eq!(
        t.subject,
        "【riverwatch 站点运维摘要】清远市生态环境局：20个站点设备故障 | Station digest, 清远市生态环境局: 20 stations with a fault or offline"
    );
    assert_eq!(
        t.short,
        "【riverwatch数据】清远市生态环境局：20个站点设备故障，详见邮件"
    );
    let zh_lines: Vec<String> = (1..=20)
        .map(|i| {
            format!(
                "  {i}. 站点{i:02}（s{i:02}）pH值：设备故障，自 2026-11-26 10:{:02} 起；instrument flag D\n",
                i * 5 / 60
            )
        })
        .collect();
    let en_lines: Vec<String> = (1..=20)
        .map(|i| {
            format!(
                "  {i}. 站点{i:02} (s{i:02}) pH (ph): station fault since 2026-11-26 10:{:02} UTC+8; instrument flag D\n",
                i * 5 / 60
            )
        })
        .collect();
    let expected = format!(
        "【站点运维摘要】清远市生态环境局\n\
         汇总时段：2026-11-26 10:00 至 10:15（北京时间）\n\
         未恢复：20项，涉及20个站点\n\
         {}\
         说明：本摘要汇总站点设备故障与离线（数据级告警），由 riverwatch 自动发出，每个汇总时段最多一封；水质预警另行发送。\n\
         \n\
         [Station digest] 清远市生态环境局\n\
         Period: 2026-11-26 10:00 to 10:15 UTC+8\n\
         Still open: 20, at 20 stations\n\
         {}\
         Note: station faults and offline stations (data level), issued automatically by riverwatch, at most one digest per period; water-quality alerts are sent separately.\n",
        zh_lines.concat(),
        en_lines.concat()
    );
    assert_eq!(t.body, expected);
}

#[test]
fn a_mixed_digest_golden() {
    let net = network();
    let offline = Entry {
        station: "qixinggang".into(),
        rule: Rule::Offline,
        param: None,
        alert_id: "qixinggang-offline-station-20261126T015000Z".into(),
        change: Change::Fired,
        since: secs(-600),
        at: secs(-600),
        cause: Cause::Offline {
            last: secs(-8 * 3600 - 600),
        },
    };
    let mut gone = fault("shijiao", Change::Resolved, -7200);
    gone.param = Some(Param::Nh3n);
    let d = digest(vec![offline, gone]);
    let t = text::text(&d, &net);
    assert_eq!(
        t.subject,
        "【riverwatch 站点运维摘要】清远市生态环境局：1个站点离线，1项已恢复 | Station digest, 清远市生态环境局: 1 station with a fault or offline, 1 cleared"
    );
    assert_eq!(
        t.short,
        "【riverwatch数据】清远市生态环境局：qixinggang section离线，1项已恢复，详见邮件"
    );
    let expected = "\
【站点运维摘要】清远市生态环境局
汇总时段：2026-11-26 10:00 至 10:15（北京时间）
未恢复：1项，涉及1个站点
  1. qixinggang section（qixinggang）：站点离线，自 2026-11-26 09:50 起；最后数据 2026-11-26 01:50
已恢复：1项
  1. shijiao section（shijiao）氨氮：设备故障，2026-11-26 08:00 至 08:10
说明：本摘要汇总站点设备故障与离线（数据级告警），由 riverwatch 自动发出，每个汇总时段最多一封；水质预警另行发送。

[Station digest] 清远市生态环境局
Period: 2026-11-26 10:00 to 10:15 UTC+8
Still open: 1, at 1 station
  1. qixinggang section (qixinggang): offline since 2026-11-26 09:50 UTC+8; last reading 2026-11-26 01:50 UTC+8
Cleared: 1
  1. shijiao section (shijiao) ammonia nitrogen (NH3-N) (nh3n): station fault, 2026-11-26 08:00 to 08:10 UTC+8
Note: station faults and offline stations (data level), issued automatically by riverwatch, at most one digest per period; water-quality alerts are sent separately.
";
    assert_eq!(t.body, expected);
}

#[test]
fn only_cleared_golden() {
    let t = text::text(
        &digest(vec![fault("shijiao", Change::Resolved, -7200)]),
        &network(),
    );
    assert_eq!(
        t.subject,
        "【riverwatch 站点运维摘要】清远市生态环境局：1项设备故障/离线已恢复 | Station digest, 清远市生态环境局: 1 cleared"
    );
    assert_eq!(
        t.short,
        "【riverwatch数据】清远市生态环境局：1项设备故障/离线已恢复，详见邮件"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the names, the SMS fits one message and the email lists every entry.
    #[test]
    fn the_sms_fits_one_message(
        bureau_name in "[一-龥]{1,60}",
        station_name in "[一-龥a-z()]{1,60}",
        n in 1usize..30,
        cleared in 0usize..3,
    ) {
        let mut net = twenty();
        net.bureaus[1].name = bureau_name;
        for s in &mut net.stations {
            s.name = station_name.clone();
        }
        let mut entries: Vec<Entry> = (0..n)
            .map(|i| fault(&format!("s{:02}", i % 20 + 1), Change::Fired, i as i64))
            .collect();
        entries.extend((0..cleared).map(|i| fault("shijiao", Change::Resolved, -(i as i64) * 100)));
        let d = digest(entries);
        let t = text::text(&d, &net);
        prop_assert!(t.short.chars().count() <= crate::domain::message::SMS_LIMIT, "{}", t.short);
        prop_assert!(t.short.starts_with("【riverwatch数据】"));
        let listed = t.body.lines().filter(|l| l.starts_with("  ")).count();
        prop_assert_eq!(listed, 2 * d.lines().len());
    }
}
