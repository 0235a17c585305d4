//! Reloading a context over real TCP on 127.0.0.1: new settings apply to
//! the next handshakes without a new context, established connections of
//! peers the new settings refuse are closed (others carry on), and invalid
//! settings leave the old ones in force.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::Pki;
use jettison_tls::{TlsConn, TlsContext, TlsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Accepts connections with `ctx` until the test ends; each accepted one
/// echoes what it reads. Each handshake's outcome goes to the channel.
async fn serve_many(
    ctx: Arc<TlsContext>,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Result<String, TlsError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (ctx, tx) = (ctx.clone(), tx.clone());
            tokio::spawn(async move {
                match ctx.accept(tcp).await {
                    Ok((mut conn, id)) => {
                        let _ = tx.send(Ok(id.name));
                        let mut buf = [0u8; 256];
                        loop {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if conn.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn dial(ctx: &TlsContext, addr: SocketAddr, name: &str) -> Result<TlsConn, TlsError> {
    ctx.connect(TcpStream::connect(addr).await.unwrap(), name)
        .await
}

/// Whether the connection still carries data both ways.
async fn alive(conn: &mut TlsConn) -> bool {
    let msg = b"still there?";
    if conn.write_all(msg).await.is_err() || conn.flush().await.is_err() {
        return false;
    }
    let mut got = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut got)).await {
        Ok(Ok(_)) => &got == msg,
        Ok(Err(_)) => false,
        Err(_) => panic!("neither an echo nor a closed connection within 10 s"),
    }
}

async fn outcome(
    rx: &mut mpsc::UnboundedReceiver<Result<String, TlsError>>,
) -> Result<String, TlsError> {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a handshake outcome")
        .unwrap()
}

#[tokio::test]
async fn a_reload_applies_allowed_peers_without_restart() {
    let pki = Pki::new();
    let files = pki.issue("consol-1");
    let server = TlsContext::load(&pki.settings(&files, &["desk-17"])).unwrap();
    let d17 = pki.context("desk-17", &["consol-1"]);
    let d18_files = pki.issue("desk-18");
    let d18 = TlsContext::load(&pki.settings(&d18_files, &["consol-1"])).unwrap();
    let (addr, mut rx) = serve_many(server.clone()).await;

    let err = dial(&d18, addr, "consol-1").await.unwrap_err();
    assert!(
        matches!(&err, TlsError::RefusedByPeer { alert, .. } if alert == "AccessDenied"),
        "{err:?}"
    );
    assert!(matches!(
        outcome(&mut rx).await,
        Err(TlsError::NotAuthorized { .. })
    ));
    let mut c17 = dial(&d17, addr, "consol-1").await.unwrap();
    assert_eq!(outcome(&mut rx).await.unwrap(), "desk-17");
    assert!(alive(&mut c17).await);

    // desk-18 in, desk-17 out: the same context, the same listener.
    let r = server.reload(&pki.settings(&files, &["desk-18"])).unwrap();
    assert_eq!(r.kept, 0);
    assert_eq!(r.closed.len(), 1, "{r:?}");
    assert!(r.closed[0].contains("not authorized"), "{r:?}");
    assert!(
        !alive(&mut c17).await,
        "desk-17's connection outlived its removal"
    );
    assert_eq!(server.allowed_peers(), vec!["desk-18".to_string()]);

    let mut c18 = dial(&d18, addr, "consol-1").await.unwrap();
    assert_eq!(outcome(&mut rx).await.unwrap(), "desk-18");
    assert!(alive(&mut c18).await);
    let err = dial(&d17, addr, "consol-1").await.unwrap_err();
    assert!(
        matches!(&err, TlsError::RefusedByPeer { alert, .. } if alert == "AccessDenied"),
        "{err:?}"
    );
    assert!(matches!(
        outcome(&mut rx).await,
        Err(TlsError::NotAuthorized { .. })
    ));

    // The dialling side: desk-18 no longer lists consol-1.
    let r = d18
        .reload(&pki.settings(&d18_files, &["consol-2"]))
        .unwrap();
    assert_eq!((r.closed.len(), r.kept), (1, 0), "{r:?}");
    assert!(
        r.closed[0].contains("[\"consol-1\"] is not authorized"),
        "{r:?}"
    );
    assert!(!alive(&mut c18).await);
    let err = dial(&d18, addr, "consol-1").await.unwrap_err();
    assert!(matches!(err, TlsError::PeerNotAllowed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_reload_with_a_crl_closes_revoked_peers_on_both_sides() {
    let pki = Pki::new();
    let files = pki.issue("consol-1");
    let server = TlsContext::load(&pki.settings(&files, &["desk-17", "desk-18"])).unwrap();
    let d17 = pki.context("desk-17", &["consol-1"]);
    let d18_files = pki.issue("desk-18");
    let d18 = TlsContext::load(&pki.settings(&d18_files, &["consol-1"])).unwrap();
    let (addr, mut rx) = serve_many(server.clone()).await;
    let mut c17 = dial(&d17, addr, "consol-1").await.unwrap();
    let mut c18 = dial(&d18, addr, "consol-1").await.unwrap();
    for _ in 0..2 {
        outcome(&mut rx).await.unwrap();
    }

    // The server revokes desk-17: its connection goes, desk-18's stays.
    pki.revoke(&["desk-17"]);
    let r = server
        .reload(&pki.settings_with_crl(&files, &["desk-17", "desk-18"]))
        .unwrap();
    assert_eq!((r.closed.len(), r.kept), (1, 1), "{r:?}");
    assert!(r.closed[0].contains("revoked"), "{r:?}");
    assert!(!alive(&mut c17).await);
    assert!(alive(&mut c18).await);
    let err = dial(&d17, addr, "consol-1").await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    assert!(matches!(
        outcome(&mut rx).await,
        Err(TlsError::Revoked { .. })
    ));

    // The dialling side: desk-18 learns that consol-1 is revoked.
    pki.revoke(&["consol-1"]);
    let r = d18
        .reload(&pki.settings_with_crl(&d18_files, &["consol-1"]))
        .unwrap();
    assert_eq!((r.closed.len(), r.kept), (1, 0), "{r:?}");
    assert!(r.closed[0].contains("revoked"), "{r:?}");
    assert!(!alive(&mut c18).await);
    let err = dial(&d18, addr, "consol-1").await.unwrap_err();
    assert!(matches!(err, TlsError::Revoked { .. }), "{err:?}");
}

#[tokio::test]
async fn a_bad_reload_keeps_the_settings_in_force() {
    let pki = Pki::new();
    let files = pki.issue("consol-1");
    let good = pki.settings(&files, &["desk-17"]);
    let server = TlsContext::load(&good).unwrap();
    let d17 = pki.context("desk-17", &["consol-1"]);
    let d18 = pki.context("desk-18", &["consol-1"]);
    let (addr, mut rx) = serve_many(server.clone()).await;
    let mut c17 = dial(&d17, addr, "consol-1").await.unwrap();
    outcome(&mut rx).await.unwrap();

    let other = Pki::new();
    let foreign = other.issue("consol-1");
    let renamed = pki.issue("consol-2");
    let bad = [
        (
            // A CRL that does not exist (and desk-18 allowed: not applied).
            pki.settings_with_crl(&files, &["desk-17", "desk-18"]),
            "cannot read it",
        ),
        (
            jettison_tls::TlsSettings {
                ca: pki.ca(),
                ..other.settings(&foreign, &["desk-17", "desk-18"])
            },
            "not issued by the CA",
        ),
        (pki.settings(&renamed, &["desk-18"]), "needs a restart"),
        (pki.settings(&files, &["Desk_18"]), "invalid host name"),
    ];
    for (settings, why) in bad {
        let err = server.reload(&settings).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    // Still the old settings: desk-17's connection and new handshakes work,
    // desk-18 is still refused, no CRL is in force.
    assert!(alive(&mut c17).await);
    let mut again = dial(&d17, addr, "consol-1").await.unwrap();
    assert_eq!(outcome(&mut rx).await.unwrap(), "desk-17");
    assert!(alive(&mut again).await);
    dial(&d18, addr, "consol-1").await.unwrap_err();
    assert!(matches!(
        outcome(&mut rx).await,
        Err(TlsError::NotAuthorized { .. })
    ));
    assert_eq!(server.revoked_serials(), None);
    assert_eq!(server.host_name(), "consol-1");

    // A good reload after the bad ones applies.
    let r = server.reload(&good).unwrap();
    assert_eq!((r.closed.len(), r.kept), (0, 2), "{r:?}");
}
