//! The chat and webhook channels against real local HTTP servers (tests/robots.py, started by
//! the test runner), which check what WeCom's group robot, DingTalk's custom robot (加签,
//! keywords) and the signed webhook check, answer as the vendors do, and do not deduplicate:
//! an exceedance at the boundary section reaches every robot of both bureaus; an errcode in a
//! 200 body is retried (rate limit) or dead-lettered (bad key, bad signature) as classified;
//! an SMS provider's verdict in its JSON answer decides delivery; and across an endpoint
//! outage and a SIGKILL each transition reaches each robot exactly once.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The robot endpoints and their credentials, from the test runner's environment.
struct Robots {
    /// `127.0.0.1:<port>`.
    addr: String,
    url: String,
    log: PathBuf,
    wecom_key: String,
    dingtalk_token: String,
    dingtalk_secret: String,
    keyword: String,
    webhook_secret: String,
}

impl Robots {
    fn from_env() -> Robots {
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is not set (tests/servers.sh sets it)"))
        };
        let url = var("RIVERWATCH_TEST_ROBOTS_URL");
        Robots {
            addr: url.trim_start_matches("http://").to_string(),
            url,
            log: var("RIVERWATCH_TEST_ROBOTS_LOG").into(),
            wecom_key: var("RIVERWATCH_TEST_WECOM_KEY"),
            dingtalk_token: var("RIVERWATCH_TEST_DINGTALK_TOKEN"),
            dingtalk_secret: var("RIVERWATCH_TEST_DINGTALK_SECRET"),
            keyword: var("RIVERWATCH_TEST_DINGTALK_KEYWORD"),
            webhook_secret: var("RIVERWATCH_TEST_WEBHOOK_SECRET"),
        }
    }

    /// Tells the endpoint at `path` how to answer (see tests/robots.py).
    fn control(&self, command: Value) {
        let (status, body) = http_post(&self.addr, "/control", &[], &command.to_string());
        assert_eq!(status, 200, "{body}");
    }

    /// Everything the endpoint at `path` logged, in order.
    fn records(&self, path: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["path"] == path)
            .collect()
    }

    /// The deliveries the endpoint at `path` accepted.
    fn accepted(&self, path: &str) -> Vec<Value> {
        self.records(path)
            .into_iter()
            .filter(|v| v["accepted"] == true)
            .collect()
    }

    /// The answers injected at `path` (outage, rate limit) that riverwatch received.
    fn injected(&self, path: &str) -> usize {
        self.records(path)
            .iter()
            .filter(|v| v["injected"] == true)
            .count()
    }
}

/// The text a delivery carried: WeCom's content, DingTalk's text, the webhook's subject and
/// text.
fn text_of(v: &Value) -> String {
    let b = &v["body"];
    match v["vendor"].as_str() {
        Some("wecom") => b["markdown"]["content"].as_str().unwrap_or("").to_string(),
        Some("dingtalk") => b["markdown"]["text"].as_str().unwrap_or("").to_string(),
        _ => format!(
            "{}\n{}",
            b["subject"].as_str().unwrap_or(""),
            b["text"].as_str().unwrap_or("")
        ),
    }
}

/// Deliveries at `path` whose text names the exceedance rule.
fn exceedances(robots: &Robots, path: &str) -> usize {
    robots
        .accepted(path)
        .iter()
        .filter(|v| text_of(v).contains("（exceedance）"))
        .count()
}

/// The paths of one test's robots: (bureau, channel) → `/<vendor>/<test>/<bureau>`.
fn path(name: &str, vendor: &str, bureau: &str) -> String {
    format!("/{vendor}/{name}/{bureau}")
}

/// The two-station config with a WeCom robot, a DingTalk robot and a webhook per bureau,
/// their URLs and secrets in the environment variables [`robot_env`] sets; `sms` replaces the
/// `[sms]` section when given.
fn config(servers: &Servers, name: &str, dir: &Path, sms: Option<&str>) -> PathBuf {
    let db = fresh_database(servers, &format!("rw_{name}"));
    let file = two_station_config(servers, name, dir, &v1_store(servers, &db));
    let mut text = std::fs::read_to_string(&file).expect("config");
    for b in ["gz", "qy"] {
        let upper = b.to_uppercase();
        let email = format!("email = [\"{b}-{name}@example.org\"]\n");
        text = text.replace(
            &email,
            &format!(
                "{email}wecom = [{{ url_env = \"RW_{upper}_WECOM\" }}]\n\
                 dingtalk = [{{ url_env = \"RW_{upper}_DINGTALK\", secret_env = \"RW_{upper}_DINGTALK_SECRET\", keywords = [\"水质预警\"], at_mobiles = [\"13800000000\"] }}]\n\
                 webhook = [{{ url = \"{{hook_{b}}}\", secret_env = \"RW_{upper}_HOOK_SECRET\" }}]\n"
            ),
        );
    }
    let robots = Robots::from_env();
    for b in ["gz", "qy"] {
        text = text.replace(
            &format!("{{hook_{b}}}"),
            &format!("{}{}", robots.url, path(name, "hook", b)),
        );
    }
    if let Some(sms) = sms {
        let start = text.find("[sms]").expect("[sms]");
        let end = start + text[start..].find("\n\n").expect("end of [sms]");
        text.replace_range(start..end, sms);
    }
    write_config(file, &text)
}

/// The environment holding each robot's URL and secret; `bad` lists (bureau, channel) whose
/// credential is wrong.
fn robot_env(robots: &Robots, name: &str, bad: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for b in ["gz", "qy"] {
        let upper = b.to_uppercase();
        let key = if bad.contains(&(b, "wecom")) {
            "wrong-key"
        } else {
            robots.wecom_key.as_str()
        };
        let secret = if bad.contains(&(b, "dingtalk")) {
            "SECwrong"
        } else {
            robots.dingtalk_secret.as_str()
        };
        env.push((
            format!("RW_{upper}_WECOM"),
            format!("{}{}?key={key}", robots.url, path(name, "wecom", b)),
        ));
        env.push((
            format!("RW_{upper}_DINGTALK"),
            format!(
                "{}{}?access_token={}",
                robots.url,
                path(name, "dingtalk", b),
                robots.dingtalk_token
            ),
        ));
        env.push((format!("RW_{upper}_DINGTALK_SECRET"), secret.to_string()));
        env.push((
            format!("RW_{upper}_HOOK_SECRET"),
            robots.webhook_secret.clone(),
        ));
    }
    env
}

fn start(config: &Path, log: &Path, env: &[(String, String)]) -> Daemon {
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut daemon = Daemon::start_with_env(config, log, &vars);
    daemon.wait_log("subscribed", Duration::from_secs(15));
    daemon
}

/// 石角(界牌) at 0.3, then twice 1.2 mg/L NH3-N: a rate warning, then the exceedance.
fn publish_exceedance(servers: &Servers) {
    for (minutes, nh3n) in [(50, 0.3), (40, 1.2), (30, 1.2)] {
        let (ts, _) = ts_minutes_ago(minutes);
        servers.publish(
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.3,"do":7.1,"nh3n":{nh3n}}}}}"#),
        );
    }
}

/// `riverwatch_notifications_total{channel,outcome}` from the daemon's `/metrics`.
fn notifications(daemon: &mut Daemon, channel: &str, outcome: &str) -> u64 {
    let (_, text) = daemon.http_get("/metrics");
    let prefix =
        format!("riverwatch_notifications_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The files waiting in the outbox.
fn pending(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("spool/outbox/pending"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The heart of the channels: every robot of both bureaus hears of the exceedance; a WeCom
/// rate limit (errcode 45009 in a 200) is retried; a DingTalk robot and a webhook that are
/// down (503) across a SIGKILL of the daemon are delivered to after the restart; and each
/// transition reaches each robot exactly once (the endpoints do not deduplicate).
#[test]
fn an_exceedance_reaches_every_robot_once_across_an_outage_and_a_kill() {
    let Some((servers, _serial, dir)) = real_test("channels") else {
        return;
    };
    let robots = Robots::from_env();
    let name = format!("ch{}", std::process::id());
    let config = config(&servers, &name, dir.path(), None);
    let env = robot_env(&robots, &name, &[]);
    let wecom_gz = path(&name, "wecom", "gz");
    let dingtalk_qy = path(&name, "dingtalk", "qy");
    let hook_gz = path(&name, "hook", "gz");
    robots.control(json!({"path": wecom_gz, "answer": {"errcode": 45009, "errmsg": "api freq out of limit"}, "times": 2}));
    robots.control(json!({"path": dingtalk_qy, "status": 503, "answer": {}}));
    robots.control(json!({"path": hook_gz, "status": 503, "answer": {}}));

    let mut daemon = start(&config, &dir.path().join("daemon.log"), &env);
    publish_exceedance(&servers);

    // WeCom: both bureaus, the first after two rate-limit answers. The DingTalk and webhook
    // outages are being retried.
    wait_for(Duration::from_secs(30), "the exceedance on WeCom", || {
        ["gz", "qy"]
            .iter()
            .all(|b| exceedances(&robots, &path(&name, "wecom", b)) == 1)
            .then_some(())
    });
    assert_eq!(robots.injected(&wecom_gz), 2, "two rate-limit answers");
    wait_for(
        Duration::from_secs(15),
        "attempts at the endpoints that are down",
        || (robots.injected(&dingtalk_qy) >= 1 && robots.injected(&hook_gz) >= 1).then_some(()),
    );
    // Kill only once every WeCom delivery is recorded as such, so the crash falls where
    // nothing is in flight but failing attempts (the documented window of a repeat is the
    // instant between a server's acceptance and our record of it).
    wait_for(Duration::from_secs(15), "WeCom deliveries recorded", || {
        let accepted: usize = ["gz", "qy"]
            .iter()
            .map(|b| robots.accepted(&path(&name, "wecom", b)).len())
            .sum();
        (notifications(&mut daemon, "wecom", "sent") == accepted as u64).then_some(())
    });
    daemon.kill();

    robots.control(json!({"path": dingtalk_qy, "clear": true}));
    robots.control(json!({"path": hook_gz, "clear": true}));
    let _daemon = start(&config, &dir.path().join("daemon2.log"), &env);
    wait_for(
        Duration::from_secs(60),
        "every robot told of the exceedance",
        || {
            let all = ["wecom", "dingtalk", "hook"].iter().all(|v| {
                ["gz", "qy"]
                    .iter()
                    .all(|b| exceedances(&robots, &path(&name, v, b)) >= 1)
            });
            (all && pending(dir.path()) == 0).then_some(())
        },
    );

    for b in ["gz", "qy"] {
        // Each transition once per robot: as many deliveries on each channel as on the
        // webhook, whose Idempotency-Keys tell the transitions apart, and no text twice.
        let hooks = robots.accepted(&path(&name, "hook", b));
        let mut keys: Vec<_> = hooks
            .iter()
            .map(|v| {
                v["headers"]["idempotency-key"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            hooks.len(),
            "{b}: a webhook delivery twice: {keys:?}"
        );
        for vendor in ["wecom", "dingtalk", "hook"] {
            let p = path(&name, vendor, b);
            assert_eq!(exceedances(&robots, &p), 1, "{p}");
            let mut texts: Vec<String> = robots.accepted(&p).iter().map(text_of).collect();
            assert_eq!(texts.len(), hooks.len(), "{p}: {texts:?}");
            texts.sort();
            texts.dedup();
            assert_eq!(texts.len(), hooks.len(), "{p}: a message twice");
        }
        // What each vendor was sent: DingTalk's keyword and mention, the webhook's fields.
        let ding = robots.accepted(&path(&name, "dingtalk", b));
        assert!(ding.iter().all(|v| {
            let text = text_of(v);
            text.contains(robots.keyword.as_str()) && text.contains("@13800000000")
        }));
        assert_eq!(ding[0]["body"]["at"]["atMobiles"], json!(["13800000000"]));
        let exceedance = hooks
            .iter()
            .find(|v| text_of(v).contains("（exceedance）"))
            .expect("the exceedance on the webhook");
        let body = &exceedance["body"];
        // The exceedance opens an incident at the boundary section: its message is the
        // incident's (state `opened`), with the alert's level and station.
        assert_eq!(
            (
                &body["level"],
                &body["station"],
                &body["state"],
                &body["version"]
            ),
            (
                &json!("yellow"),
                &json!("shijiao"),
                &json!("opened"),
                &json!(1)
            )
        );
        assert_eq!(
            body["key"], exceedance["headers"]["idempotency-key"],
            "the key twice"
        );
    }
    // The outages were retried, not dead-lettered.
    let dead =
        std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap_or_default();
    assert!(!dead.contains("notify/"), "{dead}");
}

/// Wrong credentials are refused by the vendor in a 200 body and dead-lettered, not retried
/// for ever: WeCom's errcode 93000 (bad key), DingTalk's 310000 (sign not match); the other
/// robots are delivered to. An SMS provider answering `isv.BUSINESS_LIMIT_CONTROL` in a 200
/// is retried by `[sms] success`. No secret reaches the log or the outbox.
#[test]
fn bad_credentials_are_dead_lettered_and_provider_verdicts_decide() {
    let Some((servers, _serial, dir)) = real_test("channels_bad") else {
        return;
    };
    let robots = Robots::from_env();
    let name = format!("cb{}", std::process::id());
    let sms_path = format!("/sms/{name}");
    let sms = format!(
        "[sms]\nurl = \"{}{sms_path}\"\nsuccess = {{ path = \"Code\", equals = \"OK\", retry = [\"isv.BUSINESS_LIMIT_CONTROL\"] }}",
        robots.url
    );
    let config = config(&servers, &name, dir.path(), Some(&sms));
    let env = robot_env(&robots, &name, &[("gz", "wecom"), ("qy", "dingtalk")]);
    robots.control(json!({"path": sms_path, "answer": {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1"}, "times": 2}));

    let mut daemon = start(&config, &dir.path().join("daemon.log"), &env);
    publish_exceedance(&servers);

    let good = [
        ("wecom", "qy"),
        ("dingtalk", "gz"),
        ("hook", "gz"),
        ("hook", "qy"),
    ];
    wait_for(Duration::from_secs(30), "the good robots told", || {
        good.iter()
            .all(|(v, b)| exceedances(&robots, &path(&name, v, b)) == 1)
            .then_some(())
    });
    let code = phone_code(&name);
    let phones = [format!("+86130{code}01"), format!("+86130{code}02")];
    wait_for(Duration::from_secs(30), "both phones texted", || {
        let texted = |phone: &String| {
            robots
                .accepted(&sms_path)
                .iter()
                .filter(|v| v["body"]["to"] == phone.as_str())
                .count()
        };
        phones.iter().all(|p| texted(p) >= 2).then_some(())
    });
    wait_for(
        Duration::from_secs(15),
        "the refusals dead-lettered",
        || {
            (pending(dir.path()) == 0 && notifications(&mut daemon, "wecom", "failed") >= 2)
                .then_some(())
        },
    );

    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let refused = |topic: &str, why: &str| {
        dead.iter()
            .filter(|v| v["topic"] == topic && v["reason"].as_str().unwrap_or("").contains(why))
            .count()
    };
    let gz_wecom = robots.records(&path(&name, "wecom", "gz"));
    let qy_dingtalk = robots.records(&path(&name, "dingtalk", "qy"));
    assert!(gz_wecom.iter().all(|v| v["accepted"] == false));
    assert!(qy_dingtalk.iter().all(|v| v["accepted"] == false));
    // Each refused notification was tried once and dead-lettered.
    assert_eq!(refused("notify/wecom", "93000"), gz_wecom.len(), "{dead:?}");
    assert_eq!(
        refused("notify/dingtalk", "310000"),
        qy_dingtalk.len(),
        "{dead:?}"
    );
    assert!(!gz_wecom.is_empty() && !qy_dingtalk.is_empty());
    // The SMS: two rate-limit answers retried; no text twice per phone.
    assert_eq!(robots.injected(&sms_path), 2);
    assert_eq!(refused("notify/sms", ""), 0, "{dead:?}");
    for phone in &phones {
        let mut texts: Vec<String> = robots
            .accepted(&sms_path)
            .iter()
            .filter(|v| v["body"]["to"] == phone.as_str())
            .map(|v| v["body"]["text"].as_str().unwrap_or("").to_string())
            .collect();
        let n = texts.len();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), n, "{phone}: a text twice");
        assert!(texts.iter().all(|t| t.chars().count() <= 70), "{texts:?}");
    }

    // No secret in the log or the outbox's files.
    let mut seen = daemon.log_text();
    for sub in ["pending", "failed"] {
        for e in std::fs::read_dir(dir.path().join("spool/outbox").join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            seen.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    for secret in [
        robots.wecom_key.as_str(),
        "wrong-key",
        robots.dingtalk_token.as_str(),
        robots.dingtalk_secret.as_str(),
        "SECwrong",
        robots.webhook_secret.as_str(),
    ] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
    assert!(daemon.log_text().contains("refused permanently"));
}
