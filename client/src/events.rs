//! What events carry, typed once (`schema/events.md` says when each is sent): the server's
//! core builds these and clients read them, so the two cannot drift apart. The names are
//! `udc_hub::names`; the web app's TypeScript mirrors those it reads (`web/src/types.ts`).

use serde::{Deserialize, Serialize};

/// A clipboard item as the API answers it and `clipboard.sync` carries it: the content is
/// sealed end to end (`ciphertext`), or, when large, a file (`file_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipboardItem {
    pub id: String,
    pub device_id: String,
    pub content_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    pub created_at: String,
}

/// `clipboard.sync`, to each device that receives the account's clipboard (the API answers an
/// item in this shape too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipboardSync {
    pub item: ClipboardItem,
}

/// What a remote session allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    ViewOnly,
    ViewAndControl,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ViewOnly => "view_only",
            Mode::ViewAndControl => "view_and_control",
        }
    }

    pub fn parse(raw: &str) -> Option<Mode> {
        match raw {
            "view_only" => Some(Mode::ViewOnly),
            "view_and_control" => Some(Mode::ViewAndControl),
            _ => None,
        }
    }
}

/// Where a remote session is: asked, then answered (active or denied), then over (ended, or
/// expired before it started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Pending,
    Active,
    Denied,
    Expired,
    Ended,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Active => "active",
            SessionState::Denied => "denied",
            SessionState::Expired => "expired",
            SessionState::Ended => "ended",
        }
    }

    pub fn parse(raw: &str) -> Option<SessionState> {
        match raw {
            "pending" => Some(SessionState::Pending),
            "active" => Some(SessionState::Active),
            "denied" => Some(SessionState::Denied),
            "expired" => Some(SessionState::Expired),
            "ended" => Some(SessionState::Ended),
            _ => None,
        }
    }

    /// Not yet over: it can still be answered, driven or ended.
    pub fn live(self) -> bool {
        matches!(self, SessionState::Pending | SessionState::Active)
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A remote session as the API answers it and its events carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSession {
    pub id: String,
    pub requester_device_id: String,
    pub target_device_id: String,
    pub mode: Mode,
    /// Seconds.
    pub max_duration: i64,
    pub state: SessionState,
    pub created_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub ended_by_device_id: Option<String>,
    /// Seconds left, while active.
    pub remaining_secs: Option<i64>,
    /// How often each side sends its heartbeat, in seconds.
    pub heartbeat_every: i64,
    pub relayed_inputs: i64,
}

/// `remote.control.request`, `.approved`, `.denied`, `.session_start`: the session as it now is
/// (the API answers a session in this shape too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub session: RemoteSession,
}

/// `remote.control.session_end`: both sides stop at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnd {
    pub session_id: String,
    pub reason: String,
    pub ended_by_device_id: Option<String>,
}

/// One input event from the controlling device: pointer positions are fractions of the
/// captured screen (so differing resolutions map correctly), keys are named as browsers'
/// `KeyboardEvent.key` names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputEvent {
    PointerMove {
        x: f64,
        y: f64,
    },
    PointerButton {
        button: Button,
        down: bool,
    },
    Wheel {
        dx: i32,
        dy: i32,
    },
    Key {
        key: String,
        down: bool,
        #[serde(default)]
        modifiers: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Button {
    Left,
    Middle,
    Right,
}

/// `remote.input`, relayed to the controlled device's sockets and never logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteInput {
    pub session_id: String,
    pub events: Vec<InputEvent>,
}
