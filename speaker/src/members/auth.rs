//! Authenticated gossip packets: every datagram carries an HMAC-SHA256 tag made with the key from
//! the memberlist Secret, so only speakers holding the key can join or declare anyone dead.
//!
//! Wire layout:
//! ```text
//!  0               16                                   n
//! +----------------+------------------------------------+
//! | tag (16 bytes) | foca payload                       |
//! +----------------+------------------------------------+
//!   tag = first 16 bytes of HMAC-SHA256(key, payload)
//! ```
//! No I/O.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of the truncated tag (128 bits, as RFC 4868 allows for HMAC-SHA-256).
pub const TAG_LEN: usize = 16;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Shorter than a tag.
    #[error("datagram shorter than its authentication tag")]
    Truncated,
    /// The tag does not match: another key, or tampering.
    #[error("authentication tag does not match")]
    BadTag,
}

impl AuthError {
    /// Stable CamelCase reason for the drop counter.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Truncated => "Truncated",
            AuthError::BadTag => "BadTag",
        }
    }
}

/// The shared gossip key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A key from the Secret's bytes (any length; HMAC hashes long keys).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Key(bytes.into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// Tag and payload, ready to send.
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        let mut packet = Vec::with_capacity(TAG_LEN + payload.len());
        packet.extend_from_slice(&tag[..TAG_LEN]);
        packet.extend_from_slice(payload);
        packet
    }

    /// The payload of an authentic packet.
    pub fn open<'p>(&self, packet: &'p [u8]) -> Result<&'p [u8], AuthError> {
        let (tag, payload) = packet
            .split_at_checked(TAG_LEN)
            .ok_or(AuthError::Truncated)?;
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| AuthError::BadTag)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_packet_opens_with_the_same_key_only() {
        let key = Key::new(*b"0123456789abcdef");
        let packet = key.seal(b"ping");
        assert_eq!(key.open(&packet), Ok(&b"ping"[..]));
        assert_eq!(
            Key::new(*b"another key!!!!!").open(&packet),
            Err(AuthError::BadTag)
        );
    }

    #[test]
    fn tampered_and_short_packets_are_refused() {
        let key = Key::new(*b"k");
        let mut packet = key.seal(b"member alive");
        let last = packet.len() - 1;
        packet[last] ^= 1;
        assert_eq!(key.open(&packet), Err(AuthError::BadTag));
        assert_eq!(key.open(&packet[..TAG_LEN - 1]), Err(AuthError::Truncated));
        assert_eq!(key.open(&key.seal(b"")), Ok(&b""[..]));
    }
}
