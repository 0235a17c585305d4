//! Errors, and how rustls' handshake errors map onto jettison's refusals.

use std::io;
use std::path::PathBuf;

use rustls::{AlertDescription, CertificateError};

/// What went wrong: loading the TLS material, a refused connection, or
/// creating certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file is not valid PEM, or has no certificate or key in it.
    #[error("{path}: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Our own certificate is unusable (expired, not from the CA, no name,
    /// key does not match).
    #[error("own certificate {path}: {reason}")]
    OwnCert {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Building the rustls configuration failed.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A host name (in `allowed_peers` or for a new certificate) is invalid.
    #[error("invalid host name {name:?}: {reason}")]
    BadHostName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The client does not speak TLS; the connection was closed unanswered.
    #[error("{peer}: refused: not a TLS client (first byte {first_byte:#04x}, not a TLS handshake record); closed without answering")]
    NotTls {
        /// Who.
        peer: String,
        /// The first byte the client sent.
        first_byte: u8,
    },
    /// The client presented no certificate.
    #[error("{peer}: refused: presented no certificate")]
    NoCertificate {
        /// Who.
        peer: String,
    },
    /// The peer's certificate was not issued by the deployment's CA.
    #[error("{peer}: refused: certificate not issued by this deployment's CA ({detail})")]
    UnknownCa {
        /// Who.
        peer: String,
        /// rustls' words.
        detail: String,
    },
    /// The peer's certificate is expired (or not yet valid).
    #[error("{peer}: refused: certificate expired or not yet valid ({detail})")]
    Expired {
        /// Who.
        peer: String,
        /// rustls' words, with the dates.
        detail: String,
    },
    /// The peer's certificate is in the deployment's CRL.
    #[error("{peer}: refused: certificate revoked (listed in the CRL of this deployment's CA)")]
    Revoked {
        /// Who.
        peer: String,
    },
    /// The configured CRL is missing, unparseable or not signed by the CA.
    #[error("CRL {path}: {reason}")]
    BadCrl {
        /// The CRL file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The peer's certificate is valid but none of its names is in
    /// `allowed_peers`.
    #[error("{peer}: refused: host {names:?} is not authorized (not in allowed_peers)")]
    NotAuthorized {
        /// Who.
        peer: String,
        /// The DNS names of its certificate.
        names: Vec<String>,
    },
    /// The server's certificate is not for the name we expected.
    #[error("{peer}: refused: certificate is for {presented:?}, not for {expected:?}")]
    WrongName {
        /// Who.
        peer: String,
        /// The name we connected to.
        expected: String,
        /// The names in its certificate.
        presented: Vec<String>,
    },
    /// The peer refused us with a TLS alert.
    #[error("{peer}: the peer refused the connection: TLS alert {alert} ({meaning})")]
    RefusedByPeer {
        /// Who.
        peer: String,
        /// The alert, as rustls names it.
        alert: String,
        /// What it usually means here.
        meaning: &'static str,
    },
    /// We were asked to connect to a host that is not in our `allowed_peers`.
    #[error("{name:?} is not in allowed_peers; not connecting")]
    PeerNotAllowed {
        /// The name.
        name: String,
    },
    /// The handshake did not finish in time.
    #[error("{peer}: TLS handshake timed out after {secs} s")]
    Timeout {
        /// Who.
        peer: String,
        /// The limit.
        secs: u64,
    },
    /// Any other handshake failure (I/O, protocol).
    #[error("{peer}: TLS handshake failed: {detail}")]
    Handshake {
        /// Who.
        peer: String,
        /// Why.
        detail: String,
    },
    /// A file we would create exists already.
    #[error("{path} already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// rcgen could not build or sign a certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

impl TlsError {
    /// A short `snake_case` word for why a handshake was refused (the
    /// `reason` label of `jettison_tls_refusals_total`); `other` for the
    /// errors that are not refusals of a peer.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::NotTls { .. } => "not_tls",
            TlsError::NoCertificate { .. } => "no_certificate",
            TlsError::UnknownCa { .. } => "unknown_ca",
            TlsError::Expired { .. } => "expired",
            TlsError::Revoked { .. } => "revoked",
            TlsError::NotAuthorized { .. } => "not_authorized",
            TlsError::WrongName { .. } => "wrong_name",
            TlsError::RefusedByPeer { .. } => "refused_by_peer",
            TlsError::Timeout { .. } => "timeout",
            TlsError::Handshake { .. } => "handshake_failed",
            _ => "other",
        }
    }
}

/// What an alert from the peer usually means in jettison.
pub(crate) fn alert_meaning(alert: AlertDescription) -> &'static str {
    match alert {
        AlertDescription::AccessDenied => {
            "our certificate is valid, but this host is not in the peer's allowed_peers"
        }
        AlertDescription::UnknownCA => "our certificate is not from the peer's CA",
        AlertDescription::CertificateRevoked => {
            "our certificate has been revoked: it is in the peer's CRL"
        }
        AlertDescription::CertificateExpired => {
            "the peer finds our certificate expired or not yet valid"
        }
        AlertDescription::DecryptError => "signature check failed: certificate from another CA?",
        AlertDescription::CertificateRequired => "the peer requires a client certificate",
        AlertDescription::BadCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnsupportedCertificate => "the peer rejected our certificate",
        AlertDescription::ProtocolVersion => "the peer does not speak TLS 1.3",
        _ => "handshake refused",
    }
}

/// Maps a rustls error of a failed handshake to a refusal. `names` are the
/// peer's certificate names when our authorization check refused it.
pub(crate) fn from_rustls(peer: &str, e: &rustls::Error, names: Option<Vec<String>>) -> TlsError {
    let peer = peer.to_owned();
    let detail = e.to_string();
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsError::UnknownCa { peer, detail }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsError::Expired { peer, detail },
            CertificateError::Revoked => TlsError::Revoked { peer },
            CertificateError::ApplicationVerificationFailure => TlsError::NotAuthorized {
                peer,
                names: names.unwrap_or_default(),
            },
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => TlsError::WrongName {
                peer,
                expected: expected.to_str().into_owned(),
                presented: presented.clone(),
            },
            _ => TlsError::Handshake { peer, detail },
        },
        rustls::Error::NoCertificatesPresented => TlsError::NoCertificate { peer },
        rustls::Error::AlertReceived(a) => TlsError::RefusedByPeer {
            peer,
            alert: format!("{a:?}"),
            meaning: alert_meaning(*a),
        },
        _ => TlsError::Handshake { peer, detail },
    }
}

/// Maps an I/O error of tokio-rustls' handshake (which wraps rustls errors).
pub(crate) fn from_io(peer: &str, e: &io::Error, names: Option<Vec<String>>) -> TlsError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => from_rustls(peer, r, names),
        None => TlsError::Handshake {
            peer: peer.to_owned(),
            detail: match e.kind() {
                io::ErrorKind::UnexpectedEof => "the peer closed the connection".into(),
                _ => e.to_string(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let cert = |c| rustls::Error::InvalidCertificate(c);
        let p = "client 127.0.0.1:1";
        assert!(matches!(
            from_rustls(p, &cert(CertificateError::UnknownIssuer), None),
            TlsError::UnknownCa { .. }
        ));
        assert!(matches!(
            from_rustls(p, &cert(CertificateError::Expired), None),
            TlsError::Expired { .. }
        ));
        let e = from_rustls(
            p,
            &cert(CertificateError::ApplicationVerificationFailure),
            Some(vec!["desk-9".into()]),
        );
        assert!(
            e.to_string().contains("\"desk-9\"] is not authorized"),
            "{e}"
        );
        let e = from_rustls(
            p,
            &rustls::Error::AlertReceived(AlertDescription::AccessDenied),
            None,
        );
        assert!(e.to_string().contains("allowed_peers"), "{e}");
        let e = from_rustls(p, &cert(CertificateError::Revoked), None);
        assert!(matches!(e, TlsError::Revoked { .. }), "{e:?}");
        assert!(e.to_string().contains("revoked"), "{e}");
        let e = from_rustls(
            p,
            &rustls::Error::AlertReceived(AlertDescription::CertificateRevoked),
            None,
        );
        assert!(e.to_string().contains("revoked"), "{e}");
        assert!(matches!(
            from_rustls(p, &rustls::Error::NoCertificatesPresented, None),
            TlsError::NoCertificate { .. }
        ));
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            cert(CertificateError::BadSignature),
        );
        assert!(matches!(from_io(p, &io, None), TlsError::UnknownCa { .. }));
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert!(from_io(p, &eof, None).to_string().contains("closed"));
    }
}
