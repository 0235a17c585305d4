//! A CA and host certificates for small deployments (rcgen, ECDSA P-256).
//!
//! `create_ca` writes `ca.pem` and `ca.key` into a directory; `issue` writes
//! `<host>.pem` and `<host>.key`, a certificate for both TLS roles (extended
//! key usages serverAuth and clientAuth) whose first DNS name is the host's
//! jettison name, and records it in the CA's index (`issued.txt`). Keys are
//! written with mode 0600; nothing is overwritten unless asked. `revoke`
//! builds the CA's certificate revocation list (see [`crate::revoke`]'s
//! items re-exported here).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::files::{make_dir, read_text, refuse_existing, write_files};
use crate::{validate_host_name, TlsError};

pub use crate::crl::serial_hex;
pub use crate::revoke::{
    crl_path, file_serial, host_serials, issued, parse_serial, revoke, serial_of, Issued,
    Revocation, RevokedCert, CRL_FILE, ISSUED_FILE,
};

/// Certificates start this long before "now", for clocks slightly behind.
const BACKDATE: Duration = Duration::from_secs(300);

/// A certificate and its key on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// Where the CA of `dir` lives: `ca.pem` and `ca.key`.
pub fn ca_files(dir: &Path) -> CertFiles {
    host_files(dir, "ca")
}

/// Where the certificate of `host` goes in `dir`: `<host>.pem`, `<host>.key`.
pub fn host_files(dir: &Path, host: &str) -> CertFiles {
    let (cert, key) = (format!("{host}.pem"), format!("{host}.key"));
    CertFiles {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

/// Creates a CA valid for `days` days in `dir` (created if needed); refuses
/// to overwrite an existing CA.
pub fn create_ca(dir: &Path, org: &str, days: u32) -> Result<CertFiles, TlsError> {
    let files = ca_files(dir);
    refuse_existing(&files, false)?;
    let (not_before, not_after) = validity_days(days)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{org} jettison CA"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    make_dir(dir)?;
    write_files(&files, &cert.pem(), &key.serialize_pem(), false)?;
    tracing::info!(dir = %dir.display(), org, days, "created CA");
    Ok(files)
}

/// What to issue; see [`issue_request`].
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    /// The host's jettison name: the first DNS name, and the file names.
    pub host: &'a str,
    /// More DNS names.
    pub extra_names: &'a [String],
    /// IP addresses to include as IP SANs (informational: jettison checks names).
    pub ips: &'a [IpAddr],
    /// Where `<host>.pem` and `<host>.key` go.
    pub out_dir: &'a Path,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Replace an existing certificate and key of this host.
    pub overwrite: bool,
}

/// Issues a certificate for `host`, valid for `days` days, signed by the CA in
/// `ca_dir`, into `out_dir`; refuses to overwrite.
pub fn issue(
    ca_dir: &Path,
    host: &str,
    extra_names: &[String],
    ips: &[IpAddr],
    out_dir: &Path,
    days: u32,
) -> Result<CertFiles, TlsError> {
    let (not_before, not_after) = validity_days(days)?;
    issue_with_validity(
        ca_dir,
        host,
        extra_names,
        ips,
        out_dir,
        not_before,
        not_after,
    )
}

/// [`issue`] with an explicit validity period (tests use it for an expired
/// certificate); refuses to overwrite.
pub fn issue_with_validity(
    ca_dir: &Path,
    host: &str,
    extra_names: &[String],
    ips: &[IpAddr],
    out_dir: &Path,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertFiles, TlsError> {
    issue_request(
        ca_dir,
        &IssueRequest {
            host,
            extra_names,
            ips,
            out_dir,
            not_before,
            not_after,
            overwrite: false,
        },
    )
}

/// Issues a host certificate as described by `req`, signed by the CA in
/// `ca_dir`.
pub fn issue_request(ca_dir: &Path, req: &IssueRequest<'_>) -> Result<CertFiles, TlsError> {
    check_host_name(req.host)?;
    let mut names = vec![req.host.to_owned()];
    for n in req.extra_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut sans = Vec::new();
    for n in &names {
        validate_host_name(n).map_err(|reason| TlsError::BadHostName {
            name: n.clone(),
            reason,
        })?;
        let ia5 = n.as_str().try_into().map_err(TlsError::Generate)?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    if req.not_after <= req.not_before {
        return Err(TlsError::Config("validity ends before it starts".into()));
    }
    let files = host_files(req.out_dir, req.host);
    refuse_existing(&files, req.overwrite)?;

    let (ca_pem, issuer) = ca_issuer(ca_dir)?;
    warn_if_outliving_ca(&ca_pem, req.not_after);

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, req.host);
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = OffsetDateTime::from(req.not_before);
    params.not_after = OffsetDateTime::from(req.not_after);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    make_dir(req.out_dir)?;
    // In the CA's index first, so that `revoke --host` finds every
    // certificate that may exist.
    crate::revoke::record_issued(ca_dir, req.host, cert.der(), &files.cert)?;
    write_files(&files, &cert.pem(), &key.serialize_pem(), req.overwrite)?;
    tracing::info!(host = req.host, cert = %files.cert.display(), "issued host certificate");
    Ok(files)
}

/// The CA of `ca_dir` as a signer: its certificate (PEM) and key.
pub(crate) fn ca_issuer(ca_dir: &Path) -> Result<(String, Issuer<'static, KeyPair>), TlsError> {
    let ca = ca_files(ca_dir);
    let ca_pem = read_text(&ca.cert)?;
    let ca_key = KeyPair::from_pem(&read_text(&ca.key)?).map_err(|e| TlsError::BadPem {
        path: ca.key.clone(),
        reason: format!("not a usable CA key: {e}"),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| TlsError::BadPem {
        path: ca.cert.clone(),
        reason: format!("not a usable CA certificate: {e}"),
    })?;
    Ok((ca_pem, issuer))
}

/// Checks a name for a new host certificate: a valid host name
/// ([`validate_host_name`]) other than `ca`, the CA's own file name.
pub fn check_host_name(host: &str) -> Result<(), TlsError> {
    let reason = match validate_host_name(host) {
        Ok(()) if host == "ca" => "reserved for the CA's own files".to_owned(),
        Ok(()) => return Ok(()),
        Err(reason) => reason,
    };
    Err(TlsError::BadHostName {
        name: host.to_owned(),
        reason,
    })
}

/// A ready-to-paste `[tls]` section for a host's config file.
pub fn tls_snippet(ca: &Path, host: &CertFiles) -> String {
    let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    format!(
        "[tls]\nca = {}\ncert = {}\nkey = {}\n\
         # Host names (first DNS name of their certificates) this host talks to:\n\
         # on a desktop, the servers that may take its VM and fetch its memory;\n\
         # on a server, the desktops it accepts. For example [\"consol-1\"].\n\
         allowed_peers = []\n\
         # The CA's revocation list (`jettison certs revoke` writes it), once\n\
         # there is one; then reload: systemctl reload jettison-agent (or -server).\n\
         # crl = \"/etc/jettison/tls/ca.crl\"\n",
        quote(ca),
        quote(&host.cert),
        quote(&host.key)
    )
}

fn validity_days(days: u32) -> Result<(SystemTime, SystemTime), TlsError> {
    if days == 0 {
        return Err(TlsError::Config("validity must be at least 1 day".into()));
    }
    let now = SystemTime::now();
    Ok((
        now - BACKDATE,
        now + Duration::from_secs(u64::from(days) * 86_400),
    ))
}

fn warn_if_outliving_ca(ca_pem: &str, not_after: SystemTime) {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let Ok(der) = CertificateDer::from_pem_slice(ca_pem.as_bytes()) else {
        return;
    };
    let Ok((_, ca_end)) = crate::names::validity(&der) else {
        return;
    };
    let end = OffsetDateTime::from(not_after).unix_timestamp();
    if end > ca_end {
        tracing::warn!("the certificate outlives the CA; it will be refused once the CA expires");
    }
}
