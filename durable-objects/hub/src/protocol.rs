//! The realtime wire format (JSON text frames), both directions. `schema/events.md` is its
//! prose; keep the two in step.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest client frame the hub reads; signals carry SDP and ICE, well under this.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// An event as stored and as delivered: the envelope every feature's events share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Per-account sequence number: strictly increasing, never reused.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the hub stored it.
    pub at: i64,
    /// `device.online`, `clipboard.sync`, `file.available`, ...
    pub event: String,
    /// Delivered only to this device when set; to every device of the account otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_device_id: Option<String>,
    pub data: Value,
}

/// Whom an event is for: the whole account, or some of its devices. One event in the log
/// however many devices it names, so a change costs one write, not one per receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    All,
    Devices(Vec<String>),
}

impl Audience {
    pub fn includes(&self, device_id: &str) -> bool {
        match self {
            Audience::All => true,
            Audience::Devices(ids) => ids.iter().any(|id| id == device_id),
        }
    }
}

/// What a publisher hands the hub: an event without its sequence number and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "NewEventWire")]
pub struct NewEvent {
    pub event: String,
    pub to: Audience,
    pub data: Value,
}

/// A publish as it may arrive: from this version (`to`) or, while a deployment rolls out, from
/// a Worker of the version before (`target_device_id`, or neither for the whole account). An
/// event addressed to one device must never become one for every device.
#[derive(Deserialize)]
struct NewEventWire {
    event: String,
    #[serde(default)]
    to: Option<Audience>,
    #[serde(default)]
    target_device_id: Option<String>,
    data: Value,
}

impl From<NewEventWire> for NewEvent {
    fn from(w: NewEventWire) -> NewEvent {
        let to = match (w.to, w.target_device_id) {
            (Some(to), _) => to,
            (None, Some(one)) => Audience::Devices(vec![one]),
            (None, None) => Audience::All,
        };
        NewEvent {
            event: w.event,
            to,
            data: w.data,
        }
    }
}

impl NewEvent {
    pub fn to_all(event: &str, data: Value) -> NewEvent {
        NewEvent {
            event: event.to_owned(),
            to: Audience::All,
            data,
        }
    }

    pub fn to_devices(event: &str, devices: Vec<String>, data: Value) -> NewEvent {
        NewEvent {
            event: event.to_owned(),
            to: Audience::Devices(devices),
            data,
        }
    }
}

/// An event from a change's outbox (where the log is apart from the change's database), under
/// the outbox's id: ids grow in the order the changes committed, and the hub takes each once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outboxed {
    pub id: u64,
    pub event: NewEvent,
}

/// An event as the log keeps it: with its audience, which each receiver sees as
/// `target_device_id` (its own id) when the event names devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub seq: u64,
    pub at: i64,
    pub event: String,
    pub to: Audience,
    pub data: Value,
}

impl Logged {
    /// The envelope `device_id` receives, or None when the event is not for it.
    pub fn for_device(&self, device_id: &str) -> Option<Event> {
        self.to.includes(device_id).then(|| Event {
            seq: self.seq,
            at: self.at,
            event: self.event.clone(),
            target_device_id: match self.to {
                Audience::All => None,
                Audience::Devices(_) => Some(device_id.to_owned()),
            },
            data: self.data.clone(),
        })
    }
}

/// What a publisher hands the hub for one device's open sockets only (`HubFrame::Relay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relay {
    pub device_id: String,
    pub event: String,
    pub data: Value,
}

/// Whose sockets close because their access ended (close code `close::REVOKED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revoked {
    /// The device was removed: every socket it has.
    Device(String),
    /// The session ended (logout, a reused refresh token, expiry): the sockets it opened.
    Session(String),
    /// The account was deleted: every socket.
    Account,
}

/// Frames a device sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Heartbeat; answered with `pong`. Any frame counts as a heartbeat.
    Ping,
    /// The device processed every event up to `seq`.
    Ack { seq: u64 },
    /// The device's user is active (`online`) or away (`idle`).
    Presence { state: PresenceState },
    /// Relay `payload` to another online device of the account. `ref` comes back in the result.
    Signal {
        to_device: String,
        payload: Value,
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    Online,
    Idle,
    Offline,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Online => "online",
            PresenceState::Idle => "idle",
            PresenceState::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> PresenceState {
        match s {
            "online" => PresenceState::Online,
            "idle" => PresenceState::Idle,
            _ => PresenceState::Offline,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalStatus {
    Delivered,
    DeviceOffline,
}

/// Frames the hub sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubFrame {
    Event(Event),
    /// Replay is done: everything after `resume_after` up to `last_seq` was sent; live events follow.
    Ready {
        resume_after: u64,
        last_seq: u64,
    },
    /// The cursor is older than what the hub keeps: refetch state, then continue from `last_seq`.
    ResyncRequired {
        oldest_seq: u64,
        last_seq: u64,
    },
    Pong {
        at: i64,
    },
    Signal {
        from_device: String,
        payload: Value,
    },
    /// Ephemeral traffic the API relays to one device (input of a remote session): sent to its
    /// open sockets only, never written to the log, never acked.
    Relay {
        event: String,
        at: i64,
        data: Value,
    },
    SignalResult {
        to_device: String,
        status: SignalStatus,
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Error {
        code: String,
        message: String,
    },
}

impl HubFrame {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn error(code: &str, message: impl Into<String>) -> HubFrame {
        HubFrame::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Close codes the hub uses (4000-4999 are the application's).
pub mod close {
    /// The device was removed or its session revoked: do not reconnect.
    pub const REVOKED: u16 = 4001;
    /// No heartbeat within the window: reconnect.
    pub const HEARTBEAT_TIMEOUT: u16 = 4008;
    /// The server is restarting (WebSocket's "service restart"): reconnect at once, resuming.
    pub const RESTARTING: u16 = 1012;
}
