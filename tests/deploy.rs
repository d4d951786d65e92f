//! deploy/ checked: the compose file (healthchecks, pinned images, mosquitto's TLS listener and
//! private plain port, the secrets the config names), Grafana's provisioning and dashboards,
//! the mosquitto ACL; the container build from a directory made of exactly what the
//! Containerfile copies through `deploy/Containerfile.dockerignore` (`cargo check --locked --offline`, and a real
//! `podman build` where an engine runs); the systemd units through `systemd-analyze security`
//! and `verify`, and the daemon's notifications on a `$NOTIFY_SOCKET` the test owns; and every
//! dashboard query executed, with Grafana's macros substituted, against the real InfluxDB after
//! the pipeline (`riverwatch demo --influx-url`) has written to it.

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
            // The password file and the certificates are the operator's to make
            // (deploy/mosquitto/README.md).
            if !source.starts_with('.') || source.ends_with("/passwd") || source.ends_with("/certs")
            {
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
    assert!(
        containerfile
            .lines()
            .any(|l| l.trim() == "USER 10001:10001"),
        "a numeric non-root user"
    );

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
    // The boundary dashboard reads its sections from the data (the station register the
    // daemon writes), not from a list kept in step with the config by hand.
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
    assert_eq!(var["type"], "query", "{var}");
    assert!(
        var["query"].as_str().is_some_and(
            |q| q.contains("FROM \"wq_station\"") && q.contains("\"boundary\" = 'true'")
        ),
        "{var}"
    );
    for (file, d) in dashboards() {
        assert_eq!(d["timezone"], "Asia/Shanghai", "{file}");
        for (place, q) in queries(&d) {
            assert!(
                !q.contains("GROUP BY time(") || q.contains("tz('Asia/Shanghai')"),
                "{file} {place}: time buckets in UTC+8: {q}"
            );
        }
    }
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
    // The units load every secret the shipped config names as a credential of that name.
    for unit in ["riverwatch.service", "riverwatch@.service"] {
        let text = std::fs::read_to_string(deploy(unit)).expect("unit");
        for name in secret_variables(&shipped_config_text()) {
            let line = format!("LoadCredential={name}:/etc/riverwatch/credentials/{name}");
            assert!(text.lines().any(|l| l == line), "{unit}: {line}");
        }
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
    let config = demo_into(&servers, &db, dir.path());
    // The boundary variable lists the demo's boundary sections, from the data.
    let sections: BTreeSet<String> = riverwatch::config::load(&config)
        .expect("demo config")
        .network
        .stations
        .iter()
        .filter(|s| s.boundary)
        .map(|s| s.id.clone())
        .collect();
    let (_, boundary) = dashboards()
        .into_iter()
        .find(|(f, _)| f == "boundary.json")
        .expect("boundary.json");
    let var = boundary["templating"]["list"][0]["query"]
        .as_str()
        .expect("variable query")
        .to_string();
    let listed: BTreeSet<String> = influxql(&servers.influx_v1, &db, &var)["results"][0]["series"]
        [0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v[1].as_str().map(str::to_string))
        .collect();
    assert_eq!(listed, sections, "{var}");
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

// ---- compose, Containerfile and mosquitto: what an operator's tools would flag ---------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_config_text() -> String {
    std::fs::read_to_string(repo().join("config/riverwatch.toml")).expect("shipped config")
}

/// The environment variables a config names in its (uncommented) `*_env` keys.
fn secret_variables(toml_text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in toml_text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let code = line.split(" #").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("_env") {
            let after = rest[at + 4..].trim_start();
            if let Some(value) = after.strip_prefix('=') {
                if let Some(name) = value.trim_start().strip_prefix('"') {
                    if let Some(end) = name.find('"') {
                        out.insert(name[..end].to_string());
                    }
                }
            }
            rest = &rest[at + 4..];
        }
    }
    out
}

/// An image reference pinned to an exact version: a tag with a full version (`2.0.22`,
/// `1.95.0-bookworm`) or a dated snapshot (`bookworm-20250811-slim`), or a digest.
fn pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let Some((_, tag)) = image.rsplit_once(':') else {
        return false;
    };
    let full_version = tag.split('-').next().is_some_and(|v| {
        v.split('.').count() == 3 && v.split('.').all(|n| n.parse::<u32>().is_ok())
    });
    let dated = tag
        .split('-')
        .any(|part| part.len() == 8 && part.parse::<u32>().is_ok());
    full_version || dated
}

#[test]
fn image_pinning_is_recognised() {
    for (image, expected) in [
        ("eclipse-mosquitto:2.0.22", true),
        ("docker.io/library/rust:1.95.0-bookworm", true),
        ("debian:bookworm-20250811-slim", true),
        ("influxdb:2.7@sha256:0123", true),
        ("eclipse-mosquitto:2", false),
        ("influxdb:2.7", false),
        ("debian:bookworm-slim", false),
        ("rust:latest", false),
        ("grafana/grafana-oss", false),
    ] {
        assert_eq!(pinned(image), expected, "{image}");
    }
}

#[test]
fn compose_services_are_healthchecked_pinned_and_private() {
    let compose = yaml("compose.yml");
    let services = compose["services"].as_hash().expect("services");
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        let image = service["image"]
            .as_str()
            .expect("every service names its image");
        assert!(pinned(image), "{name}: {image} is not pinned to a version");
        let test = &service["healthcheck"]["test"];
        assert!(
            test.as_vec().is_some_and(|t| t.len() >= 2),
            "{name}: a healthcheck"
        );
        // Each dependency is waited for until healthy, and has a healthcheck to wait on.
        if let Some(deps) = service["depends_on"].as_hash() {
            for (dep, how) in deps {
                assert_eq!(
                    how["condition"].as_str(),
                    Some("service_healthy"),
                    "{name} waits for {dep:?}"
                );
            }
        } else {
            assert!(
                service["depends_on"].is_badvalue(),
                "{name}: depends_on as a map"
            );
        }
    }
    let deps = |name: &str| -> Vec<String> {
        compose["services"][name]["depends_on"]
            .as_hash()
            .map(|h| {
                h.keys()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(deps("riverwatch"), ["mosquitto", "influxdb"]);
    assert_eq!(deps("grafana"), ["influxdb"]);

    // mosquitto: TLS for the stations on 8883; plain 1883 published on loopback only.
    let ports: Vec<&str> = compose["services"]["mosquitto"]["ports"]
        .as_vec()
        .expect("mosquitto ports")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(ports.contains(&"8883:8883"), "{ports:?}");
    for port in &ports {
        if port.ends_with(":1883") {
            assert!(
                port.starts_with("127.0.0.1:"),
                "plain MQTT published beyond loopback: {port}"
            );
        }
    }
    let conf = std::fs::read_to_string(deploy("mosquitto/mosquitto.conf")).expect("conf");
    let tls = conf
        .split("\nlistener ")
        .find(|block| block.starts_with("8883"))
        .expect("a listener on 8883");
    for key in [
        "certfile /mosquitto/config/certs/",
        "keyfile /mosquitto/config/certs/",
    ] {
        assert!(tls.contains(key), "the 8883 listener has {key}");
    }
    assert!(conf.lines().any(|l| l == "allow_anonymous false"));
    let readme = std::fs::read_to_string(deploy("mosquitto/README.md")).expect("README");
    for step in ["mosquitto_passwd", "openssl", "subjectAltName", "acl"] {
        assert!(readme.contains(step), "mosquitto/README.md explains {step}");
    }
    // The healthcheck's user exists in the ACL with no more than its one topic.
    let acl = std::fs::read_to_string(deploy("mosquitto/acl")).expect("acl");
    let health: Vec<&str> = acl
        .split("\nuser ")
        .find(|b| b.starts_with("health\n"))
        .expect("user health")
        .lines()
        .filter(|l| l.starts_with("topic"))
        .collect();
    assert_eq!(health, ["topic read $SYS/broker/uptime"]);

    // riverwatch gets every secret the shipped config names, from .env.
    let env = &compose["services"]["riverwatch"]["environment"];
    for name in secret_variables(&shipped_config_text()) {
        let value = env[name.as_str()].as_str().unwrap_or_default();
        assert!(
            value.starts_with("${"),
            "compose passes {name} from .env: {value:?}"
        );
        let from = value
            .trim_start_matches("${")
            .split(':')
            .next()
            .unwrap_or("");
        let example = std::fs::read_to_string(deploy("env.example")).expect("env.example");
        assert!(
            example.lines().any(|l| l == format!("{from}=")),
            "env.example lists {from}"
        );
    }
}

/// One COPY of the build stage: sources (relative to the build context) and the destination
/// (relative to the stage's WORKDIR).
struct Copy {
    sources: Vec<String>,
    dest: String,
}

/// The Containerfile's logical lines (continuations joined, comments dropped).
fn containerfile_lines() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("Containerfile")).expect("Containerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// The COPY lines of the first stage that read from the build context (not `--from=`), with
/// the destinations made relative to the stage's WORKDIR.
fn build_stage_copies() -> Vec<Copy> {
    let mut copies = Vec::new();
    let mut workdir = String::from("/");
    let mut stages = 0;
    for line in containerfile_lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("FROM") => stages += 1,
            Some("WORKDIR") if stages == 1 => workdir = words.next().expect("a path").into(),
            Some("COPY") if stages == 1 => {
                let args: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                assert!(
                    !line.contains("--from="),
                    "the build stage copies from the context only: {line}"
                );
                let (dest, sources) = args.split_last().expect("COPY sources dest");
                let dest = if dest.starts_with('/') {
                    dest.strip_prefix(workdir.as_str())
                        .unwrap_or_else(|| panic!("{line}: outside WORKDIR {workdir}"))
                        .trim_start_matches('/')
                        .to_string()
                } else {
                    dest.trim_start_matches("./").to_string()
                };
                copies.push(Copy {
                    sources: sources.iter().map(|s| s.to_string()).collect(),
                    dest,
                });
            }
            _ => {}
        }
    }
    assert_eq!(stages, 2, "multi-stage");
    copies
}

/// The Containerfile's ignore file (`deploy/Containerfile.dockerignore`) as Docker reads it (moby/patternmatcher): patterns with `*`, `?` and `**`,
/// `!` for an exception, the last matching pattern decides, and a pattern excludes a path when
/// it matches the path or one of its parent folders.
struct Ignore(Vec<(bool, Vec<String>)>);

impl Ignore {
    fn load() -> Ignore {
        let text = std::fs::read_to_string(deploy("Containerfile.dockerignore"))
            .expect("deploy/Containerfile.dockerignore");
        Ignore(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (keep, pattern) = match l.strip_prefix('!') {
                        Some(p) => (true, p),
                        None => (false, l),
                    };
                    let parts = pattern
                        .trim_matches('/')
                        .split('/')
                        .filter(|p| !p.is_empty() && *p != ".")
                        .map(String::from)
                        .collect();
                    (keep, parts)
                })
                .collect(),
        )
    }

    /// Whether `path` (relative to the context, `/`-separated) stays out of the context.
    fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (keep, pattern) in &self.0 {
            let hit = (1..=parts.len()).any(|n| glob_parts(pattern, &parts[..n]));
            if hit {
                excluded = !keep;
            }
        }
        excluded
    }
}

fn glob_parts(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| glob_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => glob(first.as_bytes(), name.as_bytes()) && glob_parts(rest, tail),
            None => false,
        },
    }
}

/// `*` and `?` within one path element.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && glob(rest, &name[1..]),
    }
}

#[test]
fn dockerignore_keeps_the_build_output_history_and_secrets_out() {
    let ignore = Ignore::load();
    for path in [
        "target/debug/riverwatch",
        ".git/HEAD",
        "deploy/.env",
        "deploy/mosquitto/passwd",
        "tests/cli.rs",
        "riverwatch-demo/outbox/x.eml",
        "src/main.rs.bk",
        "README.md",
    ] {
        assert!(ignore.excludes(path), "{path} is sent to the build");
    }
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "src/console/index.html",
        "config/demo.toml",
    ] {
        assert!(!ignore.excludes(path), "{path} is left out of the build");
    }
}

/// Copies `from` (a file or a folder, relative to the repository) to `to`, leaving out what
/// ignore file excludes; returns how many files were copied.
fn copy_context(ignore: &Ignore, rel: &str, to: &Path) -> usize {
    let from = repo().join(rel);
    if ignore.excludes(rel) && from.is_file() {
        return 0;
    }
    if from.is_file() {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, to).unwrap_or_else(|e| panic!("{rel}: {e}"));
        return 1;
    }
    let mut count = 0;
    for entry in std::fs::read_dir(&from).unwrap_or_else(|e| panic!("{rel}: {e}")) {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        count += copy_context(ignore, &format!("{rel}/{name}"), &to.join(&name));
    }
    count
}

/// The repository's own target folder (this test binary lives in `<target>/debug/deps/`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"))
}

/// The crate builds from exactly what the Containerfile's build stage copies, as filtered by
/// ignore file: every compile-time include (`include_str!` of the console and the demo
/// config) and every file the manifest names must be inside. `cargo check --locked --offline`
/// stands in for the image's `cargo build --release --locked`, in a target folder of its own
/// under the repository's (cached across runs). Where a container engine runs and the base
/// images can be pulled, the image is built for real as well.
#[test]
fn the_container_builds_from_what_the_containerfile_copies() {
    let ignore = Ignore::load();
    let base = target_dir().join("container-context");
    let context = base.join("src-root");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).expect("context folder");
    for copy in build_stage_copies() {
        let into_folder =
            copy.dest.is_empty() || copy.dest.ends_with('/') || copy.sources.len() > 1;
        for source in &copy.sources {
            let dest = if into_folder {
                let name = Path::new(source).file_name().expect("a name");
                context.join(&copy.dest).join(name)
            } else {
                context.join(&copy.dest)
            };
            let copied = copy_context(&ignore, source, &dest);
            assert!(
                copied > 0,
                "COPY {source}: nothing in the context (deploy/Containerfile.dockerignore?)"
            );
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["check", "--locked", "--offline", "--quiet"])
        .current_dir(&context)
        .env("CARGO_TARGET_DIR", base.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the crate does not build from the container's context ({}):\n{}",
        context.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The context test above is what runs here; a real build needs an engine and the images.
    let Some(engine) = container_engine() else {
        return;
    };
    for image in base_images() {
        let pulled = std::process::Command::new(&engine)
            .args(["pull", "-q", &image])
            .output();
        match pulled {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!(
                    "{engine} cannot pull {image} ({}); the context check stands",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return;
            }
            Err(e) => {
                eprintln!("{engine} pull {image}: {e}; the context check stands");
                return;
            }
        }
    }
    let tag = format!("localhost/riverwatch-test:{}", std::process::id());
    // BuildKit finds deploy/Containerfile.dockerignore beside the Containerfile; podman is told.
    let mut args = vec!["build", "-f", "deploy/Containerfile", "-t", &tag];
    if engine == "podman" {
        args.extend(["--ignorefile", "deploy/Containerfile.dockerignore"]);
    }
    args.push(".");
    let built = std::process::Command::new(&engine)
        .args(&args)
        .current_dir(repo())
        .output()
        .expect("engine runs");
    assert!(
        built.status.success(),
        "{engine} build failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let _ = std::process::Command::new(&engine)
        .args(["rmi", &tag])
        .output();
}

/// The images the Containerfile builds FROM.
fn base_images() -> Vec<String> {
    containerfile_lines()
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// podman (or docker) when it can run containers here; otherwise says why and returns `None`.
fn container_engine() -> Option<String> {
    for engine in ["podman", "docker"] {
        match std::process::Command::new(engine).arg("info").output() {
            Ok(o) if o.status.success() => return Some(engine.to_string()),
            Ok(o) => eprintln!(
                "{engine} cannot run here: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
            ),
            Err(e) => eprintln!("{engine}: {e}"),
        }
    }
    eprintln!("no container engine runs here; the build-context check stands for the image build");
    None
}

#[test]
fn the_containerfile_is_pinned_unprivileged_and_healthchecked() {
    for image in base_images() {
        assert!(pinned(&image), "FROM {image} is not pinned to a version");
    }
    let lines = containerfile_lines();
    let runtime: Vec<&String> = lines
        .iter()
        .skip_while(|l| !l.starts_with("FROM ") || l.contains(" AS build"))
        .collect();
    let health = runtime
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK in the runtime stage");
    assert!(
        health.contains("/healthz") && health.contains("/dev/tcp/"),
        "{health}"
    );
    // Every apt package pinned to a version, where apt runs at all.
    for line in &lines {
        if let Some(install) = line.split("apt-get install").nth(1) {
            let packages = install
                .split("&&")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter(|w| !w.starts_with('-'));
            for p in packages {
                assert!(p.contains('='), "apt package {p} not pinned: {line}");
            }
        }
    }
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the runtime stage");
    let (uid, gid) = user.split_once(':').expect("uid:gid");
    let uid: u32 = uid.parse().expect("numeric uid");
    let gid: u32 = gid.parse().expect("numeric gid");
    assert!(
        uid >= 1000 && gid >= 1000,
        "non-root, outside system ids: {user}"
    );
}

/// The HEALTHCHECK's shell command, run by the local bash against a real HTTP endpoint: 0 for
/// 200, non-zero when nothing listens.
#[test]
fn the_healthcheck_command_works_without_curl() {
    let line = containerfile_lines()
        .into_iter()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("HEALTHCHECK");
    let json = &line[line.find('[').expect("exec form")..];
    let argv: Vec<String> = serde_json::from_str(json).expect("a JSON array");
    assert_eq!(argv[0], "bash");
    let run = |addr: &str| {
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("RIVERWATCH_HEALTH_ADDR", addr)
            .status()
            .expect("bash runs")
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
        let mut request = String::new();
        reader.read_line(&mut request).expect("request line");
        // The whole request is read before answering: closing with unread bytes would reset
        // the connection and could discard the answer before the client reads it.
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header != "\r\n" {
            header.clear();
        }
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
            .expect("answer");
        request
    });
    assert!(run(&addr).success(), "healthy endpoint judged unhealthy");
    assert_eq!(server.join().expect("server"), "GET /healthz HTTP/1.0\r\n");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    assert!(
        !run(&closed_addr).success(),
        "nothing listening, judged healthy"
    );
}

// ---- systemd ---------------------------------------------------------------------------------

const UNITS: [&str; 2] = ["riverwatch.service", "riverwatch@.service"];

/// `systemd-analyze security --offline=yes` rates both units at most 1.5 (0 is the best, 10
/// the worst); where the tool is missing the test says so and checks the directives instead.
#[test]
fn systemd_units_are_hardened_notify_services() {
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy(unit)).expect("unit");
        for directive in [
            "Type=notify",
            "NotifyAccess=main",
            "WatchdogSec=",
            "RestartPreventExitStatus=64 78",
            "Restart=on-failure",
            "DynamicUser=yes",
            "StateDirectory=riverwatch",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=",
            "SystemCallFilter=",
            "LoadCredential=",
            "ExecStart=/usr/local/bin/riverwatch run --config /etc/riverwatch/riverwatch",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(directive)),
                "{unit}: {directive}"
            );
        }
        // A failing ExecStartPre= is not the main process: its exit 64 would restart forever.
        assert!(
            !text.lines().any(|l| l.starts_with("ExecStartPre=")),
            "{unit}: run validates the config itself"
        );
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(deploy(unit))
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!("systemd-analyze cannot run ({e}): the directives above were checked");
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let score: f64 = stdout
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{unit}: no exposure score:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        eprintln!("{unit}: exposure {score}");
        assert!(score <= 1.5, "{unit}: exposure {score} > 1.5\n{stdout}");
    }
}

/// `systemd-analyze verify` finds nothing to say about either unit (unknown keys, bad values),
/// with ExecStart pointing at the built binary (verify checks that it is executable) and the
/// template instantiated as `riverwatch@0`.
#[test]
fn systemd_units_verify_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (unit, name) in [
        ("riverwatch.service", "riverwatch.service"),
        ("riverwatch@.service", "riverwatch@0.service"),
    ] {
        let text = std::fs::read_to_string(deploy(unit))
            .expect("unit")
            .replace(
                "/usr/local/bin/riverwatch",
                env!("CARGO_BIN_EXE_riverwatch"),
            );
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("unit copy");
        let out = match std::process::Command::new("systemd-analyze")
            .args(["verify", "--no-pager"])
            .arg(&path)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("systemd-analyze cannot run ({e}); nothing verified");
                return;
            }
        };
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !said.contains(name),
            "{unit}: systemd-analyze verify says:\n{said}"
        );
    }
}

/// The daemon under a notify socket the test owns: `READY=1` once it runs (HTTP listening,
/// subscribed), then `WATCHDOG=1` every half of `$WATCHDOG_USEC`, and `STOPPING=1` on SIGTERM.
/// With `[spool] dir` left out and `$STATE_DIRECTORY` set, its state goes under that folder.
#[test]
fn the_daemon_notifies_systemd_and_keeps_state_in_the_state_directory() {
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};
    let Some((servers, _serial, dir)) = real_test("systemd notify") else {
        return;
    };
    let db = common::fresh_database(&servers, "rw_notify");
    let config = common::two_station_config(
        &servers,
        "notify",
        dir.path(),
        &common::v1_store(&servers, &db),
    );
    let text = std::fs::read_to_string(&config).expect("config");
    let spool_line = format!("[spool]\ndir = \"{}/spool\"\n", dir.path().display());
    assert!(text.contains(&spool_line), "the test config sets its spool");
    std::fs::write(&config, text.replace(&spool_line, "")).expect("config without [spool]");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state folder");

    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    let daemon = common::Daemon::start_with_env(
        &config,
        &dir.path().join("daemon.log"),
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("UTF-8 path")),
            ("WATCHDOG_USEC", "400000"),
            ("STATE_DIRECTORY", state.to_str().expect("UTF-8 path")),
        ],
    );
    let mut received: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    let watchdogs = |r: &[String]| {
        r.iter()
            .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    };
    while watchdogs(&received) < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no READY=1 and two WATCHDOG=1 within 20 s; got {received:?}\n{}",
            daemon.log_text()
        );
        socket.set_read_timeout(Some(left)).expect("timeout");
        if let Ok(n) = socket.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let ready = received
        .iter()
        .position(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1: {received:?}"));
    let first_ping = received
        .iter()
        .position(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .expect("a ping");
    assert!(ready < first_ping, "READY=1 before the pings: {received:?}");
    assert!(
        received[ready].contains("STATUS=running: subscribed"),
        "ready once subscribed: {received:?}"
    );
    // The state went to $STATE_DIRECTORY/spool.
    for part in ["wal", "outbox"] {
        assert!(
            state.join("spool").join(part).exists(),
            "{part} under $STATE_DIRECTORY/spool"
        );
    }
    let log = daemon.log.clone();
    let (status, _) = daemon.terminate();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut stopping = false;
    while let Ok(n) = socket.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1")
        {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "STOPPING=1 on SIGTERM");
}
