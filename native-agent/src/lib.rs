//! udc-agent as a library: the API client, the client-side KDF and the session store. The
//! `udc-agent` binary and the conformance suite are both built on it.

pub mod client;
pub mod clipboard;
pub mod context;
pub mod feedback;
pub mod files;
#[cfg(target_os = "linux")]
pub mod input;
pub mod output;
pub mod peer;
pub mod realtime;
pub mod remote;
#[cfg(target_os = "linux")]
pub mod screen;
pub mod store;
#[cfg(target_os = "linux")]
pub mod stream;
pub mod sync;
pub mod transfer;
pub mod video;
pub mod view;
pub mod watch;
pub mod window;

pub use client::{Client, Device, DeviceInfo, Error};
pub use store::{Session, Store};
/// The sign-in KDF and end-to-end sealing, shared with every other udc client.
pub use udc_client::{file_seal, kdf, recovery, seal};
