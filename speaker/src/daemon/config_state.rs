//! The task that keeps this node's `ConfigurationState` (`speaker-<node>`) in step with the
//! configuration the speaker loaded, as MetalLB's speakers do: `kubectl get
//! configurationstates` then shows one row per speaker, Valid or Invalid with the errors. The
//! daemon publishes what it found; this task writes only changes, off the announce path, and
//! retries after failures.

use std::time::Duration;

use ferrolb_api::config_state::ConfigState;
use tokio::sync::watch;

use super::statuses::next_wish;
use super::writer::Writer;

/// Wait before retrying after a failed read or write.
const RETRY: Duration = Duration::from_secs(2);

/// Starts the task; send `Some(state)` to have it reported.
pub fn spawn(writer: Writer) -> watch::Sender<Option<ConfigState>> {
    let (tx, mut rx) = watch::channel(None::<ConfigState>);
    tokio::spawn(async move {
        // What the object says, once read: `Some(None)` when it does not exist.
        let mut written: Option<Option<ConfigState>> = None;
        let mut failed = false;
        while let Some(wanted) = next_wish(&mut rx, failed.then_some(RETRY)).await {
            failed = match report(&writer, &mut written, &wanted).await {
                Ok(()) => false,
                Err(error) => {
                    tracing::debug!(%error, "ConfigurationState not written; retrying");
                    true
                }
            };
        }
    });
    tx
}

async fn report(
    writer: &Writer,
    written: &mut Option<Option<ConfigState>>,
    wanted: &ConfigState,
) -> Result<(), kube::Error> {
    let current = match written {
        Some(current) => current.clone(),
        None => {
            let current = writer.read_config_state().await?;
            *written = Some(current.clone());
            current
        }
    };
    if current.as_ref() == Some(wanted) {
        return Ok(());
    }
    writer.write_config_state(current.is_some(), wanted).await?;
    *written = Some(Some(wanted.clone()));
    Ok(())
}
