//! Go `time.Duration` strings (`90s`, `1m30s`, `1.5h`, `300ms`), as `metav1.Duration` fields carry
//! them. No I/O.

use std::time::Duration;

/// Why a duration string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty, a missing unit, an unknown unit or a bad number.
    #[error("invalid duration {0:?}: expected a Go duration such as \"90s\" or \"1m30s\"")]
    Invalid(String),
    /// A leading minus sign.
    #[error("duration {0:?} is negative")]
    Negative(String),
    /// More than about 292 years.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses a Go duration. `"0"` alone needs no unit, as in Go.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    // One optional sign, as in Go.
    if let Some(magnitude) = text.strip_prefix('-') {
        // Go accepts "-0s"; any other negative duration is meaningless for a timer.
        return match parse_unsigned(text, magnitude)? {
            d if d.is_zero() => Ok(d),
            _ => Err(DurationError::Negative(text.to_owned())),
        };
    }
    parse_unsigned(text, text.strip_prefix('+').unwrap_or(text))
}

/// Parses `rest`, the part of `text` after any sign.
fn parse_unsigned(text: &str, mut rest: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(invalid()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let mut nanos = whole
            .checked_mul(unit_nanos)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        let mut scale = unit_nanos;
        for digit in fraction.chars() {
            scale /= 10;
            let digit = u128::from(digit.to_digit(10).ok_or_else(invalid)?);
            nanos += digit * scale;
        }
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        rest = tail;
    }
    // Go's Duration is an int64 of nanoseconds.
    if total_nanos > i64::MAX as u128 {
        return Err(DurationError::Overflow(text.to_owned()));
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000)
        .map_err(|_| DurationError::Overflow(text.to_owned()))?;
    let sub = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_forms_parse() {
        let cases = [
            ("0", Duration::ZERO),
            ("90s", Duration::from_secs(90)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("300ms", Duration::from_millis(300)),
            ("2h45m", Duration::from_secs(9900)),
            ("1us", Duration::from_micros(1)),
            ("1µs", Duration::from_micros(1)),
            (".5s", Duration::from_millis(500)),
            ("-0s", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for text in ["", "90", "s", "1x", "1.2.3s", "1 s", "--1s", ".", "+-1s"] {
            assert!(
                matches!(parse_go_duration(text), Err(DurationError::Invalid(_))),
                "{text}"
            );
        }
        assert!(matches!(
            parse_go_duration("-5s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_go_duration("2562048h"),
            Err(DurationError::Overflow(_))
        ));
    }
}
