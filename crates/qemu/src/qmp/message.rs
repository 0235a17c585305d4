//! Parsing of QMP messages coming from QEMU (pure, no I/O).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{QemuError, Result};

/// An asynchronous QMP event, e.g. `STOP`, `RESUME`, `MIGRATION`, `SHUTDOWN`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QmpEvent {
    /// Event name.
    pub event: String,
    /// Event payload (`Value::Null` if absent).
    #[serde(default)]
    pub data: Value,
    /// QEMU's timestamp (seconds, microseconds), if present.
    #[serde(default)]
    pub timestamp: Option<QmpTimestamp>,
}

/// Timestamp attached to QMP events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QmpTimestamp {
    /// Seconds since the epoch.
    pub seconds: i64,
    /// Microseconds.
    pub microseconds: i64,
}

/// One message received from the QMP socket.
#[derive(Clone, Debug, PartialEq)]
pub enum QmpMessage {
    /// The greeting sent on connect (`{"QMP": {...}}`).
    Greeting(Value),
    /// A successful reply.
    Return {
        /// Our request id (None if the request had none).
        id: Option<Value>,
        /// The `return` payload.
        value: Value,
    },
    /// An error reply.
    Error {
        /// Our request id.
        id: Option<Value>,
        /// Error class.
        class: String,
        /// Description.
        desc: String,
    },
    /// An asynchronous event.
    Event(QmpEvent),
}

impl QmpMessage {
    /// Parses one line (one JSON object) from QEMU.
    pub fn parse(line: &str) -> Result<QmpMessage> {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| QemuError::Protocol(format!("invalid JSON {line:?}: {e}")))?;
        let Value::Object(mut m) = v else {
            return Err(QemuError::Protocol(format!("not a JSON object: {line:?}")));
        };
        let id = m.remove("id");
        if let Some(g) = m.remove("QMP") {
            return Ok(QmpMessage::Greeting(g));
        }
        if let Some(value) = m.remove("return") {
            return Ok(QmpMessage::Return { id, value });
        }
        if let Some(err) = m.remove("error") {
            let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            return Ok(QmpMessage::Error {
                id,
                class: field("class"),
                desc: field("desc"),
            });
        }
        if m.contains_key("event") {
            let ev: QmpEvent = serde_json::from_value(Value::Object(m))
                .map_err(|e| QemuError::Protocol(format!("bad event {line:?}: {e}")))?;
            return Ok(QmpMessage::Event(ev));
        }
        Err(QemuError::Protocol(format!(
            "unknown QMP message: {line:?}"
        )))
    }
}

/// Builds the JSON line for a request (`{"execute":..,"arguments":..,"id":..}`).
/// `arguments` is omitted when `args` is `null` or an empty object.
pub fn request_line(name: &str, args: &Value, id: u64) -> String {
    let mut m = serde_json::Map::new();
    m.insert("execute".into(), Value::String(name.into()));
    let empty = match args {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        m.insert("arguments".into(), args.clone());
    }
    m.insert("id".into(), Value::from(id));
    let mut s = Value::Object(m).to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_greeting() {
        let m = QmpMessage::parse(r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}"#).unwrap();
        assert!(matches!(m, QmpMessage::Greeting(g) if g["version"]["qemu"]["major"] == 7));
    }

    #[test]
    fn parses_return_with_id() {
        let m = QmpMessage::parse(
            r#"{"return": {"status": "running", "singlestep": false, "running": true}, "id": 7}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            QmpMessage::Return {
                id: Some(json!(7)),
                value: json!({"status": "running", "singlestep": false, "running": true})
            }
        );
    }

    #[test]
    fn parses_error() {
        let m = QmpMessage::parse(
            r#"{"id": 3, "error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            QmpMessage::Error {
                id: Some(json!(3)),
                class: "CommandNotFound".into(),
                desc: "The command foo has not been found".into()
            }
        );
    }

    #[test]
    fn parses_event() {
        let m = QmpMessage::parse(
            r#"{"timestamp": {"seconds": 1700000000, "microseconds": 12}, "event": "MIGRATION", "data": {"status": "completed"}}"#,
        )
        .unwrap();
        let QmpMessage::Event(ev) = m else {
            panic!("not an event")
        };
        assert_eq!(ev.event, "MIGRATION");
        assert_eq!(ev.data["status"], "completed");
        assert_eq!(ev.timestamp.unwrap().seconds, 1_700_000_000);
        let m = QmpMessage::parse(r#"{"event": "STOP"}"#).unwrap();
        assert!(matches!(m, QmpMessage::Event(e) if e.event == "STOP" && e.data.is_null()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            QmpMessage::parse("nope"),
            Err(QemuError::Protocol(_))
        ));
        assert!(matches!(
            QmpMessage::parse("[1]"),
            Err(QemuError::Protocol(_))
        ));
        assert!(matches!(
            QmpMessage::parse(r#"{"x":1}"#),
            Err(QemuError::Protocol(_))
        ));
    }

    #[test]
    fn builds_requests() {
        let l = request_line("stop", &Value::Null, 5);
        assert_eq!(
            serde_json::from_str::<Value>(&l).unwrap(),
            json!({"execute":"stop","id":5})
        );
        assert!(l.ends_with('\n'));
        let l = request_line("migrate", &json!({"uri":"unix:/x"}), 6);
        assert_eq!(
            serde_json::from_str::<Value>(&l).unwrap(),
            json!({"execute":"migrate","arguments":{"uri":"unix:/x"},"id":6})
        );
        let l = request_line("cont", &json!({}), 7);
        assert_eq!(
            serde_json::from_str::<Value>(&l).unwrap(),
            json!({"execute":"cont","id":7})
        );
    }
}
