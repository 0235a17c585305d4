//! Revocation over real TCP on 127.0.0.1: a revoked client refused by the
//! server, a revoked server refused by the dialer, and CRLs that must be
//! refused when loaded.

mod common;

use common::{serve_one, Pki, PAYLOAD};
use jettison_tls::certs;
use jettison_tls::{TlsContext, TlsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `msg` to `serve_one`'s echo and reads everything back until the
/// server closes.
async fn echo(conn: &mut jettison_tls::TlsConn, msg: &[u8]) -> Vec<u8> {
    conn.write_all(msg).await.unwrap();
    let mut back = Vec::new();
    conn.read_to_end(&mut back).await.unwrap();
    back
}

#[tokio::test]
async fn revoked_client_is_refused_and_another_is_not() {
    let pki = Pki::new();
    let server_files = pki.issue("consol-1");
    // Both desktops load their contexts before the revocation (a revoked
    // host cannot load its own certificate with the CRL).
    let revoked = pki.context("desk-17", &["consol-1"]);
    let fine = pki.context("desk-18", &["consol-1"]);
    pki.revoke(&["desk-17"]);
    let server =
        TlsContext::load(&pki.settings_with_crl(&server_files, &["desk-17", "desk-18"])).unwrap();
    assert_eq!(server.revoked_serials().unwrap().len(), 1);

    let (addr, task) = serve_one(server.clone()).await;
    let err = revoked
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TlsError::RefusedByPeer { alert, .. } if alert == "CertificateRevoked"),
        "{err:?}"
    );
    assert!(err.to_string().contains("revoked"), "{err}");
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, TlsError::Revoked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("refused: certificate revoked"),
        "{err}"
    );

    let (addr, task) = serve_one(server).await;
    let mut conn = fine
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-1")
        .await
        .unwrap();
    let mut got = vec![0u8; PAYLOAD.len()];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(got, PAYLOAD);
    assert_eq!(echo(&mut conn, b"desk-18 here").await, b"desk-18 here");
    assert_eq!(task.await.unwrap().unwrap().name, "desk-18");
}

#[tokio::test]
async fn revoked_server_is_refused_by_the_dialer() {
    let pki = Pki::new();
    let bad_server = pki.context("consol-2", &["desk-17"]);
    let good_server = pki.context("consol-1", &["desk-17"]);
    let desk = pki.issue("desk-17");
    pki.revoke(&["consol-2"]);
    let client =
        TlsContext::load(&pki.settings_with_crl(&desk, &["consol-1", "consol-2"])).unwrap();

    let (addr, task) = serve_one(bad_server).await;
    let err = client
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-2")
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::Revoked { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("server consol-2 at 127.0.0.1:"),
        "{err}"
    );
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, TlsError::RefusedByPeer { alert, .. } if alert == "CertificateRevoked"),
        "{err:?}"
    );

    let (addr, task) = serve_one(good_server).await;
    let mut conn = client
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-1")
        .await
        .unwrap();
    let mut got = vec![0u8; PAYLOAD.len()];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(echo(&mut conn, b"desk-17 here").await, b"desk-17 here");
    assert_eq!(task.await.unwrap().unwrap().name, "desk-17");
}

#[test]
fn crl_of_another_ca_is_refused_at_load() {
    let pki = Pki::new();
    let other = Pki::new(); // same organisation name: told apart by its key
    let files = pki.issue("consol-1");
    other.issue("desk-99");
    let other_crl = other.revoke(&["desk-99"]);
    let settings = jettison_tls::TlsSettings {
        crl: Some(other_crl.clone()),
        ..pki.settings(&files, &["desk-17"])
    };
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(matches!(err, TlsError::BadCrl { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&other_crl.display().to_string()), "{text}");
    assert!(
        text.contains("not signed by this deployment's CA"),
        "{text}"
    );
}

#[test]
fn missing_or_garbled_crl_is_refused_and_own_revocation_too() {
    let pki = Pki::new();
    let files = pki.issue("consol-1");
    let crl = certs::crl_path(pki.dir.path());
    let settings = pki.settings_with_crl(&files, &["desk-17"]);

    let err = TlsContext::load(&settings).unwrap_err();
    assert!(
        matches!(&err, TlsError::BadCrl { path, .. } if path == &crl),
        "{err:?}"
    );
    assert!(err.to_string().contains("cannot read it"), "{err}");

    std::fs::write(
        &crl,
        b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(matches!(err, TlsError::BadCrl { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("not a certificate revocation list"),
        "{err}"
    );

    // A valid CRL of this CA, revoking someone else: loads.
    std::fs::remove_file(&crl).unwrap();
    pki.issue("desk-17");
    pki.revoke(&["desk-17"]);
    let ctx = TlsContext::load(&settings).unwrap();
    assert_eq!(ctx.revoked_serials().unwrap().len(), 1);
    assert!(
        ctx.status_text().contains("CRL: 1 revoked"),
        "{}",
        ctx.status_text()
    );

    // Our own certificate revoked: refused, saying so.
    pki.revoke(&["consol-1"]);
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(matches!(err, TlsError::OwnCert { .. }), "{err:?}");
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[test]
fn crl_grows_and_keeps_its_entries() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let first = pki.issue("desk-17");
    // Reissued: revoking the host covers both of its certificates.
    let second = certs::issue_request(
        dir,
        &certs::IssueRequest {
            host: "desk-17",
            extra_names: &[],
            ips: &[],
            out_dir: dir,
            not_before: std::time::SystemTime::now(),
            not_after: std::time::SystemTime::now() + std::time::Duration::from_secs(86_400),
            overwrite: true,
        },
    )
    .unwrap();
    assert_eq!(first, second);
    let d18 = pki.issue("desk-18");
    let serial_of = |f: &certs::CertFiles| certs::file_serial(&f.cert).unwrap();
    assert_eq!(certs::host_serials(dir, "desk-17").unwrap().len(), 2);
    let crl = certs::crl_path(dir);
    let now = std::time::SystemTime::now();

    let r = certs::revoke(dir, &crl, &["desk-17".into()], &[], now).unwrap();
    assert_eq!((r.added.len(), r.total, r.crl_number), (2, 2, 1));
    std::fs::write(&crl, &r.crl_pem).unwrap();

    // By serial, typed with colons and upper case; desk-17 again is "already".
    let s18 = serial_of(&d18);
    let typed: String = s18
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let r = certs::revoke(dir, &crl, &["desk-17".into()], &[typed], now).unwrap();
    assert_eq!(r.added.len(), 1);
    assert_eq!(r.added[0].serial, s18);
    assert_eq!(r.added[0].host.as_deref(), Some("desk-18"));
    assert_eq!(r.already.len(), 2);
    assert_eq!((r.total, r.crl_number), (3, 2));
    std::fs::write(&crl, &r.crl_pem).unwrap();

    let ctx = TlsContext::load(&pki.settings_with_crl(&pki.issue("consol-1"), &[])).unwrap();
    let mut revoked = ctx.revoked_serials().unwrap();
    revoked.sort();
    let mut want = certs::host_serials(dir, "desk-17").unwrap();
    want.push(s18);
    want.sort();
    assert_eq!(revoked, want);

    // Unknown host, nothing to revoke, another CA's CRL: refused.
    let e = certs::revoke(dir, &crl, &["desk-404".into()], &[], now).unwrap_err();
    assert!(
        e.to_string()
            .contains("no certificate issued to \"desk-404\""),
        "{e}"
    );
    let e = certs::revoke(dir, &crl, &[], &[], now).unwrap_err();
    assert!(e.to_string().contains("nothing to revoke"), "{e}");
    let other = Pki::new();
    other.issue("desk-1");
    let other_crl = other.revoke(&["desk-1"]);
    let e = certs::revoke(dir, &other_crl, &["desk-18".into()], &[], now).unwrap_err();
    assert!(
        e.to_string().contains("not signed by this deployment's CA"),
        "{e}"
    );
}
