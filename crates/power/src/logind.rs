//! systemd-logind over D-Bus (`zbus`): the Manager, Seat and Session
//! objects the Linux backend reads, the inhibitor locks it takes, and the
//! suspend it asks for. Judging what it reads is pure code in
//! [`crate::logind_policy`].
//!
//! The bus is the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, which zbus honours,
//! else `/run/dbus/system_bus_socket`) or the address set in the
//! configuration; the tests point it at a private `dbus-daemon` with a mock
//! logind (`jettison-logind-mock`).

use zbus::zvariant::{OwnedFd, OwnedObjectPath};
use zbus::{proxy, Connection};

use crate::logind_policy::{Inhibitor, SessionInfo};
use crate::PowerError;

/// logind's bus name.
pub const LOGIND: &str = "org.freedesktop.login1";

/// `org.freedesktop.login1.Manager`.
#[proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
pub trait Manager {
    /// The object of session `session_id`.
    fn get_session(&self, session_id: &str) -> zbus::Result<OwnedObjectPath>;
    /// The object of seat `seat_id`.
    fn get_seat(&self, seat_id: &str) -> zbus::Result<OwnedObjectPath>;
    /// Sessions: id, uid, user, seat, object.
    fn list_sessions(&self) -> zbus::Result<Vec<(String, u32, String, String, OwnedObjectPath)>>;
    /// Inhibitor locks: what, who, why, mode, uid, pid.
    fn list_inhibitors(&self) -> zbus::Result<Vec<(String, String, String, String, u32, u32)>>;
    /// Takes an inhibitor lock, held as long as the returned descriptor is
    /// open.
    fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> zbus::Result<OwnedFd>;
    /// Suspends the system.
    fn suspend(&self, interactive: bool) -> zbus::Result<()>;
    /// Sent before a suspend (`true`) and after the resume (`false`).
    #[zbus(signal)]
    fn prepare_for_sleep(&self, start: bool) -> zbus::Result<()>;
}

/// `org.freedesktop.login1.Seat`.
#[proxy(
    interface = "org.freedesktop.login1.Seat",
    default_service = "org.freedesktop.login1"
)]
pub trait Seat {
    /// The seat's foreground session: id and object (empty id: none).
    #[zbus(property)]
    fn active_session(&self) -> zbus::Result<(String, OwnedObjectPath)>;
}

/// `org.freedesktop.login1.Session`.
#[proxy(
    interface = "org.freedesktop.login1.Session",
    default_service = "org.freedesktop.login1"
)]
pub trait Session {
    /// `Id`.
    #[zbus(property)]
    fn id(&self) -> zbus::Result<String>;
    /// `Name`: the user.
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    /// `Class`.
    #[zbus(property)]
    fn class(&self) -> zbus::Result<String>;
    /// `Type`.
    #[zbus(property, name = "Type")]
    fn kind(&self) -> zbus::Result<String>;
    /// `Remote`.
    #[zbus(property)]
    fn remote(&self) -> zbus::Result<bool>;
    /// `RemoteHost`.
    #[zbus(property)]
    fn remote_host(&self) -> zbus::Result<String>;
    /// `State`.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    /// `IdleHint`.
    #[zbus(property)]
    fn idle_hint(&self) -> zbus::Result<bool>;
    /// `IdleSinceHintMonotonic`.
    #[zbus(property)]
    fn idle_since_hint_monotonic(&self) -> zbus::Result<u64>;
}

fn dbus_error(what: &str) -> impl FnOnce(zbus::Error) -> PowerError + '_ {
    move |e| PowerError::Logind(format!("{what}: {e}"))
}

/// An inhibitor lock: held until dropped (its descriptor closed).
#[derive(Debug)]
pub struct InhibitLock {
    _fd: OwnedFd,
    mode: &'static str,
}

impl Drop for InhibitLock {
    fn drop(&mut self) {
        tracing::debug!(mode = self.mode, "sleep inhibitor released");
    }
}

/// A connection to logind.
#[derive(Clone, Debug)]
pub struct Logind {
    conn: Connection,
    manager: ManagerProxy<'static>,
}

impl Logind {
    /// Connects to the bus at `address` (the system bus if `None`) and
    /// checks that logind answers there; a clear error otherwise.
    pub async fn connect(address: Option<&str>) -> Result<Self, PowerError> {
        let shown = address.map_or_else(
            || {
                std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                    .unwrap_or_else(|_| "the system bus".to_owned())
            },
            str::to_owned,
        );
        let builder = match address {
            Some(a) => zbus::connection::Builder::address(a),
            None => zbus::connection::Builder::system(),
        };
        let conn = builder
            .map_err(dbus_error(&format!("the D-Bus address {shown}")))?
            .build()
            .await
            .map_err(|e| {
                PowerError::Logind(format!(
                    "cannot connect to the D-Bus system bus ({shown}): {e}"
                ))
            })?;
        let manager = ManagerProxy::new(&conn)
            .await
            .map_err(dbus_error("logind's Manager"))?;
        if let Err(e) = manager.list_inhibitors().await {
            let missing = matches!(&e, zbus::Error::MethodError(name, ..)
                if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                    || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner");
            return Err(PowerError::Logind(if missing {
                format!("systemd-logind ({LOGIND}) is not on the bus {shown}: is it running? ({e})")
            } else {
                format!("logind on {shown} does not answer ListInhibitors: {e}")
            }));
        }
        Ok(Self { conn, manager })
    }

    /// The Manager.
    pub fn manager(&self) -> &ManagerProxy<'static> {
        &self.manager
    }

    /// The seat `seat_id`'s object.
    pub async fn seat(&self, seat_id: &str) -> Result<SeatProxy<'static>, PowerError> {
        let path = self
            .manager
            .get_seat(seat_id)
            .await
            .map_err(dbus_error(&format!("GetSeat({seat_id})")))?;
        SeatProxy::builder(&self.conn)
            .path(path)
            .map_err(dbus_error("seat object"))?
            .build()
            .await
            .map_err(dbus_error("seat object"))
    }

    /// The session object at `path` (its properties cached and kept up to
    /// date from logind's change signals when `watch`).
    pub async fn session(
        &self,
        path: OwnedObjectPath,
        watch: bool,
    ) -> Result<SessionProxy<'static>, PowerError> {
        let cache = if watch {
            zbus::proxy::CacheProperties::Yes
        } else {
            zbus::proxy::CacheProperties::No
        };
        SessionProxy::builder(&self.conn)
            .path(path)
            .map_err(dbus_error("session object"))?
            .cache_properties(cache)
            .build()
            .await
            .map_err(dbus_error("session object"))
    }

    /// The object of session `id`.
    pub async fn session_path(&self, id: &str) -> Result<OwnedObjectPath, PowerError> {
        self.manager
            .get_session(id)
            .await
            .map_err(dbus_error(&format!("GetSession({id})")))
    }

    /// Every session, with the properties the policy judges.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, PowerError> {
        let list = self
            .manager
            .list_sessions()
            .await
            .map_err(dbus_error("ListSessions"))?;
        let mut out = Vec::with_capacity(list.len());
        for (_, _, _, _, path) in list {
            let proxy = self.session(path, false).await?;
            out.push(session_info(&proxy).await?);
        }
        Ok(out)
    }

    /// The inhibitor locks held now.
    pub async fn inhibitors(&self) -> Result<Vec<Inhibitor>, PowerError> {
        Ok(self
            .manager
            .list_inhibitors()
            .await
            .map_err(dbus_error("ListInhibitors"))?
            .into_iter()
            .map(Inhibitor::from_tuple)
            .collect())
    }

    /// Takes a sleep inhibitor lock of `mode` (`delay` or `block`).
    pub async fn inhibit_sleep(
        &self,
        who: &str,
        why: &str,
        mode: &'static str,
    ) -> Result<InhibitLock, PowerError> {
        let fd = self
            .manager
            .inhibit("sleep", who, why, mode)
            .await
            .map_err(dbus_error(&format!("Inhibit(sleep, {mode})")))?;
        tracing::debug!(mode, "sleep inhibitor taken");
        Ok(InhibitLock { _fd: fd, mode })
    }

    /// `Manager.Suspend(false)`: logind queues the suspend and returns.
    pub async fn suspend(&self) -> Result<(), PowerError> {
        self.manager
            .suspend(false)
            .await
            .map_err(dbus_error("Suspend"))
    }
}

/// A session's properties, read now.
pub async fn session_info(s: &SessionProxy<'_>) -> Result<SessionInfo, PowerError> {
    let e = |what| dbus_error(what);
    Ok(SessionInfo {
        id: s.id().await.map_err(e("session Id"))?,
        user: s.name().await.map_err(e("session Name"))?,
        class: s.class().await.map_err(e("session Class"))?,
        kind: s.kind().await.map_err(e("session Type"))?,
        remote: s.remote().await.map_err(e("session Remote"))?,
        remote_host: s.remote_host().await.map_err(e("session RemoteHost"))?,
        state: s.state().await.map_err(e("session State"))?,
        idle: s.idle_hint().await.map_err(e("session IdleHint"))?,
        idle_since_monotonic_us: s
            .idle_since_hint_monotonic()
            .await
            .map_err(e("session IdleSinceHintMonotonic"))?,
    })
}
