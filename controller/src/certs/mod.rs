//! `certs`: the webhook's serving certificate, swappable while the webhook serves (the TLS
//! acceptor asks a [`CertResolver`] on each handshake). Either
//! - read from a `kubernetes.io/tls` Secret (cert-manager or the operator made it) and reloaded
//!   whenever the Secret changes ([`secret`]), or
//! - made here with a CA of its own that lives [`DEFAULT_CA_LIFETIME`] (pathlen 0: it signs
//!   the serving certificate and nothing that could sign more), replaced by a new pair before
//!   it expires ([`rotate`]). Each CA is added to the `caBundle` of every webhook of the named
//!   ValidatingWebhookConfiguration before the webhook serves a certificate it signed, and the
//!   bundle keeps the most recent earlier CAs, so that neither a rotation, nor two replicas
//!   with CAs of their own, nor a restart leaves a serving replica untrusted.

pub mod rotate;
pub mod secret;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

pub use rotate::keep_ca_bundle;
pub use secret::from_secret;

/// How many CA certificates a `caBundle` keeps: ours and the most recent others.
pub const BUNDLE_KEEP: usize = 4;

/// How long a self-made CA and its serving certificate live; a new pair replaces them after
/// two thirds of it.
pub const DEFAULT_CA_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far back a new certificate's validity starts, for clocks a little behind ours.
const BACKDATE: Duration = Duration::from_secs(60);

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
#[derive(Clone, PartialEq, Eq)]
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

/// Validity from a minute ago until `lifetime` from now.
fn validity(params: &mut rcgen::CertificateParams, lifetime: Duration) {
    let now = time::OffsetDateTime::now_utc();
    let span = |d: Duration| time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
    params.not_before = now - span(BACKDATE);
    params.not_after = now.saturating_add(span(lifetime));
}

/// Makes a CA and a certificate it signs for `names` (DNS names or IP addresses), both valid
/// for `lifetime`. The CA may sign end-entity certificates only (pathlen 0); its key is
/// dropped here, so nothing else is ever signed with it.
pub fn generate(names: Vec<String>, lifetime: Duration) -> Result<Serving, CertError> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferrolb-webhook-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca_params, lifetime);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferrolb-webhook");
    validity(&mut params, lifetime);
    let cert = params.signed_by(&key, &ca)?;
    Ok(Serving {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: Some(ca.pem()),
    })
}

/// The certificate and key rustls serves for `serving`.
fn certified_key(serving: &Serving) -> Result<Arc<CertifiedKey>, CertError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Pem(format!("tls.crt: {e}")))?;
    if chain.is_empty() {
        return Err(CertError::Pem("tls.crt holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| CertError::Pem(format!("tls.key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider)?))
}

/// The certificate the webhook serves now; [`CertResolver::set`] replaces it for every later
/// handshake.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// Serves `serving` until replaced.
    pub fn new(serving: &Serving) -> Result<Self, CertError> {
        Ok(CertResolver {
            current: RwLock::new(certified_key(serving)?),
        })
    }

    /// Serves `serving` from the next handshake on; an unusable one leaves the current in place.
    pub fn set(&self, serving: &Serving) -> Result<(), CertError> {
        let key = certified_key(serving)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// The TLS acceptor serving whatever `resolver` holds.
pub fn acceptor(resolver: Arc<CertResolver>) -> Result<TlsAcceptor, CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
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

#[cfg(test)]
mod tests {
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    fn ca(n: u8) -> String {
        format!("-----BEGIN CERTIFICATE-----\nCA{n}\n-----END CERTIFICATE-----\n")
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("PEM")
            .to_vec()
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
        let serving = generate(
            service_names("ferrolb-webhook-service", "ferrolb-system"),
            DEFAULT_CA_LIFETIME,
        )
        .expect("generated");
        assert!(serving.ca_pem.is_some());
        let resolver = Arc::new(CertResolver::new(&serving).expect("usable by rustls"));
        acceptor(resolver).expect("an acceptor");
    }

    #[test]
    fn the_self_made_ca_has_pathlen_0_and_a_short_life() {
        let lifetime = Duration::from_secs(3600);
        let serving = generate(vec!["webhook.example".into()], lifetime).expect("generated");
        let ca_der = der(serving.ca_pem.as_deref().expect("a CA"));
        let (_, ca) = X509Certificate::from_der(&ca_der).expect("X.509");
        let constraints = ca
            .basic_constraints()
            .expect("one extension")
            .expect("basicConstraints")
            .value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
        let cert_der = der(&serving.cert_pem);
        let (_, cert) = X509Certificate::from_der(&cert_der).expect("X.509");
        for (what, validity) in [("CA", ca.validity()), ("serving", cert.validity())] {
            let span = validity.not_after.timestamp() - validity.not_before.timestamp();
            let expected = (lifetime + BACKDATE).as_secs() as i64;
            assert!(
                (span - expected).abs() <= 1,
                "the {what} certificate lives {span} s, not {expected} s"
            );
        }
    }

    #[test]
    fn a_resolver_serves_the_certificate_it_was_last_given() {
        let first = generate(vec!["a.example".into()], DEFAULT_CA_LIFETIME).expect("first");
        let second = generate(vec!["a.example".into()], DEFAULT_CA_LIFETIME).expect("second");
        let resolver = CertResolver::new(&first).expect("resolver");
        let served = |r: &CertResolver| r.current.read().expect("lock").cert[0].to_vec();
        assert_eq!(served(&resolver), der(&first.cert_pem));
        resolver.set(&second).expect("set");
        assert_eq!(served(&resolver), der(&second.cert_pem));
        let broken = Serving {
            cert_pem: "not PEM".into(),
            ..second.clone()
        };
        assert!(resolver.set(&broken).is_err());
        assert_eq!(
            served(&resolver),
            der(&second.cert_pem),
            "kept on a bad update"
        );
    }
}
