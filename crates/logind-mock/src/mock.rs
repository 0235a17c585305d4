//! The mock logind: `org.freedesktop.login1` with a Manager
//! (`GetSession`, `GetSeat`, `ListSessions`, `ListInhibitors`, `Inhibit`,
//! `Suspend`, the `PrepareForSleep` signal), `seat0` (`ActiveSession`) and
//! sessions (`Id`, `Name`, `Class`, `Type`, `Remote`, `RemoteHost`,
//! `State`, `IdleHint`, `IdleSinceHintMonotonic`), with property-change
//! signals as logind sends them. An inhibitor lock is one end of a socket
//! pair handed to the caller; it is held until the caller closes it, as
//! with logind's FIFO.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zbus::{fdo, interface, Connection};

const MANAGER: &str = "/org/freedesktop/login1";
const SEAT0: &str = "/org/freedesktop/login1/seat/seat0";
/// How long a suspend waits for delay inhibitors (logind's default
/// `InhibitDelayMaxSec`).
const DELAY_MAX: Duration = Duration::from_secs(5);

/// A session to create.
#[derive(Clone, Debug, Default)]
pub struct SessionSpec {
    /// `Id` (letters and digits).
    pub id: String,
    /// `Name`.
    pub user: String,
    /// `Class`.
    pub class: String,
    /// `Type`.
    pub kind: String,
    /// `Remote`.
    pub remote: bool,
    /// `RemoteHost`.
    pub remote_host: String,
    /// `IdleHint`.
    pub idle: bool,
    /// `IdleSinceHintMonotonic`.
    pub idle_since_us: u64,
}

impl SessionSpec {
    /// A user's session of type `kind` (`wayland`, `tty` ...).
    pub fn user(id: &str, kind: &str) -> Self {
        Self {
            id: id.into(),
            user: "ann".into(),
            class: "user".into(),
            kind: kind.into(),
            ..Self::default()
        }
    }

    /// An ssh session from `host`.
    pub fn ssh(id: &str, host: &str) -> Self {
        Self {
            remote: true,
            remote_host: host.into(),
            user: "admin".into(),
            ..Self::user(id, "tty")
        }
    }
}

fn session_path(id: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("/org/freedesktop/login1/session/_{id}"))
        .expect("session ids are letters and digits")
}

struct Held {
    id: u64,
    what: String,
    who: String,
    why: String,
    mode: String,
    uid: u32,
    pid: u32,
}

#[derive(Default)]
struct State {
    log: Vec<String>,
    inhibitors: Vec<Held>,
    next_inhibitor: u64,
    sessions: BTreeMap<String, SessionSpec>,
}

type Shared = Arc<Mutex<State>>;

fn note(state: &Shared, line: impl Into<String>) {
    state.lock().expect("mock state").log.push(line.into());
}

struct Manager {
    state: Shared,
}

#[interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    fn get_session(&self, session_id: String) -> fdo::Result<OwnedObjectPath> {
        note(&self.state, format!("GetSession({session_id})"));
        if self
            .state
            .lock()
            .expect("mock state")
            .sessions
            .contains_key(&session_id)
        {
            Ok(session_path(&session_id))
        } else {
            Err(fdo::Error::Failed(format!(
                "No session '{session_id}' known"
            )))
        }
    }

    fn get_seat(&self, seat_id: String) -> fdo::Result<OwnedObjectPath> {
        note(&self.state, format!("GetSeat({seat_id})"));
        if seat_id == "seat0" {
            Ok(OwnedObjectPath::try_from(SEAT0).expect("seat path"))
        } else {
            Err(fdo::Error::Failed(format!("No seat '{seat_id}' known")))
        }
    }

    fn list_sessions(&self) -> Vec<(String, u32, String, String, OwnedObjectPath)> {
        let mut s = self.state.lock().expect("mock state");
        s.log.push("ListSessions".into());
        s.sessions
            .values()
            .map(|x| {
                let seat = if x.remote { "" } else { "seat0" };
                (
                    x.id.clone(),
                    1000,
                    x.user.clone(),
                    seat.into(),
                    session_path(&x.id),
                )
            })
            .collect()
    }

    fn list_inhibitors(&self) -> Vec<(String, String, String, String, u32, u32)> {
        let mut s = self.state.lock().expect("mock state");
        s.log.push("ListInhibitors".into());
        s.inhibitors
            .iter()
            .map(|h| {
                (
                    h.what.clone(),
                    h.who.clone(),
                    h.why.clone(),
                    h.mode.clone(),
                    h.uid,
                    h.pid,
                )
            })
            .collect()
    }

    async fn inhibit(
        &self,
        what: String,
        who: String,
        why: String,
        mode: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<zbus::zvariant::OwnedFd> {
        if mode != "block" && mode != "delay" {
            return Err(fdo::Error::InvalidArgs(format!("mode {mode}")));
        }
        let pid = match header.sender() {
            Some(sender) => fdo::DBusProxy::new(conn)
                .await?
                .get_connection_unix_process_id(sender.clone().into())
                .await
                .unwrap_or(0),
            None => 0,
        };
        let (theirs, ours) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| fdo::Error::IOError(e.to_string()))?;
        ours.set_nonblocking(true)
            .map_err(|e| fdo::Error::IOError(e.to_string()))?;
        let mut ours = tokio::net::UnixStream::from_std(ours)
            .map_err(|e| fdo::Error::IOError(e.to_string()))?;
        let id = {
            let mut s = self.state.lock().expect("mock state");
            s.log.push(format!("Inhibit({what},{who},{mode})"));
            s.next_inhibitor += 1;
            let id = s.next_inhibitor;
            s.inhibitors.push(Held {
                id,
                what,
                who: who.clone(),
                why,
                mode: mode.clone(),
                uid: 0,
                pid,
            });
            id
        };
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 16];
            while matches!(ours.read(&mut buf).await, Ok(n) if n > 0) {}
            let mut s = state.lock().expect("mock state");
            s.inhibitors.retain(|h| h.id != id);
            s.log.push(format!("Released({who},{mode})"));
        });
        Ok(OwnedFd::from(theirs).into())
    }

    async fn suspend(
        &self,
        interactive: bool,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        note(&self.state, format!("Suspend({interactive})"));
        let blocked = self
            .state
            .lock()
            .expect("mock state")
            .inhibitors
            .iter()
            .any(|h| h.mode == "block" && h.what.split(':').any(|w| w == "sleep"));
        if blocked {
            return Err(fdo::Error::AccessDenied(
                "Operation denied due to active block inhibitor".into(),
            ));
        }
        tokio::spawn(sleep_cycle(conn.clone(), self.state.clone()));
        Ok(())
    }

    #[zbus(signal)]
    async fn prepare_for_sleep(emitter: &SignalEmitter<'_>, start: bool) -> zbus::Result<()>;
}

/// A suspend as logind runs it: `PrepareForSleep(true)`, wait for the
/// delay inhibitors (at most `DELAY_MAX`), "sleep", `PrepareForSleep(false)`.
async fn sleep_cycle(conn: Connection, state: Shared) {
    let emitter = SignalEmitter::new(&conn, MANAGER).expect("manager path");
    note(&state, "PrepareForSleep(true)");
    let _ = Manager::prepare_for_sleep(&emitter, true).await;
    let deadline = Instant::now() + DELAY_MAX;
    loop {
        let delayed = state
            .lock()
            .expect("mock state")
            .inhibitors
            .iter()
            .any(|h| h.mode == "delay" && h.what.split(':').any(|w| w == "sleep"));
        if !delayed {
            break;
        }
        if Instant::now() >= deadline {
            note(&state, "DelayTimeout");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    note(&state, "Slept");
    note(&state, "PrepareForSleep(false)");
    let _ = Manager::prepare_for_sleep(&emitter, false).await;
}

struct Seat {
    active: (String, OwnedObjectPath),
}

#[interface(name = "org.freedesktop.login1.Seat")]
impl Seat {
    #[zbus(property)]
    fn active_session(&self) -> (String, OwnedObjectPath) {
        self.active.clone()
    }
}

struct Session {
    spec: SessionSpec,
}

#[interface(name = "org.freedesktop.login1.Session")]
impl Session {
    #[zbus(property)]
    fn id(&self) -> String {
        self.spec.id.clone()
    }
    #[zbus(property)]
    fn name(&self) -> String {
        self.spec.user.clone()
    }
    #[zbus(property)]
    fn class(&self) -> String {
        self.spec.class.clone()
    }
    #[zbus(property, name = "Type")]
    fn kind(&self) -> String {
        self.spec.kind.clone()
    }
    #[zbus(property)]
    fn remote(&self) -> bool {
        self.spec.remote
    }
    #[zbus(property)]
    fn remote_host(&self) -> String {
        self.spec.remote_host.clone()
    }
    #[zbus(property)]
    fn state(&self) -> String {
        "active".into()
    }
    #[zbus(property)]
    fn idle_hint(&self) -> bool {
        self.spec.idle
    }
    #[zbus(property)]
    fn idle_since_hint_monotonic(&self) -> u64 {
        self.spec.idle_since_us
    }
}

/// A mock logind serving on a bus until dropped.
#[derive(Clone)]
pub struct MockLogind {
    conn: Connection,
    state: Shared,
}

impl std::fmt::Debug for MockLogind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockLogind").finish_non_exhaustive()
    }
}

impl MockLogind {
    /// Serves `org.freedesktop.login1` on the bus at `address`, with
    /// `seat0` and no session.
    pub async fn start(address: &str) -> zbus::Result<Self> {
        let state = Shared::default();
        let none = OwnedObjectPath::try_from("/").expect("root path");
        let conn = zbus::connection::Builder::address(address)?
            .name("org.freedesktop.login1")?
            .serve_at(
                MANAGER,
                Manager {
                    state: state.clone(),
                },
            )?
            .serve_at(
                SEAT0,
                Seat {
                    active: (String::new(), none),
                },
            )?
            .build()
            .await?;
        Ok(Self { conn, state })
    }

    /// Every call and signal so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().expect("mock state").log.clone()
    }

    /// Waits (at most `limit`) until some line of the log is `line`.
    pub async fn wait_for(&self, line: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.log().iter().any(|l| l == line) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Creates a session (not active).
    pub async fn add_session(&self, spec: SessionSpec) -> zbus::Result<()> {
        let path = session_path(&spec.id);
        self.state
            .lock()
            .expect("mock state")
            .sessions
            .insert(spec.id.clone(), spec.clone());
        self.conn.object_server().at(path, Session { spec }).await?;
        Ok(())
    }

    /// Removes a session.
    pub async fn remove_session(&self, id: &str) -> zbus::Result<()> {
        self.state.lock().expect("mock state").sessions.remove(id);
        self.conn
            .object_server()
            .remove::<Session, _>(session_path(id))
            .await?;
        Ok(())
    }

    /// Makes `id` the seat's active session (`None`: no session), with the
    /// `PropertiesChanged` signal logind sends.
    pub async fn activate(&self, id: Option<&str>) -> zbus::Result<()> {
        let seat = self
            .conn
            .object_server()
            .interface::<_, Seat>(SEAT0)
            .await?;
        seat.get_mut().await.active = match id {
            Some(id) => (id.to_owned(), session_path(id)),
            None => (
                String::new(),
                OwnedObjectPath::from(ObjectPath::from_static_str_unchecked("/")),
            ),
        };
        let emitted = seat
            .get()
            .await
            .active_session_changed(seat.signal_emitter())
            .await;
        emitted
    }

    /// Sets session `id`'s idle hint, with the change signals.
    pub async fn set_idle(&self, id: &str, idle: bool, since_us: u64) -> zbus::Result<()> {
        let session = self
            .conn
            .object_server()
            .interface::<_, Session>(session_path(id))
            .await?;
        {
            let mut s = session.get_mut().await;
            s.spec.idle = idle;
            s.spec.idle_since_us = since_us;
        }
        let s = session.get().await;
        s.idle_hint_changed(session.signal_emitter()).await?;
        let emitted = s
            .idle_since_hint_monotonic_changed(session.signal_emitter())
            .await;
        emitted
    }

    /// A suspend nobody asked logind for through this bus (the lid, a
    /// menu): the same cycle as `Suspend`. Returns once resumed.
    pub async fn external_suspend(&self) {
        note(&self.state, "ExternalSuspend");
        sleep_cycle(self.conn.clone(), self.state.clone()).await;
    }
}
