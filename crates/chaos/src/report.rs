//! The JSON report of a chaos run: `quick`, `total`, `passed` and one row
//! per case (`cases`).

use serde_json::{json, Value};

use crate::run::Outcome;

/// The report of these outcomes.
pub fn build(outcomes: &[Outcome], quick: bool) -> Value {
    json!({
        "quick": quick,
        "total": outcomes.len(),
        "passed": outcomes.iter().filter(|o| o.passed).count(),
        "cases": outcomes,
    })
}

/// One line per case, for the terminal.
pub fn summary(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    for o in outcomes {
        s += &format!(
            "{:<5} {:<36} copies {} at {:<8} checks failed {} resets {} rolled back {:<5} disk writes lost {}/{} {:>5.0} s {}\n",
            if o.passed { "ok" } else { "FAIL" },
            o.name,
            o.copies_running,
            o.runs_at.map(|s| format!("{s:?}")).unwrap_or_else(|| "-".into()),
            o.guest_check_failures,
            o.connection_resets,
            o.rolled_back,
            o.disk_writes_lost.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            o.disk_writes_checked,
            o.seconds,
            o.detail
        );
    }
    let passed = outcomes.iter().filter(|o| o.passed).count();
    s += &format!("{passed} passed, {} failed\n", outcomes.len() - passed);
    s
}
