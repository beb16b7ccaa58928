//! Refusing replayed gossip datagrams: a datagram is accepted only when its send time (under
//! its tag, see [`super::auth`]) lies within [`WINDOW`] of our clock, and only once: the tags
//! accepted within the window are remembered.
//!
//! The memory is bounded: when [`Replay`] holds `capacity` tags it forgets the oldest and from
//! then on refuses everything sent at or before that one's time (it could no longer tell a
//! replay of it), so the bound never lets a replay through; it only narrows the window while
//! traffic is that heavy.
//!
//! No I/O, no clock: the time comes in as a value.

use std::collections::BTreeSet;
use std::time::Duration;

use super::auth::{AuthError, Tag};

/// How far a datagram's send time may be from our clock, either way. Clocks in a cluster are
/// NTP-synced (within milliseconds); 5 s tolerates a clock stepping or a slow NTP start, and
/// costs about 500 remembered tags at the LAN budget's ~100 datagrams/s (a replay of a
/// datagram within the window is refused as a duplicate, so a wider window costs memory, not
/// safety).
pub const WINDOW: Duration = Duration::from_secs(5);
/// Tags remembered at most: 16 times the traffic expected within [`WINDOW`].
pub const CAPACITY: usize = 8192;

/// The tags accepted lately.
#[derive(Debug, Clone)]
pub struct Replay {
    window_ms: u64,
    capacity: usize,
    /// (send time, tag) of the datagrams accepted whose send time is still within the window.
    seen: BTreeSet<(u64, Tag)>,
    /// Nothing sent at or before this time is accepted: the send time of the last tag forgotten
    /// to keep within `capacity`.
    forgot_up_to: Option<u64>,
}

impl Default for Replay {
    fn default() -> Self {
        Replay::new(WINDOW, CAPACITY)
    }
}

impl Replay {
    /// Accepts send times within `window` of the clock, remembering up to `capacity` tags.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Replay {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
            seen: BTreeSet::new(),
            forgot_up_to: None,
        }
    }

    /// The replay window.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// Tags remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether an authentic datagram sent at `sent_unix_ms` with `tag` may be taken at
    /// `now_unix_ms`; if so it is remembered, and the same one is refused from then on.
    pub fn check(
        &mut self,
        now_unix_ms: u64,
        sent_unix_ms: u64,
        tag: Tag,
    ) -> Result<(), AuthError> {
        if sent_unix_ms > now_unix_ms.saturating_add(self.window_ms) {
            return Err(AuthError::FromFuture {
                ahead_ms: sent_unix_ms - now_unix_ms,
            });
        }
        let age_ms = now_unix_ms.saturating_sub(sent_unix_ms);
        let oldest = now_unix_ms.saturating_sub(self.window_ms);
        if sent_unix_ms < oldest || self.forgot_up_to.is_some_and(|t| sent_unix_ms <= t) {
            return Err(AuthError::Stale { age_ms });
        }
        // Tags sent before the window can no longer be replayed: forget them.
        self.seen = self.seen.split_off(&(oldest, [0; super::auth::TAG_LEN]));
        if self.seen.contains(&(sent_unix_ms, tag)) {
            return Err(AuthError::Duplicate);
        }
        if self.seen.len() >= self.capacity
            && let Some((forgotten, _)) = self.seen.pop_first()
        {
            self.forgot_up_to = Some(self.forgot_up_to.map_or(forgotten, |t| t.max(forgotten)));
            if sent_unix_ms <= forgotten {
                return Err(AuthError::Stale { age_ms });
            }
        }
        self.seen.insert((sent_unix_ms, tag));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn tag(n: u8) -> Tag {
        [n; 16]
    }

    #[test]
    fn a_datagram_is_taken_once_and_its_replay_is_a_duplicate() {
        let mut replay = Replay::default();
        assert_eq!(replay.check(NOW, NOW - 3, tag(1)), Ok(()));
        assert_eq!(
            replay.check(NOW + 1_000, NOW - 3, tag(1)),
            Err(AuthError::Duplicate)
        );
        assert_eq!(
            replay.check(NOW + 1_000, NOW - 3, tag(2)),
            Ok(()),
            "another datagram sent in the same millisecond"
        );
    }

    #[test]
    fn a_datagram_sent_outside_the_window_is_refused_either_way() {
        let mut replay = Replay::default();
        assert_eq!(
            replay.check(NOW, NOW - 5_001, tag(1)),
            Err(AuthError::Stale { age_ms: 5_001 })
        );
        assert_eq!(
            replay.check(NOW, NOW + 5_001, tag(1)),
            Err(AuthError::FromFuture { ahead_ms: 5_001 })
        );
        assert_eq!(replay.check(NOW, NOW - 5_000, tag(1)), Ok(()));
        assert_eq!(replay.check(NOW, NOW + 5_000, tag(2)), Ok(()));
    }

    #[test]
    fn a_replay_after_the_window_is_stale_and_tags_past_it_are_forgotten() {
        let mut replay = Replay::default();
        assert_eq!(replay.check(NOW, NOW, tag(1)), Ok(()));
        assert_eq!(
            replay.check(NOW + 6_000, NOW, tag(1)),
            Err(AuthError::Stale { age_ms: 6_000 })
        );
        assert_eq!(replay.check(NOW + 6_000, NOW + 6_000, tag(2)), Ok(()));
        assert_eq!(replay.len(), 1, "the first tag is out of the window");
    }

    #[test]
    fn when_full_the_oldest_tag_is_forgotten_and_nothing_that_old_is_taken_again() {
        let mut replay = Replay::new(WINDOW, 3);
        for (i, sent) in [NOW - 30, NOW - 20, NOW - 10].into_iter().enumerate() {
            assert_eq!(replay.check(NOW, sent, tag(i as u8)), Ok(()));
        }
        assert_eq!(replay.check(NOW, NOW, tag(9)), Ok(()), "evicts NOW - 30");
        assert_eq!(replay.len(), 3);
        assert_eq!(
            replay.check(NOW, NOW - 30, tag(0)),
            Err(AuthError::Stale { age_ms: 30 }),
            "the forgotten datagram cannot be replayed"
        );
        assert_eq!(
            replay.check(NOW, NOW - 35, tag(7)),
            Err(AuthError::Stale { age_ms: 35 }),
            "nor anything older"
        );
        assert_eq!(
            replay.check(NOW, NOW - 15, tag(8)),
            Ok(()),
            "newer ones are taken (evicting NOW - 20)"
        );
        assert_eq!(
            replay.check(NOW, NOW - 20, tag(1)),
            Err(AuthError::Stale { age_ms: 20 })
        );
    }

    #[test]
    fn a_full_cache_refuses_a_datagram_older_than_all_it_holds() {
        let mut replay = Replay::new(WINDOW, 2);
        assert_eq!(replay.check(NOW, NOW - 10, tag(1)), Ok(()));
        assert_eq!(replay.check(NOW, NOW - 5, tag(2)), Ok(()));
        assert_eq!(
            replay.check(NOW, NOW - 20, tag(3)),
            Err(AuthError::Stale { age_ms: 20 }),
            "taking it would mean forgetting a newer tag than itself"
        );
    }

    proptest! {
        /// Whatever the order, clock and capacity: a (time, tag) is never accepted twice, and
        /// nothing outside the window is accepted.
        #[test]
        fn no_datagram_is_accepted_twice_nor_outside_the_window(
            capacity in 1usize..6,
            steps in proptest::collection::vec((0u64..12_000, 0u64..12_000, 0u8..4), 1..60),
        ) {
            let mut replay = Replay::new(WINDOW, capacity);
            let mut accepted = BTreeSet::new();
            let mut now = NOW;
            for (advance, sent_offset, t) in steps {
                now += advance / 20;
                let sent = now + 6_000 - sent_offset;
                let result = replay.check(now, sent, tag(t));
                if result.is_ok() {
                    prop_assert!(accepted.insert((sent, t)), "accepted twice");
                    prop_assert!(sent + 5_000 >= now && sent <= now + 5_000);
                }
                prop_assert!(replay.len() <= capacity);
            }
        }
    }
}
