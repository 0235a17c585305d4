//! The serial console tap: guest lines go to a log file (with host timestamps) and to
//! subscribers.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::broadcast;

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Reads the serial socket until it closes; each complete line (without `\r\n`) is
/// appended to `log` as `"<ms> <line>\n"` and sent on `tx`.
pub(crate) async fn tap(
    mut sock: UnixStream,
    log: Option<PathBuf>,
    name: String,
    tx: broadcast::Sender<String>,
) {
    let mut file = match &log {
        Some(p) => match tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .await
        {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(vm = %name, path = %p.display(), "cannot open console log: {e}");
                None
            }
        },
        None => None,
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            emit(&mut file, &name, &tx, line).await;
        }
    }
    if !buf.is_empty() {
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches('\r')
            .to_string();
        emit(&mut file, &name, &tx, line).await;
    }
    if let Some(f) = &mut file {
        let _ = f.flush().await;
    }
    tracing::debug!(vm = %name, "serial console closed");
}

async fn emit(
    file: &mut Option<tokio::fs::File>,
    name: &str,
    tx: &broadcast::Sender<String>,
    line: String,
) {
    tracing::debug!(target: "qemu::console", vm = %name, "{line}");
    if let Some(f) = file {
        let rec = format!("{} {}\n", unix_ms(), line);
        let r = match f.write_all(rec.as_bytes()).await {
            Ok(()) => f.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(vm = %name, "console log write failed: {e}");
        }
    }
    let _ = tx.send(line);
}
