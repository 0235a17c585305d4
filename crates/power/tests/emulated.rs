//! The emulated backend for real: real freezer cgroups, real processes
//! frozen and thawed, real magic packets over UDP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jettison_power::{send_magic_packet, Emulated, EmulatedConfig, PowerBackend};
use jettison_power_model::profile::{DeviceCost, Transition};
use jettison_power_model::{
    meter, Device, HostState, MacAddr, Placement, PowerProfile, WakeReason,
};

const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x0e, 0x11, 0x01]);
const SUSPEND_MS: u64 = 200;
const RESUME_MS: u64 = 400;
/// Allowed lateness of a thaw (the machine runs CI meanwhile).
const SLACK_MS: u64 = 400;

/// A child process and the emulated host it sleeps in; the host is dropped
/// (thawed, group removed) before the child is killed, also on panic: a
/// frozen child could not die.
struct Rig {
    host: Option<Emulated>,
    child: Child,
}

impl Drop for Rig {
    fn drop(&mut self) {
        drop(self.host.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rig {
    fn host(&self) -> &Emulated {
        self.host.as_ref().unwrap()
    }
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Short transitions; every device resumes at once (no per-device split).
fn test_profile() -> PowerProfile {
    PowerProfile {
        suspend: Transition {
            latency_ms: SUSPEND_MS,
            energy_j: 12.0,
        },
        resume: Transition {
            latency_ms: RESUME_MS,
            energy_j: 32.0,
        },
        devices: vec![],
        ..PowerProfile::default()
    }
}

fn rig(tag: &str, command: &mut Command) -> Rig {
    rig_with(tag, command, |_| {})
}

fn rig_with(tag: &str, command: &mut Command, adjust: impl FnOnce(&mut EmulatedConfig)) -> Rig {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (freezer cgroup)"
    );
    let profile = test_profile();
    let mut config = EmulatedConfig::new(unique(tag), MAC, "127.0.0.1:0".parse().unwrap());
    config.profile = profile;
    adjust(&mut config);
    let host = Emulated::start(config).unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rig = Rig {
        host: Some(host),
        child,
    };
    rig.host().add_pid(rig.child.id()).unwrap();
    rig
}

fn proc_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Stopped by the freezer: shown as `D (disk sleep)`. (Its wchan is
/// `__refrigerator` only for tasks frozen on their way back to user space;
/// a task asleep in a freezable wait, e.g. `sleep`, is frozen in place.)
fn frozen(pid: u32) -> bool {
    proc_state(pid).starts_with('D')
}

/// Not frozen any more, allowing a moment of `D` for other reasons (a
/// thawed `busybox nc -e` waits in `vfork` for the child it forks for the
/// connection queued while it was frozen).
async fn runs_again(pid: u32) -> bool {
    for _ in 0..100 {
        if !frozen(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn echo(addr: SocketAddr, wait: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, wait)?;
    s.set_read_timeout(Some(wait))?;
    s.write_all(b"ping\n")?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Sends our magic packet; the ms until the host is Idle (thawed).
async fn wake_by_packet(host: &Emulated) -> u64 {
    let t = Instant::now();
    send_magic_packet(MAC, host.wol_addr()).await.unwrap();
    host.wait_for(HostState::Idle, Duration::from_secs(10))
        .await
        .unwrap();
    t.elapsed().as_millis() as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_packet_wakes_a_frozen_echo_server_after_the_resume_latency() {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let rig = rig(
        "echo",
        Command::new("busybox").args(["nc", "-ll", "-p", &port.to_string(), "-e", "/bin/cat"]),
    );
    let host = rig.host();
    let deadline = Instant::now() + Duration::from_secs(5);
    while echo(addr, Duration::from_millis(500))
        .map(|r| r != "ping\n")
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "echo server never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let t = Instant::now();
    host.suspend().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(SUSPEND_MS));
    assert_eq!(host.state(), HostState::Asleep);
    assert_eq!(host.freezer_state().unwrap(), "FROZEN");
    assert!(frozen(rig.child.id()), "{}", proc_state(rig.child.id()));
    let silent = tokio::task::spawn_blocking(move || echo(addr, Duration::from_secs(1)))
        .await
        .unwrap();
    let err = silent.expect_err("a frozen server must not answer");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );

    send_magic_packet(MacAddr([0x52, 0x54, 0, 0x0e, 0x11, 0x99]), host.wol_addr())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(RESUME_MS + SLACK_MS)).await;
    assert_eq!(
        host.state(),
        HostState::Asleep,
        "a magic packet for another MAC must not wake us"
    );
    assert_eq!(host.freezer_state().unwrap(), "FROZEN");

    let woke_ms = wake_by_packet(host).await;
    eprintln!("resume: configured {RESUME_MS} ms, measured {woke_ms} ms from send to thawed");
    assert!(woke_ms >= RESUME_MS, "woke after {woke_ms} ms");
    assert!(woke_ms <= RESUME_MS + SLACK_MS, "woke after {woke_ms} ms");
    assert_eq!(host.freezer_state().unwrap(), "THAWED");
    assert!(
        runs_again(rig.child.id()).await,
        "{}",
        proc_state(rig.child.id())
    );
    let reply = tokio::task::spawn_blocking(move || echo(addr, Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(reply.unwrap(), "ping\n");

    let timeline = host.timeline();
    let states: Vec<HostState> = timeline.events.iter().map(|e| e.1).collect();
    use HostState::*;
    assert_eq!(states, [Idle, Suspending, Asleep, Resuming, Idle]);
    assert_eq!(timeline.wakes.len(), 1);
    assert_eq!(timeline.wakes[0].1, WakeReason::PageMiss);
    let spans: Vec<u64> = timeline
        .events
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .collect();
    assert!(spans[1] >= SUSPEND_MS && spans[3] >= RESUME_MS, "{spans:?}");
    let report = meter(&timeline, &PowerProfile::default(), host.now_ms()).unwrap();
    assert_eq!((report.wakes, report.wake_reasons.page_miss), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_return_resumes_and_cycles_repeat() {
    let rig = rig("user", Command::new("sleep").arg("1000"));
    let host = rig.host();
    let pid = rig.child.id();
    host.set_idle(false).unwrap();
    host.record_placement("vm1", Placement::Server).unwrap();
    host.suspend().await.unwrap();
    assert!(frozen(pid), "{}", proc_state(pid));
    assert!(matches!(
        host.suspend().await,
        Err(jettison_power::PowerError::State { .. })
    ));

    let t = Instant::now();
    host.resume(WakeReason::UserReturn).await.unwrap();
    let took = t.elapsed().as_millis() as u64;
    assert!(
        (RESUME_MS..=RESUME_MS + SLACK_MS).contains(&took),
        "resume took {took} ms"
    );
    assert_eq!(host.state(), HostState::Active);
    assert!(proc_state(pid).starts_with('S'), "{}", proc_state(pid));
    host.resume(WakeReason::UserReturn).await.unwrap();

    // A packet that arrives while suspending wakes the host once it sleeps.
    let suspend = host.suspend();
    let send = async {
        tokio::time::sleep(Duration::from_millis(SUSPEND_MS / 4)).await;
        assert_eq!(host.state(), HostState::Suspending);
        send_magic_packet(MAC, host.wol_addr()).await.unwrap();
    };
    let (suspended, ()) = tokio::join!(suspend, send);
    suspended.unwrap();
    host.wait_for(HostState::Idle, Duration::from_secs(10))
        .await
        .unwrap();

    let tl = host.timeline();
    let reasons: Vec<_> = tl.wakes.iter().map(|w| w.1.clone()).collect();
    assert_eq!(reasons, [WakeReason::UserReturn, WakeReason::PageMiss]);
    use HostState::*;
    let states: Vec<HostState> = tl.events.iter().map(|e| e.1).collect();
    assert_eq!(
        states,
        [Idle, Active, Suspending, Asleep, Resuming, Active, Suspending, Asleep, Resuming, Idle]
    );
    assert_eq!(tl.vms["vm1"][0].1, Placement::Server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_sleeping_host_thaws_and_removes_its_group() {
    let mut rig = rig("drop", Command::new("sleep").arg("1000"));
    let pid = rig.child.id();
    let group = rig.host().group_path().to_owned();
    let name = group
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("jettison-")
        .to_owned();
    let again = EmulatedConfig::new(name, MAC, "127.0.0.1:0".parse().unwrap());
    assert!(Emulated::start(again).is_err(), "the group name is taken");
    rig.host().suspend().await.unwrap();
    assert!(frozen(pid), "{}", proc_state(pid));
    drop(rig.host.take());
    assert!(!group.exists(), "{} left behind", group.display());
    assert!(proc_state(pid).starts_with('S'), "{}", proc_state(pid));
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroups.lines().any(|l| l.ends_with(":freezer:/")),
        "{cgroups}"
    );
}

/// Resume split: service devices (CPU, memory, NIC) 200 ms, the rest 200 ms.
fn split_profile() -> PowerProfile {
    let dev = |device, latency_ms, energy_j| DeviceCost {
        device,
        latency_ms,
        energy_j,
    };
    PowerProfile {
        devices: vec![
            dev(Device::Cpu, 100, 8.0),
            dev(Device::Memory, 50, 4.0),
            dev(Device::Nic, 50, 4.0),
            dev(Device::Disk, 100, 8.0),
            dev(Device::Display, 50, 4.0),
            dev(Device::Usb, 50, 4.0),
        ],
        ..test_profile()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_resume_thaws_after_the_service_latency_and_the_user_resumes_the_rest() {
    let profile = split_profile();
    let service_ms = profile.service_resume().latency_ms;
    assert_eq!(service_ms, 200);
    let user_addr: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let rig = rig_with("selective", Command::new("sleep").arg("1000"), |c| {
        c.profile = profile.clone();
        c.selective_resume = true;
        c.user_addr = Some(user_addr);
    });
    let host = rig.host();
    let pid = rig.child.id();
    host.suspend().await.unwrap();
    assert!(frozen(pid), "{}", proc_state(pid));

    let woke_ms = wake_by_packet(host).await;
    eprintln!(
        "service resume: configured {service_ms} ms (full {RESUME_MS} ms), measured {woke_ms} ms"
    );
    assert!(
        (service_ms..=service_ms + SLACK_MS).contains(&woke_ms),
        "woke after {woke_ms} ms"
    );
    assert_eq!(host.freezer_state().unwrap(), "THAWED");
    assert!(runs_again(pid).await, "{}", proc_state(pid));

    // The user comes back: the remaining devices resume, then Active.
    let t = Instant::now();
    let keyboard = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    keyboard.send_to(b"key", user_addr).unwrap();
    host.wait_for(HostState::Active, Duration::from_secs(10))
        .await
        .unwrap();
    let rest_ms = t.elapsed().as_millis() as u64;
    let want = RESUME_MS - service_ms;
    assert!(
        (want..=want + SLACK_MS).contains(&rest_ms),
        "the rest resumed after {rest_ms} ms"
    );
    assert!(host.take_user_return());

    let tl = host.timeline();
    use HostState::*;
    let states: Vec<HostState> = tl.events.iter().map(|e| e.1).collect();
    assert_eq!(
        states,
        [Idle, Suspending, Asleep, Resuming, Idle, Resuming, Active]
    );
    assert_eq!((tl.service_wakes.len(), tl.rest_resumes.len()), (1, 1));
    let report = meter(&tl, &profile, host.now_ms()).unwrap();
    assert_eq!(
        (report.wakes, report.service_wakes, report.rest_resumes),
        (1, 1, 1)
    );

    // A wake for the user is a full resume even with selective resume on.
    host.suspend().await.unwrap();
    let t = Instant::now();
    keyboard.send_to(b"key", user_addr).unwrap();
    host.wait_for(HostState::Active, Duration::from_secs(10))
        .await
        .unwrap();
    let full_ms = t.elapsed().as_millis() as u64;
    assert!(
        (RESUME_MS..=RESUME_MS + SLACK_MS).contains(&full_ms),
        "user wake took {full_ms} ms"
    );
    let tl = host.timeline();
    assert_eq!(tl.wakes.len(), 2);
    assert_eq!(tl.service_wakes.len(), 1);
}
