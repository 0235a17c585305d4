//! A VM's virtual hardware as it travels in `MigratePrepare`: typed and
//! checked while it decodes, so that nothing in it reaches the server's QEMU
//! command line as free text. There are no QEMU arguments here (each host
//! adds its own from its own configuration), boot files travel by digest
//! (the server finds its copy in its own image directories, never at a path
//! the desktop names), the NIC's MAC is six bytes, and the kernel command
//! line is bounded and printable.
//!
//! [`LegacyMachineDesc`] is the layout of protocol 1.0 and 1.1, which
//! carried free-form QEMU arguments and boot paths: it is decoded only so
//! that its `MigratePrepareV1` is refused with a clear error.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most bytes of a kernel command line (`append`).
pub const MAX_APPEND_BYTES: usize = 4096;
/// Most bytes of a boot file's display name.
pub const MAX_BOOT_NAME_BYTES: usize = 1024;

/// Everything about a VM's virtual hardware that must be identical on both
/// hosts for its device state to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDesc {
    /// Guest memory in MiB (the size of the memory file).
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Direct-boot kernel, if the VM boots one.
    pub kernel: Option<BootFile>,
    /// Direct-boot initramfs.
    pub initrd: Option<BootFile>,
    /// Kernel command line: at most [`MAX_APPEND_BYTES`], no control
    /// characters (checked while decoding).
    #[serde(default, deserialize_with = "append")]
    pub append: Option<String>,
    /// MAC address of the VM's NIC (it keeps it on every host).
    pub nic_mac: Option<MacAddr>,
    /// Size of the VM's disk image, if it has one (served lazily like memory).
    pub disk_bytes: Option<u64>,
}

/// A boot file named by its content: the receiving host boots its own copy
/// with this BLAKE3 digest, found in its image directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFile {
    /// The sender's file name, for messages only: never opened.
    #[serde(alias = "path", deserialize_with = "boot_name")]
    pub name: String,
    /// BLAKE3 digest of the file's content, 64 lowercase hex digits.
    #[serde(deserialize_with = "digest")]
    pub blake3: String,
}

/// Checks a kernel command line: at most [`MAX_APPEND_BYTES`], no control
/// characters (NUL, newlines...).
pub fn check_append(s: &str) -> Result<(), String> {
    if s.len() > MAX_APPEND_BYTES {
        return Err(format!(
            "kernel command line of {} bytes (at most {MAX_APPEND_BYTES})",
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("kernel command line with a control character".into());
    }
    Ok(())
}

/// Checks a boot file's display name: 1 to [`MAX_BOOT_NAME_BYTES`] bytes,
/// no control characters.
pub fn check_boot_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_BOOT_NAME_BYTES || s.chars().any(char::is_control) {
        return Err(format!(
            "boot file name of {} bytes: 1 to {MAX_BOOT_NAME_BYTES}, no control characters",
            s.len()
        ));
    }
    Ok(())
}

/// Checks a BLAKE3 digest: 64 lowercase hex digits.
pub fn check_digest(s: &str) -> Result<(), String> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "boot file digest {:?} is not 64 lowercase hex digits",
            truncated(s)
        ));
    }
    Ok(())
}

thread_local! {
    /// The last check that failed while decoding on this thread (decoding
    /// is synchronous): postcard drops a custom error's text, so
    /// [`crate::decode`] reports it from here.
    static REFUSAL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A decoding error that says why (see [`REFUSAL`]).
fn refuse<E: serde::de::Error>(why: impl fmt::Display) -> E {
    let why = why.to_string();
    REFUSAL.with(|r| *r.borrow_mut() = Some(why.clone()));
    E::custom(why)
}

/// Takes the reason of the last refusal while decoding on this thread.
pub(crate) fn take_refusal() -> Option<String> {
    REFUSAL.with(|r| r.borrow_mut().take())
}

fn truncated(s: &str) -> String {
    s.chars().take(70).collect()
}

fn append<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    if let Some(s) = &s {
        check_append(s).map_err(refuse::<D::Error>)?;
    }
    Ok(s)
}

fn boot_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_boot_name(&s).map_err(refuse::<D::Error>)?;
    Ok(s)
}

fn digest<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_digest(&s).map_err(refuse::<D::Error>)?;
    Ok(s)
}

/// A NIC's MAC address: six bytes, unicast, not all zeros. On the wire it
/// is the six bytes; in configuration files and records it is the usual
/// text, `52:54:00:12:34:56` (also how it is displayed).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr([u8; 6]);

/// Why a MAC address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// Not six hex pairs separated by `:`.
    #[error("MAC address {0:?} is not six hex pairs separated by ':' like 52:54:00:12:34:56")]
    Syntax(String),
    /// The group bit is set.
    #[error(
        "MAC address {0} is a multicast address; a NIC needs a unicast one (first octet even)"
    )]
    Multicast(String),
    /// All zeros.
    #[error("MAC address 00:00:00:00:00:00 is not a NIC's address")]
    Zero,
}

impl MacAddr {
    /// A NIC's address from its octets: unicast and not all zeros.
    pub fn new(octets: [u8; 6]) -> Result<Self, MacError> {
        let mac = MacAddr(octets);
        if octets == [0; 6] {
            return Err(MacError::Zero);
        }
        if octets[0] & 1 == 1 {
            return Err(MacError::Multicast(mac.to_string()));
        }
        Ok(mac)
    }

    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, MacError> {
        let syntax = || MacError::Syntax(truncated(s));
        let mut octets = [0u8; 6];
        let mut parts = s.split(':');
        for o in &mut octets {
            let p = parts.next().ok_or_else(syntax)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(syntax());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| syntax())?;
        }
        if parts.next().is_some() {
            return Err(syntax());
        }
        MacAddr::new(octets)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(refuse::<D::Error>)
        } else {
            MacAddr::new(<[u8; 6]>::deserialize(d)?).map_err(refuse::<D::Error>)
        }
    }
}

/// The machine description of protocol 1.0 and 1.1, with free-form QEMU
/// arguments and boot files by path. A server of minor 2 or later decodes
/// it only to refuse it (`MigratePrepareV1`: "upgrade jettison-agent").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyMachineDesc {
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Direct-boot kernel.
    pub kernel: Option<LegacyBootFile>,
    /// Direct-boot initramfs.
    pub initrd: Option<LegacyBootFile>,
    /// Kernel command line.
    pub append: Option<String>,
    /// QEMU arguments (at most [`crate::MAX_LEGACY_EXTRA_ARGS`]
    /// while decoding).
    #[serde(deserialize_with = "crate::bounded::legacy_extra_args")]
    pub extra_args: Vec<String>,
    /// MAC address, as text.
    pub nic_mac: Option<String>,
    /// Disk size.
    pub disk_bytes: Option<u64>,
}

/// A boot file of protocol 1.0 and 1.1: the sender's path and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyBootFile {
    /// Path on the sending host.
    pub path: String,
    /// Hex BLAKE3 digest.
    pub blake3: String,
}
