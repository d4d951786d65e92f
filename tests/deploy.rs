//! deploy/ checked structurally (no container engine runs here): the compose file, Grafana's
//! provisioning and dashboards, the container build, the mosquitto ACL and the systemd unit;
//! and every dashboard query executed, with Grafana's macros substituted, against the real
//! InfluxDB after the pipeline (`riverwatch demo --influx-url`) has written to it.

mod common;

use common::{influxql, real_test, Servers};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

fn yaml(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one document");
    docs.remove(0)
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(deploy("grafana/dashboards")).expect("dashboards folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("dashboard");
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path.file_name().unwrap().to_string_lossy().into_owned(), v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every InfluxQL query of a dashboard, with where it sits: panel targets, template
/// variables and annotations.
fn queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {:?}", p["title"].as_str().unwrap_or("")),
                t["query"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            out.push((
                format!("variable {}", v["name"]),
                v["query"].as_str().unwrap_or("").into(),
            ));
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        out.push((
            format!("annotation {:?}", a["name"].as_str().unwrap_or("")),
            a["query"].as_str().unwrap_or("").into(),
        ));
    }
    out
}

fn config() -> riverwatch::config::Config {
    riverwatch::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/riverwatch.toml"))
        .expect("the shipped config")
}

#[test]
fn compose_and_provisioning_files_are_complete() {
    let compose = yaml("compose.yml");
    let services = &compose["services"];
    for name in ["mosquitto", "influxdb", "grafana", "riverwatch"] {
        assert!(!services[name].is_badvalue(), "service {name}");
    }
    let env = &services["influxdb"]["environment"];
    assert_eq!(env["DOCKER_INFLUXDB_INIT_MODE"].as_str(), Some("setup"));
    assert_eq!(env["DOCKER_INFLUXDB_INIT_ORG"].as_str(), Some("guangqing"));
    assert_eq!(env["DOCKER_INFLUXDB_INIT_BUCKET"].as_str(), Some("water"));
    assert!(env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].as_str().is_some());
    // Every file or folder a service mounts from the repository exists (mosquitto's password
    // file is the operator's to create, as the compose file says).
    for (name, service) in services.as_hash().expect("services map") {
        for v in service["volumes"].as_vec().into_iter().flatten() {
            let source = v.as_str().unwrap_or("").split(':').next().unwrap_or("");
            if !source.starts_with('.') || source.ends_with("/passwd") {
                continue;
            }
            assert!(
                deploy(source).exists(),
                "{name:?} mounts {source}, which is missing"
            );
        }
    }
    let build = &services["riverwatch"]["build"];
    let file = build["dockerfile"].as_str().expect("dockerfile");
    let containerfile = std::fs::read_to_string(deploy("..").join(file)).expect("Containerfile");
    assert_eq!(
        containerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2,
        "multi-stage"
    );
    assert!(containerfile.contains("USER riverwatch"));

    // Grafana: the datasource the dashboards name, and the folder the provider reads.
    let ds = yaml("grafana/provisioning/datasources/influxdb.yml");
    let ds = &ds["datasources"][0];
    assert_eq!(ds["type"].as_str(), Some("influxdb"));
    let uid = ds["uid"].as_str().expect("datasource uid");
    let provider = yaml("grafana/provisioning/dashboards/riverwatch.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("path");
    let mounts: Vec<&str> = services["grafana"]["volumes"]
        .as_vec()
        .expect("grafana volumes")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./grafana/dashboards:") && m.contains(path)),
        "the dashboards are mounted where the provider reads: {mounts:?}"
    );
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_string()),
            "{file}: unique uid"
        );
        for (place, q) in queries(&d) {
            assert!(!q.is_empty(), "{file} {place}: empty query");
        }
        for p in d["panels"].as_array().expect("panels") {
            assert_eq!(
                p["datasource"]["uid"].as_str(),
                Some(uid),
                "{file}: panel datasource"
            );
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["rawQuery"], true, "{file}: InfluxQL as written");
            }
        }
    }
    assert_eq!(uids.len(), 3, "overview, station detail, boundary sections");
}

#[test]
fn deploy_files_follow_the_config() {
    let cfg = config();
    // The boundary dashboard lists exactly the configured boundary sections.
    let boundary: BTreeSet<String> = cfg
        .network
        .stations
        .iter()
        .filter(|s| s.boundary)
        .map(|s| s.id.clone())
        .collect();
    let (_, d) = dashboards()
        .into_iter()
        .find(|(f, _)| f == "boundary.json")
        .expect("boundary.json");
    let var = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "boundary")
        .expect("boundary variable")
        .clone();
    let listed: BTreeSet<String> = var["query"]
        .as_str()
        .expect("values")
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(listed, boundary);
    // The ACL example names real stations under their own rivers.
    let acl = std::fs::read_to_string(deploy("mosquitto/acl")).expect("acl");
    for line in acl.lines().filter(|l| l.starts_with("topic write wq/")) {
        let parts: Vec<&str> = line["topic write ".len()..].split('/').collect();
        if parts[1] == "+" {
            continue;
        }
        let station = cfg
            .network
            .station(parts[2])
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(station.river, parts[1], "{line}");
    }
    // The unit's hardening and its start check.
    let unit = std::fs::read_to_string(deploy("riverwatch.service")).expect("unit");
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=riverwatch",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "ExecStartPre=/usr/local/bin/riverwatch check-config",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(directive)),
            "{directive}"
        );
    }
}

/// Grafana's macros as it substitutes them for an InfluxQL datasource, with one station of the
/// demo selected.
fn substitute(q: &str) -> String {
    q.replace("$timeFilter", "time > now() - 30d")
        .replace("$__interval", "1h")
        .replace("/^$river$/", "/^(bei)$/")
        .replace("/^$station$/", "/^(shijiao)$/")
        .replace("/^$boundary$/", "/^(shijiao|pa_boundary|lepai_boundary)$/")
}

/// Runs `riverwatch demo` (three simulated days ending now) into database `db` of the real
/// InfluxDB; returns the config it used, pointing at that database.
fn demo_into(servers: &Servers, db: &str, dir: &Path) -> PathBuf {
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
            .expect("demo config")
            .replace("database = \"water\"", &format!("database = \"{db}\""))
            .replace(
                "url = \"http://127.0.0.1:8086\"",
                &format!("url = \"{}\"", servers.influx_v1),
            );
    let config = common::write_config(dir.join("demo.toml"), &demo);
    influxql(&servers.influx_v1, "", &format!("CREATE DATABASE {db}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_riverwatch"))
        .args([
            "demo",
            "--duration",
            "3d",
            "--speed",
            "200000",
            "--influx-url",
            &servers.influx_v1,
        ])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(dir.join("out"))
        .env("NO_COLOR", "1")
        .output()
        .expect("demo runs");
    common::assert_success(&out, "demo");
    config
}

#[test]
fn every_dashboard_query_runs_on_the_pipelines_output() {
    let Some((servers, _serial, dir)) = real_test("dashboard queries") else {
        return;
    };
    let db = format!("rw_dash_{}", std::process::id());
    demo_into(&servers, &db, dir.path());
    let mut with_data = Vec::new();
    for (file, d) in dashboards() {
        for (place, q) in queries(&d) {
            let q = substitute(&q);
            let v = influxql(&servers.influx_v1, &db, &q);
            let result = &v["results"][0];
            assert!(
                v.get("error").is_none() && result.get("error").is_none(),
                "{file} {place}: {q}\n{v}"
            );
            let rows: usize = result["series"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|x| x["values"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            eprintln!("{file} {place}: {rows} rows");
            if rows > 0 {
                with_data.push(format!("{file} {place}"));
            }
        }
    }
    // Every value panel of the station detail returns the pipeline's data.
    let (_, station) = dashboards()
        .into_iter()
        .find(|(f, _)| f == "station.json")
        .expect("station.json");
    for p in station["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or("");
        let q = substitute(p["targets"][0]["query"].as_str().unwrap_or(""));
        let v = influxql(&servers.influx_v1, &db, &q);
        assert!(
            v["results"][0]["series"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "station detail {title:?} returns no data: {q}\n{v}"
        );
    }
    for file in ["overview.json", "station.json", "boundary.json"] {
        assert!(
            with_data.iter().any(|p| p.starts_with(file)),
            "{file}: no query returned data"
        );
    }
}

/// `riverwatch report` over the months of the pipeline's own output lists each boundary
/// section with its monthly class, target and attainment, in all three formats.
#[test]
fn the_report_reads_the_pipelines_output() {
    let Some((servers, _serial, dir)) = real_test("report") else {
        return;
    };
    let db = format!("rw_report_{}", std::process::id());
    let config = demo_into(&servers, &db, dir.path());
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let now = chrono::Utc::now().with_timezone(&cst);
    let from = (now - chrono::Duration::days(3))
        .format("%Y-%m")
        .to_string();
    let to = now.format("%Y-%m").to_string();
    let report = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_riverwatch"))
            .args([
                "report", "--from", &from, "--to", &to, "--format", format, "--config",
            ])
            .arg(&config)
            // The demo covers hours of the month, not the 75 % a class needs by default:
            // this test checks the classes of what the pipeline stored, so it claims them
            // from any coverage (tests/report.rs checks the minimum).
            .args(["--min-coverage", "0"])
            .output()
            .expect("report runs");
        common::assert_success(&out, "report");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let cfg = riverwatch::config::load(&config).expect("demo config");
    let sections: Vec<_> = cfg.network.stations.iter().filter(|s| s.boundary).collect();
    assert!(!sections.is_empty());

    let csv = report("csv");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    for s in &sections {
        let row = rows
            .iter()
            .find(|r| r[0] == "section" && r[1] == to && r[3] == s.id)
            .unwrap_or_else(|| panic!("{} in {to}:\n{csv}", s.id));
        assert_eq!(row[6], s.target.number().to_string(), "target of {}", s.id);
        let class: u8 = row[7]
            .parse()
            .unwrap_or_else(|_| panic!("a class for {}: {csv}", s.id));
        assert!((1..=6).contains(&class));
        assert_eq!(
            row[9],
            (class <= s.target.number()).to_string(),
            "met of {}",
            s.id
        );
    }
    assert!(
        rows.iter()
            .any(|r| r[0] == "rate" && r[2] == "all" && !r[11].is_empty()),
        "{csv}"
    );

    let md = report("md");
    for s in &sections {
        assert!(md.contains(&format!("({})", s.id)), "{}: {md}", s.id);
    }
    assert!(
        md.contains("达标率 Attainment rate") && md.contains("全部 overall"),
        "{md}"
    );
    let html = report("html");
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.contains("<div class=\"legend\"")
            && html.contains("<div class=\"chart\""),
        "{html}"
    );
    eprintln!("report ({from} to {to}):\n{md}");
}
