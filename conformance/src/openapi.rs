//! Checks an answer against `schema/openapi.yaml`: the status must be documented for the
//! route and method, errors must have the error shape, and JSON bodies must fit their schema
//! (types, required properties, enums, consts, nested refs).

use std::sync::OnceLock;

use serde_json::Value;

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
    let schema = resolve(schema);
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
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
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
    if let Value::Object(map) = value {
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
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                if let Some(v) = map.get(key) {
                    check_schema(v, sub, &format!("{at}.{key}"))?;
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check_schema(v, item_schema, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
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
