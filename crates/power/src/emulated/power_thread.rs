//! The emulated host's power thread: a current-thread runtime that stays
//! outside the freezer group, owns the group and the timeline, and plays
//! the WoL-armed NIC. Commands arrive in order; a magic packet that arrives
//! while a suspend is in progress waits in the socket buffer and wakes the
//! host as soon as it is asleep, as an armed NIC would.
//!
//! With selective resume, a page-miss wake thaws the host after the service
//! devices' latency ([`jettison_power_model::PowerProfile::service_resume`]); the user's
//! input while the host is up after such a wake resumes the rest of the
//! devices (the full latency minus the service latency) before the host is
//! Active. The host runs meanwhile (it is thawed): only the timeline says
//! Resuming.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use jettison_power_model::timeline::{HostState, Placement, Timeline, WakeReason};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::EmulatedConfig;
use crate::freezer::{FreezerGroup, FreezerState};
use crate::wol_net::WolListener;
use crate::PowerError;

/// State shared with the [`super::Emulated`] handle, lock-free.
#[derive(Debug)]
pub(super) struct Shared {
    /// [`HostState::code`] of the current state.
    pub state: AtomicU8,
    /// Time 0 of the timeline.
    pub epoch: Instant,
    /// Set when the emulated user touched the keyboard; taken by the daemon.
    pub user_returned: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

type Reply = oneshot::Sender<Result<(), PowerError>>;

/// Requests to the power thread.
#[derive(Debug)]
pub(super) enum Command {
    Suspend(Reply),
    Resume(WakeReason, Reply),
    Idle(bool),
    Placement(String, Placement, u64),
    Shutdown,
}

/// What the thread reports once it listens: its thread id and WoL address.
type Ready = Result<(i32, SocketAddr), PowerError>;

struct Host {
    config: EmulatedConfig,
    group: FreezerGroup,
    shared: Arc<Shared>,
    timeline: Timeline,
    snapshots: std_mpsc::Sender<Timeline>,
}

impl Host {
    fn state(&self) -> HostState {
        HostState::from_code(self.shared.state.load(Ordering::Acquire)).expect("valid state code")
    }

    fn publish(&mut self, state: HostState) {
        self.shared.state.store(state.code(), Ordering::Release);
        let _ = self.snapshots.send(self.timeline.clone());
    }

    fn set(&mut self, state: HostState) -> Result<(), PowerError> {
        self.timeline.record(self.shared.now_ms(), state)?;
        self.publish(state);
        Ok(())
    }

    async fn suspend(&mut self) -> Result<(), PowerError> {
        let before = self.state();
        if !before.is_awake() {
            return Err(PowerError::State {
                action: "suspend",
                state: before,
            });
        }
        self.set(HostState::Suspending)?;
        tokio::time::sleep(Duration::from_millis(
            self.config.profile.suspend.latency_ms,
        ))
        .await;
        if let Err(e) = self
            .group
            .set(FreezerState::Frozen, self.config.freeze_timeout)
            .await
        {
            warn!(error = %e, "freezing failed: staying awake");
            let thawed = self
                .group
                .set(FreezerState::Thawed, self.config.freeze_timeout)
                .await;
            self.set(before)?;
            thawed?;
            return Err(e);
        }
        self.set(HostState::Asleep)?;
        info!(group = %self.group.path().display(), "asleep (frozen)");
        Ok(())
    }

    async fn resume(&mut self, reason: WakeReason) -> Result<(), PowerError> {
        match self.state() {
            HostState::Asleep => {}
            s if s.is_awake()
                && reason == WakeReason::UserReturn
                && self.timeline.rest_pending() =>
            {
                return self.resume_rest().await
            }
            s if s.is_awake() => return Ok(()),
            s => {
                return Err(PowerError::State {
                    action: "resume",
                    state: s,
                })
            }
        }
        let after = if reason == WakeReason::UserReturn {
            HostState::Active
        } else {
            HostState::Idle
        };
        let service = self.config.selective_resume && reason == WakeReason::PageMiss;
        let now = self.shared.now_ms();
        let latency_ms = if service {
            self.timeline.record_service_wake(now, reason.clone())?;
            self.config.profile.service_resume().latency_ms
        } else {
            self.timeline.record_wake(now, reason.clone())?;
            self.config.profile.resume.latency_ms
        };
        info!(%reason, latency_ms, service, "waking up");
        self.publish(HostState::Resuming);
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
        self.group
            .set(FreezerState::Thawed, self.config.freeze_timeout)
            .await?;
        self.set(after)?;
        info!(state = ?after, "awake (thawed)");
        Ok(())
    }

    /// The user is back after a service-only wake: the rest of the devices
    /// resume, then the host is Active.
    async fn resume_rest(&mut self) -> Result<(), PowerError> {
        let ms = jettison_power_model::energy::rest_resume(&self.config.profile).latency_ms;
        info!(ms, "the user is back: resuming the remaining devices");
        self.timeline.record_rest_resume(self.shared.now_ms())?;
        self.publish(HostState::Resuming);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.set(HostState::Active)
    }

    fn set_idle(&mut self, idle: bool) {
        let want = if idle {
            HostState::Idle
        } else {
            HostState::Active
        };
        if !self.state().is_awake() {
            debug!(?want, state = ?self.state(), "idle change ignored: not awake");
        } else if let Err(e) = self.set(want) {
            warn!(error = %e, "idle change not recorded");
        }
    }

    fn placement(&mut self, vm: &str, placement: Placement, t_ms: u64) {
        match self.timeline.record_placement(t_ms, vm, placement) {
            Ok(()) => self.publish(self.state()),
            Err(e) => warn!(error = %e, vm, "placement not recorded"),
        }
    }

    async fn serve(
        &mut self,
        listener: WolListener,
        user: Option<tokio::net::UdpSocket>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                from = user_input(user.as_ref(), &mut buf) => {
                    // The user is back at the desk: the keyboard wakes the
                    // host if it sleeps, and the daemon is told.
                    info!(?from, "user input");
                    self.shared.user_returned.store(true, Ordering::Release);
                    if self.state() == HostState::Asleep {
                        if let Err(e) = self.resume(WakeReason::UserReturn).await {
                            warn!(error = %e, "wake failed");
                        }
                    } else if self.timeline.rest_pending() {
                        if let Err(e) = self.resume_rest().await {
                            warn!(error = %e, "resuming the remaining devices failed");
                        }
                    }
                }
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => return,
                    Some(Command::Suspend(reply)) => {
                        let _ = reply.send(self.suspend().await);
                    }
                    Some(Command::Resume(reason, reply)) => {
                        let _ = reply.send(self.resume(reason).await);
                    }
                    Some(Command::Idle(idle)) => self.set_idle(idle),
                    Some(Command::Placement(vm, p, t)) => self.placement(&vm, p, t),
                },
                packet = listener.recv() => match packet {
                    Ok(p) if self.state() == HostState::Asleep => {
                        info!(from = %p.from, mac = %listener.mac(), "magic packet");
                        if let Err(e) = self.resume(WakeReason::PageMiss).await {
                            warn!(error = %e, "wake failed");
                        }
                    }
                    Ok(p) => debug!(from = %p.from, state = ?self.state(), "magic packet: nothing to wake"),
                    Err(e) => {
                        warn!(error = %e, "WoL listener");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

/// The power thread's body: reports readiness on `ready`, then serves until
/// shutdown; the group is torn down when it returns.
pub(super) fn run(
    config: EmulatedConfig,
    group: FreezerGroup,
    shared: Arc<Shared>,
    timeline: Timeline,
    snapshots: std_mpsc::Sender<Timeline>,
    commands: mpsc::UnboundedReceiver<Command>,
    ready: std_mpsc::SyncSender<Ready>,
) {
    let tid = nix::unistd::gettid().as_raw();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(PowerError::Io {
                what: "power thread runtime".into(),
                source: e,
            }));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match WolListener::bind(config.wol_addr, config.mac).await {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut host = Host {
            config,
            group,
            shared,
            timeline,
            snapshots,
        };
        let user = match host.config.user_addr {
            Some(a) => match tokio::net::UdpSocket::bind(a).await {
                Ok(s) => Some(s),
                Err(e) => {
                    let _ = ready.send(Err(PowerError::Io {
                        what: format!("user input socket {a}"),
                        source: e,
                    }));
                    return;
                }
            },
            None => None,
        };
        let _ = ready.send(Ok((tid, addr)));
        host.serve(listener, user, commands).await;
        debug!("power thread stopping");
    });
}

/// The next datagram on the emulated keyboard's socket; pending forever
/// without one.
async fn user_input(sock: Option<&tokio::net::UdpSocket>, buf: &mut [u8]) -> Option<SocketAddr> {
    match sock {
        Some(s) => s.recv_from(buf).await.ok().map(|(_, from)| from),
        None => std::future::pending().await,
    }
}
