//! Duty officers' controls against the real servers (mosquitto, InfluxDB 1.x, the SMTP server
//! and the SMS gateway the test runner starts): silences that cannot hurt — refused without a
//! matcher, beyond the maximum or with a level that is not `levels`; never muting orange unless
//! they name it; ended by `DELETE`, after which the exceedance they held, still firing, is
//! notified — and quiet hours that hold a bureau's blue alert until they end, then send it in
//! a summary, while its yellow alert goes out at once.

mod common;

use common::*;
use std::time::Duration;

const TOKEN: &str = "duty-token-for-tests";
const AUTH: [&str; 1] = ["Authorization: Bearer duty-token-for-tests"];

/// The two-station config with an API token, and `extra` appended to the Qingyuan bureau.
fn config(
    servers: &Servers,
    name: &str,
    dir: &std::path::Path,
    qingyuan: &str,
) -> std::path::PathBuf {
    let db = fresh_database(servers, &format!("rw_{name}"));
    let store = v1_store(servers, &db);
    let path = two_station_config(servers, name, dir, &store);
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:0\"\ntoken_env = \"RW_TEST_API_TOKEN\"",
        )
        .replace(
            &format!("email = [\"qy-{name}@example.org\"]"),
            &format!("email = [\"qy-{name}@example.org\"]\n{qingyuan}"),
        );
    write_config(path, &text)
}

/// Three readings at the boundary section 石角, ten minutes apart, NH3-N 0.3 then `nh3n`
/// twice: an exceedance (yellow up to class Ⅴ, orange beyond) and a rate warning (blue).
fn exceed(servers: &Servers, nh3n: f64) {
    for (ago, v) in [(30, 0.3), (20, nh3n), (10, nh3n)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4,"do":7.5,"nh3n":{v}}}}}"#),
        );
    }
}

/// The emails `address` received whose body holds `needle`.
fn mail_with(servers: &Servers, address: &str, needle: &str) -> Vec<String> {
    servers
        .emails_to(address)
        .into_iter()
        .filter(|(_, b)| b.contains(needle))
        .map(|(_, b)| b)
        .collect()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_silence_is_bounded_spares_orange_and_releases_what_it_held_when_deleted() {
    let Some((servers, _serial, dir)) = real_test("duty_silence") else {
        return;
    };
    let config = config(&servers, "dutysil", dir.path(), "");
    let env = [("RW_TEST_API_TOKEN", TOKEN)];
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("daemon.log"), &env);
    daemon.wait_log("subscribed", Duration::from_secs(15));
    let addr = daemon.http_addr();
    let post = |body: &str| http_post(&addr, "/api/v1/silences", &AUTH, body);

    // Refused, each with its reason.
    for (body, reason) in [
        (
            r#"{"duration":"2h","author":"张三","reason":"everything"}"#,
            "at least one of station, rule and param",
        ),
        (
            r#"{"station":"shijiao","duration":"3650d","author":"张三","reason":"forever"}"#,
            "maximum silence of 7d",
        ),
        (
            r#"{"station":"shijiao","level":"orange","duration":"2h","author":"张三","reason":"orange"}"#,
            "unknown field `level`",
        ),
        (
            r#"{"station":"shijiao","levels":[],"duration":"2h","author":"张三","reason":"none"}"#,
            "at least one level",
        ),
        (
            r#"{"station":"shijiao","duration":"2h","reason":"who?"}"#,
            "author is required",
        ),
    ] {
        let (status, answer) = post(body);
        assert_eq!(status, 400, "{body}: {answer}");
        let error = json(&answer)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(reason), "{body}: {error}");
    }
    assert_eq!(
        json(&daemon.http_get("/api/v1/silences").1),
        serde_json::json!([])
    );

    // A silence on 石角's exceedances: data, blue and yellow by default.
    let (status, answer) = post(
        r#"{"station":"shijiao","rule":"exceedance","duration":"1h","author":"张三","reason":"calibration"}"#,
    );
    assert_eq!(status, 201, "{answer}");
    let silence = json(&answer);
    assert_eq!(
        silence["levels"],
        serde_json::json!(["data", "blue", "yellow"])
    );
    assert_eq!(
        (&silence["author"], &silence["active"]),
        (&"张三".into(), &true.into())
    );
    assert!(
        silence["starts"].is_string() && silence["until"].is_string(),
        "{silence}"
    );
    let id = silence["id"].as_str().expect("id").to_string();

    // A yellow exceedance (NH3-N 1.2, class Ⅳ) fires and is held; the rate warning it
    // brings (blue, another rule) is not.
    exceed(&servers, 1.2);
    let qy = "qy-dutysil@example.org";
    wait_for(Duration::from_secs(30), "the rate warning", || {
        (!mail_with(&servers, qy, "快速变化").is_empty()).then_some(())
    });
    daemon.wait_log(
        "notifications held back by a silence",
        Duration::from_secs(10),
    );
    assert!(
        mail_with(&servers, qy, "污染事件").is_empty(),
        "the silenced exceedance was notified"
    );

    // Deleted: listed as ended; the exceedance, still firing, is notified once, marked.
    let path = format!("/api/v1/silences/{id}");
    let (status, answer) = http_request(&addr, "DELETE", &path, &AUTH);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(json(&answer)["active"], false);
    let (status, _) = http_request(&addr, "DELETE", "/api/v1/silences/silence-unknown", &AUTH);
    assert_eq!(status, 404);
    let (status, _) = http_request(&addr, "DELETE", &path, &[]);
    assert_eq!(status, 401);
    let listed = json(&daemon.http_get("/api/v1/silences").1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["active"], false);
    let released = wait_for(Duration::from_secs(30), "the released exceedance", || {
        let mail = mail_with(&servers, qy, "污染事件");
        (!mail.is_empty()).then_some(mail)
    });
    assert!(
        released[0].contains("Released from silence") && released[0].contains("事件开始"),
        "{}",
        released[0]
    );
    // A silence without levels never mutes orange: NH3-N 2.5 (worse than class Ⅴ) is told.
    let (status, answer) =
        post(r#"{"station":"qixinggang","duration":"1h","author":"张三","reason":"calibration"}"#);
    assert_eq!(status, 201, "{answer}");
    for (ago, v) in [(30, 0.3), (20, 2.5), (10, 2.5)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/qixinggang/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4,"do":7.5,"nh3n":{v}}}}}"#),
        );
    }
    wait_for(
        Duration::from_secs(30),
        "the orange incident at 七星岗",
        || {
            mail_with(&servers, qy, "污染事件")
                .iter()
                .any(|b| b.contains("七星岗") && b.contains("橙色"))
                .then_some(())
        },
    );
    // Released once: the ticks since sent it no more.
    assert_eq!(mail_with(&servers, qy, "Released from silence").len(), 1);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn quiet_hours_hold_a_blue_alert_until_they_end_and_never_a_yellow_one() {
    let Some((servers, _serial, dir)) = real_test("duty_quiet") else {
        return;
    };
    // Qingyuan's quiet hours began an hour ago and end in two to three minutes (UTC+8).
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let now = chrono::Utc::now();
    let end_at = now + chrono::Duration::minutes(3);
    let window = format!(
        "{}-{}",
        (now - chrono::Duration::hours(1))
            .with_timezone(&cst)
            .format("%H:%M"),
        end_at.with_timezone(&cst).format("%H:%M")
    );
    let end_at = end_at - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&end_at)));
    let config = config(
        &servers,
        "dutyquiet",
        dir.path(),
        &format!("quiet_hours = \"{window}\""),
    );
    let env = [("RW_TEST_API_TOKEN", TOKEN)];
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("daemon.log"), &env);
    daemon.wait_log("subscribed", Duration::from_secs(15));

    // A yellow exceedance and a blue rate warning at the boundary section: both bureaus.
    exceed(&servers, 1.2);
    let (gz, qy) = ("gz-dutyquiet@example.org", "qy-dutyquiet@example.org");
    wait_for(
        Duration::from_secs(30),
        "the yellow incident in quiet hours",
        || (!mail_with(&servers, qy, "污染事件").is_empty()).then_some(()),
    );
    wait_for(Duration::from_secs(30), "Guangzhou's blue warning", || {
        (!mail_with(&servers, gz, "快速变化").is_empty()).then_some(())
    });
    assert!(
        chrono::Utc::now() < end_at,
        "the yellow alert came after the quiet period (too slow to test)"
    );
    assert!(
        mail_with(&servers, qy, "快速变化").is_empty(),
        "Qingyuan's blue warning did not wait"
    );

    // At the end: one summary to Qingyuan's duty address, holding the blue warning.
    let summary = wait_for(Duration::from_secs(240), "the quiet-hours summary", || {
        let mail = mail_with(&servers, qy, "静默时段汇总");
        (!mail.is_empty()).then_some(mail)
    });
    assert!(
        chrono::Utc::now() >= end_at,
        "the summary came before the quiet period ended"
    );
    assert_eq!(summary.len(), 1, "{summary:#?}");
    assert!(
        summary[0].contains(&format!("每日 {window}")) && summary[0].contains("快速变化"),
        "{}",
        summary[0]
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
