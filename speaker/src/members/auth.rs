//! Authenticated gossip datagrams: every datagram carries an HMAC-SHA256 tag made with the
//! primary key from the memberlist Secret over its send time and its payload, so only speakers
//! holding a key can join or declare anyone dead, and a captured datagram cannot be sent again
//! later ([`super::replay`] judges the time and duplicates).
//!
//! Wire layout (format 2):
//! ```text
//!  0     3   4                   12          16                 32              n
//! +-----+---+--------------------+-----------+------------------+---------------+
//! | FLG | 2 | sent_unix_ms (u64) | seq (u32) | tag (16 bytes)   | foca payload  |
//! +-----+---+--------------------+-----------+------------------+---------------+
//!   tag = first 16 bytes of HMAC-SHA256(key, bytes 0..16 || payload); integers big-endian
//! ```
//! `seq` counts the sender's datagrams, so two sends of the same payload in the same
//! millisecond (foca does that, e.g. two announces to one seed) differ, and a datagram seen
//! twice is a replay or a network duplicate, never an honest resend.
//! Format 1 (FerroLB before replay protection) was `tag || payload` with no header: its first
//! bytes are a random tag, so it is told apart by the missing magic (`FLG`), with a false match
//! once in 2^24, and refused as [`AuthError::LegacyFormat`].
//!
//! Key rotation: datagrams are sealed with the primary key and opened with any accepted key
//! (see [`Keys`]). No I/O, no clock: the send time comes in as a value.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of the truncated tag (128 bits, as RFC 4868 allows for HMAC-SHA-256).
pub const TAG_LEN: usize = 16;
/// Marks a FerroLB gossip datagram of format 2 or later.
pub const MAGIC: [u8; 3] = *b"FLG";
/// The format this code writes and reads.
pub const VERSION: u8 = 2;
/// Bytes before the payload: magic, version, send time, sequence number, tag.
pub const HEADER_LEN: usize = SIGNED_HEADER_LEN + TAG_LEN;
/// The part of the header the tag covers.
const SIGNED_HEADER_LEN: usize = MAGIC.len() + 1 + 8 + 4;

/// The tag of one datagram.
pub type Tag = [u8; TAG_LEN];

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Shorter than the header.
    #[error("datagram shorter than its header")]
    Truncated,
    /// No magic: the format of FerroLB before replay protection (or not gossip at all).
    #[error("datagram without the FLG magic: an older FerroLB speaker (format 1) or not gossip")]
    LegacyFormat,
    /// The magic with a version this code does not know: a newer FerroLB.
    #[error("gossip format {0} is not supported (this speaker reads format {VERSION})")]
    UnsupportedVersion(u8),
    /// No accepted key makes this tag: another key, or tampering.
    #[error("authentication tag does not match any accepted key")]
    BadTag,
    /// Sent longer ago than the replay window allows (or the sender's clock is behind).
    #[error("sent {age_ms} ms ago, outside the replay window")]
    Stale {
        /// How long ago, by our clock.
        age_ms: u64,
    },
    /// Sent later than now by more than the window allows: the sender's clock is ahead.
    #[error("sent {ahead_ms} ms in the future, outside the replay window")]
    FromFuture {
        /// How far ahead of our clock.
        ahead_ms: u64,
    },
    /// The same datagram was accepted before: a replay (or the network duplicated it).
    #[error("datagram already received")]
    Duplicate,
}

impl AuthError {
    /// Stable CamelCase reason for the drop counter.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Truncated => "Truncated",
            AuthError::LegacyFormat => "LegacyFormat",
            AuthError::UnsupportedVersion(_) => "UnsupportedVersion",
            AuthError::BadTag => "BadTag",
            AuthError::Stale { .. } => "Stale",
            AuthError::FromFuture { .. } => "FromFuture",
            AuthError::Duplicate => "Duplicate",
        }
    }

    /// Every reason, for counters that show each one from the start.
    pub const REASONS: [&'static str; 7] = [
        "Truncated",
        "LegacyFormat",
        "UnsupportedVersion",
        "BadTag",
        "Stale",
        "FromFuture",
        "Duplicate",
    ];
}

/// One gossip key.
#[derive(Clone, PartialEq, Eq)]
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

    fn tag(&self, header: &[u8], payload: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(header);
        mac.update(payload);
        mac
    }
}

/// The keys of one speaker: datagrams are sealed with `primary` and opened with it or any of
/// `accepted`.
///
/// Rolling rotation from key A to key B, each step rolled out to every speaker (update the
/// Secret, restart the speakers one at a time) before the next begins:
/// 1. add B as an accepted key (primary A, accepted B);
/// 2. make B the primary and keep A accepted (primary B, accepted A);
/// 3. remove A (primary B).
///
/// Two speakers one step apart always understand each other (each sends with a key the other
/// accepts), so the membership never splits during the rotation; skipping a step does split it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    primary: Key,
    accepted: Vec<Key>,
}

impl From<Key> for Keys {
    fn from(primary: Key) -> Self {
        Keys::new(primary, Vec::new())
    }
}

/// An authentic datagram, before the replay check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'p> {
    /// The sender's clock when it sealed the datagram (unix ms).
    pub sent_unix_ms: u64,
    /// Its tag: what the replay check remembers.
    pub tag: Tag,
    /// The foca payload.
    pub payload: &'p [u8],
    /// It was sealed with an accepted key other than our primary (a rotation is under way).
    pub is_secondary_key: bool,
}

impl Keys {
    /// Seal with `primary`; open with it or any of `accepted` (duplicates of the primary are
    /// dropped).
    pub fn new(primary: Key, accepted: Vec<Key>) -> Self {
        let mut others: Vec<Key> = Vec::new();
        for key in accepted {
            if key != primary && !others.contains(&key) {
                others.push(key);
            }
        }
        Keys {
            primary,
            accepted: others,
        }
    }

    /// How many keys open datagrams (the primary included).
    pub fn accepted_count(&self) -> usize {
        1 + self.accepted.len()
    }

    /// The datagram carrying `payload`, sealed at `sent_unix_ms` as the sender's datagram
    /// number `seq`, with the primary key.
    pub fn seal(&self, sent_unix_ms: u64, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut packet = Vec::with_capacity(HEADER_LEN + payload.len());
        packet.extend_from_slice(&MAGIC);
        packet.push(VERSION);
        packet.extend_from_slice(&sent_unix_ms.to_be_bytes());
        packet.extend_from_slice(&seq.to_be_bytes());
        let tag = self.primary.tag(&packet, payload).finalize().into_bytes();
        packet.extend_from_slice(&tag[..TAG_LEN]);
        packet.extend_from_slice(payload);
        packet
    }

    /// The parts of a datagram whose tag one of our keys made.
    pub fn open<'p>(&self, packet: &'p [u8]) -> Result<Opened<'p>, AuthError> {
        if packet.len() >= MAGIC.len() && packet[..MAGIC.len()] != MAGIC {
            return Err(AuthError::LegacyFormat);
        }
        let (header, payload) = packet
            .split_at_checked(HEADER_LEN)
            .ok_or(AuthError::Truncated)?;
        let version = header[MAGIC.len()];
        if version != VERSION {
            return Err(AuthError::UnsupportedVersion(version));
        }
        let (signed, tag) = header.split_at(SIGNED_HEADER_LEN);
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&signed[MAGIC.len() + 1..MAGIC.len() + 9]);
        let keys = std::iter::once(&self.primary).chain(&self.accepted);
        for (index, key) in keys.enumerate() {
            if key.tag(signed, payload).verify_truncated_left(tag).is_ok() {
                let mut copied = [0u8; TAG_LEN];
                copied.copy_from_slice(tag);
                return Ok(Opened {
                    sent_unix_ms: u64::from_be_bytes(sent),
                    tag: copied,
                    payload,
                    is_secondary_key: index > 0,
                });
            }
        }
        Err(AuthError::BadTag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(primary: &[u8], accepted: &[&[u8]]) -> Keys {
        Keys::new(
            Key::new(primary),
            accepted.iter().map(|k| Key::new(*k)).collect(),
        )
    }

    #[test]
    fn a_sealed_datagram_opens_with_its_time_and_payload_and_only_with_the_same_key() {
        let key = keys(b"0123456789abcdef", &[]);
        let packet = key.seal(1_700_000_000_123, 0, b"ping");
        let opened = key.open(&packet).expect("authentic");
        assert_eq!(opened.payload, b"ping");
        assert_eq!(opened.sent_unix_ms, 1_700_000_000_123);
        assert!(!opened.is_secondary_key);
        assert_eq!(
            keys(b"another key!!!!!", &[]).open(&packet),
            Err(AuthError::BadTag)
        );
    }

    #[test]
    fn the_send_time_is_under_the_tag() {
        let key = keys(b"k", &[]);
        let mut packet = key.seal(1_000, 0, b"member alive");
        // Moving the send time forward (to get past the replay window) breaks the tag.
        packet[MAGIC.len() + 1 + 7] ^= 0x40;
        assert_eq!(key.open(&packet), Err(AuthError::BadTag));
    }

    #[test]
    fn the_sequence_number_is_under_the_tag_and_tells_two_sends_apart() {
        let key = keys(b"k", &[]);
        let first = key
            .open(&key.seal(9, 1, b"announce"))
            .expect("authentic")
            .tag;
        let second = key
            .open(&key.seal(9, 2, b"announce"))
            .expect("authentic")
            .tag;
        assert_ne!(
            first, second,
            "same payload, same millisecond, two datagrams"
        );
        let mut packet = key.seal(9, 1, b"announce");
        packet[MAGIC.len() + 1 + 8 + 3] ^= 1;
        assert_eq!(key.open(&packet), Err(AuthError::BadTag));
    }

    #[test]
    fn tampered_and_short_datagrams_are_refused() {
        let key = keys(b"k", &[]);
        let mut packet = key.seal(7, 0, b"member alive");
        let last = packet.len() - 1;
        packet[last] ^= 1;
        assert_eq!(key.open(&packet), Err(AuthError::BadTag));
        let whole = key.seal(7, 0, b"");
        assert_eq!(
            key.open(&whole[..HEADER_LEN - 1]),
            Err(AuthError::Truncated)
        );
        assert_eq!(key.open(&whole).map(|o| o.payload), Ok(&b""[..]));
        assert_eq!(key.open(b"FL"), Err(AuthError::Truncated));
    }

    #[test]
    fn the_previous_format_and_a_newer_version_are_told_apart() {
        let key = keys(b"k", &[]);
        // Format 1: a 16-byte tag then the payload (here the tag happens to start with 0x9c).
        let mut legacy = vec![0x9c; TAG_LEN];
        legacy.extend_from_slice(b"payload");
        assert_eq!(key.open(&legacy), Err(AuthError::LegacyFormat));
        let mut newer = key.seal(7, 0, b"payload");
        newer[MAGIC.len()] = 3;
        assert_eq!(key.open(&newer), Err(AuthError::UnsupportedVersion(3)));
    }

    #[test]
    fn any_accepted_key_opens_and_the_primary_seals() {
        let old_and_new = keys(b"old", &[b"new"]);
        let new_only = keys(b"new", &[]);
        let from_new = new_only.seal(5, 0, b"hello");
        let opened = old_and_new.open(&from_new).expect("new is accepted");
        assert!(opened.is_secondary_key, "opened with the accepted key");
        assert_eq!(
            new_only.open(&old_and_new.seal(5, 0, b"hello")),
            Err(AuthError::BadTag),
            "sealed with the primary (old), which new_only does not hold"
        );
    }

    #[test]
    fn keys_repeating_the_primary_or_each_other_count_once() {
        let k = keys(b"a", &[b"a", b"b", b"b"]);
        assert_eq!(k.accepted_count(), 2);
    }

    #[test]
    fn every_reason_is_listed() {
        let all = [
            AuthError::Truncated,
            AuthError::LegacyFormat,
            AuthError::UnsupportedVersion(9),
            AuthError::BadTag,
            AuthError::Stale { age_ms: 1 },
            AuthError::FromFuture { ahead_ms: 1 },
            AuthError::Duplicate,
        ];
        let reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons, AuthError::REASONS);
    }
}
