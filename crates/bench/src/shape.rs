//! Link shaping with `tc`: every port of the test LAN (both ends of each
//! host's veth pair) gets a token bucket at the link rate, as on a switched
//! office LAN where each port runs at the same speed. The server's port is
//! then the shared bottleneck when many desktops migrate at once.

use anyhow::{bail, Context};
use jettison_testbed::Lan;

/// A token-bucket shaper for one interface: `rate_mbit` with a burst of
/// about 1 ms of traffic (at least 64 KiB, one GSO segment) and 20 ms of
/// queue.
pub fn tbf_args(dev: &str, rate_mbit: u32) -> Vec<String> {
    let burst = (u64::from(rate_mbit) * 1_000_000 / 8 / 1000).max(64 * 1024 + 1514);
    ["qdisc", "replace", "dev", dev, "root", "tbf", "rate"]
        .iter()
        .map(|s| (*s).to_string())
        .chain([
            format!("{rate_mbit}mbit"),
            "burst".into(),
            burst.to_string(),
            "latency".into(),
            "20ms".into(),
        ])
        .collect()
}

/// Shapes every port of `lan` to `rate_mbit` (both directions).
pub fn shape_lan(lan: &Lan, rate_mbit: u32) -> anyhow::Result<()> {
    for (i, host) in lan.hosts().iter().enumerate() {
        run(&host.netns, &tbf_args("lan0", rate_mbit))?;
        run(lan.switch_netns(), &tbf_args(&format!("p{i}"), rate_mbit))?;
    }
    Ok(())
}

fn run(netns: &str, args: &[String]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "tc"])
        .args(args)
        .output()
        .context("running tc (package iproute2)")?;
    if !out.status.success() {
        bail!(
            "tc {} in {netns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_cover_a_millisecond_and_a_segment() {
        let a = tbf_args("lan0", 1000);
        assert_eq!(
            a[..7],
            ["qdisc", "replace", "dev", "lan0", "root", "tbf", "rate"]
        );
        assert_eq!(a[7], "1000mbit");
        assert_eq!(a[9], "125000");
        let slow = tbf_args("p3", 100);
        assert_eq!(slow[3], "p3");
        assert_eq!(slow[9], (64 * 1024 + 1514).to_string());
    }
}
