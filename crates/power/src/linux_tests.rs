use super::*;

fn config(method: SuspendMethod) -> LinuxConfig {
    LinuxConfig {
        method,
        nic_wakeup_sources: vec!["0000:00:1f.6".into()],
        ..LinuxConfig::new("enp0s31f6")
    }
}

#[test]
fn wol_is_armed_then_checked() {
    let [arm, check] = wol_commands("enp0s31f6");
    assert_eq!(arm, ["-s", "enp0s31f6", "wol", "g"]);
    assert_eq!(check, ["enp0s31f6"]);
}

#[test]
fn wake_on_parsing() {
    let out =
        "Settings for enp0s31f6:\n\tSupports Wake-on: pumbg\n\tWake-on: g\n\tLink detected: yes\n";
    assert_eq!(parse_wake_on(out).as_deref(), Some("g"));
    assert_eq!(
        parse_wake_on("Settings for lo:\n\tLink detected: yes\n"),
        None
    );
    assert_eq!(
        parse_wake_on("\tSupports Wake-on: d\n\tWake-on: d\n").as_deref(),
        Some("d")
    );
}

#[test]
fn wakeup_files_parse() {
    assert_eq!(parse_wakeup_irq("9\n"), Some(9));
    assert_eq!(parse_wakeup_irq(""), None);
    assert_eq!(
        WakeupSource::parse("PNP0C0C:00\n", "3\n"),
        Some(WakeupSource {
            name: "PNP0C0C:00".into(),
            event_count: 3
        })
    );
    assert_eq!(WakeupSource::parse("x", "many"), None);
}

fn src(name: &str, event_count: u64) -> WakeupSource {
    WakeupSource {
        name: name.into(),
        event_count,
    }
}

#[test]
fn classifies_wakes() {
    let c = config(SuspendMethod::Logind);
    let before = [
        src("0000:00:1f.6", 4),
        src("PNP0C0C:00", 1),
        src("alarmtimer.0.auto", 0),
    ];
    let nic = [
        src("0000:00:1f.6", 5),
        src("PNP0C0C:00", 1),
        src("alarmtimer.0.auto", 0),
    ];
    assert_eq!(
        classify_wake(&c, &before, &nic, Some(16)),
        WakeReason::PageMiss
    );
    let button = [
        src("0000:00:1f.6", 4),
        src("PNP0C0C:00", 2),
        src("alarmtimer.0.auto", 0),
    ];
    assert_eq!(
        classify_wake(&c, &before, &button, None),
        WakeReason::UserReturn
    );
    let usb_kbd = [src("1-4", 1)];
    assert_eq!(
        classify_wake(&c, &before, &usb_kbd, None),
        WakeReason::Other("wakeup source 1-4".into())
    );
    let usb = [src("usb1", 7)];
    assert_eq!(
        classify_wake(&c, &before, &usb, None),
        WakeReason::UserReturn,
        "a new source counts as fired"
    );
    let rtc = [src("alarmtimer.0.auto", 1)];
    assert_eq!(
        classify_wake(&c, &before, &rtc, None),
        WakeReason::Other("wakeup source alarmtimer.0.auto".into())
    );
    assert_eq!(
        classify_wake(&c, &before, &before, Some(9)),
        WakeReason::Other("irq 9".into())
    );
    assert_eq!(
        classify_wake(&c, &[], &[], None),
        WakeReason::Other("unknown".into())
    );
    let by_iface = [src("enp0s31f6", 1)];
    assert_eq!(
        classify_wake(&c, &[], &by_iface, None),
        WakeReason::PageMiss
    );
}

#[test]
fn config_from_toml() {
    let c: LinuxConfig =
        toml::from_str("iface = \"eth0\"\nmethod = \"sys-power-state\"\n").unwrap();
    assert_eq!(c.method, SuspendMethod::SysPowerState);
    assert_eq!(c.session, None);
    let d: LinuxConfig = toml::from_str("iface = \"eth0\"\n").unwrap();
    assert_eq!(d, LinuxConfig::new("eth0"));
    assert_eq!(d.method, SuspendMethod::Logind);
    assert_eq!(d.seat, "seat0");
    assert_eq!(d.remote_sessions, RemoteSessions::Block);
    assert_eq!(d.input_dir, PathBuf::from("/dev/input"));
    assert_eq!(d.bus_address, None);
    let e: LinuxConfig = toml::from_str(
        "iface = \"eth0\"\nsession = \"7\"\nremote_sessions = \"ignore\"\nbus_address = \"unix:path=/x\"\n",
    )
    .unwrap();
    assert_eq!(e.session.as_deref(), Some("7"));
    assert_eq!(e.remote_sessions, RemoteSessions::Ignore);
    assert_eq!(e.bus_address.as_deref(), Some("unix:path=/x"));
    assert!(toml::from_str::<LinuxConfig>("iface = \"eth0\"\nmethod = \"hibernate\"\n").is_err());
    assert!(toml::from_str::<LinuxConfig>("iface = \"eth0\"\nidle = 1\n").is_err());
}
