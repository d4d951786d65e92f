//! End-to-end tests against real servers started by `tests/run.sh`: mosquitto, InfluxDB 1.6
//! (v1 API), VictoriaMetrics (v2 write API), aiosmtpd and an HTTP SMS endpoint. The daemon is
//! the real binary; readings come from mosquitto_pub, an outside client.
//!
//! Outside the runner (no RIVERWATCH_TEST_* variables) each test returns at once and says so.

mod common;

use common::{
    fresh_database, influx_exec, real_test, servers_or_skip, ts_minutes_ago, two_station_config,
    v1_store, wait_for, Daemon, Servers,
};
use std::time::Duration;

/// Runs an InfluxQL query on the v1 API and returns the first series' rows as JSON objects.
fn influx_rows(
    url: &str,
    db: &str,
    query: &str,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-G",
            &format!("{url}/query"),
            "--data-urlencode",
            &format!("db={db}"),
            "--data-urlencode",
            "epoch=ms",
            "--data-urlencode",
            &format!("q={query}"),
        ])
        .output()
        .expect("curl runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let Some(series) = v["results"][0]["series"][0].as_object() else {
        return Vec::new();
    };
    let columns: Vec<String> = series["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            columns
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

fn f64_of(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<f64> {
    row.get(key).and_then(serde_json::Value::as_f64)
}

/// RFC 3339 (UTC+8) of `ago` before this instant, to the second: what a station stamping its
/// readings on time sends (`ts_minutes_ago` rounds to the minute, too coarse for a 10 s
/// cadence).
fn stamp_ago(ago: chrono::Duration) -> String {
    (chrono::Utc::now() - ago)
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The foundation's promise on the v1 path: every valid reading stored with its class,
/// garbage refused between good readings, an exceedance at a boundary section emailed (and
/// texted) to both bureaus once, nothing for a compliant station, a write to a missing
/// database spooled and written once the database exists, and a clean exit on SIGTERM.
#[test]
fn v1_pipeline_stores_classifies_and_alerts_both_bureaus() {
    let Some((servers, _serial, dir)) = real_test("v1_pipeline") else {
        return;
    };
    let db = format!("rw_v1_{}", std::process::id());
    let store = v1_store(&servers, &db);
    let config = two_station_config(&servers, "v1", dir.path(), &store);
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));

    // The database does not exist yet: the first write fails with 404; the batch goes to the
    // spool and is written from there once the database exists, not dropped.
    let (t1, _) = ts_minutes_ago(50);
    servers.publish(
        "wq/bei/shijiao/reading",
        &format!(r#"{{"ts":"{t1}","values":{{"ph":7.4,"do":7.8,"nh3n":0.3,"tp":0.05}}}}"#),
    );
    daemon.wait_log("not taking writes", Duration::from_secs(15));
    influx_exec(&servers.influx_v1, &format!("CREATE DATABASE {db}"));

    let (t2, _) = ts_minutes_ago(40);
    let (t3, _) = ts_minutes_ago(30);
    let (t4, _) = ts_minutes_ago(20);
    servers.publish("wq/bei/shijiao/reading", "this is not json");
    servers.publish(
        "wq/bei/shijiao/reading",
        &format!(r#"{{"ts":"{t2}","values":{{"ph":7.3,"do":7.1,"nh3n":1.2,"tp":0.06}}}}"#),
    );
    servers.publish(
        "wq/bei/nowhere/reading",
        &format!(r#"{{"ts":"{t2}","values":{{"ph":7.3}}}}"#),
    );
    servers.publish(
        "wq/bei/shijiao/reading",
        &format!(r#"{{"ts":"{t3}","values":{{"ph":7.3,"do":7.0,"nh3n":1.2,"tp":0.07}}}}"#),
    );
    servers.publish(
        "wq/bei/shijiao/reading",
        &format!(r#"{{"ts":"{t3}","values":{{"ph":15}}}}"#),
    );
    // The compliant upstream station: a single reading, then a backlog array holding one bad
    // reading between two good ones.
    servers.publish(
        "wq/bei/qixinggang/reading",
        &format!(r#"{{"ts":"{t1}","values":{{"ph":7.5,"do":8.0,"nh3n":0.2,"tp":0.04}}}}"#),
    );
    servers.publish(
        "wq/bei/qixinggang/reading",
        &format!(r#"[{{"ts":"{t2}","values":{{"ph":7.5,"do":7.9,"nh3n":0.21}}}},{{"ts":"{t3}","values":{{"nh3n":-1}}}},{{"ts":"{t4}","values":{{"ph":7.6,"do":7.7,"nh3n":0.18,"codmn":2.5}}}}]"#),
    );

    let rows = wait_for(Duration::from_secs(20), "6 readings in InfluxDB", || {
        let rows = influx_rows(&servers.influx_v1, &db, "SELECT * FROM water_quality");
        (rows.len() >= 6).then_some(rows)
    });
    assert_eq!(rows.len(), 6, "{rows:?}");
    let shijiao: Vec<_> = rows.iter().filter(|r| r["station"] == "shijiao").collect();
    let classes: Vec<_> = shijiao.iter().map(|r| f64_of(r, "wq_class")).collect();
    assert_eq!(
        classes,
        [Some(2.0), Some(4.0), Some(4.0)],
        "shijiao classes"
    );
    let nh3n: Vec<_> = shijiao.iter().map(|r| f64_of(r, "nh3n")).collect();
    assert_eq!(nh3n, [Some(0.3), Some(1.2), Some(1.2)]);
    assert!(shijiao
        .iter()
        .all(|r| r["river"] == "bei" && r["city"] == "qingyuan"));
    let upstream: Vec<_> = rows
        .iter()
        .filter(|r| r["station"] == "qixinggang")
        .map(|r| f64_of(r, "wq_class"))
        .collect();
    // DO 7.7–8.0 is class Ⅰ, NH3-N 0.18–0.21 class Ⅱ, CODMn 2.5 class Ⅱ: Ⅱ overall.
    assert_eq!(upstream, [Some(2.0), Some(2.0), Some(2.0)]);

    let alerts = wait_for(
        Duration::from_secs(10),
        "the exceedance alert point",
        || {
            let rows = influx_rows(
                &servers.influx_v1,
                &db,
                "SELECT * FROM wq_alert WHERE rule = 'exceedance'",
            );
            (!rows.is_empty()).then_some(rows)
        },
    );
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(
        (&a["station"], &a["param"], &a["level"], &a["state"]),
        (
            &"shijiao".into(),
            &"nh3n".into(),
            &"yellow".into(),
            &"firing".into()
        )
    );
    // The 0.3 → 1.2 jump also raised the blue rate warning first; the class alert is recorded.
    let rules: Vec<String> = influx_rows(&servers.influx_v1, &db, "SELECT * FROM wq_alert")
        .iter()
        .map(|r| r["rule"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(rules, ["rate", "class", "exceedance"], "in time order");
    assert_eq!(f64_of(a, "value"), Some(1.2));
    assert_eq!(f64_of(a, "limit"), Some(0.5));

    for address in ["gz-v1@example.org", "qy-v1@example.org"] {
        wait_for(Duration::from_secs(15), address, || {
            (!servers.emails_to(address).is_empty()).then_some(())
        });
    }
    let (status, took) = daemon.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");

    // One exceedance email per bureau, about the boundary section, with the facts an officer
    // needs; before it, one blue rate warning; nothing about the compliant station.
    for address in ["gz-v1@example.org", "qy-v1@example.org"] {
        let mails = servers.emails_to(address);
        let of_rule = |rule: &str| mails.iter().filter(|(_, b)| b.contains(rule)).count();
        assert_eq!(
            of_rule("规则：超标（exceedance）"),
            1,
            "{address}: {mails:?}"
        );
        assert_eq!(of_rule("规则：快速变化（rate）"), 1, "{address}: {mails:?}");
        assert_eq!(mails.len(), 2, "{address}");
        let body = &mails
            .iter()
            .find(|(_, b)| b.contains("（exceedance）"))
            .unwrap()
            .1;
        for needle in [
            "石角(界牌)（shijiao）",
            "项目：氨氮（nh3n）",
            "监测值：1.2 mg/L（Ⅳ类）",
            "水质目标：Ⅱ类（限值 ≤ 0.5 mg/L）",
            "超标倍数：1.4",
            "Value: 1.2 mg/L (class IV)",
        ] {
            assert!(
                body.contains(needle),
                "{address}: {needle:?} missing from\n{body}"
            );
        }
        assert!(
            mails.iter().all(|(_, b)| !b.contains("七星岗")),
            "nothing about the compliant station"
        );
    }
    let code = common::phone_code("v1");
    for phone in [format!("+86130{code}01"), format!("+86130{code}02")] {
        let texts = servers.sms_to(&phone);
        assert_eq!(texts.len(), 2, "{phone}: {texts:?}");
        assert!(
            texts
                .iter()
                .any(|t| t.contains("石角(界牌)氨氮1.2mg/L(Ⅳ类)")),
            "{texts:?}"
        );
    }

    // Four refusals, each in the dead-letter file with its reason.
    let dead = std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap();
    let reasons: Vec<String> = dead
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    for needle in [
        "not JSON",
        "\"nowhere\" is not configured",
        "outside 0–14",
        "negative",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle} missing from {reasons:?}"
        );
    }
}

/// The v2 write API (through the influxdb2 crate) against VictoriaMetrics: readings land with
/// their classes, garbage between them is refused.
#[test]
fn v2_pipeline_stores_readings_with_classes() {
    let Some((servers, _serial, dir)) = real_test("v2_pipeline") else {
        return;
    };
    let store = format!("[influxdb]\nurl = \"{}\"\napi = \"v2\"\norg = \"guangqing\"\nbucket = \"water\"\ntoken_file = \"token\"\nflush_interval = \"200ms\"", servers.vm);
    std::fs::write(dir.path().join("token"), "test-token\n").unwrap();
    let config = two_station_config(&servers, "v2", dir.path(), &store);
    let daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));

    let station = "qixinggang";
    let values = [(70, 0.25, 7.9), (60, 0.62, 7.4), (50, 2.4, 5.5)];
    for (i, (ago, nh3n, do_)) in values.iter().enumerate() {
        let (ts, _) = ts_minutes_ago(*ago);
        servers.publish(
            &format!("wq/bei/{station}/reading"),
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.2,"do":{do_},"nh3n":{nh3n}}},"seq":{i}}}"#),
        );
        servers.publish(
            &format!("wq/bei/{station}/reading"),
            r#"{"ts":"yesterday","values":{"ph":7}}"#,
        );
    }
    let export = |metric: &str| -> Vec<f64> {
        let _ = std::process::Command::new("curl")
            .args(["-sf", &format!("{}/internal/force_flush", servers.vm)])
            .output();
        let out = std::process::Command::new("curl")
            .args([
                "-sf",
                &format!("{}/api/v1/export", servers.vm),
                "-d",
                &format!("match[]={metric}{{station=\"{station}\"}}"),
            ])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .flat_map(|v| v["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_f64())
            .collect()
    };
    let classes = wait_for(
        Duration::from_secs(30),
        "3 classes in VictoriaMetrics",
        || {
            let c = export("water_quality_wq_class");
            (c.len() >= 3).then_some(c)
        },
    );
    // NH3-N 0.25 → Ⅱ; 0.62 → Ⅲ; 2.4 → 劣Ⅴ (6).
    assert_eq!(classes, [2.0, 3.0, 6.0]);
    assert_eq!(export("water_quality_nh3n"), [0.25, 0.62, 2.4]);
    assert_eq!(export("water_quality_do"), [7.9, 7.4, 5.5]);
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let dead = std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 3, "{dead}");
    assert!(dead.contains("not RFC 3339"), "{dead}");
    // 七星岗 is not a boundary section, but its water heads for 石角(界牌), which is: the
    // orange exceedance opens an incident both bureaus hear of.
    wait_for(Duration::from_secs(10), "the email to Qingyuan", || {
        servers
            .emails_to("qy-v2@example.org")
            .iter()
            .any(|(_, b)| b.contains("（exceedance）"))
            .then_some(())
    });
    wait_for(Duration::from_secs(10), "the email to Guangzhou", || {
        (servers.emails_to("gz-v2@example.org").len() == 1).then_some(())
    });
    let mails = servers.emails_to("qy-v2@example.org");
    let exceed: Vec<_> = mails
        .iter()
        .filter(|(_, b)| b.contains("（exceedance）"))
        .collect();
    assert_eq!(exceed.len(), 1, "{mails:?}");
    assert!(
        exceed[0].1.contains("【水质预警 · 橙色】已触发"),
        "{}",
        exceed[0].1
    );
}

/// A point the database refuses (a field type conflict in InfluxDB 1.x) is isolated by
/// splitting the batch, kept in the dead-letter file with the server's message, and the other
/// readings of the batch are stored; the messages are acknowledged, not retried forever.
#[test]
fn rejected_points_are_dead_lettered_and_the_rest_stored() {
    let Some((servers, _serial, dir)) = real_test("rejected_points") else {
        return;
    };
    let db = fresh_database(&servers, "rw_reject");
    let (t0, _) = ts_minutes_ago(90);
    let (t1, ms1) = ts_minutes_ago(80);
    // chla already stored as an integer (at the same time, so in the same shard): a float chla
    // is then a type conflict.
    let status = std::process::Command::new("curl")
        .args([
            "-sf",
            "-XPOST",
            &format!("{}/write?db={db}&precision=ms", servers.influx_v1),
            "--data-binary",
            &format!("water_quality,station=legacy chla=1i {ms1}"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let store = format!(
        "[influxdb]\nurl = \"{}\"\napi = \"v1\"\ndatabase = \"{db}\"\nflush_interval = \"2s\"",
        servers.influx_v1
    );
    let config = two_station_config(&servers, "reject", dir.path(), &store);
    let daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));
    let (t2, _) = ts_minutes_ago(70);
    // One message, three readings: the middle one carries the conflicting field.
    servers.publish(
        "wq/bei/qixinggang/reading",
        &format!(r#"[{{"ts":"{t0}","values":{{"nh3n":0.2}}}},{{"ts":"{t1}","values":{{"nh3n":0.3,"chla":0.01}}}},{{"ts":"{t2}","values":{{"nh3n":0.4}}}}]"#),
    );
    let rows = wait_for(Duration::from_secs(20), "2 readings stored", || {
        let rows = influx_rows(
            &servers.influx_v1,
            &db,
            "SELECT nh3n FROM water_quality WHERE station = 'qixinggang'",
        );
        (rows.len() >= 2).then_some(rows)
    });
    let dead_path = dir.path().join("spool/deadletter.jsonl");
    let dead = wait_for(Duration::from_secs(10), "the dead-letter record", || {
        std::fs::read_to_string(&dead_path)
            .ok()
            .filter(|t| !t.is_empty())
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let nh3n: Vec<_> = rows.iter().map(|r| f64_of(r, "nh3n")).collect();
    assert_eq!(nh3n, [Some(0.2), Some(0.4)]);
    let records: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{dead}");
    let reason = records[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 400") && reason.contains("conflict"),
        "{reason}"
    );
    use base64::Engine;
    let line = base64::engine::general_purpose::STANDARD
        .decode(records[0]["payload"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(line).unwrap().contains("chla=0.01"));
}

/// A one-bureau config with the given `[smtp]` table, and a firing NH3-N alert at its boundary
/// section rendered for it.
fn email_case(
    smtp: &str,
    address: &str,
    alert_id: &str,
) -> (riverwatch::config::Config, riverwatch::notify::outbox::Item) {
    use riverwatch::domain::alert::{Context, Evidence, Kind, Level, Rule, Transition};
    use riverwatch::domain::gb3838::Class;
    use riverwatch::domain::param::Param;
    let text = format!(
        "{smtp}\n[[bureau]]\nid = \"qingyuan\"\nname = \"清远市生态环境局\"\nemail = [\"{address}\"]\n\
         [[river]]\nid = \"bei\"\nname = \"北江\"\n\
         [[station]]\nid = \"shijiao\"\nname = \"石角(界牌)\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 2\nboundary = true\n"
    );
    let cfg = riverwatch::config::parse(
        &text,
        std::path::Path::new("/"),
        std::path::Path::new("email.toml"),
    )
    .unwrap();
    let ts = chrono::Utc::now();
    let ev = Evidence {
        ts,
        value: 1.2,
        class: Some(Class::IV),
    };
    let t = Transition {
        station: "shijiao".into(),
        rule: Rule::Exceedance,
        param: Some(Param::Nh3n),
        kind: Kind::Fired,
        state: Kind::Fired.state(),
        level: Level::Yellow,
        alert_id: alert_id.into(),
        since: ts,
        evidence: ev,
        peak: ev,
        context: Context::None,
        follows: None,
        incident: None,
    };
    // Rendering needs only the channel's kind: the SMTP sink itself is built by each test.
    let email: std::sync::Arc<dyn riverwatch::notify::Channel> =
        std::sync::Arc::new(riverwatch::notify::email::EmailSink::Folder {
            dir: std::env::temp_dir(),
            from: "riverwatch <rw@example.org>".parse().unwrap(),
        });
    let item = riverwatch::notify::render(&t, &cfg.network, &[email])
        .into_iter()
        .next()
        .expect("one email for the bureau");
    (cfg, item)
}

fn one_email_to(servers: &Servers, address: &str) -> String {
    let mails = wait_for(Duration::from_secs(10), address, || {
        let m = servers.emails_to(address);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(mails.len(), 1, "{address}");
    mails[0].1.clone()
}

/// Email over STARTTLS and over TLS (SMTPS), verifying the relay's certificate against the
/// configured CA; without that CA the certificate is not trusted and nothing is sent.
#[tokio::test]
async fn email_over_starttls_and_tls_with_a_private_ca() {
    use riverwatch::notify::email::EmailSink;
    use riverwatch::notify::SendError;

    let Some(servers) = servers_or_skip("email_over_tls") else {
        return;
    };
    let cases = [
        (
            "starttls",
            format!(
                "smtp://localhost:{}?tls=starttls",
                servers.smtp_starttls_port
            ),
        ),
        ("smtps", format!("smtps://localhost:{}", servers.smtps_port)),
    ];
    for (name, url) in cases {
        let address = format!("tls-{name}@example.org");
        let smtp = |ca: bool| {
            let ca_line = if ca {
                format!("ca_file = \"{}\"", servers.ca.display())
            } else {
                String::new()
            };
            format!("[smtp]\nurl = \"{url}\"\nfrom = \"riverwatch <rw@example.org>\"\ntimeout = \"5s\"\n{ca_line}\n")
        };
        let (untrusted_cfg, item) = email_case(&smtp(false), &address, &format!("tls-test-{name}"));
        let untrusted = EmailSink::smtp(untrusted_cfg.smtp.as_ref().unwrap(), None).unwrap();
        match untrusted.send(&item).await {
            Err(SendError::Transient(e)) => assert!(
                e.to_lowercase().contains("certificate") || e.to_lowercase().contains("tls"),
                "{name}: {e}"
            ),
            other => panic!(
                "{name}: a relay with an untrusted certificate must not get the email: {other:?}"
            ),
        }
        let (cfg, _) = email_case(&smtp(true), &address, &format!("tls-test-{name}"));
        let sink = EmailSink::smtp(cfg.smtp.as_ref().unwrap(), None).unwrap();
        sink.send(&item)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let body = one_email_to(&servers, &address);
        assert!(body.contains("监测值：1.2 mg/L（Ⅳ类）"), "{name}: {body}");
    }
}

/// SMTP AUTH with the password read from a file; a wrong password or none at all is a
/// permanent refusal (not retried), and nothing is delivered.
#[tokio::test]
async fn email_with_smtp_auth_reads_the_password_from_a_file() {
    use riverwatch::notify::email::EmailSink;
    use riverwatch::notify::SendError;

    let Some(servers) = servers_or_skip("email_auth") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let url = format!("smtp://127.0.0.1:{}", servers.smtp_auth_port);
    let smtp = |credentials: &str| {
        format!("[smtp]\nurl = \"{url}\"\nfrom = \"riverwatch <rw@example.org>\"\ntimeout = \"5s\"\n{credentials}\n")
    };
    let cases = [
        (
            "right",
            format!(
                "username = \"riverwatch\"\npassword_file = \"{}\"",
                servers.smtp_password_file.display()
            ),
            true,
        ),
        (
            "wrong",
            format!(
                "username = \"riverwatch\"\npassword_file = \"{}\"",
                wrong.display()
            ),
            false,
        ),
        ("none", String::new(), false),
    ];
    for (name, credentials, accepted) in cases {
        let address = format!("auth-{name}@example.org");
        let (cfg, item) = email_case(&smtp(&credentials), &address, &format!("auth-test-{name}"));
        let smtp_cfg = cfg.smtp.as_ref().unwrap();
        let password = smtp_cfg.password.as_ref().map(|p| p.resolve().unwrap());
        let sink = EmailSink::smtp(smtp_cfg, password).unwrap();
        let result = sink.send(&item).await;
        if accepted {
            result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(one_email_to(&servers, &address).contains("石角(界牌)"));
        } else {
            assert!(
                matches!(result, Err(SendError::Permanent(_))),
                "{name}: {result:?}"
            );
            assert!(servers.emails_to(&address).is_empty(), "{name}");
        }
    }
}

/// A message is acknowledged only after its readings are in custody: with the database
/// missing they are synced to the spool, and a daemon killed with SIGKILL then finds them there
/// at the next start (anything not yet spooled was not acknowledged, and mosquitto's persistent
/// session redelivers it); the restarted daemon stores each reading exactly once.
#[test]
fn unwritten_readings_survive_a_crash_through_the_spool() {
    let Some((servers, _serial, dir)) = real_test("crash_redelivery") else {
        return;
    };
    let db = format!("rw_crash_{}", std::process::id());
    let store = v1_store(&servers, &db);
    let config = two_station_config(&servers, "crash", dir.path(), &store);
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("first.log"));
    for (ago, nh3n) in [(30, 0.11), (20, 0.12), (10, 0.13)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/qixinggang/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"nh3n":{nh3n}}}}}"#),
        );
    }
    daemon.wait_log("not taking writes", Duration::from_secs(15));
    let wal = dir.path().join("spool/wal");
    wait_for(Duration::from_secs(15), "a spooled batch", || {
        let bytes: u64 = std::fs::read_dir(&wal)
            .ok()?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        (bytes > 0).then_some(())
    });
    daemon.kill();

    influx_exec(&servers.influx_v1, &format!("CREATE DATABASE {db}"));
    let mut daemon = Daemon::start(&config, &dir.path().join("second.log"));
    daemon.wait_log("session_present=true", Duration::from_secs(15));
    let rows = wait_for(Duration::from_secs(20), "3 redelivered readings", || {
        let rows = influx_rows(&servers.influx_v1, &db, "SELECT nh3n FROM water_quality");
        (rows.len() >= 3).then_some(rows)
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let nh3n: Vec<_> = rows.iter().map(|r| f64_of(r, "nh3n")).collect();
    assert_eq!(nh3n, [Some(0.11), Some(0.12), Some(0.13)]);
}

/// `riverwatch demo --influx-url` stores the demo's readings in a real InfluxDB.
#[test]
fn demo_writes_to_influxdb_when_asked() {
    let Some((servers, _serial, dir)) = real_test("demo_influx") else {
        return;
    };
    // The database config/demo.toml names.
    influx_exec(&servers.influx_v1, "CREATE DATABASE water");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_riverwatch"))
        .args([
            "demo",
            "--duration",
            "2d",
            "--speed",
            "200000",
            "--influx-url",
            &servers.influx_v1,
            "--out",
        ])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    common::assert_success(&out, "demo");
    let rows = influx_rows(
        &servers.influx_v1,
        "water",
        "SELECT count(nh3n) FROM water_quality WHERE station != 'pa_buoy'",
    );
    // 7 simulated stations × 48 hourly readings; the live buoy's few besides.
    assert_eq!(
        rows.first().and_then(|r| f64_of(r, "count")),
        Some(336.0),
        "{rows:?}"
    );
    let buoy = influx_rows(
        &servers.influx_v1,
        "water",
        "SELECT count(nh3n) FROM water_quality WHERE station = 'pa_buoy'",
    );
    assert!(
        buoy.first().and_then(|r| f64_of(r, "count")) >= Some(1.0),
        "{buoy:?}"
    );
    let alerts = influx_rows(
        &servers.influx_v1,
        "water",
        "SELECT * FROM wq_alert WHERE state = 'firing'",
    );
    assert!(!alerts.is_empty());
}

/// An HJ 212 frame published by mosquitto_pub is stored exactly like its JSON twin (same
/// fields, same class), and the CN=9014 acknowledgement appears on the ack topic with a valid
/// CRC once the reading is in custody.
#[test]
fn hj212_frame_is_stored_like_its_json_twin_and_acknowledged() {
    use riverwatch::domain::hj212;
    let Some((servers, _serial, dir)) = real_test("hj212") else {
        return;
    };
    let (db, daemon, acks) = common::hj212_daemon(&servers, "hj212", dir.path());

    let (ts, _) = ts_minutes_ago(30);
    let frame = common::shijiao_frame(
        &ts,
        "w01001-Rtd=7.32,w01001-Flag=N;w01009-Rtd=6.85,w01009-Flag=N;w21003-Rtd=0.82,w21003-Flag=N;w21011-Rtd=0.071,w21011-Flag=N;w01019-Rtd=2.41,w01019-Flag=N;w01010-Rtd=26.4,w01010-Flag=N;w99999-Rtd=1.5",
    );
    let local = chrono::DateTime::parse_from_rfc3339(&ts).unwrap();
    let qn = format!("{}000", local.format("%Y%m%d%H%M%S"));
    servers.publish("wq/bei/shijiao/hj212", &frame.encode());
    servers.publish("wq/bei/qixinggang/reading", &format!(r#"{{"ts":"{ts}","values":{{"ph":7.32,"do":6.85,"nh3n":0.82,"tp":0.071,"codmn":2.41,"temp":26.4}}}}"#));
    // The same frame for the wrong station is refused (MN mismatch), and no ack follows it.
    servers.publish("wq/bei/qixinggang/hj212", &frame.encode());

    let ack = acks
        .recv_timeout(Duration::from_secs(20))
        .expect("the acknowledgement arrives");
    let ack = hj212::parse(&ack).expect("the acknowledgement is a valid frame");
    assert_eq!(
        (ack.st.as_str(), ack.cn.as_str(), ack.mn.as_str(), ack.flag),
        ("91", "9014", "QY-BJ-SJ-0001", Some(4))
    );
    assert_eq!(ack.qn.as_deref(), Some(qn.as_str()));

    let rows = wait_for(Duration::from_secs(20), "both readings", || {
        let rows = influx_rows(&servers.influx_v1, &db, "SELECT * FROM water_quality");
        (rows.len() >= 2).then_some(rows)
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
    assert_eq!(rows.len(), 2, "{rows:?}");
    let strip = |r: &serde_json::Map<String, serde_json::Value>| {
        let mut r = r.clone();
        r.remove("station");
        r
    };
    assert_eq!(
        strip(&rows[0]),
        strip(&rows[1]),
        "the frame and its JSON twin are stored alike"
    );
    assert_eq!(f64_of(&rows[0], "wq_class"), Some(3.0));
    assert_eq!(f64_of(&rows[0], "nh3n"), Some(0.82));
    let dead = std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains("has no hj212_mn configured"), "{dead}");
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert_eq!(
        log.matches("w99999").count(),
        1,
        "an unknown code is logged once:\n{log}"
    );
}

/// The alert rules in the running daemon, on real servers: a slow NH3-N rise raises the blue
/// trend warning before the exceedance fires; a one-sample analyser slug raises no station
/// fault; an upstream exceedance warns the downstream bureau with the arrival
/// time; a silent station goes offline once and resolves when it reports; a value flapping
/// around its limit fires once; station faults and offline reach the operating city in
/// digests, never one by one.
#[test]
fn alert_rules_in_the_daemon() {
    let Some((servers, _serial, dir)) = real_test("alert_rules") else {
        return;
    };
    let db = fresh_database(&servers, "rw_rules");
    let store = v1_store(&servers, &db);
    let config = two_station_config(&servers, "rules", dir.path(), &store);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[[station]]\nid = \"silent\"\nname = \"静默站\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 3\ncadence = \"2s\"\n\n[alerts]\nfire_after = 2\nwindow = 3\ndigest_interval = \"2s\"\n");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));
    let alerts = |filter: &str| {
        influx_rows(
            &servers.influx_v1,
            &db,
            &format!("SELECT * FROM wq_alert WHERE {filter}"),
        )
    };

    // The silent station never reported: offline, once.
    wait_for(Duration::from_secs(20), "the offline alert", || {
        (!alerts("rule = 'offline'").is_empty()).then_some(())
    });

    // 4-hourly readings, ending two hours ago.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = now - now % 3600 - 2 * 3600;
    let at = |i: i64, n: i64| {
        chrono::DateTime::from_timestamp(end - (n - 1 - i) * 4 * 3600, 0)
            .unwrap()
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
    };
    // 石角: NH3-N rising 0.01 every 4 h (with a little noise); CODMn flapping at its limit 4.
    let shijiao: Vec<String> = (0..40)
        .map(|i| {
            let nh3n = 0.20 + 0.01 * i as f64 + if i % 2 == 0 { 0.004 } else { -0.004 };
            let codmn = if i < 20 {
                2.0
            } else if i % 2 == 0 {
                4.3
            } else {
                3.8
            };
            format!(
                r#"{{"ts":"{}","values":{{"nh3n":{nh3n:.3},"codmn":{codmn}}}}}"#,
                at(i, 40).to_rfc3339()
            )
        })
        .collect();
    servers.publish(
        "wq/bei/shijiao/reading",
        &format!("[{}]", shijiao.join(",")),
    );
    // 七星岗: a lone NH3-N spike, and TP exceeding its class Ⅱ target.
    let nh3n = [0.30, 0.31, 0.30, 2.6, 0.30, 0.31, 0.30, 0.31];
    let tp = [0.05, 0.05, 0.05, 0.05, 0.05, 0.25, 0.26, 0.27];
    let upstream: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"ts":"{}","values":{{"nh3n":{},"tp":{}}}}}"#,
                at(i, 8).to_rfc3339(),
                nh3n[i as usize],
                tp[i as usize]
            )
        })
        .collect();
    servers.publish(
        "wq/bei/qixinggang/reading",
        &format!("[{}]", upstream.join(",")),
    );
    wait_for(Duration::from_secs(20), "all 48 readings", || {
        let rows = influx_rows(
            &servers.influx_v1,
            &db,
            "SELECT count(nh3n) FROM water_quality",
        );
        (rows.first().and_then(|r| f64_of(r, "count")) == Some(48.0)).then_some(())
    });

    // The silent station reports, stamped now: its offline alert resolves. (A reading stamped
    // earlier than its offline threshold, 4 s, would be a backfill, which does not.)
    servers.publish(
        "wq/bei/silent/reading",
        &format!(
            r#"{{"ts":"{}","values":{{"ph":7.1}}}}"#,
            stamp_ago(chrono::Duration::zero())
        ),
    );
    wait_for(Duration::from_secs(20), "the offline resolution", || {
        (!alerts("rule = 'offline' AND state = 'resolved'").is_empty()).then_some(())
    });
    // Qingyuan lists no station operators: its duty officers receive the digests, which
    // hold a station fault (石角's CODMn, 2.0 twenty times, is a flat line) and the silent
    // station's outage, fired and then resolved.
    let digests = |address: &str| -> Vec<String> {
        servers
            .emails_to(address)
            .into_iter()
            .map(|(_, body)| body)
            .filter(|b| b.contains("【站点运维摘要】"))
            .collect()
    };
    wait_for(Duration::from_secs(30), "the digests", || {
        let all = digests("qy-rules@example.org").concat();
        (all.contains("：设备故障") && all.contains("静默站（silent）：站点离线，2")).then_some(())
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());

    let offline = alerts("rule = 'offline'");
    let states: Vec<&str> = offline
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["firing", "resolved"],
        "offline once, then resolved: {offline:?}"
    );

    // Slow rise: the blue trend fires before the exceedance.
    let nh3n_alerts = alerts("station = 'shijiao' AND param = 'nh3n' AND state = 'firing'");
    let first = |rule: &str| {
        nh3n_alerts
            .iter()
            .find(|r| r["rule"] == rule)
            .and_then(|r| r["time"].as_i64())
    };
    let (trend, exceed) = (
        first("trend").expect("a trend warning"),
        first("exceedance").expect("an exceedance"),
    );
    assert!(trend < exceed, "trend at {trend}, exceedance at {exceed}");
    assert_eq!(
        nh3n_alerts.iter().find(|r| r["rule"] == "trend").unwrap()["level"],
        "blue"
    );

    // A one-sample NH3-N slug at analyser spacing (4 h) is judged, not a station fault
    // (WATER.md §5.5; a lone spike at probe spacing still is one: the rules' unit tests); one
    // reading does not meet the exceedance's persistence of two.
    let spike = alerts("station = 'qixinggang' AND param = 'nh3n'");
    let rules: Vec<&str> = spike.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert!(!rules.contains(&"station_fault"), "{rules:?}");
    assert!(!rules.contains(&"exceedance"), "{rules:?}");

    // Flapping CODMn: one episode — one alert id, never resolved, never fired again (a later
    // row may escalate it to orange once NH3-N exceeds too).
    let codmn = alerts("station = 'shijiao' AND param = 'codmn' AND rule = 'exceedance'");
    let mut ids: Vec<&str> = codmn
        .iter()
        .map(|r| r["alert_id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{codmn:?}");
    assert!(codmn.iter().all(|r| r["state"] == "firing"), "{codmn:?}");
    assert_eq!(codmn[0]["level"], "yellow");

    // Upstream: 石角 is a boundary section, so both bureaus are warned of the TP arriving from
    // 七星岗 10 h after its first exceeding reading (the episode's start, in its alert id in
    // UTC+8) — in the TP incident's opening, which the `upstream` warning is part of.
    let tp_fired = alerts(
        "station = 'qixinggang' AND param = 'tp' AND rule = 'exceedance' AND state = 'firing'",
    );
    let id = tp_fired[0]["alert_id"].as_str().unwrap();
    let since =
        chrono::NaiveDateTime::parse_from_str(id.rsplit('-').next().unwrap(), "%Y%m%dT%H%M%S")
            .unwrap()
            .and_utc()
            - chrono::Duration::hours(8);
    let local = |t: chrono::DateTime<chrono::Utc>, f: &str| {
        t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
            .format(f)
            .to_string()
    };
    let arrival = since + chrono::Duration::hours(10);
    let (earliest, latest) = (
        arrival - chrono::Duration::hours(2),
        arrival + chrono::Duration::hours(2),
    );
    let window = if local(earliest, "%d") == local(latest, "%d") {
        format!(
            "{}–{}",
            local(earliest, "%m-%d %H:%M"),
            local(latest, "%H:%M")
        )
    } else {
        format!(
            "{}–{}",
            local(earliest, "%m-%d %H:%M"),
            local(latest, "%m-%d %H:%M")
        )
    };
    for address in ["qy-rules@example.org", "gz-rules@example.org"] {
        let warned: Vec<_> = servers
            .emails_to(address)
            .into_iter()
            .filter(|(_, b)| b.contains("总磷污染事件") && b.contains("事件开始"))
            .collect();
        assert_eq!(warned.len(), 1, "{address}: {warned:?}");
        assert!(
            warned[0]
                .1
                .contains(&format!("预计到达 石角(界牌)：{window}（北京时间）")),
            "{}",
            warned[0].1
        );
        assert!(warned[0].1.contains("七星岗"), "{}", warned[0].1);
    }
    // Station faults and offline went to the operating city only, in digests: never one
    // message per transition, to either bureau.
    assert!(digests("gz-rules@example.org").is_empty());
    for address in ["gz-rules@example.org", "qy-rules@example.org"] {
        assert!(
            servers
                .emails_to(address)
                .iter()
                .all(|(_, b)| !b.contains("（station_fault）") && !b.contains("（offline）")),
            "{address} got a data-level alert of its own"
        );
    }
}

/// MQTT over TLS with a username and password (the password from the environment, the CA from
/// the config), SMTP with AUTH (the password from a file): readings arrive, the alert email is
/// delivered, and at debug level no secret reaches the log. A wrong password is refused by the
/// broker, retried with backoff, and not logged either.
#[test]
fn tls_and_credentials_without_leaking_secrets() {
    let Some((servers, _serial, dir)) = real_test("tls_credentials") else {
        return;
    };
    let db = fresh_database(&servers, "rw_tls");
    let smtp_password =
        std::fs::read_to_string(std::env::var("RIVERWATCH_TEST_SMTP_PASSWORD_FILE").unwrap())
            .unwrap();
    let config = |name: &str| {
        let text = format!(
            "[mqtt]\nurl = \"mqtts://localhost:{port}\"\nclient_id = \"rw-test-{name}\"\nusername = \"riverwatch\"\npassword_env = \"RW_TEST_MQTT_PASSWORD\"\nca_file = \"{ca}\"\n\n\
             [influxdb]\nurl = \"{influx}\"\napi = \"v1\"\ndatabase = \"{db}\"\nflush_interval = \"200ms\"\n\n\
             [spool]\ndir = \"{dir}/spool-{name}\"\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\n\
             [smtp]\nurl = \"smtp://127.0.0.1:{smtp}\"\nfrom = \"riverwatch <rw@example.org>\"\nusername = \"riverwatch\"\npassword_file = \"{pw}\"\n\n\
             [[bureau]]\nid = \"qingyuan\"\nname = \"清远市生态环境局\"\nemail = [\"qy-tls@example.org\"]\n\n\
             [[river]]\nid = \"bei\"\nname = \"北江\"\n\n\
             [[station]]\nid = \"shijiao\"\nname = \"石角(界牌)\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 2\n",
            port = servers.mqtts_port,
            ca = servers.ca.display(),
            influx = servers.influx_v1,
            dir = dir.path().display(),
            smtp = servers.smtp_auth_port,
            pw = servers.smtp_password_file.display(),
        );
        common::write_config(dir.path().join(format!("{name}.toml")), &text)
    };
    let debug = [
        ("RIVERWATCH_LOG", "debug"),
        ("RW_TEST_MQTT_PASSWORD", "mqtt-test-secret"),
    ];
    let mut daemon = Daemon::start_with_env(&config("tls"), &dir.path().join("tls.log"), &debug);
    daemon.wait_log("subscribed", Duration::from_secs(15));
    for ago in [20, 10] {
        let (ts, _) = ts_minutes_ago(ago);
        let status = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "localhost",
                "-p",
                &servers.mqtts_port.to_string(),
                "--cafile",
            ])
            .arg(&servers.ca)
            .args([
                "-u",
                "station",
                "-P",
                "station-secret",
                "-q",
                "1",
                "-t",
                "wq/bei/shijiao/reading",
                "-m",
            ])
            .arg(format!(r#"{{"ts":"{ts}","values":{{"nh3n":1.1}}}}"#))
            .status()
            .unwrap();
        assert!(status.success());
    }
    wait_for(Duration::from_secs(20), "2 readings over TLS", || {
        (influx_rows(&servers.influx_v1, &db, "SELECT nh3n FROM water_quality").len() == 2)
            .then_some(())
    });
    wait_for(
        Duration::from_secs(15),
        "the email through SMTP AUTH",
        || {
            servers
                .emails_to("qy-tls@example.org")
                .iter()
                .any(|(_, b)| b.contains("（exceedance）"))
                .then_some(())
        },
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let log = std::fs::read_to_string(dir.path().join("tls.log")).unwrap();
    assert!(log.contains("DEBUG"), "the log ran at debug level");
    for secret in ["mqtt-test-secret", smtp_password.trim()] {
        assert!(!log.contains(secret), "a secret reached the log");
    }

    // A wrong password: refused by the broker, retried, and still not logged.
    let wrong = [
        ("RIVERWATCH_LOG", "debug"),
        ("RW_TEST_MQTT_PASSWORD", "not-the-secret-42"),
    ];
    let mut refused =
        Daemon::start_with_env(&config("wrong"), &dir.path().join("wrong.log"), &wrong);
    refused.wait_log("MQTT connection lost", Duration::from_secs(15));
    let (status, _) = refused.terminate();
    assert!(status.success(), "still a clean stop");
    let log = std::fs::read_to_string(dir.path().join("wrong.log")).unwrap();
    assert!(
        log.contains("NotAuthorized") || log.contains("BadUserNamePassword"),
        "{log}"
    );
    assert!(!log.contains("not-the-secret-42"));
}

/// The HTTP endpoint of a running daemon: liveness, readiness, metrics whose counters match
/// what was published, the station and alert views, and write endpoints that answer 401
/// without the bearer token; an acknowledgement and a silence survive a restart.
#[test]
fn http_endpoints_answer_and_count_what_was_published() {
    let Some((servers, _serial, dir)) = real_test("http_api") else {
        return;
    };
    let db = fresh_database(&servers, "rw_http");
    let store = v1_store(&servers, &db);
    let config = two_station_config(&servers, "http", dir.path(), &store);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\ntoken_env = \"RW_TEST_API_TOKEN\"",
    );
    std::fs::write(&config, text).unwrap();
    let env = [("RW_TEST_API_TOKEN", "api-token-for-tests")];
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("run1.log"), &env);
    daemon.wait_log("subscribed", Duration::from_secs(15));
    let addr = daemon.http_addr();

    // Five messages: three readings at the boundary section (the last two exceeding NH3-N),
    // one that is not JSON, one for a station that does not exist.
    for (ago, nh3n) in [(30, 0.3), (20, 1.2), (10, 1.2)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4,"do":7.5,"nh3n":{nh3n}}}}}"#),
        );
    }
    servers.publish("wq/bei/shijiao/reading", "not json");
    let (ts, _) = ts_minutes_ago(10);
    servers.publish(
        "wq/bei/nowhere/reading",
        &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4}}}}"#),
    );
    wait_for(Duration::from_secs(20), "5 messages acknowledged", || {
        (daemon.metric("riverwatch_messages_acked_total") >= 5).then_some(())
    });
    let (_, metrics) = daemon.http_get("/metrics");
    for line in [
        "riverwatch_messages_received_total 5",
        "riverwatch_messages_acked_total 5",
        "riverwatch_readings_received_total 3",
        "riverwatch_readings_stored_total 3",
        "riverwatch_readings_refused_total{reason=\"not_json\"} 1",
        "riverwatch_readings_refused_total{reason=\"unknown_station\"} 1",
        // NH3-N exceedance and the overall class (recorded, not notified) are yellow; the
        // jump 0.3 → 1.2 also breaches the rate rule (blue).
        "riverwatch_alerts_fired_total{level=\"yellow\",rule=\"exceedance\"} 1",
        "riverwatch_alerts_fired_total{level=\"yellow\",rule=\"class\"} 1",
        "riverwatch_alerts_fired_total{level=\"blue\",rule=\"rate\"} 1",
        "riverwatch_spool_batches 0",
        "riverwatch_mqtt_connected 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    let (status, body) = daemon.http_get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = daemon.http_get("/readyz");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, &ready["ready"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    for component in ["mqtt", "store", "spool", "outbox", "smtp", "sms"] {
        assert!(
            ready[component]["detail"].is_string(),
            "{component} in {body}"
        );
    }

    let (status, body) = daemon.http_get("/api/v1/stations");
    assert_eq!(status, 200);
    let stations: serde_json::Value = serde_json::from_str(&body).unwrap();
    let shijiao = stations
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "shijiao")
        .unwrap();
    assert_eq!(shijiao["values"]["nh3n"], 1.2);
    assert_eq!(shijiao["class"], 4, "NH3-N 1.2 is class Ⅳ");
    assert_eq!(shijiao["qc"]["nh3n"], 1);
    let alert_id = shijiao["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.contains("exceedance-nh3n"))
        .unwrap_or_else(|| panic!("an NH3-N exceedance among {}", shijiao["alerts"]))
        .to_string();
    let (_, body) = daemon.http_get("/api/v1/alerts");
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(alerts
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == alert_id.as_str()
            && a["level"] == "yellow"
            && a["acknowledged"] == false));

    // Write endpoints: 401 without the token or with a wrong one.
    let ack = format!("/api/v1/alerts/{alert_id}/ack");
    let silence = r#"{"station":"qixinggang","rule":"offline","duration":"2h","author":"张三","reason":"maintenance"}"#;
    for headers in [vec![], vec!["Authorization: Bearer wrong-token"]] {
        assert_eq!(common::http_request(&addr, "POST", &ack, &headers).0, 401);
        assert_eq!(
            common::http_post(&addr, "/api/v1/silences", &headers, silence).0,
            401
        );
    }
    let auth = ["Authorization: Bearer api-token-for-tests"];
    // An acknowledgement says who, and with the operator's token for which bureau; the alert
    // of this boundary section went to both, so it is acknowledged once both have.
    assert_eq!(common::http_request(&addr, "POST", &ack, &auth).0, 400);
    assert_eq!(
        common::http_post(&addr, &ack, &auth, r#"{"by":"值班员"}"#).0,
        400
    );
    for (bureau, acknowledged) in [("qingyuan", false), ("guangzhou", true)] {
        let (status, body) = common::http_post(
            &addr,
            &ack,
            &auth,
            &format!(r#"{{"by":"值班员","comment":"checking","bureau":"{bureau}"}}"#),
        );
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains(&format!("\"acknowledged\":{acknowledged}")),
            "{body}"
        );
    }
    let acks = common::wait_for(
        Duration::from_secs(10),
        "both acknowledgements stored",
        || {
            let rows = influx_rows(
                &servers.influx_v1,
                &db,
                "SELECT alert_id, ack_bureau FROM wq_alert WHERE state = 'acknowledged'",
            );
            (rows.len() == 2).then_some(rows)
        },
    );
    assert!(
        acks.iter().all(|r| r["alert_id"] == alert_id.as_str()),
        "{acks:?}"
    );
    let (status, body) = common::http_post(&addr, "/api/v1/silences", &auth, silence);
    assert_eq!(status, 201, "{body}");
    let (status, _) = common::http_post(
        &addr,
        "/api/v1/silences",
        &auth,
        r#"{"station":"nowhere","duration":"2h","author":"张三","reason":"x"}"#,
    );
    assert_eq!(status, 400, "an unknown station is refused");

    // Both survive a restart.
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("run2.log"), &env);
    let (_, body) = daemon.http_get("/api/v1/alerts");
    assert!(
        body.contains(&alert_id) && body.contains("\"acknowledged\":true"),
        "{body}"
    );
    let (_, body) = daemon.http_get("/api/v1/silences");
    assert!(
        body.contains("maintenance") && body.contains("offline"),
        "{body}"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

/// Issue 12, item 5, end to end: a station with a 10 s cadence falls silent and `offline`
/// fires; a reading stamped 2 h ago (a logger's backfill) is stored but neither resolves
/// `offline` nor, by restarting its clock, makes it fire again a threshold (20 s) later. The
/// first current reading resolves it: one outage, one alert id, two messages.
#[test]
fn a_backfill_during_an_outage_neither_resolves_offline_nor_fires_it_again() {
    let Some((servers, _serial, dir)) = real_test("backfill_offline") else {
        return;
    };
    let db = fresh_database(&servers, "rw_backfill");
    let store = v1_store(&servers, &db);
    let config = two_station_config(&servers, "backfill", dir.path(), &store);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[[station]]\nid = \"fast\"\nname = \"快站\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 3\ncadence = \"10s\"\n\n[alerts]\ndigest_interval = \"2s\"\n");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));
    let offline = || {
        influx_rows(
            &servers.influx_v1,
            &db,
            "SELECT state, alert_id FROM wq_alert WHERE station = 'fast' AND rule = 'offline'",
        )
    };
    let states = |rows: &[serde_json::Map<String, serde_json::Value>]| -> Vec<String> {
        rows.iter()
            .map(|r| r["state"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let stored = || {
        influx_rows(
            &servers.influx_v1,
            &db,
            "SELECT ph FROM water_quality WHERE station = 'fast'",
        )
        .len()
    };

    // Silent since the start: offline after 20 s, at the screen's next 10 s check.
    wait_for(Duration::from_secs(60), "the offline alert", || {
        (!offline().is_empty()).then_some(())
    });
    servers.publish(
        "wq/bei/fast/reading",
        &format!(
            r#"{{"ts":"{}","values":{{"ph":7.1}}}}"#,
            stamp_ago(chrono::Duration::hours(2))
        ),
    );
    // Stored, so judged: any alert point it caused went in the same write.
    wait_for(
        Duration::from_secs(20),
        "the backfilled reading stored",
        || (stored() == 1).then_some(()),
    );
    assert_eq!(
        states(&offline()),
        ["firing"],
        "the backfill resolved offline"
    );
    // Had the backfill restarted the offline clock, `offline` would fire again at the first
    // 10 s check after 20 s more: watch that long for any new offline point.
    let watch = std::time::Instant::now() + Duration::from_secs(32);
    while std::time::Instant::now() < watch {
        assert_eq!(states(&offline()), ["firing"], "a second offline point");
        std::thread::sleep(Duration::from_millis(500));
    }

    // A current reading: the station reports again.
    servers.publish(
        "wq/bei/fast/reading",
        &format!(
            r#"{{"ts":"{}","values":{{"ph":7.2}}}}"#,
            stamp_ago(chrono::Duration::zero())
        ),
    );
    let rows = wait_for(Duration::from_secs(20), "the offline resolution", || {
        let rows = offline();
        (rows.len() >= 2).then_some(rows)
    });
    assert_eq!(states(&rows), ["firing", "resolved"]);
    assert_eq!(rows[0]["alert_id"], rows[1]["alert_id"], "one episode");
    // Told in the bureau's digests (a 2 s interval here): one with the outage open, one with
    // it cleared.
    let mails = || -> Vec<String> {
        servers
            .emails_to("qy-backfill@example.org")
            .into_iter()
            .map(|(_, body)| body)
            .filter(|body| body.contains("快站（fast）：站点离线"))
            .collect()
    };
    wait_for(Duration::from_secs(20), "the two offline digests", || {
        (mails().len() >= 2).then_some(())
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let mails = mails();
    assert_eq!(
        mails.len(),
        2,
        "fired and resolved, nothing more: {mails:#?}"
    );
    let open = mails.iter().filter(|b| b.contains("未恢复：1项")).count();
    let cleared = mails.iter().filter(|b| b.contains("已恢复：1项")).count();
    assert_eq!((open, cleared), (1, 1), "{mails:#?}");
    assert_eq!(states(&offline()), ["firing", "resolved"]);
}

/// `ingest.max_age` end to end: in one array, a reading older than the configured age and one
/// from before 2000 are refused — counted, logged and dead-lettered with their time and the
/// limit — while the current reading beside them is stored.
#[test]
fn too_old_readings_are_refused_and_the_current_one_beside_them_stored() {
    let Some((servers, _serial, dir)) = real_test("too_old") else {
        return;
    };
    let db = fresh_database(&servers, "rw_too_old");
    let store = format!("{}\n\n[ingest]\nmax_age = \"30d\"", v1_store(&servers, &db));
    let config = two_station_config(&servers, "too_old", dir.path(), &store);
    let mut daemon = Daemon::subscribed(&config, &dir.path().join("daemon.log"));
    let old = stamp_ago(chrono::Duration::days(40));
    let (current, current_ms) = ts_minutes_ago(10);
    let ancient = "1999-12-31T23:00:00+08:00";
    servers.publish(
        "wq/bei/qixinggang/reading",
        &format!(
            r#"[{{"ts":"{old}","values":{{"nh3n":0.2}}}},{{"ts":"{current}","values":{{"nh3n":0.3}}}},{{"ts":"{ancient}","values":{{"nh3n":0.4}}}}]"#
        ),
    );
    let rows = wait_for(
        Duration::from_secs(20),
        "the current reading stored",
        || {
            let rows = influx_rows(
                &servers.influx_v1,
                &db,
                "SELECT nh3n FROM water_quality WHERE station = 'qixinggang'",
            );
            (!rows.is_empty()).then_some(rows)
        },
    );
    let dead_path = dir.path().join("spool/deadletter.jsonl");
    let dead = wait_for(Duration::from_secs(10), "two dead-letter records", || {
        std::fs::read_to_string(&dead_path)
            .ok()
            .filter(|t| t.lines().count() >= 2)
    });
    wait_for(Duration::from_secs(10), "the message acknowledged", || {
        (daemon.metric("riverwatch_messages_acked_total") >= 1).then_some(())
    });
    let (_, metrics) = daemon.http_get("/metrics");
    let (status, _) = daemon.terminate();
    assert!(status.success());

    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["time"].as_i64(), f64_of(&rows[0], "nh3n")),
        (Some(current_ms), Some(0.3))
    );
    let records: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{dead}");
    let by_index = |i: u64| {
        records
            .iter()
            .find(|r| r["index"] == i)
            .unwrap_or_else(|| panic!("element {i} in {dead}"))
    };
    let reason = by_index(0)["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("ts {old} is older than the maximum age of 30d")),
        "{reason}"
    );
    let reason = by_index(2)["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("ts {ancient} is before 2000-01-01T00:00:00Z")),
        "{reason}"
    );
    use base64::Engine;
    let element = base64::engine::general_purpose::STANDARD
        .decode(by_index(0)["payload"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(element).unwrap().contains(&old));
    assert!(
        metrics
            .lines()
            .any(|l| l == "riverwatch_readings_refused_total{reason=\"too_old\"} 2"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("reading refused") && log.contains("is older than the maximum age"),
        "{log}"
    );
}
