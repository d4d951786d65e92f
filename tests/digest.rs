//! Station faults as a digest to the station operators, end to end against the real servers
//! of `tests/run.sh` (mosquitto, InfluxDB 1.x, aiosmtpd, the HTTP SMS endpoint) and the real
//! daemon: twenty stations of one bureau, each with a probe reporting pH every minute.
//!
//! - Each with one isolated pH spike: QC fails the spike (and its neighbours), but no fault
//!   persists, so no station fault fires, nothing reaches the duty officers and no digest the
//!   operators.
//! - Each with a persistent fault (the instrument flags pH `D`): twenty station faults, and
//!   exactly one digest, listing all twenty, to the bureau's operators — one email and one
//!   SMS — and nothing to the duty officers of either bureau.
//! - The same faults with a SIGKILL while their digest waits: sent once, after the restart.
//!
//! Outside the runner (no RIVERWATCH_TEST_* variables) each test returns at once and says so.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The stations of the test, 测站01 … 测站20, operated by Qingyuan.
const STATIONS: usize = 20;

/// The two-station test config with Qingyuan's station operators
/// (`stations-<name>@qy.example.org`, whose address holds no duty officer's, and a phone of
/// their own), twenty more Qingyuan stations and a digest interval of `interval`.
fn config(servers: &Servers, name: &str, dir: &Path, db: &str, interval: &str) -> PathBuf {
    let path = two_station_config(servers, name, dir, &v1_store(servers, db));
    let code = phone_code(name);
    let duty_phone = format!("sms = [\"+86130{code}02\"]");
    let mut text = std::fs::read_to_string(&path).expect("config read");
    assert!(text.contains(&duty_phone), "the fixture's Qingyuan phone");
    text = text.replace(
        &duty_phone,
        &format!(
            "{duty_phone}\noperators = {{ email = [\"stations-{name}@qy.example.org\"], sms = [\"+86131{code}02\"] }}"
        ),
    );
    for i in 1..=STATIONS {
        text.push_str(&format!(
            "\n[[station]]\nid = \"d{i:02}\"\nname = \"测站{i:02}\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 3\n"
        ));
    }
    text.push_str(&format!("\n[alerts]\ndigest_interval = \"{interval}\"\n"));
    write_config(path, &text)
}

/// Twelve pH readings a minute apart ending `end_ago` minutes ago, alternating a little (no
/// flat line); `shape(i, value)` gives each reading's value and its flag, if any.
fn readings(end_ago: i64, shape: impl Fn(usize, f64) -> (f64, Option<&'static str>)) -> String {
    let items: Vec<String> = (0..12)
        .map(|i| {
            let (ts, _) = ts_minutes_ago(end_ago + 11 - i as i64);
            let base = [7.20, 7.23, 7.21, 7.24][i % 4];
            let (value, flag) = shape(i, base);
            let flags = flag.map_or(String::new(), |f| format!(r#","flags":{{"ph":"{f}"}}"#));
            format!(r#"{{"ts":"{ts}","values":{{"ph":{value}}}{flags}}}"#)
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Publishes each station's readings, one message per station.
fn publish_all(servers: &Servers, payload: &str) {
    for i in 1..=STATIONS {
        servers.publish(&format!("wq/bei/d{i:02}/reading"), payload);
    }
}

/// Counts (`select`) over the database, 0 when there is nothing.
fn count(servers: &Servers, db: &str, select: &str) -> u64 {
    influxql(&servers.influx_v1, db, select)["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

/// Every email and SMS the test's people received: duty officers of both bureaus, then
/// Qingyuan's operators.
struct Received {
    duty_emails: usize,
    duty_sms: usize,
    operator_emails: Vec<String>,
    operator_sms: Vec<String>,
}

fn received(servers: &Servers, name: &str) -> Received {
    let code = phone_code(name);
    let duty_emails = ["gz", "qy"]
        .iter()
        .map(|b| servers.emails_to(&format!("{b}-{name}@example.org")).len())
        .sum();
    let duty_sms = ["01", "02"]
        .iter()
        .map(|p| servers.sms_to(&format!("+86130{code}{p}")).len())
        .sum();
    Received {
        duty_emails,
        duty_sms,
        operator_emails: servers
            .emails_to(&format!("stations-{name}@qy.example.org"))
            .into_iter()
            .map(|(_, body)| body)
            .collect(),
        operator_sms: servers.sms_to(&format!("+86131{code}02")),
    }
}

/// Waits until the daemon holds no pending digest and no notification to deliver: from then
/// on, with no new transition, it sends nothing more.
fn settled(daemon: &mut Daemon) {
    wait_for(
        Duration::from_secs(60),
        "no digest pending, the outbox empty",
        || {
            (daemon.metric("riverwatch_digests_pending") == 0
                && daemon.metric("riverwatch_outbox_pending") == 0)
                .then_some(())
        },
    );
}

#[test]
fn twenty_isolated_ph_spikes_notify_no_one() {
    let Some((servers, _serial, dir)) = real_test("digest_spikes") else {
        return;
    };
    let name = "digest_spikes";
    let db = fresh_database(&servers, "rw_digest_spikes");
    let config = config(&servers, name, dir.path(), &db, "3s");
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));

    // One spike of 1.4 pH units in the middle of each station's minute-by-minute series.
    publish_all(
        &servers,
        &readings(2, |i, v| (if i == 6 { v + 1.4 } else { v }, None)),
    );
    let total = (12 * STATIONS) as u64;
    wait_for(Duration::from_secs(30), "every reading stored", || {
        (count(&servers, &db, "SELECT count(ph) FROM water_quality") == total).then_some(())
    });
    // QC failed each spike (the spike test settles it when the next reading arrives, and
    // fails its neighbours too): the data hold the flags ...
    let failed = wait_for(Duration::from_secs(20), "the spikes flagged", || {
        let n = count(
            &servers,
            &db,
            "SELECT count(ph_qc) FROM water_quality WHERE ph_qc = 4",
        );
        (n >= STATIONS as u64).then_some(n)
    });
    assert!(failed <= 3 * STATIONS as u64, "{failed} failed values");
    // ... but no fault persisted: no station fault, nor any other alert, was recorded.
    assert_eq!(
        count(&servers, &db, "SELECT count(alert_id) FROM wq_alert"),
        0,
        "an alert was recorded"
    );
    // Nothing is waiting for a digest either, and nothing for delivery: then nothing can be
    // sent later, and nothing was sent to anyone.
    settled(&mut daemon);
    let r = received(&servers, name);
    assert_eq!(
        (
            r.duty_emails,
            r.duty_sms,
            r.operator_emails.len(),
            r.operator_sms.len()
        ),
        (0, 0, 0, 0),
        "a message was sent: {:?}",
        r.operator_emails
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn twenty_persistent_faults_make_one_digest_for_the_operators() {
    let Some((servers, _serial, dir)) = real_test("digest_faults") else {
        return;
    };
    let name = "digest_faults";
    let db = fresh_database(&servers, "rw_digest_faults");
    // Long enough for all twenty faults to fire within one interval on a busy machine.
    let interval = Duration::from_secs(10);
    let config = config(&servers, name, dir.path(), &db, "10s");
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));

    // The instrument flags pH `D` (fault) from the fifth reading on: eight faulty values of
    // twelve, the fourth of which fires the station fault.
    publish_all(&servers, &readings(2, |i, v| (v, (i >= 4).then_some("D"))));
    let faults = || {
        count(
            &servers,
            &db,
            "SELECT count(alert_id) FROM wq_alert WHERE rule = 'station_fault'",
        )
    };
    wait_for(Duration::from_secs(30), "twenty station faults", || {
        (faults() == STATIONS as u64).then_some(())
    });
    let digest = wait_for(
        interval * 3 + Duration::from_secs(20),
        "the operators' digest",
        || {
            let r = received(&servers, name);
            (!r.operator_emails.is_empty() && !r.operator_sms.is_empty()).then_some(r)
        },
    );
    // Exactly one digest: once nothing waits for a digest or for delivery, no second one can
    // come.
    settled(&mut daemon);
    let r = received(&servers, name);
    assert_eq!(
        (r.operator_emails.len(), r.operator_sms.len()),
        (1, 1),
        "more than one digest: {:?}",
        r.operator_emails
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
    assert_eq!(faults(), STATIONS as u64, "one fault per station");

    let r = received(&servers, name);
    assert_eq!(
        (r.duty_emails, r.duty_sms),
        (0, 0),
        "the duty officers heard of a station fault"
    );
    assert_eq!((r.operator_emails.len(), r.operator_sms.len()), (1, 1));
    let body = &digest.operator_emails[0];
    assert!(
        body.contains("未恢复：20项，涉及20个站点")
            && body.contains("Still open: 20, at 20 stations"),
        "{body}"
    );
    for i in 1..=STATIONS {
        assert!(
            body.contains(&format!("测站{i:02}（d{i:02}）pH值：设备故障"))
                && body.contains(&format!("测站{i:02} (d{i:02}) pH (ph): station fault")),
            "测站{i:02} missing from the digest:\n{body}"
        );
    }
    assert_eq!(
        digest.operator_sms[0],
        "【riverwatch数据】清远市生态环境局：20个站点设备故障，详见邮件"
    );
}

/// The twenty faults fire and the daemon is killed (SIGKILL) while their digest waits for its
/// interval: the restarted daemon reads the pending digest back and sends it, once.
#[test]
fn a_digest_pending_at_a_kill_is_sent_once_after_the_restart() {
    let Some((servers, _serial, dir)) = real_test("digest_kill") else {
        return;
    };
    let name = "digest_kill";
    let db = fresh_database(&servers, "rw_digest_kill");
    let interval = Duration::from_secs(10);
    let config = config(&servers, name, dir.path(), &db, "10s");
    let daemon = Daemon::subscribed(&config, &dir.path().join("run1.log"));
    publish_all(&servers, &readings(2, |i, v| (v, (i >= 4).then_some("D"))));
    wait_for(Duration::from_secs(30), "twenty station faults", || {
        let n = count(
            &servers,
            &db,
            "SELECT count(alert_id) FROM wq_alert WHERE rule = 'station_fault'",
        );
        (n == STATIONS as u64).then_some(())
    });
    let pending = std::fs::read_to_string(dir.path().join("spool/digest.json"))
        .expect("the pending digest is on disk");
    assert!(pending.contains("d20-station_fault-ph"), "{pending}");
    daemon.kill();
    let before = received(&servers, name);

    let mut daemon = Daemon::subscribed(&config, &dir.path().join("run2.log"));
    wait_for(
        interval * 3 + Duration::from_secs(20),
        "the operators' digest",
        || {
            let r = received(&servers, name);
            (!r.operator_emails.is_empty() && !r.operator_sms.is_empty()).then_some(())
        },
    );
    settled(&mut daemon);
    let r = received(&servers, name);
    assert_eq!(
        (r.operator_emails.len(), r.operator_sms.len()),
        (1, 1),
        "the digest was sent {} times (before the kill: {})",
        r.operator_emails.len(),
        before.operator_emails.len()
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let r = received(&servers, name);
    assert_eq!((r.duty_emails, r.duty_sms), (0, 0));
    let body = &r.operator_emails[0];
    assert!(body.contains("未恢复：20项，涉及20个站点"), "{body}");
    let left = std::fs::read_to_string(dir.path().join("spool/digest.json")).unwrap_or_default();
    let left: serde_json::Value = serde_json::from_str(&left).unwrap_or_default();
    let pending: usize = left["bureaus"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| b["batches"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(pending, 0, "still pending: {left}");
}
