//! The offline optimum of a period in the agent's model ([`crate::cost`]):
//! it knows every miss and sleeps through exactly the stretches that pay
//! off, which makes it a lower bound of every online policy, whatever its
//! decision tick.
//!
//! Why the search below is exhaustive: a schedule's joules are `P_i` over
//! the period less each sleep cycle's saving. A cycle from `t` woken by the
//! miss at `r >= t + L_s` saves more the earlier `t` is, and ends at
//! `r + L_r` whatever `t`; one woken by a miss during its suspend saves a
//! constant and ends `L_s + L_r` after `t`, so starting it earlier keeps the
//! following cycles possible. So some optimal schedule starts every sleep
//! at an *awake point*: the period's start, a miss served awake, or the end
//! of a wake; from each the choice is to sleep there or to stay up until the
//! next miss. Dynamic programming over those points in time order, with
//! "woken for pages" (which pays the rest of the resume at the user's
//! return) kept apart from "fully resumed".

use std::collections::VecDeque;

use jettison_power_model::PowerProfile;

use crate::cost::{gap_j, page_cycle, Wakes};
use crate::report::Outcome;
use crate::trace::Span;

/// Joules so far, sleeps, wakes by a miss, delayed requests.
#[derive(Clone, Copy, Debug)]
struct Best {
    j: f64,
    sleeps: u64,
    woken: u64,
    delayed: u64,
}

const NONE: Best = Best {
    j: f64::INFINITY,
    sleeps: 0,
    woken: 0,
    delayed: 0,
};

fn better(a: Best, b: Best) -> Best {
    if b.j < a.j {
        b
    } else {
        a
    }
}

/// The offline optimum of a period whose first sleep cannot start before
/// `durable_ms` (the memory copy, which the oracle starts at once): the
/// desktop idles until then, serving the misses, and the optimum of the
/// rest of the period follows.
pub(crate) fn oracle_period_after_copy(
    p: &PowerProfile,
    wakes: &Wakes,
    span: Span,
    misses: &[u64],
    durable_ms: u64,
    out: &mut Outcome,
) -> f64 {
    let s = span.start_ms.saturating_add(durable_ms).min(span.end_ms);
    let idle = p.desktop.idle_w * (s - span.start_ms) as f64 / 1000.0;
    if s >= span.end_ms {
        return idle;
    }
    let rest = Span {
        start_ms: s,
        end_ms: span.end_ms,
    };
    let k = misses.partition_point(|&m| m <= s);
    idle + oracle_period(p, wakes, rest, &misses[k..], out)
}

/// The offline optimum of a period with fetch events at `misses` (sorted).
/// Returns its joules and counts its sleeps and delayed requests.
pub(crate) fn oracle_period(
    p: &PowerProfile,
    wakes: &Wakes,
    span: Span,
    misses: &[u64],
    out: &mut Outcome,
) -> f64 {
    let (start, end) = (span.start_ms, span.end_ms);
    let n = misses.partition_point(|&m| m < end);
    let misses = &misses[..n];
    let idle_w = p.desktop.idle_w;
    // per miss index (first of its time): awake when it came, [full, woken]
    let mut at_miss = vec![[NONE; 2]; n];
    // wake ends in time order: (time, best), woken for pages
    let mut woken: VecDeque<(u64, Best)> = VecDeque::new();
    let mut done = NONE;
    // the period's start: awake, fully resumed
    let mut frontier = Some((start, [Best { j: 0.0, ..NONE }, NONE]));
    let mut i = 0usize;
    while let Some((a, states)) = frontier.take() {
        let k = misses.partition_point(|&m| m <= a);
        for (serving, b) in states.into_iter().enumerate() {
            if !b.j.is_finite() {
                continue;
            }
            match misses.get(k) {
                Some(&r) => {
                    // stay up until the next miss
                    let stay = Best {
                        j: b.j + idle_w * (r - a) as f64 / 1000.0,
                        ..b
                    };
                    at_miss[k][serving] = better(at_miss[k][serving], stay);
                    // or sleep now, woken by it
                    let (j, back) = page_cycle(p, wakes, a, r);
                    let waited = misses[k..].partition_point(|&m| m <= back) as u64;
                    let slept = Best {
                        j: b.j + j,
                        sleeps: b.sleeps + 1,
                        woken: b.woken + 1,
                        delayed: b.delayed + waited,
                    };
                    if back >= end {
                        done = better(
                            done,
                            Best {
                                j: slept.j + wakes.rest_j,
                                ..slept
                            },
                        );
                    } else {
                        match woken.back_mut() {
                            Some((t, w)) if *t == back => *w = better(*w, slept),
                            _ => woken.push_back((back, slept)),
                        }
                    }
                }
                None => {
                    // stay up until the user's return, or sleep until then
                    let mut stay = b.j + idle_w * (end - a) as f64 / 1000.0;
                    if serving == 1 {
                        // optimistic (the wake may be more recent than `a`)
                        stay += wakes.rest_j - idle_w * wakes.rest.latency_ms as f64 / 1000.0;
                    }
                    done = better(done, Best { j: stay, ..b });
                    let slept = Best {
                        j: b.j + gap_j(p, end - a, Some(0), &p.resume),
                        sleeps: b.sleeps + 1,
                        ..b
                    };
                    done = better(done, slept);
                }
            }
        }
        // the next awake point in time order: a miss or a wake's end
        while i < n && (i > 0 && misses[i - 1] == misses[i]) {
            i += 1;
        }
        let next_miss = (i < n).then(|| misses[i]);
        let next_wake = woken.front().map(|w| w.0);
        let miss_first = match (next_miss, next_wake) {
            (Some(m), Some(w)) => m <= w,
            (m, _) => m.is_some(),
        };
        frontier = match (next_miss, next_wake) {
            (Some(m), _) if miss_first => {
                let s = at_miss[i];
                i += 1;
                Some((m, s))
            }
            (_, Some(_)) => {
                let (t, b) = woken.pop_front().expect("a wake end");
                let serving = usize::from(wakes.rest_j > 0.0);
                let mut s = [NONE; 2];
                s[serving] = b;
                Some((t, s))
            }
            _ => None,
        };
    }
    out.sleeps += done.sleeps;
    out.page_wakes += done.woken;
    out.delayed_requests += done.delayed;
    done.j
}
