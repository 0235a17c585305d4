//! Wake-on-LAN and input devices, on the paths the test hosts can run:
//! there is no NIC here that can wake a host (a veth has no Wake-on-LAN)
//! and no keyboard, so these are the error paths, plus the input reader
//! fed through a FIFO standing in for a device.

use std::io::Write;
use std::time::Duration;

use jettison_power::input::InputWatch;
use jettison_power::linux::LinuxConfig;
use jettison_power::linux_backend::LinuxBackend;
use jettison_power::wol_ethtool::arm_wol;
use jettison_power_model::timeline::HostState;
use jettison_power_model::PowerProfile;

/// A throwaway network namespace with a veth pair, deleted on drop.
struct Netns(String);

impl Netns {
    fn with_veth() -> Self {
        let name = format!("jt-wol-{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        ip(&[
            "-n", &ns.0, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
        ]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[tokio::test]
async fn wake_on_lan_without_ethtool_says_what_to_install() {
    let err = arm_wol("/nonexistent/ethtool", "eth0")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not installed (Debian package `ethtool`)"),
        "{err}"
    );
}

#[tokio::test]
async fn wake_on_lan_on_a_veth_is_refused_clearly() {
    let ns = Netns::with_veth();
    let dir = tempfile::tempdir().unwrap();
    // The real ethtool, inside the namespace.
    let wrapper = dir.path().join("ethtool-in-ns");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec ip netns exec {} ethtool \"$@\"\n", ns.0),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", &wrapper.to_string_lossy()])
        .status()
        .unwrap();
    let err = arm_wol(&wrapper.to_string_lossy(), "veth0")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Wake-on-LAN cannot be armed on veth0 (does its NIC support it?)"),
        "{err}"
    );
    assert!(
        err.to_ascii_lowercase().contains("not supported"),
        "ethtool's own reason is kept: {err}"
    );
}

#[test]
fn no_input_devices_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = InputWatch::start(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no input devices (event*) in"), "{err}");
    std::fs::write(dir.path().join("mouse0"), "").unwrap();
    assert!(InputWatch::start(dir.path()).is_err(), "only event* count");
    let err = InputWatch::start(&dir.path().join("absent"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listing the input devices in"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_events_tell_the_users_return_without_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("event3");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let config = LinuxConfig {
        input_dir: dir.path().to_owned(),
        bus_address: Some(format!("unix:path={}/no-bus", dir.path().display())),
        ..LinuxConfig::new("veth0")
    };
    let backend = LinuxBackend::new(config, PowerProfile::default(), HostState::Active);
    assert!(backend.knows_presence(), "input devices tell presence");
    assert!(!backend.take_user_activity(), "no event yet");
    // One input_event record (24 bytes on 64-bit).
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&[0u8; 24]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !backend.take_user_activity() {
        assert!(
            std::time::Instant::now() < deadline,
            "the event was not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!backend.take_user_activity(), "told once per event");
}
