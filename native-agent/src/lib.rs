//! udc-agent as a library: the API client, the client-side KDF and the session store. The
//! `udc-agent` binary and the conformance suite are both built on it.

pub mod autostart;
pub mod background;
pub mod client;
pub mod clipboard;
pub mod codec;
pub mod context;
pub mod feedback;
pub mod files;
#[cfg(any(target_os = "linux", windows))]
pub mod input;
pub mod log;
pub mod output;
pub mod peer;
pub mod realtime;
pub mod remote;
#[cfg(any(target_os = "linux", windows))]
pub mod screen;
pub mod store;
#[cfg(any(target_os = "linux", windows))]
pub mod stream;
pub mod sync;
pub mod transfer;
pub mod udp;
pub mod video;
pub mod view;
pub mod watch;
pub mod window;

pub use client::{Client, Device, DeviceInfo, Error};
pub use store::{Session, Store};
/// The sign-in KDF and end-to-end sealing, shared with every other udc client.
pub use udc_client::{file_seal, kdf, recovery, seal};
