//! The Linux backend's watchers on logind's signals: the seat's active
//! session and its idle hint (the user's presence), and `PrepareForSleep`
//! (suspends, ours or not, and their resumes).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tracing::{info, warn};

use crate::linux_backend::{Shared, WHO};
use crate::logind::{session_info, Logind, SessionProxy};
use crate::logind_policy::{presence_session, Presence};
use crate::PowerError;

/// The next item of `s`, or never if there is no stream.
async fn next_of<S: Stream + Unpin>(s: &mut Option<S>) -> Option<S::Item> {
    match s {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Follows the seat's active session (or the configured one) and its idle
/// hint for as long as the backend lives, starting again after an error.
pub(crate) async fn watch_presence(logind: Logind, shared: Arc<Shared>) {
    loop {
        if let Err(e) = follow_sessions(&logind, &shared).await {
            warn!("following logind's sessions: {e}; again in 5 s");
        }
        shared.set_session(None);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn follow_sessions(logind: &Logind, shared: &Shared) -> Result<(), PowerError> {
    let fixed = shared.config.session.clone();
    let seat = match &fixed {
        Some(_) => None,
        None => Some(logind.seat(&shared.config.seat).await?),
    };
    let mut seat_changes = match &seat {
        Some(s) => Some(s.receive_active_session_changed().await),
        None => None,
    };
    loop {
        let path = match (&fixed, &seat) {
            (Some(id), _) => Some(logind.session_path(id).await?),
            (None, Some(seat)) => {
                let (id, path) = seat
                    .active_session()
                    .await
                    .map_err(|e| PowerError::Logind(format!("seat ActiveSession: {e}")))?;
                (!id.is_empty()).then_some(path)
            }
            (None, None) => None,
        };
        let session = match path {
            Some(p) => Some(logind.session(p, true).await?),
            None => None,
        };
        let info = match &session {
            Some(s) => Some(session_info(s).await?),
            None => None,
        };
        // A configured session is watched whatever its class.
        let watched = if fixed.is_some() {
            info.as_ref()
        } else {
            presence_session(info.as_ref())
        };
        match watched {
            Some(i) => {
                info!(session = %i.id, user = %i.user, kind = %i.kind, seat = %shared.config.seat, "presence session");
                shared.set_session(Some((
                    i.id.clone(),
                    Presence::from_hint(i.idle, i.idle_since_monotonic_us),
                )));
            }
            None => {
                if let Some(i) = &info {
                    info!(session = %i.id, class = %i.class, kind = %i.kind, "the seat's active session is not a user's graphical one");
                }
                shared.set_session(None);
            }
        }
        let session = session.filter(|_| watched.is_some());
        let (mut idle, mut since) = match &session {
            Some(s) => (
                Some(s.receive_idle_hint_changed().await),
                Some(s.receive_idle_since_hint_monotonic_changed().await),
            ),
            None => (None, None),
        };
        loop {
            tokio::select! {
                c = next_of(&mut seat_changes) => {
                    if c.is_none() {
                        return Err(PowerError::Logind("the seat's change stream ended".into()));
                    }
                    break;
                }
                Some(_) = next_of(&mut idle) => {}
                Some(_) = next_of(&mut since) => {}
            }
            if let Some(s) = &session {
                shared.set_presence(read_presence(s).await?);
            }
        }
    }
}

async fn read_presence(s: &SessionProxy<'_>) -> Result<Presence, PowerError> {
    let idle = s
        .idle_hint()
        .await
        .map_err(|e| PowerError::Logind(format!("session IdleHint: {e}")))?;
    let since = s
        .idle_since_hint_monotonic()
        .await
        .map_err(|e| PowerError::Logind(format!("session IdleSinceHintMonotonic: {e}")))?;
    Ok(Presence::from_hint(idle, since))
}

/// Subscribes to `PrepareForSleep`; the returned future handles it for as
/// long as the backend lives.
pub(crate) async fn watch_sleep(
    logind: Logind,
    shared: Arc<Shared>,
) -> Result<impl std::future::Future<Output = ()> + Send, PowerError> {
    let mut stream = logind
        .manager()
        .receive_prepare_for_sleep()
        .await
        .map_err(|e| PowerError::Logind(format!("subscribing to PrepareForSleep: {e}")))?;
    Ok(async move {
        while let Some(signal) = stream.next().await {
            let start = match signal.args() {
                Ok(a) => a.start,
                Err(e) => {
                    warn!("a PrepareForSleep signal without its argument: {e}");
                    continue;
                }
            };
            let ours = shared.ours.load(Ordering::Acquire);
            if start {
                let delay = shared
                    .delay
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if ours {
                    info!("logind prepares the suspend we asked for: delay inhibitor released");
                    drop(delay);
                } else {
                    warn!("logind prepares a suspend this agent did not ask for: finishing work under the delay inhibitor");
                    shared.external_sleep_starts(delay);
                }
                shared.sleeps.send_modify(|(s, _)| *s += 1);
            } else {
                info!(ours, "resumed (PrepareForSleep false)");
                match logind
                    .inhibit_sleep(WHO, "to tell its server before the desktop sleeps", "delay")
                    .await
                {
                    Ok(l) => *shared.delay.lock().unwrap_or_else(|p| p.into_inner()) = Some(l),
                    Err(e) => warn!("the delay inhibitor cannot be taken again: {e}"),
                }
                if !ours {
                    shared.external_sleep_ends();
                }
                shared.sleeps.send_modify(|(_, r)| *r += 1);
            }
        }
        warn!("logind's PrepareForSleep stream ended");
    })
}
