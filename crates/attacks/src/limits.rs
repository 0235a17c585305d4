//! Open-file limits. The suite holds thousands of connections itself, so
//! it raises its own soft limit to the hard one; the daemons it starts get
//! systemd's default soft limit (1,024; `DefaultLimitNOFILE=1024:524288`),
//! as the packaged units would, so that the flood meets the limit a real
//! server has.

use std::future::Future;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// systemd's default soft limit of open files for a service.
pub const SYSTEMD_DEFAULT_SOFT: u64 = 1024;

/// Raises this process's soft limit of open files to its hard limit.
pub fn raise_own_nofile() {
    let l = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        },
    );
}

/// Runs `f` (which starts the daemons) with the soft limit at systemd's
/// default, then puts the limit back: children inherit it at their start.
pub async fn with_default_nofile<T>(f: impl Future<Output = T>) -> T {
    let old = getrlimit(Resource::Nofile);
    let soft = old
        .maximum
        .map_or(SYSTEMD_DEFAULT_SOFT, |m| m.min(SYSTEMD_DEFAULT_SOFT));
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: old.maximum,
        },
    );
    let out = f.await;
    let _ = setrlimit(Resource::Nofile, old);
    out
}
