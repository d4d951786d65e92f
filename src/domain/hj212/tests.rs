//! Golden tests from WATER.md §4.2 (the standard's example, a real surface-water frame, a
//! 2005-style frame, acknowledgements, and the project's synthetic frames), refusals, and the
//! encode → decode round trip.

use super::*;
use chrono::Utc;
use proptest::prelude::*;

const STANDARD_EXAMPLE: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80";
const SURFACE_WATER: &str = "##0435QN=20210301111100112;ST=21;CN=2011;PW=123456;MN=ZLDSZ20210127;Flag=8;CP=&&DataTime=20210301111100;w01001-Rtd=8.33,w01001-Flag=N;w01009-Rtd=10.15,w01009-Flag=N;w01010-Rtd=9.7,w01010-Flag=N;w01014-Rtd=1425,w01014-Flag=N;w01003-Rtd=13.10,w01003-Flag=N;w21011-Rtd=0,w21011-Flag=N;w21001-Rtd=3.563168,w21001-Flag=N;w21003-Rtd=0.09055002,w21003-Flag=N;w01019-Rtd=4.102818,w01019-Flag=N;w01008-Rtd=0,w01008-Flag=N;w23002-Rtd=0,w23002-Flag=N&&7d00";
const STYLE_2005: &str = "##0178ST=32;CN=2011;PW=123456;MN=0873HHMZWSLH02;CP=&&DataTime=20160103133030;060-Rtd=3.0943,060-Flag=N;011-Rtd=18.0412,011-Flag=N;001-Rtd=8.2137,001-Flag=N;B01-Rtd=10.9890,B01-Flag=N&&a9c1";
const ACK_2025_WITH_ANSWER: &str =
    "##0078QN=20201008154743635;ST=91;CN=9014;PW=123456;MN=SD000001;Flag=9;CP=&&QnRtn=1&&71c0";
const ACK_2025: &str =
    "##0075QN=20260706103512345;ST=91;CN=9014;PW=123456;MN=A110000_0001;Flag=8;CP=&&&&0140";
pub const SYNTHETIC_RTD: &str = "##0372QN=20250601100000000;ST=21;CN=2011;PW=123456;MN=QY-BJ-SJ-0001;Flag=5;CP=&&DataTime=20250601100000;w01010-Rtd=26.4,w01010-Flag=N;w01001-Rtd=7.32,w01001-Flag=N;w01009-Rtd=6.85,w01009-Flag=N;w01014-Rtd=215.0,w01014-Flag=N;w01003-Rtd=18.6,w01003-Flag=N;w01019-Rtd=2.41,w01019-Flag=N;w21003-Rtd=0.182,w21003-Flag=N;w21011-Rtd=0.071,w21011-Flag=N;w21001-Rtd=1.65,w21001-Flag=N&&8641\r\n";
pub const SYNTHETIC_ACK: &str =
    "##0076QN=20250601100000000;ST=91;CN=9014;PW=123456;MN=QY-BJ-SJ-0001;Flag=4;CP=&&&&DD01\r\n";
const SYNTHETIC_HOURLY: &str = "##0226QN=20250601110000000;ST=21;CN=2061;PW=123456;MN=QY-BJ-SJ-0001;Flag=5;CP=&&DataTime=20250601100000;w21003-Min=0.170,w21003-Avg=0.182,w21003-Max=0.201,w21003-Flag=N;w01009-Min=6.70,w01009-Avg=6.85,w01009-Max=7.02,w01009-Flag=N&&3900\r\n";

fn frame(text: &str) -> Frame {
    parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn crc_check_values() {
    assert_eq!(crc16(b"123456789"), 0x2F80);
    let table = [
        (STANDARD_EXAMPLE, 0x1C80),
        (SURFACE_WATER, 0x7D00),
        (STYLE_2005, 0xA9C1),
        (ACK_2025_WITH_ANSWER, 0x71C0),
        (ACK_2025, 0x0140),
    ];
    for (text, crc) in table {
        let segment = &text[6..text.len() - 4];
        assert_eq!(crc16(segment.as_bytes()), crc, "{text}");
    }
}

#[test]
fn golden_frames_decode() {
    // (frame, CN, version, needs ack, MN)
    let table = [
        (
            STANDARD_EXAMPLE,
            "1062",
            Version::V2017,
            true,
            "010000A8900016F000169DC0",
        ),
        // Flag=8 in 2021, before HJ 212-2025 existed: a vendor's Flag, read as 2017.
        (
            SURFACE_WATER,
            "2011",
            Version::VendorPre2025,
            false,
            "ZLDSZ20210127",
        ),
        (STYLE_2005, "2011", Version::V2005, false, "0873HHMZWSLH02"),
        (
            ACK_2025_WITH_ANSWER,
            "9014",
            Version::VendorPre2025,
            true,
            "SD000001",
        ),
        (ACK_2025, "9014", Version::V2025, false, "A110000_0001"),
        (SYNTHETIC_RTD, "2011", Version::V2017, true, "QY-BJ-SJ-0001"),
        (
            SYNTHETIC_ACK,
            "9014",
            Version::V2017,
            false,
            "QY-BJ-SJ-0001",
        ),
        (
            SYNTHETIC_HOURLY,
            "2061",
            Version::V2017,
            true,
            "QY-BJ-SJ-0001",
        ),
    ];
    for (text, cn, version, ack, mn) in table {
        let f = frame(text);
        assert_eq!(
            (f.cn.as_str(), f.version(), f.needs_ack(), f.mn.as_str()),
            (cn, version, ack, mn),
            "{text}"
        );
    }
    assert_eq!(frame(STYLE_2005).qn, None);
    assert_eq!(frame(STYLE_2005).flag, None);
}

#[test]
fn surface_water_values_and_unknown_codes() {
    let d = data(&frame(SURFACE_WATER), &CodeMap::default()).unwrap();
    let v = |p: Param| d.values.get(&p).map(|(v, _)| *v);
    assert_eq!(v(Param::Ph), Some(8.33));
    assert_eq!(v(Param::Do), Some(10.15));
    assert_eq!(v(Param::Temp), Some(9.7));
    assert_eq!(v(Param::Cond), Some(1425.0));
    assert_eq!(v(Param::Turb), Some(13.10));
    assert_eq!(v(Param::Tp), Some(0.0));
    assert_eq!(v(Param::Nh3n), Some(0.09055002));
    assert_eq!(v(Param::Codmn), Some(4.102818));
    assert_eq!(v(Param::Phenol), Some(0.0));
    assert_eq!(d.values[&Param::Ph].1, Some(DataFlag::N));
    // w01008 is not a surface-water parameter of SPEC §4: kept, not mapped.
    assert_eq!(d.unknown.get("w01008"), Some(&0.0));
    assert_eq!(
        d.data_time.unwrap().to_rfc3339(),
        "2021-03-01T11:11:00+08:00"
    );
}

#[test]
fn synthetic_frames_and_their_ack() {
    let rtd = frame(SYNTHETIC_RTD);
    let d = data(&rtd, &CodeMap::default()).unwrap();
    assert_eq!(d.values.len(), 9);
    assert_eq!(d.values[&Param::Nh3n].0, 0.182);
    assert_eq!(
        d.data_time.unwrap().with_timezone(&Utc).to_rfc3339(),
        "2025-06-01T02:00:00+00:00"
    );
    // The acknowledgement is the golden ack frame, byte for byte.
    assert_eq!(rtd.data_ack().encode(), SYNTHETIC_ACK);
    // Hourly data take the -Avg values.
    let hourly = data(&frame(SYNTHETIC_HOURLY), &CodeMap::default()).unwrap();
    assert_eq!(hourly.values[&Param::Nh3n].0, 0.182);
    assert_eq!(hourly.values[&Param::Do].0, 6.85);
}

#[test]
fn encoder_reproduces_golden_frames() {
    for text in [
        STANDARD_EXAMPLE,
        SURFACE_WATER,
        ACK_2025,
        SYNTHETIC_RTD,
        SYNTHETIC_HOURLY,
    ] {
        let encoded = frame(text).encode();
        let original = text.trim_end();
        assert_eq!(
            encoded.trim_end().to_uppercase(),
            original.to_uppercase(),
            "{text}"
        );
        assert!(encoded.ends_with("\r\n"));
    }
}

#[test]
fn microgram_codes_are_converted() {
    let segment = "QN=20250601100000000;ST=21;CN=2011;PW=123456;MN=M1;Flag=4;CP=&&DataTime=20250601100000;w20111-Rtd=0.08,w20120-Rtd=12,w20122-Rtd=0.02&&";
    let text = format!(
        "##{:04}{segment}{:04X}",
        segment.len(),
        crc16(segment.as_bytes())
    );
    let d = data(&frame(&text), &CodeMap::default()).unwrap();
    assert!((d.values[&Param::Hg].0 - 0.00008).abs() < 1e-12);
    assert!((d.values[&Param::Pb].0 - 0.012).abs() < 1e-12);
    assert_eq!(d.values[&Param::Cu].0, 0.02);
    // A station override: this vendor sends w20122 (copper) in µg/L.
    let map = CodeMap::with_overrides(&[(
        "w20122".to_string(),
        CodeTarget {
            param: Param::Cu,
            scale: 0.001,
        },
    )]);
    assert!((data(&frame(&text), &map).unwrap().values[&Param::Cu].0 - 0.00002).abs() < 1e-12);
}

#[test]
fn refusals_say_why() {
    let good = SYNTHETIC_RTD.trim_end();
    let bad_crc = format!("{}4980", &good[..good.len() - 4]);
    let lower_crc = format!(
        "{}{}",
        &good[..good.len() - 4],
        good[good.len() - 4..].to_lowercase()
    );
    let long_segment = format!(
        "QN=20250601100000000;ST=21;CN=2011;MN=M;Flag=4;CP=&&{}&&",
        "a=1;".repeat(260)
    );
    let oversize = format!(
        "##{:04}{long_segment}{:04X}",
        long_segment.len(),
        crc16(long_segment.as_bytes())
    );
    let reframe = |segment: &str| {
        format!(
            "##{:04}{segment}{:04X}",
            segment.len(),
            crc16(segment.as_bytes())
        )
    };
    let table: Vec<(String, &str)> = vec![
        (bad_crc, "crc mismatch: frame says 4980, computed 8641"),
        (
            good.replacen("##0372", "##0370", 1),
            "bad length: length field says 370 characters, frame carries 372",
        ),
        (
            good[..200].to_string(),
            "truncated: length field says 372 characters, frame carries 190",
        ),
        (
            good.replacen("##0372", "##03x2", 1),
            "bad length field \"03x2\"",
        ),
        ("hello".into(), "does not start with ##"),
        ("##01".into(), "truncated"),
        (oversize, "exceeds the 1024 allowed"),
        (
            reframe("QN=20250601100000000;ST=21;CN=2011;MN=青Y;Flag=4;CP=&&&&"),
            "non-ASCII byte 0xE9 at offset 44 in the fields before CP",
        ),
        (
            reframe("ST=21;CN=2011;MN=M;PNUM=2;PNO=3;CP=&&&&"),
            "PNO=3 is not within 1 to PNUM=2",
        ),
        (
            reframe("QN=20250601100000000;ST=21;CN=2011;MN=M;Flag=4;CP=&&w21003-Rtd=1"),
            "malformed CP",
        ),
        (
            reframe("QN=20250601100000000;ST=21;CN=7777;MN=M;Flag=4;CP=&&&&"),
            "unknown command code CN=7777",
        ),
        (
            reframe("QN=20250601100000000;ST=21;CN=2011;Flag=4;CP=&&&&"),
            "missing MN",
        ),
        (reframe("ST=21;CN=2011;MN=M;Flag=6;CP=&&&&"), "split packet"),
        (
            reframe("ST=21;CN=2011;MN=M;Flag=4;XX=1;CP=&&&&"),
            "unknown data segment field",
        ),
    ];
    for (text, needle) in table {
        let e = parse(text.as_bytes()).expect_err(&text);
        assert!(e.0.contains(needle), "{text}: {e}");
    }
    assert!(
        parse(lower_crc.as_bytes()).is_ok(),
        "CRC compared case-insensitively"
    );
    let not_a_number =
        reframe("ST=21;CN=2011;MN=M;Flag=4;CP=&&DataTime=20250601100000;w21003-Rtd=abc&&");
    // A value that is not a number refuses that value alone; the frame's others stand.
    let d = data(&frame(&not_a_number), &CodeMap::default()).unwrap();
    assert!(d.values.is_empty());
    let e = &d.bad[0].1;
    assert!(e.contains("w21003-Rtd=\"abc\" is not a number"), "{e}");
}

#[test]
fn split_packets_are_reassembled_by_qn() {
    let part = |pno: u32, cp: &str| Frame {
        qn: Some("20250601100000000".into()),
        st: "21".into(),
        cn: "2011".into(),
        pw: Some("123456".into()),
        mn: "M1".into(),
        flag: Some(4 | 2 | 1),
        pnum: Some(2),
        pno: Some(pno),
        cp: cp.into(),
    };
    let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 6, 1, 2, 0, 0).unwrap();
    let mut r = Reassembly::default();
    assert_eq!(r.push(part(2, "w21011-Rtd=0.07"), now), Ok(None));
    assert_eq!(r.pending(), 1);
    let whole = r
        .push(part(1, "DataTime=20250601100000;w21003-Rtd=0.18"), now)
        .unwrap()
        .unwrap();
    assert_eq!(
        whole.cp,
        "DataTime=20250601100000;w21003-Rtd=0.18;w21011-Rtd=0.07"
    );
    assert!(!whole.is_split() && whole.needs_ack());
    assert_eq!(data(&whole, &CodeMap::default()).unwrap().values.len(), 2);
    assert_eq!(r.push(part(1, "w21003-Rtd=0.2"), now), Ok(None));
    assert_eq!(
        r.expire(
            now + chrono::Duration::seconds(61),
            chrono::Duration::seconds(60)
        )
        .len(),
        1
    );
    assert_eq!(r.pending(), 0);
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let code = prop::sample::select(vec![
        "w01001", "w21003", "w21011", "w01009", "w20111", "B01",
    ]);
    let item = (
        code,
        -1000.0f64..1000.0,
        prop::sample::select(vec!["N", "M", "T", "D"]),
    );
    (
        proptest::option::of("[0-9]{17}"),
        prop::sample::select(vec!["2011", "2051", "2061"]),
        "[A-Za-z0-9_-]{1,24}",
        proptest::option::of(0u8..=255),
        proptest::collection::vec(item, 0..12),
    )
        .prop_map(|(qn, cn, mn, flag, items)| {
            let mut cp = String::from("DataTime=20250601100000");
            for (code, v, f) in items {
                cp.push_str(&format!(";{code}-Rtd={v},{code}-Avg={v},{code}-Flag={f}"));
            }
            Frame {
                qn,
                st: "21".into(),
                cn: cn.into(),
                pw: Some("123456".into()),
                mn,
                // Split frames need PNUM/PNO; the round trip covers whole frames.
                flag: flag.map(|f| f & !2),
                pnum: None,
                pno: None,
                cp,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_parse_is_identity(f in arb_frame()) {
        let text = f.encode();
        prop_assume!(text.len() <= MAX_SEGMENT + 12);
        let back = parse(text.as_bytes()).map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(&back, &f);
        prop_assert!(data(&back, &CodeMap::default()).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = parse(&bytes) {
            let _ = data(&f, &CodeMap::default());
        }
    }
}

#[test]
fn every_parameter_with_a_standard_code_round_trips() {
    let map = CodeMap::default();
    for p in Param::ALL {
        if let Some(code) = code_for(p) {
            assert_eq!(
                map.get(&code).map(|t| (t.param, t.scale)),
                Some((p, 1.0)),
                "{code}"
            );
        }
    }
    assert_eq!(code_for(Param::Nh3n).as_deref(), Some("w21003"));
    assert_eq!(
        code_for(Param::Hg).as_deref(),
        None,
        "mercury only has µg/L codes"
    );
}

// Real loggers' quirks (module docs). Each frame is shaped like a public sample, with its
// length and CRC recomputed by `build`.

/// A frame around `segment` as sent: `##`, `length` in 4 digits, the bytes, the CRC over them.
pub fn build(segment: &[u8], length: usize) -> Vec<u8> {
    let mut out = format!("##{length:04}").into_bytes();
    out.extend_from_slice(segment);
    out.extend_from_slice(format!("{:04X}\r\n", crc16(segment)).as_bytes());
    out
}

/// [`build`] with the length counted in bytes.
pub fn build_bytes(segment: &[u8]) -> Vec<u8> {
    build(segment, segment.len())
}

/// xiaoyao9184/hj-t212-parser's benchmark frame: a 17-digit DataTime, no QN, no Flag.
const MILLISECONDS: &str = "##0139ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20160824003817000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,060-Flag=N&&4980\r\n";

#[test]
fn data_time_with_milliseconds_is_read_to_the_second() {
    let d = data(&frame(MILLISECONDS), &CodeMap::default()).unwrap();
    assert_eq!(
        d.data_time.unwrap().to_rfc3339(),
        "2016-08-24T00:38:17+08:00"
    );
    assert_eq!(
        (d.values[&Param::Cod].0, d.values[&Param::Nh3n].0),
        (231.0, 1.803)
    );
    // (DataTime as written, the time read or the refusal's words)
    let table = [
        ("20160824003817", Ok("2016-08-24T00:38:17+08:00")),
        ("20160824003817000", Ok("2016-08-24T00:38:17+08:00")),
        ("20160824003817999", Ok("2016-08-24T00:38:17+08:00")),
        ("20161231235959123", Ok("2016-12-31T23:59:59+08:00")),
        (
            "2016082400381",
            Err("is not YYYYMMDDhhmmss (14 digits) or YYYYMMDDhhmmsszzz (17"),
        ),
        ("201608240038170", Err("is not YYYYMMDDhhmmss (14 digits)")),
        ("2016082400381700", Err("is not YYYYMMDDhhmmss (14 digits)")),
        (
            "201608240038170000",
            Err("is not YYYYMMDDhhmmss (14 digits)"),
        ),
        (
            "2016082400381700a",
            Err("is not YYYYMMDDhhmmss (14 digits)"),
        ),
        (
            "20161324003817000",
            Err("\"20161324003817000\" is not a valid time"),
        ),
        ("", Err("is not YYYYMMDDhhmmss")),
    ];
    for (written, want) in table {
        let segment = format!(
            "ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime={written};011-Rtd=231.0,011-Flag=N&&"
        );
        let f = parse(&build_bytes(segment.as_bytes())).unwrap();
        let got = data(&f, &CodeMap::default()).map(|d| d.data_time.unwrap().to_rfc3339());
        match (got, want) {
            (Ok(t), Ok(w)) => assert_eq!(t, w, "{written}"),
            (Err(e), Err(w)) => assert!(e.0.contains(w), "{written}: {e}"),
            (got, want) => panic!("{written}: got {got:?}, want {want:?}"),
        }
    }
}

/// The public surface-water frame (alltobs, WATER.md §4.2 vector 2), shortened, with a status
/// item: `Flag=5`, the status text spliced in as bytes.
fn with_status(status: &[u8]) -> Vec<u8> {
    let mut segment = b"QN=20210301111100112;ST=21;CN=2011;PW=123456;MN=ZLDSZ20210127;Flag=5;CP=&&DataTime=20210301111100;w01001-Rtd=8.33,w01001-Flag=N;w21003-Rtd=0.09055002,w21003-Flag=N;i12001-Info=".to_vec();
    segment.extend_from_slice(status);
    segment.extend_from_slice(b"&&");
    segment
}

/// 正常 ("normal") in GBK.
const GBK_NORMAL: &[u8] = &[0xD5, 0xFD, 0xB3, 0xA3];

#[test]
fn text_in_status_items_never_refuses_the_frame() {
    let utf8 = with_status("正常".as_bytes());
    let gbk = with_status(GBK_NORMAL);
    let ascii = with_status(b"0");
    let chars = |s: &[u8]| std::str::from_utf8(s).unwrap().chars().count();
    let replaced = "\u{FFFD}".repeat(4);
    // (what, frame, the info item's text)
    let table: Vec<(&str, Vec<u8>, &str)> = vec![
        ("ASCII status", build_bytes(&ascii), "0"),
        ("UTF-8, length in bytes", build_bytes(&utf8), "正常"),
        (
            "UTF-8, length in characters",
            build(&utf8, chars(&utf8)),
            "正常",
        ),
        ("GBK, length in bytes", build_bytes(&gbk), &replaced),
        (
            "GBK, length in characters",
            build(&gbk, gbk.len() - 2),
            &replaced,
        ),
    ];
    assert_eq!(
        chars(&utf8),
        utf8.len() - 4,
        "two characters of three bytes"
    );
    for (what, bytes, text) in table {
        let f = parse(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        let d = data(&f, &CodeMap::default()).unwrap();
        let values: Vec<_> = d.values.iter().map(|(p, (v, _))| (*p, *v)).collect();
        assert_eq!(
            values,
            [(Param::Ph, 8.33), (Param::Nh3n, 0.09055002)],
            "{what}"
        );
        assert!(d.bad.is_empty() && d.unknown.is_empty(), "{what}: {d:?}");
        assert_eq!(
            d.info.get("i12001").map(String::as_str),
            Some(text),
            "{what}"
        );
        assert_eq!(d.info.len(), 1, "{what}");
    }
    // A length that is neither the bytes nor the characters is still refused, and says both.
    let (n, c) = (utf8.len(), chars(&utf8));
    let e = parse(&build(&utf8, n - 1)).unwrap_err();
    let want = format!(
        "bad length: length field says {} characters, frame carries {n} bytes ({c} characters)",
        n - 1
    );
    assert_eq!(e.0, want);
    let n = gbk.len();
    let e = parse(&build(&gbk, n + 1)).unwrap_err();
    let want = format!(
        "truncated: length field says {} characters, frame carries {n} bytes ({} characters)",
        n + 1,
        n - 2
    );
    assert_eq!(e.0, want);
    // The CRC is over the bytes as sent: one changed byte of the text is a mismatch.
    let mut tampered = build_bytes(&gbk);
    let at = tampered.len() - 9;
    tampered[at] = 0xA4;
    assert!(parse(&tampered).unwrap_err().0.contains("crc mismatch"));
}

#[test]
fn other_text_items_go_to_info_and_text_values_are_refused_alone() {
    let segment = "QN=20210301111100112;ST=21;CN=2011;PW=123456;MN=ZLDSZ20210127;Flag=5;CP=&&DataTime=20210301111100;w01001-Rtd=8.33,w01001-Flag=N,w01001-EFlag=故障;w21011-Rtd=无,w21011-Flag=D;Remark=站房;RtdInterval=30&&";
    let d = data(
        &parse(&build_bytes(segment.as_bytes())).unwrap(),
        &CodeMap::default(),
    )
    .unwrap();
    assert_eq!(d.values.keys().copied().collect::<Vec<_>>(), [Param::Ph]);
    let info: Vec<(&str, &str)> = d
        .info
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(info, [("Remark", "站房"), ("w01001-EFlag", "故障")]);
    // A value field holding text is that value's refusal, not the frame's.
    assert_eq!(d.bad.len(), 1);
    assert!(
        d.bad[0].1.contains("w21011-Rtd=\"无\" is not a number"),
        "{:?}",
        d.bad
    );
}

#[test]
fn lowercase_crc_and_an_empty_value_are_accepted() {
    // guocay/hj212-protocol's air frame shape, lowercase CRC, one `-Rtd=` empty.
    let segment = b"QN=20191012133710130;ST=21;CN=2011;PW=123456;MN=Y80110010000010;Flag=4;CP=&&DataTime=20191012133710;w01001-Rtd=7.1,w01001-Flag=N;w21003-Rtd=,w21003-Flag=D;w01009-Rtd=6.2,w01009-Flag=N&&";
    let mut bytes = build_bytes(segment);
    let crc_at = bytes.len() - 6;
    bytes[crc_at..crc_at + 4].make_ascii_lowercase();
    assert!(
        bytes[crc_at..crc_at + 4].iter().any(u8::is_ascii_lowercase),
        "a CRC with a letter"
    );
    let d = data(&parse(&bytes).unwrap(), &CodeMap::default()).unwrap();
    assert_eq!(
        d.values.keys().copied().collect::<Vec<_>>(),
        [Param::Ph, Param::Do]
    );
    assert_eq!(d.bad.len(), 1);
    assert!(d.bad[0].1.contains("w21003-Rtd is empty"));
}

/// The public split pair (a socket client's test code): PNO/PNUM, no QN, no Flag.
const SPLIT_1: &str = "##0270ST=21;CN=2011;PW=123456;MN=DM000001;PNO=1;PNUM=2;CP=&&DataTime=20191225155200;w01001-Rtd=91.980,w01001-Flag=N;w01006-Rtd=21.130,w01006-Flag=N;w01010-Rtd=61.970,w01010-Flag=N;w01014-Rtd=38.450,w01014-Flag=N;w21003-Rtd=56.427,w21003-Flag=N;w21011-Rtd=2.497,w21011-Flag=N&&F9C1\r\n";
const SPLIT_2: &str = "##0143ST=21;CN=2011;PW=123456;MN=DM000001;PNO=2;PNUM=2;CP=&&DataTime=20191225155200;w01019-Rtd=91.579,w01019-Flag=N;w01003-Rtd=48.624,w01003-Flag=N&&9301\r\n";

#[test]
fn old_style_split_packets_are_reassembled() {
    let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 6, 1, 2, 0, 0).unwrap();
    let all = [
        Param::Ph,
        Param::Temp,
        Param::Cond,
        Param::Codmn,
        Param::Turb,
        Param::Nh3n,
        Param::Tp,
    ];
    // In either order; each packet alone also decodes (as `hj212 decode` shows it).
    for (first, second) in [(SPLIT_1, SPLIT_2), (SPLIT_2, SPLIT_1)] {
        let mut r = Reassembly::default();
        assert_eq!(r.push(frame(first), now), Ok(None));
        assert_eq!(r.pending(), 1);
        let whole = r.push(frame(second), now).unwrap().unwrap();
        assert_eq!(
            (whole.pnum, whole.pno, whole.flag, r.pending()),
            (None, None, None, 0)
        );
        assert_eq!(whole.cp.matches("DataTime=").count(), 1, "{}", whole.cp);
        let d = data(&whole, &CodeMap::default()).unwrap();
        let mut params: Vec<Param> = d.values.keys().copied().collect();
        params.sort_by_key(|p| all.iter().position(|q| q == p));
        assert_eq!(params, all);
        assert_eq!(d.values[&Param::Codmn].0, 91.579);
        assert_eq!(d.unknown.keys().collect::<Vec<_>>(), ["w01006"]);
        assert_eq!(
            d.data_time.unwrap().to_rfc3339(),
            "2019-12-25T15:52:00+08:00"
        );
    }
    // Without QN, messages are told apart by DataTime: another minute is another message.
    let mut r = Reassembly::default();
    let later = Frame {
        cp: frame(SPLIT_2).cp.replace("155200", "155300"),
        ..frame(SPLIT_2)
    };
    assert_eq!(r.push(frame(SPLIT_1), now), Ok(None));
    assert_eq!(r.push(later, now), Ok(None));
    assert_eq!(r.pending(), 2);
    // Within one QN, packets must agree on DataTime and PNUM; else the message is dropped.
    let qn = |pnum: u32, pno: u32, cp: &str| Frame {
        qn: Some("20250601100000000".into()),
        pnum: Some(pnum),
        pno: Some(pno),
        cp: cp.into(),
        ..frame(SPLIT_1)
    };
    let table = [
        (
            qn(2, 2, "DataTime=20250601100100;w01019-Rtd=1"),
            "says DataTime=20250601100100, an earlier packet said 20250601100000",
        ),
        (
            qn(3, 2, "DataTime=20250601100000;w01019-Rtd=1"),
            "says PNUM=3, an earlier packet said 2",
        ),
    ];
    for (second, needle) in table {
        let mut r = Reassembly::default();
        assert_eq!(
            r.push(qn(2, 1, "DataTime=20250601100000;w01001-Rtd=7"), now),
            Ok(None)
        );
        let e = r.push(second, now).unwrap_err();
        assert!(
            e.0.contains(needle) && e.0.contains("QN=20250601100000000"),
            "{e}"
        );
        assert_eq!(r.pending(), 0);
    }
    // A later packet of a QN message may leave DataTime out.
    let mut r = Reassembly::default();
    assert_eq!(
        r.push(qn(2, 1, "DataTime=20250601100000;w01001-Rtd=7"), now),
        Ok(None)
    );
    let whole = r.push(qn(2, 2, "w01019-Rtd=1"), now).unwrap().unwrap();
    assert_eq!(
        whole.cp,
        "DataTime=20250601100000;w01001-Rtd=7;w01019-Rtd=1"
    );
    // With neither QN nor DataTime a packet cannot be matched: it passes on alone.
    let lone = Frame {
        cp: "w01001-Rtd=7".into(),
        ..frame(SPLIT_1)
    };
    assert_eq!(r.push(lone.clone(), now), Ok(Some(lone)));
}

#[test]
fn version_labels_follow_the_flag_bits_and_the_date() {
    // (Flag, QN, DataTime, label, version, version bits, the 9014 acknowledgement's Flag)
    type Case<'a> = (
        Option<u8>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        Version,
        u8,
        u8,
    );
    let table: &[Case] = &[
        (
            None,
            None,
            Some("20160103133030"),
            "2005",
            Version::V2005,
            0,
            0,
        ),
        (
            Some(0),
            Some("20160801085857223"),
            None,
            "2005",
            Version::V2005,
            0,
            0,
        ),
        (
            Some(1),
            Some("20160801085857223"),
            None,
            "2005",
            Version::V2005,
            0,
            0,
        ),
        (
            Some(4),
            Some("20250601100000000"),
            None,
            "2017",
            Version::V2017,
            1,
            4,
        ),
        (
            Some(5),
            Some("20270601100000000"),
            None,
            "2017",
            Version::V2017,
            1,
            4,
        ),
        (
            Some(7),
            Some("20250601100000000"),
            None,
            "2017",
            Version::V2017,
            1,
            4,
        ),
        // Version bits 2 before HJ 212-2025 was issued (2025-06-06): a vendor's Flag.
        (
            Some(8),
            Some("20210301111100112"),
            None,
            "2017",
            Version::VendorPre2025,
            2,
            8,
        ),
        (
            Some(9),
            Some("20201030000000437"),
            None,
            "2017",
            Version::VendorPre2025,
            2,
            8,
        ),
        (
            Some(9),
            Some("20250605235959999"),
            None,
            "2017",
            Version::VendorPre2025,
            2,
            8,
        ),
        (
            Some(11),
            Some("20201008154743635"),
            None,
            "2017",
            Version::VendorPre2025,
            2,
            8,
        ),
        (
            Some(8),
            None,
            Some("20210301111100"),
            "2017",
            Version::VendorPre2025,
            2,
            8,
        ),
        (
            Some(8),
            Some("99999999999999999"),
            Some("20210301111100"),
            "2017",
            Version::VendorPre2025,
            2,
            8,
        ),
        // From the day it was issued, or with no date to tell: HJ 212-2025.
        (
            Some(9),
            Some("20250606000000000"),
            None,
            "2025",
            Version::V2025,
            2,
            8,
        ),
        (
            Some(8),
            Some("20260706103512345"),
            None,
            "2025",
            Version::V2025,
            2,
            8,
        ),
        (
            Some(10),
            Some("20260706103512345"),
            None,
            "2025",
            Version::V2025,
            2,
            8,
        ),
        (Some(8), None, None, "2025", Version::V2025, 2, 8),
        // QN (when the message was made) decides over DataTime (what it reports): a backlog.
        (
            Some(9),
            Some("20260101000000000"),
            Some("20240101000000"),
            "2025",
            Version::V2025,
            2,
            8,
        ),
        // Unknown versions are decoded, labelled as such, and mirrored.
        (
            Some(12),
            Some("20260706103512345"),
            None,
            "unknown (3)",
            Version::Other(3),
            3,
            12,
        ),
        (
            Some(255),
            None,
            None,
            "unknown (63)",
            Version::Other(63),
            63,
            252,
        ),
    ];
    for &(flag, qn, time, label, version, bits, ack) in table {
        let cp = time
            .map(|t| format!("DataTime={t};w01001-Rtd=7.1"))
            .unwrap_or_default();
        let f = Frame {
            qn: qn.map(str::to_string),
            st: "21".into(),
            cn: "2011".into(),
            pw: Some("123456".into()),
            mn: "M1".into(),
            flag,
            // Flag bit 1 needs packet numbers.
            pnum: flag.filter(|f| f & 2 == 2).map(|_| 1),
            pno: flag.filter(|f| f & 2 == 2).map(|_| 1),
            cp,
        };
        let f = parse(f.encode().as_bytes()).unwrap_or_else(|e| panic!("{flag:?}: {e}"));
        let case = format!("Flag={flag:?} QN={qn:?} DataTime={time:?}");
        assert_eq!(
            (
                f.version(),
                f.version().name(),
                f.version_bits(),
                f.data_ack().flag
            ),
            (version, label.to_string(), bits, Some(ack)),
            "{case}"
        );
    }
}

/// Non-ASCII text to insert into CP: UTF-8 Chinese, or GBK-shaped bytes.
fn arb_text() -> impl Strategy<Value = (Vec<u8>, bool)> {
    prop_oneof![
        "[\u{4e00}-\u{9fa5}（）：]{1,8}".prop_map(|s| (s.into_bytes(), true)),
        proptest::collection::vec((0x81u8..=0xFE, 0x80u8..=0xFE), 1..8)
            .prop_map(|pairs| (pairs.into_iter().flat_map(|(a, b)| [a, b]).collect(), false)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// A status text in any encoding, anywhere in CP, with the length counted either way,
    /// never refuses a valid frame and never changes its values.
    #[test]
    fn text_items_never_refuse_nor_change_values(
        f in arb_frame(),
        (text, utf8) in arb_text(),
        key in prop::sample::select(vec!["i12001-Info", "i13004-Info", "w01001-EFlag", "Remark"]),
        at in 0usize..16,
        in_characters in any::<bool>(),
    ) {
        let plain = data(&f, &CodeMap::default()).map_err(|e| TestCaseError::fail(e.0))?;
        let mut groups: Vec<Vec<u8>> = f.cp.split(';').map(|g| g.as_bytes().to_vec()).collect();
        let mut item = format!("{key}=").into_bytes();
        item.extend_from_slice(&text);
        let at = at.min(groups.len());
        groups.insert(at, item);
        let mut with_text = Frame { cp: String::new(), ..f.clone() }.segment().into_bytes();
        // Without the closing `&&` of the empty CP.
        with_text.truncate(with_text.len() - 2);
        with_text.extend_from_slice(&groups.join(&b';'));
        with_text.extend_from_slice(b"&&");
        let length = match (utf8 && in_characters, std::str::from_utf8(&with_text)) {
            (true, Ok(s)) => s.chars().count(),
            _ => with_text.len(),
        };
        prop_assume!(length <= MAX_SEGMENT);
        let back = parse(&build(&with_text, length)).map_err(|e| TestCaseError::fail(e.0))?;
        let d = data(&back, &CodeMap::default()).map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(&d.values, &plain.values);
        prop_assert_eq!(&d.unknown, &plain.unknown);
        prop_assert_eq!(d.data_time, plain.data_time);
        prop_assert!(d.bad.is_empty());
        let shown = key.strip_suffix("-Info").unwrap_or(key);
        let got = d.info.get(shown).cloned().unwrap_or_default();
        if utf8 {
            prop_assert_eq!(got.as_bytes(), &text[..]);
        } else {
            prop_assert!(!got.is_empty());
        }
    }
}
