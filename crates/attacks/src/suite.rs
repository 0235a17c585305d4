//! The authenticated attacks in order, one row each (see [`crate::authed`]).
//! The name collision, which may destroy the victim's disk, runs apart,
//! last ([`collisions`]).

use jettison_demo::Cluster;
use jettison_wire::Message;
use serde_json::json;

use crate::authed::{self, attempt, boot_by_path, without_digests, Ctx, Outcome};
use crate::machine::{base_machine, with};
use crate::report::{Reply, Row};

/// Every attack but the collisions, in order.
pub async fn run(cluster: &Cluster, ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    let vm = ctx.vm.clone();
    let c = || ctx.clone();

    rows.push(
        attempt(cluster, ctx, "reintegrate-other-desktops-vm", {
            let c = c();
            move || authed::reintegrate(c)
        })
        .await,
    );
    let onto = [
        (
            "migrate-in-onto-victim",
            Message::MigrateIn {
                vm: vm.clone(),
                device_state: vec![0; 64],
            },
        ),
        (
            "migrate-load-onto-victim",
            Message::MigrateLoad {
                vm: vm.clone(),
                device_state: vec![0; 64],
            },
        ),
        (
            "migrate-commit-onto-victim",
            Message::MigrateCommit { vm: vm.clone() },
        ),
        (
            "migrate-abort-onto-victim",
            Message::MigrateAbort {
                vm: vm.clone(),
                reason: "attack suite".into(),
            },
        ),
    ];
    for (name, msg) in onto {
        let c = c();
        rows.push(attempt(cluster, ctx, name, move || authed::one_request(c, msg)).await);
    }

    let base = base_machine(&ctx.kernel, &ctx.initrd, 64);
    let prepares = [
        (
            "extra-args-drive-etc-shadow",
            "atk-extra",
            with(
                &base,
                "extra_args",
                json!([
                    "-drive",
                    "file=/etc/shadow,format=raw,if=none,id=atk,readonly=on"
                ]),
            ),
            true,
        ),
        (
            "mac-with-comma",
            "atk-mac",
            with(
                &base,
                "nic_mac",
                json!("52:54:00:a7:7a:01,romfile=/etc/shadow"),
            ),
            false,
        ),
        (
            "memory-2^40-mib",
            "atk-mem",
            with(&base, "memory_mib", json!(1u64 << 40)),
            false,
        ),
        (
            "cpus-10000",
            "atk-cpus",
            with(&base, "cpus", json!(10_000)),
            false,
        ),
        (
            "boot-file-dev-zero",
            "atk-zero",
            boot_by_path(ctx, "/dev/zero", &"00".repeat(32)),
            false,
        ),
    ];
    for (name, vm, machine, legacy) in prepares {
        let c = c();
        rows.push(
            attempt(cluster, ctx, name, move || {
                authed::prepare(c, vm.into(), machine, legacy)
            })
            .await,
        );
    }

    // A FIFO on the server's host: reading it would block.
    let fifo = ctx.scratch.join("attack.fifo");
    let _ = std::fs::remove_file(&fifo);
    let fifo_made = nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600));
    let machine = boot_by_path(ctx, &fifo.display().to_string(), &"00".repeat(32));
    let cc = c();
    let mut row = attempt(cluster, ctx, "boot-file-fifo", move || {
        authed::prepare(cc, "atk-fifo".into(), machine, false)
    })
    .await;
    if let Err(e) = fifo_made {
        row.detail += &format!("; (mkfifo failed: {e})");
    }
    rows.push(row);
    let _ = std::fs::remove_file(&fifo);

    // /etc/shadow, by a guessed digest and by its real one: the replies
    // must not differ (else the digest check is a content oracle).
    let guessed = boot_by_path(ctx, "/etc/shadow", &"00".repeat(32));
    let cc = c();
    let guess_row = attempt(
        cluster,
        ctx,
        "boot-file-etc-shadow-guessed-digest",
        move || authed::prepare(cc, "atk-shadow1".into(), guessed, false),
    )
    .await;
    let real = std::fs::read("/etc/shadow")
        .map(|b| blake3::hash(&b).to_hex().to_string())
        .unwrap_or_default();
    let machine = boot_by_path(ctx, "/etc/shadow", &real);
    let cc = c();
    let guess_text = guess_row.detail.clone();
    let real_row = attempt(
        cluster,
        ctx,
        "boot-file-etc-shadow-real-digest",
        move || async move {
            let mut o: Outcome = authed::prepare(cc, "atk-shadow2".into(), machine, false).await?;
            let first = |d: &str| {
                without_digests(d.split("; ").next().unwrap_or(d))
                    .replace("atk-shadow1", "<vm>")
                    .replace("atk-shadow2", "<vm>")
            };
            let same = first(&guess_text) == first(&o.reply.text());
            if !same {
                o.succeeded_anyway = true;
                o.note = format!(
                    "{}the reply differs from the guessed digest's: a file-content oracle",
                    if o.note.is_empty() {
                        String::new()
                    } else {
                        format!("{}; ", o.note)
                    }
                );
            }
            Ok(o)
        },
    )
    .await;
    rows.push(guess_row);
    rows.push(real_row);

    let cc = c();
    rows.push(
        attempt(cluster, ctx, "wake-on-lan-off-the-lan", move || {
            authed::one_request(
                cc,
                Message::GoingToSleep {
                    mac: "52:54:00:a7:7a:02".into(),
                    wol_addr: "8.8.8.8:9".into(),
                },
            )
        })
        .await,
    );
    if let Some(r) = rows.last_mut() {
        if !r.refused {
            r.detail += "; stored: the server would send magic packets to 8.8.8.8:9 at the next \
                         fetch it needs from desktop2 (none is sent before)";
        }
    }
    let cc = c();
    rows.push(
        attempt(
            cluster,
            ctx,
            "fetch-victim-pages-from-its-desktop",
            move || authed::fetch_from_desktop(cc),
        )
        .await,
    );
    let cc = c();
    rows.push(
        attempt(cluster, ctx, "capacity-limits", move || {
            authed::capacity(cc)
        })
        .await,
    );
    rows
}

/// The name collisions: a VM named as the victim, one named as its disk's
/// lazy file and replica (the stem of the victim's other file in the
/// server's mount, as this server names it: `<vm>-disk` before protocol
/// 1.2, `<vm>.disk` since), and the other way round: a VM `<x>` with a disk
/// while the first desktop has a VM named as `<x>`'s disk would be.
pub async fn collisions(cluster: &Cluster, ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    let base = base_machine(&ctx.kernel, &ctx.initrd, 64);
    let disk_stem = victim_disk_stem(cluster, &ctx.vm);
    for (name, vm) in [
        ("name-same-as-victim", ctx.vm.clone()),
        ("name-collision-victims-disk", disk_stem),
    ] {
        let (cc, m) = (ctx.clone(), base.clone());
        rows.push(
            attempt(cluster, ctx, name, move || {
                authed::prepare(cc, vm, m, false)
            })
            .await,
        );
    }
    // What the server appends to a VM's name for its disk file.
    let disk_suffix = disk_stem_suffix(&victim_disk_stem(cluster, &ctx.vm), &ctx.vm);
    match cluster.tls_as("desktop", "server") {
        Ok(tls) => {
            let cc = ctx.clone();
            rows.push(
                attempt(cluster, ctx, "name-collision-disk-of-own-vm", move || {
                    authed::collision_reversed(cc, tls, disk_suffix)
                })
                .await,
            );
        }
        Err(e) => rows.push(not_run("name-collision-disk-of-own-vm", &format!("{e:#}"))),
    }
    rows
}

/// The stem of the victim's disk file in the server's mount (`<stem>.mem`,
/// the file that is not `<vm>.mem`); `<vm>-disk`, the old naming, if none.
fn victim_disk_stem(cluster: &Cluster, vm: &str) -> String {
    let own = format!("{vm}.mem");
    std::fs::read_dir(&cluster.mount_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(vm) && n.ends_with(".mem") && *n != own)
        .and_then(|n| n.strip_suffix(".mem").map(str::to_owned))
        .unwrap_or_else(|| format!("{vm}-disk"))
}

fn disk_stem_suffix(stem: &str, vm: &str) -> String {
    stem.strip_prefix(vm).unwrap_or("-disk").to_owned()
}

/// A row for an attack that could not run at all.
pub fn not_run(name: &str, why: &str) -> Row {
    let mut m = crate::report::Measured::new(name, Reply::NoReply(format!("not run: {why}")));
    m.succeeded_anyway = true;
    crate::report::judge(&m)
}
