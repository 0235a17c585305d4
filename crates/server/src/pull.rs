//! Against wake storms: at each wake of a sleeping desktop that a VM's
//! memory miss caused, the server asks the VM's [`PullPolicy`] (the pure
//! policy the simulator uses too, `[pull]` in the configuration) whether to
//! pull the rest of the VM's memory now; if so, a background task fetches
//! every absent page of the VM's memory file through the memory
//! filesystem's fetch path ([`VmMemory::pull_absent`]), at most
//! `rate_bytes_per_s`. Once every page is here the VM never misses again,
//! so the desktop is never woken for it again this period, and its sleep
//! policy sees the pull's fetches as activity and sleeps after it.
//!
//! Only the memory file is pulled (the "rest of the VM's memory");
//! a VM's disk stays lazy, and its disk misses do not count as its wakes.
//! One [`Puller`] per VM and period: made when the VM arrives (a fresh
//! policy: [`PullPolicy::on_period_start`]). The pull stops when the VM
//! leaves or the server stops (the file is cancelled either way); a failing
//! fetch is retried with backoff, as a fault's is.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use jettison_lazymem::{VmMemory, PAGE_SIZE};
use jettison_metrics::ServerMetrics;
use jettison_power_model::{PowerProfile, PullConfig, PullDecision, PullPolicy};

/// A pull the policy asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// Wakes of the VM's desktop within the window, this one included.
    pub(crate) wakes: u64,
    /// Bytes of the VM's memory not on the server.
    pub(crate) bytes: u64,
    /// The transfer's time at the rate limit, ms.
    pub(crate) duration_ms: u64,
}

/// How far a VM's pull is (the tests read it; the log says it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Wakes this VM caused this period.
    pub(crate) wakes: u64,
    /// Whether a pull started.
    pub(crate) started: bool,
    /// Bytes it fetched so far.
    pub(crate) bytes: u64,
    /// Whether it ended with every page present.
    pub(crate) done: bool,
}

/// One VM's pull policy and pull.
#[derive(Debug)]
pub(crate) struct Puller {
    vm: String,
    rate_bytes_per_s: u64,
    policy: Mutex<(PullPolicy, Progress)>,
    /// Set once the memory file exists (the fetch client is made first).
    memory: OnceLock<Weak<VmMemory>>,
    since: Instant,
    metrics: ServerMetrics,
}

impl Puller {
    /// A VM's puller at its arrival (a new period).
    pub(crate) fn new(vm: &str, config: &PullConfig, metrics: ServerMetrics) -> Arc<Self> {
        let mut policy = PullPolicy::new(config.clone(), &PowerProfile::default());
        policy.on_period_start();
        Arc::new(Puller {
            vm: vm.into(),
            rate_bytes_per_s: config.rate_bytes_per_s,
            policy: Mutex::new((policy, Progress::default())),
            memory: OnceLock::new(),
            since: Instant::now(),
            metrics,
        })
    }

    /// The VM's memory file, once made.
    pub(crate) fn attach(&self, memory: &Arc<VmMemory>) {
        let _ = self.memory.set(Arc::downgrade(memory));
    }

    /// How far the pull is.
    #[cfg(test)]
    pub(crate) fn progress(&self) -> Progress {
        self.lock().1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (PullPolicy, Progress)> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the policy of a wake at `now_ms` with `missing` bytes absent:
    /// the pull to make, if any.
    pub(crate) fn decide(&self, now_ms: u64, missing: u64) -> Option<Plan> {
        let mut g = self.lock();
        let (policy, progress) = &mut *g;
        progress.wakes += 1;
        let decision = policy.on_wake(now_ms, missing);
        match decision {
            PullDecision::Wait => None,
            PullDecision::Pull { duration_ms, .. } => {
                progress.started = true;
                Some(Plan {
                    wakes: policy.wakes_in_window() as u64,
                    bytes: missing,
                    duration_ms,
                })
            }
        }
    }

    /// The desktop was woken for this VM's memory: asks the policy, and
    /// starts the pull in the background if it says so.
    pub(crate) fn on_wake(self: &Arc<Self>) {
        let Some(memory) = self.memory.get().and_then(Weak::upgrade) else {
            return;
        };
        let missing = memory.absent_pages() * PAGE_SIZE;
        let now_ms = self.since.elapsed().as_millis() as u64;
        let Some(plan) = self.decide(now_ms, missing) else {
            tracing::debug!(vm = %self.vm, missing, "wake for the VM's memory: no pull");
            return;
        };
        tracing::info!(
            vm = %self.vm,
            wakes = plan.wakes,
            bytes = plan.bytes,
            estimated_ms = plan.duration_ms,
            rate_bytes_per_s = self.rate_bytes_per_s,
            "wake storm: pulling the rest of the VM's memory"
        );
        self.metrics.pulls.inc();
        let me = self.clone();
        tokio::spawn(async move { me.pull(memory).await });
    }

    async fn pull(self: Arc<Self>, memory: Arc<VmMemory>) {
        let started = Instant::now();
        let mut logged = 0u64;
        let result = memory
            .pull_absent(self.rate_bytes_per_s, |bytes| {
                self.metrics.pulled_bytes.inc_by(bytes.saturating_sub(logged));
                self.lock().1.bytes = bytes;
                // progress every 64 MiB
                if bytes >> 26 != logged >> 26 {
                    tracing::info!(vm = %self.vm, bytes, ms = started.elapsed().as_millis() as u64, "pull progress");
                }
                logged = bytes;
            })
            .await;
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(done) => {
                self.lock().1.done = true;
                tracing::info!(
                    vm = %self.vm,
                    pages = done.pages,
                    bytes = done.pages * PAGE_SIZE,
                    fetches = done.fetches,
                    ms,
                    "pull done: every page of the VM's memory is on the server"
                );
            }
            Err(e) => tracing::info!(vm = %self.vm, ms, "pull stopped: {e}"),
        }
    }
}

/// The problems of a `[pull]` section (for `crate::check`).
pub(crate) fn problems(config: &PullConfig) -> Vec<String> {
    let mut out = Vec::new();
    if config.window_ms == 0 {
        out.push("pull.window_ms: must be above 0 (the budget's window, ms)".to_string());
    }
    if config.rate_bytes_per_s < PAGE_SIZE {
        out.push(format!(
            "pull.rate_bytes_per_s: {} is below one page a second ({PAGE_SIZE})",
            config.rate_bytes_per_s
        ));
    }
    out
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;
