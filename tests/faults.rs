//! Fault tests on real servers and real processes (SPEC §9): the daemon killed with SIGKILL
//! mid-stream, InfluxDB stopped, SMTP down while an alert fires, mosquitto restarted, the spool
//! full. Each test runs its own mosquitto, InfluxDB or SMTP server where it must stop one, and
//! prints the figures it measured (published, stored, duplicates, notifications).

mod common;

use common::{
    finish_simulate, free_port, fresh_database, influx_count, influx_exec, real_test, simulate,
    wait_for, Daemon, Private, Servers,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A two-station config on the given broker, database and SMTP port.
struct Setup<'a> {
    name: &'a str,
    dir: &'a Path,
    mqtt_port: u16,
    influx: &'a str,
    db: &'a str,
    smtp_port: u16,
    sms_url: &'a str,
    spool_max: &'a str,
    /// TOML appended to the file (extra tables).
    extra: &'a str,
}

impl<'a> Setup<'a> {
    /// The shared SMTP server and SMS gateway, a 2 GiB spool, nothing extra.
    fn new(
        servers: &'a Servers,
        name: &'a str,
        dir: &'a Path,
        mqtt_port: u16,
        influx: &'a str,
        db: &'a str,
    ) -> Setup<'a> {
        Setup {
            name,
            dir,
            mqtt_port,
            influx,
            db,
            smtp_port: servers.smtp_port,
            sms_url: &servers.sms_url,
            spool_max: "2GiB",
            extra: "",
        }
    }

    fn write(&self) -> std::path::PathBuf {
        let text = format!(
            r#"
[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
client_id = "rw-fault-{name}"

[influxdb]
url = "{influx}"
api = "v1"
database = "{db}"
flush_interval = "200ms"
timeout = "2s"

[spool]
dir = "{dir}/spool"
max_size = "{spool_max}"

[http]
listen = "127.0.0.1:0"

[smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "riverwatch test <rw@example.org>"
timeout = "5s"

[sms]
url = "{sms}"
body = '{{"to": "{{phone}}", "text": "{{text}}"}}'

{network}

{extra}
"#,
            mqtt = self.mqtt_port,
            name = self.name,
            influx = self.influx,
            db = self.db,
            dir = self.dir.display(),
            spool_max = self.spool_max,
            smtp = self.smtp_port,
            sms = self.sms_url,
            extra = self.extra,
            network = common::network_toml(self.name),
        );
        common::write_config(self.dir.join("riverwatch.toml"), &text)
    }
}

/// 20,000 QoS-1 readings with garbage mixed in; the daemon killed with SIGKILL twice and
/// InfluxDB stopped for several seconds while they flow: afterwards exactly 20,000 readings
/// are stored (a point rewritten after a crash overwrites itself, so 20,000 also means no
/// duplicates), every garbage message is dead-lettered, and the daemon is alive.
#[test]
fn a_stream_survives_two_kills_and_a_database_outage() {
    let Some((servers, _serial, dir)) = real_test("stream_faults") else {
        return;
    };
    let mut mqtt = Private::mosquitto(&dir.path().join("mqtt"));
    mqtt.start();
    let mut influx = Private::influxdb(&dir.path().join("influx"));
    influx.start();
    let db = "faults";
    influx_exec(&influx.url(), &format!("CREATE DATABASE {db}"));
    let config = Setup::new(&servers, "stream", dir.path(), mqtt.port, &influx.url(), db).write();
    let url = influx.url();
    let stored = || influx_count(&url, db, "ph", "water_quality");
    let garbage = |n: usize| {
        common::publish_to(
            mqtt.port,
            "wq/bei/shijiao/reading",
            &format!("garbage-{n} not json"),
        );
    };

    let daemon = Daemon::subscribed(&config, &dir.path().join("run1.log"));
    let began = Instant::now();
    let sim = simulate(&config, mqtt.port, &["--count", "20000", "--rate", "2000"]);
    garbage(1);

    // First kill, once a tenth is stored.
    wait_for(Duration::from_secs(60), "2,000 stored", || {
        (stored() >= 2000).then_some(())
    });
    daemon.kill();
    garbage(2);
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("run2.log"));
    garbage(3);

    // The database goes away while readings keep coming: they are spooled and acknowledged.
    wait_for(Duration::from_secs(60), "6,000 stored", || {
        (stored() >= 6000).then_some(())
    });
    influx.stop();
    let acked_before = daemon.metric("riverwatch_messages_acked_total");
    garbage(4);
    wait_for(
        Duration::from_secs(60),
        "spooled and acknowledged readings",
        || {
            (daemon.metric("riverwatch_spool_appended_total") >= 3
                && daemon.metric("riverwatch_messages_acked_total") >= acked_before + 2000)
                .then_some(())
        },
    );
    let spooled = daemon.metric("riverwatch_spool_appended_total");
    influx.start();
    garbage(5);

    // Second kill, after the database is back.
    wait_for(Duration::from_secs(60), "12,000 stored", || {
        (stored() >= 12_000).then_some(())
    });
    daemon.kill();
    garbage(6);
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("run3.log"));

    let sim = finish_simulate(sim);
    let count = wait_for(Duration::from_secs(90), "20,000 stored", || {
        let n = stored();
        (n >= 20_000).then_some(n)
    });
    wait_for(Duration::from_secs(30), "an empty spool", || {
        (daemon.metric("riverwatch_spool_batches") == 0).then_some(())
    });
    let count_after = stored();
    let took = began.elapsed();
    assert!(daemon.is_alive(), "the daemon must still run");
    assert_eq!(
        (count, count_after),
        (20_000, 20_000),
        "exactly 20,000 readings"
    );
    let dead_lines =
        std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap_or_default();
    let dead: String = dead_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            use base64::Engine;
            let b64 = v["payload"].as_str()?.to_string();
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned() + "\n")
        })
        .collect();
    for n in 1..=6 {
        assert!(
            dead.contains(&format!("garbage-{n}")),
            "garbage-{n} dead-lettered"
        );
    }
    let redeliveries = daemon.metric("riverwatch_redeliveries_total");
    let (status, _) = daemon.terminate();
    assert!(status.success());
    eprintln!(
        "stream faults: published 20000 ({sim}), stored {count_after}, duplicates 0, \
         spooled batches during the outage {spooled}, redeliveries after the last restart \
         {redeliveries}, dead letters {}, {:.1} s",
        dead.lines().count(),
        took.as_secs_f64()
    );
}

/// SMTP is down when an exceedance fires at the boundary section, and the daemon is killed
/// with SIGKILL while the emails wait: once SMTP is up, each bureau receives each notification
/// exactly once, and each phone its SMS exactly once.
#[test]
fn an_alert_arrives_once_per_recipient_across_an_smtp_outage_and_a_kill() {
    let Some((servers, _serial, dir)) = real_test("smtp_outage") else {
        return;
    };
    let db = fresh_database(&servers, "rw_smtp_outage");
    let maildir = dir.path().join("maildir");
    let mut smtp = Private::smtp(&maildir);
    let name = "smtpdown";
    let config = Setup {
        smtp_port: smtp.port,
        extra: "[sms.headers]\n\"X-Api-Key\" = { value_env = \"RW_TEST_SMS_KEY\" }\n",
        ..Setup::new(
            &servers,
            name,
            dir.path(),
            servers.mqtt_port,
            &servers.influx_v1,
            &db,
        )
    }
    .write();
    let env = [("RW_TEST_SMS_KEY", "sms-key-secret")];
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("run1.log"), &env);
    daemon.wait_log("subscribed", Duration::from_secs(15));
    for ago in [20, 10] {
        let (ts, _) = common::ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"nh3n":1.2,"do":7.5}}}}"#),
        );
    }
    daemon.wait_log("failed; retrying", Duration::from_secs(20));
    let (_, body) = daemon.http_get("/readyz");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("readyz JSON");
    assert_eq!(
        ready["smtp"]["ok"], false,
        "/readyz shows SMTP failing: {body}"
    );
    assert!(ready["outbox"]["pending"].as_u64() > Some(0), "{body}");
    // The SMS gateway is up, so both SMS go out in run 1; the kill waits until their delivery
    // is recorded. A kill between the gateway's acceptance and that record sends the SMS again
    // with the same idempotency key: at-least-once is the contract there (SPEC §9), and what
    // this test is about is the email that waits through the outage and the kill.
    wait_for(Duration::from_secs(20), "both SMS recorded as sent", || {
        let (_, text) = daemon.http_get("/metrics");
        text.lines()
            .any(|l| l == r#"riverwatch_notifications_total{channel="sms",outcome="sent"} 2"#)
            .then_some(())
    });
    daemon.kill();

    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("run2.log"), &env);
    daemon.wait_log("notifications from an earlier run", Duration::from_secs(15));
    smtp.start();
    wait_for(Duration::from_secs(60), "an empty outbox", || {
        (daemon.metric("riverwatch_outbox_pending") == 0).then_some(())
    });
    let mail = Servers {
        maildir: maildir.clone(),
        ..Servers::from_env().expect("servers")
    };
    let code = common::phone_code(name);
    let mut figures = Vec::new();
    for (bureau, phone) in [("gz", "01"), ("qy", "02")] {
        let address = format!("{bureau}-{name}@example.org");
        let emails = mail.emails_to(&address);
        let mut ids: Vec<String> = emails
            .iter()
            .filter_map(|(headers, _)| {
                headers
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                    .map(|l| l[11..].trim().to_string())
            })
            .collect();
        assert!(
            // The exceedance opens an incident, which is what a bureau is told.
            ids.iter().any(|id| id.contains("-incident-")),
            "{address} got the exceedance's incident: {ids:?}"
        );
        let total = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            total,
            "{address} got a notification twice: {ids:?}"
        );
        let phone = format!("+86130{code}{phone}");
        let mut texts = servers.sms_to(&phone);
        let sms_total = texts.len();
        assert!(sms_total > 0, "{phone} got an SMS");
        texts.sort();
        texts.dedup();
        // Each request carried the configured secret header and its own idempotency key.
        let log = std::fs::read_to_string(&servers.sms_log).unwrap_or_default();
        assert_eq!(
            texts.len(),
            sms_total,
            "{phone} got an SMS twice; the gateway's log:\n{log}\nrun 1:\n{}",
            std::fs::read_to_string(dir.path().join("run1.log")).unwrap_or_default()
        );
        let requests: Vec<serde_json::Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["body"]["to"] == phone.as_str())
            .collect();
        let mut keys: Vec<&str> = requests
            .iter()
            .map(|r| {
                assert_eq!(r["headers"]["x-api-key"], "sms-key-secret");
                r["headers"]["idempotency-key"].as_str().unwrap_or("")
            })
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            sms_total,
            "one idempotency key per SMS: {keys:?}"
        );
        assert!(
            !daemon.log_text().contains("sms-key-secret"),
            "the secret header stays out of the log"
        );
        figures.push(format!(
            "{address}: {total} emails, {phone}: {sms_total} SMS"
        ));
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
    eprintln!("smtp outage: {}", figures.join("; "));
}

/// mosquitto restarted under a running daemon: it reconnects and resubscribes within 5 s,
/// and every reading published before and after the restart is stored.
#[test]
fn a_broker_restart_is_survived_within_five_seconds_and_nothing_is_lost() {
    let Some((servers, _serial, dir)) = real_test("broker_restart") else {
        return;
    };
    let db = fresh_database(&servers, "rw_broker_restart");
    let mut mqtt = Private::mosquitto(&dir.path().join("mqtt"));
    mqtt.start();
    let config = Setup::new(
        &servers,
        "restart",
        dir.path(),
        mqtt.port,
        &servers.influx_v1,
        &db,
    )
    .write();
    let stored = || influx_count(&servers.influx_v1, &db, "ph", "water_quality");
    let daemon = Daemon::subscribed(&config, &dir.path().join("run.log"));
    finish_simulate(simulate(&config, mqtt.port, &["--count", "2000"]));
    // Stopped at once: some of those readings are still in flight or queued in the broker.
    mqtt.stop();
    let at_stop = stored();
    mqtt.start();
    let restarted = Instant::now();
    // One line per granted subscription request: the count doubles on resubscribing.
    let subscriptions = |d: &Daemon| d.log_text().matches("subscribed filters").count();
    let before = subscriptions(&daemon);
    wait_for(Duration::from_secs(5), "resubscribed within 5 s", || {
        (subscriptions(&daemon) >= 2 * before).then_some(())
    });
    let resumed = restarted.elapsed();
    // Readings older than the first run's: 1,000 minutes per station ended a minute ago.
    finish_simulate(simulate(
        &config,
        mqtt.port,
        &["--count", "2000", "--newest-minutes-ago", "2000"],
    ));
    let count = wait_for(Duration::from_secs(30), "4,000 stored", || {
        let n = stored();
        (n >= 4000).then_some(n)
    });
    assert_eq!(count, 4000);
    let (status, _) = daemon.terminate();
    assert!(status.success());
    eprintln!(
        "broker restart: stored {at_stop} of 2000 when mosquitto stopped; resubscribed {:.2} s after it returned; 4000 of 4000 stored",
        resumed.as_secs_f64()
    );
}

/// InfluxDB unreachable and a small spool: once the spool is full, acknowledgements stop (the
/// broker keeps the rest) and `/readyz` says why; when InfluxDB returns, everything is stored.
#[test]
fn a_full_spool_stops_acknowledgements_and_loses_nothing() {
    let Some((servers, _serial, dir)) = real_test("spool_full") else {
        return;
    };
    let mut mqtt = Private::mosquitto(&dir.path().join("mqtt"));
    mqtt.start();
    // Reserved, not started: the database refuses connections until the test starts it.
    let mut influx = Private::influxdb(&dir.path().join("influx"));
    let db = "spoolfull";
    let influx_url = influx.url();
    let config = Setup {
        smtp_port: free_port(),
        spool_max: "32KiB",
        ..Setup::new(
            &servers,
            "spoolfull",
            dir.path(),
            mqtt.port,
            &influx_url,
            db,
        )
    }
    .write();
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("run.log"));
    finish_simulate(simulate(&config, mqtt.port, &["--count", "1000"]));
    let body = wait_for(
        Duration::from_secs(30),
        "/readyz to report the full spool",
        || {
            let (status, body) = daemon.http_get("/readyz");
            (status == 503 && body.contains("spool full")).then_some(body)
        },
    );
    let acked = daemon.metric("riverwatch_messages_acked_total");
    let spool_bytes = daemon.metric("riverwatch_spool_bytes");
    assert!(
        acked < 1000,
        "acknowledgements stop when the spool is full: {acked}"
    );
    assert!(spool_bytes <= 32 * 1024, "{spool_bytes}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("readyz JSON");
    assert_eq!(v["ready"], false);
    assert_eq!(v["spool"]["ok"], false);
    assert_eq!(v["store"]["ok"], false);

    influx.start();
    influx_exec(&influx.url(), &format!("CREATE DATABASE {db}"));
    let url = influx.url();
    let count = wait_for(Duration::from_secs(60), "1,000 stored", || {
        let n = influx_count(&url, db, "ph", "water_quality");
        (n >= 1000).then_some(n)
    });
    assert_eq!(count, 1000);
    wait_for(Duration::from_secs(30), "ready again", || {
        (daemon.http_get("/readyz").0 == 200).then_some(())
    });
    // Stored first, acknowledged right after: the acks follow within moments.
    wait_for(Duration::from_secs(10), "all 1,000 acknowledged", || {
        (daemon.metric("riverwatch_messages_acked_total") >= 1000).then_some(())
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
    eprintln!(
        "spool full: {acked} of 1000 acknowledged when the 32 KiB spool filled ({spool_bytes} bytes); 1000 of 1000 stored after InfluxDB returned"
    );
}

/// A 3 MB payload published over MQTT is refused as too large and leaves one dead-letter line
/// under 4 KiB: its first KiB, its length and its SHA-256, which match what was sent.
#[test]
fn a_3_mb_refused_payload_leaves_a_short_dead_letter_line() {
    let Some((servers, _serial, dir)) = real_test("big_payload") else {
        return;
    };
    let db = fresh_database(&servers, "rw_big_payload");
    let mut mqtt = Private::mosquitto(&dir.path().join("mqtt"));
    mqtt.start();
    let config = Setup::new(
        &servers,
        "big-payload",
        dir.path(),
        mqtt.port,
        &servers.influx_v1,
        &db,
    )
    .write();
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("run.log"));
    // Text that differs along its length, so a cut anywhere else would not match.
    let payload: Vec<u8> = (0..3_000_000u32)
        .map(|i| b"0123456789abcdef"[((i * 7 + i / 4096) % 16) as usize])
        .collect();
    let file = dir.path().join("big.json");
    std::fs::write(&file, &payload).expect("payload written");
    // From a file: one argument of 3 MB is past the kernel's limit for a command line.
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mqtt.port.to_string(), "-q", "1"])
        .args(["-t", "wq/bei/shijiao/reading", "-f"])
        .arg(&file)
        .status()
        .expect("mosquitto_pub runs");
    assert!(status.success());
    let dead_path = dir.path().join("spool/deadletter.jsonl");
    let line = wait_for(Duration::from_secs(20), "the dead-letter line", || {
        let text = std::fs::read_to_string(&dead_path).ok()?;
        text.lines()
            .find(|l| l.contains("payload_len"))
            .map(str::to_string)
    });
    assert!(line.len() < 4096, "{} bytes", line.len());
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["topic"], "wq/bei/shijiao/reading");
    assert_eq!(v["payload_len"], 3_000_000);
    let sha: String = ring::digest::digest(&ring::digest::SHA256, &payload)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v["payload_sha256"], sha.as_str());
    use base64::Engine;
    let kept = base64::engine::general_purpose::STANDARD
        .decode(v["payload"].as_str().expect("payload"))
        .expect("base64");
    assert_eq!(kept, payload[..1024]);
    let reason = v["reason"].as_str().expect("reason");
    assert!(reason.contains("3000000"), "{reason}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dead_path)
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(daemon.metric("riverwatch_dead_letters_truncated_total"), 1);
    assert_eq!(
        daemon.metric("riverwatch_dead_letters_written_bytes_total"),
        line.len() as u64 + 1
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
    eprintln!(
        "big payload: 3,000,000 bytes refused, dead-letter line {} bytes",
        line.len()
    );
}

/// Two daemons with one client id on one broker: each connect closes the other's connection.
/// Within 15 s a log names the takeover (once) with the remedy, and the two together connect
/// fewer than 20 times in those 15 s.
#[test]
fn two_daemons_with_one_client_id_name_the_takeover_and_back_off() {
    let Some((servers, _serial, dir)) = real_test("takeover") else {
        return;
    };
    let db = fresh_database(&servers, "rw_takeover");
    let mut mqtt = Private::mosquitto(&dir.path().join("mqtt"));
    mqtt.start();
    let mut daemons = Vec::new();
    for which in ["a", "b"] {
        let sub = dir.path().join(which);
        std::fs::create_dir_all(&sub).expect("daemon dir");
        // The same name, so the same client id; each its own spool folder.
        let config = Setup::new(
            &servers,
            "takeover",
            &sub,
            mqtt.port,
            &servers.influx_v1,
            &db,
        )
        .write();
        let log = sub.join("run.log");
        daemons.push(if daemons.is_empty() {
            Daemon::subscribed(&config, &log)
        } else {
            Daemon::start(&config, &log)
        });
    }
    let began = Instant::now();
    let needle = "client-id takeover";
    let named = wait_for(Duration::from_secs(15), "a log naming the takeover", || {
        daemons.iter().find_map(|d| {
            let log = d.log_text();
            log.lines().find(|l| l.contains(needle)).map(str::to_string)
        })
    });
    let named_after = began.elapsed();
    assert!(
        named.contains("\"rw-fault-takeover\"") && named.contains("[mqtt] client_id"),
        "{named}"
    );
    // Connects, counted by each daemon, over the 15 s from the second daemon's start; checked
    // as they happen, so that a storm fails at once.
    let mut connects = 0;
    let window = Duration::from_secs(15);
    while began.elapsed() < window {
        connects = daemons
            .iter_mut()
            .map(|d| d.metric("riverwatch_mqtt_connects_total"))
            .sum();
        assert!(
            connects < 20,
            "{connects} connects after {:?}",
            began.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let takeovers: u64 = daemons
        .iter_mut()
        .map(|d| d.metric("riverwatch_mqtt_takeovers_total"))
        .sum();
    assert!(takeovers >= 1);
    for d in &daemons {
        assert!(
            d.log_text().matches(needle).count() <= 1,
            "{}",
            d.log_text()
        );
    }
    for d in daemons {
        let (status, _) = d.terminate();
        assert!(status.success());
    }
    eprintln!(
        "takeover: named after {:.2} s; {connects} connects and {takeovers} episodes in 15 s",
        named_after.as_secs_f64()
    );
}
