//! The shipped Grafana dashboards tell the truth about alerts and incidents, with real servers:
//! the daemon judges readings into the real InfluxDB, and the overview's own queries (read
//! from deploy/grafana/dashboards/overview.json and run as Grafana would) are checked against
//! what happened — an alert that went yellow → orange → resolved shows nothing firing, an
//! acknowledged alert shows as acknowledged, an escalation is not counted as a new alert, and
//! the open incidents are the API's open incidents.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The query of the overview panel whose title starts with `title`.
fn panel_query(title: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards/overview.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("overview.json"))
        .expect("dashboard JSON");
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| p["title"].as_str().is_some_and(|t| t.starts_with(title)))
        .and_then(|p| p["targets"][0]["query"].as_str())
        .unwrap_or_else(|| panic!("a panel titled {title}"))
        .replace("$timeFilter", "time > now() - 1d")
        .replace("$__interval", "1h")
        .replace("/^$river$/", "/^(bei)$/")
}

/// Rows of a query's result as maps from column to value, each with its series' tags.
fn rows(servers: &Servers, db: &str, q: &str) -> Vec<BTreeMap<String, Value>> {
    let v = influxql(&servers.influx_v1, db, q);
    assert!(
        v["results"][0].get("error").is_none() && v.get("error").is_none(),
        "{q}\n{v}"
    );
    let mut out = Vec::new();
    for s in v["results"][0]["series"].as_array().into_iter().flatten() {
        let columns: Vec<String> = s["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        for values in s["values"].as_array().into_iter().flatten() {
            let mut row: BTreeMap<String, Value> = columns
                .iter()
                .cloned()
                .zip(values.as_array().into_iter().flatten().cloned())
                .collect();
            for (k, v) in s["tags"].as_object().into_iter().flatten() {
                row.insert(k.clone(), v.clone());
            }
            out.push(row);
        }
    }
    out
}

/// Publishes one reading of `station` `ago` minutes ago with NH3-N `nh3n` mg/L.
fn reading(servers: &Servers, station: &str, ago: i64, nh3n: f64) {
    let (ts, _) = ts_minutes_ago(ago);
    servers.publish(
        &format!("wq/bei/{station}/reading"),
        &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4,"do":7.5,"nh3n":{nh3n}}}}}"#),
    );
}

#[test]
fn the_overview_shows_alerts_and_incidents_as_they_stand() {
    let Some((servers, _serial, dir)) = real_test("dashboards") else {
        return;
    };
    let db = fresh_database(&servers, "rw_dashboards");
    let config = two_station_config(&servers, "dashboards", dir.path(), &v1_store(&servers, &db));
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\ntoken_env = \"RW_TEST_DASH_TOKEN\"",
    );
    std::fs::write(&config, text).unwrap();
    let token = "dashboards-token-for-tests";
    let mut daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("daemon.log"),
        &[("RW_TEST_DASH_TOKEN", token)],
    );
    daemon.wait_log("subscribed", Duration::from_secs(15));
    let addr = daemon.http_addr();
    let alerts = |daemon: &mut Daemon| -> Vec<Value> {
        let (_, body) = daemon.http_get("/api/v1/alerts");
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };

    // 石角: NH3-N 1.2 twice (yellow, worse than its class Ⅱ), 2.5 twice (orange, worse than
    // class Ⅴ: an escalation of the same alert), then compliant until it resolves.
    let mut ago = 120;
    for nh3n in [0.3, 1.2, 1.2, 2.5, 2.5] {
        reading(&servers, "shijiao", ago, nh3n);
        ago -= 5;
    }
    let exceedance = |a: &Value| a["station"] == "shijiao" && a["rule"] == "exceedance";
    wait_for(
        Duration::from_secs(20),
        "石角's exceedance at orange",
        || {
            alerts(&mut daemon)
                .iter()
                .any(|a| exceedance(a) && a["level"] == "orange")
                .then_some(())
        },
    );
    for _ in 0..8 {
        reading(&servers, "shijiao", ago, 0.3);
        ago -= 5;
    }
    wait_for(
        Duration::from_secs(20),
        "石角's exceedance resolved",
        || (!alerts(&mut daemon).iter().any(exceedance)).then_some(()),
    );

    // 七星岗: NH3-N 1.2 twice (yellow), acknowledged by 清远's duty officer.
    for nh3n in [0.3, 1.2, 1.2] {
        reading(&servers, "qixinggang", ago, nh3n);
        ago -= 5;
    }
    let id = wait_for(Duration::from_secs(20), "七星岗's exceedance", || {
        alerts(&mut daemon)
            .iter()
            .find(|a| a["station"] == "qixinggang" && a["rule"] == "exceedance")
            .and_then(|a| a["id"].as_str().map(str::to_string))
    });
    let (status, body) = http_post(
        &addr,
        &format!("/api/v1/alerts/{id}/ack"),
        &[&format!("Authorization: Bearer {token}")],
        r#"{"by":"值班员","comment":"采样复核中","bureau":"qingyuan"}"#,
    );
    assert_eq!(status, 200, "{body}");

    // The overview's "Active alerts", once the acknowledgement is stored.
    let active = panel_query("当前告警");
    let shown = wait_for(
        Duration::from_secs(20),
        "the acknowledgement stored",
        || {
            let shown = rows(&servers, &db, &active);
            shown
                .iter()
                .any(|r| r["station"] == "qixinggang" && r["state"] == "acknowledged")
                .then_some(shown)
        },
    );
    let exceedances: Vec<_> = shown
        .iter()
        .filter(|r| r["rule"] == "exceedance" && r["param"] == "nh3n")
        .collect();
    assert_eq!(
        exceedances.len(),
        1,
        "only 七星岗's exceedance is active; 石角's went yellow → orange → resolved: {shown:#?}"
    );
    assert_eq!(exceedances[0]["level"], "yellow", "{shown:#?}");
    assert!(shown.iter().all(|r| r["state"] != "resolved"), "{shown:#?}");

    // "New alerts per level": each exceedance fired once, at yellow; 石角's escalation to
    // orange is no new alert.
    let counted = rows(&servers, &db, &panel_query("新告警数"));
    let total = |level: &str| -> f64 {
        counted
            .iter()
            .filter(|r| r["level"] == level)
            .filter_map(|r| r["count"].as_f64())
            .sum()
    };
    let fired = rows(
        &servers,
        &db,
        "SELECT \"severity\", \"transition\", \"alert_id\" FROM \"wq_alert\" WHERE \"rule\" = 'exceedance' AND time > now() - 1d",
    );
    assert!(
        fired
            .iter()
            .any(|r| r["severity"] == "orange" && r["transition"] == "escalated"),
        "the escalation is stored: {fired:#?}"
    );
    let fired_exceedance = fired.iter().filter(|r| r["transition"] == "fired").count();
    assert_eq!(fired_exceedance, 2, "{fired:#?}");
    assert_eq!(
        total("orange"),
        0.0,
        "no orange alert fired anew: {counted:#?}"
    );
    assert!(total("yellow") >= 2.0, "{counted:#?}");

    // "Open incidents" agree with the API.
    let (_, body) = daemon.http_get("/api/v1/incidents");
    let incidents: Vec<Value> = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let open: Vec<&str> = incidents
        .iter()
        .filter(|i| i["state"] == "open")
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert!(!open.is_empty(), "七星岗's incident is open: {body}");
    let panel: Vec<String> = rows(&servers, &db, &panel_query("当前事件"))
        .iter()
        .filter_map(|r| r["incident_id"].as_str().map(str::to_string))
        .collect();
    let mut expected: Vec<String> = open.iter().map(|s| s.to_string()).collect();
    let mut shown_ids = panel.clone();
    expected.sort();
    shown_ids.sort();
    assert_eq!(shown_ids, expected, "API incidents: {body}");

    let (status, _) = daemon.terminate();
    assert!(status.success());
}
