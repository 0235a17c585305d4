//! The Linux power backend for real desktops, over systemd-logind's D-Bus
//! API ([`crate::logind`]):
//!
//! * **Presence.** The active session of the seat (`seat0`), followed
//!   through the seat's `ActiveSession` property, so each new login is
//!   picked up; if it is a user's graphical session its `IdleHint` and
//!   `IdleSinceHintMonotonic` tell whether the user is at the desk (the
//!   desktop environment sets them from input). With no such session the
//!   input devices are read instead ([`crate::input`]).
//! * **Inhibitors.** While awake the backend holds a `delay` inhibitor on
//!   sleep. Before it suspends, it refuses if another program holds a
//!   `block` inhibitor or a remote session is active (the policy
//!   `remote_sessions`, [`crate::logind_policy`]), naming who in the error.
//! * **Sleep.** Wake-on-LAN is armed ([`crate::wol_ethtool`]), file systems
//!   flushed, and `Manager.Suspend(false)` asked (or `mem` written to
//!   `/sys/power/state`). `PrepareForSleep(true)` releases the delay lock;
//!   `PrepareForSleep(false)` marks the resume and the lock is taken again.
//!   A suspend the agent did not ask for (lid, menu) arrives as a
//!   [`SleepNotice`] carrying the delay lock: the agent finishes its work
//!   (tells the server) and drops it.
//!
//! Tested against a private `dbus-daemon` with a mock logind
//! (`crates/power/tests/logind.rs`); real suspends cannot run on the test
//! hosts.
//!
//! Times come from `CLOCK_BOOTTIME`, which keeps counting while the system
//! sleeps. The process itself is frozen during S3, so the instants at which
//! the machine fell asleep and started resuming are not observed: they are
//! placed at the profile's suspend latency after the request and its resume
//! latency before the process ran again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jettison_power_model::profile::PowerProfile;
use jettison_power_model::timeline::{HostState, Placement, Timeline, WakeReason, HISTORY_KEPT_MS};
use nix::time::{clock_gettime, ClockId};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::backend::{BoxFuture, PowerBackend};
use crate::input::InputWatch;
use crate::linux::{
    classify_wake, parse_wakeup_irq, LinuxConfig, SuspendMethod, WakeupSource, PM_WAKEUP_IRQ,
    SYS_POWER_STATE, WAKEUP_CLASS,
};
use crate::logind::{InhibitLock, Logind};
use crate::logind_policy::{sleep_blockers, Presence};
use crate::PowerError;

/// How long `Manager.Suspend` may take to announce the suspend.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often an active session counts as the user's input.
const ACTIVE_REPORT: Duration = Duration::from_secs(5);
/// Who takes the inhibitor locks.
pub const WHO: &str = "jettison-agent";

/// What the backend tells of a suspend it did not ask for.
#[derive(Debug)]
pub enum SleepNotice {
    /// logind is about to suspend (`PrepareForSleep(true)`): finish the work
    /// that must precede sleep, then drop `delay` (logind waits for it, at
    /// most its `InhibitDelayMaxSec`).
    Preparing {
        /// The delay inhibitor, if one was held.
        delay: Option<InhibitLock>,
    },
    /// The host resumed (`PrepareForSleep(false)`).
    Resumed,
}

pub(crate) fn clock_ms(clock: ClockId) -> u64 {
    clock_gettime(clock).map_or(0, |t| {
        (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000
    })
}

fn monotonic_us() -> u64 {
    clock_ms(ClockId::CLOCK_MONOTONIC) * 1000
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

/// What the user is doing, as last seen.
#[derive(Debug)]
struct PresenceState {
    /// The session whose idle hint tells presence.
    session: Option<String>,
    presence: Presence,
    /// The user came back and the agent has not been told yet.
    returned: bool,
    last_report: Option<Instant>,
    /// Input events already counted.
    input_seen: u64,
}

/// State shared by the backend and its watcher tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: LinuxConfig,
    profile: PowerProfile,
    epoch_ms: u64,
    timeline: Mutex<Timeline>,
    presence: Mutex<PresenceState>,
    /// The delay inhibitor held while awake.
    pub(crate) delay: Mutex<Option<InhibitLock>>,
    /// A suspend this backend asked for is under way.
    pub(crate) ours: AtomicBool,
    /// `PrepareForSleep` seen: (starts, resumes).
    pub(crate) sleeps: watch::Sender<(u64, u64)>,
    notices: mpsc::UnboundedSender<SleepNotice>,
    /// A suspend we did not ask for: its start and the wakeup sources then.
    external: Mutex<Option<(u64, Vec<WakeupSource>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn now_ms(&self) -> u64 {
        clock_ms(ClockId::CLOCK_BOOTTIME).saturating_sub(self.epoch_ms)
    }

    /// The presence session changed (`None`: no graphical session).
    pub(crate) fn set_session(&self, session: Option<(String, Presence)>) {
        let mut p = lock(&self.presence);
        match session {
            Some((id, presence)) => {
                if p.session.as_deref() != Some(&id) {
                    info!(session = %id, "a graphical session is active: its idle hint tells presence");
                }
                p.returned |= p.presence.is_return(presence);
                p.session = Some(id);
                p.presence = presence;
            }
            None => {
                if p.session.take().is_some() {
                    info!("no graphical session is active: presence from the input devices");
                }
                p.presence = Presence::Unknown;
            }
        }
    }

    /// The watched session's idle hint changed.
    pub(crate) fn set_presence(&self, presence: Presence) {
        let mut p = lock(&self.presence);
        if p.presence.is_return(presence) {
            info!(session = ?p.session, "the session is no longer idle: the user is back");
            p.returned = true;
        }
        p.presence = presence;
    }

    /// Records a sleep from `t0` (when it was asked for or announced) to
    /// now, its wake classified from the wakeup sources.
    fn record_sleep(&self, t0: u64, before: &[WakeupSource]) -> Result<(), PowerError> {
        let back = self.now_ms();
        let irq = std::fs::read_to_string(PM_WAKEUP_IRQ)
            .ok()
            .and_then(|t| parse_wakeup_irq(&t));
        let reason = classify_wake(&self.config, before, &wakeup_sources(), irq);
        let after = if reason == WakeReason::UserReturn {
            HostState::Active
        } else {
            HostState::Idle
        };
        let asleep = (t0 + self.profile.suspend.latency_ms).min(back);
        let resuming = back
            .saturating_sub(self.profile.resume.latency_ms)
            .max(asleep);
        let mut t = lock(&self.timeline);
        t.record(asleep, HostState::Asleep)?;
        t.record_wake(resuming, reason)?;
        t.record(back, after)?;
        Ok(())
    }

    /// `PrepareForSleep(true)` of a suspend we did not ask for.
    pub(crate) fn external_sleep_starts(&self, delay: Option<InhibitLock>) {
        let t0 = self.now_ms();
        {
            let mut t = lock(&self.timeline);
            if t.current().is_some_and(HostState::is_awake) {
                if let Err(e) = t.record(t0, HostState::Suspending) {
                    warn!("suspend not recorded: {e}");
                }
            }
        }
        *lock(&self.external) = Some((t0, wakeup_sources()));
        if let Err(e) = self.notices.send(SleepNotice::Preparing { delay }) {
            // Nobody listens: the lock is released as the notice drops.
            drop(e);
        }
    }

    /// `PrepareForSleep(false)` after a suspend we did not ask for.
    pub(crate) fn external_sleep_ends(&self) {
        if let Some((t0, before)) = lock(&self.external).take() {
            if let Err(e) = self.record_sleep(t0, &before) {
                warn!("sleep not recorded: {e}");
            }
        }
        let _ = self.notices.send(SleepNotice::Resumed);
    }
}

/// The Linux backend.
#[derive(Debug)]
pub struct LinuxBackend {
    shared: Arc<Shared>,
    logind: tokio::sync::Mutex<Option<Logind>>,
    input: Option<InputWatch>,
    notices: Mutex<Option<mpsc::UnboundedReceiver<SleepNotice>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The Wake-on-LAN program (`ethtool`).
    ethtool: String,
}

impl Drop for LinuxBackend {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

impl LinuxBackend {
    /// A backend for this desktop, starting in `initial` (Active or Idle).
    /// Starts reading the input devices if there are any (a warning
    /// otherwise); logind is reached by [`LinuxBackend::connect`].
    pub fn new(config: LinuxConfig, profile: PowerProfile, initial: HostState) -> Self {
        let input = match InputWatch::start(&config.input_dir) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("input devices: {e}");
                None
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            profile,
            epoch_ms: clock_ms(ClockId::CLOCK_BOOTTIME),
            timeline: Mutex::new(Timeline::starting(0, initial)),
            presence: Mutex::new(PresenceState {
                session: None,
                presence: Presence::Unknown,
                returned: false,
                last_report: None,
                input_seen: 0,
            }),
            delay: Mutex::new(None),
            ours: AtomicBool::new(false),
            sleeps: watch::Sender::new((0, 0)),
            notices: tx,
            external: Mutex::new(None),
        });
        Self {
            shared,
            logind: tokio::sync::Mutex::new(None),
            input,
            notices: Mutex::new(Some(rx)),
            tasks: Mutex::new(Vec::new()),
            ethtool: "ethtool".into(),
        }
    }

    /// Uses `program` instead of `ethtool` (tests).
    pub fn with_ethtool(mut self, program: impl Into<String>) -> Self {
        self.ethtool = program.into();
        self
    }

    /// Connects to logind (once; again after a failure): takes the delay
    /// inhibitor and starts following the seat's session and
    /// `PrepareForSleep`. A clear error if there is no bus or no logind.
    pub async fn connect(&self) -> Result<Logind, PowerError> {
        let mut slot = self.logind.lock().await;
        if let Some(l) = &*slot {
            return Ok(l.clone());
        }
        let logind = Logind::connect(self.shared.config.bus_address.as_deref()).await?;
        let delay = logind
            .inhibit_sleep(WHO, "to tell its server before the desktop sleeps", "delay")
            .await?;
        *lock(&self.shared.delay) = Some(delay);
        // Subscribed before the tasks run, so no signal is missed.
        let sleep = crate::logind_watch::watch_sleep(logind.clone(), self.shared.clone()).await?;
        let presence = crate::logind_watch::watch_presence(logind.clone(), self.shared.clone());
        let mut tasks = lock(&self.tasks);
        tasks.push(tokio::spawn(sleep));
        tasks.push(tokio::spawn(presence));
        info!("logind reached: following the seat's session, holding a delay inhibitor");
        *slot = Some(logind.clone());
        Ok(logind)
    }

    /// The notices of suspends this backend did not ask for (once).
    pub fn sleep_notices(&self) -> Option<mpsc::UnboundedReceiver<SleepNotice>> {
        lock(&self.notices).take()
    }

    /// The session whose idle hint tells presence now.
    pub fn presence_session(&self) -> Option<String> {
        lock(&self.shared.presence).session.clone()
    }

    /// What the presence session's idle hint says now (`Unknown` without
    /// one).
    pub fn presence(&self) -> Presence {
        lock(&self.shared.presence).presence
    }

    /// Whether anything tells the user's presence (a graphical session, or
    /// the input devices); idle detection needs it.
    pub fn knows_presence(&self) -> bool {
        self.input.is_some() || lock(&self.shared.presence).session.is_some()
    }

    /// Whether the user gave input since the last call: the session's idle
    /// hint turned false (at once), or it is not idle (at most every 5 s),
    /// or, with no graphical session, an input device had events.
    pub fn take_user_activity(&self) -> bool {
        let mut p = lock(&self.shared.presence);
        let events = self.input.as_ref().map_or(0, InputWatch::events);
        let new_input = events > p.input_seen;
        p.input_seen = events;
        let due = p.last_report.is_none_or(|t| t.elapsed() >= ACTIVE_REPORT);
        let active = p.session.is_some() && p.presence == Presence::Active && due;
        let input = p.session.is_none() && new_input;
        if std::mem::take(&mut p.returned) || active || input {
            p.last_report = Some(Instant::now());
            return true;
        }
        false
    }

    /// Refuses, naming who, if a block inhibitor or (by policy) a remote
    /// session keeps the desktop awake.
    pub async fn check_may_sleep(&self) -> Result<(), PowerError> {
        let logind = self.connect().await?;
        let inhibitors = logind.inhibitors().await?;
        let sessions = logind.sessions().await?;
        let blockers = sleep_blockers(
            &inhibitors,
            &sessions,
            self.shared.config.remote_sessions,
            monotonic_us(),
        );
        if blockers.is_empty() {
            return Ok(());
        }
        let why: Vec<String> = blockers.iter().map(ToString::to_string).collect();
        Err(PowerError::Refused(why.join("; ")))
    }

    async fn do_suspend(&self) -> Result<(), PowerError> {
        let before = self.state();
        if !before.is_awake() {
            return Err(PowerError::State {
                action: "suspend",
                state: before,
            });
        }
        self.check_may_sleep().await?;
        let logind = self.connect().await?;
        crate::wol_ethtool::arm_wol(&self.ethtool, &self.shared.config.iface).await?;
        let sources = wakeup_sources();
        let t0 = self.now_ms();
        lock(&self.shared.timeline).record(t0, HostState::Suspending)?;
        let slept = match self.shared.config.method {
            SuspendMethod::Logind => self.suspend_logind(&logind).await,
            SuspendMethod::SysPowerState => suspend_sysfs().await,
        };
        if let Err(e) = slept {
            lock(&self.shared.timeline).record(self.now_ms(), before)?;
            return Err(e);
        }
        self.shared.record_sleep(t0, &sources)
    }

    /// `Manager.Suspend(false)`, then waits for `PrepareForSleep(false)`.
    async fn suspend_logind(&self, logind: &Logind) -> Result<(), PowerError> {
        nix::unistd::sync();
        let mut sleeps = self.shared.sleeps.subscribe();
        let (started, resumed) = *sleeps.borrow_and_update();
        self.shared.ours.store(true, Ordering::Release);
        let result = async {
            info!("suspending through logind (Manager.Suspend)");
            logind.suspend().await?;
            tokio::time::timeout(
                PREPARE_TIMEOUT,
                sleeps.wait_for(|&(s, _)| s > started),
            )
            .await
            .map_err(|_| {
                PowerError::Logind(format!(
                    "Suspend was accepted but logind sent no PrepareForSleep within {PREPARE_TIMEOUT:?}"
                ))
            })?
            .map_err(|_| PowerError::Stopped)?;
            // The process is frozen from here until the resume.
            sleeps
                .wait_for(|&(_, r)| r > resumed)
                .await
                .map_err(|_| PowerError::Stopped)?;
            Ok(())
        }
        .await;
        self.shared.ours.store(false, Ordering::Release);
        result
    }
}

/// Writes `mem` to `/sys/power/state` (blocks until the resume).
async fn suspend_sysfs() -> Result<(), PowerError> {
    nix::unistd::sync();
    info!("suspending through {SYS_POWER_STATE}");
    tokio::task::spawn_blocking(|| std::fs::write(SYS_POWER_STATE, "mem"))
        .await
        .map_err(|e| PowerError::Invalid(format!("writer task: {e}")))?
        .map_err(PowerError::io(format!("writing mem to {SYS_POWER_STATE}")))
}

impl PowerBackend for LinuxBackend {
    /// Suspends; resolves after the desktop woke up again.
    fn suspend(&self) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(self.do_suspend())
    }

    fn may_suspend(&self) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(self.check_may_sleep())
    }

    /// Code runs only on an awake desktop: nothing to do.
    fn resume(&self, _reason: WakeReason) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(async { Ok(()) })
    }

    fn state(&self) -> HostState {
        lock(&self.shared.timeline)
            .current()
            .unwrap_or(HostState::Active)
    }

    fn set_idle(&self, idle: bool) -> Result<(), PowerError> {
        let now = self.now_ms();
        let mut t = lock(&self.shared.timeline);
        t.forget_before(now.saturating_sub(HISTORY_KEPT_MS));
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
        let mut t = lock(&self.shared.timeline);
        t.forget_before(now.saturating_sub(HISTORY_KEPT_MS));
        Ok(t.record_placement(now, vm, placement)?)
    }

    fn timeline(&self) -> Timeline {
        lock(&self.shared.timeline).clone()
    }

    fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }
}
