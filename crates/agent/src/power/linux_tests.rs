//! The agent's power side on the Linux backend, against a private
//! dbus-daemon with a mock logind: presence for idle detection and the
//! refusal asked before a sleep is announced.

use jettison_logind_mock::{MockLogind, PrivateBus, SessionSpec};

use super::*;

fn config(bus: &PrivateBus, input_dir: &std::path::Path) -> PowerConfig {
    let text = format!(
        "backend = \"linux\"\nnic_mac = \"02:00:00:00:00:01\"\nwol_broadcast = \"10.0.0.255:9\"\n\
         away_after_s = 600\n[linux]\niface = \"veth0\"\nbus_address = \"{}\"\ninput_dir = \"{}\"\n",
        bus.address(),
        input_dir.display()
    );
    toml::from_str(&text).unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_refusals_come_from_logind() {
    let bus = PrivateBus::start().unwrap();
    let mock = MockLogind::start(bus.address()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let power = Power::start(&config(&bus, dir.path()), "desk", dir.path()).unwrap();
    assert!(!power.detects_input(), "no session, no input device yet");
    mock.add_session(SessionSpec::user("4", "wayland"))
        .await
        .unwrap();
    mock.activate(Some("4")).await.unwrap();
    let notices = power.connect_backend().await;
    assert!(
        notices.is_some(),
        "the Linux backend hands its sleep notices over"
    );
    until("the session tells presence", || power.detects_input()).await;
    assert!(power.user_input(), "an active session is the user's input");
    mock.set_idle("4", true, 5).await.unwrap();
    let backend = match &power.host {
        Host::Linux { backend } => backend,
        #[cfg(feature = "emulated-power")]
        Host::Emulated(_) => panic!("not the Linux backend"),
    };
    until("idle seen", || {
        backend.presence() == jettison_power::logind_policy::Presence::IdleSince(5)
    })
    .await;
    assert!(!power.user_input(), "idle: no input");
    mock.add_session(SessionSpec::ssh("9", "admin-pc"))
        .await
        .unwrap();
    let err = power.backend().may_suspend().await.unwrap_err().to_string();
    assert!(
        err.contains("remote session 9 of admin from admin-pc"),
        "{err}"
    );
    mock.set_idle("4", false, 6).await.unwrap();
    until("the return is seen", || power.user_input()).await;
}
