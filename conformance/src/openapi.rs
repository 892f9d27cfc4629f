//! Checks a request and its answer against `schema/openapi.yaml`. The answer: its status must be
//! documented for the route and method, errors must have the error shape, and JSON bodies must fit
//! their schema. The request: what the contract says of it (its body, query, path and header
//! parameters) must agree with what the server did — a request the contract refuses must not
//! succeed, and one it accepts must not be refused as invalid input. So every bad request a test
//! sends checks that the contract states the rule the server enforced: a client generated from the
//! contract never sends what the server refuses.

use std::sync::OnceLock;

use serde_json::Value;
use udc_agent::client::Sent;

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("read schema/openapi.yaml");
        serde_yaml::from_str(&text).expect("schema/openapi.yaml is valid YAML")
    })
}

fn resolve(mut node: &Value) -> &Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let pointer = r.trim_start_matches('#');
        node = spec()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("openapi: dangling $ref {r}"));
    }
    node
}

/// The spec path that matches a concrete path, preferring literal segments over parameters.
fn find_path(path: &str) -> Option<(&'static str, &'static Value)> {
    let path = path.split('?').next().unwrap_or(path);
    let want: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let paths = spec()["paths"].as_object()?;
    paths
        .iter()
        .filter_map(|(template, item)| {
            let have: Vec<&str> = template.split('/').collect();
            if have.len() != want.len() {
                return None;
            }
            let mut literal = 0;
            for (h, w) in have.iter().zip(&want) {
                if h.starts_with('{') {
                    continue;
                }
                if h != w {
                    return None;
                }
                literal += 1;
            }
            Some((literal, template.as_str(), item))
        })
        .max_by_key(|(literal, _, _)| *literal)
        .map(|(_, t, item)| (t, item))
}

fn check_schema(value: &Value, schema: &Value, at: &str) -> Result<(), String> {
    // OpenAPI 3.1: keywords beside a `$ref` apply as well as the referenced schema.
    if let Some(Value::Object(own)) = schema.get("$ref").map(|_| schema) {
        if own.len() > 1 {
            check_schema(value, resolve(schema), at)?;
            let mut rest = own.clone();
            rest.remove("$ref");
            return check_schema(value, &Value::Object(rest), at);
        }
    }
    let schema = resolve(schema);
    if let Some(forbidden) = schema.get("not") {
        if check_schema(value, forbidden, at).is_ok() {
            return Err(format!("{at}: {value} is what `not` forbids ({forbidden})"));
        }
    }
    if let Some(c) = schema.get("const") {
        if value != c {
            return Err(format!("{at}: expected {c}, got {value}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            // JSON Schema: a number with no fraction (20.0 too) is an integer.
            Value::Number(n)
                if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) =>
            {
                "integer"
            }
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !ok {
            return Err(format!("{at}: expected {types:?}, got {actual} ({value})"));
        }
    }
    check_alternatives(value, schema, at)?;
    match value {
        Value::Object(map) => check_object(map, schema, at)?,
        Value::Array(items) => check_array(items, schema, at)?,
        Value::String(text) => check_string(text, schema, at)?,
        Value::Number(n) => check_number(n.as_f64().unwrap_or(f64::NAN), schema, at)?,
        _ => {}
    }
    Ok(())
}

/// `allOf`, `anyOf` and `oneOf` (exactly one).
fn check_alternatives(value: &Value, schema: &Value, at: &str) -> Result<(), String> {
    let list = |key: &str| schema.get(key).and_then(Value::as_array);
    for sub in list("allOf").into_iter().flatten() {
        check_schema(value, sub, at)?;
    }
    if let Some(options) = list("anyOf") {
        if !options.iter().any(|o| check_schema(value, o, at).is_ok()) {
            return Err(format!("{at}: {value} fits none of anyOf"));
        }
    }
    if let Some(options) = list("oneOf") {
        let fits = options
            .iter()
            .filter(|o| check_schema(value, o, at).is_ok())
            .count();
        if fits != 1 {
            return Err(format!("{at}: {value} fits {fits} of oneOf (exactly one)"));
        }
    }
    Ok(())
}

fn check_object(
    map: &serde_json::Map<String, Value>,
    schema: &Value,
    at: &str,
) -> Result<(), String> {
    for key in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = key.as_str().unwrap_or_default();
        if !map.contains_key(key) {
            return Err(format!("{at}: missing required property {key:?}"));
        }
    }
    // A property that needs others with it.
    for (key, needs) in schema
        .get("dependentRequired")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for need in needs.as_array().into_iter().flatten() {
            let need = need.as_str().unwrap_or_default();
            if map.contains_key(key) && !map.contains_key(need) {
                return Err(format!("{at}: {key:?} needs {need:?} with it"));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (key, v) in map {
        match (
            props.and_then(|p| p.get(key)),
            schema.get("additionalProperties"),
        ) {
            (Some(sub), _) => check_schema(v, sub, &format!("{at}.{key}"))?,
            (None, Some(Value::Bool(false))) => {
                return Err(format!("{at}: unknown property {key:?}"))
            }
            (None, Some(sub @ Value::Object(_))) => check_schema(v, sub, &format!("{at}.{key}"))?,
            (None, _) => {}
        }
    }
    check_count(map.len(), schema, "Properties", at)
}

/// `min<what>` and `max<what>` (Items, Properties, Length) against `count`.
fn check_count(count: usize, schema: &Value, what: &str, at: &str) -> Result<(), String> {
    let bound = |side: &str| schema.get(format!("{side}{what}")).and_then(Value::as_u64);
    let count = count as u64;
    let noun = what.to_ascii_lowercase();
    if let Some(min) = bound("min").filter(|min| count < *min) {
        return Err(format!("{at}: {noun} {count}, at least {min}"));
    }
    if let Some(max) = bound("max").filter(|max| count > *max) {
        return Err(format!("{at}: {noun} {count}, at most {max}"));
    }
    Ok(())
}

fn check_array(items: &[Value], schema: &Value, at: &str) -> Result<(), String> {
    if let Some(item_schema) = schema.get("items") {
        for (i, v) in items.iter().enumerate() {
            check_schema(v, item_schema, &format!("{at}[{i}]"))?;
        }
    }
    check_count(items.len(), schema, "Items", at)?;
    if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
        for (i, v) in items.iter().enumerate() {
            if items[..i].contains(v) {
                return Err(format!("{at}[{i}]: {v} appears twice"));
            }
        }
    }
    Ok(())
}

fn check_string(text: &str, schema: &Value, at: &str) -> Result<(), String> {
    // JSON Schema counts characters (code points), not bytes.
    check_count(text.chars().count(), schema, "Length", at)?;
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let re = regex::Regex::new(pattern)
            .unwrap_or_else(|e| panic!("openapi: {at}: bad pattern {pattern:?}: {e}"));
        if !re.is_match(text) {
            return Err(format!("{at}: {text:?} does not match {pattern:?}"));
        }
    }
    // JSON Schema's uuid is the hyphenated form only (the uuid crate also reads others).
    if schema.get("format").and_then(Value::as_str) == Some("uuid")
        && (text.len() != 36 || uuid::Uuid::try_parse(text).is_err())
    {
        return Err(format!("{at}: {text:?} is not a UUID"));
    }
    Ok(())
}

fn check_number(n: f64, schema: &Value, at: &str) -> Result<(), String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if bound("minimum").is_some_and(|min| n < min)
        || bound("exclusiveMinimum").is_some_and(|min| n <= min)
    {
        return Err(format!("{at}: {n} is below the minimum"));
    }
    if bound("maximum").is_some_and(|max| n > max)
        || bound("exclusiveMaximum").is_some_and(|max| n >= max)
    {
        return Err(format!("{at}: {n} is above the maximum"));
    }
    Ok(())
}

/// What the contract says of a request: `Err` with the rule it breaks.
fn request_verdict(
    template: &str,
    item: &Value,
    operation: &Value,
    sent: &Sent,
) -> Result<(), String> {
    let (path, query) = sent.path.split_once('?').unwrap_or((sent.path, ""));
    // Raw, as the server reads them: its parameters are plain tokens, never percent-encoded.
    let query: Vec<(&str, &str)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let parameters = item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            operation
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .map(resolve);
    for p in parameters {
        let name = p["name"].as_str().unwrap_or_default();
        let given: Option<String> = match p["in"].as_str() {
            Some("path") => template
                .split('/')
                .position(|s| s == format!("{{{name}}}"))
                .and_then(|i| segments.get(i))
                .map(|s| (*s).to_owned()),
            Some("query") => query
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned()),
            Some("header") => sent
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| (*v).to_owned()),
            _ => continue,
        };
        let at = format!("{} parameter {name}", p["in"].as_str().unwrap_or_default());
        let Some(given) = given else {
            if p["required"] == Value::Bool(true) {
                return Err(format!("{at}: required"));
            }
            continue;
        };
        let value = match resolve(&p["schema"])["type"].as_str() {
            Some("integer") => match given.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err(format!("{at}: {given:?} is not an integer")),
            },
            Some("boolean") => match given.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(format!("{at}: {given:?} is not a boolean")),
            },
            _ => Value::String(given),
        };
        // The parameter's own schema: keywords beside a `$ref` count too.
        check_schema(&value, &p["schema"], &at)?;
    }
    let Some(request) = operation.get("requestBody").map(resolve) else {
        return Ok(());
    };
    match (
        sent.body,
        request.pointer("/content/application~1json/schema"),
    ) {
        (Some(body), Some(schema)) => check_schema(body, schema, "request body"),
        (None, _) if request["required"] == Value::Bool(true) => {
            Err("request body: required".into())
        }
        _ => Ok(()),
    }
}

/// Does the contract agree with what the server did to this request? A request the contract
/// refuses must not succeed; one it accepts must not be refused as bad input (400). Rules JSON
/// Schema cannot state answer otherwise: 422 (a field against another, or against what the
/// server holds), 413 (a size over a limit).
fn check_request(
    template: &str,
    item: &Value,
    operation: &Value,
    sent: &Sent,
    status: u16,
    body: &Value,
) {
    let method = sent.method.as_str();
    match request_verdict(template, item, operation, sent) {
        Err(rule) if (200..300).contains(&status) => panic!(
            "{method} {template}: the contract refuses this request ({rule}), yet the server answered {status}\nrequest: {:?}",
            sent.body
        ),
        Ok(()) if status == 400 => panic!(
            "{method} {template}: the server refused a request the contract accepts ({status} {})\nrequest path: {}\nrequest body: {:?}",
            body["error"], sent.path, sent.body
        ),
        _ => {}
    }
}

/// Panics (failing the test) when the request or its answer is not what the contract documents.
pub fn check_exchange(sent: &Sent, status: u16, body: &Value) {
    check(sent.method.as_str(), sent.path, status, body);
    if let Some((template, item)) = find_path(sent.path) {
        if let Some(operation) = item.get(sent.method.as_str().to_ascii_lowercase()) {
            check_request(template, item, operation, sent, status, body);
        }
    }
}

/// Panics (failing the test) when the answer is not what the contract documents.
pub fn check(method: &str, path: &str, status: u16, body: &Value) {
    let Some((template, item)) = find_path(path) else {
        assert_eq!(
            status, 404,
            "{method} {path}: undocumented path answered {status}: {body}"
        );
        return check_error(method, path, status, body);
    };
    let Some(operation) = item.get(method.to_ascii_lowercase()) else {
        assert_eq!(
            status, 405,
            "{method} {path} ({template}): undocumented method answered {status}: {body}"
        );
        return check_error(method, path, status, body);
    };
    let response = operation["responses"]
        .get(status.to_string())
        .map(resolve)
        .unwrap_or_else(|| {
            panic!("{method} {template}: status {status} is not documented (body {body})")
        });
    if status >= 400 {
        check_error(method, path, status, body);
    }
    match response.pointer("/content/application~1json/schema") {
        Some(schema) => {
            if let Err(e) = check_schema(body, schema, "body") {
                panic!("{method} {template} {status}: {e}\nbody: {body}");
            }
        }
        None => assert!(
            body.is_null(),
            "{method} {template} {status}: documented without a body, got {body}"
        ),
    }
}

fn check_error(method: &str, path: &str, status: u16, body: &Value) {
    let shaped = body["error"]["code"].is_string() && body["error"]["message"].is_string();
    assert!(
        shaped,
        "{method} {path} {status}: not the error shape: {body}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;
    use serde_json::json;

    fn fails(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
        std::panic::catch_unwind(f).is_err()
    }

    fn sent<'a>(method: &'a Method, path: &'a str, body: Option<&'a Value>) -> Sent<'a> {
        Sent {
            method,
            path,
            body,
            headers: &[],
        }
    }

    #[test]
    fn an_undocumented_status_or_shape_fails() {
        let post = Method::POST;
        let body = json!({ "email": "a@example.com" });
        assert!(fails(|| check_exchange(
            &sent(&post, "/auth/prelogin", Some(&body)),
            418,
            &json!({ "error": { "code": "x", "message": "y" } })
        )));
        assert!(fails(|| check_exchange(
            &sent(&post, "/auth/prelogin", Some(&body)),
            400,
            &json!({ "oops": true })
        )));
    }

    #[test]
    fn an_error_without_its_request_id_fails() {
        let sent = sent(&Method::GET, "/devices", None);
        let error = |e: Value| json!({ "error": e });
        check_exchange(
            &sent,
            401,
            &error(json!({ "code": "x", "message": "y", "request_id": "a-1" })),
        );
        assert!(fails(|| check_exchange(
            &sent,
            401,
            &error(json!({ "code": "x", "message": "y" }))
        )));
        assert!(fails(|| check_exchange(
            &sent,
            401,
            &error(json!({ "code": "x", "message": "y", "request_id": "a b" }))
        )));
    }

    #[test]
    fn the_contract_and_the_server_must_agree_on_a_request() {
        let post = Method::POST;
        let refused =
            json!({ "error": { "code": "invalid_field", "message": "no", "request_id": "r1" } });
        // The schema states the rule (no '/' in a file name): a 400 agrees, a 201 does not.
        let bad = json!({ "name": "a/b", "size": 1, "sha256": "0".repeat(64) });
        let path = "/files/upload/initiate";
        check_exchange(&sent(&post, path, Some(&bad)), 400, &refused);
        assert!(fails(|| check_exchange(
            &sent(&post, path, Some(&bad)),
            201,
            &json!({ "status": "already_present", "file": {} })
        )));
        // A request the schema accepts refused as bad input: the schema misses a rule.
        let good = json!({ "name": "a.txt", "size": 1, "sha256": "0".repeat(64) });
        assert!(fails(|| check_exchange(
            &sent(&post, path, Some(&good)),
            400,
            &refused
        )));
        // A rule the schema cannot state answers 422, which it documents.
        check_exchange(&sent(&post, path, Some(&good)), 422, &refused);
        // Parameters are part of the request too, with the keywords beside their `$ref`.
        let put = Method::PUT;
        let long_key = format!("/sync/handoff/{}", "a".repeat(65));
        let body = json!({ "content_type": "text/plain", "ciphertext": "A".repeat(56) });
        check_exchange(&sent(&put, &long_key, Some(&body)), 400, &refused);
        let get = Method::GET;
        check_exchange(&sent(&get, "/remote/sessions?limit=0", None), 400, &refused);
        assert!(fails(|| check_exchange(
            &sent(&get, "/remote/sessions?limit=1", None),
            400,
            &refused
        )));
    }
}
