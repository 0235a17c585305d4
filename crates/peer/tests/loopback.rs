//! The peer on real loopback sockets: chat with heartbeats both ways, a
//! reconnect, mail polls, and the status document.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use jettison_peer::{fetch_status, fetch_status_blocking, Peer, PeerConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn start() -> (
    SocketAddr,
    SocketAddr,
    SocketAddr,
    tokio::task::JoinHandle<()>,
) {
    let mut cfg = PeerConfig::on(Ipv4Addr::LOCALHOST.into());
    cfg.chat.set_port(0);
    cfg.mail.set_port(0);
    cfg.status.set_port(0);
    cfg.ping_interval = Duration::from_millis(100);
    let peer = Peer::bind(cfg).await.unwrap();
    let (c, m, s) = peer.addrs().unwrap();
    // The task is aborted by the handle's owner; a panic drops the runtime.
    let h = tokio::spawn(async move {
        let _ = peer.run().await;
    });
    (c, m, s, h)
}

async fn line(r: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>) -> String {
    tokio::time::timeout(Duration::from_secs(5), r.next_line())
        .await
        .expect("peer answered in time")
        .unwrap()
        .expect("line")
}

#[tokio::test]
async fn chat_mail_and_status() {
    let (chat, mail, status, server) = start().await;

    for round in 0..2u64 {
        let (rd, mut wr) = TcpStream::connect(chat).await.unwrap().into_split();
        let mut rd = BufReader::new(rd).lines();
        wr.write_all(b"HELLO desk-a\n").await.unwrap();
        let (mut acks, mut pongs) = (0, 0);
        for i in 1..=3u64 {
            let n = round * 10 + i;
            wr.write_all(format!("HB {n}\n").as_bytes()).await.unwrap();
            loop {
                let l = line(&mut rd).await;
                if let Some(m) = l.strip_prefix("PING ") {
                    wr.write_all(format!("PONG {m}\n").as_bytes())
                        .await
                        .unwrap();
                    pongs += 1;
                } else {
                    assert_eq!(l, format!("ACK {n}"));
                    acks += 1;
                    break;
                }
            }
        }
        // Wait for at least one PING and answer it.
        while pongs == 0 {
            if let Some(m) = line(&mut rd).await.strip_prefix("PING ") {
                wr.write_all(format!("PONG {m}\n").as_bytes())
                    .await
                    .unwrap();
                pongs += 1;
            }
        }
        wr.write_all(b"NONSENSE\n").await.unwrap();
        assert_eq!(acks, 3);
        let mut l = line(&mut rd).await;
        while l.starts_with("PING ") {
            l = line(&mut rd).await;
        }
        assert!(l.starts_with("ERR "), "{l}");
    } // dropped: closed

    for i in 1..=5u64 {
        let (rd, mut wr) = TcpStream::connect(mail).await.unwrap().into_split();
        wr.write_all(b"POLL desk-a\n").await.unwrap();
        let l = line(&mut BufReader::new(rd).lines()).await;
        let (c, b) = jettison_peer::proto::mailbox(i);
        assert_eq!(l, format!("OK {c} {b}"));
    }

    // Let the peer notice the last close.
    let mut st = fetch_status(status).await.unwrap();
    for _ in 0..50 {
        if !st.clients["desk-a"].connected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        st = fetch_status(status).await.unwrap();
    }
    let c = &st.clients["desk-a"];
    assert_eq!(c.connections, 2);
    assert_eq!(c.resets, 2);
    assert!(!c.connected);
    assert_eq!(c.heartbeats, 6);
    assert_eq!(c.hb_lost, 7, "11..13 after 1..3 skips 4..=10");
    assert_eq!(c.last_hb, 13);
    assert!(c.pongs >= 2 && c.pings_sent >= c.pongs, "{c:?}");
    assert_eq!(c.bad_lines, 2);
    assert_eq!(c.mail_polls, 5);
    let blocking = tokio::task::spawn_blocking(move || fetch_status_blocking(status))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(blocking.clients["desk-a"].mail_polls, 5);

    // A client that does not say HELLO first is told so and dropped.
    let (rd, mut wr) = TcpStream::connect(chat).await.unwrap().into_split();
    wr.write_all(b"HB 1\n").await.unwrap();
    assert_eq!(
        line(&mut BufReader::new(rd).lines()).await,
        "ERR HELLO first"
    );
    server.abort();
}
