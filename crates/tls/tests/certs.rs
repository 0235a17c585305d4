//! `certs` round trip and `TlsContext::load`'s errors.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Pki;
use jettison_tls::certs::{self, IssueRequest};
use jettison_tls::{TlsContext, TlsError, TlsSettings};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_issue_load_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let ca = certs::create_ca(&ca_dir, "Example Lab", 3650).unwrap();
    assert_eq!(ca, certs::ca_files(&ca_dir));
    assert!(ca.cert.is_file());
    assert_eq!(mode(&ca.key), 0o600);

    let err = certs::create_ca(&ca_dir, "Example Lab", 3650).unwrap_err();
    assert!(matches!(err, TlsError::Exists { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.pem already exists"), "{err}");

    let out = tmp.path().join("hosts");
    let ips = ["10.0.0.17".parse().unwrap()];
    let host = certs::issue(&ca_dir, "desk-17", &["desk-17.lab".into()], &ips, &out, 825).unwrap();
    assert_eq!(host.cert, out.join("desk-17.pem"));
    assert_eq!(mode(&host.key), 0o600);
    let err = certs::issue(&ca_dir, "desk-17", &[], &[], &out, 825).unwrap_err();
    assert!(matches!(err, TlsError::Exists { .. }), "{err:?}");

    // The snippet is valid TOML for the [tls] section.
    let snippet = certs::tls_snippet(&ca.cert, &host);
    #[derive(serde::Deserialize)]
    struct Config {
        tls: TlsSettings,
    }
    let mut settings = toml::from_str::<Config>(&snippet).unwrap().tls;
    assert_eq!(settings.cert, host.cert);
    assert!(settings.allowed_peers.is_empty());
    settings.allowed_peers = vec!["consol-1".into()];
    let ctx = TlsContext::load(&settings).unwrap();
    assert_eq!(ctx.host_name(), "desk-17");
    assert!(ctx.is_allowed("consol-1"));

    // --force: a new certificate and key replace the old ones.
    let old = std::fs::read(&host.key).unwrap();
    let req = IssueRequest {
        host: "desk-17",
        extra_names: &[],
        ips: &[],
        out_dir: &out,
        not_before: std::time::SystemTime::now(),
        not_after: std::time::SystemTime::now() + std::time::Duration::from_secs(86_400),
        overwrite: true,
    };
    certs::issue_request(&ca_dir, &req).unwrap();
    assert_ne!(std::fs::read(&host.key).unwrap(), old);
    assert_eq!(mode(&host.key), 0o600);
    TlsContext::load(&settings).unwrap();
}

#[test]
fn issue_refuses_bad_names_and_missing_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let err = certs::issue(tmp.path(), "desk-1", &[], &[], tmp.path(), 1).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
    certs::create_ca(tmp.path(), "x", 1).unwrap();
    for bad in ["Desk_1", "", "10.0.0.1", "../evil", "ca"] {
        let err = certs::issue(tmp.path(), bad, &[], &[], tmp.path(), 1).unwrap_err();
        assert!(
            matches!(err, TlsError::BadHostName { .. }),
            "{bad}: {err:?}"
        );
    }
    let err = certs::issue(tmp.path(), "ok", &["no way".into()], &[], tmp.path(), 1).unwrap_err();
    assert!(err.to_string().contains("\"no way\""), "{err}");
}

#[test]
fn load_errors_name_the_file() {
    let pki = Pki::new();
    let files = pki.issue("desk-17");
    let good = pki.settings(&files, &["consol-1"]);

    let mut s = good.clone();
    s.key = pki.dir.path().join("missing.key");
    let err = TlsContext::load(&s).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.key"), "{err}");

    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut s = good.clone();
    s.cert = garbage.clone();
    let err = TlsContext::load(&s).unwrap_err();
    assert!(matches!(err, TlsError::BadPem { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.pem"), "{err}");

    std::fs::write(&garbage, "hello\n").unwrap();
    let mut s = good.clone();
    s.ca = garbage.clone();
    let err = TlsContext::load(&s).unwrap_err();
    assert!(
        err.to_string()
            .contains("garbage.pem: no CERTIFICATE block"),
        "{err}"
    );
    let mut s = good.clone();
    s.key = garbage;
    let err = TlsContext::load(&s).unwrap_err();
    assert!(
        err.to_string()
            .contains("garbage.pem: no PRIVATE KEY block"),
        "{err}"
    );

    let mut s = good.clone();
    s.allowed_peers = vec!["Consol 1".into()];
    assert!(matches!(
        TlsContext::load(&s),
        Err(TlsError::BadHostName { .. })
    ));

    // Our own certificate: expired, from another CA, key of another host.
    let expired = pki.issue_expired("desk-old");
    let err = TlsContext::load(&pki.settings(&expired, &[])).unwrap_err();
    assert!(matches!(err, TlsError::OwnCert { .. }), "{err:?}");
    assert!(
        err.to_string().contains("desk-old.pem") && err.to_string().contains("expired"),
        "{err}"
    );

    let other = Pki::new();
    let foreign = other.issue("desk-17");
    let err = TlsContext::load(&pki.settings(&foreign, &[])).unwrap_err();
    assert!(err.to_string().contains("not issued by the CA in"), "{err}");

    let mut s = good.clone();
    s.key = pki.issue("desk-18").key;
    let err = TlsContext::load(&s).unwrap_err();
    assert!(
        err.to_string().contains("desk-18.key: key does not fit"),
        "{err}"
    );

    // deny_unknown_fields on the [tls] section.
    let bad = "ca = \"a\"\ncert = \"b\"\nkey = \"c\"\nallowed_peers = []\nverify = false\n";
    assert!(toml::from_str::<TlsSettings>(bad).is_err());
}
