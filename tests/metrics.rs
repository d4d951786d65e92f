//! `/metrics` as Prometheus reads it, with real servers: a live scrape passes `promtool check
//! metrics` (installed by tests/servers.sh), and each state gauge moves with a scenario — a
//! station reporting (freshness), a sensor failing QC (its valid-value age grows while the
//! station stays fresh), an exceedance (a firing alert and an open incident), an SMS gateway
//! that is down (its channel failing), a logger connected over HJ 212 TCP, a payload refused
//! (dead-letter bytes) — beside the build and process metrics.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

/// The value of the one sample `name{labels}` in a scrape, if present (`labels` as written,
/// e.g. `{station="shijiao"}`; empty for none).
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs `promtool check metrics` on a scrape; returns what it printed when it found problems.
fn promtool(text: &str) -> Result<(), String> {
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Err(format!(
                "promtool cannot run ({e}); tests/servers.sh installs it"
            ))
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("scrape to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn a_live_scrape_passes_promtool_and_each_state_gauge_moves() {
    let Some((servers, _serial, dir)) = real_test("metrics") else {
        return;
    };
    let db = fresh_database(&servers, "rw_metrics");
    let config = two_station_config(&servers, "metrics", dir.path(), &v1_store(&servers, &db));
    // The SMS gateway is a port nothing listens on, so the SMS channel fails; a TCP listener
    // for loggers.
    let closed = free_port();
    let tcp = free_port();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&servers.sms_url, &format!("http://127.0.0.1:{closed}/send"))
        .replace(
            "[http]",
            &format!("[hj212_tcp]\nlisten = \"127.0.0.1:{tcp}\"\n\n[http]"),
        );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));
    daemon.wait_log("HJ 212 TCP listening", Duration::from_secs(15));

    let (_, before) = daemon.http_get("/metrics");
    promtool(&before).unwrap_or_else(|e| panic!("promtool on the first scrape: {e}\n{before}"));
    let version = format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        sample(&before, "riverwatch_build_info", &version),
        Some(1.0)
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(sample(&before, name, "").is_some(), "{name} in\n{before}");
    }
    assert!(sample(&before, "process_resident_memory_bytes", "").unwrap() > 1e6);
    for level in ["data", "blue", "yellow", "orange", "red"] {
        let l = format!("{{level=\"{level}\"}}");
        assert_eq!(sample(&before, "riverwatch_alerts_firing", &l), Some(0.0));
        assert_eq!(sample(&before, "riverwatch_incidents_open", &l), Some(0.0));
    }
    let shijiao = "{station=\"shijiao\"}";
    assert_eq!(
        sample(
            &before,
            "riverwatch_station_last_reading_age_seconds",
            shijiao
        ),
        None,
        "no reading yet"
    );
    assert_eq!(
        sample(
            &before,
            "riverwatch_notify_channel_failing",
            "{channel=\"sms\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "riverwatch_hj212_tcp_connections", ""),
        Some(0.0)
    );

    // 石角: a valid reading 20 minutes ago, then two, 10 and 5 minutes ago, whose DO (30 mg/L)
    // fails the gross range test and whose NH3-N (1.2 mg/L against class Ⅱ, twice) is a yellow
    // exceedance.
    let (old, _) = ts_minutes_ago(20);
    let (mid, _) = ts_minutes_ago(10);
    let (new, _) = ts_minutes_ago(5);
    servers.publish(
        "wq/bei/shijiao/reading",
        &format!(
            r#"[{{"ts":"{old}","values":{{"ph":7.4,"do":7.5,"nh3n":0.3}}}},{{"ts":"{mid}","values":{{"ph":7.4,"do":30.0,"nh3n":1.2}}}},{{"ts":"{new}","values":{{"ph":7.4,"do":30.0,"nh3n":1.2}}}}]"#
        ),
    );
    // A payload that is not JSON: refused and dead-lettered.
    servers.publish("wq/bei/shijiao/reading", "not json");
    let logger = std::net::TcpStream::connect(("127.0.0.1", tcp)).expect("TCP connect");
    let after = wait_for(
        Duration::from_secs(30),
        "the readings acknowledged, the SMS channel failing and the logger counted",
        || {
            let (_, text) = daemon.http_get("/metrics");
            let failing = sample(
                &text,
                "riverwatch_notify_channel_failing",
                "{channel=\"sms\"}",
            );
            let tcp = sample(&text, "riverwatch_hj212_tcp_connections", "");
            let acked = sample(&text, "riverwatch_messages_acked_total", "");
            (failing == Some(1.0) && tcp == Some(1.0) && acked == Some(2.0)).then_some(text)
        },
    );
    drop(logger);
    promtool(&after).unwrap_or_else(|e| panic!("promtool after the scenario: {e}\n{after}"));

    let age = sample(
        &after,
        "riverwatch_station_last_reading_age_seconds",
        shijiao,
    )
    .unwrap_or_else(|| panic!("石角's reading age in\n{after}"));
    assert!((290.0..400.0).contains(&age), "reading age {age}");
    let valid = |param: &str| {
        sample(
            &after,
            "riverwatch_station_last_valid_age_seconds",
            &format!("{{station=\"shijiao\",param=\"{param}\"}}"),
        )
        .unwrap_or_else(|| panic!("{param}'s valid age in\n{after}"))
    };
    assert!(
        (290.0..400.0).contains(&valid("nh3n")),
        "NH3-N valid 5 min ago"
    );
    assert!(
        (1190.0..1300.0).contains(&valid("do")),
        "DO's last valid value is the reading 20 min ago, the newer ones failed QC: {}",
        valid("do")
    );
    assert_eq!(
        sample(
            &after,
            "riverwatch_station_last_reading_age_seconds",
            "{station=\"qixinggang\"}"
        ),
        None,
        "a station not heard from has no series"
    );
    assert_eq!(
        sample(&after, "riverwatch_dead_letters_written_total", ""),
        Some(1.0)
    );
    let bytes = sample(&after, "riverwatch_dead_letters_written_bytes_total", "").unwrap_or(0.0);
    assert!(bytes > 20.0, "dead-letter bytes {bytes}");
    assert_eq!(
        sample(&before, "riverwatch_dead_letters_written_bytes_total", ""),
        Some(0.0)
    );
    let yellow = "{level=\"yellow\"}";
    assert!(
        sample(&after, "riverwatch_alerts_firing", yellow).unwrap_or(0.0) >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "riverwatch_incidents_open", yellow).unwrap_or(0.0) >= 1.0,
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "riverwatch_notify_channel_failing",
            "{channel=\"email\"}"
        ),
        Some(0.0),
        "the mail server takes the emails"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
