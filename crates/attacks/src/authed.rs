//! The attacks of a second, authenticated desktop (`desktop2`, a
//! certificate from the deployment's CA that the server accepts) against a
//! VM another desktop consolidated: each speaks the wire protocol from the
//! peer test host, with frames of its own making. [`attempt`] measures one
//! around the server: its reply, what appeared on the server meanwhile,
//! what of the victim's it received, and the victim afterwards.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use jettison_demo::Cluster;
use jettison_testbed::Host;
use jettison_tls::TlsContext;
use jettison_wire::{FileKind, Message, Range, Role};
use serde_json::{json, Value};

use crate::conn::{on_host, Conn, REPLY_TIMEOUT};
use crate::footprint::{change, Change, Footprint, ServerPlaces};
use crate::machine::{base_machine, boot_file, prepare_payload, with};
use crate::report::{judge, Measured, Reply, Row};
use crate::victim;

/// What an attack and the suite share.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The attacker's test host.
    pub attacker: Host,
    /// desktop2's TLS, talking to the server.
    pub tls: Arc<TlsContext>,
    /// desktop2's TLS, talking to the first desktop's state server.
    pub tls_to_desktop: Arc<TlsContext>,
    /// The server's agent-facing address.
    pub server_addr: String,
    /// The first desktop's state server.
    pub state_addr: String,
    /// The victim VM.
    pub vm: String,
    /// The server's places.
    pub places: ServerPlaces,
    /// The victim's items before the attacks.
    pub victim_items: Footprint,
    /// The victim's record before the attacks.
    pub record: Vec<u8>,
    /// The test guest's kernel and initramfs as boot files (JSON).
    pub kernel: Value,
    /// Initramfs.
    pub initrd: Value,
    /// A scratch directory on the server's host (the FIFO goes there).
    pub scratch: PathBuf,
    /// Prepares tried in a row for the capacity limits.
    pub capacity_tries: u32,
}

/// What an attack's own code found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The server's reply.
    pub reply: Reply,
    /// Victim bytes received.
    pub leaked: u64,
    /// More to say.
    pub note: String,
    /// It worked although the server said no.
    pub succeeded_anyway: bool,
    /// Capacity: prepares accepted.
    pub accepted: Option<u32>,
    /// Capacity: the change around the refused prepare alone.
    pub change: Option<Change>,
    /// The attack's own victim (not the consolidated VM) lost something.
    pub damaged: Option<String>,
}

impl Outcome {
    /// Just a reply.
    pub fn reply(reply: Reply) -> Self {
        Outcome {
            reply,
            leaked: 0,
            note: String::new(),
            succeeded_anyway: false,
            accepted: None,
            change: None,
            damaged: None,
        }
    }
}

/// Runs one attack (`op`, on the attacker's host) and judges it.
pub async fn attempt<F, Fut>(cluster: &Cluster, ctx: &Ctx, name: &str, op: F) -> Row
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    let before = ctx.places.snapshot().unwrap_or_default();
    let watcher = ctx.places.watch();
    let outcome = on_host(&ctx.attacker, op)
        .await
        .unwrap_or_else(|e| Outcome::reply(Reply::NoReply(format!("attack failed: {e:#}"))));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let seen = watcher.finish();
    let after = ctx.places.snapshot().unwrap_or_default();
    let mut ch = change(&before, &seen, &after, &ctx.victim_items);
    if let Some(own) = &outcome.change {
        ch.created = own.created.clone();
    }
    if let Some(d) = &outcome.damaged {
        ch.removed.push(d.clone());
    }
    let mut m = Measured::new(name, outcome.reply);
    m.victim = victim::check(cluster, &ctx.record, &ch).await;
    m.change = ch;
    m.bytes_leaked = outcome.leaked;
    m.note = outcome.note;
    m.succeeded_anyway = outcome.succeeded_anyway;
    m.accepted = outcome.accepted;
    let row = judge(&m);
    println!(
        "  {:<34} refused {:<5} intact {:<5} leaked {:>8}  {}",
        row.name, row.refused, row.victim_intact, row.bytes_leaked, row.detail
    );
    row
}

async fn dial(ctx: &Ctx) -> Result<Conn, Outcome> {
    Conn::dial(ctx.tls.clone(), &ctx.server_addr, "server", Role::Agent)
        .await
        .map_err(|e| Outcome::reply(Reply::NoReply(e)))
}

/// Asks the server to send the victim home to the attacker; counts the
/// device state and pages it sends, then gives the return up.
pub async fn reintegrate(ctx: Ctx) -> anyhow::Result<Outcome> {
    let mut c = match dial(&ctx).await {
        Ok(c) => c,
        Err(o) => return Ok(o),
    };
    c.send(&Message::Reintegrate { vm: ctx.vm.clone() }).await?;
    let mut leaked = 0u64;
    let mut first = None;
    let mut pages = 0u64;
    loop {
        let msg = c.recv(REPLY_TIMEOUT).await;
        let stop = !matches!(
            msg,
            Ok(Message::ReintegrateBegin { .. } | Message::DirtyPages { .. })
        );
        match &msg {
            Ok(Message::ReintegrateBegin { device_state, .. }) => {
                leaked += device_state.len() as u64
            }
            Ok(Message::DirtyPages { pages: p, .. }) => {
                pages += p.len() as u64;
                leaked += p.iter().map(|c| c.data.len() as u64).sum::<u64>();
            }
            _ => {}
        }
        if first.is_none() {
            first = Some(crate::conn::reply_of(msg));
        }
        if stop {
            break;
        }
    }
    let _ = c
        .send(&Message::ReintegrateAbort {
            vm: ctx.vm.clone(),
            reason: "attack suite".into(),
        })
        .await;
    c.close().await;
    let mut o = Outcome::reply(first.unwrap_or(Reply::NoReply("nothing".into())));
    o.leaked = leaked;
    if leaked > 0 {
        o.note = format!("received the device state and {pages} dirty pages or blocks");
    }
    Ok(o)
}

/// Sends one message naming the victim and reads the reply.
pub async fn one_request(ctx: Ctx, msg: Message) -> anyhow::Result<Outcome> {
    let mut c = match dial(&ctx).await {
        Ok(c) => c,
        Err(o) => return Ok(o),
    };
    let reply = c.request(&msg).await;
    c.close().await;
    Ok(Outcome::reply(reply))
}

/// Sends a prepare (`machine` as JSON, see [`prepare_payload`]); one the
/// server accepts is aborted at once.
pub async fn prepare(
    ctx: Ctx,
    vm: String,
    machine: Value,
    legacy: bool,
) -> anyhow::Result<Outcome> {
    let state_server = format!("{}:{}", ctx.attacker.ip, crate::state_stub::PORT);
    let (payload, enc) = prepare_payload(&vm, &machine, &state_server, legacy)?;
    let mut c = match dial(&ctx).await {
        Ok(c) => c,
        Err(o) => return Ok(o),
    };
    let reply = c.request_raw(&payload).await;
    if reply == Reply::Served("Prepared".into()) {
        let _ = c
            .request(&Message::MigrateAbort {
                vm: vm.clone(),
                reason: "attack suite".into(),
            })
            .await;
    }
    c.close().await;
    let mut o = Outcome::reply(reply);
    o.note = enc.note();
    Ok(o)
}

/// Prepares in a row until the server refuses one (or `capacity_tries`
/// were accepted), each 1 GiB of memory, a 1 GiB disk and a NIC; then
/// aborts them all. What the refused prepare created is measured around it
/// alone.
pub async fn capacity(ctx: Ctx) -> anyhow::Result<Outcome> {
    let mut c = match dial(&ctx).await {
        Ok(c) => c,
        Err(o) => return Ok(o),
    };
    let state_server = format!("{}:{}", ctx.attacker.ip, crate::state_stub::PORT);
    let mut accepted = Vec::new();
    let mut last = Reply::NoReply("no prepare tried".into());
    let mut refused_change = None;
    for i in 0..ctx.capacity_tries {
        let vm = format!("atk-cap-{i}");
        let m = with(
            &with(
                &base_machine(&ctx.kernel, &ctx.initrd, 1024),
                "disk_bytes",
                json!(1u64 << 30),
            ),
            "nic_mac",
            json!(format!("52:54:00:a7:7b:{:02x}", i % 256)),
        );
        let (payload, _) = prepare_payload(&vm, &m, &state_server, false)?;
        let before = ctx.places.snapshot().unwrap_or_default();
        let watcher = ctx.places.watch();
        last = c.request_raw(&payload).await;
        let seen = watcher.finish();
        if last == Reply::Served("Prepared".into()) {
            accepted.push(vm);
            continue;
        }
        let after = ctx.places.snapshot().unwrap_or_default();
        refused_change = Some(change(&before, &seen, &after, &Footprint::new()));
        break;
    }
    for vm in &accepted {
        let _ = c
            .request(&Message::MigrateAbort {
                vm: vm.clone(),
                reason: "attack suite".into(),
            })
            .await;
    }
    c.close().await;
    let n = accepted.len() as u32;
    let mut o = Outcome::reply(last);
    o.accepted = Some(n);
    o.note = match &refused_change {
        Some(_) => format!(
            "{n} prepares of 1 GiB (with a 1 GiB disk and a NIC) accepted before the refusal"
        ),
        None => format!(
            "all {n} prepares of 1 GiB (with a 1 GiB disk and a NIC) accepted: no limit met"
        ),
    };
    // With no refusal, what the accepted ones created is what counts.
    o.change = refused_change;
    Ok(o)
}

/// The collision the other way round: the first desktop has a VM named
/// `<x><disk_suffix>` (prepared here with its certificate, waiting for its
/// state), and desktop2 prepares a VM `<x>` with a disk, whose disk file
/// would be `<x><disk_suffix>`. The bystander's memory file must survive.
/// When the server refuses the bystander's very name (the suffix lies
/// outside the VM-name alphabet), no such collision can be set up: the row
/// gives that refusal.
pub async fn collision_reversed(
    ctx: Ctx,
    tls_desktop: Arc<TlsContext>,
    disk_suffix: String,
) -> anyhow::Result<Outcome> {
    let base = base_machine(&ctx.kernel, &ctx.initrd, 64);
    let x = "atk-col".to_string();
    let bystander = format!("{x}{disk_suffix}");
    // The first desktop's own state server: the server reaches it as that
    // desktop (the attacker's stub is desktop2).
    let state_server = ctx.state_addr.clone();
    let mut owner = match Conn::dial(tls_desktop, &ctx.server_addr, "server", Role::Agent).await {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::reply(Reply::NoReply(format!(
                "the bystander: {e}"
            ))))
        }
    };
    let (payload, _) = prepare_payload(&bystander, &base, &state_server, false)?;
    let r = owner.request_raw(&payload).await;
    if r != Reply::Served("Prepared".into()) {
        owner.close().await;
        let mut o = Outcome::reply(r);
        o.note = format!(
            "the first desktop cannot even have a VM named {bystander:?}, as {x}'s disk file \
             is named: no collision to set up"
        );
        return Ok(o);
    }
    let file = ctx.places.dirs[0].1.join(format!("{bystander}.mem"));
    // What the attacker's prepare alone creates (not the bystander).
    let before = ctx.places.snapshot().unwrap_or_default();
    let watcher = ctx.places.watch();
    let mut o = prepare(
        ctx.clone(),
        x,
        with(&base, "disk_bytes", json!(64u64 << 20)),
        false,
    )
    .await?;
    let seen = watcher.finish();
    let after = ctx.places.snapshot().unwrap_or_default();
    o.change = Some(change(&before, &seen, &after, &Footprint::new()));
    if !file.exists() {
        o.damaged = Some(format!("file mnt/{bystander}.mem (the first desktop's VM)"));
    }
    let _ = owner
        .request(&Message::MigrateAbort {
            vm: bystander,
            reason: "attack suite".into(),
        })
        .await;
    owner.close().await;
    Ok(o)
}

/// Fetches a page of the victim's memory from its desktop's state server,
/// as desktop2.
pub async fn fetch_from_desktop(ctx: Ctx) -> anyhow::Result<Outcome> {
    let mut c = match Conn::dial(
        ctx.tls_to_desktop.clone(),
        &ctx.state_addr,
        "desktop",
        Role::Server,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return Ok(Outcome::reply(Reply::NoReply(e))),
    };
    c.send(&Message::Fetch {
        vm: ctx.vm.clone(),
        file: FileKind::Memory,
        ranges: vec![Range {
            offset: 0,
            len: 64 * 4096,
        }],
    })
    .await?;
    let msg = c.recv(REPLY_TIMEOUT).await;
    let leaked = match &msg {
        Ok(Message::Chunks { chunks }) => chunks.iter().map(|c| c.data.len() as u64).sum(),
        _ => 0,
    };
    c.close().await;
    let mut o = Outcome::reply(crate::conn::reply_of(msg));
    o.leaked = leaked;
    Ok(o)
}

/// A reply's text with digests (64 hex digits) blanked, to compare two
/// replies that differ only in the digest they quote.
pub fn without_digests(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for ch in text.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
            continue;
        }
        if run.len() == 64 {
            out.push_str("<digest>");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(ch);
    }
    out.pop();
    out
}

/// The kernel named by a path the server should never read, with `digest`.
pub fn boot_by_path(ctx: &Ctx, path: &str, digest: &str) -> Value {
    with(
        &base_machine(&ctx.kernel, &ctx.initrd, 64),
        "kernel",
        boot_file(path, digest),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_blanked_for_comparison() {
        let d = "ab".repeat(32);
        let a = format!("Failed: no copy of boot file shadow with digest {d} (looked in: /img/shadow, /etc/shadow)");
        let b = a.replace(&d, &"01".repeat(32));
        assert_eq!(without_digests(&a), without_digests(&b));
        assert!(without_digests(&a).contains("digest <digest> (looked"));
        // Short hex runs stay.
        assert_eq!(without_digests("vm cafe 12"), "vm cafe 12");
        assert_ne!(without_digests(&a), without_digests("Failed: qemu exited"));
    }
}
