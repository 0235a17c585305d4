//! The agent's power loop: sleep when the policy says so, migrate the VMs
//! when the user is away, bring them home when the user returns. Before it
//! announces a sleep the agent dozes (see `crate::doze`). A suspend the
//! agent did not start (the Linux backend's `PrepareForSleep`) gets the same
//! work under logind's delay inhibitor: memory durable, doze, `GoingToSleep`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use jettison_power::linux_backend::SleepNotice;
use jettison_power_model::Decision;
use jettison_sim::recorded::TraceRecord;
use jettison_wire::Message;

use crate::power::Power;
use crate::retry::RetryBackoff;
use crate::vm::Placement;
use crate::{Agent, AgentError};

/// How often the power loop looks at the user and asks the sleep policy
/// (ms); the simulator's default decision tick is the same.
pub const TICK_MS: u64 = jettison_power_model::policy::AGENT_TICK_MS;

/// How long a host woken by a magic packet waits for the fetch it was woken
/// for before the policy may put it back to sleep (ms).
const WAKE_GRACE_MS: u64 = 10_000;

impl Agent {
    /// Whether every VM is away (and at least one is): the desktop may sleep.
    async fn all_away(&self) -> bool {
        let mut any = false;
        for slot in self.slots.values() {
            let Ok(p) = slot.placement.try_lock() else {
                return false;
            };
            match &*p {
                Placement::Away { .. } => any = true,
                Placement::Home(_) | Placement::Busy(_) | Placement::Unsettled(_) => return false,
                Placement::Off => {}
            }
        }
        any
    }

    /// The power loop: sleeps when the policy says so, brings the VMs home
    /// when the user returns.
    pub(crate) async fn power_loop(self: Arc<Self>, power: Arc<Power>) {
        // After a wake: (when, fetches served by then). A magic packet means
        // the server waits to fetch: the host stays up until it has served
        // one (or for WAKE_GRACE_MS), whatever the policy predicts.
        let mut woken: Option<(u64, u64)> = None;
        // Whether every VM has been away since the last tick (an idle period).
        let mut in_period = false;
        if let Some(notices) = power.connect_backend().await {
            tokio::spawn(self.clone().external_sleeps(power.clone(), notices));
        }
        // The last reason the backend gave not to sleep (logged on change).
        let mut refused: Option<String> = None;
        // Each VM's schedule of idle migrations after a failure.
        let mut retries: BTreeMap<String, RetryBackoff> = BTreeMap::new();
        // Whether idle detection found the user away (for the trace).
        let mut user_away = false;
        loop {
            tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
            power.trace_sync();
            if power.user_input() {
                let now = power.backend().now_ms();
                power.last_input_ms.store(now, Ordering::Release);
                if std::mem::take(&mut user_away) {
                    power.trace(&TraceRecord::User {
                        t_ms: now,
                        present: true,
                    });
                }
                // The next absence starts with a fresh attempt.
                retries.clear();
                self.user_returned(&power).await;
                continue;
            }
            if let Some(after) = power.config.away_after_s.filter(|_| power.detects_input()) {
                let quiet = power
                    .backend()
                    .now_ms()
                    .saturating_sub(power.last_input_ms.load(Ordering::Acquire));
                if quiet >= after * 1000 {
                    if !std::mem::replace(&mut user_away, true) {
                        power.trace(&TraceRecord::User {
                            t_ms: power.backend().now_ms(),
                            present: false,
                        });
                    }
                    self.user_away(&power, &mut retries).await;
                }
            }
            if !self.all_away().await {
                in_period = false;
                continue;
            }
            let now = power.backend().now_ms();
            if !in_period {
                // An idle period starts: the policy forgets the user's work.
                in_period = true;
                power
                    .policy
                    .lock()
                    .expect("policy lock")
                    .on_period_start(now);
            }
            if !power.backend().state().is_awake() {
                continue;
            }
            if let Some((at, served)) = woken {
                if power.served_count() == served && now < at + WAKE_GRACE_MS {
                    continue;
                }
                woken = None;
            }
            let last = power.last_request_ms.load(Ordering::Acquire);
            let decision = power.policy.lock().expect("policy lock").decide(now, last);
            if decision != Decision::Sleep {
                continue;
            }
            // Inhibitors, remote sessions: asked before the server is told.
            if let Err(e) = power.backend().may_suspend().await {
                let text = match e {
                    jettison_power::PowerError::Refused(_) => e.to_string(),
                    other => format!("not sleeping: {other}"),
                };
                if refused.as_deref() != Some(&text) {
                    tracing::warn!("{text}");
                }
                refused = Some(text);
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            refused = None;
            // A power cut while asleep must not lose an away VM's memory.
            if let Err(e) = self.keep_memory_durable().await {
                tracing::warn!("not sleeping: an away VM's memory is not durable: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            power.trace(&TraceRecord::Sleep {
                t_ms: now,
                quiet_ms: now.saturating_sub(last),
            });
            power.trace_sync();
            // Doze first: from the moment the server may believe the desktop
            // asleep, it serves nothing until it has really resumed.
            self.doze().await;
            let slept = self.go_to_sleep(&power).await;
            if let Err(e) = self.undoze().await {
                tracing::error!("the state server cannot listen again: {e}");
            }
            match slept {
                Ok(()) => woken = Some((power.backend().now_ms(), power.served_count())),
                Err(e) => {
                    tracing::warn!("not sleeping: {e}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    /// Tells the server the desktop goes to sleep (it wakes it by magic
    /// packet at its next miss).
    async fn announce_sleep(&self, power: &Power) -> Result<(), AgentError> {
        let mut t = self.dial_server().await?;
        let msg = Message::GoingToSleep {
            mac: power.config.nic_mac.clone(),
            wol_addr: power.config.wol_broadcast.clone(),
        };
        crate::handover_out::expect(t.request(&msg, Duration::from_secs(10)).await?, "OpOk")?;
        Ok(())
    }

    /// Suspends the agent did not ask for (the lid, a menu): while logind
    /// waits on the delay inhibitor, a desktop whose VMs are away makes
    /// their memory durable, dozes and tells the server, as before its own
    /// sleeps; it serves again once resumed.
    async fn external_sleeps(
        self: Arc<Self>,
        power: Arc<Power>,
        mut notices: tokio::sync::mpsc::UnboundedReceiver<SleepNotice>,
    ) {
        while let Some(notice) = notices.recv().await {
            match notice {
                SleepNotice::Preparing { delay } => {
                    if self.all_away().await {
                        if let Err(e) = self.keep_memory_durable().await {
                            tracing::error!("suspending with an away VM's memory not durable: {e}");
                        }
                        self.doze().await;
                        match self.announce_sleep(&power).await {
                            Ok(()) => tracing::info!("the server knows of the suspend"),
                            Err(e) => tracing::warn!("the server was not told of the suspend: {e}"),
                        }
                    }
                    // logind may go on.
                    drop(delay);
                }
                SleepNotice::Resumed => {
                    if self.gate.dozing() {
                        if let Err(e) = self.undoze().await {
                            tracing::error!("the state server cannot listen again: {e}");
                        }
                    }
                    power
                        .last_request_ms
                        .store(power.backend().now_ms(), Ordering::Release);
                }
            }
        }
    }

    async fn go_to_sleep(&self, power: &Power) -> Result<(), AgentError> {
        self.announce_sleep(power).await?;
        tracing::info!("going to sleep");
        // This task (and the whole process but the power thread) is frozen
        // here until a magic packet or the user wakes the host.
        power
            .backend()
            .suspend()
            .await
            .map_err(|e| AgentError::Power(e.to_string()))?;
        tracing::info!(state = ?power.backend().state(), "awake again");
        // Quiet time counts afresh from the wake.
        power
            .last_request_ms
            .store(power.backend().now_ms(), Ordering::Release);
        Ok(())
    }

    /// Names of the VMs whose placement matches `pick` (skipping busy ones).
    fn vms_where(&self, pick: fn(&Placement) -> bool) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, s)| s.placement.try_lock().map(|p| pick(&p)).unwrap_or(false))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Idle detection fired: the VMs at home go to the server. A VM whose
    /// migration failed is tried again only when its backoff allows.
    async fn user_away(&self, power: &Power, retries: &mut BTreeMap<String, RetryBackoff>) {
        for vm in self.vms_where(|p| matches!(p, Placement::Home(_))) {
            let retry = retries.entry(vm.clone()).or_default();
            if !retry.may_try(power.backend().now_ms()) {
                continue;
            }
            tracing::info!(vm, "the user is away: migrating the VM");
            match self.migrate(&vm).await {
                Ok(r) => {
                    retry.reset();
                    keep_last(&mut power.migrations.lock().expect("migrations lock"), r)
                }
                Err(e) => {
                    let wait_ms = retry.failed(power.backend().now_ms());
                    tracing::error!(
                        vm,
                        failures = retry.failures(),
                        retry_in_s = wait_ms / 1000,
                        "migration on idle failed: {e}; trying again in {} s",
                        wait_ms / 1000
                    );
                }
            }
        }
    }

    async fn user_returned(&self, power: &Power) {
        tracing::info!("the user is back: bringing the VMs home");
        if let Err(e) = power.backend().set_idle(false) {
            tracing::warn!("active state not recorded: {e}");
        }
        let away = self.vms_where(|p| matches!(p, Placement::Away { .. }));
        for vm in away {
            match self.reintegrate(&vm, power.config.verify_on_return).await {
                Ok(r) => keep_last(
                    &mut power.reintegrations.lock().expect("reintegrations lock"),
                    r,
                ),
                Err(e) => tracing::error!(vm, "bringing the VM home failed: {e}"),
            }
        }
    }
}

/// Adds `report` to a list of the power record, which keeps the last
/// [`crate::power::REPORTS_KEPT`] (the trace files keep the history).
fn keep_last<T>(list: &mut Vec<T>, report: T) {
    if list.len() >= crate::power::REPORTS_KEPT {
        list.drain(..list.len() + 1 - crate::power::REPORTS_KEPT);
    }
    list.push(report);
}

#[cfg(test)]
mod keep_last_tests {
    #[test]
    fn keeps_the_last_reports() {
        let mut v = Vec::new();
        for i in 0..crate::power::REPORTS_KEPT + 10 {
            super::keep_last(&mut v, i);
        }
        assert_eq!(v.len(), crate::power::REPORTS_KEPT);
        assert_eq!(v[0], 10);
        assert_eq!(v.last(), Some(&(crate::power::REPORTS_KEPT + 9)));
    }
}
