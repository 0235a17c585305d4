//! Partial migration round trip on one host: A -> device state bytes -> B on the same
//! memory file; the RAM contents stay in the shared file.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use jettison_qemu::{LaunchOptions, Qemu, RunState};

const MIB: u64 = 1 << 20;
const MEM_MIB: u64 = 256;
/// The last 16 MiB of guest RAM: SeaBIOS does not touch it with a 256 MiB guest.
const PATTERN_OFF: u64 = (MEM_MIB - 16) * MIB;
const PATTERN_LEN: usize = (16 * MIB) as usize;

fn pattern() -> Vec<u8> {
    (0..PATTERN_LEN)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ 0x5a)
        .collect()
}

fn read_region(p: &Path) -> Vec<u8> {
    let mut f = std::fs::File::open(p).unwrap();
    f.seek(SeekFrom::Start(PATTERN_OFF)).unwrap();
    let mut buf = vec![0; PATTERN_LEN];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// Guest-physical read through the monitor (`xp`), to see what the guest sees.
async fn guest_u64(vm: &Qemu, addr: u64) -> String {
    let v = vm
        .qmp()
        .execute_raw(
            "human-monitor-command",
            serde_json::json!({"command-line": format!("xp /1xg {addr:#x}")}),
        )
        .await
        .unwrap();
    v.as_str().unwrap().trim().to_string()
}

#[tokio::test]
async fn partial_migration_round_trip() {
    common::init_tracing();
    let dir = common::shm_dir("mig");
    let spec = common::bios_only(MEM_MIB);
    let opts_a = common::options(dir.path(), "miga");
    let a = Qemu::launch(&spec, &opts_a).await.unwrap();

    // Write the pattern through the file while A runs (the mapping is shared).
    let pat = pattern();
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&opts_a.mem_path)
            .unwrap();
        f.seek(SeekFrom::Start(PATTERN_OFF)).unwrap();
        f.write_all(&pat).unwrap();
    }
    let seen_a = guest_u64(&a, PATTERN_OFF).await;
    let expect = u64::from_le_bytes(pat[..8].try_into().unwrap());
    assert!(
        seen_a.ends_with(&format!("{expect:#018x}")),
        "A sees {seen_a}, expected {expect:#x}"
    );

    a.stop().await.unwrap();
    let t = Instant::now();
    let state = a.migrate_out().await.unwrap();
    let out_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(!state.is_empty());
    assert!(
        (state.len() as u64) < MIB,
        "device state is {} bytes",
        state.len()
    );
    assert_eq!(a.status().await.unwrap(), RunState::Postmigrate);
    assert!(a.quit().await.unwrap().success());
    assert_eq!(
        read_region(&opts_a.mem_path),
        pat,
        "pattern changed after A"
    );

    let opts_b = LaunchOptions {
        incoming: true,
        console_log: Some(dir.path().join("migb.console")),
        ..common::options(dir.path(), "migb")
    };
    let opts_b = LaunchOptions {
        mem_path: opts_a.mem_path.clone(),
        ..opts_b
    };
    let b = Qemu::launch(&spec, &opts_b).await.unwrap();
    assert_eq!(b.status().await.unwrap(), RunState::Inmigrate);
    let t = Instant::now();
    b.migrate_in(&state).await.unwrap();
    let in_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(
        b.status().await.unwrap(),
        RunState::Paused,
        "source was stopped: B stays paused"
    );
    b.cont().await.unwrap();
    assert_eq!(b.status().await.unwrap(), RunState::Running);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(b.status().await.unwrap(), RunState::Running);
    let seen_b = guest_u64(&b, PATTERN_OFF).await;
    assert!(
        seen_b.ends_with(&format!("{expect:#018x}")),
        "B sees {seen_b}"
    );
    assert_eq!(
        read_region(&opts_a.mem_path),
        pat,
        "pattern changed after B"
    );
    assert!(b.quit().await.unwrap().success());

    eprintln!(
        "MEASURED: guest {MEM_MIB} MiB, device state {} bytes ({:.1} KiB), migrate_out {out_ms:.1} ms, migrate_in {in_ms:.1} ms",
        state.len(),
        state.len() as f64 / 1024.0
    );
}
