//! The browser's build of this crate (wasm32, here run under Node) and the native build seal,
//! open, derive and name keys the same way: what one seals the other opens.
//! `scripts/test.sh` builds the package (wasm-bindgen, Node target) and names its directory in
//! `UDC_CLIENT_WASM_PKG`, then runs this ignored test.
// A test file: its helpers, like its tests, fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use udc_client::{kdf, phrase, seal};

/// Runs `script` in Node with the package as `c` and `input` (JSON) as `i`; its JSON answer.
fn node(script: &str, input: serde_json::Value) -> serde_json::Value {
    let pkg = std::env::var("UDC_CLIENT_WASM_PKG")
        .expect("UDC_CLIENT_WASM_PKG: the wasm-bindgen package directory (scripts/test.sh)");
    let program = format!(
        "const c = require({:?}); const i = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n\
         const b = (s) => Buffer.from(s, 'base64'); const e = (u) => Buffer.from(u).toString('base64');\n\
         {script}",
        format!("{pkg}/udc_client.js")
    );
    let mut child = Command::new("node")
        .args(["-e", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed");
    serde_json::from_slice(&out.stdout).expect("node printed JSON")
}

#[test]
#[ignore = "needs the wasm package: scripts/test.sh builds it and runs this"]
fn wasm_and_native_seal_open_derive_and_name_keys_alike() {
    let key = [42u8; 32];
    let native_sealed =
        seal::seal(&key, &seal::clipboard_aad("text/plain"), b"from the agent").unwrap();
    let kdf = kdf::KdfParams::new_random().unwrap();
    let public_key = [9u8; 32];
    let answer = node(
        "console.log(JSON.stringify({\n\
           opened: b(e(c.openClipboard(b(i.key), 'text/plain', b(i.sealed)))).toString(),\n\
           sealed: e(c.sealClipboard(b(i.key), 'text/html', Buffer.from('from the page'))),\n\
           keys: e(c.deriveKeys('correct horse', i.kdf)),\n\
           phrase: c.fingerprintPhrase(b(i.public_key)),\n\
           wrong: (() => { try { c.openClipboard(b(i.key), 'text/html', b(i.sealed)); return 'opened'; } catch (x) { return 'refused'; } })(),\n\
           unwrapped: e(c.unwrapAccountKey(b(i.key), i.wrapped)),\n\
           legacy: e(c.unwrapAccountKey(b(i.key), undefined)),\n\
           wrapped: c.wrapAccountKey(b(i.key), b(i.public_key)),\n\
         }));",
        serde_json::json!({
            "key": B64.encode(key),
            "sealed": B64.encode(&native_sealed),
            "kdf": serde_json::to_string(&kdf).unwrap(),
            "public_key": B64.encode(public_key),
            "wrapped": seal::wrap_account_key(&key, &public_key).unwrap(),
        }),
    );
    assert_eq!(
        answer["unwrapped"],
        B64.encode(public_key),
        "wasm unwraps what native wrapped"
    );
    assert_eq!(answer["legacy"], B64.encode(key));
    let page_wrapped = answer["wrapped"].as_str().unwrap();
    assert_eq!(
        seal::unwrap_account_key(&key, Some(page_wrapped)).unwrap(),
        public_key,
        "native unwraps what wasm wrapped"
    );
    assert_eq!(
        answer["opened"], "from the agent",
        "wasm opens what native sealed"
    );
    let page_sealed = B64.decode(answer["sealed"].as_str().unwrap()).unwrap();
    let opened = seal::open(&key, &seal::clipboard_aad("text/html"), &page_sealed).unwrap();
    assert_eq!(opened, b"from the page", "native opens what wasm sealed");
    assert_eq!(
        answer["wrong"], "refused",
        "the content type is bound in, in wasm too"
    );
    let native = kdf::derive("correct horse", &kdf).unwrap();
    let keys = B64.decode(answer["keys"].as_str().unwrap()).unwrap();
    assert_eq!(keys, [native.auth_key, native.enc_key].concat());
    assert_eq!(answer["phrase"], phrase::fingerprint_phrase(&public_key));
}

#[test]
#[ignore = "needs the wasm package: scripts/test.sh builds it and runs this"]
fn wasm_hands_over_the_account_key_and_hashes_as_native_does() {
    use sha2::Digest;
    let account_key = [7u8; 32];
    let native_pair = seal::DeviceKeyPair::generate();
    let bytes: Vec<u8> = (0..3_000_000u32).map(|n| (n % 251) as u8).collect();
    let answer = node(
        "const pair = new c.ApprovalKeys();\n\
         const h = new c.Sha256(); const d = b(i.bytes);\n\
         for (let at = 0; at < d.length; at += 65536) h.update(d.subarray(at, at + 65536));\n\
         const selfSealed = c.sealAccountKey(pair.publicKey, b(i.key));\n\
         console.log(JSON.stringify({\n\
           to_native: c.sealAccountKey(i.native_public, b(i.key)),\n\
           public_key: pair.publicKey, phrase: pair.phrase,\n\
           self_opened: e(pair.openAccountKey(selfSealed)),\n\
           sha256: h.hexDigest(),\n\
         }));",
        serde_json::json!({
            "key": B64.encode(account_key),
            "native_public": native_pair.public_b64(),
            "bytes": B64.encode(&bytes),
        }),
    );
    let opened = native_pair
        .open_account_key(answer["to_native"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        opened, account_key,
        "native opens what the page sealed to it"
    );
    let public = B64.decode(answer["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(answer["phrase"], phrase::fingerprint_phrase(&public));
    assert_eq!(answer["self_opened"], B64.encode(account_key));
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(answer["sha256"], digest, "the streaming hash is SHA-256");
}
