//! The Linux power backend for real desktops: a thin executor of the plans
//! in [`crate::linux`]. **Not exercised on the test hosts** (no S3, no
//! WoL-capable NIC, no logind session); only the plans are unit-tested.
//!
//! Times come from `CLOCK_BOOTTIME`, which keeps counting while the system
//! sleeps (`std::time::Instant`, on `CLOCK_MONOTONIC`, does not). The
//! process itself is frozen during S3, so the instants at which the machine
//! fell asleep and started resuming are not observed: they are placed at
//! the profile's suspend latency after the request and its resume latency
//! before the process ran again.

use std::sync::Mutex;
use std::time::Duration;

use jettison_power_model::profile::PowerProfile;
use jettison_power_model::timeline::{HostState, Placement, Timeline, WakeReason};
use nix::time::{clock_gettime, ClockId};
use tracing::{info, warn};

use crate::backend::{BoxFuture, PowerBackend};
use crate::linux::{
    classify_wake, parse_wake_on, parse_wakeup_irq, suspend_plan, LinuxConfig, Step, WakeupSource,
};
use crate::linux::{PM_WAKEUP_IRQ, WAKEUP_CLASS};
use crate::PowerError;

/// The Linux backend.
#[derive(Debug)]
pub struct LinuxBackend {
    config: LinuxConfig,
    profile: PowerProfile,
    epoch_ms: u64,
    timeline: Mutex<Timeline>,
}

fn clock_ms(clock: ClockId) -> u64 {
    clock_gettime(clock).map_or(0, |t| {
        (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000
    })
}

/// Milliseconds the system has spent suspended since boot.
fn slept_ms() -> u64 {
    clock_ms(ClockId::CLOCK_BOOTTIME).saturating_sub(clock_ms(ClockId::CLOCK_MONOTONIC))
}

fn wakeup_sources() -> Vec<WakeupSource> {
    let Ok(dir) = std::fs::read_dir(WAKEUP_CLASS) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let name = std::fs::read_to_string(e.path().join("name")).ok()?;
            let count = std::fs::read_to_string(e.path().join("event_count")).ok()?;
            WakeupSource::parse(&name, &count)
        })
        .collect()
}

async fn execute(step: &Step) -> Result<String, PowerError> {
    match step {
        Step::Run { program, args } => {
            let out = tokio::process::Command::new(program)
                .args(args)
                .output()
                .await
                .map_err(PowerError::io(format!("running {step}")))?;
            if !out.status.success() {
                let detail = format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return Err(PowerError::Command {
                    command: step.to_string(),
                    detail,
                });
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Step::Write { path, contents } => {
            // Blocks until resume for /sys/power/state: run it off the runtime.
            let (path, contents) = (path.clone(), contents.clone());
            tokio::task::spawn_blocking(move || std::fs::write(&path, contents))
                .await
                .map_err(|e| PowerError::Invalid(format!("writer task: {e}")))?
                .map_err(PowerError::io(format!("{step}")))?;
            Ok(String::new())
        }
    }
}

impl LinuxBackend {
    /// A backend for this desktop, starting in `initial` (Active or Idle).
    pub fn new(config: LinuxConfig, profile: PowerProfile, initial: HostState) -> Self {
        let epoch_ms = clock_ms(ClockId::CLOCK_BOOTTIME);
        Self {
            config,
            profile,
            epoch_ms,
            timeline: Mutex::new(Timeline::starting(0, initial)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn do_suspend(&self) -> Result<(), PowerError> {
        let before = self.state();
        if !before.is_awake() {
            return Err(PowerError::State {
                action: "suspend",
                state: before,
            });
        }
        let sources = wakeup_sources();
        let slept_before = slept_ms();
        let t0 = self.now_ms();
        self.lock().record(t0, HostState::Suspending)?;
        for step in suspend_plan(&self.config) {
            info!(%step, "suspend step");
            let out = match execute(&step).await {
                Ok(out) => out,
                Err(e) => {
                    self.lock().record(self.now_ms(), before)?;
                    return Err(e);
                }
            };
            if matches!(&step, Step::Run { program, args } if program == "ethtool" && args.len() == 1)
                && parse_wake_on(&out).as_deref() != Some("g")
            {
                warn!(iface = %self.config.iface, "Wake-on is not 'g' after arming: the desktop may not wake");
            }
        }
        // logind suspends asynchronously: wait until sleep time went up.
        for _ in 0..600 {
            if slept_ms() > slept_before + 500 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let back = self.now_ms();
        let irq = std::fs::read_to_string(PM_WAKEUP_IRQ)
            .ok()
            .and_then(|t| parse_wakeup_irq(&t));
        let reason = classify_wake(&self.config, &sources, &wakeup_sources(), irq);
        let after = if reason == WakeReason::UserReturn {
            HostState::Active
        } else {
            HostState::Idle
        };
        let asleep = (t0 + self.profile.suspend.latency_ms).min(back);
        let resuming = back
            .saturating_sub(self.profile.resume.latency_ms)
            .max(asleep);
        let mut t = self.lock();
        t.record(asleep, HostState::Asleep)?;
        t.record_wake(resuming, reason)?;
        t.record(back, after)?;
        Ok(())
    }
}

impl PowerBackend for LinuxBackend {
    /// Runs the suspend plan; resolves after the desktop woke up again.
    fn suspend(&self) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(self.do_suspend())
    }

    /// Code runs only on an awake desktop: nothing to do.
    fn resume(&self, _reason: WakeReason) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(async { Ok(()) })
    }

    fn state(&self) -> HostState {
        self.lock().current().unwrap_or(HostState::Active)
    }

    fn set_idle(&self, idle: bool) -> Result<(), PowerError> {
        let now = self.now_ms();
        let mut t = self.lock();
        if t.current().is_some_and(HostState::is_awake) {
            t.record(
                now,
                if idle {
                    HostState::Idle
                } else {
                    HostState::Active
                },
            )?;
        }
        Ok(())
    }

    fn record_placement(&self, vm: &str, placement: Placement) -> Result<(), PowerError> {
        let now = self.now_ms();
        Ok(self.lock().record_placement(now, vm, placement)?)
    }

    fn timeline(&self) -> Timeline {
        self.lock().clone()
    }

    fn now_ms(&self) -> u64 {
        clock_ms(ClockId::CLOCK_BOOTTIME).saturating_sub(self.epoch_ms)
    }
}
