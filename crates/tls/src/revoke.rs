//! Revoking host certificates: the CA's index of what it issued, and the
//! certificate revocation list (CRL) signed by the CA (rcgen).
//!
//! [`crate::certs::issue_request`] appends each certificate it signs to
//! `<ca_dir>/issued.txt` (one line: serial in hex, host, end of validity in
//! Unix seconds, certificate file), so that a host can be revoked by name
//! with every certificate it was ever given. [`revoke`] builds the new CRL:
//! the entries of the existing one (which must be signed by the same CA)
//! plus the new serials, with the next CRL number; the caller writes it
//! (`jettison certs revoke` writes `<ca_dir>/ca.crl` atomically). Its
//! `nextUpdate` is the CA's end of validity: jettison does not enforce CRL
//! freshness, a CRL stays in force until replaced.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::certs::{ca_files, ca_issuer, host_files};
use crate::crl::serial_hex;
use crate::TlsError;

/// The CRL's file name in the CA directory.
pub const CRL_FILE: &str = "ca.crl";
/// The index of issued certificates in the CA directory.
pub const ISSUED_FILE: &str = "issued.txt";

/// Where `jettison certs revoke` writes the CRL of the CA in `ca_dir`.
pub fn crl_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join(CRL_FILE)
}

/// One line of the CA's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Serial number, hex ([`serial_hex`]).
    pub serial: String,
    /// The host's name (first DNS name).
    pub host: String,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Where the certificate was written.
    pub cert: PathBuf,
}

/// The serial (hex) and end of validity of a DER certificate.
pub fn serial_of(cert_der: &[u8]) -> Result<(String, i64), String> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok((
        serial_hex(&cert.serial.to_bytes_be()),
        cert.validity().not_after.timestamp(),
    ))
}

/// The serial (hex) of the first certificate of a PEM file.
pub fn file_serial(path: &Path) -> Result<String, TlsError> {
    let bad = |reason: String| TlsError::BadPem {
        path: path.to_owned(),
        reason,
    };
    let der = CertificateDer::from_pem_file(path).map_err(|e| bad(e.to_string()))?;
    Ok(serial_of(&der).map_err(bad)?.0)
}

/// Appends a certificate to the CA's index (`<ca_dir>/issued.txt`).
pub(crate) fn record_issued(
    ca_dir: &Path,
    host: &str,
    cert_der: &[u8],
    cert_path: &Path,
) -> Result<(), TlsError> {
    let (serial, not_after) = serial_of(cert_der).map_err(TlsError::Config)?;
    let path = ca_dir.join(ISSUED_FILE);
    let line = format!("{serial} {host} {not_after} {}\n", cert_path.display());
    let result = (|| {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&path)?;
        f.write_all(line.as_bytes())?;
        f.sync_all()
    })();
    result.map_err(|source| TlsError::Write { path, source })
}

/// The CA's index; empty if there is none yet. Malformed lines are skipped.
pub fn issued(ca_dir: &Path) -> Result<Vec<Issued>, TlsError> {
    let path = ca_dir.join(ISSUED_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TlsError::Read { path, source }),
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(4, ' ');
            Some(Issued {
                serial: it.next()?.to_owned(),
                host: it.next()?.to_owned(),
                not_after: it.next()?.parse().ok()?,
                cert: PathBuf::from(it.next()?),
            })
        })
        .collect())
}

/// A serial number as an operator types it (hex, optional `:` separators,
/// any case), in the form of [`serial_hex`].
pub fn parse_serial(text: &str) -> Result<String, TlsError> {
    let digits: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TlsError::Config(format!(
            "serial {text:?}: expected hexadecimal digits (as `openssl x509 -serial` prints them)"
        )));
    }
    let t = digits.trim_start_matches('0');
    Ok(if t.is_empty() {
        "0".into()
    } else {
        t.to_owned()
    })
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    (0..padded.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok())
        .collect()
}

/// A revoked certificate, and whose it was when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCert {
    /// Serial number, hex.
    pub serial: String,
    /// The host it was issued to, if the index or a host file says so.
    pub host: Option<String>,
}

/// What [`revoke`] made.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// The new CRL (PEM), for the caller to write.
    pub crl_pem: String,
    /// Serials added by this call.
    pub added: Vec<RevokedCert>,
    /// Serials asked for that were revoked already.
    pub already: Vec<RevokedCert>,
    /// All serials in the new CRL.
    pub total: usize,
    /// The new CRL's number.
    pub crl_number: u64,
}

/// The certificates of `host` known to the CA in `ca_dir`: every one in its
/// index, and `<ca_dir>/<host>.pem` (issued before the index existed).
pub fn host_serials(ca_dir: &Path, host: &str) -> Result<Vec<String>, TlsError> {
    let mut serials: Vec<String> = issued(ca_dir)?
        .into_iter()
        .filter(|i| i.host == host)
        .map(|i| i.serial)
        .collect();
    let file = host_files(ca_dir, host).cert;
    if file.is_file() {
        let serial = file_serial(&file)?;
        if !serials.contains(&serial) {
            serials.push(serial);
        }
    }
    if serials.is_empty() {
        return Err(TlsError::Config(format!(
            "no certificate issued to {host:?} is known in {} or {}: revoke it by serial",
            ca_dir.join(ISSUED_FILE).display(),
            file.display()
        )));
    }
    Ok(serials)
}

/// Builds the CRL of the CA in `ca_dir` revoking every certificate of
/// `hosts` ([`host_serials`]) and the `serials` (hex), on top of the
/// entries of `existing` (a CRL file, which must be signed by this CA; none
/// if it does not exist yet). Signed with the CA's key.
pub fn revoke(
    ca_dir: &Path,
    existing: &Path,
    hosts: &[String],
    serials: &[String],
    now: SystemTime,
) -> Result<Revocation, TlsError> {
    let ca = ca_files(ca_dir);
    let (ca_pem, issuer) = ca_issuer(ca_dir)?;
    let ca_der =
        CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| TlsError::BadPem {
            path: ca.cert.clone(),
            reason: e.to_string(),
        })?;
    let (_, ca_not_after) = crate::names::validity(&ca_der).map_err(TlsError::Config)?;

    let (mut entries, number) = existing_entries(existing, &ca_der)?;
    let index = issued(ca_dir)?;
    let host_of = |serial: &str| {
        index
            .iter()
            .find(|i| i.serial == serial)
            .map(|i| i.host.clone())
    };
    let mut wanted: Vec<RevokedCert> = Vec::new();
    for host in hosts {
        for serial in host_serials(ca_dir, host)? {
            wanted.push(RevokedCert {
                serial,
                host: Some(host.clone()),
            });
        }
    }
    for s in serials {
        let serial = parse_serial(s)?;
        let host = host_of(&serial);
        wanted.push(RevokedCert { serial, host });
    }
    if wanted.is_empty() {
        return Err(TlsError::Config(
            "nothing to revoke: name a host or a serial".into(),
        ));
    }
    let this_update = OffsetDateTime::from(now);
    let (mut added, mut already) = (Vec::new(), Vec::new());
    for w in wanted {
        if entries.iter().any(|(s, _)| *s == w.serial) {
            if !already.contains(&w) && !added.contains(&w) {
                already.push(w);
            }
        } else {
            entries.push((w.serial.clone(), this_update));
            added.push(w);
        }
    }
    let crl_number = number + 1;
    let next_update = OffsetDateTime::from_unix_timestamp(ca_not_after)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    if next_update <= this_update {
        return Err(TlsError::Config(format!(
            "the CA in {} has expired: make a new CA",
            ca.cert.display()
        )));
    }
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(crl_number),
        issuing_distribution_point: None,
        revoked_certs: entries
            .iter()
            .map(|(serial, when)| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&hex_bytes(serial)),
                revocation_time: *when,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    Ok(Revocation {
        crl_pem: crl.pem()?,
        added,
        already,
        total: entries.len(),
        crl_number,
    })
}

/// The entries (serial, revocation time) and number of an existing CRL,
/// which must be signed by the CA `ca_der`; none if the file is missing.
fn existing_entries(
    path: &Path,
    ca_der: &CertificateDer<'_>,
) -> Result<(Vec<(String, OffsetDateTime)>, u64), TlsError> {
    if !path.exists() {
        return Ok((Vec::new(), 0));
    }
    let bad = |reason: String| TlsError::BadCrl {
        path: path.to_owned(),
        reason,
    };
    let lists = crate::crl::read_lists(path)?;
    if lists.len() != 1 {
        return Err(bad(format!(
            "{} lists in one file; expected one",
            lists.len()
        )));
    }
    crate::crl::verify(&lists[0], std::slice::from_ref(ca_der))
        .map_err(|r| bad(format!("{r}; not extending it")))?;
    let (_, crl) =
        CertificateRevocationList::from_der(&lists[0]).map_err(|e| bad(e.to_string()))?;
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| {
            (
                serial_hex(&r.serial().to_bytes_be()),
                r.revocation_date.to_datetime(),
            )
        })
        .collect();
    let number = crl
        .crl_number()
        .and_then(|n| {
            let digits = n.to_u64_digits();
            match digits.len() {
                0 => Some(0),
                1 => Some(digits[0]),
                _ => None,
            }
        })
        .unwrap_or(0);
    Ok((entries, number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_as_typed() {
        assert_eq!(parse_serial("0A:BC:de").unwrap(), "abcde");
        assert_eq!(parse_serial("00").unwrap(), "0");
        assert!(parse_serial("").is_err());
        assert!(parse_serial("xyz")
            .unwrap_err()
            .to_string()
            .contains("hexadecimal"));
        assert_eq!(hex_bytes("abc"), vec![0x0a, 0xbc]);
        assert_eq!(hex_bytes("7f01"), vec![0x7f, 0x01]);
    }
}
