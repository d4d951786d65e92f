//! What riverwatch publishes on MQTT (SPEC §3), seen by a client outside riverwatch
//! (`mosquitto_sub -t 'riverwatch/#'`) on a mosquitto of the test's own: the retained
//! `riverwatch/status` (`online` on connect, `offline` by the last will after a SIGKILL and
//! before a clean stop), every alert transition and incident event of a scripted exceedance on
//! `riverwatch/alerts/<station>` with the documented fields, and an alert made while the
//! broker is down delivered once it returns.

mod common;

use common::{publish_to, real_test, wait_for, Daemon, Private, Servers};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// A config on the broker at `port`, with a fresh InfluxDB database, the shared SMTP server and
/// SMS gateway; `network` edits the test network's text.
fn config(
    servers: &Servers,
    name: &str,
    dir: &Path,
    port: u16,
    network: impl Fn(String) -> String,
) -> PathBuf {
    let text = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
client_id = "rw-test-{name}"

{store}

[spool]
dir = "{dir}/spool"

[http]
listen = "127.0.0.1:0"

[smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "riverwatch test <rw@example.org>"

[sms]
url = "{sms}"
body = '{{"to": "{{phone}}", "text": "{{text}}"}}'

{network}
"#,
        smtp = servers.smtp_port,
        sms = servers.sms_url,
        dir = dir.display(),
        store = common::v1_store(
            servers,
            &common::fresh_database(servers, &format!("rw_{name}"))
        ),
        network = network(common::network_toml(name)),
    );
    common::write_config(dir.join("riverwatch.toml"), &text)
}

/// One message as `mosquitto_sub` saw it.
#[derive(Debug)]
struct Seen {
    retained: bool,
    topic: String,
    json: Value,
}

/// `mosquitto_sub -t 'riverwatch/#'` at QoS 1, its messages read on a thread. With an `id`, a
/// persistent session (`-c -i id`): the broker keeps what arrives while it is away.
struct Watcher {
    child: Child,
    seen: Receiver<Seen>,
}

/// Published retained before a watcher starts: its arrival says the subscription is granted.
const MARKER: &str = "riverwatch/test/marker";

impl Watcher {
    fn start(port: u16, id: Option<&str>) -> Watcher {
        let port = port.to_string();
        let mut args = vec![
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "1",
            "-t",
            "riverwatch/#",
            "-F",
            "%r %t %p",
        ];
        if let Some(id) = id {
            args.extend(["-c", "-i", id]);
        }
        let mut child = Command::new("mosquitto_sub")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts");
        let out = child.stdout.take().expect("stdout");
        let (tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let (Some(r), Some(topic), Some(payload)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let json = serde_json::from_str(payload).unwrap_or(Value::String(payload.into()));
                let seen = Seen {
                    retained: r == "1",
                    topic: topic.to_string(),
                    json,
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        let watcher = Watcher { child, seen };
        watcher.next_on(MARKER, Duration::from_secs(10));
        watcher
    }

    /// The next message on `topic`, skipping others.
    fn next_on(&self, topic: &str, limit: Duration) -> Seen {
        wait_for(limit, &format!("a message on {topic}"), || {
            self.seen
                .recv_timeout(Duration::from_millis(100))
                .ok()
                .filter(|s| s.topic == topic)
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private mosquitto, started, with the retained marker.
fn broker(dir: &Path) -> Private {
    let mut mqtt = Private::mosquitto(&dir.join("mqtt"));
    mqtt.start();
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mqtt.port.to_string()])
        .args(["-q", "1", "-r", "-t", MARKER, "-m", "ready"])
        .status()
        .expect("mosquitto_pub runs");
    assert!(status.success());
    mqtt
}

/// A status message: (state, started_at), after checking its shape. (Whether it is retained
/// shows only to a new subscription: MQTT clears the flag for subscribers already there.)
fn status(seen: &Seen, client_id: &str) -> (String, String) {
    let v = &seen.json;
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert_eq!(v["client_id"], client_id, "{v}");
    let started = v["started_at"].as_str().expect("started_at").to_string();
    let at = chrono::DateTime::parse_from_rfc3339(&started).expect("started_at is RFC 3339");
    let age = chrono::Utc::now() - at.with_timezone(&chrono::Utc);
    assert!(age < chrono::Duration::minutes(5), "{v}");
    (v["state"].as_str().unwrap_or_default().to_string(), started)
}

/// The status online after the start, each transition of a scripted exceedance at the
/// boundary section (fired yellow, escalated orange, resolved) and the incident it opens on
/// `riverwatch/alerts/shijiao` with the schema's fields; after a SIGKILL `offline` by the last
/// will, retained for a subscriber that comes later; after a restart `online` again with a new
/// start time, and `offline` before a clean stop.
#[test]
fn status_and_every_alert_transition_reach_subscribers() {
    let Some((servers, _serial, dir)) = real_test("mqtt_out") else {
        return;
    };
    let mqtt = broker(dir.path());
    let name = "mqttout";
    let client_id = format!("rw-test-{name}");
    let config = config(&servers, name, dir.path(), mqtt.port, |n| n);
    let watch = Watcher::start(mqtt.port, None);
    let daemon = Daemon::subscribed(&config, &dir.path().join("run1.log"));
    let (state, started) = status(
        &watch.next_on("riverwatch/status", Duration::from_secs(15)),
        &client_id,
    );
    assert_eq!(state, "online");
    let retained =
        Watcher::start(mqtt.port, None).next_on("riverwatch/status", Duration::from_secs(10));
    assert!(retained.retained, "{retained:?}");
    assert_eq!(status(&retained, &client_id), (state, started.clone()));

    // NH3-N at a class-Ⅱ section (limit 0.5 mg/L): two readings of 1.2 (class Ⅳ) fire yellow,
    // 2.5 (worse than class Ⅴ) escalates to orange, two of 0.2 resolve.
    let mut script = Vec::new();
    for (ago, nh3n) in [(50, 1.2), (45, 1.2), (40, 2.5), (35, 0.2), (30, 0.2)] {
        let (ts, ms) = common::ts_minutes_ago(ago);
        publish_to(
            mqtt.port,
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"nh3n":{nh3n},"do":7.5}}}}"#),
        );
        script.push((ms, nh3n));
    }
    let mut alerts = Vec::new();
    let mut incidents = Vec::new();
    wait_for(
        Duration::from_secs(30),
        "the exceedance resolved on riverwatch/alerts/shijiao",
        || {
            let seen = watch.next_on("riverwatch/alerts/shijiao", Duration::from_secs(30));
            assert!(!seen.retained, "alerts are not retained: {seen:?}");
            let v = seen.json;
            match v["kind"].as_str() {
                Some("incident") => incidents.push(v),
                _ if v["rule"] == "exceedance" => alerts.push(v),
                _ => {}
            }
            alerts
                .iter()
                .any(|v| v["event"] == "resolved")
                .then_some(())
        },
    );
    let events: Vec<(&str, &str, &str)> = alerts
        .iter()
        .map(|v| {
            (
                v["event"].as_str().unwrap_or_default(),
                v["state"].as_str().unwrap_or_default(),
                v["level"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("fired", "firing", "yellow"),
            ("escalated", "firing", "orange"),
            ("resolved", "resolved", "orange"),
        ],
        "{alerts:#?}"
    );
    let fields = [
        "version", "kind", "id", "rule", "level", "state", "event", "station", "param", "value",
        "limit", "ts", "incident", "bureaus", "text", "key",
    ];
    for (v, reading) in alerts.iter().zip([1, 2, 4]) {
        for f in fields {
            assert!(v.get(f).is_some(), "{f} missing: {v}");
        }
        let (ms, nh3n) = script[reading];
        assert_eq!(
            (v["version"].as_i64(), v["kind"].as_str()),
            (Some(1), Some("alert"))
        );
        assert_eq!(
            (v["station"].as_str(), v["param"].as_str()),
            (Some("shijiao"), Some("nh3n"))
        );
        assert_eq!(v["value"].as_f64(), Some(nh3n), "{v}");
        assert_eq!(v["limit"].as_f64(), Some(0.5), "{v}");
        let ts = chrono::DateTime::parse_from_rfc3339(v["ts"].as_str().expect("ts")).expect("ts");
        assert_eq!(ts.timestamp_millis(), ms, "{v}");
        assert_eq!(v["bureaus"], serde_json::json!(["guangzhou", "qingyuan"]));
        assert_eq!(v["id"], alerts[0]["id"], "one episode");
        let text = v["text"].as_str().expect("text");
        assert!(!text.is_empty() && text.chars().count() <= 70, "{text}");
    }
    let keys: std::collections::BTreeSet<_> = alerts.iter().map(|v| v["key"].to_string()).collect();
    assert_eq!(keys.len(), 3, "one key per transition");
    let opened = incidents
        .iter()
        .find(|v| v["event"] == "opened")
        .unwrap_or_else(|| panic!("the incident opened: {incidents:#?}"));
    assert_eq!(opened["state"], "open");
    assert_eq!(opened["id"], alerts[0]["incident"], "{opened}");
    assert_eq!(opened["param"], "nh3n");

    // SIGKILL: the broker publishes the last will, retained.
    daemon.kill();
    let (state, dead) = status(
        &watch.next_on("riverwatch/status", Duration::from_secs(30)),
        &client_id,
    );
    assert_eq!(
        (state.as_str(), dead.as_str()),
        ("offline", started.as_str())
    );
    let late = Watcher::start(mqtt.port, None);
    let (state, _) = status(
        &late.next_on("riverwatch/status", Duration::from_secs(10)),
        &client_id,
    );
    assert_eq!(
        state, "offline",
        "a subscriber that comes later reads the will"
    );

    // A restart announces itself again; a clean stop says offline first.
    let daemon = Daemon::subscribed(&config, &dir.path().join("run2.log"));
    let (state, restarted) = status(
        &watch.next_on("riverwatch/status", Duration::from_secs(15)),
        &client_id,
    );
    assert_eq!(state, "online");
    assert!(restarted >= started, "{restarted} after {started}");
    let (exit, _) = daemon.terminate();
    assert!(exit.success(), "{exit}");
    let (state, stopped) = status(
        &watch.next_on("riverwatch/status", Duration::from_secs(10)),
        &client_id,
    );
    assert_eq!(
        (state.as_str(), stopped.as_str()),
        ("offline", restarted.as_str())
    );
}

/// The broker stops; while it is down a station goes offline (4 s cadence, no readings), and
/// the alert's delivery fails; once the broker is back, the alert arrives on
/// `riverwatch/alerts/qixinggang` for a subscriber whose session the broker kept.
#[test]
fn an_alert_made_while_the_broker_is_down_arrives_when_it_returns() {
    let Some((servers, _serial, dir)) = real_test("mqtt_out_outage") else {
        return;
    };
    let mut mqtt = broker(dir.path());
    let name = "mqttoutage";
    let config = config(&servers, name, dir.path(), mqtt.port, |n| {
        n.replace(
            "downstream = \"shijiao\"",
            "downstream = \"shijiao\"\ncadence = \"4s\"",
        )
    });
    let id = format!("rw-test-watch-{}", std::process::id());
    let watch = Watcher::start(mqtt.port, Some(&id));
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));
    let (state, _) = status(
        &watch.next_on("riverwatch/status", Duration::from_secs(15)),
        &format!("rw-test-{name}"),
    );
    assert_eq!(state, "online");
    // The watcher leaves with the broker; its session stays.
    mqtt.stop();
    drop(watch);
    let failed = "MQTT alert to riverwatch/alerts/qixinggang";
    wait_for(Duration::from_secs(30), "the MQTT alert failing", || {
        daemon
            .log_text()
            .lines()
            .any(|l| l.contains(failed) && l.contains("failed; retrying"))
            .then_some(())
    });
    mqtt.start();
    let back = std::time::Instant::now();
    let watch = Watcher::start(mqtt.port, Some(&id));
    let seen = watch.next_on("riverwatch/alerts/qixinggang", Duration::from_secs(60));
    eprintln!(
        "broker outage: the offline alert arrived {:.1} s after the broker returned",
        back.elapsed().as_secs_f64()
    );
    let v = &seen.json;
    assert_eq!(
        (
            v["kind"].as_str(),
            v["rule"].as_str(),
            v["event"].as_str(),
            v["level"].as_str(),
            v["station"].as_str()
        ),
        (
            Some("alert"),
            Some("offline"),
            Some("fired"),
            Some("data"),
            Some("qixinggang")
        ),
        "{v}"
    );
    wait_for(
        Duration::from_secs(15),
        "the MQTT alert counted as sent",
        || {
            let (_, text) = daemon.http_get("/metrics");
            text.lines()
                .any(|l| {
                    l.starts_with(
                        r#"riverwatch_notifications_total{channel="mqtt",outcome="sent"}"#,
                    )
                })
                .then_some(())
        },
    );
}
