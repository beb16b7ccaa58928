//! `client`: how the controller talks to the API server: a read timeout on every call, and
//! watches that the server ends before that timeout could cut an idle one. No call can then
//! hang the reconciler or the elector forever.

use std::time::Duration;

use kube::runtime::watcher;

/// The longest an answer may stall (no bytes) before the call fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Watches are ended by the server after this many seconds and resumed from their last
/// resourceVersion, so an idle watch never meets [`READ_TIMEOUT`].
pub const WATCH_TIMEOUT_SECS: u32 = 25;

/// `config` with the controller's timeouts: [`READ_TIMEOUT`] counted from each request's send
/// (not from when its pooled connection went idle).
pub fn with_timeouts(mut config: kube::Config) -> kube::Config {
    config.read_timeout = Some(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    config
}

/// The watcher configuration every controller watch uses.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_TIMEOUT_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_watch_ends_before_the_read_timeout_could_cut_it() {
        assert!(
            Duration::from_secs(u64::from(WATCH_TIMEOUT_SECS)) + Duration::from_secs(2)
                < READ_TIMEOUT
        );
        let config = with_timeouts(kube::Config::new(
            "http://127.0.0.1:1".parse().expect("uri"),
        ));
        assert_eq!(config.read_timeout, Some(READ_TIMEOUT));
        assert!(config.reset_reader_on_write);
        assert_eq!(watch_config().timeout, Some(WATCH_TIMEOUT_SECS));
    }
}
