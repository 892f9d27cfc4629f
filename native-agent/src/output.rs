//! The line a remote session's steps print (serving, viewing, streaming), JSON for scripts
//! (`--json`) or words for the person at the screen.

use serde_json::{json, Value};

/// One line of a remote session for the log and the person at the screen:
/// `{"remote": what, …detail}` with `--json`, else `text`.
pub fn say(json: bool, what: &str, detail: Value, text: String) {
    if json {
        let mut line = json!({ "remote": what });
        if let (Some(obj), Value::Object(more)) = (line.as_object_mut(), detail) {
            obj.extend(more);
        }
        println!("{line}");
    } else {
        println!("{text}");
    }
}
