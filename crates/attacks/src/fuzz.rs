//! The wire fuzz pass, read from the output of the wire crate's fuzz test
//! binary (`cargo test -p jettison-wire --test fuzz -- --nocapture`, run by
//! `cargo xtask attacks`): each target that completes prints
//! `fuzz <target>: <n> inputs, 0 panics, <s> s`; one that finds a panic
//! (proptest catches it) fails with `fuzz <target> (seed <n>): ...`.

use crate::report::Fuzz;

/// Reads the fuzz pass out of the test binary's output (stdout and stderr).
pub fn parse(output: &str) -> Fuzz {
    let mut inputs = 0u64;
    let mut completed = 0u64;
    let mut failed_targets = 0u64;
    let mut failed_tests = 0u64;
    for line in output.lines() {
        // With --nocapture a target's line follows its test's name on the
        // same line: `test frame_decoder ... fuzz frames: ...`.
        let line = line.rsplit(" ... ").next().unwrap_or(line).trim();
        if let Some(rest) = line.strip_prefix("fuzz ") {
            if rest.contains("(seed ") {
                failed_targets += 1;
                continue;
            }
            let n = rest
                .split_once(": ")
                .and_then(|(_, t)| t.split(" inputs").next())
                .and_then(|n| n.trim().parse::<u64>().ok());
            if let Some(n) = n {
                inputs += n;
                completed += 1;
            }
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            failed_tests += rest
                .split(';')
                .find_map(|p| p.trim().strip_suffix(" failed"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let panics = failed_targets.max(failed_tests);
    let status = if completed == 0 && panics == 0 {
        "no fuzz output".to_string()
    } else if panics == 0 {
        format!("ok: {completed} targets")
    } else {
        format!("{panics} targets failed, {completed} completed")
    };
    Fuzz {
        inputs,
        panics,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_inputs_of_completed_targets() {
        let out = "running 7 tests\nfuzz messages: 1000 inputs, 0 panics, 0.4 s\n\
                   test frame_round_trip ... fuzz frames-round-trip: 250 inputs, 0 panics, 0.2 s\n\
                   test message_decoder ... ok\n\
                   test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.1s\n";
        let f = parse(out);
        assert_eq!((f.inputs, f.panics), (1250, 0));
        assert_eq!(f.status, "ok: 2 targets");
    }

    #[test]
    fn a_failed_target_is_a_panic() {
        let out = "fuzz messages: 1000 inputs, 0 panics, 0.4 s\n\
                   thread 'frame_decoder' panicked at crates/wire/tests/fuzz/main.rs:70:9:\n\
                   fuzz frames (seed 7): Test failed: boom; minimal failing input: ...\n\
                   test result: FAILED. 6 passed; 1 failed; 0 ignored; 0 measured\n";
        let f = parse(out);
        assert_eq!((f.inputs, f.panics), (1000, 1));
        assert!(f.status.contains("1 targets failed"));
        assert_eq!(parse("").status, "no fuzz output");
    }
}
