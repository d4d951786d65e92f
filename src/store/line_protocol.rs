//! InfluxDB line protocol encoding: escaping, field types, timestamps.
//!
//! Fed by `store::points` (which decides what a point holds); feeds the writers, which send
//! the text as it is. Pure. Timestamps are milliseconds since the epoch, written with
//! `precision=ms`: station clocks do not carry finer time, and VictoriaMetrics keeps ms only.
//! Line protocol cannot carry a newline inside a value, so newlines become spaces. Backslashes
//! are escaped everywhere: InfluxDB's scanner skips the character after any backslash, so an
//! unescaped trailing backslash in a tag would swallow the space that ends the tag set.

use std::fmt::Write;

/// A field value with its line-protocol type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// Written in Rust's shortest round-trip form, which line protocol reads as a float (a value
    /// without an `i` suffix is a float, so `2` is the float 2.0). Callers never pass
    /// non-finite values: the decoders refuse them.
    Float(f64),
    /// Written with the `i` suffix.
    Int(i64),
    /// Quoted, with `"` and `\` escaped.
    Str(&'a str),
    /// `true` or `false`.
    Bool(bool),
}

/// One point. Tags are sorted by key when encoded (InfluxDB's recommendation); empty tag
/// values are left out, as line protocol has no empty tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Point<'a> {
    pub measurement: &'a str,
    pub tags: Vec<(&'a str, &'a str)>,
    pub fields: Vec<(&'a str, Field<'a>)>,
    pub ts_ms: i64,
}

fn escape(out: &mut String, text: &str, special: &[char]) {
    // Most keys and values need no escaping: copy them whole. Every special character is
    // ASCII, so a byte test is exact on UTF-8.
    let plain = text
        .bytes()
        .all(|b| b != b'\n' && b != b'\r' && !(b.is_ascii() && special.contains(&char::from(b))));
    if plain {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if c == '\n' || c == '\r' {
            out.push(' ');
            continue;
        }
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Appends one point as a line, with its trailing newline. A point without fields writes
/// nothing (line protocol requires at least one field).
pub fn encode(point: &Point<'_>, out: &mut String) {
    if point.fields.is_empty() {
        return;
    }
    escape(out, point.measurement, &[',', ' ', '\\']);
    // The encoders give their tags in order already; only others pay for a sorted copy.
    let sorted;
    let tags = if point.tags.is_sorted_by(|a, b| a.0 <= b.0) {
        &point.tags
    } else {
        let mut t = point.tags.clone();
        t.sort_by(|a, b| a.0.cmp(b.0));
        sorted = t;
        &sorted
    };
    for (k, v) in tags.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(',');
        escape(out, k, &[',', '=', ' ', '\\']);
        out.push('=');
        escape(out, v, &[',', '=', ' ', '\\']);
    }
    for (i, (k, v)) in point.fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        escape(out, k, &[',', '=', ' ', '\\']);
        out.push('=');
        // Writing to a String cannot fail.
        match v {
            Field::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Field::Int(n) => {
                push_int(out, *n);
                out.push('i');
            }
            Field::Str(s) => {
                out.push('"');
                escape(out, s, &['"', '\\']);
                out.push('"');
            }
            Field::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
    out.push(' ');
    push_int(out, point.ts_ms);
    out.push('\n');
}

/// Appends `n` in decimal, without the formatting machinery (two integers a point).
fn push_int(out: &mut String, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push('-');
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(point: Point<'_>, expected: &str) {
        let mut out = String::new();
        encode(&point, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn golden_lines() {
        check(
            Point {
                measurement: "water_quality",
                tags: vec![("station", "shijiao"), ("river", "bei"), ("city", "qingyuan")],
                fields: vec![("nh3n", Field::Float(1.2)), ("do", Field::Float(7.0)), ("wq_class", Field::Int(4))],
                ts_ms: 1_795_658_400_000,
            },
            "water_quality,city=qingyuan,river=bei,station=shijiao nh3n=1.2,do=7,wq_class=4i 1795658400000\n",
        );
        // Escaping: spaces, commas and equals signs in tags; quotes and backslashes in strings.
        check(
            Point {
                measurement: "wq alert,x",
                tags: vec![("station", "石角 (界牌)"), ("k=v", "a,b=c\\"), ("empty", "")],
                fields: vec![("message", Field::Str("say \"hi\" \\ now\nnext"))],
                ts_ms: 0,
            },
            "wq\\ alert\\,x,k\\=v=a\\,b\\=c\\\\,station=石角\\ (界牌) message=\"say \\\"hi\\\" \\\\ now next\" 0\n",
        );
        check(
            Point {
                measurement: "m",
                tags: vec![],
                fields: vec![("v", Field::Float(0.00005)), ("n", Field::Int(-3))],
                ts_ms: -1,
            },
            "m v=0.00005,n=-3i -1\n",
        );
    }

    #[test]
    fn no_fields_writes_nothing() {
        check(
            Point {
                measurement: "m",
                tags: vec![("a", "b")],
                fields: vec![],
                ts_ms: 1,
            },
            "",
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Failures are reported in the test output; no regression files in the tree.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the names and strings, a point is exactly one line, and splitting it at
        /// unescaped spaces outside quotes gives the three sections of line protocol.
        #[test]
        fn a_point_is_one_well_formed_line(
            station in "\\PC{0,20}",
            message in "\\PC{0,40}",
            value in -1.0e9f64..1.0e9,
        ) {
            let mut out = String::new();
            encode(
                &Point {
                    measurement: "wq_alert",
                    tags: vec![("station", &station)],
                    fields: vec![("value", Field::Float(value)), ("message", Field::Str(&message))],
                    ts_ms: 1,
                },
                &mut out,
            );
            prop_assert!(out.ends_with('\n'));
            prop_assert_eq!(out.matches('\n').count(), 1);
            // Quotes delimit strings only in the field section; in tags they are literal.
            let mut sections = 1;
            let (mut escaped, mut quoted) = (false, false);
            for c in out.trim_end().chars() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' if sections == 2 => quoted = !quoted,
                    ' ' if !quoted => sections += 1,
                    _ => {}
                }
            }
            prop_assert_eq!(sections, 3, "{}", out);
        }

        /// Integers and timestamps are written as `format!` writes them.
        #[test]
        fn integers_as_format_writes_them(n in any::<i64>()) {
            let mut out = String::new();
            push_int(&mut out, n);
            prop_assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn integer_extremes() {
        for n in [i64::MIN, i64::MAX, -1, 0, 9, 10] {
            let mut out = String::new();
            push_int(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
