//! The names of the events and relayed messages, shared by the server that sends them and the
//! clients that read them (`schema/events.md` says what each carries). The conformance suite
//! spells them out on purpose: it checks the wire, not this list.

pub const DEVICE_REGISTERED: &str = "device.registered";
pub const DEVICE_UPDATED: &str = "device.updated";
pub const DEVICE_REMOVED: &str = "device.removed";
/// `device.online`, `device.idle`, `device.offline`: `device.` and the presence state.
pub const DEVICE_PRESENCE_PREFIX: &str = "device.";

pub const CLIPBOARD_SYNC: &str = "clipboard.sync";
pub const CLIPBOARD_CLEARED: &str = "clipboard.cleared";

pub const SETTINGS_CHANGED: &str = "settings.changed";
pub const SETTINGS_CONFLICT: &str = "settings.conflict";

pub const FILE_AVAILABLE: &str = "file.available";
pub const FILE_PROGRESS: &str = "file.transfer.progress";
pub const FILE_COMPLETED: &str = "file.transfer.completed";
pub const FILE_DOWNLOADED: &str = "file.downloaded";
pub const FILE_DELETED: &str = "file.deleted";
pub const FILE_RESTORED: &str = "file.restored";

pub const HANDOFF_AVAILABLE: &str = "handoff.available";
pub const HANDOFF_TAKEN: &str = "handoff.taken";

pub const APPROVAL_REQUEST: &str = "auth.approval.request";
pub const APPROVAL_RESOLVED: &str = "auth.approval.resolved";

pub const REMOTE_REQUEST: &str = "remote.control.request";
pub const REMOTE_APPROVED: &str = "remote.control.approved";
pub const REMOTE_DENIED: &str = "remote.control.denied";
pub const REMOTE_SESSION_START: &str = "remote.control.session_start";
pub const REMOTE_SESSION_END: &str = "remote.control.session_end";
/// Relayed, never logged: a viewer's input for the controlled device.
pub const REMOTE_INPUT: &str = "remote.input";
