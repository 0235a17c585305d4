//! The accelerator probe against real QEMU: its guest runs under TCG and
//! makes QEMU exit with the code it wrote; a guest that never gets there
//! is caught by the timeout; `auto` takes KVM only if the probe ran under
//! it, and says why not otherwise (on the development machines /dev/kvm
//! exists but guests hang: TCG, with the reason).

mod common;

use std::path::Path;
use std::time::Duration;

use jettison_qemu::accel_probe::{
    choose_accel, firmware, probe_accel, run_firmware, AccelChoice, PROBE_TIMEOUT,
};
use jettison_qemu::Accel;

fn qemu() -> &'static Path {
    Path::new(common::QEMU)
}

#[test]
fn the_probe_guest_runs_under_tcg() {
    let took = probe_accel(qemu(), Accel::Tcg, Duration::from_secs(60))
        .expect("the probe guest runs under TCG");
    eprintln!("TCG probe: {} ms", took.as_millis());
}

#[test]
fn a_guest_that_never_exits_is_caught_by_the_timeout() {
    // `jmp $` at the reset vector: runs forever, never writes the port.
    let spin = firmware(&[0xeb, 0xfe]);
    let e = run_firmware(qemu(), Accel::Tcg, &spin, Duration::from_secs(2)).unwrap_err();
    assert!(e.contains("its exit port within 2 s"), "{e}");
    // A guest that writes another value is not taken for the probe's.
    let other = firmware(&[0xb0, 0x01, 0xe6, 0xf4, 0xfa, 0xf4, 0xeb, 0xfd]);
    let e = run_firmware(qemu(), Accel::Tcg, &other, Duration::from_secs(60)).unwrap_err();
    assert!(e.contains("exited with exit status: 3"), "{e}");
}

#[test]
fn a_qemu_that_cannot_start_is_a_reason() {
    let e = probe_accel(
        Path::new("/nonexistent/qemu-system-x86_64"),
        Accel::Tcg,
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(e.contains("cannot start"), "{e}");
}

/// `auto` on this host agrees with a probe of KVM made here, and gives the
/// reason; on the development machines and CI (no usable KVM) it is TCG.
#[test]
fn auto_chooses_kvm_only_if_its_probe_guest_ran() {
    let decision = choose_accel(AccelChoice::Auto, qemu());
    eprintln!("auto: {} ({})", decision.accel, decision.reason);
    let kvm_device = Path::new("/dev/kvm").exists();
    let kvm = if kvm_device {
        probe_accel(qemu(), Accel::Kvm, PROBE_TIMEOUT)
    } else {
        Err("no /dev/kvm".into())
    };
    match kvm {
        Ok(_) => assert_eq!(decision.accel, Accel::Kvm, "{}", decision.reason),
        Err(why) => {
            eprintln!("KVM probe here: {why}");
            assert_eq!(decision.accel, Accel::Tcg);
            assert!(decision.reason.contains("using TCG"), "{}", decision.reason);
            if kvm_device {
                assert!(
                    decision.reason.contains("KVM is not usable here"),
                    "{}",
                    decision.reason
                );
            }
        }
    }
}
