//! Waking a sleeping desktop before fetching from it. A desktop says it goes
//! to sleep (`GoingToSleep`, with its MAC and where magic packets reach it,
//! both checked first: a unicast MAC, a target on the server's LAN, see
//! [`crate::lan`]); from then on no fetch is sent to it until it answers again. The first miss
//! sends Wake-on-LAN magic packets and probes the desktop (a full TLS
//! handshake: a sleeping host completes none, and a desktop that announced
//! its sleep refuses connections until it has resumed) every 100 ms,
//! repeating the packet every 500 ms, within a bound; concurrent misses of
//! the same desktop share that one wake.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jettison_power_model::MacAddr;

/// How long a wake may take before the fault gets an error (and retries).
pub const WAKE_BOUND: Duration = Duration::from_secs(60);

/// How often a waking desktop is probed.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// How often the magic packet is repeated while it does not answer.
const PACKET_EVERY: Duration = Duration::from_millis(500);

/// Where magic packets for a sleeping desktop go.
#[derive(Debug, Clone, Copy)]
struct Sleeping {
    mac: MacAddr,
    wol_addr: std::net::SocketAddr,
}

/// The power state of one desktop, as this server knows it.
#[derive(Debug)]
pub struct DesktopWaker {
    name: String,
    bound: Duration,
    sleeping: Mutex<Option<Sleeping>>,
    waking: tokio::sync::Mutex<()>,
    wakes: AtomicU64,
    /// Told of its sleeps and wakes (the dashboard's view).
    fleet: Option<std::sync::Arc<crate::fleet::Fleet>>,
}

impl DesktopWaker {
    /// A desktop believed awake.
    pub fn new(name: &str) -> Self {
        Self::with_bound(name, WAKE_BOUND)
    }

    /// A desktop believed awake, whose wakes may take at most `bound`.
    pub fn with_bound(name: &str, bound: Duration) -> Self {
        DesktopWaker {
            name: name.into(),
            bound,
            sleeping: Mutex::new(None),
            waking: tokio::sync::Mutex::new(()),
            wakes: AtomicU64::new(0),
            fleet: None,
        }
    }

    /// The same, telling `fleet` of the desktop's sleeps and wakes.
    pub fn observed_by(mut self, fleet: std::sync::Arc<crate::fleet::Fleet>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    fn tell(&self, f: impl FnOnce(&crate::fleet::Fleet, &str, u64)) {
        if let Some(fleet) = &self.fleet {
            f(fleet, &self.name, crate::fleet::now_ms());
        }
    }

    /// Records that the desktop goes to sleep: magic packets for `mac` go
    /// to `wol_addr` (checked by the caller: see [`crate::lan`]).
    pub fn going_to_sleep(&self, mac: MacAddr, wol_addr: std::net::SocketAddr) {
        *self.sleeping.lock().expect("waker lock") = Some(Sleeping { mac, wol_addr });
        self.tell(|f, d, t| f.asleep(d, t));
        tracing::info!(desktop = %self.name, %mac, %wol_addr, "desktop goes to sleep");
    }

    /// Records that the desktop is awake (it talked to us).
    pub fn mark_awake(&self) {
        self.sleeping.lock().expect("waker lock").take();
        self.tell(|f, d, t| f.awake(d, t));
    }

    /// Whether the desktop is believed asleep.
    pub fn is_asleep(&self) -> bool {
        self.sleeping.lock().expect("waker lock").is_some()
    }

    /// Wakes made so far.
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }

    /// Makes sure the desktop is awake. If it sleeps, sends magic packets
    /// and calls `probe` until it yields a live connection (returned), with
    /// a pause, for at most [`WAKE_BOUND`]. `Ok(None)`: it was awake already
    /// (or another miss woke it meanwhile).
    pub async fn ensure_awake<T, F, Fut>(&self, probe: F) -> Result<Option<T>, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let _one_wake = self.waking.lock().await;
        let Some(s) = *self.sleeping.lock().expect("waker lock") else {
            return Ok(None);
        };
        let started = Instant::now();
        self.tell(|f, d, t| f.waking(d, t));
        // A desktop that announced its sleep refuses connections until it
        // has resumed (it may still be suspending when we first probe), and
        // a refused probe costs nothing: probe every PROBE_EVERY so that the
        // fetch follows the resume closely (the desktop idles meanwhile), and
        // repeat the magic packet every PACKET_EVERY.
        let mut packets = 0u32;
        let mut last_packet: Option<Instant> = None;
        while started.elapsed() < self.bound {
            if last_packet.is_none_or(|t| t.elapsed() >= PACKET_EVERY) {
                if let Err(e) = jettison_power::send_magic_packet(s.mac, s.wol_addr).await {
                    tracing::warn!(desktop = %self.name, "sending a magic packet to {}: {e}", s.wol_addr);
                }
                packets += 1;
                last_packet = Some(Instant::now());
            }
            if let Some(conn) = probe().await {
                *self.sleeping.lock().expect("waker lock") = None;
                self.wakes.fetch_add(1, Ordering::Relaxed);
                self.tell(|f, d, t| f.awake(d, t));
                tracing::info!(desktop = %self.name, ms = started.elapsed().as_millis() as u64, packets, "desktop woke up");
                return Ok(Some(conn));
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        Err(format!(
            "desktop {} did not wake within {:.1} s ({packets} magic packets to {})",
            self.name,
            self.bound.as_secs_f64(),
            s.wol_addr
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    use super::*;

    const MAC: &str = "02:00:00:00:00:42";

    /// A UDP listener counting the magic packets for [`MAC`].
    async fn nic() -> (std::net::SocketAddr, Arc<AtomicU32>) {
        let l =
            jettison_power::WolListener::bind("127.0.0.1:0".parse().unwrap(), MAC.parse().unwrap())
                .await
                .unwrap();
        let addr = l.local_addr().unwrap();
        let n = Arc::new(AtomicU32::new(0));
        let seen = n.clone();
        tokio::spawn(async move {
            while l.recv().await.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        (addr, n)
    }

    #[tokio::test]
    async fn an_awake_desktop_is_not_woken() {
        let w = DesktopWaker::new("d");
        let r: Result<Option<()>, String> = w
            .ensure_awake(|| async { panic!("no probe for an awake desktop") })
            .await;
        assert_eq!(r, Ok(None));
        assert_eq!(w.wakes(), 0);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_wake() {
        let (addr, packets) = nic().await;
        let w = Arc::new(DesktopWaker::with_bound("d", Duration::from_secs(10)));
        w.going_to_sleep(MAC.parse().unwrap(), addr);
        // The desktop answers from the third probe on (200 ms later).
        let probes = Arc::new(AtomicU32::new(0));
        let miss = |w: Arc<DesktopWaker>, probes: Arc<AtomicU32>| async move {
            w.ensure_awake(|| {
                let probes = probes.clone();
                async move { (probes.fetch_add(1, Ordering::SeqCst) >= 2).then_some(()) }
            })
            .await
        };
        let (a, b) = tokio::join!(
            miss(w.clone(), probes.clone()),
            miss(w.clone(), probes.clone())
        );
        let woke = [a.unwrap(), b.unwrap()]
            .iter()
            .filter(|r| r.is_some())
            .count();
        assert_eq!(woke, 1, "exactly one miss woke the desktop");
        assert_eq!(w.wakes(), 1);
        assert_eq!(probes.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            packets.load(Ordering::SeqCst),
            1,
            "one magic packet per 500 ms"
        );
        assert!(!w.is_asleep());
    }

    #[tokio::test]
    async fn a_desktop_that_never_wakes_gives_a_clear_error_in_bounded_time() {
        let (addr, packets) = nic().await;
        let w = DesktopWaker::with_bound("desk-7", Duration::from_millis(1500));
        w.going_to_sleep(MAC.parse().unwrap(), addr);
        let started = Instant::now();
        let r: Result<Option<()>, String> = w.ensure_awake(|| async { None }).await;
        let err = r.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(err.contains("desk-7 did not wake within 1.5 s"), "{err}");
        assert!(packets.load(Ordering::SeqCst) >= 2);
        assert!(
            w.is_asleep(),
            "still believed asleep: no fetch may go to it"
        );
    }
}
