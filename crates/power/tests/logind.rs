//! The Linux backend against a private `dbus-daemon` with a mock logind
//! (`jettison-logind-mock`): every call is real D-Bus traffic, and the
//! mock's log gives their order. Suspends are the mock's (the test hosts
//! cannot sleep); Wake-on-LAN is armed by a stand-in for `ethtool` here (no
//! test host has a NIC that can wake), its real error paths are in
//! `tests/wol_input.rs`.

use std::path::Path;
use std::time::Duration;

use jettison_logind_mock::{MockLogind, PrivateBus, SessionSpec};
use jettison_power::linux::LinuxConfig;
use jettison_power::linux_backend::{LinuxBackend, SleepNotice};
use jettison_power::logind::ManagerProxy;
use jettison_power::logind_policy::{Presence, RemoteSessions};
use jettison_power::{PowerBackend, PowerError};
use jettison_power_model::timeline::HostState;
use jettison_power_model::PowerProfile;

const WAIT: Duration = Duration::from_secs(10);

struct Env {
    bus: PrivateBus,
    mock: MockLogind,
    dir: tempfile::TempDir,
}

async fn env() -> Env {
    let bus = PrivateBus::start().expect("dbus-daemon");
    let mock = MockLogind::start(bus.address()).await.expect("mock logind");
    let dir = tempfile::tempdir().unwrap();
    Env { bus, mock, dir }
}

impl Env {
    fn config(&self) -> LinuxConfig {
        LinuxConfig {
            bus_address: Some(self.bus.address().to_owned()),
            // An empty directory: no input devices.
            input_dir: self.dir.path().to_owned(),
            ..LinuxConfig::new("veth0")
        }
    }

    fn backend(&self, config: LinuxConfig) -> LinuxBackend {
        LinuxBackend::new(config, PowerProfile::default(), HostState::Active)
            .with_ethtool(fake_ethtool(self.dir.path()))
    }

    /// The desk's user logged in and at the desk.
    async fn desk_session(&self) {
        self.mock
            .add_session(SessionSpec::user("2", "wayland"))
            .await
            .unwrap();
        self.mock.activate(Some("2")).await.unwrap();
    }

    /// Where each line of the mock's log first appears.
    fn at(&self, line: &str) -> usize {
        let log = self.mock.log();
        log.iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line} not in {log:?}"))
    }
}

/// A stand-in for `ethtool` (no NIC here can wake): logs its arguments
/// beside itself and reports `Wake-on: g`.
fn fake_ethtool(dir: &Path) -> String {
    let path = dir.join("ethtool");
    let log = dir.join("ethtool.log");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\necho 'Settings for x:'\necho '\tWake-on: g'\n",
            log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", &path.to_string_lossy()])
        .status()
        .unwrap();
    path.to_string_lossy().into_owned()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the backend follows session `id`.
async fn followed(backend: &LinuxBackend, id: &str) {
    until(&format!("session {id} followed"), || {
        backend.presence_session().as_deref() == Some(id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logind_missing_or_no_bus_is_a_clear_error() {
    let bus = PrivateBus::start().expect("dbus-daemon");
    let dir = tempfile::tempdir().unwrap();
    let config = LinuxConfig {
        bus_address: Some(bus.address().to_owned()),
        input_dir: dir.path().to_owned(),
        ..LinuxConfig::new("veth0")
    };
    let backend = LinuxBackend::new(config.clone(), PowerProfile::default(), HostState::Active);
    let err = backend.connect().await.unwrap_err().to_string();
    assert!(
        err.contains("systemd-logind (org.freedesktop.login1) is not on the bus"),
        "{err}"
    );
    let err = backend.may_suspend().await.unwrap_err().to_string();
    assert!(err.contains("is not on the bus"), "{err}");
    assert!(!backend.knows_presence(), "no session, no input devices");

    let gone = LinuxConfig {
        bus_address: Some(format!("unix:path={}/no-bus", dir.path().display())),
        ..config
    };
    let backend = LinuxBackend::new(gone, PowerProfile::default(), HostState::Active);
    let err = backend.connect().await.unwrap_err().to_string();
    assert!(
        err.contains("cannot connect to the D-Bus system bus"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seats_active_session_is_followed_across_logins() {
    let e = env().await;
    let greeter = SessionSpec {
        class: "greeter".into(),
        ..SessionSpec::user("c1", "wayland")
    };
    e.mock.add_session(greeter).await.unwrap();
    e.mock.activate(Some("c1")).await.unwrap();
    let backend = e.backend(e.config());
    backend.connect().await.unwrap();
    // A login: the new session is picked up.
    e.desk_session().await;
    followed(&backend, "2").await;
    assert_eq!(backend.presence(), Presence::Active);
    // Log out, log in again: another id.
    e.mock
        .add_session(SessionSpec::user("3", "x11"))
        .await
        .unwrap();
    e.mock.activate(Some("3")).await.unwrap();
    e.mock.remove_session("2").await.unwrap();
    followed(&backend, "3").await;
    // Back to the greeter: no graphical user session tells presence.
    e.mock.activate(Some("c1")).await.unwrap();
    until("greeter not taken", || backend.presence_session().is_none()).await;
    assert_eq!(backend.presence(), Presence::Unknown);
    assert!(!backend.knows_presence());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_session_overrides_the_seat() {
    let e = env().await;
    e.desk_session().await;
    e.mock
        .add_session(SessionSpec::user("7", "tty"))
        .await
        .unwrap();
    let backend = e.backend(LinuxConfig {
        session: Some("7".into()),
        ..e.config()
    });
    backend.connect().await.unwrap();
    followed(&backend, "7").await;
    assert!(e.mock.log().iter().any(|l| l == "GetSession(7)"));
    assert!(!e.mock.log().iter().any(|l| l == "GetSeat(seat0)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_hint_changes_are_seen_and_the_return_is_told_at_once() {
    let e = env().await;
    e.desk_session().await;
    let backend = e.backend(e.config());
    backend.connect().await.unwrap();
    followed(&backend, "2").await;
    assert!(backend.take_user_activity(), "an active session is input");
    e.mock.set_idle("2", true, 77_000_000).await.unwrap();
    until("idle seen", || {
        backend.presence() == Presence::IdleSince(77_000_000)
    })
    .await;
    assert!(!backend.take_user_activity(), "idle: no input");
    e.mock.set_idle("2", false, 99_000_000).await.unwrap();
    until("active seen", || backend.presence() == Presence::Active).await;
    assert!(
        backend.take_user_activity(),
        "the return is told at once, not after the 5 s report interval"
    );
    assert!(
        !backend.take_user_activity(),
        "still active: told again only after 5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_suspend_holds_the_delay_inhibitor_until_logind_prepares_then_takes_it_again() {
    let e = env().await;
    e.desk_session().await;
    let backend = e.backend(e.config());
    backend.connect().await.unwrap();
    backend.may_suspend().await.unwrap();
    backend.suspend().await.unwrap();
    let first = e.at("Inhibit(sleep,jettison-agent,delay)");
    let suspend = e.at("Suspend(false)");
    let prepare = e.at("PrepareForSleep(true)");
    let released = e.at("Released(jettison-agent,delay)");
    let slept = e.at("Slept");
    let resumed = e.at("PrepareForSleep(false)");
    assert!(first < suspend, "{:?}", e.mock.log());
    assert!(suspend < prepare && prepare < released && released < slept);
    assert!(slept < resumed);
    let log = e.mock.log();
    assert!(
        log[resumed..]
            .iter()
            .any(|l| l == "Inhibit(sleep,jettison-agent,delay)"),
        "taken again after the resume: {log:?}"
    );
    assert!(!log.iter().any(|l| l == "DelayTimeout"), "{log:?}");
    // Checked (inhibitors, sessions) just before the suspend.
    assert!(log[..suspend]
        .iter()
        .rev()
        .take(6)
        .any(|l| l == "ListInhibitors"));
    let wol = std::fs::read_to_string(e.dir.path().join("ethtool.log")).unwrap();
    assert_eq!(
        wol, "-s veth0 wol g\nveth0\n",
        "Wake-on-LAN armed and checked"
    );
    let t = backend.timeline();
    assert_eq!(t.wakes.len(), 1, "{t:?}");
    assert!(backend.state().is_awake());
    assert!(t.events.iter().any(|&(_, s)| s == HostState::Asleep));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_inhibitor_refuses_the_suspend_naming_who_holds_it() {
    let e = env().await;
    e.desk_session().await;
    let backend = e.backend(e.config());
    backend.connect().await.unwrap();
    let other = zbus::connection::Builder::address(e.bus.address())
        .unwrap()
        .build()
        .await
        .unwrap();
    let manager = ManagerProxy::new(&other).await.unwrap();
    let lock = manager
        .inhibit("sleep:shutdown", "backup-tool", "copying /home", "block")
        .await
        .unwrap();
    let err = backend.suspend().await.unwrap_err();
    assert!(matches!(err, PowerError::Refused(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("backup-tool")
            && text.contains("holds a block inhibitor on sleep:shutdown: copying /home"),
        "{text}"
    );
    assert!(backend.may_suspend().await.is_err());
    assert!(
        !e.mock.log().iter().any(|l| l.starts_with("Suspend")),
        "{:?}",
        e.mock.log()
    );
    assert_eq!(backend.state(), HostState::Active);
    drop(lock);
    assert!(e.mock.wait_for("Released(backup-tool,block)", WAIT).await);
    backend.may_suspend().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_ssh_session_refuses_the_suspend_unless_the_policy_ignores_it() {
    let e = env().await;
    e.desk_session().await;
    e.mock
        .add_session(SessionSpec::ssh("5", "10.0.0.9"))
        .await
        .unwrap();
    let backend = e.backend(e.config());
    let err = backend.suspend().await.unwrap_err().to_string();
    assert!(
        err.contains("remote session 5 of admin from 10.0.0.9 is active"),
        "{err}"
    );
    assert!(!e.mock.log().iter().any(|l| l.starts_with("Suspend")));
    let lenient = e.backend(LinuxConfig {
        remote_sessions: RemoteSessions::Ignore,
        ..e.config()
    });
    lenient.may_suspend().await.unwrap();
    e.mock.remove_session("5").await.unwrap();
    backend.may_suspend().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspend_the_agent_did_not_ask_for_waits_for_its_work() {
    let e = env().await;
    e.desk_session().await;
    let backend = e.backend(e.config());
    backend.connect().await.unwrap();
    let mut notices = backend.sleep_notices().unwrap();
    assert!(backend.sleep_notices().is_none(), "taken once");
    let mock = e.mock.clone();
    let lid = tokio::spawn(async move { mock.external_suspend().await });
    let delay = match tokio::time::timeout(WAIT, notices.recv()).await {
        Ok(Some(SleepNotice::Preparing { delay })) => delay,
        other => panic!("expected Preparing, got {other:?}"),
    };
    assert!(delay.is_some(), "the delay inhibitor comes with the notice");
    // logind waits for it: nothing has slept while the work is not done.
    assert_eq!(backend.state(), HostState::Suspending);
    assert!(!e.mock.log().iter().any(|l| l == "Slept"));
    drop(delay);
    match tokio::time::timeout(WAIT, notices.recv()).await {
        Ok(Some(SleepNotice::Resumed)) => {}
        other => panic!("expected Resumed, got {other:?}"),
    }
    lid.await.unwrap();
    assert!(e.at("ExternalSuspend") < e.at("PrepareForSleep(true)"));
    assert!(e.at("Released(jettison-agent,delay)") < e.at("Slept"));
    assert!(!e.mock.log().iter().any(|l| l == "DelayTimeout"));
    assert!(!e.mock.log().iter().any(|l| l.starts_with("Suspend")));
    let t = backend.timeline();
    assert_eq!(t.wakes.len(), 1, "the sleep is on the timeline: {t:?}");
    assert!(backend.state().is_awake());
}
