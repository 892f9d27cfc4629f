//! The browser's build of this crate (wasm32, here run under Node) and the native build seal,
//! open, derive and name keys the same way: what one seals the other opens.
//! `scripts/test.sh` builds the package (wasm-bindgen, Node target) and names its directory in
//! `UDC_CLIENT_WASM_PKG`, then runs this ignored test.

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
         }));",
        serde_json::json!({
            "key": B64.encode(key),
            "sealed": B64.encode(&native_sealed),
            "kdf": serde_json::to_string(&kdf).unwrap(),
            "public_key": B64.encode(public_key),
        }),
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
