//! Evaluation profiles (WATER.md §2.6): the full single-factor method, and the national
//! real-time publication's rule, which judges pH, DO, CODMn, NH3-N and TP only, on values
//! rounded half-to-even (GB/T 8170, 四舍六入五成双) to the published precision.
//!
//! Fed by the judgement of each reading (`reading::judge`) and by `assess --profile`. Pure.
//! Rounding works on the decimal value as written, not on its binary float: the shortest
//! decimal that round-trips the float (what a station wrote in its JSON or frame) is rounded
//! digit by digit, so 5.995 at 2 decimals is 6.00 although the float 5.995 is 5.99499999….

use super::param::Param;

/// Published decimals per parameter of the national real-time profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    pub ph: u32,
    pub do_: u32,
    pub codmn: u32,
    pub nh3n: u32,
    pub tp: u32,
}

impl Default for Precision {
    /// The publication's precision since early 2026.
    fn default() -> Self {
        Precision {
            ph: 2,
            do_: 2,
            codmn: 2,
            nh3n: 3,
            tp: 3,
        }
    }
}

impl Precision {
    /// The 2025 pages' precision.
    pub const Y2025: Precision = Precision {
        ph: 0,
        do_: 1,
        codmn: 1,
        nh3n: 2,
        tp: 3,
    };

    /// The decimals of a parameter the profile judges; `None` for the others.
    pub fn of(&self, p: Param) -> Option<u32> {
        match p {
            Param::Ph => Some(self.ph),
            Param::Do => Some(self.do_),
            Param::Codmn => Some(self.codmn),
            Param::Nh3n => Some(self.nh3n),
            Param::Tp => Some(self.tp),
            _ => None,
        }
    }

    pub fn set(&mut self, p: Param, decimals: u32) -> bool {
        let slot = match p {
            Param::Ph => &mut self.ph,
            Param::Do => &mut self.do_,
            Param::Codmn => &mut self.codmn,
            Param::Nh3n => &mut self.nh3n,
            Param::Tp => &mut self.tp,
            _ => return false,
        };
        *slot = decimals;
        true
    }
}

/// Rounds `value` half-to-even at `decimals`, on its shortest decimal representation.
pub fn round_half_even(value: f64, decimals: u32) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let text = format!("{}", value.abs());
    let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
    let d = decimals as usize;
    if frac_part.len() <= d {
        return value;
    }
    let mut kept: Vec<u8> = int_part.bytes().chain(frac_part[..d].bytes()).collect();
    let dropped = &frac_part.as_bytes()[d..];
    let first = dropped[0];
    let rest_nonzero = dropped[1..].iter().any(|&b| b != b'0');
    let last_odd = kept.last().is_some_and(|b| (b - b'0') % 2 == 1);
    let up = first > b'5' || (first == b'5' && (rest_nonzero || last_odd));
    if up {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let split = kept.len() - d;
    let digits = String::from_utf8_lossy(&kept).into_owned();
    let rebuilt = if d == 0 {
        digits
    } else {
        format!("{}.{}", &digits[..split], &digits[split..])
    };
    let magnitude: f64 = rebuilt.parse().unwrap_or(value.abs());
    magnitude.copysign(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_the_written_decimal_half_to_even() {
        let table: &[(f64, u32, f64)] = &[
            (5.995, 2, 6.00),
            (5.994, 2, 5.99),
            (0.0125, 2, 0.01),
            (0.0135, 3, 0.014),
            (0.1005, 3, 0.100),
            (0.1015, 3, 0.102),
            (5.994, 1, 6.0),
            (9.02, 0, 9.0),
            (9.5, 0, 10.0),
            (8.5, 0, 8.0),
            (9.6, 0, 10.0),
            (99.95, 1, 100.0),
            (0.32, 3, 0.32),
            (-2.25, 1, -2.2),
            (7.0, 2, 7.0),
        ];
        for &(v, d, expected) in table {
            assert_eq!(round_half_even(v, d), expected, "{v} at {d}");
        }
    }
}
