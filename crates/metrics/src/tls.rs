//! TLS refusals of this process, by reason: one family for the whole
//! process (both listeners of a daemon count into it), registered by each
//! daemon's registry.

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

type Refusals = Family<Vec<(&'static str, &'static str)>, Counter>;

static REFUSALS: LazyLock<Refusals> = LazyLock::new(Refusals::default);

/// Counts one connection refused during the TLS handshake for `reason`
/// (a short `snake_case` word, e.g. `unknown_ca`, `revoked`).
pub fn tls_refused(reason: &'static str) {
    REFUSALS.get_or_create(&vec![("reason", reason)]).inc();
}

/// The process's refusal counters (a handle on the one family), for a
/// registry: `jettison_tls_refusals_total{reason}`.
pub fn tls_refusals() -> Refusals {
    REFUSALS.clone()
}

/// Registers the process's refusal counters in `registry`.
pub(crate) fn register(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "jettison_tls_refusals",
        "Connections refused in the TLS handshake, by reason",
        tls_refusals(),
    );
}
