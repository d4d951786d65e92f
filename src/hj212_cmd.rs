//! `riverwatch hj212 decode`: HJ 212 frames on standard input, one per line; one JSON object
//! per frame on standard output (SPEC §11), the decoded fields or the reason for refusal.
//!
//! Fed by an integrator's capture file or a pipe; uses the pure `domain::hj212` decoder with
//! the standard code map. A bad line never stops the command: each line is answered on its
//! own, and blank lines are skipped.

use crate::domain::hj212::{self, CodeMap, Frame};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::io::{BufRead, Write};

/// A JSON object whose keys keep the order they were added in (SPEC §11 shows them so);
/// nested objects keep theirs too.
struct Ordered(Vec<(&'static str, Node)>);

enum Node {
    Value(Value),
    Object(Vec<(String, Value)>),
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Node::Value(v) => map.serialize_entry(k, v)?,
                Node::Object(o) => map.serialize_entry(k, &Inner(o))?,
            }
        }
        map.end()
    }
}

struct Inner<'a>(&'a [(String, Value)]);

impl Serialize for Inner<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn decoded(frame: &Frame, data: &hj212::Data) -> Ordered {
    let opt = |v: &Option<String>| Node::Value(v.clone().map_or(Value::Null, Value::from));
    let values = data
        .values
        .iter()
        .map(|(p, (v, _))| (p.key().to_string(), Value::from(*v)))
        .collect();
    let flags = data
        .values
        .iter()
        .filter_map(|(p, (_, f))| {
            f.map(|f| (p.key().to_string(), Value::from(f.letter().to_string())))
        })
        .collect();
    let codes = data
        .unknown
        .iter()
        .map(|(c, v)| (c.clone(), Value::from(*v)))
        .collect();
    let v = Node::Value;
    Ordered(vec![
        ("ok", v(Value::Bool(true))),
        ("qn", opt(&frame.qn)),
        ("st", v(Value::from(frame.st.clone()))),
        ("cn", v(Value::from(frame.cn.clone()))),
        ("mn", v(Value::from(frame.mn.clone()))),
        ("flag", v(frame.flag.map_or(Value::Null, Value::from))),
        ("version", v(Value::from(frame.version().name()))),
        ("needs_ack", v(Value::Bool(frame.needs_ack()))),
        (
            "data_time",
            v(data
                .data_time
                .map_or(Value::Null, |t| Value::from(t.to_rfc3339()))),
        ),
        ("values", Node::Object(values)),
        ("flags", Node::Object(flags)),
        ("codes", Node::Object(codes)),
    ])
}

/// The JSON line for one input line.
pub fn decode_line(line: &[u8]) -> String {
    let result = hj212::parse(line).and_then(|frame| {
        let data = hj212::data(&frame, &CodeMap::default())?;
        Ok(decoded(&frame, &data))
    });
    let object = match result {
        Ok(o) => o,
        Err(e) => Ordered(vec![
            ("ok", Node::Value(Value::Bool(false))),
            ("error", Node::Value(Value::from(e.0))),
        ]),
    };
    serde_json::to_string(&object).unwrap_or_else(|e| format!(r#"{{"ok":false,"error":"{e}"}}"#))
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
}
