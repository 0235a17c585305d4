//! The crash matrix on the fake seam, both daemons at once: the agent's
//! handover procedures (`migrate_out`, `bring_home`) and the server's agent
//! connection (`intake::serve_agent`) run for real on `FakeVm`s, joined by
//! a link that stops at the message that follows an injection point (as
//! the chaos harness pauses there) while the fault strikes: a daemon
//! killed (and restarted on its records), a QEMU killed, the link slow, or
//! the message dropped. Then both sides settle by asking each other.
//!
//! Every named injection point is walked with every fault (no case may
//! leave two copies running, or a side in doubt), and every case of the
//! real matrix (`crates/chaos/src/cases.rs`, compiled in here as it is)
//! must end as it promises. The agent's settle task is not on the seam yet
//! (it acts through `Qemu` and QMP): the restarted agent's settling is
//! modelled here after `crates/agent/src/settle.rs`, on
//! `DesktopState::settle`.

use std::sync::Arc;
use std::time::Duration;

use jettison_agent::handover_in::{bring_home, HomeFiles, InOutcome};
use jettison_agent::handover_out::{migrate_out, OutRequest, OutTimeouts};
use jettison_handover::DesktopState;
use jettison_qemu::fake::FakeVm;
use jettison_wire::{Role, Transport, PAGE_SIZE};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};

use crate::test_host::*;

mod desktop;

#[path = "../../../chaos/src/cases.rs"]
#[allow(dead_code)]
mod cases;

use cases::{Fault, Op, Side};
use desktop::{Desktop, Placement};

const T: OutTimeouts = OutTimeouts {
    server: Duration::from_secs(5),
    short: Duration::from_secs(1),
};

/// Each named injection point (`jettison_daemon::fault::point`), the
/// handover that reaches it, and the message sent right after it (where
/// the link stops).
const POINTS: &[(&str, Op, &str)] = &[
    ("agent:Preparing", Op::Migrate, "MigratePrepare"),
    ("server:Preparing", Op::Migrate, "Prepared"),
    ("agent:Transferring", Op::Migrate, "MigrateLoad"),
    ("server:Loaded", Op::Migrate, "MigrateLoaded"),
    ("agent:Away", Op::Migrate, "MigrateCommit"),
    ("server:Running", Op::Migrate, "MigrateCommitted"),
    ("agent:Receiving", Op::Reintegrate, "Reintegrate"),
    ("server:Sending", Op::Reintegrate, "ReintegrateBegin"),
    ("agent:Ready", Op::Reintegrate, "ReintegrateReady"),
    ("server:Released", Op::Reintegrate, "ReintegrateCommitted"),
    ("agent:Home", Op::Reintegrate, "ReintegrateDone"),
];

/// The message at which a case strikes: the one after its point, or the
/// one it drops.
fn strike_message(step: &str) -> &'static str {
    if let Some(&(_, _, m)) = POINTS.iter().find(|p| p.0 == step) {
        return m;
    }
    POINTS
        .iter()
        .map(|p| p.2)
        .find(|m| *m == step)
        .unwrap_or_else(|| panic!("{step}: not a known injection point or message"))
}

/// A pause of the link at a message: forward it (`true`) or cut the link.
type Pause = oneshot::Sender<bool>;

/// An agent connection to `host` through a link that stops at the first
/// message of kind `at`, either way, until told what to do.
async fn link(
    host: &Arc<FakeHost>,
    at: Option<&'static str>,
) -> (
    Transport<DuplexStream>,
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<Pause>,
) {
    let (to_server, server) = serve(host);
    let (agent, proxy) = tokio::io::duplex(1 << 20);
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut a = Transport::new(proxy);
        let mut s = Transport::new(to_server);
        let mut at = at;
        loop {
            let (m, to_s) = tokio::select! {
                m = a.recv() => match m { Ok(Some(m)) => (m, true), _ => return },
                m = s.recv() => match m { Ok(Some(m)) => (m, false), _ => return },
            };
            if at == Some(m.kind()) {
                at = None;
                let (go, forward) = oneshot::channel();
                if tx.send(go).await.is_err() || !forward.await.unwrap_or(false) {
                    return;
                }
            }
            let sent = if to_s {
                s.send(&m).await
            } else {
                a.send(&m).await
            };
            if sent.is_err() {
                return;
            }
        }
    });
    let mut t = Transport::new(agent);
    jettison_wire::handshake::connect(&mut t, Role::Agent, DESKTOP)
        .await
        .unwrap();
    (t, server, rx)
}

/// What a handover's procedure returned.
enum Ended {
    Out(bool),
    In(Box<InOutcome>),
}

/// Runs `op` between `d` and `host`, the fault striking at `strike`.
async fn handover(
    d: &mut Desktop,
    host: &mut Arc<FakeHost>,
    op: Op,
    strike: Option<(Fault, &'static str)>,
) {
    let (mut t, server, mut pauses) = link(host, strike.map(|s| s.1)).await;
    let record = d.record.take().unwrap();
    let home = match std::mem::replace(&mut d.placement, Placement::Off) {
        Placement::Home(v) if op == Op::Migrate => v,
        _ => FakeVm::incoming(),
    };
    let files = HomeFiles {
        memory: (d.dir.path().join("vm.mem"), 4 * PAGE_SIZE),
        disk: None,
    };
    let vm = home.clone();
    let mut task = tokio::spawn(async move {
        let ended = match op {
            Op::Migrate => {
                let req = OutRequest {
                    prepare: prepare("vm"),
                    vm: "vm".into(),
                    server: "srv".into(),
                };
                Ended::Out(migrate_out(&record, &vm, &mut t, &req, T).await.is_ok())
            }
            Op::Reintegrate => Ended::In(Box::new(
                bring_home(&record, &vm, &files, &mut t, "vm", false, T.server).await,
            )),
        };
        (record, ended)
    });
    let mut paused = false;
    let (record, ended) = loop {
        tokio::select! {
            r = &mut task => break r.unwrap(),
            Some(go) = pauses.recv(), if !paused => {
                paused = true;
                let (fault, _) = strike.unwrap();
                let forward = match fault {
                    Fault::KillAgent => {
                        task.abort();
                        let _ = go.send(false);
                        d.restart(&[&home]);
                        return;
                    }
                    Fault::KillServer => {
                        server.abort();
                        *host = host.restarted();
                        false
                    }
                    Fault::KillSourceQemu | Fault::KillDestQemu => {
                        let at_home = (fault == Fault::KillSourceQemu) == (op == Op::Migrate);
                        let launched = host.launched.lock().unwrap().get("vm").cloned();
                        match (at_home, launched) {
                            (true, _) => home.kill(),
                            (false, Some(v)) => v.kill(),
                            (false, None) => {}
                        }
                        // The pause: the daemons notice meanwhile.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        true
                    }
                    Fault::LinkDown => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        true
                    }
                    Fault::DropReply => false,
                };
                let _ = go.send(forward);
            }
        }
    };
    let state = record.get();
    d.record = Some(record);
    // What the agent does with the procedure's outcome (`migrate.rs`,
    // `reintegrate.rs`).
    d.placement = match ended {
        Ended::Out(true) => {
            home.quit().await.unwrap();
            Placement::Away
        }
        Ended::Out(false) if state.in_doubt() => Placement::Unsettled(Some(home)),
        Ended::Out(false) => Placement::Home(home),
        Ended::In(outcome) => match *outcome {
            InOutcome::Home(_) => Placement::Home(home),
            InOutcome::StayedAway(_) => {
                home.quit().await.unwrap();
                Placement::Away
            }
            InOutcome::InDoubt(_) if state == DesktopState::Home => {
                home.quit().await.unwrap();
                d.roll_back()
            }
            InOutcome::InDoubt(_) => Placement::Unsettled(Some(home)),
        },
    };
}

/// How a run ended.
#[derive(Debug)]
struct Outcome {
    at_home: bool,
    on_server: bool,
    rolled_back: bool,
    in_doubt: bool,
}

/// A handover with `fault` striking at `step` (after a clean migration for
/// a return), then both sides settling.
async fn run(op: Op, fault: Fault, step: &str) -> Outcome {
    let mut host = FakeHost::new();
    let mut d = Desktop::new();
    *host.oracle.lock().unwrap() = Some(d.oracle());
    if op == Op::Reintegrate {
        handover(&mut d, &mut host, Op::Migrate, None).await;
        assert!(host.runs("vm").await, "the clean migration");
    }
    handover(&mut d, &mut host, op, Some((fault, strike_message(step)))).await;
    for _ in 0..12 {
        d.settle(&host).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let server_state = host.state("vm").await;
    Outcome {
        at_home: d.runs(),
        on_server: host.runs("vm").await,
        rolled_back: d.rolled_back,
        in_doubt: matches!(d.placement, Placement::Unsettled(_))
            || d.record().get().in_doubt()
            || server_state.is_some_and(|s| s.in_doubt()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_of_the_chaos_matrix_ends_as_it_promises() {
    let runs = cases::ALL.iter().map(|c| async move {
        let o = run(c.op, c.fault, c.step).await;
        let expected = (c.runs_at == Side::Desktop, c.runs_at == Side::Server);
        let ok = (o.at_home, o.on_server) == expected
            && c.rolled_back.is_none_or(|r| r == o.rolled_back)
            && !o.in_doubt;
        (ok, format!("{}: {o:?}", c.name))
    });
    let failed: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injection_point_with_every_fault_leaves_at_most_one_copy_and_no_doubt() {
    let mut runs = Vec::new();
    for &(point, op, _) in POINTS {
        for fault in Fault::ALL {
            runs.push(async move {
                let o = run(op, fault, point).await;
                let ok = !(o.in_doubt || o.at_home && o.on_server);
                // Only a dead QEMU leaves no copy running.
                let lost_ok = o.at_home
                    || o.on_server
                    || matches!(fault, Fault::KillSourceQemu | Fault::KillDestQemu);
                (ok && lost_ok, format!("{point} {fault:?}: {o:?}"))
            });
        }
    }
    assert_eq!(runs.len(), POINTS.len() * Fault::ALL.len());
    let failed: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn the_points_are_the_chaos_matrix_steps_and_every_case_maps_to_one() {
    for c in cases::ALL {
        let m = strike_message(c.step);
        let op = POINTS.iter().find(|p| p.2 == m).unwrap().1;
        assert_eq!(op, c.op, "{}", c.name);
    }
    // Every point the daemons name is walked.
    let names: Vec<&str> = POINTS.iter().map(|p| p.0).collect();
    for s in [
        "Preparing",
        "Transferring",
        "Away",
        "Receiving",
        "Ready",
        "Home",
    ] {
        assert!(names.contains(&format!("agent:{s}").as_str()), "agent:{s}");
    }
    for s in ["Preparing", "Loaded", "Running", "Sending", "Released"] {
        assert!(
            names.contains(&format!("server:{s}").as_str()),
            "server:{s}"
        );
    }
}
