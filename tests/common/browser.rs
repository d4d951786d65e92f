//! A headless Chromium driven through chromedriver's W3C WebDriver HTTP API, spoken over a
//! plain TCP stream, for the tests that look at a page as a reader does (the duty console,
//! the HTML report); and where their screenshots are kept (`target/test-artifacts/`).

use super::{exchange, free_port, wait_for};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// chromedriver with one headless Chromium session; both end when it is dropped.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

/// The W3C WebDriver key of an element reference.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    pub fn start(dir: &Path) -> Browser {
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
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
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
    pub fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        self.call(method, &full, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// The elements matching a CSS selector (none is not an error).
    pub fn all(&self, css: &str) -> Vec<String> {
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
    pub fn with<T>(&self, css: &str, act: impl Fn(&str) -> Result<T, Value>) -> T {
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

    pub fn text(&self, css: &str) -> String {
        self.with(css, |el| self.call("GET", &format!("{el}/text"), None))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn click(&self, css: &str) {
        self.with(css, |el| {
            self.call("POST", &format!("{el}/click"), Some(json!({})))
        });
    }

    /// Clears a field and types `text` into it.
    pub fn type_into(&self, css: &str, text: &str) {
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
    pub fn wait_text(&self, css: &str, needle: &str) -> String {
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
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.session("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("a PNG")
    }

    /// Whether a JavaScript dialog (alert, confirm, prompt) is open.
    pub fn dialog_open(&self) -> bool {
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
pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact folder");
    dir
}
