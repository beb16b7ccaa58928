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
    let Some(exists) = write_needed(current.as_ref(), wanted) else {
        return Ok(());
    };
    writer.write_config_state(exists, wanted).await?;
    *written = Some(Some(wanted.clone()));
    Ok(())
}

/// Whether `wanted` must be written over `current` (`None`: the object does not exist), and if
/// so whether the object exists already: `None` when it says so already.
fn write_needed(current: Option<&ConfigState>, wanted: &ConfigState) -> Option<bool> {
    (current != Some(wanted)).then_some(current.is_some())
}

#[cfg(test)]
mod tests {
    use ferrolb_api::config_state::CONFIG_RECONCILER_CONDITION;

    use super::*;

    #[test]
    fn only_a_state_that_differs_is_written_creating_the_object_if_missing() {
        let valid = ConfigState::from_problems(CONFIG_RECONCILER_CONDITION, &[]);
        let unknown = ConfigState::unknown(CONFIG_RECONCILER_CONDITION);
        assert_eq!(
            write_needed(Some(&valid), &valid),
            None,
            "a restart writes nothing"
        );
        assert_eq!(
            write_needed(Some(&unknown), &valid),
            Some(true),
            "update in place"
        );
        assert_eq!(write_needed(None, &valid), Some(false), "create it first");
    }
}
