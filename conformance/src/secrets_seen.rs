//! Every secret the suite's clients send or receive — tokens, tickets, auth keys, poll
//! secrets — written to the file `UDC_SECRETS_SEEN` names (scripts/test.sh sets it), so that
//! after a host's run every log it produced can be searched for them: none may be there.

use std::io::Write;

use serde_json::Value;

/// The JSON fields that hold a secret, wherever they appear (bodies and answers).
const SECRET_FIELDS: [&str; 7] = [
    "access_token",
    "refresh_token",
    "ticket",
    "auth_key",
    "new_auth_key",
    "recovery_auth_key",
    "poll_secret",
];

/// Records the secrets in `values`, when a file for them is named.
pub fn record(values: &[&Value]) {
    let Ok(path) = std::env::var("UDC_SECRETS_SEEN") else {
        return;
    };
    let mut found = Vec::new();
    for value in values {
        collect(value, &mut found);
    }
    if found.is_empty() {
        return;
    }
    // One write per exchange, appended: the suite's processes share the file.
    let lines: String = found.iter().map(|s| format!("{s}\n")).collect();
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(lines.as_bytes());
    }
}

fn collect<'v>(value: &'v Value, found: &mut Vec<&'v str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v.as_str() {
                    // Short values are no secret (and would match anywhere).
                    Some(s) if SECRET_FIELDS.contains(&key.as_str()) && s.len() >= 16 => {
                        found.push(s)
                    }
                    _ => collect(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_at_any_depth_and_nothing_else() {
        let answer = serde_json::json!({
            "tokens": { "access_token": "eyJhbGciOiJFZERTQSJ9.abc.def", "token_type": "Bearer" },
            "devices": [{ "name": "a long name that is no secret at all", "poll_secret": "0123456789abcdef0123" }],
            "ticket": "short",
        });
        let mut found = Vec::new();
        collect(&answer, &mut found);
        found.sort();
        assert_eq!(
            found,
            ["0123456789abcdef0123", "eyJhbGciOiJFZERTQSJ9.abc.def"]
        );
    }
}
