//! The desktop in the matrix: its record and guests, what its agent does
//! with a procedure's outcome, and its settle task (modelled after
//! `crates/agent/src/settle.rs`, which is not on the seam yet).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use jettison_agent::record::VmRecord;
use jettison_handover::{DesktopAction, DesktopState, Settlement};
use jettison_qemu::fake::FakeVm;
use jettison_wire::{Message, Transport, PAGE_SIZE};
use tokio::io::DuplexStream;

use super::T;
use crate::test_host::*;

/// Where the agent has the VM (as `crates/agent/src/vm.rs` says it).
#[derive(Debug)]
pub(super) enum Placement {
    Home(FakeVm),
    Away,
    /// Mid-handover or in doubt, with the guest it holds at home, if any.
    Unsettled(Option<FakeVm>),
    Off,
}

/// The desktop: its record, its guests, and whether its agent is up.
pub(super) struct Desktop {
    pub(super) dir: tempfile::TempDir,
    pub(super) record: Option<VmRecord>,
    pub(super) placement: Placement,
    /// QEMUs a killed agent left (still reachable through QMP if alive).
    pub(super) stale: Vec<FakeVm>,
    pub(super) up: Arc<AtomicBool>,
    pub(super) rolled_back: bool,
}

impl Desktop {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mem = dir.path().join("vm.mem");
        std::fs::write(&mem, vec![0u8; 4 * PAGE_SIZE as usize]).unwrap();
        Desktop {
            record: Some(VmRecord::load(dir.path(), "vm").unwrap()),
            dir,
            placement: Placement::Home(FakeVm::running()),
            stale: Vec::new(),
            up: Arc::new(AtomicBool::new(true)),
            rolled_back: false,
        }
    }

    pub(super) fn record(&self) -> &VmRecord {
        self.record.as_ref().expect("the agent runs")
    }

    /// The desktop's state server, as the server asks it.
    pub(super) fn oracle(&self) -> Oracle {
        let (dir, up) = (self.dir.path().to_owned(), self.up.clone());
        Arc::new(move || {
            let up = up.load(Ordering::SeqCst);
            up.then(|| VmRecord::load(&dir, "vm").ok().map(|r| r.get().custody()))
                .flatten()
        })
    }

    pub(super) fn runs(&self) -> bool {
        self.record().get() == DesktopState::Home
            && matches!(&self.placement, Placement::Home(v) if v.runs())
    }

    /// The agent killed (its QEMUs outlive it) and started again.
    pub(super) fn restart(&mut self, guests: &[&FakeVm]) {
        self.up.store(false, Ordering::SeqCst);
        self.stale = guests.iter().map(|v| (*v).clone()).collect();
        let record = VmRecord::load(self.dir.path(), "vm").unwrap();
        let state = record.get();
        self.placement = match state {
            DesktopState::Home => match self.stale.iter().find(|v| v.runs()) {
                // Home, unmanaged.
                Some(v) => Placement::Home(v.clone()),
                None => Placement::Off,
            },
            DesktopState::Away { .. } => {
                for v in &self.stale {
                    v.kill();
                }
                Placement::Away
            }
            _ => Placement::Unsettled(None),
        };
        self.record = Some(record);
        self.up.store(true, Ordering::SeqCst);
    }

    /// Restarts the VM from its snapshot, if it has one.
    pub(super) fn roll_back(&mut self) -> Placement {
        if self.record().snapshot().is_none() {
            return Placement::Off;
        }
        let _ = self.record().drop_snapshot();
        self.rolled_back = true;
        Placement::Home(FakeVm::running())
    }

    /// One round of the agent's settle task: an unsettled VM, or an away
    /// one, is settled by asking the server.
    pub(super) async fn settle(&mut self, host: &Arc<FakeHost>) {
        let (held, away) = match std::mem::replace(&mut self.placement, Placement::Off) {
            Placement::Unsettled(held) => (held, false),
            Placement::Away => (None, true),
            other => {
                self.placement = other;
                return;
            }
        };
        let state = self.record().get();
        let (mut t, _server) = connect(host).await;
        let answer = custody(&mut t, "vm").await;
        let (next, action) = match state.settle(answer, 1) {
            Settlement::To(next, action) if next != state || action != DesktopAction::None => {
                (next, action)
            }
            _ => {
                self.placement = if away {
                    Placement::Away
                } else {
                    Placement::Unsettled(held)
                };
                return;
            }
        };
        self.record().set(next.clone()).unwrap();
        self.placement = self.act(&next, action, held, &mut t).await;
    }

    /// As the agent's `act`.
    pub(super) async fn act(
        &mut self,
        next: &DesktopState,
        action: DesktopAction,
        held: Option<FakeVm>,
        t: &mut Transport<DuplexStream>,
    ) -> Placement {
        let stale = match &held {
            Some(_) => None,
            None => self.stale.iter().find(|v| !v.has_exited()).cloned(),
        };
        if let DesktopState::Away { .. } = next {
            for v in held.into_iter().chain(stale) {
                v.quit().await.unwrap();
            }
            if action == DesktopAction::SendCommit {
                let _ = t
                    .request(&Message::MigrateCommit { vm: "vm".into() }, T.short)
                    .await;
            }
            return Placement::Away;
        }
        let resume = matches!(
            action,
            DesktopAction::ResumeAtHome | DesktopAction::LoadSavedAndResume
        );
        let guest = held.or(stale);
        let resumed = match guest {
            Some(v) if resume => match v.cont().await {
                Ok(()) => Some(v),
                Err(_) => None,
            },
            Some(v) if action == DesktopAction::None => Some(v),
            Some(v) => {
                v.quit().await.unwrap();
                None
            }
            None => None,
        };
        let placement = match resumed {
            Some(v) => Placement::Home(v),
            None if action == DesktopAction::None => Placement::Off,
            None => self.roll_back(),
        };
        if matches!(placement, Placement::Home(_)) {
            let _ = self.record().drop_snapshot();
            if action == DesktopAction::LoadSavedAndResume {
                let _ = t.send(&Message::ReintegrateDone { vm: "vm".into() }).await;
            }
        }
        placement
    }
}
