//! Reading the deployment's certificate revocation list: PEM (`X509 CRL`
//! blocks) or DER, each list signed by the CA, or refused.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::TlsError;

/// A CRL file as loaded: its lists (for webpki) and what they revoke.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCrl {
    pub(crate) lists: Vec<CertificateRevocationListDer<'static>>,
    /// Serial numbers revoked (hex, as [`serial_hex`] writes them).
    pub(crate) revoked: Vec<String>,
}

/// A serial number as lowercase hex without leading zeros or separators.
pub fn serial_hex(big_endian: &[u8]) -> String {
    let s: String = big_endian.iter().map(|b| format!("{b:02x}")).collect();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_owned()
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::BadCrl {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The raw lists of a CRL file, PEM or DER, at least one.
pub(crate) fn read_lists(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
    let lists = if bytes.starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(path, format!("invalid PEM: {e}")))?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if lists.is_empty() {
        return Err(bad(path, "no X509 CRL block found"));
    }
    Ok(lists)
}

/// Loads the CRL file at `path` and checks that every list in it is signed
/// by one of the CA certificates `cas` (from the file `ca_path`).
pub(crate) fn load(
    path: &Path,
    cas: &[CertificateDer<'_>],
    ca_path: &Path,
) -> Result<LoadedCrl, TlsError> {
    let lists = read_lists(path)?;
    let mut revoked = Vec::new();
    for der in &lists {
        let serials = verify(der, cas).map_err(|reason| {
            bad(
                path,
                format!("{reason} (CA {}); not using it", ca_path.display()),
            )
        })?;
        revoked.extend(serials);
    }
    Ok(LoadedCrl { lists, revoked })
}

/// Parses one CRL and verifies its signature with the CA whose subject is
/// its issuer; returns the serials it revokes.
pub(crate) fn verify(der: &[u8], cas: &[CertificateDer<'_>]) -> Result<Vec<String>, String> {
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| format!("not a certificate revocation list: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the revocation list".into());
    }
    let mut signed = false;
    for ca in cas {
        let Ok((_, ca)) = X509Certificate::from_der(ca) else {
            continue;
        };
        if ca.subject().as_raw() == crl.issuer().as_raw()
            && crl.verify_signature(ca.public_key()).is_ok()
        {
            signed = true;
            break;
        }
    }
    if !signed {
        return Err(format!(
            "not signed by this deployment's CA (issuer {})",
            crl.issuer()
        ));
    }
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| serial_hex(&r.serial().to_bytes_be()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_in_hex() {
        assert_eq!(serial_hex(&[0x00, 0x0a, 0xbc]), "abc");
        assert_eq!(serial_hex(&[0x7f, 0x01]), "7f01");
        assert_eq!(serial_hex(&[]), "0");
        assert_eq!(serial_hex(&[0, 0]), "0");
    }

    #[test]
    fn garbage_is_not_a_crl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.crl");
        std::fs::write(&path, b"\x30\x03\x02\x01\x05").unwrap();
        let e = load(&path, &[], Path::new("ca.pem")).unwrap_err();
        assert!(
            e.to_string().contains("not a certificate revocation list"),
            "{e}"
        );
        std::fs::write(
            &path,
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load(&path, &[], Path::new("ca.pem")).unwrap_err();
        assert!(e.to_string().contains("no X509 CRL block"), "{e}");
        let e = load(&dir.path().join("missing.crl"), &[], Path::new("ca.pem")).unwrap_err();
        assert!(e.to_string().contains("cannot read it"), "{e}");
    }
}
