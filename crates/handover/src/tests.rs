//! The two state machines against each other: every point of a round trip
//! at which either side may stop (crash, lost reply), settled by asking
//! the other side, ends with exactly one side allowed to run the VM, the
//! one the commits say.

use super::*;
use DesktopState as D;

const SERVER: &str = "consol-1";

fn migrating(step: OutStep) -> DesktopState {
    D::Migrating {
        server: SERVER.into(),
        step,
    }
}

fn away() -> DesktopState {
    D::Away {
        server: SERVER.into(),
        since_ms: 1,
    }
}

fn returning(step: InStep) -> DesktopState {
    D::Returning {
        server: SERVER.into(),
        since_ms: 1,
        step,
    }
}

/// The round trip as persisted on both sides, step by step, with the side
/// that owns the VM once a stop at that point is settled (true: the
/// desktop). A desktop in doubt whose server has loaded the state commits.
fn round_trip() -> Vec<(DesktopState, Option<ServerState>, bool)> {
    use ServerState as S;
    vec![
        (D::Home, None, true),
        (migrating(OutStep::Preparing), None, true),
        (migrating(OutStep::Preparing), Some(S::Preparing), true),
        (migrating(OutStep::Transferring), Some(S::Preparing), true),
        (migrating(OutStep::Transferring), Some(S::Loaded), false),
        // The desktop's commit.
        (away(), Some(S::Loaded), false),
        (away(), Some(S::Running), false),
        (returning(InStep::Receiving), Some(S::Running), false),
        (returning(InStep::Receiving), Some(S::Sending), false),
        (returning(InStep::Ready), Some(S::Sending), false),
        // The server's commit.
        (returning(InStep::Ready), Some(S::Released), true),
        (D::Home, Some(S::Released), true),
        (D::Home, None, true),
    ]
}

/// Both sides settle by asking each other until nothing changes. Returns
/// the final states and the desktop actions taken.
fn settle(
    mut d: DesktopState,
    mut s: Option<ServerState>,
) -> (DesktopState, Option<ServerState>, Vec<DesktopAction>) {
    let mut actions = Vec::new();
    for _ in 0..6 {
        let before = (d.clone(), s);
        let answer = s.map(ServerState::custody).unwrap_or(Custody::Unknown);
        if let Settlement::To(next, action) = d.settle(answer, 2) {
            d = next;
            if action != DesktopAction::None {
                actions.push(action);
            }
        }
        if let Some(state) = s {
            if let Settlement::To(next, action) = state.settle(Some(d.custody())) {
                s = match action {
                    ServerAction::Discard => None,
                    _ => Some(next),
                };
            }
        }
        if before == (d.clone(), s) {
            return (d, s, actions);
        }
    }
    panic!("no fixpoint from {d:?} / {s:?}");
}

#[test]
fn every_stop_point_settles_to_exactly_one_owner() {
    for (d, s, desktop_owns) in round_trip() {
        let (fd, fs, actions) = settle(d.clone(), s);
        let desktop_runs = fd == D::Home;
        let server_runs = fs.is_some_and(ServerState::may_run);
        assert!(
            desktop_runs != server_runs,
            "{d:?}/{s:?} settled to {fd:?}/{fs:?}: not exactly one owner"
        );
        assert_eq!(
            desktop_runs, desktop_owns,
            "{d:?}/{s:?} settled to {fd:?}/{fs:?}"
        );
        assert!(
            !actions.contains(&DesktopAction::RollBackAtHome),
            "{d:?}/{s:?}: a daemon crash needs no rollback ({actions:?})"
        );
        assert!(!fd.in_doubt() && !fs.is_some_and(ServerState::in_doubt));
    }
}

#[test]
fn no_point_of_the_round_trip_lets_both_run() {
    for (d, s, _) in round_trip() {
        let desktop_may_run = d == D::Home;
        assert!(
            !(desktop_may_run && s.is_some_and(ServerState::may_run)),
            "{d:?}/{s:?}"
        );
    }
}

#[test]
fn the_happy_path_is_the_transitions() {
    let d = D::Home.begin_migration(SERVER).unwrap();
    let d = d.transferring().unwrap();
    let s = ServerState::Preparing.loaded().unwrap();
    assert!(d.in_doubt() && s.in_doubt());
    let d = d.commit_away(5).unwrap();
    let s = s.commit().unwrap();
    assert_eq!(s, ServerState::Running);
    assert!(d.serves_memory());
    let d = d.begin_return().unwrap();
    let s = s.begin_send().unwrap();
    let d = d.ready().unwrap();
    let s = s.release().unwrap();
    assert_eq!(d.committed_home().unwrap(), D::Home);
    assert_eq!(s, ServerState::Released);
}

#[test]
fn aborts_go_back_before_the_commit_only() {
    assert_eq!(
        migrating(OutStep::Transferring).abort_migration().unwrap(),
        D::Home
    );
    assert!(away().abort_migration().is_err());
    assert_eq!(returning(InStep::Receiving).abort_return().unwrap(), away());
    // After Ready the server may have committed: only its answer settles.
    assert!(returning(InStep::Ready).abort_return().is_err());
    assert_eq!(
        ServerState::Sending.abort_send().unwrap(),
        ServerState::Running
    );
    assert!(ServerState::Released.abort_send().is_err());
    assert!(ServerState::Loaded.abortable());
    assert!(!ServerState::Running.abortable());
}

#[test]
fn out_of_order_transitions_are_refused_with_the_state() {
    let e = away().begin_migration(SERVER).unwrap_err();
    assert_eq!(e.to_string(), "cannot migrate while away on consol-1");
    assert!(D::Home.transferring().is_err());
    assert!(migrating(OutStep::Preparing).commit_away(1).is_err());
    assert!(D::Home.begin_return().is_err());
    assert!(returning(InStep::Receiving).committed_home().is_err());
    assert!(ServerState::Preparing.commit().is_err());
    assert!(ServerState::Loaded.begin_send().is_err());
    assert!(ServerState::Running.release().is_err());
}

#[test]
fn repeated_commits_are_idempotent() {
    assert_eq!(ServerState::Running.commit().unwrap(), ServerState::Running);
    assert_eq!(
        ServerState::Released.release().unwrap(),
        ServerState::Released
    );
}

#[test]
fn a_server_that_lost_the_vm_means_a_rollback_at_home() {
    assert_eq!(
        away().settle(Custody::Unknown, 9),
        Settlement::To(D::Home, DesktopAction::RollBackAtHome)
    );
    // After Ready, what is durable at home is the VM itself.
    assert_eq!(
        returning(InStep::Ready).settle(Custody::Unknown, 9),
        Settlement::To(D::Home, DesktopAction::LoadSavedAndResume)
    );
}

#[test]
fn a_loaded_server_waits_while_the_desktop_decides() {
    assert_eq!(
        ServerState::Loaded.settle(Some(Custody::InDoubt)),
        Settlement::AskAgain
    );
    assert_eq!(ServerState::Loaded.settle(None), Settlement::AskAgain);
    assert_eq!(
        migrating(OutStep::Transferring).settle(Custody::InDoubt, 9),
        Settlement::To(
            D::Away {
                server: SERVER.into(),
                since_ms: 9
            },
            DesktopAction::SendCommit
        )
    );
}

#[test]
fn a_lost_connection_settles_what_needs_no_answer() {
    assert_eq!(
        ServerState::Sending.settle(None),
        Settlement::To(ServerState::Running, ServerAction::Run)
    );
    assert_eq!(
        ServerState::Preparing.settle(None),
        Settlement::To(ServerState::Preparing, ServerAction::Discard)
    );
    assert_eq!(
        ServerState::Released.settle(None),
        Settlement::To(ServerState::Released, ServerAction::None)
    );
}

#[test]
fn memory_is_served_only_while_the_home_guest_is_stopped() {
    assert!(!D::Home.serves_memory());
    assert!(!migrating(OutStep::Preparing).serves_memory());
    assert!(migrating(OutStep::Transferring).serves_memory());
    assert!(away().serves_memory());
    assert!(returning(InStep::Receiving).serves_memory());
    assert!(returning(InStep::Ready).serves_memory());
}

#[test]
fn records_survive_serialisation() {
    for (d, s, _) in round_trip() {
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<DesktopState>(&text).unwrap(), d);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            serde_json::from_str::<Option<ServerState>>(&text).unwrap(),
            s
        );
    }
}
