//! MetalLB's `BFDProfile` fields as the BFD task takes them, with MetalLB's defaults and bounds,
//! and the checks that turn one into session parameters.
//!
//! Pure. The speaker resolves the Kubernetes object (`ferrolb_api::config::BfdProfile`) into this
//! value; errors name the spec field so that the speaker can name the object too.

use std::time::Duration;

use super::error::ProfileError;
use super::fsm::Params;

/// MetalLB's bounds for `receiveInterval` and `transmitInterval`, in milliseconds.
pub const INTERVAL_MS: (u64, u64) = (10, 60_000);
/// MetalLB's bounds for `detectMultiplier`.
pub const DETECT_MULTIPLIER: (u64, u64) = (2, 255);
/// MetalLB's bounds for `minimumTtl`.
pub const MINIMUM_TTL: (u64, u64) = (1, 254);

/// The timers of one session, as a `BFDProfile` states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// `receiveInterval`: the slowest rate we accept packets at (our Required Min RX).
    pub receive_interval: Duration,
    /// `transmitInterval`: how often we would like to send (our Desired Min TX).
    pub transmit_interval: Duration,
    /// `detectMultiplier`: packets missed before the peer declares us down.
    pub detect_multiplier: u8,
    /// `echoInterval`: unused (echo mode is refused).
    pub echo_interval: Duration,
    /// `echoMode`: refused, FerroLB runs no echo function.
    pub echo_mode: bool,
    /// `passiveMode`: send nothing until the peer has spoken.
    pub passive_mode: bool,
    /// `minimumTtl`: multihop only, the least TTL accepted on received packets.
    pub minimum_ttl: u8,
}

impl Default for Profile {
    /// MetalLB's defaults: 300 ms both ways, multiplier 3, echo 50 ms and off, active,
    /// minimum TTL 254.
    fn default() -> Self {
        Self {
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            echo_interval: Duration::from_millis(50),
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: 254,
        }
    }
}

impl Profile {
    /// The session parameters, or the first field FerroLB cannot run.
    pub fn params(&self) -> Result<Params, ProfileError> {
        if self.echo_mode {
            return Err(ProfileError::EchoModeUnsupported { field: "echoMode" });
        }
        check_ms("receiveInterval", self.receive_interval)?;
        check_ms("transmitInterval", self.transmit_interval)?;
        check(
            "detectMultiplier",
            self.detect_multiplier.into(),
            DETECT_MULTIPLIER,
        )?;
        check("minimumTtl", self.minimum_ttl.into(), MINIMUM_TTL)?;
        Ok(Params {
            desired_min_tx: self.transmit_interval,
            required_min_rx: self.receive_interval,
            detect_mult: self.detect_multiplier,
            is_passive: self.passive_mode,
        })
    }
}

fn check_ms(field: &'static str, d: Duration) -> Result<(), ProfileError> {
    // Whole milliseconds only, as the CRD has them; a fraction would be lost in the check.
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if Duration::from_millis(ms) != d {
        return Err(ProfileError::OutOfRange {
            field,
            value: ms,
            min: INTERVAL_MS.0,
            max: INTERVAL_MS.1,
        });
    }
    check(field, ms, INTERVAL_MS)
}

fn check(field: &'static str, value: u64, (min, max): (u64, u64)) -> Result<(), ProfileError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ProfileError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metallb_defaults_give_300_ms_times_3() {
        let p = Profile::default().params().expect("defaults are valid");
        assert_eq!(p.desired_min_tx, Duration::from_millis(300));
        assert_eq!(p.required_min_rx, Duration::from_millis(300));
        assert_eq!(p.detect_mult, 3);
        assert!(!p.is_passive);
    }

    #[test]
    fn echo_mode_is_refused_naming_the_field() {
        let err = Profile {
            echo_mode: true,
            ..Profile::default()
        }
        .params()
        .expect_err("echo is not implemented");
        assert_eq!(err, ProfileError::EchoModeUnsupported { field: "echoMode" });
        assert!(err.to_string().contains("echoMode"), "{err}");
    }

    #[test]
    fn values_outside_metallb_bounds_are_refused_naming_the_field() {
        let rows: [(&str, Profile); 5] = [
            (
                "receiveInterval",
                Profile {
                    receive_interval: Duration::from_millis(9),
                    ..Profile::default()
                },
            ),
            (
                "transmitInterval",
                Profile {
                    transmit_interval: Duration::from_millis(60_001),
                    ..Profile::default()
                },
            ),
            (
                "transmitInterval",
                Profile {
                    transmit_interval: Duration::from_micros(300_500),
                    ..Profile::default()
                },
            ),
            (
                "detectMultiplier",
                Profile {
                    detect_multiplier: 1,
                    ..Profile::default()
                },
            ),
            (
                "minimumTtl",
                Profile {
                    minimum_ttl: 255,
                    ..Profile::default()
                },
            ),
        ];
        for (field, profile) in rows {
            match profile.params() {
                Err(ProfileError::OutOfRange { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
