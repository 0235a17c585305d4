//! `jettison-bench`: runs the benchmark scenarios and writes the JSON file
//! and BENCHMARKS.md. Needs root (test hosts) and the guest image; `cargo
//! xtask bench` provides both.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use jettison_bench::density::{density as run_density, DensitySpec};
use jettison_bench::density_markdown;
use jettison_bench::markdown::{render, splice, splice_between};
use jettison_bench::results::BenchResults;
use jettison_bench::run::{concurrent, one_size, Extra, Settings};
use jettison_demo::{Binaries, GuestImage};
use tracing::info;

/// Partial migration against QEMU precopy and postcopy, side by side.
#[derive(Debug, Parser)]
#[command(name = "jettison-bench")]
struct Args {
    /// The short run (about 10 minutes): every size at the first link
    /// rate, the smallest size also at the others, fewer fault samples,
    /// 64 MiB touched instead of 256 MiB.
    #[arg(long)]
    quick: bool,
    /// Guest sizes in MiB.
    #[arg(long, value_delimiter = ',', default_value = "256,1024,4096")]
    sizes: Vec<u64>,
    /// Link rates in Mbit/s (the first is the main one).
    #[arg(long, value_delimiter = ',', default_value = "1000,100")]
    links: Vec<u32>,
    /// Desktops migrating together (0 to skip).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    concurrent: Vec<usize>,
    /// Guest memory of the concurrent runs, MiB.
    #[arg(long, default_value_t = 256)]
    concurrent_mib: u64,
    /// Share of guest memory holding non-zero data (a used desktop's).
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u32).range(0..=90))]
    fill_pct: u32,
    /// Guest size of the fault test, MiB (0 to skip).
    #[arg(long, default_value_t = 1024)]
    faults_mib: u64,
    /// Pages per miss for the touch test on the largest guest (1 to skip).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    prefetch_pages: u32,
    /// `tcg` or `kvm`.
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// Write the results here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Regenerate the tables of this Markdown file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Where runs keep their files.
    #[arg(long, default_value = "target/jettison-bench")]
    work_dir: PathBuf,
    /// Only the density run: idle guests consolidated on one server for a
    /// window, partial migration against precopy, memory and CPU per VM.
    #[arg(long)]
    density: bool,
    /// Guests of the density run.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=150))]
    density_vms: u64,
    /// Window of each mode of the density run, minutes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    density_minutes: u64,
    /// Memory of each density guest, MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(64..=16384))]
    density_memory_mib: u64,
    /// Disk of each density guest, MiB.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
    density_disk_mib: u64,
    /// Density guests booting (and migrating) at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=150))]
    density_parallel: u64,
    /// The command line to record in the results.
    #[arg(long, default_value = "cargo xtask bench")]
    command: String,
}

fn meta(args: &Args) -> BTreeMap<String, String> {
    let sh = |c: &str| {
        std::process::Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    BTreeMap::from([
        ("command".into(), format!("`{}`", args.command)),
        ("date".into(), sh("date -u '+%Y-%m-%d %H:%M UTC'")),
        (
            "machine".into(),
            format!(
                "{} cores, {} RAM, Linux {}, {}",
                sh("nproc"),
                sh("free -h | awk '/Mem:/{print $2}'"),
                sh("uname -r"),
                sh("qemu-system-x86_64 --version | head -1")
            ),
        ),
        (
            "guests".into(),
            format!(
                "accelerator {}, 1 vCPU, {}% of each guest's memory filled with non-zero data by its workload before anything moves (QEMU sends zero pages as markers, so an empty guest would flatter full migration); no NIC or disk on the bench guests",
                args.accel, args.fill_pct
            ),
        ),
        (
            "links".into(),
            "every port of the test LAN (veth pairs between network namespaces) shaped with a tc token bucket; the server's port is the shared link".into(),
        ),
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "jettison-bench needs root (test hosts in network namespaces); run `cargo xtask bench`"
    );
    anyhow::ensure!(
        !args.sizes.is_empty() && !args.links.is_empty(),
        "give at least one size and one link rate"
    );
    anyhow::ensure!(
        args.sizes.iter().all(|&s| (64..=16384).contains(&s)),
        "sizes are MiB from 64 to 16384"
    );
    anyhow::ensure!(
        args.links.iter().all(|&l| (1..=100_000).contains(&l)),
        "link rates are Mbit/s from 1 to 100000"
    );
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    let settings = Settings {
        bins: Binaries::beside_current_exe()?,
        image: GuestImage::locate()?,
        accel: args.accel.clone(),
        fill_pct: args.fill_pct,
        work_root: std::fs::canonicalize(&args.work_dir)?,
        fault_samples: if args.quick { 2000 } else { 10_000 },
        touch_pages: if args.quick { 64 * 256 } else { 256 * 256 },
    };
    if args.density {
        return density(&args, &settings).await;
    }
    let mut results = BenchResults {
        meta: meta(&args),
        ..Default::default()
    };
    let main_link = args.links[0];
    let smallest = *args.sizes.iter().min().expect("checked above");
    let mut plan = Vec::new();
    for &link in &args.links {
        for &size in &args.sizes {
            if link == main_link || !args.quick || size == smallest {
                plan.push((size, link));
            }
        }
    }
    let steps = plan.len() + usize::from(!args.concurrent.iter().all(|&c| c == 0));
    for (n, &(size, link)) in plan.iter().enumerate() {
        eprintln!("== [{}/{steps}] {size} MiB guest, {link} Mbit/s", n + 1);
        let largest = *args.sizes.iter().max().expect("checked above");
        let extra = if size == args.faults_mib && link == main_link {
            Extra::Faults
        } else if size == largest && link == main_link && args.prefetch_pages > 1 {
            Extra::PrefetchTouch(args.prefetch_pages)
        } else {
            Extra::None
        };
        let out = one_size(&settings, size, link, extra).await?;
        results.migration.push(out.migration);
        results.reintegration.push(out.reintegration);
        if link == main_link {
            results.server_memory.push(out.memory);
        }
        if out.faults.is_some() {
            results.faults = out.faults;
        }
        if out.prefetch_touch.is_some() {
            results.prefetch_touch = out.prefetch_touch;
        }
        write(&args, &results)?;
    }
    let counts: Vec<usize> = args.concurrent.iter().copied().filter(|&c| c > 0).collect();
    if !counts.is_empty() {
        eprintln!(
            "== [{steps}/{steps}] {counts:?} desktops at once, {} MiB guests, {main_link} Mbit/s",
            args.concurrent_mib
        );
        results.concurrent = concurrent(&settings, &counts, args.concurrent_mib, main_link).await?;
    }
    write(&args, &results)?;
    for t in results.targets() {
        println!(
            "{:<60} {:>10} {:>12.1}  {}",
            t.name,
            t.target,
            t.measured,
            if t.met { "met" } else { "MISSED" }
        );
    }
    info!("done");
    Ok(())
}

/// The density run alone: its JSON file and its part of the Markdown file.
async fn density(args: &Args, settings: &Settings) -> anyhow::Result<()> {
    let spec = DensitySpec {
        vms: usize::try_from(args.density_vms)?,
        memory_mib: args.density_memory_mib,
        disk_mib: args.density_disk_mib,
        window: std::time::Duration::from_secs(60 * args.density_minutes),
        parallel: usize::try_from(args.density_parallel)?,
    };
    let mut meta = meta(args);
    meta.insert(
        "guests".into(),
        format!(
            "accelerator {}, 1 vCPU, {}% of each guest's memory filled by its workload, then idle; a virtio NIC on the host's bridge and a {} MiB raw disk each",
            args.accel, args.fill_pct, args.density_disk_mib
        ),
    );
    let d = run_density(settings, &spec).await?;
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&d.to_json(&meta))? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &args.markdown {
        let old = std::fs::read_to_string(p).unwrap_or_default();
        let new = splice_between(
            &old,
            &density_markdown::render(&d, &meta),
            density_markdown::BEGIN,
            density_markdown::END,
        );
        std::fs::write(p, new).with_context(|| format!("writing {}", p.display()))?;
    }
    for (mode, m) in [("partial", &d.partial), ("full", &d.full)] {
        println!("density.{mode}.mem_mib_per_vm {:.1}", m.mem_mib_per_vm);
        println!("density.{mode}.cpu_pct_per_vm {:.2}", m.cpu_pct_per_vm);
    }
    println!(
        "full/partial: memory x{:.2}, CPU x{:.2}",
        d.mem_ratio_full_over_partial, d.cpu_ratio_full_over_partial
    );
    Ok(())
}

/// Writes what was measured so far (a failed step keeps the earlier ones).
fn write(args: &Args, r: &BenchResults) -> anyhow::Result<()> {
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&r.to_json())? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &args.markdown {
        let old = std::fs::read_to_string(p).unwrap_or_default();
        std::fs::write(p, splice(&old, &render(r)))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
