//! Host names: validation and extraction from certificates.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Checks that `name` can be a jettison host name: a DNS name of lowercase
/// letters, digits, `-` and `.` (labels of 1 to 63 characters, not starting or
/// ending with `-`; at most 253 characters), not an IP address, no wildcard.
///
/// Returns why not, if it cannot.
pub fn validate_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("an IP address, not a host name (use --ip for addresses)".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (leading, trailing or doubled '.')".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "character {c:?} not allowed (lowercase letters, digits, '-' and '.' only)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    if name.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err("all digits".into());
    }
    Ok(())
}

/// The DNS subject alternative names of a DER certificate, in certificate
/// order (lowercased).
pub fn dns_names(cert_der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName extension: {e}"))?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The first of `names` that is in `allowed` (exact, case-insensitive).
pub(crate) fn first_allowed<'a>(names: &'a [String], allowed: &[String]) -> Option<&'a String> {
    names
        .iter()
        .find(|n| allowed.iter().any(|a| a.eq_ignore_ascii_case(n)))
}

/// The validity period of a DER certificate, as Unix seconds.
pub(crate) fn validity(cert_der: &[u8]) -> Result<(i64, i64), String> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["desk-17", "consol-1", "a", "desk-17.lab.example", "x1"] {
            assert_eq!(validate_host_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "Desk", "desk_17", "-desk", "desk-", "a..b", ".a", "a.", "*.lab", "10.0.0.1",
            "::1", "123", "desk 17", "dé",
        ] {
            assert!(validate_host_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_host_name(&"a".repeat(64)).is_err());
        assert!(validate_host_name(&"a".repeat(63)).is_ok());
        assert!(validate_host_name(&["a"; 128].join(".")).is_err());
    }

    #[test]
    fn san_extraction() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["desk-17".into(), "10.1.2.3".into()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::DnsName("Desk-17.LAB".try_into().unwrap()));
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            dns_names(cert.der()).unwrap(),
            vec!["desk-17".to_string(), "desk-17.lab".to_string()]
        );
        assert!(dns_names(b"garbage").is_err());

        let names = dns_names(cert.der()).unwrap();
        let allowed = vec!["consol-1".to_string(), "DESK-17.lab".to_string()];
        assert_eq!(first_allowed(&names, &allowed).unwrap(), "desk-17.lab");
        assert!(first_allowed(&names, &["desk-18".to_string()]).is_none());
        assert!(first_allowed(&names, &[]).is_none());
    }

    #[test]
    fn no_san_means_no_names() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(dns_names(cert.der()).unwrap().is_empty());
    }
}
