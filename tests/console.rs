//! The duty console in a real browser: the daemon runs against the real servers with an
//! exceedance at 石角(界牌) open as an incident, and headless Chromium, driven through
//! chromedriver's W3C WebDriver HTTP API (`common::browser`, over a plain TCP stream), logs in with
//! the bearer token, sees the incident, acknowledges it with a name and a comment, creates a
//! silence and ends it — each checked through the API afterwards. A station name and a
//! silence reason holding markup are shown as text, and no element is made from them. The
//! screenshot is kept in `target/test-artifacts/console.png`.

mod common;

use common::browser::{artifacts, Browser};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Markup that would run script if the console wrote data as HTML.
const XSS: &str = "<img src=x onerror=alert(1)>";
const TOKEN: &str = "console-token-for-tests";

fn api_list(addr: &str, path: &str) -> Vec<Value> {
    let (status, _, body) = exchange(addr, "GET", path, &[], None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("{path} is not a list: {body}"))
}

#[test]
fn a_duty_officer_acknowledges_and_silences_in_a_real_browser() {
    let Some((servers, _serial, dir)) = real_test("console") else {
        return;
    };
    let db = fresh_database(&servers, "rw_console");
    let config = two_station_config(&servers, "console", dir.path(), &v1_store(&servers, &db));
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace(
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:0\"\ntoken_env = \"RW_TEST_API_TOKEN\"",
        )
        // A station name holding markup, shown by the console as text.
        .replace("name = \"七星岗\"", &format!("name = \"七星岗{XSS}\""));
    std::fs::write(&config, text).expect("config written");
    let env = [("RW_TEST_API_TOKEN", TOKEN)];
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("daemon.log"), &env);
    daemon.wait_log("subscribed", Duration::from_secs(15));
    let addr = daemon.http_addr();

    // An NH3-N exceedance at 石角(界牌): a yellow alert and an open incident.
    for (ago, nh3n) in [(30, 0.3), (20, 1.2), (10, 1.25)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.4,"do":7.5,"nh3n":{nh3n}}}}}"#),
        );
    }
    let incident = wait_for(Duration::from_secs(30), "an open incident", || {
        api_list(&addr, "/api/v1/incidents")
            .into_iter()
            .find(|i| i["state"] == "open" && i["origin"] == "shijiao")
    });
    let incident_id = incident["id"].as_str().expect("incident id").to_string();

    // The page and its files carry the security headers; writes without the token are
    // refused, which is all a cross-site page could send.
    for path in ["/", "/console.js", "/console.css"] {
        let (status, head, _) = exchange(&addr, "GET", path, &[], None);
        assert_eq!(status, 200, "{path}");
        let csp = header(&head, "content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {head}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&head, "referrer-policy"), Some("no-referrer"));
        assert_eq!(header(&head, "x-frame-options"), Some("DENY"));
    }
    let ack_path = format!("/api/v1/incidents/{incident_id}/ack");
    let ack_body = r#"{"by":"x","comment":"","bureau":"qingyuan"}"#;
    assert_eq!(
        exchange(&addr, "POST", &ack_path, &[], Some(ack_body)).0,
        401
    );

    let browser = Browser::start(dir.path());
    browser.session(
        "POST",
        "/url",
        Some(json!({ "url": format!("http://{addr}/") })),
    );

    // Log in with the token.
    browser.type_into("#token", TOKEN);
    browser.click("#login-button");
    let who = browser.wait_text("#who", "值班员");
    assert!(who.contains("Operator"), "{who}");

    // The open incident, with its level, parameter and station; the stations' status.
    let card = browser.wait_text("#incidents .incident", "石角(界牌)");
    assert!(
        card.contains("黄色") && card.contains("氨氮") && card.contains(&incident_id),
        "{card}"
    );
    assert!(card.contains("1.2"), "the value in the timeline: {card}");
    let stations = browser.wait_text("#stations", "在线 Online");
    assert!(
        stations.contains("Ⅳ / Ⅱ"),
        "class against target: {stations}"
    );
    // The name holding markup is text, literally.
    assert!(stations.contains(&format!("七星岗{XSS}")), "{stations}");

    // Acknowledge the incident with a name and a comment.
    browser.click("#incidents button.ack");
    browser.type_into("#ack-by", "张三");
    browser.type_into("#ack-bureau", "qingyuan");
    browser.type_into("#ack-comment", "已通知现场核查");
    browser.click("#ack-submit");
    browser.wait_text("#status", "已确认");
    let acked = browser.wait_text("#incidents .incident", "已通知现场核查");
    assert!(acked.contains("张三"), "{acked}");
    // …as the API says.
    let listed = api_list(&addr, "/api/v1/incidents");
    let shown = listed
        .iter()
        .find(|i| i["id"] == incident_id.as_str())
        .expect("the incident");
    let acks = shown["acks"].as_array().expect("acks");
    assert_eq!(acks.len(), 1, "{shown}");
    assert_eq!(acks[0]["by"], "张三");
    assert_eq!(acks[0]["comment"], "已通知现场核查");
    assert_eq!(acks[0]["bureau"], "qingyuan");
    let alerts = api_list(&addr, "/api/v1/alerts");
    let exceedance = alerts
        .iter()
        .find(|a| a["station"] == "shijiao" && a["rule"] == "exceedance")
        .expect("the exceedance alert");
    assert!(
        exceedance["acknowledged"] == true
            || exceedance["acks"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["by"] == "张三")),
        "acknowledging the incident acknowledges its alert: {exceedance}"
    );

    // Create a silence for 七星岗 whose reason holds markup.
    browser.click("#silence-station option[value=\"qixinggang\"]");
    browser.click("#silence-rule option[value=\"offline\"]");
    browser.type_into("#silence-duration", "2h");
    browser.type_into("#silence-author", "李四");
    let reason = format!("设备维护 {XSS}");
    browser.type_into("#silence-reason", &reason);
    browser.click("#silence-submit");
    browser.wait_text("#status", "已创建静默");
    let row = browser.wait_text("#silences", "李四");
    assert!(row.contains(&reason), "the reason, literally: {row}");
    assert!(
        row.contains(&format!("七星岗{XSS}")) && row.contains("离线 Offline"),
        "what it matches: {row}"
    );
    let silences = api_list(&addr, "/api/v1/silences");
    let silence = silences
        .iter()
        .find(|s| s["reason"] == reason.as_str())
        .unwrap_or_else(|| panic!("the silence in {silences:?}"));
    assert_eq!(silence["station"], "qixinggang");
    assert_eq!(silence["author"], "李四");
    let silence_id = silence["id"].as_str().expect("silence id").to_string();

    // Nothing shown was parsed as markup: no image element, no dialog.
    assert!(browser.all("img").is_empty(), "an element made from data");
    assert!(!browser.dialog_open(), "a script from data ran");

    // The screenshot, with the acknowledgement and the silence on it.
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.path().join("console.png"), &png).expect("screenshot");
    std::fs::write(artifacts().join("console.png"), &png).expect("screenshot artifact");

    // End the silence.
    browser.click(&format!(
        "#silences tr[data-id=\"{silence_id}\"] button.end"
    ));
    browser.wait_text("#status", "静默已结束");
    let end_button = format!("#silences tr[data-id=\"{silence_id}\"] button.end");
    wait_for(
        Duration::from_secs(15),
        "the silence shown as ended",
        || browser.all(&end_button).is_empty().then_some(()),
    );
    let silences = api_list(&addr, "/api/v1/silences");
    assert!(
        silences
            .iter()
            .all(|s| s["id"] != silence_id.as_str() || s["active"] == false),
        "the silence ended: {silences:?}"
    );
    assert!(!browser.dialog_open());

    drop(browser);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
