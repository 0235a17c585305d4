//! The opening exchange: `Hello` from the connecting side, `Welcome` or an
//! `Error` from the accepting side.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::messages::{ErrorCode, Hello, Message, Role, Welcome};
use crate::{Transport, WireError, MAGIC, PROTOCOL_MAJOR, PROTOCOL_MINOR};

/// How long an accepting side waits for the first frame.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The connecting side's half: sends `Hello`, expects `Welcome`.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    transport: &mut Transport<S>,
    role: Role,
    host: &str,
) -> Result<Welcome, WireError> {
    let hello = Hello {
        magic: MAGIC,
        major: PROTOCOL_MAJOR,
        minor: PROTOCOL_MINOR,
        role,
        host: host.into(),
    };
    match transport
        .request(&Message::Hello(hello), HELLO_TIMEOUT)
        .await?
    {
        Message::Welcome(w) if w.major == PROTOCOL_MAJOR => {
            transport.set_minor(w.minor.min(PROTOCOL_MINOR));
            Ok(w)
        }
        Message::Welcome(w) => Err(WireError::Version {
            ours: PROTOCOL_MAJOR,
            theirs: w.major,
        }),
        other => Err(WireError::Unexpected {
            expected: "Welcome",
            got: other.kind(),
        }),
    }
}

/// Checks a `Hello` against our version and the roles allowed on this
/// listener. Pure: returns the reply to send and whether to go on.
pub fn judge_hello(
    msg: &Message,
    allowed: &[Role],
    host: &str,
) -> Result<(Hello, Message), Box<(WireError, Message)>> {
    let hello = match msg {
        Message::Hello(h) => h,
        other => {
            let err = WireError::Unexpected {
                expected: "Hello",
                got: other.kind(),
            };
            let reply = Message::error(
                ErrorCode::BadRequest,
                format!("expected Hello, got {}", other.kind()),
            );
            return Err(Box::new((err, reply)));
        }
    };
    if hello.magic != MAGIC || hello.major != PROTOCOL_MAJOR {
        let err = WireError::Version {
            ours: PROTOCOL_MAJOR,
            theirs: hello.major,
        };
        let reply = Message::error(
            ErrorCode::VersionMismatch,
            format!(
                "this host speaks jettison protocol {PROTOCOL_MAJOR}.x, peer sent {}.{}",
                hello.major, hello.minor
            ),
        );
        return Err(Box::new((err, reply)));
    }
    if !allowed.contains(&hello.role) {
        let err = WireError::Refused(format!("role {:?} not accepted here", hello.role));
        let reply = Message::error(
            ErrorCode::NotAllowed,
            format!("role {:?} is not accepted on this port", hello.role),
        );
        return Err(Box::new((err, reply)));
    }
    // The lower minor is in force.
    let minor = hello.minor.min(PROTOCOL_MINOR);
    let welcome = Welcome {
        major: PROTOCOL_MAJOR,
        minor,
        host: host.into(),
    };
    Ok((hello.clone(), Message::Welcome(welcome)))
}

/// The accepting side's half: waits for `Hello`, answers `Welcome` or an
/// error (after which the caller closes the connection).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    transport: &mut Transport<S>,
    allowed: &[Role],
    host: &str,
) -> Result<Hello, WireError> {
    let first = match transport.recv_within(HELLO_TIMEOUT).await {
        Ok(m) => m,
        Err(e @ WireError::Malformed(_)) => {
            let _ = transport
                .send(&Message::error(ErrorCode::BadRequest, e.to_string()))
                .await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    match judge_hello(&first, allowed, host) {
        Ok((hello, reply)) => {
            transport.send(&reply).await?;
            transport.set_minor(hello.minor.min(PROTOCOL_MINOR));
            Ok(hello)
        }
        Err(refusal) => {
            let (err, reply) = *refusal;
            let _ = transport.send(&reply).await;
            Err(err)
        }
    }
}
