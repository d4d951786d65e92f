//! Parsing of the two unit-bearing string formats operators write in the config: durations
//! ("500ms", "30s", "4h", "1h30m", "7d") and sizes ("256KiB", "2GiB", "10MB").
//!
//! Fed by `config` and the adapters' sections; pure and total, each error says what was expected.

use std::time::Duration;

/// Why a unit-bearing string was refused; its text is the message shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not `<integer><unit>` parts with units ms, s, m, h, d.
    #[error("{0:?} is not a duration like \"30s\", \"10m\", \"4h\" or \"1h30m\"")]
    Duration(String),
    /// Not an integer with one of the units B, KB, MB, GB, KiB, MiB, GiB, or too large.
    #[error("{0:?} is not a size like \"256KiB\", \"2GiB\" or \"10MB\"")]
    Size(String),
}

/// Parses a duration made of one or more `<integer><unit>` parts, units ms, s, m, h, d.
///
/// # Errors
/// [`UnitError::Duration`] for anything else, the empty string included.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let expected = || UnitError::Duration(text.to_owned());
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(expected()),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Parses a size: an integer with an optional unit B, KB, MB, GB (powers of 1000) or KiB,
/// MiB, GiB (powers of 1024).
///
/// # Errors
/// [`UnitError::Size`] for anything else, or when the bytes overflow a `u64`.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let expected = || UnitError::Size(text.to_owned());
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(expected());
    }
    let n: u64 = t[..digits].parse().map_err(|_| expected())?;
    let factor: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(expected()),
    };
    n.checked_mul(factor).ok_or_else(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table: &[(&str, Option<u64>)] = &[
            ("500ms", Some(500)),
            ("30s", Some(30_000)),
            ("10m", Some(600_000)),
            ("4h", Some(14_400_000)),
            ("1h30m", Some(5_400_000)),
            ("7d", Some(604_800_000)),
            ("", None),
            ("4", None),
            ("h", None),
            ("4 hours", None),
            ("-1s", None),
        ];
        for &(text, ms) in table {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_millis() as u64),
                ms,
                "{text:?}"
            );
        }
    }

    #[test]
    fn sizes() {
        let table: &[(&str, Option<u64>)] = &[
            ("256KiB", Some(262_144)),
            ("2GiB", Some(2_147_483_648)),
            ("10MB", Some(10_000_000)),
            ("100", Some(100)),
            ("1TiB", None),
            ("KiB", None),
            ("99999999999999GiB", None),
        ];
        for &(text, bytes) in table {
            assert_eq!(parse_size(text).ok(), bytes, "{text:?}");
        }
    }
}
