//! Choosing the accelerator by running a guest, not by looking for
//! `/dev/kvm`: on some hosts the device exists and QEMU starts under KVM,
//! but the guest hangs (on the development machines, at its switch to
//! protected mode: a kernel prints its real-mode setup's messages, then
//! nothing). The probe boots a firmware of a few hundred bytes that goes
//! from real mode through protected mode to long mode with paging, as a
//! kernel does, and then writes to QEMU's `isa-debug-exit` port, under the
//! accelerator with a timeout: only a guest that got there and made QEMU
//! exit with the code it wrote proves the accelerator usable.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::spec::Accel;

/// What a configuration asks for (`accel = "auto" | "kvm" | "tcg"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM if a probe guest runs under it, TCG otherwise (the reason logged).
    #[default]
    Auto,
    /// Always TCG.
    Tcg,
    /// Always KVM (no probe: the operator knows the host).
    Kvm,
}

impl AccelChoice {
    /// The accelerator itself, unless it must be probed.
    pub fn fixed(self) -> Option<Accel> {
        match self {
            AccelChoice::Auto => None,
            AccelChoice::Tcg => Some(Accel::Tcg),
            AccelChoice::Kvm => Some(Accel::Kvm),
        }
    }
}

/// How long the probe guest has to run its first instructions, QEMU's
/// start included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The I/O port of the probe's `isa-debug-exit` device.
const EXIT_PORT: u8 = 0xf4;
/// The value the probe guest writes there; QEMU exits with `(v << 1) | 1`.
const EXIT_VALUE: u8 = 0x2a;
/// QEMU's exit code once the probe guest ran.
pub const PROBE_EXIT_CODE: i32 = ((EXIT_VALUE as i32) << 1) | 1;

/// The probe guest's code, at the start of its firmware (run from
/// 0xffff0000, and seen at 0xf0000 through the BIOS's ISA alias): what a
/// Linux kernel does first, real mode to protected mode to long mode with
/// paging, then `out 0xf4` of [`EXIT_VALUE`]. Real mode alone is not
/// enough: on hosts where guests hang under KVM, a guest may still run
/// real-mode code and hang at its switch to protected mode.
const PROBE_CODE: &[u8] = &[
    // .code16, at 0x0000
    0xfa, // cli
    0xb8, 0x00, 0xf0, // mov ax, 0xf000
    0x8e, 0xd8, // mov ds, ax (the firmware's ISA alias)
    0x66, 0x0f, 0x01, 0x16, 0xb0, 0x00, // lgdt dword [0x00b0]
    0x0f, 0x20, 0xc0, // mov eax, cr0
    0x66, 0x83, 0xc8, 0x01, // or eax, 1 (PE)
    0x0f, 0x22, 0xc0, // mov cr0, eax
    0x66, 0xea, 0x1e, 0x00, 0x0f, 0x00, 0x08, 0x00, // jmp dword 0x08:0xf001e
    // .code32, at 0x001e
    0x66, 0xb8, 0x10, 0x00, // mov ax, 0x10
    0x8e, 0xd8, // mov ds, ax
    0x8e, 0xc0, // mov es, ax
    0x8e, 0xd0, // mov ss, ax
    0xbf, 0x00, 0x10, 0x00, 0x00, // mov edi, 0x1000
    0x31, 0xc0, // xor eax, eax
    0xb9, 0x00, 0x0c, 0x00, 0x00, // mov ecx, 0xc00
    0xf3, 0xab, // rep stosd (page tables at 0x1000-0x3fff zeroed)
    0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, // PML4[0] = 0x2000 | P | W
    0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, // PDPT[0] = 0x3000 | P | W
    0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, // PD[0] = 2 MiB page at 0
    0x0f, 0x20, 0xe0, // mov eax, cr4
    0x83, 0xc8, 0x20, // or eax, 0x20 (PAE)
    0x0f, 0x22, 0xe0, // mov cr4, eax
    0xb8, 0x00, 0x10, 0x00, 0x00, // mov eax, 0x1000
    0x0f, 0x22, 0xd8, // mov cr3, eax
    0xb9, 0x80, 0x00, 0x00, 0xc0, // mov ecx, 0xc0000080 (EFER)
    0x0f, 0x32, // rdmsr
    0x0d, 0x00, 0x01, 0x00, 0x00, // or eax, 0x100 (LME)
    0x0f, 0x30, // wrmsr
    0x0f, 0x20, 0xc0, // mov eax, cr0
    0x0d, 0x00, 0x00, 0x00, 0x80, // or eax, 0x80000000 (PG)
    0x0f, 0x22, 0xc0, // mov cr0, eax
    0xea, 0x85, 0x00, 0x0f, 0x00, 0x18, 0x00, // jmp 0x18:0xf0085
    // .code64, at 0x0085
    0xb0, EXIT_VALUE, // mov al, 0x2a
    0xe6, EXIT_PORT, // out 0xf4, al
    0xf4,      // hlt
    0xeb, 0xfd, // jmp back to the hlt
];

/// The probe's GDT (null, 32-bit code 0x08, data 0x10, 64-bit code 0x18)
/// and its descriptor, at 0x0090 of the firmware.
const PROBE_GDT: &[u8] = &[
    0, 0, 0, 0, 0, 0, 0, 0, // null
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00, // code, 32-bit, flat
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, // data, flat
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00, // code, 64-bit
    0x1f, 0x00, 0x90, 0x00, 0x0f, 0x00, // limit 31, base 0xf0090
];
const PROBE_GDT_AT: usize = 0x90;

/// The probe's firmware: [`PROBE_CODE`] and [`PROBE_GDT`] in 64 KiB (QEMU
/// takes a BIOS image in whole 64 KiB units) of `hlt`, and at the reset
/// vector (its last 16 bytes, where an x86 CPU starts) a jump to the code.
pub fn probe_firmware() -> Vec<u8> {
    let mut image = firmware(&[0xe9, 0x0d, 0x00]); // jmp 0x0000
    image[..PROBE_CODE.len()].copy_from_slice(PROBE_CODE);
    image[PROBE_GDT_AT..PROBE_GDT_AT + PROBE_GDT.len()].copy_from_slice(PROBE_GDT);
    image
}

/// A 64 KiB firmware of `hlt` with `reset` at the reset vector.
pub fn firmware(reset: &[u8]) -> Vec<u8> {
    const SIZE: usize = 64 << 10;
    assert!(reset.len() <= 16, "the reset vector has 16 bytes");
    let mut image = vec![0xf4; SIZE];
    image[SIZE - 16..SIZE - 16 + reset.len()].copy_from_slice(reset);
    image
}

/// The accelerator chosen and why (for the log and the status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelDecision {
    /// The accelerator to use.
    pub accel: Accel,
    /// Why, in words.
    pub reason: String,
}

/// Resolves `choice` for this host: `auto` boots the probe guest under KVM
/// with `qemu` and falls back to TCG with the reason. Logs the decision.
pub fn choose_accel(choice: AccelChoice, qemu: &Path) -> AccelDecision {
    let decision = match choice.fixed() {
        Some(accel) => AccelDecision {
            accel,
            reason: format!("accel = \"{accel}\" in the configuration"),
        },
        None => decide_auto(Path::new("/dev/kvm").exists(), || {
            probe_accel(qemu, Accel::Kvm, PROBE_TIMEOUT)
        }),
    };
    if choice == AccelChoice::Auto && decision.accel == Accel::Tcg {
        tracing::warn!(accel = %decision.accel, "accelerator: {}", decision.reason);
    } else {
        tracing::info!(accel = %decision.accel, "accelerator: {}", decision.reason);
    }
    decision
}

/// `auto`'s rule (pure but for `probe`, called only when `/dev/kvm` exists).
pub(crate) fn decide_auto(
    kvm_device: bool,
    probe: impl FnOnce() -> Result<Duration, String>,
) -> AccelDecision {
    if !kvm_device {
        return AccelDecision {
            accel: Accel::Tcg,
            reason: "accel = \"auto\": no /dev/kvm on this host; using TCG (software \
                     emulation, much slower)"
                .into(),
        };
    }
    match probe() {
        Ok(took) => AccelDecision {
            accel: Accel::Kvm,
            reason: format!(
                "accel = \"auto\": a probe guest ran under KVM (in {} ms); using KVM",
                took.as_millis()
            ),
        },
        Err(why) => AccelDecision {
            accel: Accel::Tcg,
            reason: format!(
                "accel = \"auto\": KVM is not usable here: {why}; using TCG (software \
                 emulation, much slower); set accel = \"tcg\" to skip this probe"
            ),
        },
    }
}

/// Boots the probe guest under `accel`; gives how long QEMU took, or why
/// the guest did not run.
pub fn probe_accel(qemu: &Path, accel: Accel, timeout: Duration) -> Result<Duration, String> {
    run_firmware(qemu, accel, &probe_firmware(), timeout)
}

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `image` as the BIOS of a bare machine under `accel`: `Ok` if QEMU
/// exits with [`PROBE_EXIT_CODE`] within `timeout`.
pub fn run_firmware(
    qemu: &Path,
    accel: Accel,
    image: &[u8],
    timeout: Duration,
) -> Result<Duration, String> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = TempFile(std::env::temp_dir().join(format!(
        "jettison-accel-probe-{}-{n}.bin",
        std::process::id()
    )));
    std::fs::write(&file.0, image)
        .map_err(|e| format!("cannot write the probe firmware {}: {e}", file.0.display()))?;
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "none", "-monitor", "none", "-m", "16"])
        .args(["-machine", "pc", "-accel", accel.as_str(), "-bios"])
        .arg(&file.0)
        .arg("-device")
        .arg(format!("isa-debug-exit,iobase={EXIT_PORT:#x},iosize=0x01"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "a probe guest under {accel} did not get from real mode to long mode and its \
                     exit port within {} s (QEMU started; the guest hangs, as guests do on hosts \
                     whose KVM cannot run them)",
                    timeout.as_secs_f64()
                ));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for the probe QEMU: {e}"));
            }
        }
    };
    let took = started.elapsed();
    if status.code() == Some(PROBE_EXIT_CODE) {
        return Ok(took);
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let said = stderr.trim().lines().last().unwrap_or("no message").trim();
    Err(format!(
        "the probe QEMU under {accel} exited with {status} before its guest ran: {said}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_firmware_jumps_from_the_reset_vector_to_its_code() {
        let f = probe_firmware();
        assert_eq!(f.len(), 64 << 10);
        // A near jump from 0xfff3 (after the instruction) wraps to 0x0000.
        assert_eq!(&f[0xfff0..0xfff3], &[0xe9, 0x0d, 0x00]);
        assert!(
            PROBE_CODE.len() <= PROBE_GDT_AT,
            "the code runs into the GDT"
        );
        assert_eq!(&f[..PROBE_CODE.len()], PROBE_CODE);
        // lgdt's operand and the GDT's base are where the GDT is.
        assert_eq!(&PROBE_CODE[10..12], &[0xb0, 0x00]);
        assert_eq!(PROBE_GDT_AT + 32, 0xb0);
        assert_eq!(&PROBE_GDT[34..38], &[0x90, 0x00, 0x0f, 0x00]);
        // The far jumps land on the 32-bit and 64-bit code.
        assert_eq!(&PROBE_CODE[0x1e..0x20], &[0x66, 0xb8]);
        assert_eq!(&PROBE_CODE[0x85..0x87], &[0xb0, EXIT_VALUE]);
        assert_eq!(PROBE_EXIT_CODE, 85);
    }

    #[test]
    fn auto_takes_kvm_only_when_its_guest_ran() {
        let d = decide_auto(true, || Ok(Duration::from_millis(40)));
        assert_eq!(d.accel, Accel::Kvm);
        assert!(d.reason.contains("40 ms"), "{}", d.reason);
        let d = decide_auto(true, || Err("it hangs".into()));
        assert_eq!(d.accel, Accel::Tcg);
        assert!(
            d.reason.contains("KVM is not usable here: it hangs"),
            "{}",
            d.reason
        );
        let d = decide_auto(false, || panic!("no probe without /dev/kvm"));
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("no /dev/kvm"), "{}", d.reason);
    }

    #[test]
    fn a_fixed_choice_is_not_probed() {
        assert_eq!(AccelChoice::Tcg.fixed(), Some(Accel::Tcg));
        assert_eq!(AccelChoice::Kvm.fixed(), Some(Accel::Kvm));
        assert_eq!(AccelChoice::Auto.fixed(), None);
        let d = choose_accel(AccelChoice::Kvm, Path::new("/nonexistent/qemu"));
        assert_eq!(d.accel, Accel::Kvm);
        assert_eq!(AccelChoice::default(), AccelChoice::Auto);
    }

    #[derive(Deserialize)]
    struct T {
        accel: AccelChoice,
    }

    #[test]
    fn choices_parse_from_toml_in_lower_case() {
        for (text, want) in [
            ("auto", AccelChoice::Auto),
            ("kvm", AccelChoice::Kvm),
            ("tcg", AccelChoice::Tcg),
        ] {
            let t: T = serde_json::from_str(&format!("{{\"accel\":\"{text}\"}}")).unwrap();
            assert_eq!(t.accel, want);
        }
        assert!(serde_json::from_str::<T>("{\"accel\":\"KVM\"}").is_err());
        assert!(serde_json::from_str::<T>("{\"accel\":\"hvf\"}").is_err());
    }
}
