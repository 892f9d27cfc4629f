//! udc-client: what every udc client shares, native and in the browser (wasm32): the sign-in
//! KDF, end-to-end sealing, the approval phrase, and what events carry. It never depends on the
//! server's core; the server uses its phrase and its event types so both sides agree.

pub mod events;
pub mod phrase;
pub mod wire;

#[cfg(feature = "crypto")]
pub mod file_seal;
#[cfg(feature = "crypto")]
pub mod kdf;
#[cfg(feature = "crypto")]
mod part_cipher;
#[cfg(feature = "crypto")]
pub mod recovery;
#[cfg(feature = "crypto")]
pub mod seal;
#[cfg(all(feature = "crypto", target_arch = "wasm32"))]
pub mod wasm;
