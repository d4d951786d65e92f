//! `riverwatch hj212 decode`: HJ 212 frames on standard input, one per line; one JSON object
//! per frame on standard output (SPEC §11), the decoded fields or the reason for refusal.
//!
//! Fed by an integrator's capture file or a pipe; uses the pure `domain::hj212` decoder with
//! the standard code map. A bad line never stops the command: each line is answered on its
//! own, and blank lines are skipped. Each frame is decoded alone: the packets of a split
//! message are shown one by one (with `pnum` and `pno`), not reassembled as the daemon does.

use crate::domain::hj212::{self, CodeMap, Frame, Version};
use crate::json::Object;
use std::io::{BufRead, Write};

fn decoded(frame: &Frame, data: &hj212::Data) -> Object {
    let mut values = Object::new();
    let mut flags = Object::new();
    for (p, (v, f)) in &data.values {
        values = values.put(p.key(), *v);
        if let Some(f) = f {
            flags = flags.put(p.key(), f.letter().to_string());
        }
    }
    let codes = data
        .unknown
        .iter()
        .fold(Object::new(), |o, (c, v)| o.put(c, *v));
    let bad = data
        .bad
        .iter()
        .fold(Object::new(), |o, (field, why)| o.put(field, why.clone()));
    let out = Object::new()
        .put("ok", true)
        .put("qn", frame.qn.clone())
        .put("st", frame.st.clone())
        .put("cn", frame.cn.clone())
        .put("mn", frame.mn.clone())
        .put("flag", frame.flag)
        .put("version", frame.version().name())
        .put("needs_ack", frame.needs_ack())
        .put("data_time", data.data_time.map(|t| t.to_rfc3339()))
        .nest("values", values)
        .nest("flags", flags)
        .nest("codes", codes);
    // The fields below appear only when they say something, so the SPEC §11 line of a clean
    // frame is unchanged. Values refused alone (an empty `-Rtd=`):
    let mut out = if data.bad.is_empty() {
        out
    } else {
        out.nest("refused", bad)
    };
    // Text beside the values (a status in Chinese, `i12001-Info=正常`).
    if !data.info.is_empty() {
        let info = data
            .info
            .iter()
            .fold(Object::new(), |o, (k, text)| o.put(k, text.clone()));
        out = out.nest("info", info);
    }
    // The Flag's version bits when the label reads them otherwise than the standard: bits 2
    // before HJ 212-2025 existed, labelled "2017".
    if frame.version() == Version::VendorPre2025 {
        out = out.put("version_bits", frame.version_bits());
    }
    // One packet of a split message, decoded on its own (the daemon reassembles them).
    if let Some(pnum) = frame.pnum {
        out = out.put("pnum", pnum);
    }
    if let Some(pno) = frame.pno {
        out = out.put("pno", pno);
    }
    out
}

/// The JSON line for one input line.
pub fn decode_line(line: &[u8]) -> String {
    let result = hj212::parse(line).and_then(|frame| {
        let data = hj212::data(&frame, &CodeMap::default())?;
        Ok(decoded(&frame, &data))
    });
    match result {
        Ok(o) => o.line(),
        Err(e) => Object::new().put("ok", false).put("error", e.0).line(),
    }
}

/// Decodes every line of `input` to `output`; returns how many frames were refused.
pub fn decode_stream(input: impl BufRead, mut output: impl Write) -> std::io::Result<usize> {
    let mut refused = 0;
    for line in input.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let json = decode_line(&line);
        if json.starts_with(r#"{"ok":false"#) {
            refused += 1;
        }
        writeln!(output, "{json}")?;
    }
    output.flush()?;
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_output() {
        let frame = crate::domain::hj212::tests::SYNTHETIC_RTD;
        let json = decode_line(frame.as_bytes());
        assert_eq!(
            json,
            r#"{"ok":true,"qn":"20250601100000000","st":"21","cn":"2011","mn":"QY-BJ-SJ-0001","flag":5,"version":"2017","needs_ack":true,"data_time":"2025-06-01T10:00:00+08:00","values":{"temp":26.4,"ph":7.32,"do":6.85,"cond":215.0,"turb":18.6,"codmn":2.41,"nh3n":0.182,"tp":0.071,"tn":1.65},"flags":{"temp":"N","ph":"N","do":"N","cond":"N","turb":"N","codmn":"N","nh3n":"N","tp":"N","tn":"N"},"codes":{}}"#
        );
    }

    #[test]
    fn every_line_is_answered_and_bad_ones_say_why() {
        let good = crate::domain::hj212::tests::SYNTHETIC_RTD.trim_end();
        let bad_crc = format!("{}4980", &good[..good.len() - 4]);
        let input = format!("{good}\r\n\ngarbage\n{bad_crc}\n{good}\n");
        let mut out = Vec::new();
        let refused = decode_stream(input.as_bytes(), &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(refused, 2);
        assert_eq!(lines[1]["error"], "does not start with ##");
        assert_eq!(
            lines[2]["error"],
            "crc mismatch: frame says 4980, computed 8641"
        );
        assert_eq!(lines[3]["ok"], true);
    }

    #[test]
    fn quirks_are_shown_beside_the_spec_fields() {
        use crate::domain::hj212::tests::build_bytes;
        let segment = "QN=20210301111100112;ST=21;CN=2011;PW=123456;MN=ZLDSZ20210127;Flag=9;CP=&&DataTime=20210301111100123;w01001-Rtd=8.33,w01001-Flag=N;i12001-Info=正常&&";
        let json: serde_json::Value =
            serde_json::from_str(&decode_line(&build_bytes(segment.as_bytes()))).unwrap();
        assert_eq!(json["ok"], true, "{json}");
        assert_eq!(json["data_time"], "2021-03-01T11:11:00+08:00");
        assert_eq!(json["values"], serde_json::json!({"ph": 8.33}));
        assert_eq!(json["info"], serde_json::json!({"i12001": "正常"}));
        // Flag 9 in 2021: the vendor's bits, shown, and the label HJ 212-2017.
        assert_eq!(
            (&json["version"], &json["version_bits"], &json["flag"]),
            (&"2017".into(), &2.into(), &9.into())
        );
        // One packet of an old-style split message, decoded on its own.
        let packet = "ST=21;CN=2011;PW=123456;MN=DM000001;PNO=2;PNUM=2;CP=&&DataTime=20191225155200;w01019-Rtd=3.579,w01019-Flag=N&&";
        let json: serde_json::Value =
            serde_json::from_str(&decode_line(&build_bytes(packet.as_bytes()))).unwrap();
        assert_eq!(
            (&json["pnum"], &json["pno"], &json["values"]["codmn"]),
            (&2.into(), &2.into(), &3.579.into())
        );
        assert!(
            json.get("info").is_none() && json.get("version_bits").is_none(),
            "{json}"
        );
    }
}
