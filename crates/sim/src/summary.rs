//! A [`Report`] as text: the console table of `jettison simulate` and the
//! Markdown page `docs/simulation.md`. Pure string building.

use std::fmt::Write as _;

use crate::report::{Bucket, Outcome, Report};

const GIB: f64 = (1u64 << 30) as f64;

/// The rows worth showing: with `all`, every combination; otherwise the
/// best sleep policy of each prefetch policy and resume (every policy when
/// there is only one of those). Then the best oracle and the baselines.
pub fn rows(r: &Report, all: bool) -> Vec<(String, &Outcome)> {
    let mut out: Vec<(String, &Outcome)> = Vec::new();
    if all || r.oracles.len() <= 1 {
        out.extend(r.policies.iter().map(|(k, o)| (k.clone(), o)));
    } else {
        for v in r.oracles.values() {
            let best = r
                .policies
                .iter()
                .filter(|(_, o)| {
                    o.prefetch == v.prefetch && o.selective_resume == v.selective_resume
                })
                .min_by(|a, b| a.1.energy_j.total_cmp(&b.1.energy_j));
            out.extend(best.map(|(k, o)| (k.clone(), o)));
        }
    }
    out.push((format!("oracle ({})", variant(&r.oracle)), &r.oracle));
    out.push(("full migration".into(), &r.full_migration));
    out.push(("plain sleep".into(), &r.plain_sleep));
    out
}

/// `PREFETCH[+selective]` of an outcome.
pub fn variant(o: &Outcome) -> String {
    let sel = if o.selective_resume { "+selective" } else { "" };
    format!("{}{sel}", o.prefetch)
}

fn bucket(o: &Outcome, b: Bucket) -> f64 {
    o.savings_by_idle_bucket.get(&b).copied().unwrap_or(0.0)
}

/// A bucket's savings, `-` without idle periods of that class.
fn cell(o: &Outcome, b: Bucket, width: usize, unit: &str) -> String {
    match o.savings_by_idle_bucket.get(&b) {
        Some(v) => format!("{v:>width$.1}{unit}"),
        None => format!("{:>width$}", "-"),
    }
}

/// The console table.
pub fn console(r: &Report, all: bool) -> String {
    let mut s = format!(
        "{:<44} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}\n",
        "scheme",
        "saved %",
        "<10m",
        "10-30m",
        "30-60m",
        "1h+",
        "overnight",
        "wakes",
        "delayed",
        "GiB",
        "p99 s",
        "wakes/h"
    );
    for (name, o) in rows(r, all) {
        let _ = writeln!(
            s,
            "{name:<44} {:>7.1} {} {} {} {} {} {:>8} {:>8} {:>8.1} {:>8} {:>7.1}",
            o.savings_pct,
            cell(o, Bucket::Brief, 7, ""),
            cell(o, Bucket::Short, 7, ""),
            cell(o, Bucket::Medium, 7, ""),
            cell(o, Bucket::Long, 7, ""),
            cell(o, Bucket::Overnight, 9, ""),
            o.sleeps,
            o.delayed_requests,
            o.network_bytes as f64 / GIB,
            o.stall_ms
                .map_or("-".into(), |x| format!("{:.2}", x.p99 as f64 / 1000.0)),
            o.wakes_per_idle_hour,
        );
    }
    for line in findings(r) {
        s += &line;
        s.push('\n');
    }
    s
}

/// The headline comparisons, one sentence each.
pub fn findings(r: &Report) -> Vec<String> {
    let mut out = crate::evaluation::findings(r);
    let Some((name, best)) = r
        .policies
        .iter()
        .min_by(|a, b| a.1.energy_j.total_cmp(&b.1.energy_j))
    else {
        return out;
    };
    // idle periods over 1 h, or all of them if the trace has none
    let has_long = r.idle_periods.contains_key(&Bucket::Long);
    let (over, long): (&str, &dyn Fn(&Outcome) -> f64) = if has_long {
        ("over 1 h", &|o| bucket(o, Bucket::Long))
    } else {
        ("of any length (none over 1 h here)", &|o| {
            o.savings_idle_pct
        })
    };
    let gap = long(&r.oracle) - long(best);
    out.push(format!(
        "Against the oracle, on energy alone: {name}, {:.1} % saved over the trace, {:.1} % for idle periods {over} \
         against the oracle's {:.1} % ({}): {gap:.1} points {} the 5-point target.",
        best.savings_pct,
        long(best),
        long(&r.oracle),
        variant(&r.oracle),
        if gap <= 5.0 { "within" } else { "outside" },
    ));
    if let Some(own) = r.oracle_of(best).filter(|o| {
        o.prefetch != r.oracle.prefetch || o.selective_resume != r.oracle.selective_resume
    }) {
        out.push(format!(
            "Against the oracle with its own prefetching and resume ({}): {:.1} % for idle periods {over}.",
            variant(own),
            long(own)
        ));
    }
    let fm = &r.full_migration;
    let margin = |o: &Outcome| {
        format!(
            "{:+.1} points over the trace ({:.1} % vs {:.1} %), {:+.1} for idle periods {over} ({:.1} % vs {:.1} %)",
            o.savings_pct - fm.savings_pct,
            o.savings_pct,
            fm.savings_pct,
            long(o) - long(fm),
            long(o),
            long(fm),
        )
    };
    out.push(format!(
        "Over full migration: {}, a partially migrated VM charged {} (the profile's `partial_vms_per_server` \
         against `vms_per_server`, {}).",
        margin(best),
        match &r.density {
            Some(d) if d.partial_vms_per_server < d.vms_per_server => "a larger server share than a fully migrated one",
            Some(d) if d.partial_vms_per_server == d.vms_per_server => "the same server share as a fully migrated one",
            _ => "a smaller server share than a fully migrated one",
        },
        r.density.as_ref().map_or("an assumption".into(), |d| d.sentence()),
    ));
    if fm.savings_pct > 0.0 {
        out.push(format!(
            "{name} saves {:.0} % of full migration's savings over the trace (the paper's Jettison: 85-104 %, \
             EuroSys 2012).",
            100.0 * best.savings_pct / fm.savings_pct
        ));
    }
    let periods: u64 = r.idle_periods.values().sum();
    if periods > 0 {
        let brief = r.idle_periods.get(&Bucket::Brief).copied().unwrap_or(0);
        let pct = |n: u64| 100.0 * n as f64 / periods as f64;
        out.push(format!(
            "Idle detection: {brief} of {periods} idle periods ({:.0} %) end within 10 minutes of the move; \
             {name} wasted {} migrations ({:.0} % of periods: the user came back before the desktop slept), \
             full migration {} ({:.0} %: abandoned mid-way or too short to pay).",
            pct(brief),
            best.wasted_migrations,
            pct(best.wasted_migrations),
            fm.wasted_migrations,
            pct(fm.wasted_migrations),
        ));
    }
    if let Some(eq) = &r.best_with_equal_share {
        out.push(format!(
            "With equal server shares per VM instead: {}.",
            margin(eq)
        ));
    }
    let short = |o: &Outcome| bucket(o, Bucket::Short);
    if !r.idle_periods.contains_key(&Bucket::Short) {
        return out;
    }
    let mut pairs: Vec<(&str, &Outcome, &Outcome)> = Vec::new();
    for sel in [false, true] {
        let Some((k, _)) = r.best_online(sel) else {
            continue;
        };
        let base = if sel {
            k.strip_suffix("+selective")
        } else {
            Some(k)
        };
        let Some((base, off)) = base.and_then(|b| r.policies.get_key_value(b)) else {
            continue;
        };
        let Some(on) = r.policies.get(&format!("{base}+selective")) else {
            continue;
        };
        if !pairs.iter().any(|p| p.0 == base) {
            pairs.push((base, off, on));
        }
    }
    for (base, off, on) in pairs {
        out.push(format!(
            "Selective resume on {base}: idle periods of 10-30 min save {:.1} % without and {:.1} % with it \
             ({:+.1} points); the whole trace {:.1} % and {:.1} %.",
            short(off),
            short(on),
            short(on) - short(off),
            off.savings_pct,
            on.savings_pct,
        ));
    }
    out
}

/// How a column of the paper table shows an outcome.
type Column = dyn Fn(&Outcome) -> String;

/// The paper's figures next to the best online combination, the plain
/// policy without prefetching or selective resume, and the oracle.
fn paper_table(r: &Report) -> String {
    let mut s = String::from(
        "| idle periods | paper | best online | break-even alone | oracle |\n|---|---|---|---|---|\n",
    );
    let best = r
        .policies
        .values()
        .min_by(|a, b| a.energy_j.total_cmp(&b.energy_j));
    let plain = r.policies.get("break-even");
    let show = |o: Option<&Outcome>, f: &Column| o.map_or("-".into(), f);
    let rows: [(&str, &str, &Column); 4] = [
        ("10 min or more", "44-91 %", &|o| {
            let v: Vec<f64> = o
                .savings_by_idle_bucket
                .iter()
                .filter(|(b, _)| **b != Bucket::Brief)
                .map(|(_, v)| *v)
                .collect();
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            format!(
                "{:.1} % ({lo:.1}-{hi:.1} % by class)",
                o.savings_10m_plus_pct
            )
        }),
        ("under 10 min (after the agent's detection)", "-", &|o| {
            cell(o, Bucket::Brief, 0, " %")
        }),
        ("over 1 h (not overnight)", "78-91 %", &|o| {
            cell(o, Bucket::Long, 0, " %")
        }),
        ("10-30 min", "7-31 % before its improvements", &|o| {
            cell(o, Bucket::Short, 0, " %")
        }),
    ];
    for (class, paper, f) in rows {
        let _ = writeln!(
            s,
            "| {class} | {paper} | {} | {} | {} |",
            show(best, f),
            show(plain, f),
            show(Some(&r.oracle), f)
        );
    }
    s
}

/// The Markdown page, generated by `jettison COMMAND`.
pub fn markdown(r: &Report, command: &str) -> String {
    let mut s = String::from("# Simulated savings of partial VM migration\n\n");
    let _ = write!(
        s,
        "Generated by `jettison {command}` (crate `jettison-sim`). The synthetic fleet's parameters, each with \
         its source or marked assumed, are in *The synthetic model* below (`crates/sim/src/synth_params.rs`); \
         the power profile's defaults are in `crates/power-model/src/profile.rs`. Idle periods start when the \
         desktop agent decides the user is away (`away_after_s` without input), not when the user leaves; \
         absences are heavy-tailed, so many periods end minutes after the move; the VMs' working sets drift \
         over days; and a desktop makes its VM's memory durable before its first sleep of a period. Savings are against the desktop left on; within each bucket they \
         cover the idle periods of that length only, the first column the whole trace. {} idle periods, {} \
         page requests (first touches).\n\n",
        r.idle_periods.values().sum::<u64>(),
        r.requests
    );
    if let Some(h) = crate::evaluation::headline(r) {
        s += &h;
        s += "\n\n";
    }
    s += "## Findings\n\n";
    for line in findings(r) {
        let _ = writeln!(s, "* {line}");
    }
    s += "\nNext to the paper (Bila et al., TOCS 2015), which reports 44-91 % savings for idle periods of \
          10 minutes or more, 78-91 % for idle periods over an hour, and 7-31 % for periods up to 30 minutes \
          before its improvements (sleep scheduling, prefetching, selective resume); \"break-even alone\" \
          is without prefetching or selective resume:\n\n";
    s += &paper_table(r);
    s += "\nWhat the harder model changes and what it does not: the agent's idle detection, heavy-tailed \
          absences, drifting working sets and the memory copy before a first sleep cost partial migration \
          about 2 points over the trace and make some migrations wasted (the findings count them), but the \
          10-30 min class still saves far more than the paper's 7-31 % before its improvements: in this model \
          a consolidated desktop sleeps once its VM's arrival burst and the memory copy are over, and wakes \
          cost little energy (they cost delay); the partial move itself is charged nothing beyond the copy. \
          The sensitivity section shows which assumptions the result rests on.\n";
    s += "\nReading the numbers: a consolidated desktop still wakes for the pages its VM misses; prefetching \
          (neighbourhood groups, the working set of its last periods) avoids most of them, but cold pages \
          (never used before) still wake it a few times an hour under the synthetic model, which is what \
          partial migration loses against full migration. A partially migrated VM holds only the pages it \
          fetched on the server (our benchmark: about 86 MB for a 4 GiB VM; the paper: under a tenth of its \
          memory), so a server holds more of them: each is charged `peak_w / partial_vms_per_server`, a fully \
          migrated VM `peak_w / vms_per_server`. ";
    s += &match &r.density {
        Some(d) => format!("The shares here are {}. ", d.sentence()),
        None => {
            "Memory alone would allow about ten times as many; the default assumes three times (90 \
                 against 30), unmeasured, since the CPU and I/O of idle VMs cap the density first. "
                .into()
        }
    };
    s += "The findings give the margin with equal shares too. Not charging full migration's way \
          back favours it. Online policies run as the desktop agent runs them: asked every 250 ms, each \
          wake starting when a miss comes, the miss waiting for the resume. The oracle of each prefetch policy and resume \
          sleeps through exactly the stretches between misses that pay off, waking at the misses too (a \
          lower bound of every online policy); the findings' oracle is the best of them. With selective resume a wake to serve pages resumes the CPU, memory and NIC only \
          (2.5 s, 200 J with the default profile, against 5 s, 400 J) and the user's return the rest.\n\n";
    s += "## By idle-period length\n\nThe best sleep policy for each prefetch policy and resume, the \
          oracle (offline optimum) of each, and the baselines.\n\n\
          | scheme | whole trace | under 10 min | 10-30 min | 30-60 min | over 1 h | overnight |\n|---|---|---|---|---|---|---|\n";
    let mut table: Vec<(String, &Outcome)> = rows(r, false);
    table.truncate(table.len() - 3);
    table.extend(r.oracles.iter().map(|(k, o)| (format!("oracle, {k}"), o)));
    table.push(("full migration (LiteGreen-style)".into(), &r.full_migration));
    table.push(("plain sleep (no network presence)".into(), &r.plain_sleep));
    for (name, o) in &table {
        let b: Vec<String> = [
            Bucket::Brief,
            Bucket::Short,
            Bucket::Medium,
            Bucket::Long,
            Bucket::Overnight,
        ]
        .iter()
        .map(|&b| cell(o, b, 0, " %"))
        .collect();
        let _ = writeln!(s, "| {name} | {:.1} % | {} |", o.savings_pct, b.join(" | "));
    }
    s += "\n## Replaying a demo run\n\n`cargo xtask demo` replays its own run in the simulator \
          (`crates/demo/src/replay.rs`): the agent's power record becomes a one-desktop trace, simulated \
          with the profile, sleep policy, decision tick and selective resume the agent recorded and the \
          server's prefetch policy, and its energy is set against the energy meter's for the same span \
          (`replay` in the demo's report). The simulator runs the policy as the agent does: asked at the \
          VM's departure and every 250 ms after (afresh after each wake), told of every served fetch; a \
          sleep starts with the suspend at once; the next miss wakes the desktop when it comes (at the \
          suspend's end if it came during it), every miss until the resume's end waits and is served \
          then; the user's return ends the period once the desktop is back in use. What it leaves out, \
          and so what remains of the difference: the time from a wake's end to the server's next probe \
          (the server probes every 100 ms; the desktop idles meanwhile), the emulated host's \
          freezes and thaws (a few ms beyond the profile's latencies), the tick's jitter (the agent's \
          loop sleeps 250 ms after its work), the replayed time of a fetch served after a wake (the \
          wake's time, not the miss's, which can be earlier when it came during the suspend), and \
          fetches served while the VM was handed over (counted at the period's start).\n";
    s += "\n## Replaying an agent's own trace\n\nEach desktop agent records its power and fetch trace \
          (`[power] trace_dir`, by default `<state_dir>/trace`: JSON lines, `crates/sim/src/recorded.rs`; \
          a new file at each start and at `trace_max_mib / trace_files`, the oldest deleted beyond \
          `trace_files`): the backend's states, wakes with their reasons and the VMs' moves, the user's \
          departures and returns, the policy's sleeps, and every fetch served (time, VM, file, first page, \
          pages). `jettison simulate --trace DIR` (or the files, oldest first; a torn last line is \
          skipped) turns them into a one-desktop trace the same way as the demo's record and runs every \
          combination on it; it then replays the idle periods alone with the agent's own settings \
          (policy, tick, selective resume, profile; no prefetching on top of the fetches the server \
          made; a period's first sleep delayed as long as the agent's were, for the memory copy it \
          makes first) and sets the simulator's energy for those spans against the energy meter's over the \
          recorded timeline for the same spans (to the end of the user's resume when the VM was home \
          before it ended; `replay.replay_diff_idle_pct`, with the sleeps and page-miss wakes of both). Active time is left out: there both cost the same by construction, \
          and counting it would dilute the difference.\n";
    s += "\n## Every combination\n\nWakes: the desktop's sleeps (each ends in a wake); delayed: misses that \
          waited for a resume; fetches: misses; network: pages fetched x 4 KiB plus the device state \
          (380,533 bytes, as measured in the demo) each way per consolidated period; full migration sends \
          the whole VM out (the way back is not counted). Dirty pages going home are not counted: the \
          traces do not record guest writes.\n\n\
          | combination | whole trace | over 1 h | wakes | delayed | fetches | network (GiB) |\n\
          |---|---|---|---|---|---|---|\n";
    let every = r
        .policies
        .iter()
        .map(|(k, o)| (k.clone(), o))
        .chain(r.oracles.iter().map(|(k, o)| (format!("oracle, {k}"), o)))
        .chain([("full migration".to_string(), &r.full_migration)]);
    for (name, o) in every {
        let _ = writeln!(
            s,
            "| {name} | {:.1} % | {} | {} | {} | {} | {:.1} |",
            o.savings_pct,
            cell(o, Bucket::Long, 0, " %"),
            o.sleeps,
            o.delayed_requests,
            o.fetches,
            o.network_bytes as f64 / GIB
        );
    }
    s
}

/// One line on a recorded trace's replay over its idle periods.
pub fn replay_line(r: &crate::replay::ReplayDiff) -> String {
    format!(
        "replay of the recorded run with the agent's settings ({}), over its {} idle period(s), \
         {:.0} s, {} fetches: simulated {:.4} Wh, recorded {:.4} Wh, difference {:+.2} %; sleeps \
         {} simulated / {} recorded, page-miss wakes {} / {}",
        r.combination,
        r.idle_periods,
        r.idle_s,
        r.requests,
        r.sim_idle_wh,
        r.recorded_idle_wh,
        r.replay_diff_idle_pct,
        r.sim_sleeps,
        r.recorded_sleeps,
        r.sim_page_wakes,
        r.recorded_page_wakes
    )
}
