//! Config validation tests: the shipped files pass, and broken files list every problem.

use super::*;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("/etc/riverwatch"), Path::new("test.toml"))
}

fn keys(err: &ConfigError) -> Vec<&str> {
    err.problems.iter().map(|p| p.key.as_str()).collect()
}

/// The smallest valid network: one bureau, one river, one station (shared with `tests/cli.rs`).
const MINIMAL: &str = include_str!("../../tests/fixtures/config/minimal.toml");

#[test]
fn shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for name in ["riverwatch.toml", "demo.toml"] {
        let cfg = load(&root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(cfg.network.stations.len() >= 4, "{name}");
        let names: Vec<_> = cfg
            .network
            .bureaus
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(names, ["广州市生态环境局", "清远市生态环境局"], "{name}");
        // The Lepai flows out of Guangzhou: an upstream station operated by Guangzhou.
        let lepai = cfg.network.station("lepai_huadu").expect("lepai_huadu");
        assert_eq!(lepai.city, "guangzhou");
        assert!(lepai.downstream.is_some());
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = parse_str(MINIMAL).unwrap();
    assert_eq!(cfg.mqtt.host, "127.0.0.1");
    assert_eq!(cfg.mqtt.port, 1883);
    assert_eq!(cfg.mqtt.client_id, "riverwatch");
    assert!(cfg.influxdb.is_none());
    assert_eq!(cfg.ingest.max_payload, 256 * 1024);
    assert_eq!(cfg.rules.persistence, Persistence::default());
    let s = &cfg.network.stations[0];
    assert_eq!(s.target, Class::II);
    assert_eq!(s.cadence, Duration::from_secs(4 * 3600));
    assert_eq!(s.evaluated.len(), 21);
    assert_eq!(cfg.http.listen.port(), 9750);
}

#[test]
fn every_problem_is_reported_at_once() {
    // Every kind of problem once: bad URLs and secrets, an unknown table, bad addresses, a
    // downstream cycle, unknown rivers and cities, bad classes and durations.
    let text = include_str!("../../tests/fixtures/config/every_problem.toml");
    let err = parse_str(text).unwrap_err();
    let got = keys(&err);
    for expected in [
        "weird",
        "mqtt.password",
        "mqtt.url",
        "influxdb.api",
        "smtp.from",
        "bureau[0].email[0]",
        "bureau[0].sms[0]",
        "station[0].downstream",
        "station[1].downstream",
        "station[2].city",
        "station[2].cadence",
        "station[3].river",
        "station[3].target_class",
        "station[3].travel_time",
        // A wrong type is named at its key; the station is still read.
        "station[4].target_class",
    ] {
        assert!(
            got.contains(&expected),
            "{expected} missing from {got:?}\n{err}"
        );
    }
    let text = err.to_string();
    assert!(
        text.contains(r#"test.toml: station[3].river: "nowhere" is not a configured river"#),
        "{text}"
    );
    assert!(text.contains("password_env"), "{text}");
}

#[test]
fn syntax_errors_are_reported_with_position() {
    let err = parse_str("[mqtt\nurl = 1").unwrap_err();
    assert_eq!(keys(&err), ["(syntax)"]);
    assert!(err.problems[0].message.contains("line 1"), "{err}");
}

#[test]
fn secrets_and_paths() {
    let text = format!(
        "{MINIMAL}\n[influxdb]\nurl = \"http://db:8086\"\napi = \"v1\"\ndatabase = \"water\"\nusername = \"rw\"\npassword_file = \"secrets/influx\"\n\n[spool]\ndir = \"spool\"\n"
    );
    let cfg = parse_str(&text).unwrap();
    let Some(InfluxConfig {
        api: InfluxApi::V1 { password, .. },
        ..
    }) = cfg.influxdb
    else {
        panic!("v1 expected");
    };
    assert_eq!(
        password,
        Some(SecretSource::File("/etc/riverwatch/secrets/influx".into()))
    );
    assert_eq!(cfg.spool.dir, Path::new("/etc/riverwatch/spool"));
    let both = format!("{MINIMAL}\n[smtp]\nurl = \"smtp://h\"\nfrom = \"a@b.org\"\nusername = \"u\"\npassword_env = \"X\"\npassword_file = \"f\"\n");
    assert!(keys(&parse_str(&both).unwrap_err()).contains(&"smtp.password"));
}

#[test]
fn the_trend_test_is_chosen_by_key() {
    use crate::domain::trend::TrendTest;
    assert_eq!(
        parse_str(MINIMAL).unwrap().rules.trend_test,
        TrendTest::HamedRao
    );
    let original = format!("{MINIMAL}\n[trend]\ntest = \"original\"\n");
    assert_eq!(
        parse_str(&original).unwrap().rules.trend_test,
        TrendTest::Original
    );
    let bad = format!("{MINIMAL}\n[trend]\ntest = \"pre_whitening\"\n");
    let err = parse_str(&bad).unwrap_err();
    assert_eq!(keys(&err), ["trend.test"]);
}

#[test]
fn smtp_security_from_url() {
    let table = [
        ("smtp://relay", SmtpSecurity::Plain, 25),
        ("smtp://relay:587?tls=starttls", SmtpSecurity::StartTls, 587),
        ("smtps://relay", SmtpSecurity::Tls, 465),
    ];
    for (url, security, port) in table {
        let text = format!("{MINIMAL}\n[smtp]\nurl = \"{url}\"\nfrom = \"riverwatch <a@b.org>\"\n");
        let smtp = parse_str(&text).unwrap().smtp.unwrap();
        assert_eq!((smtp.security, smtp.port), (security, port), "{url}");
    }
}

#[test]
fn hj212_code_overrides() {
    let text = format!("{MINIMAL}hj212_mn = \"QY-1\"\nhj212_codes = {{ w20122 = {{ param = \"cu\", unit = \"ug/L\" }}, x01 = \"nh3n\", x02 = \"nitrate\", x03 = {{ param = \"tp\", unit = \"g/L\" }} }}\n");
    let err = parse_str(&text).unwrap_err();
    assert_eq!(
        keys(&err),
        ["station[0].hj212_codes.x02", "station[0].hj212_codes.x03"],
        "{err}"
    );
    let ok = format!("{MINIMAL}hj212_codes = {{ w20122 = {{ param = \"cu\", unit = \"ug/L\" }}, x01 = \"nh3n\" }}\n");
    let cfg = parse_str(&ok).unwrap();
    let codes = &cfg.network.stations[0].hj212_codes;
    assert_eq!(codes.len(), 2);
    assert_eq!(codes[0].0, "w20122");
    assert_eq!((codes[0].1.param, codes[0].1.scale), (Param::Cu, 0.001));
}

#[test]
fn qc_tables_global_and_per_station() {
    let text = format!(
        "[qc.nh3n]\ngross_range_test = {{ fail_span = [0, 30], suspect_span = [0.01, 10] }}\nspike_test = {{ suspect_threshold = 0.4, fail_threshold = 0.8 }}\n{MINIMAL}\n[station.qc.do]\nrate_of_change_test = {{ threshold = 0.0005 }}\n"
    );
    let cfg = parse_str(&text).unwrap();
    let s = &cfg.network.stations[0];
    // A configured table applies at every spacing.
    assert_eq!(
        s.qc_plan(Param::Nh3n).probe,
        s.qc_plan(Param::Nh3n).analyser
    );
    let nh3n = s.qc_plan(Param::Nh3n).analyser;
    assert_eq!(nh3n.gross_range.unwrap().fail_span, (0.0, 30.0));
    assert!(
        nh3n.flat_line.is_none(),
        "a [qc.<param>] table replaces the defaults"
    );
    let do_ = s.qc_plan(Param::Do).probe;
    assert_eq!(do_.rate_of_change.unwrap().threshold, 0.0005);
    assert!(do_.gross_range.is_none());
    assert_eq!(
        s.qc_plan(Param::Ph),
        crate::domain::qc::default_plan(Param::Ph)
    );

    let bad = format!(
        "[qc.nh3n]\ngross_range_test = {{ fail_span = [0, 3], suspect_span = [0.01, 10] }}\n[qc.xyz]\nspike_test = {{}}\n[qc.ph]\nflat_line_test = {{ tolerance = 0.01, suspect_threshold = 7200, fail_threshold = 3600 }}\n{MINIMAL}"
    );
    let err = parse_str(&bad).unwrap_err();
    assert_eq!(
        keys(&err),
        [
            "qc.nh3n.gross_range_test.suspect_span",
            "qc.ph.flat_line_test",
            "qc.xyz"
        ],
        "{err}"
    );
}

#[test]
fn ingest_max_age() {
    let cfg = parse_str(MINIMAL).unwrap();
    assert_eq!(cfg.ingest.max_age, Duration::from_secs(365 * 86_400));
    let with = |age: &str| parse_str(&format!("[ingest]\nmax_age = \"{age}\"\n{MINIMAL}"));
    assert_eq!(
        with("30d").unwrap().ingest.max_age,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(
        with("36500d").unwrap().ingest.max_age,
        Duration::from_secs(36_500 * 86_400)
    );
    for (age, why) in [
        ("a year", "is not a duration"),
        ("0d", "must be longer than zero"),
        ("36501d", "must be at most 36500d"),
    ] {
        let err = with(age).unwrap_err();
        assert_eq!(keys(&err), ["ingest.max_age"], "{age}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("test.toml: ingest.max_age: ") && text.contains(why),
            "{age}: {text}"
        );
    }
}

#[test]
fn operators_are_contacts_of_their_own() {
    let bureau = |operators: &str| {
        format!(
            "[[bureau]]\nid = \"qingyuan\"\nname = \"清远市生态环境局\"\nemail = [\"duty@qy.example.org\"]\n{operators}\n{}",
            MINIMAL
                .split_once("[[river]]")
                .map(|(_, rest)| format!("[[river]]{rest}"))
                .unwrap_or_default()
        )
    };
    // As SPEC §10 writes it: email only.
    let cfg = parse_str(&bureau(
        "operators = { email = [\"stations@qy.example.org\"] }",
    ))
    .unwrap();
    let b = &cfg.network.bureaus[0];
    assert_eq!(b.duty.email, ["duty@qy.example.org"]);
    let ops = b.operators.as_ref().expect("operators");
    assert_eq!(ops.email, ["stations@qy.example.org"]);
    assert!(ops.sms.is_empty());
    assert_eq!(b.data_contacts(), ops, "the digest goes to the operators");
    // Without operators, the duty officers receive the digest.
    let cfg = parse_str(MINIMAL).unwrap();
    let b = &cfg.network.bureaus[0];
    assert_eq!((b.operators.as_ref(), b.data_contacts()), (None, &b.duty));
    // Checked as the bureau's own lists are; an empty list, an unknown key.
    let table = [
        (
            "operators = { email = [\"nobody\"], sms = [\"+86 138\"] }",
            vec!["bureau[0].operators.email[0]", "bureau[0].operators.sms[0]"],
        ),
        ("operators = { email = [] }", vec!["bureau[0].operators"]),
        // An unknown key is named at its place; the bureau is still read, so its stations'
        // city is known (no follow-on problem).
        (
            "operators = { wecom = [] }",
            vec!["bureau[0].operators.wecom", "bureau[0].operators"],
        ),
    ];
    for (line, expected) in table {
        let err = parse_str(&bureau(line)).unwrap_err();
        assert_eq!(keys(&err), expected, "{line}: {err}");
    }
}

#[test]
fn fault_persistence_and_digest_interval() {
    let cfg = parse_str(MINIMAL).unwrap();
    assert_eq!((cfg.rules.fault.fire_after, cfg.rules.fault.window), (4, 6));
    assert_eq!(cfg.digest_interval, Duration::from_secs(15 * 60));
    let with = |alerts: &str| parse_str(&format!("{MINIMAL}\n[alerts]\n{alerts}\n"));
    let cfg = with("fault_fire_after = 3\nfault_window = 5\ndigest_interval = \"5m\"").unwrap();
    assert_eq!((cfg.rules.fault.fire_after, cfg.rules.fault.window), (3, 5));
    assert_eq!(cfg.digest_interval, Duration::from_secs(300));
    // The window follows a larger fire_after when it is not given.
    let cfg = with("fault_fire_after = 8").unwrap();
    assert_eq!((cfg.rules.fault.fire_after, cfg.rules.fault.window), (8, 8));
    let table = [
        ("fault_fire_after = 0", "alerts.fault_fire_after"),
        (
            "fault_fire_after = 5\nfault_window = 4",
            "alerts.fault_window",
        ),
        ("digest_interval = \"500ms\"", "alerts.digest_interval"),
        ("digest_interval = \"2d\"", "alerts.digest_interval"),
        ("digest_interval = \"soon\"", "alerts.digest_interval"),
    ];
    for (alerts, key) in table {
        let err = with(alerts).unwrap_err();
        assert_eq!(keys(&err), [key], "{alerts}: {err}");
    }
}

/// `[alerts] max_silence` (default 7 days) and `[[bureau]] quiet_hours` (UTC+8, may wrap
/// midnight): accepted as SPEC §10 writes them, refused with the key and the reason otherwise.
#[test]
fn max_silence_and_quiet_hours() {
    let cfg = parse_str(MINIMAL).unwrap();
    assert_eq!(cfg.max_silence, Duration::from_secs(7 * 86_400));
    assert!(cfg.quiet_hours.is_empty());
    let with = |alerts: &str, quiet: &str| {
        parse_str(&format!(
            "{}\n[alerts]\n{alerts}\n",
            MINIMAL.replace(
                "email = [\"duty@qy.example.org\"]",
                &format!("email = [\"duty@qy.example.org\"]\n{quiet}"),
            )
        ))
    };
    let cfg = with("max_silence = \"2d\"", "quiet_hours = \"22:00-07:00\"").unwrap();
    assert_eq!(cfg.max_silence, Duration::from_secs(2 * 86_400));
    let (id, q) = cfg.quiet_hours.iter().next().expect("quiet hours");
    assert_eq!((id.as_str(), q.text()), ("qingyuan", "22:00-07:00".into()));
    let table = [
        ("max_silence = \"10s\"", "", "alerts.max_silence"),
        ("max_silence = \"3650d\"", "", "alerts.max_silence"),
        ("max_silence = \"forever\"", "", "alerts.max_silence"),
        ("", "quiet_hours = \"22:00\"", "bureau[0].quiet_hours"),
        ("", "quiet_hours = \"07:00-07:00\"", "bureau[0].quiet_hours"),
        ("", "quiet_hours = \"25:00-07:00\"", "bureau[0].quiet_hours"),
    ];
    for (alerts, quiet, key) in table {
        let err = with(alerts, quiet).unwrap_err();
        assert_eq!(keys(&err), [key], "{alerts}{quiet}: {err}");
    }
}

/// The chat robots and webhooks of SPEC §10 are accepted as written there, labelled
/// `<bureau>.<channel>[i]` in the bureau's contacts, with their secrets as sources only.
#[test]
fn chat_robots_and_webhooks_as_spec_writes_them() {
    let with = |lines: &str| {
        parse_str(&MINIMAL.replace(
            "email = [\"duty@qy.example.org\"]",
            &format!("email = [\"duty@qy.example.org\"]\n{lines}"),
        ))
    };
    let cfg = with(
        r#"wecom = [{ url_env = "RIVERWATCH_GZ_WECOM_URL" }]
dingtalk = [{ url_env = "RIVERWATCH_GZ_DINGTALK_URL", secret_env = "RIVERWATCH_GZ_DINGTALK_SECRET", keywords = ["水质"], at_mobiles = ["13800000000"], at_all = true }]
webhook = [{ url = "https://bus.example.org/alerts", secret_env = "RIVERWATCH_GZ_HOOK_SECRET" }, { url_file = "hook-url", secret_file = "hook-secret" }]"#,
    )
    .unwrap();
    let duty = &cfg.network.bureaus[0].duty;
    assert_eq!(duty.wecom, ["qingyuan.wecom[0]"]);
    assert_eq!(duty.dingtalk, ["qingyuan.dingtalk[0]"]);
    assert_eq!(duty.webhook, ["qingyuan.webhook[0]", "qingyuan.webhook[1]"]);
    let d = &cfg.chat.dingtalk[0];
    assert_eq!(
        (d.keywords.as_slice(), d.at_mobiles.as_slice(), d.at_all),
        (
            &["水质".to_string()][..],
            &["13800000000".to_string()][..],
            true
        )
    );
    assert_eq!(
        cfg.chat.webhook[1].secret,
        SecretSource::File("/etc/riverwatch/hook-secret".into())
    );
    // A bureau with robots only is reachable.
    let robots_only = MINIMAL.replace(
        "email = [\"duty@qy.example.org\"]",
        "wecom = [{ url_env = \"W\" }]",
    );
    assert!(parse_str(&robots_only).is_ok());

    // Each problem named by its key.
    let table = [
        (
            r#"wecom = [{ url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k" }]"#,
            vec!["bureau[0].wecom[0].url"],
        ),
        ("wecom = [{}]", vec!["bureau[0].wecom[0]"]),
        (
            r#"wecom = [{ url_env = "A", url_file = "b" }]"#,
            vec!["bureau[0].wecom[0].url", "bureau[0].wecom[0]"],
        ),
        (
            r#"dingtalk = [{ url_env = "U", secret = "SECabc" }]"#,
            vec!["bureau[0].dingtalk[0].secret"],
        ),
        (
            r#"dingtalk = [{ url_env = "U", keywords = [" "], at_mobiles = ["call me"] }]"#,
            vec![
                "bureau[0].dingtalk[0].keywords[0]",
                "bureau[0].dingtalk[0].at_mobiles[0]",
            ],
        ),
        (
            r#"webhook = [{ url = "https://bus.example.org/alerts" }]"#,
            vec!["bureau[0].webhook[0]"],
        ),
        (
            r#"webhook = [{ url = "ftp://bus.example.org/", secret_env = "S" }]"#,
            vec!["bureau[0].webhook[0].url"],
        ),
        (
            r#"webhook = [{ secret_env = "S" }]"#,
            vec!["bureau[0].webhook[0]"],
        ),
    ];
    for (line, expected) in table {
        let err = with(line).unwrap_err();
        assert_eq!(keys(&err), expected, "{line}: {err}");
    }
    // An unknown key of an entry is named; the bureau is still read (its station's city is
    // known).
    let err = with(r#"wecom = [{ url_env = "A", token = "t" }]"#).unwrap_err();
    assert_eq!(keys(&err), ["bureau[0].wecom[0].token"], "{err}");
}

/// `[sms] success` as SPEC §10 writes it, with a retry list and numeric codes.
#[test]
fn sms_success_reads_the_provider_verdict() {
    let with = |success: &str| {
        parse_str(&format!(
            "{MINIMAL}\n[sms]\nurl = \"https://sms.example/send\"\n{success}\n"
        ))
    };
    let cfg = with(r#"success = { path = "Code", equals = "OK" }"#).unwrap();
    let s = cfg.sms.and_then(|s| s.success).expect("success");
    assert_eq!(
        (s.path.as_slice(), s.equals.as_str()),
        (&["Code".to_string()][..], "OK")
    );
    assert!(s.retry.is_empty());
    let cfg = with(r#"success = { path = "Response.SendStatusSet.0.Code", equals = 0, retry = [-1, "isv.BUSINESS_LIMIT_CONTROL"] }"#).unwrap();
    let s = cfg.sms.and_then(|s| s.success).expect("success");
    assert_eq!(s.path.len(), 4);
    assert_eq!(
        (s.equals.as_str(), s.retry.as_slice()),
        (
            "0",
            &["-1".to_string(), "isv.BUSINESS_LIMIT_CONTROL".to_string()][..]
        )
    );
    for (line, key) in [
        (
            r#"success = { path = "a..b", equals = "OK" }"#,
            "sms.success.path",
        ),
        (r#"success = { path = "Code" }"#, "sms.success.equals"),
        (
            r#"success = { path = "Code", equals = "OK", also = 1 }"#,
            "sms.success.also",
        ),
    ] {
        let err = with(line).unwrap_err();
        assert_eq!(keys(&err), [key], "{line}: {err}");
    }
}

/// The provider-style `[sms]` of config/riverwatch.toml's comments (and the README) is valid
/// once uncommented.
#[test]
fn the_documented_provider_style_sms_is_valid() {
    let shipped = include_str!("../../config/riverwatch.toml");
    let example: String = shipped
        .lines()
        .skip_while(|l| !l.starts_with("# A provider-style gateway"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with(' '))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(example.contains("success = {"), "{example}");
    let cfg = parse_str(&format!("{MINIMAL}\n[sms]\n{example}")).unwrap();
    let s = cfg.sms.and_then(|s| s.success).expect("success");
    assert_eq!(s.retry, ["isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR"]);
}

/// `check-config` notes each robot secret this machine does not hold, by label, never by value.
#[test]
fn robot_secrets_not_here_are_noted() {
    let cfg = parse_str(&MINIMAL.replace(
        "email = [\"duty@qy.example.org\"]",
        r#"email = ["duty@qy.example.org"]
wecom = [{ url_env = "RIVERWATCH_TEST_UNSET_WECOM_URL" }]
dingtalk = [{ url_env = "RIVERWATCH_TEST_UNSET_DINGTALK_URL", secret_file = "no-such-secret" }]
webhook = [{ url = "https://bus.example.org/alerts", secret_env = "RIVERWATCH_TEST_UNSET_HOOK_SECRET" }]"#,
    ))
    .unwrap();
    let notes = secret_notes(&cfg);
    let labels: Vec<&str> = notes
        .iter()
        .map(|n| n.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        labels,
        [
            "qingyuan.wecom[0] url",
            "qingyuan.dingtalk[0] url",
            "qingyuan.dingtalk[0] secret",
            "qingyuan.webhook[0] secret"
        ],
        "{notes:?}"
    );
}

/// A robot written as a bare URL holds its key inline: named by key, the value never
/// repeated, and no false follow-on problem about the bureau.
#[test]
fn a_robot_written_as_a_bare_url_is_refused_without_echoing_it() {
    for (line, key) in [
        (
            r#"wecom = ["https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRETKEY123"]"#,
            "bureau[0].wecom[0]",
        ),
        (
            r#"dingtalk = "https://oapi.dingtalk.com/robot/send?access_token=SECRETKEY123""#,
            "bureau[0].dingtalk",
        ),
        (
            r#"webhook = [{ url = "https://bus.example.org/a", secret_env = "S" }, "https://x/?t=SECRETKEY123"]"#,
            "bureau[0].webhook[1]",
        ),
    ] {
        let text = MINIMAL.replace(
            "email = [\"duty@qy.example.org\"]",
            &format!("email = [\"duty@qy.example.org\"]\n{line}"),
        );
        let err = parse_str(&text).expect_err("refused");
        assert_eq!(keys(&err), [key], "{err}");
        assert!(!err.to_string().contains("SECRETKEY123"), "{err}");
    }
}

/// `[hj212_tcp]` next to what it depends on: an MN a frame could not carry, the HTTP port,
/// and a logger without a password (a note: valid, but its frames would be refused).
#[test]
fn the_tcp_listener_is_checked_with_its_stations() {
    let with = |extra: &str, station: &str| {
        MINIMAL.replace("target_class = 2", &format!("target_class = 2\n{station}")) + extra
    };
    let tcp = "\n[hj212_tcp]\nlisten = \"127.0.0.1:9750\"\n";
    let err = parse_str(&with(tcp, "hj212_mn = \"QY;BJ\"")).expect_err("refused");
    assert_eq!(
        keys(&err),
        ["hj212_tcp.listen", "station[0].hj212_mn"],
        "{err}"
    );
    let cfg = parse_str(&with(
        "\n[hj212_tcp]\nlisten = \"0.0.0.0:9212\"\n",
        "hj212_mn = \"QY-BJ-SJ-0001\"",
    ))
    .expect("valid");
    assert_eq!(
        secret_notes(&cfg),
        ["station[0] (shijiao): an hj212_mn without hj212_pw_env or hj212_pw_file, so its logger's frames over TCP are refused"]
    );
}

#[test]
fn mqtt_output_topics() {
    let cfg = parse_str(MINIMAL).unwrap();
    assert_eq!(
        (
            cfg.mqtt.status_topic.as_str(),
            cfg.mqtt.alerts_topic.as_str(),
            cfg.mqtt.publish_alerts
        ),
        ("riverwatch/status", "riverwatch/alerts", true)
    );
    let with = |keys: &str| parse_str(&format!("[mqtt]\n{keys}\n{MINIMAL}"));
    let cfg = with(
        "status_topic = \"gq/rw/status\"\nalerts_topic = \"gq/rw/alerts\"\npublish_alerts = false",
    )
    .unwrap();
    assert_eq!(
        (
            cfg.mqtt.status_topic.as_str(),
            cfg.mqtt.alerts_topic.as_str(),
            cfg.mqtt.publish_alerts
        ),
        ("gq/rw/status", "gq/rw/alerts", false)
    );
    for (lines, key, why) in [
        (
            "status_topic = \"\"",
            "mqtt.status_topic",
            "must not be empty",
        ),
        ("status_topic = \"rw/#\"", "mqtt.status_topic", "wildcard"),
        (
            "alerts_topic = \"rw/+/alerts\"",
            "mqtt.alerts_topic",
            "wildcard",
        ),
        (
            "alerts_topic = \"$SYS/rw\"",
            "mqtt.alerts_topic",
            "must not start with $",
        ),
        (
            "alerts_topic = \"rw/alerts/\"",
            "mqtt.alerts_topic",
            "must not end with one",
        ),
        (
            "publish_alerts = \"yes\"",
            "mqtt.publish_alerts",
            "must be true or false",
        ),
    ] {
        let err = with(lines).unwrap_err();
        let text = err.to_string();
        assert!(
            keys(&err).iter().any(|k| k.starts_with(key)) && text.contains(why),
            "{lines}: {text}"
        );
    }
}

#[test]
fn bureau_tokens_and_escalation_as_spec_writes_them() {
    let bureau = |lines: &str| {
        format!(
            "[[bureau]]\nid = \"qingyuan\"\nname = \"清远市生态环境局\"\nemail = [\"duty@qy.example.org\"]\n{lines}\n{}",
            MINIMAL
                .split_once("[[river]]")
                .map(|(_, rest)| format!("[[river]]{rest}"))
                .unwrap_or_default()
        )
    };
    let cfg = parse_str(&bureau(
        "api_token_env = \"RIVERWATCH_QY_API_TOKEN\"\nescalate_after = \"30m\"\nescalation = { email = [\"chief@qy.example.org\"], sms = [\"+8613900000000\"] }",
    ))
    .unwrap();
    assert_eq!(
        cfg.bureau_tokens,
        [BureauToken {
            bureau: "qingyuan".into(),
            key: "bureau[0].api_token".into(),
            source: SecretSource::Env("RIVERWATCH_QY_API_TOKEN".into()),
        }]
    );
    let e = cfg.network.bureaus[0]
        .escalation
        .as_ref()
        .expect("escalation");
    assert_eq!(e.after, Duration::from_secs(1800));
    assert_eq!(e.to.email, ["chief@qy.example.org"]);
    assert_eq!(e.to.sms, ["+8613900000000"]);
    let cfg = parse_str(&bureau("api_token_file = \"gz.token\"")).unwrap();
    assert_eq!(
        cfg.bureau_tokens[0].source,
        SecretSource::File("/etc/riverwatch/gz.token".into())
    );
    assert!(parse_str(MINIMAL).unwrap().bureau_tokens.is_empty());
    // Both or neither; a real duration; real recipients; one token source.
    let table = [
        ("escalate_after = \"30m\"", vec!["bureau[0].escalate_after"]),
        (
            "escalation = { email = [\"chief@qy.example.org\"] }",
            vec!["bureau[0].escalation"],
        ),
        (
            "escalate_after = \"soon\"\nescalation = { email = [\"chief@qy.example.org\"] }",
            vec!["bureau[0].escalate_after"],
        ),
        (
            "escalate_after = \"0s\"\nescalation = { email = [\"chief@qy.example.org\"] }",
            vec!["bureau[0].escalate_after"],
        ),
        (
            "escalate_after = \"30m\"\nescalation = { email = [] }",
            vec!["bureau[0].escalation"],
        ),
        (
            "escalate_after = \"30m\"\nescalation = { sms = [\"12\"] }",
            vec!["bureau[0].escalation.sms[0]"],
        ),
        (
            "api_token_env = \"A\"\napi_token_file = \"b\"",
            vec!["bureau[0].api_token"],
        ),
        ("api_token_env = \"\"", vec!["bureau[0].api_token_env"]),
    ];
    for (lines, expected) in table {
        let err = parse_str(&bureau(lines)).unwrap_err();
        assert_eq!(keys(&err), expected, "{lines}: {err}");
    }
}

/// `[spool] dead_letter_max_size`: 64 MiB by default, any size of at least 4 KiB, one problem
/// for a size too small or not a size.
#[test]
fn the_dead_letter_limit_has_a_default_and_a_floor() {
    let table: &[(&str, Result<u64, ()>)] = &[
        ("", Ok(64 << 20)),
        ("dead_letter_max_size = \"4KiB\"", Ok(4096)),
        ("dead_letter_max_size = \"1GiB\"", Ok(1 << 30)),
        ("dead_letter_max_size = \"1KiB\"", Err(())),
        ("dead_letter_max_size = \"0\"", Err(())),
        ("dead_letter_max_size = \"lots\"", Err(())),
    ];
    for (line, expected) in table {
        let text = format!("[spool]\n{line}\n{MINIMAL}");
        match (parse_str(&text), expected) {
            (Ok(cfg), Ok(bytes)) => assert_eq!(cfg.spool.dead_letter_max_size, *bytes, "{line}"),
            (Err(e), Err(())) => assert_eq!(keys(&e), ["spool.dead_letter_max_size"], "{line}"),
            (got, _) => panic!("{line}: {:?}", got.map(|c| c.spool.dead_letter_max_size)),
        }
    }
}

/// `[report] min_coverage` (default 0.75): a share between 0 and 1, refused with its key
/// otherwise.
#[test]
fn report_min_coverage() {
    assert_eq!(parse_str(MINIMAL).unwrap().report.min_coverage, 0.75);
    let with = |line: &str| parse_str(&format!("{MINIMAL}\n[report]\n{line}\n"));
    for (line, got) in [
        ("min_coverage = 0.5", 0.5),
        ("min_coverage = 0", 0.0),
        ("min_coverage = 1", 1.0),
    ] {
        let cfg = with(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(cfg.report.min_coverage, got, "{line}");
    }
    for (line, key) in [
        ("min_coverage = 1.5", "report.min_coverage"),
        ("min_coverage = -0.1", "report.min_coverage"),
        ("min_coverage = nan", "report.min_coverage"),
        ("min_coverage = \"75%\"", "report.min_coverage"),
        ("minimum = 0.75", "report.minimum"),
    ] {
        let err = with(line).unwrap_err();
        assert_eq!(keys(&err), [key], "{line}: {err}");
    }
}

/// `[spool] dir` left out: systemd's first state directory when the unit sets one, else the
/// SPEC's path.
#[test]
fn the_default_spool_dir_follows_the_state_directory() {
    let cases: [(Option<&str>, &str); 5] = [
        (None, "/var/lib/riverwatch/spool"),
        (Some("/var/lib/riverwatch"), "/var/lib/riverwatch/spool"),
        (Some("/var/lib/riverwatch/0"), "/var/lib/riverwatch/0/spool"),
        (Some("/var/lib/a:/var/lib/b"), "/var/lib/a/spool"),
        // Not an absolute path: not systemd's; the SPEC's default stands.
        (Some(""), "/var/lib/riverwatch/spool"),
    ];
    for (state, expected) in cases {
        let got = default_spool_dir(state.map(std::ffi::OsStr::new));
        assert_eq!(got, Path::new(expected), "STATE_DIRECTORY={state:?}");
    }
    // A dir given in the file wins, relative to the file's folder.
    let cfg = parse_str(&format!("[spool]\ndir = \"state\"\n\n{MINIMAL}")).expect("valid");
    assert_eq!(cfg.spool.dir, Path::new("/etc/riverwatch/state"));
}

/// A value reported wrong at its own key is not reported again by a later check of the same
/// thing (its range, the table it sits in, a cycle through it).
#[test]
fn a_wrong_value_is_reported_once() {
    let table: &[(&str, &str)] = &[
        ("[ingest]\nmax_payload = \"lots\"\n", "ingest.max_payload"),
        (
            "[mqtt]\nshard = { index = 1, count = \"2\" }\n",
            "mqtt.shard.count",
        ),
        (
            "[sms]\nurl = \"http://127.0.0.1:9/send\"\nbody = '{\"to\": \"{phone}\", \"text\": \"{text}\"}'\nheaders = { Authorization = { value_env = \"\" } }\n",
            "sms.headers.Authorization.value_env",
        ),
    ];
    for (section, key) in table {
        let err = parse_str(&format!("{section}\n{MINIMAL}")).unwrap_err();
        assert_eq!(keys(&err), [*key], "{section}: {err}");
    }
    let own = format!("{MINIMAL}downstream = \"shijiao\"\ntravel_time = \"1h\"\n");
    let err = parse_str(&own).unwrap_err();
    assert_eq!(keys(&err), ["station[0].downstream"], "{err}");
}
