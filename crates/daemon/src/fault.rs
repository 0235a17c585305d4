//! Fault injection for the crash matrix (`cargo xtask chaos`), compiled in
//! only with the `fault-injection` feature (test hosts); without it every
//! call is a no-op and no environment variable is read.
//!
//! `JETTISON_FAULT` holds one fault, fired at most once per process:
//! * `pause@<point>:<ms>`: at the named point, write the point's name to
//!   the file `JETTISON_FAULT_MARK` and stop for `<ms>` ms, so that the
//!   harness can act at that very moment (kill a process, take a link
//!   down). Points are the handover's persisted transitions, named
//!   `agent:<state>` and `server:<state>` (see [`point`]'s callers).
//! * `drop@<Message>`: the next message of that kind this process would
//!   send is not sent and its connection is closed: a lost reply.

/// The environment variable holding the fault.
pub const FAULT_ENV: &str = "JETTISON_FAULT";
/// The file a pause writes its point's name to.
pub const MARK_ENV: &str = "JETTISON_FAULT_MARK";

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::{FAULT_ENV, MARK_ENV};

    static FIRED: AtomicBool = AtomicBool::new(false);

    fn spec() -> Option<&'static str> {
        static SPEC: OnceLock<Option<String>> = OnceLock::new();
        SPEC.get_or_init(|| std::env::var(FAULT_ENV).ok())
            .as_deref()
    }

    fn fire() -> bool {
        !FIRED.swap(true, Ordering::SeqCst)
    }

    pub fn point(name: &str) {
        let Some(rest) = spec().and_then(|s| s.strip_prefix("pause@")) else {
            return;
        };
        let Some((at, ms)) = rest.rsplit_once(':') else {
            return;
        };
        if at != name || !fire() {
            return;
        }
        let ms: u64 = ms.parse().unwrap_or(5_000);
        tracing::warn!(point = name, ms, "fault injection: pausing here");
        if let Ok(mark) = std::env::var(MARK_ENV) {
            let _ = std::fs::write(mark, name);
        }
        std::thread::sleep(Duration::from_millis(ms));
    }

    pub fn drops(kind: &str) -> bool {
        let hit = spec().and_then(|s| s.strip_prefix("drop@")) == Some(kind) && fire();
        if hit {
            tracing::warn!(message = kind, "fault injection: dropping this message");
        }
        hit
    }
}

/// A named point of the handover: pauses there if the fault says so.
pub fn point(name: &str) {
    #[cfg(feature = "fault-injection")]
    armed::point(name);
    #[cfg(not(feature = "fault-injection"))]
    let _ = name;
}

/// Whether the next message of kind `kind` is to be dropped (close the
/// connection instead of sending it).
pub fn drops(kind: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    return armed::drops(kind);
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = kind;
        false
    }
}
