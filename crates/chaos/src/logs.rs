//! Figures read from the daemons' logs (`key=value` fields of `tracing`
//! lines, without colour: the daemons write plain text off a terminal).

/// The value of field `key` on a log line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

/// A numeric field of a log line.
pub fn number(line: &str, key: &str) -> Option<f64> {
    field(line, key)?.parse().ok()
}

/// The server's checkpoints: (downtime ms, bytes written) per
/// `checkpointed` line.
pub fn checkpoints(server_log: &str) -> Vec<(f64, u64)> {
    server_log
        .lines()
        .filter(|l| l.contains(" checkpointed "))
        .filter_map(|l| Some((number(l, "downtime_ms")?, number(l, "bytes")? as u64)))
        .collect()
}

/// The last resume from a checkpoint whose line contains `needle`:
/// (`paused_ms`, `checkpoint_unix_ms`).
pub fn resumed(server_log: &str, needle: &str) -> Option<(f64, u64)> {
    server_log
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            Some((
                number(l, "paused_ms")?,
                number(l, "checkpoint_unix_ms")? as u64,
            ))
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-02T05:48:17.141804Z  INFO jettison_server::checkpoint: checkpointed vm=\"jt1\" why=\"periodic\" seq=1 downtime_ms=57.04 pages=238 bytes=1311137
2026-12-02T05:48:17.593529Z  WARN jettison_server::checkpoint::restore: resumed from its last checkpoint after a crash: rolled back to it vm=\"jt1\" paused_ms=568.0 checkpoint_unix_ms=1764654497000
2026-12-02T05:48:22.698385Z  INFO jettison_server::checkpoint: checkpointed vm=\"jt1\" why=\"periodic\" seq=2 downtime_ms=58.17 pages=185 bytes=1093572
2026-12-02T05:48:22.698385Z  WARN jettison_server::checkpoint: checkpoint failed: paused vm=\"jt1\" why=\"periodic\"
";

    #[test]
    fn fields_and_checkpoints_are_read() {
        assert_eq!(field(LOG.lines().next().unwrap(), "why"), Some("periodic"));
        assert_eq!(field(LOG.lines().next().unwrap(), "nope"), None);
        assert_eq!(checkpoints(LOG), [(57.04, 1_311_137), (58.17, 1_093_572)]);
        assert_eq!(
            resumed(LOG, "after a crash"),
            Some((568.0, 1_764_654_497_000))
        );
        assert_eq!(resumed(LOG, "nothing lost"), None);
    }
}
