//! `certs`: the webhook's serving certificate. Either read from a `kubernetes.io/tls` Secret
//! (cert-manager or the operator made it), or made at start with a fresh CA, whose certificate
//! is then kept in the `caBundle` of every webhook of the named ValidatingWebhookConfiguration,
//! as MetalLB's cert rotation does. The bundle keeps a few earlier CAs besides ours, so that two
//! replicas with their own CAs, or a restart, never leave a serving replica untrusted.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How many CA certificates a `caBundle` keeps: ours and the most recent others.
pub const BUNDLE_KEEP: usize = 4;

/// Why no serving certificate could be had.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Making a certificate failed.
    #[error("making the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The PEM text or the key is unusable.
    #[error("webhook certificate: {0}")]
    Pem(String),
    /// rustls refused the certificate and key.
    #[error("webhook TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The Secret could not be read or lacks a key.
    #[error("Secret {secret}: {why}")]
    Secret {
        /// `namespace/name`.
        secret: String,
        /// What is wrong.
        why: String,
    },
}

impl CertError {
    /// Stable CamelCase for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CertError::Generate(_) => "CertificateGeneration",
            CertError::Pem(_) => "InvalidPem",
            CertError::Tls(_) => "TlsConfig",
            CertError::Secret { .. } => "SecretUnusable",
        }
    }
}

/// A serving certificate and key in PEM, with the CA that signed it when we made it.
#[derive(Clone)]
pub struct Serving {
    /// The certificate chain.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
    /// Our own CA, to put into `caBundle`; `None` for a certificate from a Secret.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("self_signed", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// The DNS names the API server checks for a webhook Service: `name.namespace.svc` and its
/// longer forms.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Makes a CA and a certificate it signs for `names` (DNS names or IP addresses).
pub fn generate(names: Vec<String>) -> Result<Serving, CertError> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferrolb-webhook-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferrolb-webhook");
    let cert = params.signed_by(&key, &ca)?;
    Ok(Serving {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: Some(ca.pem()),
    })
}

/// Reads `tls.crt` and `tls.key` from a Secret.
pub async fn from_secret(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<Serving, CertError> {
    let secret_error = |why: String| CertError::Secret {
        secret: format!("{namespace}/{name}"),
        why,
    };
    let secret = Api::<Secret>::namespaced(client, namespace)
        .get(name)
        .await
        .map_err(|e| secret_error(e.to_string()))?;
    let data = secret.data.unwrap_or_default();
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

/// The TLS acceptor serving `serving`.
pub fn acceptor(serving: &Serving) -> Result<TlsAcceptor, CertError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Pem(format!("tls.crt: {e}")))?;
    if chain.is_empty() {
        return Err(CertError::Pem("tls.crt holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| CertError::Pem(format!("tls.key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The PEM certificates of a bundle, in order.
fn certificates(bundle: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    bundle
        .split_inclusive(END)
        .filter(|block| block.contains(END))
        .map(|block| format!("{}\n", block.trim()))
        .collect()
}

/// The bundle to write so that it trusts `ours`, keeping the most recent others up to
/// [`BUNDLE_KEEP`] in all; `None` when it already trusts `ours`. Pure.
pub fn merged_bundle(existing: &str, ours: &str) -> Option<String> {
    let ours = certificates(ours);
    let present = certificates(existing);
    if !ours.is_empty() && ours.iter().all(|c| present.contains(c)) {
        return None;
    }
    let others: Vec<String> = present.into_iter().filter(|c| !ours.contains(c)).collect();
    let skip = others
        .len()
        .saturating_sub(BUNDLE_KEEP.saturating_sub(ours.len()));
    Some(others.into_iter().skip(skip).chain(ours).collect())
}

/// Keeps our CA in every `caBundle` of the ValidatingWebhookConfiguration `name`, for as long as
/// the task runs: it watches the object, so a configuration created later, or reapplied with an
/// empty bundle by `helm upgrade`, is fixed at once. Writes carry the resourceVersion read.
pub async fn keep_ca_bundle(client: Client, name: String, ca_pem: String) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let config = crate::client::watch_config().fields(&format!("metadata.name={name}"));
    let mut events = Box::pin(
        watcher(api.clone(), config)
            .default_backoff()
            .applied_objects(),
    );
    while let Some(event) = events.next().await {
        let mut vwc = match event {
            Ok(vwc) => vwc,
            Err(error) => {
                tracing::warn!(%error, "watching the webhook configuration failed; retrying");
                continue;
            }
        };
        let mut changed = false;
        for hook in vwc.webhooks.iter_mut().flatten() {
            let existing = hook
                .client_config
                .ca_bundle
                .as_ref()
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .unwrap_or_default();
            if let Some(bundle) = merged_bundle(&existing, &ca_pem) {
                hook.client_config.ca_bundle = Some(ByteString(bundle.into_bytes()));
                changed = true;
            }
        }
        if !changed {
            continue;
        }
        // A 409 means someone else wrote first; the watch brings their version and we retry.
        match api.replace(&name, &PostParams::default(), &vwc).await {
            Ok(_) => tracing::info!(configuration = name, "webhook caBundle updated"),
            Err(error) => {
                tracing::info!(%error, "webhook caBundle not written; will retry on the next change")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(n: u8) -> String {
        format!("-----BEGIN CERTIFICATE-----\nCA{n}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn our_ca_is_added_once_and_others_are_kept() {
        let merged = merged_bundle(&ca(1), &ca(2)).expect("added");
        assert_eq!(merged, format!("{}{}", ca(1), ca(2)));
        assert_eq!(merged_bundle(&merged, &ca(2)), None, "already trusted");
        assert_eq!(merged_bundle("", &ca(2)), Some(ca(2)));
    }

    #[test]
    fn the_bundle_keeps_only_the_most_recent_cas() {
        let old: String = (1..=6).map(ca).collect();
        let merged = merged_bundle(&old, &ca(9)).expect("added");
        assert_eq!(merged, format!("{}{}{}{}", ca(4), ca(5), ca(6), ca(9)));
    }

    #[test]
    fn a_generated_certificate_is_accepted_by_rustls() {
        let serving = generate(service_names("ferrolb-webhook-service", "ferrolb-system"))
            .expect("generated");
        assert!(serving.ca_pem.is_some());
        acceptor(&serving).expect("usable by rustls");
    }
}
