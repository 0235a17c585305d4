//! One loading of a host's `[tls]` settings: the CA, the CRL, our
//! certificate and key, checked, and the verifiers and client configuration
//! built from them. A [`crate::TlsContext`] holds one at a time and swaps it
//! on reload.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, ClientConfig, RootCertStore};

use crate::error::from_rustls;
use crate::expiry::CertExpiry;
use crate::live::Side;
use crate::names::{dns_names, first_allowed, validate_host_name};
use crate::verify::{unify_ca_error, ServerVerifier};
use crate::{crl, pem, TlsError, TlsSettings};

/// What one loading of the settings produced.
#[derive(Debug)]
pub(crate) struct Material {
    pub(crate) settings: TlsSettings,
    pub(crate) host_name: String,
    pub(crate) allowed: Arc<[String]>,
    pub(crate) own: Arc<CertifiedKey>,
    pub(crate) client_verifier: Arc<dyn ClientCertVerifier>,
    pub(crate) server_verifier: Arc<ServerVerifier>,
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) expiry: CertExpiry,
    /// Serials in the CRL, if one is configured.
    pub(crate) revoked: Option<Vec<String>>,
}

pub(crate) fn config_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

impl Material {
    /// Loads the CA, the CRL (if configured), our certificate and key, and
    /// checks them: our certificate must be currently valid, issued by the
    /// CA, not revoked, usable for both client and server authentication,
    /// and match the key; the CRL must be signed by the CA. Errors name the
    /// offending file.
    pub(crate) fn load(
        settings: &TlsSettings,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Material, TlsError> {
        let mut roots = RootCertStore::empty();
        let cas = pem::certs(&settings.ca)?;
        let mut ca_not_after = i64::MAX;
        for ca in &cas {
            let (_, end) = crate::names::validity(ca).map_err(config_err)?;
            ca_not_after = ca_not_after.min(end);
            roots.add(ca.clone()).map_err(|e| TlsError::BadPem {
                path: settings.ca.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let roots = Arc::new(roots);
        let crl = match &settings.crl {
            Some(path) => Some(crl::load(path, &cas, &settings.ca)?),
            None => None,
        };
        let chain = pem::certs(&settings.cert)?;
        let key = pem::key(&settings.key)?;
        for name in &settings.allowed_peers {
            validate_host_name(name).map_err(|reason| TlsError::BadHostName {
                name: name.clone(),
                reason: format!("in allowed_peers: {reason}"),
            })?;
        }
        let own_err = |reason: String| TlsError::OwnCert {
            path: settings.cert.clone(),
            reason,
        };
        let host_name = dns_names(&chain[0])
            .map_err(&own_err)?
            .into_iter()
            .next()
            .ok_or_else(|| own_err("no DNS subject alternative name (the host name)".into()))?;
        let (_, own_not_after) = crate::names::validity(&chain[0]).map_err(&own_err)?;

        let mut client_builder =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        let mut server_builder =
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone());
        if let Some(crl) = &crl {
            // Every list is signed by the CA (checked above), so it is
            // authoritative for the certificates the CA issued; a chain
            // through an intermediate the CA's list does not cover is
            // judged on its signatures alone.
            client_builder = client_builder
                .with_crls(crl.lists.clone())
                .allow_unknown_revocation_status();
            server_builder = server_builder
                .with_crls(crl.lists.clone())
                .allow_unknown_revocation_status();
        }
        let bad_crl = |e: rustls::server::VerifierBuilderError| match &settings.crl {
            Some(path) => TlsError::BadCrl {
                path: path.clone(),
                reason: e.to_string(),
            },
            None => config_err(e),
        };
        let client_verifier = client_builder.build().map_err(bad_crl)?;
        let server_verifier = Arc::new(ServerVerifier(server_builder.build().map_err(bad_crl)?));
        let now = UnixTime::now();
        let ca = settings.ca.display();
        let why = |e: rustls::Error| match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            | rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
                format!("not issued by the CA in {ca}")
            }
            rustls::Error::InvalidCertificate(CertificateError::Revoked) => format!(
                "revoked: it is in the CRL {}",
                settings
                    .crl
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            e => e.to_string(),
        };
        client_verifier
            .verify_client_cert(&chain[0], &chain[1..], now)
            .map_err(|e| own_err(why(e)))?;
        let server_name =
            ServerName::try_from(host_name.clone()).map_err(|e| own_err(e.to_string()))?;
        server_verifier
            .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], now)
            .map_err(|e| own_err(why(e)))?;

        let own = Arc::new(CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            TlsError::OwnCert {
                path: settings.key.clone(),
                reason: format!("key does not fit {}: {e}", settings.cert.display()),
            }
        })?);
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_err)?
            .dangerous() // only to wrap webpki's verifier: see `verify::ServerVerifier`
            .with_custom_certificate_verifier(server_verifier.clone())
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(own.clone())));
        client.resumption = Resumption::disabled();
        Ok(Material {
            settings: settings.clone(),
            host_name,
            allowed: settings
                .allowed_peers
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
            own,
            client_verifier,
            server_verifier,
            client: Arc::new(client),
            expiry: CertExpiry {
                own_not_after,
                ca_not_after,
            },
            revoked: crl.map(|c| c.revoked),
        })
    }

    /// Whether `name` is in `allowed_peers`.
    pub(crate) fn is_allowed(&self, name: &str) -> bool {
        self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// Judges an established connection's peer as a new handshake would be
    /// judged now: its chain against the CA and the CRL, its name against
    /// `allowed_peers`.
    pub(crate) fn recheck(
        &self,
        peer: &str,
        side: &Side,
        chain: &[CertificateDer<'static>],
    ) -> Result<(), TlsError> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(TlsError::NoCertificate {
                peer: peer.to_owned(),
            });
        };
        let now = UnixTime::now();
        match side {
            Side::Accepted => {
                self.client_verifier
                    .verify_client_cert(end_entity, intermediates, now)
                    .map_err(|e| from_rustls(peer, &unify_ca_error(e), None))?;
                let names = dns_names(end_entity).unwrap_or_default();
                if first_allowed(&names, &self.allowed).is_none() {
                    return Err(TlsError::NotAuthorized {
                        peer: peer.to_owned(),
                        names,
                    });
                }
            }
            Side::Dialed { name } => {
                if !self.is_allowed(name) {
                    return Err(TlsError::NotAuthorized {
                        peer: peer.to_owned(),
                        names: vec![name.clone()],
                    });
                }
                let server_name =
                    ServerName::try_from(name.clone()).map_err(|e| TlsError::BadHostName {
                        name: name.clone(),
                        reason: e.to_string(),
                    })?;
                self.server_verifier
                    .verify_server_cert(end_entity, intermediates, &server_name, &[], now)
                    .map_err(|e| from_rustls(peer, &e, None))?;
            }
        }
        Ok(())
    }
}
