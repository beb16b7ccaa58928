//! BGP community values as BGPAdvertisements and Community aliases write them: `A:B` (RFC 1997) and
//! `large:A:B:C` (RFC 8092), and how a BGPAdvertisement's entry is told apart from an alias. No I/O.
//!
//! MetalLB's rules (internal/bgp/community): split on `:`; two parts are a standard community of
//! two decimal 16-bit numbers; four parts are a large community of three decimal 32-bit numbers
//! after the marker `large`; numbers are plain digits (Go's `strconv.ParseUint`, base 10: no sign,
//! no spaces). Any other shape is an alias name. One rule is stricter than MetalLB's: text that
//! starts with `large:` is always a large community, so `large:1:2` is an error here, where
//! MetalLB would take it for the name of an alias that nobody can define by accident.

use std::fmt;

/// A community value to attach to announced prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BgpCommunity {
    /// RFC 1997: two 16-bit halves.
    Standard(u16, u16),
    /// RFC 8092: global administrator and two local data parts, 32 bits each.
    Large(u32, u32, u32),
}

/// Why a string is not a community value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    /// `A:B` where a part is not a 16-bit number.
    #[error("invalid community value {0:?}: both parts of A:B must be numbers from 0 to 65535")]
    InvalidStandard(String),
    /// Text led by `large:` that is not `large:A:B:C` with three 32-bit numbers.
    #[error(
        "invalid large community value {0:?}: a large community is large:A:B:C with A, B and C numbers from 0 to 4294967295"
    )]
    InvalidLarge(String),
    /// Four parts that do not start with `large`.
    #[error("invalid community value {0:?}: a 4-part community must start with \"large:\"")]
    MissingLargePrefix(String),
    /// Not shaped like a community value where only a value may stand (an alias definition).
    #[error("{0:?} is not a community value (A:B or large:A:B:C)")]
    NotAValue(String),
    /// Not shaped like a community at all: possibly an alias that does not exist.
    #[error("{0:?} is neither a community value (A:B, large:A:B:C) nor a known Community alias")]
    UnknownAlias(String),
    /// An alias name led by `large:`, which BGPAdvertisements always read as a value.
    #[error(
        "alias name {0:?} starts with \"large:\", which always means a large community value; choose another name"
    )]
    LargePrefixedAlias(String),
}

impl CommunityError {
    /// Stable CamelCase name for metrics, Events and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CommunityError::InvalidStandard(_) => "InvalidCommunity",
            CommunityError::InvalidLarge(_) => "InvalidLargeCommunity",
            CommunityError::MissingLargePrefix(_) | CommunityError::NotAValue(_) => {
                "InvalidCommunity"
            }
            CommunityError::UnknownAlias(_) => "UnknownCommunityAlias",
            CommunityError::LargePrefixedAlias(_) => "InvalidCommunityAlias",
        }
    }

    /// An unknown alias may become valid once its Community object arrives.
    pub fn is_transient(&self) -> bool {
        matches!(self, CommunityError::UnknownAlias(_))
    }
}

impl BgpCommunity {
    /// Parses a literal value (see the module doc); any shape that is not a value is taken for an
    /// alias name ([`CommunityError::UnknownAlias`]).
    pub fn parse(text: &str) -> Result<Self, CommunityError> {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            [LARGE_MARKER, a, b, c] => match (number(a), number(b), number(c)) {
                (Some(a), Some(b), Some(c)) => Ok(BgpCommunity::Large(a, b, c)),
                _ => Err(CommunityError::InvalidLarge(text.to_owned())),
            },
            _ if is_large_literal(text) => Err(CommunityError::InvalidLarge(text.to_owned())),
            [a, b] => match (number(a), number(b)) {
                (Some(a), Some(b)) => Ok(BgpCommunity::Standard(a, b)),
                _ => Err(CommunityError::InvalidStandard(text.to_owned())),
            },
            [_, _, _, _] => Err(CommunityError::MissingLargePrefix(text.to_owned())),
            _ => Err(CommunityError::UnknownAlias(text.to_owned())),
        }
    }

    /// A BGPAdvertisement's `communities` entry: an alias (looked up with `alias`) or a value.
    /// Text led by `large:` is never looked up, and an alias wins over a standard value of the
    /// same spelling, as in MetalLB.
    pub fn resolve(
        text: &str,
        alias: impl FnOnce(&str) -> Option<BgpCommunity>,
    ) -> Result<Self, CommunityError> {
        if is_large_literal(text) {
            return BgpCommunity::parse(text);
        }
        alias(text).map_or_else(|| BgpCommunity::parse(text), Ok)
    }

    /// Whether the value is an RFC 8092 large community.
    pub fn is_large(&self) -> bool {
        matches!(self, BgpCommunity::Large(..))
    }
}

/// The marker that makes four parts a large community.
const LARGE_MARKER: &str = "large";

/// Whether `text` claims to be a large community value.
pub fn is_large_literal(text: &str) -> bool {
    text.strip_prefix(LARGE_MARKER)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// A decimal number the way Go's `strconv.ParseUint(s, 10, bits)` reads one: digits only.
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for BgpCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BgpCommunity::Standard(a, b) => write!(f, "{a}:{b}"),
            BgpCommunity::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_large_values_parse_and_print_back() {
        for (text, want) in [
            ("65000:100", BgpCommunity::Standard(65000, 100)),
            ("0:0", BgpCommunity::Standard(0, 0)),
            (
                "large:4200000000:1:2",
                BgpCommunity::Large(4_200_000_000, 1, 2),
            ),
        ] {
            assert_eq!(BgpCommunity::parse(text), Ok(want));
            assert_eq!(want.to_string(), text);
        }
    }

    #[test]
    fn out_of_range_parts_are_errors_not_aliases() {
        assert!(matches!(
            BgpCommunity::parse("65536:1"),
            Err(CommunityError::InvalidStandard(_))
        ));
        assert!(matches!(
            BgpCommunity::parse("a:1"),
            Err(CommunityError::InvalidStandard(_))
        ));
        assert!(matches!(
            BgpCommunity::parse("large:1:2:4294967296"),
            Err(CommunityError::InvalidLarge(_))
        ));
        assert!(matches!(
            BgpCommunity::parse("1:2:3:4"),
            Err(CommunityError::MissingLargePrefix(_))
        ));
    }

    #[test]
    fn other_shapes_are_treated_as_unknown_aliases() {
        for text in ["no-advertise", "a:b:c", ""] {
            let err = BgpCommunity::parse(text).expect_err(text);
            assert!(err.is_transient(), "{text}: {err}");
        }
    }

    #[test]
    fn text_led_by_large_is_a_large_community_or_an_error_never_an_alias() {
        for text in [
            "large:1:2",
            "large:1:2:3:4",
            "large:",
            "large:1::3",
            "large:a:b:c",
        ] {
            let err = BgpCommunity::parse(text).expect_err(text);
            assert_eq!(err, CommunityError::InvalidLarge(text.to_owned()));
            assert!(!err.is_transient(), "{text}");
            let looked_up = BgpCommunity::resolve(text, |_| Some(BgpCommunity::Standard(1, 1)));
            assert_eq!(looked_up, Err(err), "{text} is not looked up as an alias");
        }
        assert_eq!(
            BgpCommunity::resolve("large:1:2:3", |_| Some(BgpCommunity::Standard(1, 1))),
            Ok(BgpCommunity::Large(1, 2, 3))
        );
    }

    #[test]
    fn numbers_are_plain_decimal_digits_as_go_parses_them() {
        for text in [
            "+1:2",
            "1:-2",
            " 1:2",
            "1:2 ",
            "1_0:2",
            "large:+1:2:3",
            "0x10:1",
        ] {
            assert!(
                BgpCommunity::parse(text).is_err_and(|e| !e.is_transient()),
                "{text}"
            );
        }
        assert_eq!(
            BgpCommunity::parse("007:010"),
            Ok(BgpCommunity::Standard(7, 10))
        );
        assert_eq!(
            BgpCommunity::parse("large:0:4294967295:01"),
            Ok(BgpCommunity::Large(0, u32::MAX, 1))
        );
    }

    #[test]
    fn an_alias_wins_over_a_standard_value_and_other_names_are_looked_up() {
        let alias = |name: &str| (name != "unknown").then_some(BgpCommunity::Standard(9, 9));
        assert_eq!(
            BgpCommunity::resolve("65000:1", alias),
            Ok(BgpCommunity::Standard(9, 9))
        );
        assert_eq!(
            BgpCommunity::resolve("NO_EXPORT", alias),
            Ok(BgpCommunity::Standard(9, 9))
        );
        assert_eq!(
            BgpCommunity::resolve("unknown", alias),
            Err(CommunityError::UnknownAlias("unknown".into()))
        );
        assert_eq!(
            BgpCommunity::resolve("65000:1", |_| None),
            Ok(BgpCommunity::Standard(65000, 1))
        );
    }
}
