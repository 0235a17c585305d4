//! The state server answers only the server that holds a VM: the rules on
//! every record state, then an agent built from a real configuration (a CA
//! and certificates, its state directory, a memory file) asked by the
//! server its record names and by another server its TLS settings allow.

use jettison_handover::{DesktopState, InStep, OutStep};
use jettison_wire::{Custody, ErrorCode, FileKind, Message, Range, PAGE_SIZE};

use crate::state_server::{custody_for, may_serve};
use crate::{Agent, AgentConfig};

/// Every state a record can be in, its server `srv`.
fn states() -> Vec<DesktopState> {
    let server = || "srv".to_string();
    vec![
        DesktopState::Home,
        DesktopState::Migrating {
            server: server(),
            step: OutStep::Preparing,
        },
        DesktopState::Migrating {
            server: server(),
            step: OutStep::Transferring,
        },
        DesktopState::Away {
            server: server(),
            since_ms: 1,
        },
        DesktopState::Returning {
            server: server(),
            since_ms: 1,
            step: InStep::Receiving,
        },
        DesktopState::Returning {
            server: server(),
            since_ms: 1,
            step: InStep::Ready,
        },
    ]
}

#[test]
fn only_the_server_a_record_names_hears_its_custody() {
    for s in states() {
        let holder = custody_for(&s, |r| r == "srv");
        let other = custody_for(&s, |r| r == "srv-2");
        assert_eq!(other, Custody::Unknown, "{s}");
        match s {
            // No server holds a VM at home: nobody hears more than Unknown
            // (which a server settles as it settles Holds).
            DesktopState::Home => assert_eq!(holder, Custody::Unknown),
            _ => assert_eq!(holder, s.custody(), "{s}"),
        }
    }
}

#[test]
fn memory_is_served_only_to_the_holder_and_only_while_the_record_says_so() {
    for s in states() {
        let to_holder = may_serve(&s, "vm", "srv", |r| r == "srv");
        let to_other = may_serve(&s, "vm", "srv-2", |r| r == "srv-2");
        if s.serves_memory() {
            assert_eq!(to_holder, Ok(()), "{s}");
            let (code, why) = to_other.unwrap_err();
            assert_eq!(code, ErrorCode::NotAllowed, "{s}");
            assert!(why.contains("not consolidated on srv-2"), "{why}");
            assert!(why.contains("only to the server that holds it"), "{why}");
        } else {
            for refused in [to_holder, to_other] {
                let (code, why) = refused.unwrap_err();
                assert_eq!(code, ErrorCode::WrongState, "{s}");
                assert!(why.contains("its memory is not served"), "{why}");
            }
        }
    }
}

/// An agent of desktop `desk` with VM `vm` (16 MiB, page `p` < 256
/// holding the byte `p`) recorded as `state`; its server `srv` at `127.0.0.1:1`, and
/// `srv-2` also allowed by its TLS settings.
fn agent(dir: &std::path::Path, state: &DesktopState) -> Agent {
    let tls = dir.join("tls");
    jettison_tls::certs::create_ca(&tls, "state server test", 1).unwrap();
    jettison_tls::certs::issue(&tls, "desk", &[], &[], &tls, 1).unwrap();
    let mem = dir.join("mem");
    std::fs::create_dir_all(&mem).unwrap();
    let bytes: Vec<u8> = (0..256u64)
        .flat_map(|p| vec![p as u8; PAGE_SIZE as usize])
        .collect();
    std::fs::write(mem.join("vm.mem"), bytes).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(mem.join("vm.mem"))
        .unwrap();
    file.set_len(16 << 20).unwrap();
    let state_dir = dir.join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(
        state_dir.join("vm.json"),
        serde_json::to_vec(state).unwrap(),
    )
    .unwrap();
    let d = |p: &str| dir.join(p).display().to_string();
    let config = format!(
        "host = \"desk\"\nserver = \"127.0.0.1:1\"\nserver_name = \"srv\"\nlisten = \"127.0.0.1:0\"\n\
         control_socket = \"{}\"\nstate_dir = \"{}\"\nrun_dir = \"{}\"\nmemory_dir = \"{}\"\n\
         [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nallowed_peers = [\"srv\", \"srv-2\"]\n\
         [[vm]]\nname = \"vm\"\nmemory_mib = 16\n",
        d("agent.sock"),
        d("state"),
        d("run"),
        d("mem"),
        tls.join("ca.pem").display(),
        tls.join("desk.pem").display(),
        tls.join("desk.key").display(),
    );
    Agent::new(AgentConfig::parse(&config).unwrap()).unwrap()
}

fn fetch(page: u64) -> Message {
    Message::Fetch {
        vm: "vm".into(),
        file: FileKind::Memory,
        ranges: vec![Range {
            offset: page * PAGE_SIZE,
            len: PAGE_SIZE,
        }],
    }
}

fn query() -> Message {
    Message::HandoverQuery { vm: "vm".into() }
}

fn custody(m: Message) -> Custody {
    match m {
        Message::HandoverState { custody, .. } => custody,
        other => panic!("expected HandoverState, got {}", other.kind()),
    }
}

fn refusal(m: Message) -> (ErrorCode, String) {
    match m {
        Message::Error(e) => (e.code, e.message),
        other => panic!("expected an error, got {}", other.kind()),
    }
}

#[tokio::test]
async fn another_server_is_refused_the_pages_of_a_vm_away_on_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let away = DesktopState::Away {
        server: "srv".into(),
        since_ms: 1,
    };
    let a = agent(dir.path(), &away);
    let slot = a.slot("vm").unwrap();
    for peer in [Some("srv-2"), None] {
        let (code, why) = refusal(a.answer(peer, fetch(7)).await);
        assert_eq!(code, ErrorCode::NotAllowed, "{why}");
        assert!(why.contains("only to the server that holds it"), "{why}");
        assert_eq!(custody(a.answer(peer, query()).await), Custody::Unknown);
    }
    assert_eq!(slot.files_opened(), 0, "nothing read for a refused fetch");
    // The holder gets the page, and the truth.
    match a.answer(Some("srv"), fetch(7)).await {
        Message::Chunks { chunks } => {
            assert_eq!(chunks.len(), 1);
            assert_eq!(chunks[0].offset, 7 * PAGE_SIZE);
            assert!(chunks[0].data.iter().all(|&b| b == 7));
        }
        other => panic!("expected Chunks, got {other:?}"),
    }
    assert_eq!(
        custody(a.answer(Some("srv"), query()).await),
        Custody::Released
    );
    // Back home: nobody is served.
    slot.record.set(DesktopState::Home).unwrap();
    let (code, _) = refusal(a.answer(Some("srv"), fetch(7)).await);
    assert_eq!(code, ErrorCode::WrongState);
    assert_eq!(
        custody(a.answer(Some("srv"), query()).await),
        Custody::Unknown
    );
}

#[tokio::test]
async fn a_record_that_names_the_server_by_address_stands_for_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    // As agents recorded it before records named the server's certificate.
    let away = DesktopState::Away {
        server: "127.0.0.1:1".into(),
        since_ms: 1,
    };
    let a = agent(dir.path(), &away);
    assert_eq!(a.answer(Some("srv"), fetch(3)).await.kind(), "Chunks");
    assert_eq!(
        custody(a.answer(Some("srv"), query()).await),
        Custody::Released
    );
    let (code, _) = refusal(a.answer(Some("srv-2"), fetch(3)).await);
    assert_eq!(code, ErrorCode::NotAllowed);
    assert_eq!(
        custody(a.answer(Some("srv-2"), query()).await),
        Custody::Unknown
    );
}
