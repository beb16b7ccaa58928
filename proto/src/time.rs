//! Timers as the drivers keep them: an optional deadline, armed or not.

use tokio::time::Instant;

/// Resolves at `deadline`, and never when there is none, so a `select!` arm over an unarmed
/// timer simply never fires. The deadline is a value, not a stored `Sleep`: an elapsed `Sleep`
/// is ready at every poll, which turns a loop that forgets to disarm it into a busy loop.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_armed_timer_fires_at_its_deadline() {
        let start = Instant::now();
        sleep_until(Some(start + Duration::from_secs(3))).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unarmed_timer_never_fires() {
        let never = tokio::time::timeout(Duration::from_secs(3600), sleep_until(None)).await;
        assert!(never.is_err());
    }
}
