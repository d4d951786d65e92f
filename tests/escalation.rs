//! Acknowledgement per bureau and escalation, end to end against the real servers of
//! `tests/run.sh` (mosquitto, InfluxDB 1.x, aiosmtpd, the HTTP SMS endpoint) and the real
//! daemon, with each bureau's own API token and a short `escalate_after`:
//!
//! - A yellow NH3-N exceedance at the boundary section 石角(界牌) opens an incident both
//!   bureaus are told of. Guangzhou acknowledges it with its token (who, comment): its
//!   escalation recipients hear nothing. Qingyuan does not: its escalation recipients get one
//!   escalation (re-notify is off), and no second one after a restart. The acknowledgement is
//!   shown by `GET /api/v1/incidents` and `/alerts` (the incident's exceedance is acknowledged
//!   with it) and stored in `wq_incident` and `wq_alert`.
//! - A spill at 七星岗 opens an incident; its exceedance went to Qingyuan only, so Guangzhou
//!   cannot acknowledge it (403 with its token, 400 through the operator's); Qingyuan does,
//!   with its token: acknowledged, listed and stored.
//!
//! Outside the runner (no RIVERWATCH_TEST_* variables) each test returns at once and says so.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GZ_TOKEN: &str = "gz-token-for-tests";
const QY_TOKEN: &str = "qy-token-for-tests";
const OPERATOR_TOKEN: &str = "operator-token-for-tests";

/// The two-station config with the operator's token, each bureau's token and escalation
/// (Qingyuan after `qy_after`, Guangzhou after `gz_after`, each to `chief-<bureau>-<name>@…`).
fn config(
    servers: &Servers,
    name: &str,
    dir: &Path,
    db: &str,
    qy_after: &str,
    gz_after: &str,
) -> PathBuf {
    let path = two_station_config(servers, name, dir, &v1_store(servers, db));
    let mut text = std::fs::read_to_string(&path).expect("config read");
    text = text.replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\ntoken_env = \"RW_TEST_OPERATOR_TOKEN\"",
    );
    for (id, env, after) in [
        ("guangzhou", "RW_TEST_GZ_TOKEN", gz_after),
        ("qingyuan", "RW_TEST_QY_TOKEN", qy_after),
    ] {
        let line = format!("id = \"{id}\"\n");
        assert!(text.contains(&line), "the fixture's bureau {id}");
        text = text.replace(
            &line,
            &format!(
                "{line}api_token_env = \"{env}\"\nescalate_after = \"{after}\"\nescalation = {{ email = [\"chief-{id}-{name}@example.org\"] }}\n"
            ),
        );
    }
    write_config(path, &text)
}

fn env() -> [(&'static str, &'static str); 3] {
    [
        ("RW_TEST_OPERATOR_TOKEN", OPERATOR_TOKEN),
        ("RW_TEST_GZ_TOKEN", GZ_TOKEN),
        ("RW_TEST_QY_TOKEN", QY_TOKEN),
    ]
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// The escalation emails `address` received.
fn escalations(servers: &Servers, address: &str) -> Vec<String> {
    servers
        .emails_to(address)
        .into_iter()
        .map(|(_, body)| body)
        .filter(|body| body.contains("未确认升级") && body.contains("Not acknowledged: escalated"))
        .collect()
}

/// Rows of an InfluxQL query as JSON objects keyed by column.
fn rows(servers: &Servers, db: &str, q: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let v = influxql(&servers.influx_v1, db, q);
    let series = &v["results"][0]["series"][0];
    let columns: Vec<String> = series["columns"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    series["values"]
        .as_array()
        .map(|vals| {
            vals.iter()
                .filter_map(|row| row.as_array())
                .map(|row| columns.iter().cloned().zip(row.iter().cloned()).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn an_unacknowledged_yellow_alert_escalates_once_and_an_acknowledged_one_does_not() {
    let Some((servers, _serial, dir)) = real_test("escalation_alert") else {
        return;
    };
    let name = "escalert";
    let db = fresh_database(&servers, "rw_escalert");
    // Guangzhou has longer before its escalation, time enough to acknowledge first.
    let config = config(&servers, name, dir.path(), &db, "3s", "10s");
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("run1.log"), &env());
    daemon.wait_log("subscribed", Duration::from_secs(15));
    let addr = daemon.http_addr();

    // Who each token is; GET /whoami needs one.
    assert_eq!(http_request(&addr, "GET", "/api/v1/whoami", &[]).0, 401);
    for (token, role, bureau) in [
        (OPERATOR_TOKEN, "operator", serde_json::Value::Null),
        (GZ_TOKEN, "bureau", serde_json::json!("guangzhou")),
        (QY_TOKEN, "bureau", serde_json::json!("qingyuan")),
    ] {
        let (status, body) = http_request(&addr, "GET", "/api/v1/whoami", &[&bearer(token)]);
        assert_eq!(status, 200, "{body}");
        let who = json(&body);
        assert_eq!(
            (&who["role"], &who["bureau"]),
            (&serde_json::json!(role), &bureau)
        );
    }

    // A yellow NH3-N exceedance at the boundary section: to both bureaus.
    for (ago, nh3n) in [(30, 0.3), (20, 1.2), (10, 1.2)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4,"do":7.5,"nh3n":{nh3n}}}}}"#),
        );
    }
    // The exceedance opens an incident at the boundary section, which both bureaus are told
    // of (its alerts are told through it): each bureau's acknowledgement is awaited.
    let incident = wait_for(Duration::from_secs(20), "the open incident", || {
        let (_, body) = daemon.http_get("/api/v1/incidents");
        json(&body)
            .as_array()?
            .iter()
            .find(|i| i["state"] == "open" && i["level"] == "yellow")
            .cloned()
    });
    let fired = Instant::now();
    let id = incident["id"].as_str().expect("incident id").to_string();
    assert_eq!(
        incident["bureaus"],
        serde_json::json!(["guangzhou", "qingyuan"])
    );
    let ack = format!("/api/v1/incidents/{id}/ack");
    let gz = bearer(GZ_TOKEN);
    // Refused: no token, no `by`, a bureau token acting for another bureau.
    let body = r#"{"by":"陈工","comment":"已派人现场核查"}"#;
    assert_eq!(http_post(&addr, &ack, &[], body).0, 401);
    assert_eq!(http_post(&addr, &ack, &[&gz], r#"{"comment":"x"}"#).0, 400);
    assert_eq!(
        http_post(&addr, &ack, &[&gz], r#"{"by":"陈工","bureau":"qingyuan"}"#).0,
        403
    );
    let (status, answer) = http_post(&addr, &ack, &[&gz], body);
    assert_eq!(status, 200, "{answer}");
    let view = json(&answer);
    assert_eq!(view["acknowledged"], false, "Qingyuan has not: {answer}");
    assert_eq!(view["acks"].as_array().map(Vec::len), Some(1), "{answer}");
    assert_eq!(
        (
            &view["acks"][0]["bureau"],
            &view["acks"][0]["by"],
            &view["acks"][0]["comment"]
        ),
        (
            &serde_json::json!("guangzhou"),
            &serde_json::json!("陈工"),
            &serde_json::json!("已派人现场核查")
        )
    );

    // Qingyuan's escalation recipients hear of it after its 3 s.
    let qy_chief = format!("chief-qingyuan-{name}@example.org");
    let gz_chief = format!("chief-guangzhou-{name}@example.org");
    let sent = wait_for(Duration::from_secs(30), "Qingyuan's escalation", || {
        let e = escalations(&servers, &qy_chief);
        (!e.is_empty()).then_some(e)
    });
    assert!(
        sent[0].contains(&id) && sent[0].contains("清远市生态环境局"),
        "{}",
        sent[0]
    );
    // Past Guangzhou's 10 s with a margin of timer ticks: still one escalation to Qingyuan's
    // recipients (re-notify is off), none to Guangzhou's, who acknowledged. Nothing arrives
    // here to poll for, so the test waits the window out.
    let window = Duration::from_secs(16);
    std::thread::sleep(window.saturating_sub(fired.elapsed()));
    assert_eq!(escalations(&servers, &qy_chief).len(), 1);
    assert!(servers.emails_to(&gz_chief).is_empty());

    // Shown by the API, with the incident and its exceedance, and stored with who, which
    // bureau and the comment.
    let (_, body) = daemon.http_get("/api/v1/incidents");
    assert!(body.contains("已派人现场核查"), "{body}");
    let (_, body) = daemon.http_get("/api/v1/alerts");
    let alerts = json(&body);
    let exceedance = alerts
        .as_array()
        .and_then(|a| a.iter().find(|a| a["rule"] == "exceedance"))
        .unwrap_or_else(|| panic!("the exceedance in {body}"));
    assert_eq!(exceedance["acks"][0]["by"], "陈工", "{body}");
    let alert_id = exceedance["id"].as_str().expect("alert id").to_string();
    let (incidents, stored) = wait_for(
        Duration::from_secs(10),
        "the acknowledgement stored",
        || {
            let i = rows(
            &servers,
            &db,
            "SELECT incident_id, acked_by, ack_bureau, ack_comment FROM wq_incident WHERE state = 'acknowledged'",
        );
            let a = rows(
            &servers,
            &db,
            "SELECT alert_id, acked_by, ack_bureau, ack_comment FROM wq_alert WHERE state = 'acknowledged'",
        );
            (!i.is_empty() && a.iter().any(|r| r["alert_id"] == alert_id.as_str()))
                .then_some((i, a))
        },
    );
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    for row in [
        &incidents[0],
        stored
            .iter()
            .find(|r| r["alert_id"] == alert_id.as_str())
            .expect("row"),
    ] {
        assert_eq!(row["acked_by"], "陈工", "{row:?}");
        assert_eq!(row["ack_bureau"], "guangzhou", "{row:?}");
        assert_eq!(row["ack_comment"], "已派人现场核查", "{row:?}");
    }
    assert_eq!(incidents[0]["incident_id"], id.as_str());

    // A restart neither repeats the escalation nor forgets the acknowledgement.
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("run2.log"), &env());
    daemon.wait_log("subscribed", Duration::from_secs(15));
    let (_, body) = daemon.http_get("/api/v1/alerts");
    assert!(body.contains("已派人现场核查"), "{body}");
    // Several 3 s timer ticks after the restart.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(escalations(&servers, &qy_chief).len(), 1);
    assert!(servers.emails_to(&gz_chief).is_empty());
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn an_alert_is_acknowledged_by_the_bureaus_it_went_to_only() {
    let Some((servers, _serial, dir)) = real_test("escalation_ack") else {
        return;
    };
    let name = "escack";
    let db = fresh_database(&servers, "rw_escack");
    let config = config(&servers, name, dir.path(), &db, "1h", "1h");
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("run.log"), &env());
    daemon.wait_log("subscribed", Duration::from_secs(15));
    let addr = daemon.http_addr();

    // 七星岗 exceeds NH3-N: an incident heading for the boundary section, told to both.
    for (ago, nh3n) in [(40, 0.2), (30, 1.2), (20, 1.21), (10, 1.22)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/qixinggang/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4,"do":7.5,"nh3n":{nh3n}}}}}"#),
        );
    }
    let incident = wait_for(Duration::from_secs(20), "the open incident", || {
        let (_, body) = daemon.http_get("/api/v1/incidents");
        json(&body)
            .as_array()?
            .iter()
            .find(|i| i["state"] == "open")
            .cloned()
    });
    let operator = bearer(OPERATOR_TOKEN);
    let id = incident["id"].as_str().expect("incident id");
    assert_eq!(
        http_post(
            &addr,
            &format!("/api/v1/incidents/{id}/ack"),
            &[&operator],
            r#"{"by":"值班长"}"#
        )
        .0,
        400,
        "the operator's token names the bureau"
    );
    assert_eq!(
        http_post(
            &addr,
            "/api/v1/incidents/nothing/ack",
            &[&operator],
            r#"{"by":"值班长","bureau":"qingyuan"}"#
        )
        .0,
        404
    );
    let (_, body) = daemon.http_get("/api/v1/alerts");
    let alert = json(&body)
        .as_array()
        .and_then(|a| a.iter().find(|a| a["rule"] == "exceedance").cloned())
        .unwrap_or_else(|| panic!("the exceedance in {body}"));
    let alert_id = alert["id"].as_str().expect("alert id").to_string();
    // 七星岗 is Qingyuan's own (not a boundary section): its alert went to Qingyuan only.
    assert_eq!(alert["bureaus"], serde_json::json!(["qingyuan"]));
    let ack = format!("/api/v1/alerts/{alert_id}/ack");
    let not_sent = r#"{"by":"值班长","bureau":"guangzhou"}"#;
    assert_eq!(http_post(&addr, &ack, &[&operator], not_sent).0, 400);
    assert_eq!(
        http_post(&addr, &ack, &[&bearer(GZ_TOKEN)], r#"{"by":"陈工"}"#).0,
        403
    );
    let (status, answer) = http_post(
        &addr,
        &ack,
        &[&bearer(QY_TOKEN)],
        r#"{"by":"李工","comment":"上游排口已封堵"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(json(&answer)["acknowledged"], true, "{answer}");
    let (_, body) = daemon.http_get("/api/v1/alerts");
    let listed = json(&body);
    let listed = listed
        .as_array()
        .and_then(|l| l.iter().find(|a| a["id"] == alert_id.as_str()))
        .unwrap_or_else(|| panic!("{alert_id} in {body}"));
    let who: Vec<(&str, &str)> = listed["acks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["bureau"].as_str().unwrap_or(""),
                        x["by"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(who, [("qingyuan", "李工")], "{body}");
    // The incident itself waits for its own acknowledgements.
    let (_, body) = daemon.http_get("/api/v1/incidents");
    assert!(!body.contains("李工"), "{body}");

    let stored = wait_for(
        Duration::from_secs(10),
        "the acknowledgement stored",
        || {
            let a = rows(
            &servers,
            &db,
            "SELECT alert_id, acked_by, ack_bureau, ack_comment FROM wq_alert WHERE state = 'acknowledged'",
        );
            (!a.is_empty()).then_some(a)
        },
    );
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["alert_id"], alert_id.as_str());
    assert_eq!(stored[0]["acked_by"], "李工");
    assert_eq!(stored[0]["ack_bureau"], "qingyuan");
    assert_eq!(stored[0]["ack_comment"], "上游排口已封堵");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
