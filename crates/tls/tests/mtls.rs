//! Mutual TLS over real TCP on 127.0.0.1: the accepted case and every
//! refusal, seen from both ends.

mod common;

use common::{assert_refused_with_alert, bare_attempt, bare_client, serve_one, Pki, Seen, PAYLOAD};
use jettison_tls::TlsError;
use jettison_wire::handshake::{connect as wire_connect, judge_hello};
use jettison_wire::{Message, Role, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn mutual_tls_works_both_ways() {
    let pki = Pki::new();
    let server = pki.context("consol-1", &["desk-17"]);
    let client = pki.context("desk-17", &["consol-1"]);
    assert_eq!(server.host_name(), "consol-1");
    assert_eq!(client.host_name(), "desk-17");

    // Raw bytes both ways.
    let (addr, task) = serve_one(server.clone()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut conn = client.connect(tcp, "consol-1").await.unwrap();
    let mut got = vec![0u8; PAYLOAD.len()];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(got, PAYLOAD);
    conn.write_all(b"ping from desk-17").await.unwrap();
    let mut echo = Vec::new();
    conn.read_to_end(&mut echo).await.unwrap();
    assert_eq!(echo, b"ping from desk-17");
    let id = task.await.unwrap().unwrap();
    assert_eq!(id.name, "desk-17");
    assert_eq!(id.names, vec!["desk-17".to_string()]);

    // jettison frames inside TLS: Hello / Welcome.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (conn, id) = server.accept(tcp).await.unwrap();
        let mut t = Transport::new(conn);
        let hello = t.recv().await.unwrap().unwrap();
        let (hello, reply) = judge_hello(&hello, &[Role::Agent], "consol-1").unwrap();
        t.send(&reply).await.unwrap();
        (id.name, hello.host)
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut t = Transport::new(client.connect(tcp, "consol-1").await.unwrap());
    wire_connect(&mut t, Role::Agent, "desk-17").await.unwrap();
    assert_eq!(
        accepting.await.unwrap(),
        ("desk-17".to_string(), "desk-17".to_string())
    );
}

#[tokio::test]
async fn refuses_plaintext_client() {
    let pki = Pki::new();
    let (addr, task) = serve_one(pki.context("consol-1", &["desk-17"])).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let hello = Message::Hello(jettison_wire::Hello {
        magic: jettison_wire::MAGIC,
        major: jettison_wire::PROTOCOL_MAJOR,
        minor: jettison_wire::PROTOCOL_MINOR,
        role: Role::Agent,
        host: "desk-17".into(),
    });
    tcp.write_all(&jettison_wire::encode(&hello).unwrap())
        .await
        .unwrap();
    let mut got = Vec::new();
    // Closure or reset: either way, nothing came back.
    let _ = tcp.read_to_end(&mut got).await;
    assert!(got.is_empty(), "plaintext client received {got:?}");
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(err, TlsError::NotTls { first_byte: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a TLS client"), "{err}");
}

#[tokio::test]
async fn refuses_client_certificate_from_another_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let (addr, task) = serve_one(pki.context("consol-1", &["desk-17"])).await;
    // Trusts our CA, presents a certificate from the other one.
    let config = bare_client(&pki.ca(), &other.issue("desk-17"));
    assert_refused_with_alert(&bare_attempt(config, addr, "consol-1").await, "UnknownCA");
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, TlsError::UnknownCa { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("not issued by this deployment's CA"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_expired_client_certificate() {
    let pki = Pki::new();
    let (addr, task) = serve_one(pki.context("consol-1", &["desk-17"])).await;
    let config = bare_client(&pki.ca(), &pki.issue_expired("desk-17"));
    assert_refused_with_alert(
        &bare_attempt(config, addr, "consol-1").await,
        "CertificateExpired",
    );
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, TlsError::Expired { .. }), "{err:?}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn refuses_valid_but_unauthorized_client() {
    let pki = Pki::new();
    let server = pki.context("consol-1", &["desk-17"]);
    let files = pki.issue("desk-99");
    let client = jettison_tls::TlsContext::load(&pki.settings(&files, &["consol-1"])).unwrap();

    // Through TlsContext::connect: the refusal is connect's error.
    let (addr, task) = serve_one(server.clone()).await;
    let err = client
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TlsError::RefusedByPeer { alert, .. } if alert == "AccessDenied"),
        "{err:?}"
    );
    assert!(err.to_string().contains("allowed_peers"), "{err}");
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, TlsError::NotAuthorized { names, .. } if names == &["desk-99".to_string()]),
        "{err:?}"
    );
    assert!(err.to_string().contains("not authorized"), "{err}");

    // Through a bare client that reads on: nothing but the alert.
    let (addr, task) = serve_one(server).await;
    let config = bare_client(&pki.ca(), &files);
    assert_refused_with_alert(
        &bare_attempt(config, addr, "consol-1").await,
        "AccessDenied",
    );
    assert!(matches!(
        task.await.unwrap(),
        Err(TlsError::NotAuthorized { .. })
    ));
}

#[tokio::test]
async fn client_refuses_server_from_another_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let (addr, task) = serve_one(other.context("consol-1", &["desk-17"])).await;
    let client = pki.context("desk-17", &["consol-1"]);
    let err = client
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-1")
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::UnknownCa { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("server consol-1 at 127.0.0.1:"),
        "{err}"
    );
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, TlsError::RefusedByPeer { alert, .. } if alert == "UnknownCA"),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_refuses_server_with_another_name() {
    let pki = Pki::new();
    let (addr, task) = serve_one(pki.context("consol-2", &["desk-17"])).await;
    let client = pki.context("desk-17", &["consol-1", "consol-2"]);
    let err = client
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-1")
        .await
        .unwrap_err();
    match &err {
        TlsError::WrongName {
            expected,
            presented,
            ..
        } => {
            assert_eq!(expected, "consol-1");
            assert_eq!(presented, &["DnsName(\"consol-2\")".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, TlsError::RefusedByPeer { .. }), "{err:?}");
}

#[tokio::test]
async fn client_refuses_name_outside_its_allowed_peers() {
    let pki = Pki::new();
    let (addr, task) = serve_one(pki.context("consol-9", &["desk-17"])).await;
    let client = pki.context("desk-17", &["consol-1"]);
    assert!(!client.is_allowed("consol-9"));
    let err = client
        .connect(TcpStream::connect(addr).await.unwrap(), "consol-9")
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::PeerNotAllowed { .. }), "{err:?}");
    assert!(err.to_string().contains("not in allowed_peers"), "{err}");
    // Nothing was sent: the server saw the socket close unused.
    let err = task.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("closed before sending anything"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_client_without_certificate() {
    let pki = Pki::new();
    let (addr, task) = serve_one(pki.context("consol-1", &["desk-17"])).await;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_file_iter(pki.ca()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    match bare_attempt(std::sync::Arc::new(config), addr, "consol-1").await {
        Seen::AfterHandshake(got, Some(_)) => assert!(got.is_empty()),
        other => panic!("{other:?}"),
    }
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
}

#[tokio::test]
async fn stalled_handshake_times_out() {
    let pki = Pki::new();
    let (addr, task) = serve_one(pki.context("consol-1", &["desk-17"])).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The start of a TLS record, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let started = std::time::Instant::now();
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, TlsError::Timeout { secs: 10, .. }), "{err:?}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got).await;
    assert!(got.is_empty(), "{got:?}");
}
