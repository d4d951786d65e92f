//! Helpers for tests that run the real `riverwatch` binary against the servers that
//! `tests/run.sh` starts: their addresses, the daemon as a child process, an outside MQTT
//! publisher (mosquitto_pub), and polling with deadlines instead of sleeps.

#![allow(dead_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Addresses of the real servers, from the test runner's environment.
pub struct Servers {
    pub mqtt_port: u16,
    pub influx_v1: String,
    pub vm: String,
    pub smtp_port: u16,
    pub maildir: PathBuf,
    pub sms_url: String,
    pub sms_log: PathBuf,
    /// aiosmtpd requiring STARTTLS, and aiosmtpd speaking TLS from the first byte (SMTPS),
    /// both with a certificate for localhost signed by `ca`.
    pub smtp_starttls_port: u16,
    pub smtps_port: u16,
    pub ca: PathBuf,
    /// mosquitto with TLS only (certificate signed by `ca`) and a password file: users
    /// `riverwatch` / `mqtt-test-secret` and `station` / `station-secret`.
    pub mqtts_port: u16,
    /// aiosmtpd requiring AUTH as user `riverwatch`, whose password is in `smtp_password_file`.
    pub smtp_auth_port: u16,
    pub smtp_password_file: PathBuf,
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Real-server tests share one broker whose topics every daemon subscribes to, so they run one
/// at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

impl Servers {
    /// The servers, or `None` when the tests run outside `tests/run.sh`. Under the runner
    /// (`RIVERWATCH_REQUIRE_SERVERS=1`) a missing address fails the test instead.
    pub fn from_env() -> Option<Servers> {
        let var = |name: &str| std::env::var(name).ok();
        let required = var("RIVERWATCH_REQUIRE_SERVERS").is_some_and(|v| v == "1");
        let get = |name: &str| match var(name) {
            Some(v) => Some(v),
            None if required => panic!("{name} is not set although RIVERWATCH_REQUIRE_SERVERS=1"),
            None => None,
        };
        let servers = Servers {
            mqtt_port: get("RIVERWATCH_TEST_MQTT_PORT")?.parse().ok()?,
            influx_v1: get("RIVERWATCH_TEST_INFLUX_V1_URL")?,
            vm: get("RIVERWATCH_TEST_VM_URL")?,
            smtp_port: get("RIVERWATCH_TEST_SMTP_PORT")?.parse().ok()?,
            maildir: get("RIVERWATCH_TEST_MAILDIR")?.into(),
            sms_url: get("RIVERWATCH_TEST_SMS_URL")?,
            sms_log: get("RIVERWATCH_TEST_SMS_LOG")?.into(),
            smtp_starttls_port: get("RIVERWATCH_TEST_SMTP_STARTTLS_PORT")?.parse().ok()?,
            smtps_port: get("RIVERWATCH_TEST_SMTPS_PORT")?.parse().ok()?,
            ca: get("RIVERWATCH_TEST_CA")?.into(),
            mqtts_port: get("RIVERWATCH_TEST_MQTTS_PORT")?.parse().ok()?,
            smtp_auth_port: get("RIVERWATCH_TEST_SMTP_AUTH_PORT")?.parse().ok()?,
            smtp_password_file: get("RIVERWATCH_TEST_SMTP_PASSWORD_FILE")?.into(),
        };
        Some(servers)
    }

    /// Publishes one message at QoS 1 with mosquitto_pub, a client outside riverwatch.
    pub fn publish(&self, topic: &str, payload: &str) {
        publish_to(self.mqtt_port, topic, payload);
    }

    /// Emails in the Maildir addressed to `address`, as (headers, decoded body).
    pub fn emails_to(&self, address: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(dir) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in dir.flatten() {
                let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let raw = raw.replace("\r\n", "\n");
                let (headers, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
                // The recipient shows in To and in the X-RcptTo line aiosmtpd adds.
                if !headers.contains(address) {
                    continue;
                }
                // riverwatch sends 8bit UTF-8 bodies, read as they are; base64 is decoded.
                let base64 = headers
                    .to_ascii_lowercase()
                    .contains("content-transfer-encoding: base64");
                let decoded = if base64 {
                    use base64::Engine;
                    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                    base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_default()
                } else {
                    body.to_string()
                };
                out.push((headers.to_string(), decoded));
            }
        }
        out
    }

    /// SMS requests the gateway recorded for `phone`, as their text.
    pub fn sms_to(&self, phone: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.sms_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["body"]["to"] == phone)
            .map(|v| v["body"]["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// The servers, or `None` (saying so) outside `tests/run.sh`.
pub fn servers_or_skip(test: &str) -> Option<Servers> {
    let s = Servers::from_env();
    if s.is_none() {
        eprintln!("{test}: no real servers (run tests/run.sh); nothing checked");
    }
    s
}

/// What a real-server test begins with: the servers, the lock that runs such tests one at a
/// time, and a scratch directory; `None` (said on stderr) outside `tests/run.sh`.
pub fn real_test(test: &str) -> Option<(Servers, MutexGuard<'static, ()>, tempfile::TempDir)> {
    let servers = servers_or_skip(test)?;
    let lock = serial();
    Some((servers, lock, tempfile::tempdir().expect("tempdir")))
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon as a child process, its log captured in a file.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, log: &Path) -> Daemon {
        Daemon::start_with_env(config, log, &[])
    }

    /// Starts the daemon and waits (15 s at most) until it has subscribed to its topics.
    pub fn subscribed(config: &Path, log: &Path) -> Daemon {
        let mut daemon = Daemon::start(config, log);
        daemon.wait_log("subscribed", Duration::from_secs(15));
        daemon
    }

    /// Starts the daemon with extra environment variables (secrets, log level).
    pub fn start_with_env(config: &Path, log: &Path, vars: &[(&str, &str)]) -> Daemon {
        let file = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_riverwatch"))
            .args(["run", "--config"])
            .arg(config)
            .env("RIVERWATCH_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("riverwatch starts");
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`; panics with the log if the daemon exits first.
    pub fn wait_log(&mut self, needle: &str, limit: Duration) {
        wait_for(limit, needle, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "riverwatch exited ({status}) before {needle:?}:\n{}",
                    self.log_text()
                );
            }
            self.log_text().contains(needle).then_some(())
        });
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    pub fn terminate(mut self) -> (ExitStatus, Duration) {
        let began = Instant::now();
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        let status = wait_for(Duration::from_secs(30), "riverwatch to exit", || {
            self.child.try_wait().ok().flatten()
        });
        (status, began.elapsed())
    }
}

impl Daemon {
    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The HTTP address the daemon logged ("HTTP listening addr=…").
    pub fn http_addr(&mut self) -> String {
        self.wait_log("HTTP listening", Duration::from_secs(15));
        let log = self.log_text();
        log.lines()
            .filter(|l| l.contains("HTTP listening"))
            .filter_map(|l| l.split("addr=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .next_back()
            .expect("the HTTP address in the log")
            .to_string()
    }

    /// GET `path` from the daemon's HTTP endpoint: (status, body).
    pub fn http_get(&mut self, path: &str) -> (u16, String) {
        http_request(&self.http_addr(), "GET", path, &[])
    }

    /// A counter or gauge from `/metrics` (the sum over its label sets).
    pub fn metric(&mut self, name: &str) -> u64 {
        let (_, text) = self.http_get("/metrics");
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// SIGKILL: the crash case, no chance to flush or acknowledge.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RFC 3339 timestamps `minutes` before a whole minute shortly before now, in UTC+8.
pub fn ts_minutes_ago(minutes: i64) -> (String, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let t = now - now % 60 - minutes * 60;
    let local = chrono::DateTime::from_timestamp(t, 0)
        .expect("valid time")
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"));
    (local.to_rfc3339(), t * 1000)
}

/// A two-station config (a class-Ⅱ boundary section and a class-Ⅱ upstream station) for the
/// given store section.
pub fn two_station_config(servers: &Servers, name: &str, dir: &Path, store: &str) -> PathBuf {
    let text = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
client_id = "rw-test-{name}"

{store}

[spool]
dir = "{dir}/spool"

[http]
listen = "127.0.0.1:0"

[smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "riverwatch test <rw@example.org>"

[sms]
url = "{sms}"
body = '{{"to": "{{phone}}", "text": "{{text}}"}}'

{network}
"#,
        mqtt = servers.mqtt_port,
        smtp = servers.smtp_port,
        sms = servers.sms_url,
        dir = dir.display(),
        network = network_toml(name),
    );
    write_config(dir.join("riverwatch.toml"), &text)
}

/// Writes a config file and returns its path.
pub fn write_config(path: PathBuf, text: &str) -> PathBuf {
    std::fs::write(&path, text).expect("config written");
    path
}

/// Gives the last station of a [`two_station_config`] file, the boundary section 石角(界牌), the
/// HJ 212 MN `QY-BJ-SJ-0001`.
pub fn give_shijiao_its_mn(config: &Path) {
    let mut text = std::fs::read_to_string(config).expect("config read");
    text.push_str("hj212_mn = \"QY-BJ-SJ-0001\"\n");
    std::fs::write(config, text).expect("config written");
}

/// The daemon for HJ 212 tests: on a fresh database `rw_{name}_{pid}`, with a
/// [`two_station_config`] in which 石角 has its MN, subscribed; and a receiver of what it
/// publishes on 石角's acknowledgement topic, subscribed (granted) before anything is sent.
/// Returns (database, daemon, acknowledgements).
pub fn hj212_daemon(
    servers: &Servers,
    name: &str,
    dir: &Path,
) -> (String, Daemon, std::sync::mpsc::Receiver<Vec<u8>>) {
    let db = fresh_database(servers, &format!("rw_{name}"));
    let config = two_station_config(servers, name, dir, &v1_store(servers, &db));
    give_shijiao_its_mn(&config);
    let daemon = Daemon::subscribed(&config, &dir.join("daemon.log"));
    let acks = subscribe(servers.mqtt_port, "wq/bei/shijiao/hj212/ack");
    (db, daemon, acks)
}

/// An HJ 212 real-time data frame (ST=21, CN=2011, Flag=5) from 石角's MN, measured at `ts`
/// (RFC 3339, UTC+8): its QN is that time with milliseconds `000`, its CP `DataTime` and then
/// `values` (`w01001-Rtd=7.32,w01001-Flag=N;…`).
pub fn shijiao_frame(ts: &str, values: &str) -> riverwatch::domain::hj212::Frame {
    let local = chrono::DateTime::parse_from_rfc3339(ts).expect("an RFC 3339 time");
    let stamp = local.format("%Y%m%d%H%M%S");
    riverwatch::domain::hj212::Frame {
        qn: Some(format!("{stamp}000")),
        st: "21".into(),
        cn: "2011".into(),
        pw: Some("123456".into()),
        mn: "QY-BJ-SJ-0001".into(),
        flag: Some(5),
        pnum: None,
        pno: None,
        cp: format!("DataTime={stamp};{values}"),
    }
}

/// Creates the database `{prefix}_{pid}` on the shared InfluxDB 1.x and returns its name.
pub fn fresh_database(servers: &Servers, prefix: &str) -> String {
    let db = format!("{prefix}_{}", std::process::id());
    influx_exec(&servers.influx_v1, &format!("CREATE DATABASE {db}"));
    db
}

/// The `[influxdb]` section that writes to `db` on the shared InfluxDB 1.x through the v1 API,
/// flushed every 200 ms (no newline at the end).
pub fn v1_store(servers: &Servers, db: &str) -> String {
    format!(
        "[influxdb]\nurl = \"{}\"\napi = \"v1\"\ndatabase = \"{db}\"\nflush_interval = \"200ms\"",
        servers.influx_v1
    )
}

/// Six digits derived from a test name, so each test's phone numbers are its own.
pub fn phone_code(name: &str) -> String {
    let n = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("{:06}", n % 1_000_000)
}

/// Subscribes to `topic` on the test broker and returns, once the broker granted the
/// subscription, a receiver of the payloads that arrive on it.
pub fn subscribe(port: u16, topic: &str) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (tx, rx) = std::sync::mpsc::channel();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
            let id = format!("rw-test-sub-{}", std::process::id());
            let (client, mut eventloop) =
                AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 16);
            client
                .subscribe(topic, QoS::AtLeastOnce)
                .await
                .expect("subscribe queued");
            while let Ok(event) = eventloop.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        let _ = ready_tx.send(());
                    }
                    Event::Incoming(Packet::Publish(p)) if tx.send(p.payload.to_vec()).is_err() => {
                        return;
                    }
                    _ => {}
                }
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the test subscription was granted");
    rx
}

/// One HTTP request without a body: (status, body).
pub fn http_request(addr: &str, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    http_exchange(addr, method, path, headers, "")
}

/// A POST with a JSON body: (status, body).
pub fn http_post(addr: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut all = headers.to_vec();
    all.push("Content-Type: application/json");
    http_exchange(addr, "POST", path, &all, body)
}

/// One exchange through [`exchange`]: (status, body).
fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = exchange(addr, method, path, headers, Some(body));
    (status, body)
}

/// One HTTP/1.1 exchange over a TCP stream: (status, headers, body). Enough for chromedriver
/// and the daemon (a body without a `Content-Type` header goes as JSON): the body is read by its `Content-Length`, or its chunks, or to the end
/// (chromedriver keeps the connection open whatever `Connection: close` says).
pub fn exchange(
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
    let typed = headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("content-type:"));
    if !body.is_empty() && !typed {
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
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A free loopback port (bound, then released for a server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A server process of the test's own, on a fixed port it keeps across restarts, so a test
/// can stop it and start it again (a broker restart, a database outage, an SMTP outage).
pub struct Private {
    program: String,
    args: Vec<String>,
    pub port: u16,
    ready: Box<dyn Fn(u16) -> bool>,
    child: Option<Child>,
}

impl Private {
    fn new(
        program: &str,
        args: Vec<String>,
        port: u16,
        ready: Box<dyn Fn(u16) -> bool>,
    ) -> Private {
        Private {
            program: program.into(),
            args,
            port,
            ready,
            child: None,
        }
    }

    /// A server started as `program flag conf`, with `text` written to the file `conf` first
    /// (its folder created).
    fn configured(
        program: &str,
        flag: &str,
        conf: PathBuf,
        text: String,
        port: u16,
        ready: fn(u16) -> bool,
    ) -> Private {
        if let Some(dir) = conf.parent() {
            std::fs::create_dir_all(dir).expect("server dir");
        }
        std::fs::write(&conf, text).expect("server config written");
        let args = vec![flag.into(), conf.display().to_string()];
        Private::new(program, args, port, Box::new(ready))
    }

    /// mosquitto with persistence (the session survives a restart) under `dir`.
    pub fn mosquitto(dir: &Path) -> Private {
        let port = free_port();
        std::fs::create_dir_all(dir.join("data")).expect("mosquitto dir");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser root\nmax_queued_messages 100000\n",
            dir.join("data").display()
        );
        let ready = |port: u16| succeeds(&mut mosquitto_pub(port, "riverwatch/test/ready", "ok"));
        let conf = dir.join("mosquitto.conf");
        Private::configured("mosquitto", "-c", conf, text, port, ready)
    }

    /// InfluxDB 1.6.7 with its data under `dir`.
    pub fn influxdb(dir: &Path) -> Private {
        let port = free_port();
        let text = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n[monitor]\n  store-enabled = false\n",
            rpc = free_port(),
            d = dir.display()
        );
        let ready = |port: u16| {
            succeeds(Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}/ping")]))
        };
        let conf = dir.join("influxdb.conf");
        Private::configured("influxd", "-config", conf, text, port, ready)
    }

    /// aiosmtpd writing to the Maildir `maildir`.
    pub fn smtp(maildir: &Path) -> Private {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let port = free_port();
        let args = vec![
            "-m".into(),
            "aiosmtpd".into(),
            "-n".into(),
            "-l".into(),
            format!("127.0.0.1:{port}"),
            "-c".into(),
            "aiosmtpd.handlers.Mailbox".into(),
            maildir.display().to_string(),
        ];
        let ready = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        Private::new("/usr/bin/python3", args, port, Box::new(ready))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it answers.
    pub fn start(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.program));
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(20), &self.program, || {
            (self.ready)(port).then_some(())
        });
    }

    /// Stops the server with SIGTERM (a clean stop: mosquitto saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `riverwatch simulate` to completion (every message acknowledged by the broker).
pub fn simulate(config: &Path, port: u16, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_riverwatch"))
        .args(["simulate", "--config"])
        .arg(config)
        .args(["--broker", &format!("mqtt://127.0.0.1:{port}")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("simulate starts")
}

/// Waits for a [`simulate`] run to end, asserts that it succeeded and returns what it printed,
/// trimmed.
pub fn finish_simulate(child: Child) -> String {
    let out = child.wait_with_output().expect("simulate ends");
    assert_success(&out, "simulate");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Asserts that a finished command (`what`, for the message) exited with success; the message
/// holds its stderr.
#[track_caller]
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs an InfluxQL statement (a query or a command such as CREATE DATABASE) against a v1
/// endpoint with POST; returns the JSON answer.
pub fn influxql(url: &str, db: &str, q: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-s",
            "-XPOST",
            &format!("{url}/query"),
            "--data-urlencode",
            &format!("db={db}"),
            "--data-urlencode",
            &format!("q={q}"),
        ])
        .output()
        .expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Runs one InfluxQL statement (`CREATE DATABASE`, `DROP DATABASE`, …) on a v1 endpoint and
/// asserts that it succeeded.
pub fn influx_exec(url: &str, query: &str) {
    let status = Command::new("curl")
        .args([
            "-sf",
            "-XPOST",
            &format!("{url}/query"),
            "--data-urlencode",
            &format!("q={query}"),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("curl runs");
    assert!(status.success(), "{query}");
}

/// `SELECT COUNT(field) FROM measurement` on a v1 endpoint; 0 when unreachable or empty.
pub fn influx_count(url: &str, db: &str, field: &str, measurement: &str) -> u64 {
    let v = influxql(
        url,
        db,
        &format!("SELECT COUNT(\"{field}\") FROM \"{measurement}\""),
    );
    v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

/// Publishes one message at QoS 1 to the broker on `port` with mosquitto_pub.
pub fn publish_to(port: u16, topic: &str, payload: &str) {
    let status = mosquitto_pub(port, topic, payload)
        .status()
        .expect("mosquitto_pub runs");
    assert!(status.success(), "mosquitto_pub failed for {topic}");
}

/// Whether `command` runs and exits with success (its output discarded): a readiness probe.
fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The mosquitto_pub command that publishes `payload` to `topic` at QoS 1 on the broker on `port`.
fn mosquitto_pub(port: u16, topic: &str, payload: &str) -> Command {
    let mut command = Command::new("mosquitto_pub");
    command.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        payload,
    ]);
    command
}

/// The bureaus, the river and the two stations of the test configs: a class-Ⅱ boundary
/// section (石角) and its class-Ⅱ upstream neighbour (七星岗), ten hours apart. Email
/// addresses and phone numbers are particular to `name`.
pub fn network_toml(name: &str) -> String {
    include_str!("../fixtures/config/network.toml")
        .replace("{name}", name)
        .replace("{code}", &phone_code(name))
}
