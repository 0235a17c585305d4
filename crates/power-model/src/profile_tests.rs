use super::*;

#[test]
fn defaults_are_valid_and_devices_add_up_to_the_resume() {
    let p = PowerProfile::default();
    p.validate().unwrap();
    let all = [
        Device::Cpu,
        Device::Memory,
        Device::Nic,
        Device::Disk,
        Device::Display,
        Device::Usb,
    ];
    assert_eq!(p.selective_resume(&all), p.resume);
    assert_eq!(p.desktop.active_w, 100.0);
    assert_eq!(p.desktop.idle_w, 60.0);
    assert_eq!(p.desktop.asleep_w, 3.0);
}

#[test]
fn selective_resume_counts_each_device_once() {
    let p = PowerProfile::default();
    let t = p.selective_resume(&[Device::Nic, Device::Memory, Device::Nic]);
    assert_eq!(t.latency_ms, 1_000);
    assert!((t.energy_j - 80.0).abs() < 1e-9);
    assert_eq!(p.selective_resume(&[]).latency_ms, 0);
}

#[test]
fn transition_average_power() {
    assert_eq!(
        Transition {
            latency_ms: 3_000,
            energy_j: 180.0
        }
        .average_w(),
        60.0
    );
    assert_eq!(
        Transition {
            latency_ms: 0,
            energy_j: 5.0
        }
        .average_w(),
        0.0
    );
}

#[test]
fn server_share_per_vm() {
    assert_eq!(ServerPower::default().watts_per_vm(), 10.0);
    let partial = ServerPower::default().watts_per_partial_vm();
    assert!((partial - 300.0 / 90.0).abs() < 1e-12, "{partial}");
    let s = ServerPower {
        idle_w: 100.0,
        peak_w: 200.0,
        vms_per_server: 0,
        partial_vms_per_server: 0,
    };
    assert_eq!(s.watts_per_vm(), 200.0, "no division by zero");
    assert_eq!(s.watts_per_partial_vm(), 200.0, "no division by zero");
}

#[test]
fn toml_round_trip_and_partial_files() {
    let p = PowerProfile::default();
    assert_eq!(PowerProfile::from_toml(&p.to_toml()).unwrap(), p);
    let q = PowerProfile::from_toml("[desktop]\nidle_w = 45.5\n").unwrap();
    assert_eq!(q.desktop.idle_w, 45.5);
    assert_eq!(q.desktop.active_w, 100.0);
    assert_eq!(q.resume, p.resume);
    let none = PowerProfile::from_toml("devices = []\n").unwrap();
    assert!(none.devices.is_empty());
}

#[test]
fn rejects_unknown_fields_and_bad_figures() {
    for c in [
        "[desktop]\nidle_watts = 3\n",
        "[suspend]\nlatency_ms = 3000\n",
    ] {
        assert!(
            matches!(PowerProfile::from_toml(c), Err(ProfileError::Parse(_))),
            "{c}"
        );
    }
    let cases = [
        "[desktop]\nidle_w = -1.0\n",
        "[desktop]\nidle_w = 120.0\n",
        "[desktop]\nasleep_w = 70.0\n",
        "[server]\nvms_per_server = 0\n",
        "[server]\npartial_vms_per_server = 0\n",
        "[server]\npeak_w = 10.0\n",
        "[resume]\nlatency_ms = 4000\nenergy_j = 400.0\n",
        "[resume]\nlatency_ms = 5000\nenergy_j = 1.0\n",
        "devices = [{ device = \"nic\", latency_ms = 5000, energy_j = 400.0 },\
         { device = \"nic\", latency_ms = 0, energy_j = 0.0 }]\n",
    ];
    for c in cases {
        assert!(
            matches!(PowerProfile::from_toml(c), Err(ProfileError::Invalid(_))),
            "{c}"
        );
    }
    let nan = PowerProfile {
        desktop: DesktopPower {
            active_w: f64::NAN,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(nan.validate().is_err());
}

#[test]
fn a_single_device_may_carry_the_whole_resume() {
    let t = "[resume]\nlatency_ms = 2000\nenergy_j = 100.0\n\
             [[devices]]\ndevice = \"cpu\"\nlatency_ms = 2000\nenergy_j = 100.0\n";
    let p = PowerProfile::from_toml(t).unwrap();
    assert_eq!(p.selective_resume(&[Device::Cpu]), p.resume);
}

#[test]
fn service_resume_is_cpu_memory_and_nic() {
    let p = PowerProfile::default();
    let t = p.service_resume();
    assert_eq!(t.latency_ms, 1_500 + 200 + 800);
    assert!((t.energy_j - 200.0).abs() < 1e-9);
    let bare = PowerProfile {
        devices: vec![],
        ..PowerProfile::default()
    };
    assert_eq!(bare.service_resume(), bare.resume);
}
