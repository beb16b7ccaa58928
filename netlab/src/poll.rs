//! Waiting on a condition with a deadline, never a fixed sleep: [`poll`] for blocking code,
//! [`eventually`] and [`eventually_async`] on tokio time.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::LabError;

/// Calls `check` every `every` until it returns `Ok`, or fails with [`LabError::Timeout`] and
/// the last observation after `within`. `check` returns `Err(observation)` while the condition
/// does not hold.
pub fn poll<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, LabError> {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                return Err(LabError::Timeout {
                    what: what.to_owned(),
                    within,
                    last,
                });
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// Waits up to `within` (tokio time) for `check` to return `Some`, checking every `every`.
pub async fn eventually<T>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    eventually_async(within, every, || std::future::ready(check())).await
}

/// [`eventually`] with an async check.
pub async fn eventually_async<T, F, Fut>(
    within: Duration,
    every: Duration,
    mut check: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let got = poll("third call", Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            if calls == 3 {
                Ok(calls)
            } else {
                Err(format!("call {calls}"))
            }
        });
        assert_eq!(got.expect("holds"), 3);
    }

    #[test]
    fn poll_names_the_condition_and_the_last_observation_on_timeout() {
        let err = poll::<()>("never", Duration::ZERO, Duration::ZERO, || {
            Err("still no".into())
        })
        .expect_err("times out");
        assert_eq!(
            err.to_string(),
            "never: not within 0ns; last seen: still no"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_gives_up_at_its_deadline_on_paused_time() {
        let start = tokio::time::Instant::now();
        let got: Option<()> =
            eventually(Duration::from_secs(3), Duration::from_millis(500), || None).await;
        assert_eq!(got, None);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_async_returns_as_soon_as_the_check_holds() {
        let start = tokio::time::Instant::now();
        let got = eventually_async(
            Duration::from_secs(3),
            Duration::from_millis(500),
            || async { (start.elapsed() >= Duration::from_secs(1)).then_some("done") },
        )
        .await;
        assert_eq!(got, Some("done"));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
