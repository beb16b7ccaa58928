//! A serving certificate from a `kubernetes.io/tls` Secret, read at start and reloaded each
//! time the Secret changes (cert-manager renews it in place), so a renewed certificate is
//! served without a restart.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::{CertError, CertResolver, Serving};
use crate::client::watch_config;

/// `tls.crt` and `tls.key` of `secret`, named `namespace/name` in errors. Pure.
pub fn serving_of(secret: &Secret, namespace: &str, name: &str) -> Result<Serving, CertError> {
    let secret_error = |why: String| CertError::Secret {
        secret: format!("{namespace}/{name}"),
        why,
    };
    let empty = Default::default();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |key: &str| -> Result<String, CertError> {
        let bytes = data
            .get(key)
            .ok_or_else(|| secret_error(format!("no {key}")))?;
        String::from_utf8(bytes.0.clone())
            .map_err(|_| secret_error(format!("{key} is not PEM text")))
    };
    Ok(Serving {
        cert_pem: text("tls.crt")?,
        key_pem: text("tls.key")?,
        ca_pem: None,
    })
}

/// Reads `tls.crt` and `tls.key` from a Secret.
pub async fn from_secret(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<Serving, CertError> {
    let secret = Api::<Secret>::namespaced(client, namespace)
        .get(name)
        .await
        .map_err(|e| CertError::Secret {
            secret: format!("{namespace}/{name}"),
            why: e.to_string(),
        })?;
    serving_of(&secret, namespace, name)
}

/// Serves every new version of the Secret through `resolver`, for as long as the task runs.
/// `serving` is what `resolver` holds now. A version that cannot be used is logged and the
/// current certificate kept.
pub async fn reload_from_secret(
    client: Client,
    namespace: String,
    name: String,
    resolver: Arc<CertResolver>,
    mut serving: Serving,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let config = watch_config().fields(&format!("metadata.name={name}"));
    let mut secrets = Box::pin(watcher(api, config).default_backoff().applied_objects());
    while let Some(event) = secrets.next().await {
        let secret = match event {
            Ok(secret) => secret,
            Err(error) => {
                tracing::warn!(%error, "watching the webhook certificate's Secret failed; retrying");
                continue;
            }
        };
        let loaded = match serving_of(&secret, &namespace, &name) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(reason = error.reason(), %error, "webhook certificate not reloaded");
                continue;
            }
        };
        if loaded == serving {
            continue;
        }
        match resolver.set(&loaded) {
            Ok(()) => {
                tracing::info!(
                    secret = name,
                    "webhook certificate reloaded from its Secret"
                );
                serving = loaded;
            }
            Err(error) => {
                tracing::warn!(reason = error.reason(), %error, "webhook certificate not reloaded");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn a_secret_without_a_key_is_refused_naming_it_and_the_key() {
        let secret = Secret {
            data: Some([("tls.crt".to_owned(), ByteString(b"PEM".to_vec()))].into()),
            ..Secret::default()
        };
        let error = serving_of(&secret, "ferrolb-system", "cert").expect_err("no key");
        assert_eq!(error.to_string(), "Secret ferrolb-system/cert: no tls.key");
    }
}
