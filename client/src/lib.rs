//! udc-client: what every udc client shares, native and in the browser (wasm32): the sign-in
//! KDF, end-to-end sealing, and the approval phrase. It never depends on the server's core;
//! the server uses its phrase so both sides compute the same words.

pub mod phrase;
pub mod wire;

#[cfg(feature = "crypto")]
pub mod kdf;
#[cfg(feature = "crypto")]
pub mod seal;
#[cfg(all(feature = "crypto", target_arch = "wasm32"))]
pub mod wasm;
