//! The HTTP listener: `GET /metrics` answers the registry as OpenMetrics
//! text; a daemon may add routes of its own (the server's dashboard).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What can go wrong with the listener.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("metrics listener on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The registry as OpenMetrics text (ending in `# EOF`).
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// Binds the listener (at start-up, so that a taken port stops the daemon
/// with a clear reason).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

async fn metrics(registry: Arc<Registry>) -> Response {
    match encode(&registry) {
        Ok(text) => ([(CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `GET /metrics` from `registry`, and the routes of `extra`, on
/// `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, extra: Router) {
    let addr = listener.local_addr().ok();
    let app = Router::new()
        .route("/metrics", get(move || metrics(registry.clone())))
        .merge(extra);
    tracing::info!(listen = ?addr, "metrics listener up");
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics listener failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain HTTP/1.1 GET over a real socket.
    async fn http_get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn metrics_are_served_over_http() {
        let m = crate::AgentMetrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        m.served(2, 8192);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let extra = Router::new().route("/hello", get(|| async { "hi" }));
        let task = tokio::spawn(serve(listener, Arc::new(r), extra));
        let reply = http_get(addr, "/metrics").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(
            reply.contains("content-type: application/openmetrics-text"),
            "{reply}"
        );
        assert!(
            reply.contains("\njettison_agent_pages_served_total 2\n"),
            "{reply}"
        );
        assert!(
            reply.contains("\njettison_agent_served_bytes_total 8192\n"),
            "{reply}"
        );
        m.served(1, 4096);
        assert!(http_get(addr, "/metrics")
            .await
            .contains("\njettison_agent_pages_served_total 3\n"));
        assert!(http_get(addr, "/hello").await.ends_with("hi"));
        assert!(http_get(addr, "/nothing").await.starts_with("HTTP/1.1 404"));
        task.abort();
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let first = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = first.local_addr().unwrap();
        let e = bind(addr).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("metrics listener on {addr}: ")),
            "{e}"
        );
    }
}
