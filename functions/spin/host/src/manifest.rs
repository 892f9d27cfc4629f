//! What the host takes from `spin.toml`, with Spin's meaning: application variables (a default,
//! or required), the HTTP routes, and the component's SQLite databases, outbound hosts and
//! variables (templates over the application variables, `{{ name }}`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

pub struct Manifest {
    /// The component's id in `spin.toml`.
    pub id: String,
    /// The component's own variables, resolved.
    pub variables: HashMap<String, String>,
    pub routes: Vec<String>,
    pub source: PathBuf,
    pub sqlite_databases: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
}

/// `{{ name }}` replaced by the application variable's value.
fn render(template: &str, app: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| anyhow!("unclosed {{{{ in {template:?}"))?;
        let name = rest[start + 2..start + end].trim();
        let value = app
            .get(name)
            .ok_or_else(|| anyhow!("{template:?} names an undefined variable {name:?}"))?;
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn strings(value: Option<&toml::Value>) -> Vec<String> {
    value
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Manifest {
    /// Loads `path` for `component`, with `given` application variable values (like
    /// `spin up --variable`); a required variable without a value is an error, as in Spin.
    pub fn load(path: &Path, component: &str, given: &HashMap<String, String>) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: toml::Value =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut app = HashMap::new();
        if let Some(vars) = doc.get("variables").and_then(toml::Value::as_table) {
            for (name, decl) in vars {
                let value = match (
                    given.get(name),
                    decl.get("default").and_then(toml::Value::as_str),
                ) {
                    (Some(v), _) => v.clone(),
                    (None, Some(d)) => d.to_owned(),
                    (None, None) => bail!("variable {name} is required and has no value"),
                };
                app.insert(name.clone(), value);
            }
        }
        for name in given.keys() {
            if !app.contains_key(name) {
                bail!("--variable {name}: spin.toml declares no such variable");
            }
        }
        let comp = doc
            .get("component")
            .and_then(|c| c.get(component))
            .ok_or_else(|| anyhow!("spin.toml has no component {component}"))?;
        let routes = doc
            .get("trigger")
            .and_then(|t| t.get("http"))
            .and_then(toml::Value::as_array)
            .map(|triggers| {
                triggers
                    .iter()
                    .filter(|t| t.get("component").and_then(toml::Value::as_str) == Some(component))
                    .filter_map(|t| {
                        t.get("route")
                            .and_then(toml::Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut variables = HashMap::new();
        if let Some(vars) = comp.get("variables").and_then(toml::Value::as_table) {
            for (name, template) in vars {
                let template = template
                    .as_str()
                    .ok_or_else(|| anyhow!("component variable {name} is not a string"))?;
                variables.insert(name.clone(), render(template, &app)?);
            }
        }
        let allowed_outbound_hosts = strings(comp.get("allowed_outbound_hosts"))
            .iter()
            .map(|h| render(h, &app))
            .collect::<Result<Vec<_>>>()?;
        let source = comp
            .get("source")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| anyhow!("component {component} has no source"))?;
        Ok(Manifest {
            id: component.to_owned(),
            variables,
            routes,
            source: path.parent().unwrap_or(Path::new(".")).join(source),
            sqlite_databases: strings(comp.get("sqlite_databases")),
            allowed_outbound_hosts,
        })
    }

    /// The ids of every component `path` declares (in name order).
    pub fn component_ids(path: &Path) -> Result<Vec<String>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: toml::Value =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(doc
            .get("component")
            .and_then(toml::Value::as_table)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// This component's route that takes `path`, in Spin's syntax (an exact path, or a prefix
    /// ending in `/...`, whose rest is the `spin-path-info`), with how specific it is: Spin
    /// gives a request to the exact route, else to the longest prefix (`route_for`).
    pub fn route_match(&self, path: &str) -> Option<(&str, usize)> {
        // Spin's router reads `//devices` as `/devices`.
        let path = format!("/{}", path.trim_start_matches('/'));
        let path = path.as_str();
        self.routes
            .iter()
            .filter_map(|r| match r.strip_suffix("/...") {
                Some(prefix)
                    if prefix.is_empty()
                        || path == prefix
                        || path.starts_with(&format!("{prefix}/")) =>
                {
                    Some((r.as_str(), prefix.len()))
                }
                Some(_) => None,
                None => (path == r.as_str()).then_some((r.as_str(), usize::MAX)),
            })
            .max_by_key(|(_, specific)| *specific)
    }
}

/// The component of `components` and its route that take `path`, as Spin picks them.
pub fn route_for<'a>(components: &'a [Arc<Manifest>], path: &str) -> Option<(usize, &'a str)> {
    components
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            c.route_match(path)
                .map(|(route, specific)| (i, route, specific))
        })
        .max_by_key(|(_, _, specific)| *specific)
        .map(|(i, route, _)| (i, route))
}

impl Manifest {
    /// Whether an outbound request to `scheme://authority` is allowed (`scheme://host:port`
    /// entries; an empty entry allows nothing).
    pub fn allows_outbound(&self, scheme: &str, authority: &str) -> bool {
        self.allowed_outbound_hosts.iter().any(|allowed| {
            let allowed = allowed.trim_end_matches('/');
            !allowed.is_empty()
                && (allowed == format!("{scheme}://{authority}")
                    || allowed == format!("{scheme}://*"))
        })
    }
}

/// The project's `spin.toml`'s component `id` with its required secrets (and `extra`) given,
/// for tests.
#[cfg(test)]
pub fn project_component(id: &str, extra: &[(&str, &str)]) -> Result<Manifest> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../spin.toml");
    let given = [
        ("udc_jwt_private_key", "k"),
        ("udc_auth_pepper", "p"),
        ("udc_decoy_key", "d"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    Manifest::load(&path, id, &given)
}

/// The project's API component (`project_component`).
#[cfg(test)]
pub fn project_manifest(extra: &[(&str, &str)]) -> Result<Manifest> {
    project_component("udc", extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_spin_toml_resolves_with_required_variables_given() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../spin.toml");
        let missing = Manifest::load(&path, "udc", &HashMap::new());
        assert!(missing.is_err(), "required secrets must be given");
        let m = project_manifest(&[("udc_s3_endpoint", "http://127.0.0.1:9000")]).unwrap();
        assert_eq!(m.variables["udc_jwt_private_key"], "k");
        assert_eq!(m.variables["udc_s3_region"], "auto");
        assert_eq!(m.sqlite_databases, vec!["default"]);
        assert!(m.allows_outbound("http", "127.0.0.1:9000"));
        assert!(!m.allows_outbound("http", "127.0.0.1:9001"));
    }

    #[test]
    fn the_api_takes_its_paths_and_the_web_app_the_rest_as_spin_routes_them() {
        let api = Arc::new(project_manifest(&[]).unwrap());
        let web = Arc::new(project_component("web", &[]).unwrap());
        assert!(
            web.variables.keys().eq(["udc_s3_endpoint"]),
            "the app gets no secret"
        );
        let both = [api.clone(), web.clone()];
        let at = |path| route_for(&both, path).map(|(i, route)| (both[i].id.as_str(), route));
        assert_eq!(at("/devices"), Some(("udc", "/devices/...")));
        assert_eq!(at("/devices/x/trust"), Some(("udc", "/devices/...")));
        assert_eq!(at("/"), Some(("web", "/...")));
        assert_eq!(at("/devicesx"), Some(("web", "/...")));
        assert_eq!(at("//devices"), Some(("udc", "/devices/...")));
        assert_eq!(at("/assets/index.js"), Some(("web", "/...")));
        // Every first segment the API owns, and nothing else, is the API's component's.
        let mut api_routes = api.routes.clone();
        api_routes.sort();
        let mut segments: Vec<String> = udc_core::app_shell::API_SEGMENTS
            .iter()
            .map(|s| format!("/{s}/..."))
            .collect();
        segments.sort();
        assert_eq!(api_routes, segments);
        assert_eq!(web.routes, ["/..."]);
    }
}
