//! BGP community values as BGPAdvertisements and Community aliases write them: `A:B` (RFC 1997) and
//! `large:A:B:C` (RFC 8092). No I/O.

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
    /// `large:A:B:C` where a part is not a 32-bit number.
    #[error(
        "invalid large community value {0:?}: A, B and C of large:A:B:C must be numbers from 0 to 4294967295"
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
        }
    }

    /// An unknown alias may become valid once its Community object arrives.
    pub fn is_transient(&self) -> bool {
        matches!(self, CommunityError::UnknownAlias(_))
    }
}

impl BgpCommunity {
    /// Parses a literal value, MetalLB's way: 2 parts → standard, 4 parts led by `large` → large;
    /// any other shape is taken for an alias name.
    pub fn parse(text: &str) -> Result<Self, CommunityError> {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            [a, b] => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => Ok(BgpCommunity::Standard(a, b)),
                _ => Err(CommunityError::InvalidStandard(text.to_owned())),
            },
            ["large", a, b, c] => match (a.parse::<u32>(), b.parse::<u32>(), c.parse::<u32>()) {
                (Ok(a), Ok(b), Ok(c)) => Ok(BgpCommunity::Large(a, b, c)),
                _ => Err(CommunityError::InvalidLarge(text.to_owned())),
            },
            [_, _, _, _] => Err(CommunityError::MissingLargePrefix(text.to_owned())),
            _ => Err(CommunityError::UnknownAlias(text.to_owned())),
        }
    }

    /// Whether the value is an RFC 8092 large community.
    pub fn is_large(&self) -> bool {
        matches!(self, BgpCommunity::Large(..))
    }
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
}
