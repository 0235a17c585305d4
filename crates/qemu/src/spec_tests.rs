//! Unit tests of the command-line builder and the memory file helper.

use std::path::PathBuf;

use crate::spec::*;

fn opts() -> LaunchOptions {
    LaunchOptions {
        binary: "/usr/bin/qemu-system-x86_64".into(),
        accel: Accel::Tcg,
        mem_path: "/dev/shm/vm1.mem".into(),
        run_dir: "/run/j".into(),
        console_log: None,
        incoming: false,
        name: "vm1".into(),
        deny_hugepage_advice: false,
        tap: None,
        disk_path: None,
        extra_args: vec![],
        confine: None,
    }
}

fn pos(a: &[String], s: &str) -> usize {
    a.iter()
        .position(|x| x == s)
        .unwrap_or_else(|| panic!("{s} missing in {a:?}"))
}

#[test]
fn basic_command_line() {
    let spec = MachineSpec {
        memory_mib: 256,
        cpus: 2,
        ..Default::default()
    };
    let a = command_line(&spec, &opts());
    let j = a.join(" ");
    assert!(
        j.contains("-nodefaults -vga none -display none -no-user-config"),
        "{j}"
    );
    assert_eq!(a[pos(&a, "-machine") + 1], "q35,memory-backend=mem");
    assert_eq!(
        a[pos(&a, "-object") + 1],
        "memory-backend-file,id=mem,size=256M,mem-path=/dev/shm/vm1.mem,share=on"
    );
    assert_eq!(a[pos(&a, "-m") + 1], "256M");
    assert_eq!(a[pos(&a, "-smp") + 1], "2");
    assert_eq!(a[pos(&a, "-accel") + 1], "tcg");
    assert_eq!(
        a[pos(&a, "-qmp") + 1],
        "unix:/run/j/vm1.qmp,server=on,wait=off"
    );
    assert_eq!(
        a[pos(&a, "-chardev") + 1],
        "socket,id=ser0,path=/run/j/vm1.serial,server=on,wait=off"
    );
    assert_eq!(a[pos(&a, "-serial") + 1], "chardev:ser0");
    for absent in [
        "-incoming",
        "-kernel",
        "-initrd",
        "-append",
        "-net",
        "-netdev",
        "-device",
    ] {
        assert!(!a.iter().any(|x| x == absent), "{absent} in {a:?}");
    }
}

#[test]
fn kernel_extra_incoming_kvm() {
    let spec = MachineSpec {
        memory_mib: 512,
        cpus: 1,
        kernel: Some(PathBuf::from("/k/vmlinuz")),
        initrd: Some(PathBuf::from("/k/initrd")),
        append: Some("console=ttyS0 quiet".into()),
        ..MachineSpec::default()
    };
    let o = LaunchOptions {
        incoming: true,
        accel: Accel::Kvm,
        extra_args: vec!["-device".into(), "virtio-net-pci,netdev=n0".into()],
        ..opts()
    };
    let a = command_line(&spec, &o);
    assert_eq!(a[pos(&a, "-kernel") + 1], "/k/vmlinuz");
    assert_eq!(a[pos(&a, "-initrd") + 1], "/k/initrd");
    assert_eq!(a[pos(&a, "-append") + 1], "console=ttyS0 quiet");
    assert_eq!(a[pos(&a, "-accel") + 1], "kvm");
    assert!(pos(&a, "-device") > pos(&a, "-append"));
    assert_eq!(&a[a.len() - 2..], ["-incoming", "defer"]);
}

#[test]
fn commas_are_escaped() {
    let o = LaunchOptions {
        mem_path: "/tmp/a,b.mem".into(),
        run_dir: "/tmp/r,x".into(),
        ..opts()
    };
    let a = command_line(&MachineSpec::default(), &o);
    assert!(a[pos(&a, "-object") + 1].contains("mem-path=/tmp/a,,b.mem,share=on"));
    assert_eq!(
        a[pos(&a, "-qmp") + 1],
        "unix:/tmp/r,,x/vm1.qmp,server=on,wait=off"
    );
}

#[test]
fn accel_parse_display_serde() {
    assert_eq!("tcg".parse::<Accel>().unwrap(), Accel::Tcg);
    assert_eq!("KVM".parse::<Accel>().unwrap(), Accel::Kvm);
    assert!("hvf".parse::<Accel>().is_err());
    assert_eq!(Accel::Kvm.to_string(), "kvm");
    assert_eq!(Accel::default(), Accel::Tcg);
    assert_eq!(serde_json::to_string(&Accel::Tcg).unwrap(), "\"tcg\"");
    assert_eq!(
        serde_json::from_str::<Accel>("\"kvm\"").unwrap(),
        Accel::Kvm
    );
}

#[test]
fn machine_spec_roundtrips() {
    let spec = MachineSpec {
        append: Some("x".into()),
        nic_mac: Some("02:00:00:00:00:01".parse().unwrap()),
        ..Default::default()
    };
    let s = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<MachineSpec>(&s).unwrap(), spec);
    assert_eq!(spec.memory_bytes(), 256 << 20);
}

#[test]
fn mem_file_created_checked_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.mem");
    ensure_mem_file(&p, 4 << 20).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 4 << 20);
    std::fs::write(&p, vec![7u8; 4 << 20]).unwrap();
    ensure_mem_file(&p, 4 << 20).unwrap();
    assert_eq!(
        std::fs::read(&p).unwrap()[123],
        7,
        "existing data must be kept"
    );
    let e = ensure_mem_file(&p, 8 << 20).unwrap_err();
    assert!(e.to_string().contains("expected 8388608"), "{e}");
}

#[test]
fn nic_without_romfile_is_flagged() {
    let o = LaunchOptions {
        extra_args: vec![
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
            "-device".into(),
            "virtio-net-pci,netdev=n1,romfile=".into(),
            "-device".into(),
            "virtio-serial-pci".into(),
        ],
        ..opts()
    };
    assert_eq!(
        option_rom_devices(&o),
        vec!["virtio-net-pci,netdev=n0".to_string()]
    );
}

#[test]
fn nic_on_a_tap_and_disk_with_a_fixed_geometry() {
    let spec = MachineSpec {
        nic_mac: Some("52:54:00:00:00:07".parse().unwrap()),
        disk_bytes: Some(32 << 20),
        ..MachineSpec::default()
    };
    let o = LaunchOptions {
        tap: Some("jtap0".into()),
        disk_path: Some("/d/vm1.img".into()),
        ..opts()
    };
    let a = command_line(&spec, &o);
    assert_eq!(
        a[pos(&a, "-netdev") + 1],
        "tap,id=net0,ifname=jtap0,script=no,downscript=no"
    );
    assert!(a.contains(&"virtio-net-pci,netdev=net0,mac=52:54:00:00:00:07,romfile=".to_string()));
    assert!(a[pos(&a, "-drive") + 1].starts_with("file=/d/vm1.img,if=none,id=disk0,format=raw"));
    // 32 MiB / (16 heads x 63 sectors x 512 bytes) rounded up.
    assert!(
        a.contains(&"virtio-blk-pci,drive=disk0,cyls=66,heads=16,secs=63".to_string()),
        "{a:?}"
    );
    // Without the host side, no device is emitted (launch refuses it earlier).
    let bare = command_line(&spec, &opts());
    assert!(!bare.iter().any(|x| x == "-netdev" || x == "-drive"));
}
