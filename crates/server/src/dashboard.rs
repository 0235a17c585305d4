//! The dashboard, on the metrics listener: `/` (the page), `/api/dashboard`
//! (the same as JSON, for scripts and the operations demo) and
//! `/timeline/<desktop>` (that desktop's power timeline as SVG, the
//! demo's figure drawn from the server's view).

use std::sync::{Arc, Weak};

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jettison_metrics::ServerMetrics;
use jettison_power_model::PowerProfile;

use crate::dashboard_html::{DesktopRow, Page, VmLatency, VmRow};
use crate::Server;

/// How often the page reloads itself, seconds.
const REFRESH_S: u32 = 5;

#[derive(Clone)]
struct Ctx {
    server: Weak<Server>,
    metrics: ServerMetrics,
}

fn state_word(s: jettison_power_model::HostState) -> &'static str {
    use jettison_power_model::HostState::*;
    match s {
        Active => "awake (its VMs at home)",
        Idle => "awake (idle, its VM here)",
        Suspending => "going to sleep",
        Asleep => "asleep",
        Resuming => "waking",
    }
}

/// Gathers what the page shows.
async fn page(server: &Server, metrics: &ServerMetrics) -> Page {
    let now_ms = crate::fleet::now_ms();
    let fleet = server.handovers.fleet.desktops();
    let desktops = fleet
        .iter()
        .map(|(name, d)| DesktopRow {
            desktop: name.clone(),
            power: state_word(d.state()).into(),
            power_since_ms: d.since_ms(),
            vms: d
                .vms
                .iter()
                .map(|(vm, v)| VmRow {
                    vm: vm.clone(),
                    runs: v.placement.clone(),
                    since_ms: v.since_ms,
                })
                .collect(),
        })
        .collect();
    let mut latency = Vec::new();
    for (vm, slot) in server.handovers.slots() {
        let stats = slot.lock().await.files.memory.stats();
        latency.push(VmLatency {
            vm,
            fault_latency_us: stats.fault_latency_us,
            pages_fetched: stats.pages_fetched,
        });
    }
    latency.sort_by(|a, b| a.vm.cmp(&b.vm));
    let (faults, mean) = metrics.faults();
    Page {
        server: server.config.host.clone(),
        now_ms,
        desktops,
        days: crate::fleet::energy_per_day(&fleet, &PowerProfile::default(), now_ms),
        faults,
        fault_mean_ms: mean.as_secs_f64() * 1000.0,
        latency,
    }
}

async fn index(State(ctx): State<Ctx>) -> Response {
    match ctx.server.upgrade() {
        Some(s) => Html(crate::dashboard_html::render(
            &page(&s, &ctx.metrics).await,
            REFRESH_S,
        ))
        .into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn api(State(ctx): State<Ctx>) -> Response {
    match ctx.server.upgrade() {
        Some(s) => Json(page(&s, &ctx.metrics).await).into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn timeline(State(ctx): State<Ctx>, Path(desktop): Path<String>) -> Response {
    let Some(server) = ctx.server.upgrade() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Some(d) = server.handovers.fleet.desktops().remove(&desktop) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no desktop {desktop:?} here"),
        )
            .into_response();
    };
    let profile = PowerProfile::default();
    let input = jettison_plot::from_recorded(
        &format!("{desktop} as server {} sees it", server.config.host),
        &jettison_plot::Recorded {
            timeline: &d.timeline,
            profile: &profile,
            fetches: &d.fetches,
            from_ms: d.first_ms(),
            until_ms: crate::fleet::now_ms(),
        },
    );
    // Drawing takes a few ms of CPU: off the runtime's threads.
    match tokio::task::spawn_blocking(move || jettison_plot::render_svg_string(&input, 1100, 700))
        .await
    {
        Ok(Ok(svg)) => ([(CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The dashboard's routes, reading `server` (weakly: the listener never
/// keeps the server alive).
pub(crate) fn routes(server: &Arc<Server>) -> Router {
    let ctx = Ctx {
        server: Arc::downgrade(server),
        metrics: server.metrics.clone(),
    };
    Router::new()
        .route("/", get(index))
        .route("/api/dashboard", get(api))
        .route("/timeline/{desktop}", get(timeline))
        .with_state(ctx)
}
