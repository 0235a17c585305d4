//! The simulation: pure functions over a [`FleetTrace`].
//!
//! Per desktop and idle period, each prefetch policy decides which requests
//! are misses ([`crate::fetch`]); a sleep policy runs over the misses as
//! the desktop agent runs it, asked on the agent's decision tick, each
//! sleep ending in a wake by the next miss (which waits for the resume) or
//! at the user's return (see [`crate::cost`] for the model and its
//! charges). With selective resume a wake by a miss costs the service
//! resume and the user's return the rest. Consolidated VMs pay the server's
//! share per partially migrated VM
//! ([`jettison_power_model::profile::ServerPower::watts_per_partial_vm`]) for the
//! whole period. One policy instance per combination serves a desktop for
//! the whole trace, told each period's start
//! ([`jettison_power_model::SleepPolicy::on_period_start`]: break-even
//! forgets the gaps of earlier periods, so the hours before a departure never
//! make it sleep into the VM's arrival burst); they are built from the
//! profile the agent builds them from
//! ([`jettison_power_model::policy::policy_profile`]: with selective resume, the
//! service resume).
//!
//! Every (sleep policy x prefetch x resume) combination is simulated, and
//! the offline optimum of each (prefetch x resume) in the same model
//! ([`crate::oracle`]), a lower bound of every online policy; the report's
//! `oracle` is the best of them.
//!
//! Baselines: always on (the desktop idles), plain sleep (sleeps at once, no
//! consolidation, no network presence), full migration (LiteGreen-style:
//! all VM memory over a shared link while the desktop idles, `k` desktops
//! going idle in the same minute sharing the link; then sleep. Like partial
//! migration it starts at every detected idle period, not knowing its
//! length: a migration the user's return interrupts is abandoned (the
//! desktop idled, the link and the server's share were spent) and counts
//! as wasted; the way back is not charged in energy, which favours it, but
//! counts in its return latency
//! ([`crate::delay`]); the server's share per fully migrated VM,
//! [`jettison_power_model::profile::ServerPower::watts_per_vm`]). Outside idle
//! periods every scheme costs the same: active power while the user works,
//! idle power otherwise.

use std::collections::{BTreeMap, HashMap};

use jettison_power_model::{PowerProfile, PrefetchConfig, PullPolicy, SleepPolicy};

use crate::config::{prefetch_name, SimConfig, Variant};
use crate::cost::{gap_j, Wakes};
use crate::delay::{latency_quantiles, return_group, return_groups, Return};
use crate::fetch::{self, Fetches, History, Present, DEVICE_STATE_BYTES, PAGE_BYTES};
use crate::online::{run_period_pulling, Pulling};
use crate::oracle::oracle_period_after_copy;
use crate::report::{Bucket, Outcome, Report};
use crate::trace::{DesktopTrace, FleetTrace, IdlePeriod, Span};

/// Per variant: its wakes and the profile its policies are built from.
struct Setup {
    profile: PowerProfile,
    variants: Vec<Variant>,
    wakes: Vec<Wakes>,
    profiles: Vec<PowerProfile>,
    prefetch: Vec<PrefetchConfig>,
    policies: Vec<crate::PolicySpec>,
    total_pages: u64,
    tick_ms: u64,
    window_ms: u64,
    durable_ms: u64,
    pull: Option<jettison_power_model::PullConfig>,
}

/// The schemes' running figures.
struct Tally {
    /// `[variant][policy]`.
    online: Vec<Vec<Outcome>>,
    /// `[variant]`.
    oracles: Vec<Outcome>,
}

impl Tally {
    /// Empty figures, named.
    fn new(setup: &Setup) -> Self {
        let pf = |v: &Variant| prefetch_name(&setup.prefetch[v.prefetch]);
        Self {
            online: setup
                .variants
                .iter()
                .map(|v| {
                    let named =
                        |s: &crate::PolicySpec| Outcome::named(&s.name(), &pf(v), v.selective);
                    setup.policies.iter().map(named).collect()
                })
                .collect(),
            oracles: setup
                .variants
                .iter()
                .map(|v| Outcome::named("oracle", &pf(v), v.selective))
                .collect(),
        }
    }

    fn absorb(&mut self, other: &Self) {
        let pairs = self
            .online
            .iter_mut()
            .flatten()
            .zip(other.online.iter().flatten());
        for (a, b) in pairs.chain(self.oracles.iter_mut().zip(&other.oracles)) {
            a.absorb(b);
        }
    }
}

/// Simulates `trace` under `config`.
pub fn simulate(trace: &FleetTrace, config: &SimConfig) -> Report {
    let p = &config.profile;
    let variants = config.variants();
    let prefetch = config.prefetch_configs();
    let setup = Setup {
        wakes: variants
            .iter()
            .map(|v| Wakes::new(p, v.selective))
            .collect(),
        profiles: variants
            .iter()
            .map(|v| jettison_power_model::policy::policy_profile(p, v.selective))
            .collect(),
        tick_ms: config.decision_tick_ms,
        durable_ms: config.durable_copy_ms,
        pull: config.pull.clone(),
        policies: config.distinct_policies(),
        total_pages: config.full_migration.vm_bytes / PAGE_BYTES,
        window_ms: config.full_migration.window_ms,
        variants,
        prefetch,
        profile: p.clone(),
    };
    let mut tally = Tally::new(&setup);
    let mut r = Report::default();
    let mut plain = Outcome::named("", "none", false);
    let mut full = Outcome::named("", "none", false);
    let fm = &config.full_migration;
    let mut starts: HashMap<u64, u64> = HashMap::new();
    for pe in trace.desktops.iter().flat_map(|d| &d.idle) {
        *starts
            .entry(pe.span.start_ms / fm.window_ms.max(1))
            .or_default() += 1;
    }
    let (pi, server_w) = (p.desktop.idle_w, p.server.watts_per_vm());
    let mut idle_base = BTreeMap::<Bucket, f64>::new();
    let mut outside_j = 0.0;
    // the combinations, desktops in parallel, added up in order
    for part in crate::par::map(&trace.desktops, |di, desk| desktop(&setup, di as u64, desk)) {
        tally.absorb(&part);
    }
    for desk in &trace.desktops {
        let active: u64 = desk.activity.iter().map(Span::len_ms).sum();
        let idle: u64 = desk.idle.iter().map(|i| i.span.len_ms()).sum();
        let other = trace.wall_ms().saturating_sub(active + idle);
        outside_j += (p.desktop.active_w * active as f64 + pi * other as f64) / 1000.0;
        for pe in &desk.idle {
            let (len, b) = (pe.span.len_ms(), Bucket::of(pe.span));
            *r.idle_periods.entry(b).or_default() += 1;
            r.idle_ms += len;
            let group = return_group(pe.span, fm.window_ms);
            plain.returns.push(Return {
                group,
                bytes: 0,
                resume_ms: p.resume.latency_ms,
            });
            r.requests += pe.requests.len() as u64;
            *idle_base.entry(b).or_default() += pi * len as f64 / 1000.0;
            plain.sleeps += 1;
            plain.add(b, gap_j(p, len, Some(0), &p.resume), 0.0);
            let k = starts[&(pe.span.start_ms / fm.window_ms.max(1))] as f64;
            let mig = (k * fm.vm_bytes as f64 * 8.0 / fm.link_bps * 1000.0).ceil() as u64;
            // it migrates at every detected period, not knowing its length
            let server_j = server_w * len as f64 / 1000.0;
            if len > mig {
                full.sleeps += 1;
                full.network_bytes += fm.vm_bytes + DEVICE_STATE_BYTES;
                let j = pi * mig as f64 / 1000.0 + gap_j(p, len - mig, Some(0), &p.resume);
                // a sleep too short to pay for its transitions saved nothing
                full.wasted_migrations += u64::from(j + server_j >= pi * len as f64 / 1000.0);
                full.add(b, j + server_j, server_j);
                full.returns.push(Return {
                    group,
                    bytes: fm.vm_bytes + DEVICE_STATE_BYTES,
                    resume_ms: p.resume.latency_ms,
                });
            } else {
                // the user came back during the migration: abandoned, the
                // desktop idled, the link and the server's share were spent
                full.wasted_migrations += 1;
                full.network_bytes += (fm.vm_bytes as f64 * len as f64 / mig.max(1) as f64) as u64;
                full.add(b, pi * len as f64 / 1000.0 + server_j, server_j);
                full.returns.push(Return {
                    group,
                    bytes: 0,
                    resume_ms: 0,
                });
            }
        }
    }
    r.always_on_j = outside_j + idle_base.values().sum::<f64>();
    let idle_h = r.idle_ms as f64 / 3_600_000.0;
    let finish = |mut o: Outcome| {
        o.finish(outside_j, r.always_on_j, &idle_base);
        if idle_h > 0.0 {
            o.wakes_per_idle_hour = o.page_wakes as f64 / idle_h;
        }
        if o.stalls.count() > 0 {
            o.stall_ms = Some(o.stalls.summary());
        }
        if !o.returns.is_empty() {
            let lat = return_groups(&o.returns, fm.link_bps);
            o.return_latency_s = Some(latency_quantiles(lat));
        }
        o
    };
    for (v, row) in setup.variants.iter().zip(tally.online) {
        for (s, o) in setup.policies.iter().zip(row) {
            r.policies
                .insert(format!("{}{}", s.name(), v.suffix), finish(o));
        }
    }
    for (v, o) in setup.variants.iter().zip(tally.oracles) {
        r.oracles.insert(v.name.clone(), finish(o));
    }
    r.oracle = r
        .oracles
        .values()
        .min_by(|a, b| a.energy_j.total_cmp(&b.energy_j))
        .cloned()
        .unwrap_or_default();
    r.plain_sleep = finish(plain);
    r.full_migration = finish(full);
    r
}

/// Runs every combination and oracle over one desktop's idle periods.
fn desktop(setup: &Setup, di: u64, desk: &DesktopTrace) -> Tally {
    let mut tally = Tally::new(setup);
    let mut online: Vec<Vec<Box<dyn SleepPolicy>>> = setup
        .profiles
        .iter()
        .map(|prof| setup.policies.iter().map(|s| s.build(prof, di)).collect())
        .collect();
    // with a pull policy, one per combination (built from the same profile)
    let mut pulls: Vec<Vec<PullPolicy>> = match &setup.pull {
        None => Vec::new(),
        Some(c) => setup
            .profiles
            .iter()
            .map(|prof| {
                let one = PullPolicy::new(c.clone(), prof);
                vec![one; setup.policies.len()]
            })
            .collect(),
    };
    let mut history = History::for_configs(&setup.prefetch);
    let mut present = Present::default();
    let base = &setup.profile;
    for pe in &desk.idle {
        let fetched = period_fetches(setup, pe, &history, &mut present);
        let b = Bucket::of(pe.span);
        let server_j = base.server.watts_per_partial_vm() * pe.span.len_ms() as f64 / 1000.0;
        for (vi, v) in setup.variants.iter().enumerate() {
            let f = &fetched[v.prefetch];
            let wakes = &setup.wakes[vi];
            let count = |o: &mut Outcome| {
                o.fetches += f.times.len() as u64;
                o.pages_fetched += f.pages;
                o.network_bytes += f.pages * PAGE_BYTES + 2 * DEVICE_STATE_BYTES;
            };
            let group = return_group(pe.span, setup.window_ms);
            let mut pull_row = pulls.get_mut(vi).map(|v| v.iter_mut());
            for (pol, o) in online[vi].iter_mut().zip(&mut tally.online[vi]) {
                let slept = o.sleeps;
                let pulling = pull_row.as_mut().and_then(Iterator::next);
                let extra_w = pulling.as_ref().map_or(0.0, |x| x.extra_server_w());
                let pulling = pulling.map(|policy| Pulling {
                    policy,
                    total_pages: setup.total_pages,
                    present_after: &f.present_after,
                });
                let (j, resume_ms, pulled) = run_period_pulling(
                    base,
                    wakes,
                    pol.as_mut(),
                    pulling,
                    pe.span,
                    &f.times,
                    setup.tick_ms,
                    setup.durable_ms,
                    o,
                );
                o.wasted_migrations += u64::from(o.sleeps == slept);
                // a pulled VM holds its whole memory on the server from then on
                let extra_j = pulled.map_or(0.0, |x| {
                    extra_w * pe.span.end_ms.saturating_sub(x.done_ms) as f64 / 1000.0
                });
                o.add(b, j + server_j + extra_j, server_j + extra_j);
                count(o);
                if let Some(x) = pulled {
                    o.pages_fetched += x.pages;
                    o.network_bytes += x.pages * PAGE_BYTES;
                }
                o.returns.push(Return {
                    group,
                    bytes: f.pages * PAGE_BYTES + DEVICE_STATE_BYTES,
                    resume_ms,
                });
            }
            let o = &mut tally.oracles[vi];
            let slept = o.sleeps;
            let j = oracle_period_after_copy(base, wakes, pe.span, &f.times, setup.durable_ms, o);
            o.wasted_migrations += u64::from(o.sleeps == slept);
            o.add(b, j + server_j, server_j);
            count(o);
        }
        if history.keeps() {
            history.push(fetch::used_pages(pe, &mut present));
        }
    }
    tally
}

/// The fetches of `pe` under each prefetch policy.
fn period_fetches(
    setup: &Setup,
    pe: &IdlePeriod,
    history: &History,
    present: &mut Present,
) -> Vec<Fetches> {
    // working sets by (max_pages, periods), computed once per period
    let mut sets: Vec<((u32, u32), Vec<u64>)> = Vec::new();
    setup
        .prefetch
        .iter()
        .map(|c| {
            let key = match *c {
                PrefetchConfig::WorkingSet { max_pages, periods }
                | PrefetchConfig::Combined {
                    max_pages, periods, ..
                } if !pe.requests.is_empty() => Some((max_pages, periods)),
                _ => None,
            };
            let ws: &[u64] = match key {
                None => &[],
                Some(k) => {
                    let i = match sets.iter().position(|(x, _)| *x == k) {
                        Some(i) => i,
                        None => {
                            // = c.first_wake(history.periods()), faster
                            let (max, periods) = (k.0 as usize, k.1 as usize);
                            sets.push((k, crate::ws::working_set(history.periods(), periods, max)));
                            sets.len() - 1
                        }
                    };
                    &sets[i].1
                }
            };
            fetch::fetches(pe, c.group_pages(), setup.total_pages, ws, present)
        })
        .collect()
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
