//! The self-made CA's life: a new CA and serving certificate two thirds into the old pair's
//! life, the new CA written into every `caBundle` (next to the old one) before the webhook
//! serves the new certificate, so the API server trusts the webhook at every moment.
//!
//! ```text
//!  rotate ──our CA──► keep_ca_bundle ──replace (resourceVersion)──► ValidatingWebhookConfiguration
//!     ▲                    │  ▲ watch
//!     └── CA in bundles ───┘  └──────────────────────────────────────┘
//!     └──► CertResolver (served from the next handshake)
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{CertResolver, generate, merged_bundle};
use crate::client::watch_config;

/// When a pair issued at `issued` for `lifetime` is replaced: two thirds into its life.
pub fn rotation_due(issued: Instant, lifetime: Duration) -> Instant {
    issued + lifetime * 2 / 3
}

/// How long a rotation waits for the new CA to be in every bundle before serving the new
/// certificate anyway (the old one expires a third of the lifetime later).
pub fn bundle_wait(lifetime: Duration) -> Duration {
    lifetime / 6
}

/// Replaces the self-made pair before it expires, for as long as the task runs. `ca` tells
/// [`keep_ca_bundle`] which CA to add; `in_bundles` says which CA the bundles hold.
pub async fn rotate(
    names: Vec<String>,
    lifetime: Duration,
    resolver: Arc<CertResolver>,
    ca: watch::Sender<String>,
    mut in_bundles: watch::Receiver<String>,
) {
    let mut issued = Instant::now();
    loop {
        tokio::time::sleep_until(rotation_due(issued, lifetime)).await;
        let next = match generate(names.clone(), lifetime) {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(reason = error.reason(), %error, "webhook certificate not rotated; trying again");
                issued += bundle_wait(lifetime) / 4;
                continue;
            }
        };
        let next_ca = next.ca_pem.clone().unwrap_or_default();
        ca.send_replace(next_ca.clone());
        let trusted = in_bundles.wait_for(|in_bundle| *in_bundle == next_ca);
        if tokio::time::timeout(bundle_wait(lifetime), trusted)
            .await
            .is_err()
        {
            tracing::warn!(
                "the new webhook CA is not in every caBundle yet; serving its certificate anyway"
            );
        }
        match resolver.set(&next) {
            Ok(()) => tracing::info!("webhook certificate and CA rotated"),
            Err(error) => {
                tracing::warn!(reason = error.reason(), %error, "rotated certificate unusable")
            }
        }
        issued = Instant::now();
    }
}

/// `vwc` with `ours` in every webhook's caBundle; `None` when each already trusts it. Pure.
pub fn with_our_ca(
    mut vwc: ValidatingWebhookConfiguration,
    ours: &str,
) -> Option<ValidatingWebhookConfiguration> {
    let mut changed = false;
    for hook in vwc.webhooks.iter_mut().flatten() {
        let existing = hook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default();
        if let Some(bundle) = merged_bundle(&existing, ours) {
            hook.client_config.ca_bundle = Some(ByteString(bundle.into_bytes()));
            changed = true;
        }
    }
    changed.then_some(vwc)
}

/// How long a failed bundle write waits before it is tried again without a new event.
const RETRY: Duration = Duration::from_secs(5);

/// Keeps our current CA (`ca`) in every `caBundle` of the ValidatingWebhookConfiguration
/// `name`, for as long as the task runs: it watches the object, so a configuration created
/// later, or reapplied with an empty bundle by `helm upgrade`, is fixed at once. Writes carry
/// the resourceVersion read. `in_bundles` is told each CA once every bundle holds it.
pub async fn keep_ca_bundle(
    client: Client,
    name: String,
    mut ca: watch::Receiver<String>,
    in_bundles: watch::Sender<String>,
) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let config = watch_config().fields(&format!("metadata.name={name}"));
    let mut events = Box::pin(
        watcher(api.clone(), config)
            .default_backoff()
            .applied_objects(),
    );
    let mut latest: Option<ValidatingWebhookConfiguration> = None;
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(vwc)) => latest = Some(vwc),
                Some(Err(error)) => {
                    tracing::warn!(%error, "watching the webhook configuration failed; retrying");
                    continue;
                }
                None => return,
            },
            changed = ca.changed() => if changed.is_err() { return },
            () = ferrolb_proto::time::sleep_until(retry_at) => {}
        }
        retry_at = None;
        let Some(vwc) = latest.clone() else { continue };
        let ours = ca.borrow_and_update().clone();
        let Some(updated) = with_our_ca(vwc, &ours) else {
            in_bundles.send_replace(ours);
            continue;
        };
        match api.replace(&name, &PostParams::default(), &updated).await {
            Ok(stored) => {
                tracing::info!(configuration = name, "webhook caBundle updated");
                latest = Some(stored);
                in_bundles.send_replace(ours);
            }
            Err(error) => {
                // A 409 means someone else wrote first: the watch brings their version.
                tracing::info!(%error, "webhook caBundle not written; trying again");
                retry_at = Some(Instant::now() + RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::admissionregistration::v1::{ValidatingWebhook, WebhookClientConfig};

    use super::*;

    fn ca(n: u8) -> String {
        format!("-----BEGIN CERTIFICATE-----\nCA{n}\n-----END CERTIFICATE-----\n")
    }

    fn vwc(bundles: &[Option<String>]) -> ValidatingWebhookConfiguration {
        let hooks = bundles
            .iter()
            .enumerate()
            .map(|(i, bundle)| ValidatingWebhook {
                name: format!("hook-{i}.metallb.io"),
                client_config: WebhookClientConfig {
                    ca_bundle: bundle.clone().map(|b| ByteString(b.into_bytes())),
                    ..WebhookClientConfig::default()
                },
                ..ValidatingWebhook::default()
            })
            .collect();
        ValidatingWebhookConfiguration {
            webhooks: Some(hooks),
            ..ValidatingWebhookConfiguration::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pair_is_replaced_two_thirds_into_its_life_and_waits_a_sixth_for_the_bundle() {
        let lifetime = Duration::from_secs(7 * 24 * 3600);
        let issued = Instant::now();
        assert_eq!(
            rotation_due(issued, lifetime) - issued,
            Duration::from_secs(112 * 3600)
        );
        assert_eq!(bundle_wait(lifetime), Duration::from_secs(28 * 3600));
        assert!(
            rotation_due(issued, lifetime) + bundle_wait(lifetime) < issued + lifetime,
            "the new certificate is served before the old one expires"
        );
    }

    #[test]
    fn the_new_ca_joins_every_bundle_next_to_the_old_one() {
        let updated = with_our_ca(vwc(&[Some(ca(1)), None]), &ca(2)).expect("changed");
        let bundles: Vec<String> = updated
            .webhooks
            .iter()
            .flatten()
            .map(|h| {
                String::from_utf8_lossy(&h.client_config.ca_bundle.as_ref().expect("bundle").0)
                    .into_owned()
            })
            .collect();
        assert_eq!(bundles, [format!("{}{}", ca(1), ca(2)), ca(2)]);
        assert!(
            with_our_ca(updated, &ca(2)).is_none(),
            "already trusted everywhere"
        );
    }
}
