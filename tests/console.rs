//! The duty console in a real browser: the daemon runs against the real servers with an
//! exceedance at 石角(界牌) open as an incident, and headless Chromium, driven through
//! chromedriver's W3C WebDriver HTTP API (spoken below over a plain TCP stream), logs in with
//! the bearer token, sees the incident, acknowledges it with a name and a comment, creates a
//! silence and ends it — each checked through the API afterwards. A station name and a
//! silence reason holding markup are shown as text, and no element is made from them. The
//! screenshot is kept in `target/test-artifacts/console.png`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Markup that would run script if the console wrote data as HTML.
const XSS: &str = "<img src=x onerror=alert(1)>";
const TOKEN: &str = "console-token-for-tests";

/// One HTTP/1.1 exchange over a TCP stream: (status, headers, body). Enough for chromedriver
/// and the daemon: the body is read by its `Content-Length`, or its chunks, or to the end
/// (chromedriver keeps the connection open whatever `Connection: close` says).
fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("HTTP connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("HTTP write");
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = complete(&raw) {
            raw.truncate(end);
            break;
        }
        let n = stream.read(&mut buf).expect("HTTP read");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = header(head, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, head.to_string(), body)
}

/// The length of the whole response once `raw` holds it: head and `Content-Length` bytes, or
/// head and chunks up to the last one.
fn complete(raw: &[u8]) -> Option<usize> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    if let Some(length) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        return (raw.len() >= head_end + length).then_some(head_end + length);
    }
    if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let body = &raw[head_end..];
        return body
            .windows(5)
            .position(|w| w == b"0\r\n\r\n")
            .filter(|&at| at == 0 || body[..at].ends_with(b"\r\n"))
            .map(|at| head_end + at + 5);
    }
    None
}

/// The body of a chunked response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// A header's value in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// chromedriver with one headless Chromium session; both end when it is dropped.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(dir: &Path) -> Browser {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("log file");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chromedriver runs (tests/servers.sh installs chromium-driver)");
        let addr = format!("127.0.0.1:{port}");
        // Owned from here, so a failure below still stops chromedriver (Drop).
        let mut browser = Browser {
            driver,
            addr: addr.clone(),
            session: String::new(),
        };
        wait_for(Duration::from_secs(30), "chromedriver ready", || {
            std::net::TcpStream::connect(&addr).ok()?;
            let (_, _, body) = exchange(&addr, "GET", "/status", &[], None);
            let status: Value = serde_json::from_str(&body).ok()?;
            (status["value"]["ready"] == true).then_some(())
        });
        let profile = dir.join("chromium-profile");
        let mut options = json!({
            "args": [
                "--headless=new",
                // Root in a container has no user namespaces for Chromium's sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1400,2600",
                "--lang=zh-CN",
                format!("--user-data-dir={}", profile.display()),
            ]
        });
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = "/usr/bin/chromium".into();
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
        }}});
        let created = browser
            .call("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("a Chromium session: {e}"));
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    /// One WebDriver command: its `value`, or the error object the driver answered.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let body = body.map(|b| b.to_string());
        let (status, _, text) = exchange(&self.addr, method, path, &[], body.as_deref());
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {text:?}"));
        if status == 200 {
            Ok(answer["value"].clone())
        } else {
            Err(answer["value"].clone())
        }
    }

    /// A command of this session that must succeed.
    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        self.call(method, &full, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// The elements matching a CSS selector (none is not an error).
    fn all(&self, css: &str) -> Vec<String> {
        let found = self.session(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(String::from))
            .collect()
    }

    /// Runs `act` on the first element matching `css`, retrying (up to 20 s) while there is
    /// none or the page rebuilt it between finding and acting (the console refreshes). On
    /// timeout the panic shows the last error, the page's address and its text.
    fn with<T>(&self, css: &str, act: impl Fn(&str) -> Result<T, Value>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut last = Value::Null;
        loop {
            if let Some(id) = self.all(css).into_iter().next() {
                match act(&format!("/session/{}/element/{id}", self.session)) {
                    Ok(v) => return v,
                    Err(e)
                        if e["error"] == "stale element reference"
                            || e["error"] == "element not interactable" =>
                    {
                        last = e;
                    }
                    Err(e) => panic!("{css}: {e}"),
                }
            }
            if std::time::Instant::now() > deadline {
                let url = self.session("GET", "/url", None);
                let page = self.session(
                    "POST",
                    "/execute/sync",
                    Some(json!({"script": "return document.body.innerText", "args": []})),
                );
                panic!("{css}: not found or not usable in 20 s (last: {last}) at {url}:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn text(&self, css: &str) -> String {
        self.with(css, |el| self.call("GET", &format!("{el}/text"), None))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn click(&self, css: &str) {
        self.with(css, |el| {
            self.call("POST", &format!("{el}/click"), Some(json!({})))
        });
    }

    /// Clears a field and types `text` into it.
    fn type_into(&self, css: &str, text: &str) {
        self.with(css, |el| {
            self.call("POST", &format!("{el}/clear"), Some(json!({})))?;
            self.call(
                "POST",
                &format!("{el}/value"),
                Some(json!({ "text": text })),
            )
        });
    }

    /// Waits until the text of `css` holds `needle`; returns that text.
    fn wait_text(&self, css: &str, needle: &str) -> String {
        wait_for(
            Duration::from_secs(30),
            &format!("{needle:?} in {css}"),
            || {
                let text = self.text(css);
                text.contains(needle).then_some(text)
            },
        )
    }

    /// A PNG of the window.
    fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.session("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("a PNG")
    }

    /// Whether a JavaScript dialog (alert, confirm, prompt) is open.
    fn dialog_open(&self) -> bool {
        let path = format!("/session/{}/alert/text", self.session);
        match self.call("GET", &path, None) {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e["error"], "no such alert", "{e}");
                false
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where test artifacts are kept after the run: `target/test-artifacts/`.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact folder");
    dir
}

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
