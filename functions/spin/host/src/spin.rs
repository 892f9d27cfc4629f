//! Spin's side of the contract: `fermyon:spin/sqlite` on rusqlite, `fermyon:spin/variables`
//! from the manifest, the outbound-host allow list, and the `spin-*` request headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::Resource;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::manifest::Manifest;

wasmtime::component::bindgen!({
    path: "wit",
    world: "fermyon:spin/host",
    with: {
        "fermyon:spin/sqlite.connection": Connection,
    },
    imports: { default: trappable },
});

use self::fermyon::spin::{sqlite, variables};

/// An open database of the component.
pub struct Connection(rusqlite::Connection);

pub struct SpinHost {
    manifest: Arc<Manifest>,
    data_dir: PathBuf,
    table: wasmtime::component::ResourceTable,
}

impl SpinHost {
    pub fn new(manifest: Arc<Manifest>, data_dir: PathBuf) -> SpinHost {
        SpinHost {
            manifest,
            data_dir,
            table: wasmtime::component::ResourceTable::new(),
        }
    }
}

fn io(e: impl std::fmt::Display) -> sqlite::Error {
    sqlite::Error::Io(e.to_string())
}

impl sqlite::Host for SpinHost {}

impl sqlite::HostConnection for SpinHost {
    fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, sqlite::Error>> {
        // Spin: a database the component does not list is denied; without runtime config only
        // `default` exists.
        if !self.manifest.sqlite_databases.contains(&database) {
            return Ok(Err(sqlite::Error::AccessDenied));
        }
        if database != "default" {
            return Ok(Err(sqlite::Error::NoSuchDatabase));
        }
        let conn = match rusqlite::Connection::open(self.data_dir.join("default.sqlite3")) {
            Ok(c) => c,
            Err(e) => return Ok(Err(io(e))),
        };
        // Requests run side by side, each on its own connection, as in Spin.
        if let Err(e) = conn.busy_timeout(std::time::Duration::from_secs(5)) {
            return Ok(Err(io(e)));
        }
        Ok(Ok(self.table.push(Connection(conn))?))
    }

    fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> wasmtime::Result<Result<sqlite::QueryResult, sqlite::Error>> {
        let conn = &self.table.get(&conn)?.0;
        Ok(execute(conn, &statement, parameters))
    }

    fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

fn execute(
    conn: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<sqlite::Value>,
) -> Result<sqlite::QueryResult, sqlite::Error> {
    use rusqlite::types::Value as V;
    let mut stmt = conn.prepare(statement).map_err(io)?;
    let columns: Vec<String> = stmt
        .column_names()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let params: Vec<V> = parameters
        .into_iter()
        .map(|p| match p {
            sqlite::Value::Integer(i) => V::Integer(i),
            sqlite::Value::Real(f) => V::Real(f),
            sqlite::Value::Text(t) => V::Text(t),
            sqlite::Value::Blob(b) => V::Blob(b),
            sqlite::Value::Null => V::Null,
        })
        .collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(io)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(io)? {
        let values = (0..columns.len())
            .map(|i| {
                Ok(match row.get::<_, V>(i).map_err(io)? {
                    V::Integer(i) => sqlite::Value::Integer(i),
                    V::Real(f) => sqlite::Value::Real(f),
                    V::Text(t) => sqlite::Value::Text(t),
                    V::Blob(b) => sqlite::Value::Blob(b),
                    V::Null => sqlite::Value::Null,
                })
            })
            .collect::<Result<Vec<_>, sqlite::Error>>()?;
        out.push(sqlite::RowResult { values });
    }
    Ok(sqlite::QueryResult { columns, rows: out })
}

impl variables::Host for SpinHost {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        // Spin's variable names: lowercase letters, digits and underscores, starting with a letter.
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(self
            .manifest
            .variables
            .get(&name)
            .cloned()
            .ok_or(variables::Error::Undefined(name)))
    }
}

/// Outbound HTTP only to the component's `allowed_outbound_hosts`, as Spin enforces it.
pub struct Outbound {
    manifest: Arc<Manifest>,
}

impl Outbound {
    pub fn new(manifest: Arc<Manifest>) -> Outbound {
        Outbound { manifest }
    }
}

type SendResult = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendResult {
        drop(fut);
        let scheme = request.uri().scheme_str().unwrap_or("https").to_owned();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let allowed = self.manifest.allows_outbound(&scheme, &authority);
        Box::new(async move {
            if !allowed {
                eprintln!("udc-spin-host: outbound request to {scheme}://{authority} denied (not in allowed_outbound_hosts)");
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let (resp, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                resp.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

/// The headers Spin adds to every request it routes to a component through `route`.
pub fn set_request_headers<B>(
    req: &mut http::Request<B>,
    route: &str,
    client: SocketAddr,
    local: SocketAddr,
) -> Result<()> {
    let component_route = route.strip_suffix("/...").unwrap_or(route).to_owned();
    let path_info = req
        .uri()
        .path()
        .strip_prefix(component_route.as_str())
        .unwrap_or_default()
        .to_owned();
    let full = format!(
        "http://{local}{}",
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let h = req.headers_mut();
    for (name, value) in [
        ("spin-full-url", full),
        ("spin-path-info", path_info),
        ("spin-matched-route", route.to_owned()),
        ("spin-raw-component-route", route.to_owned()),
        ("spin-component-route", component_route),
        ("spin-base-path", "/".to_owned()),
        ("spin-client-addr", client.to_string()),
    ] {
        h.insert(name, http::HeaderValue::from_str(&value)?);
    }
    Ok(())
}

fn plain(status: u16, text: &'static str) -> http::Response<HyperOutgoingBody> {
    let mut resp = http::Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// What Spin answers for a path no route matches.
pub fn not_found() -> http::Response<HyperOutgoingBody> {
    plain(404, "Not Found")
}

pub fn internal_error() -> http::Response<HyperOutgoingBody> {
    plain(500, "Internal Server Error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlite::HostConnection;
    use variables::Host as _;

    fn host(dir: &std::path::Path) -> SpinHost {
        let manifest = crate::manifest::project_manifest(&[]).unwrap();
        SpinHost::new(Arc::new(manifest), dir.to_owned())
    }

    #[test]
    fn databases_and_variables_follow_the_manifest_as_in_spin() {
        let dir = std::env::temp_dir().join(format!("udc-spin-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut h = host(&dir);
        assert!(matches!(
            h.open("other".into()).unwrap(),
            Err(sqlite::Error::AccessDenied)
        ));
        let conn = h.open("default".into()).unwrap().unwrap();
        let rep = Resource::<Connection>::new_borrow(conn.rep());
        let created = h
            .execute(rep, "CREATE TABLE t (a INTEGER, b TEXT)".into(), vec![])
            .unwrap()
            .unwrap();
        assert!(created.rows.is_empty());
        let rep = Resource::<Connection>::new_borrow(conn.rep());
        h.execute(
            rep,
            "INSERT INTO t VALUES (?, ?)".into(),
            vec![sqlite::Value::Integer(7), sqlite::Value::Text("x".into())],
        )
        .unwrap()
        .unwrap();
        let rep = Resource::<Connection>::new_borrow(conn.rep());
        let read = h
            .execute(rep, "SELECT a, b FROM t".into(), vec![])
            .unwrap()
            .unwrap();
        assert_eq!(read.columns, vec!["a", "b"]);
        assert!(
            matches!(read.rows[0].values[..], [sqlite::Value::Integer(7), sqlite::Value::Text(ref t)] if t == "x")
        );
        let rep = Resource::<Connection>::new_borrow(conn.rep());
        assert!(matches!(
            h.execute(rep, "SELEKT".into(), vec![]).unwrap(),
            Err(sqlite::Error::Io(_))
        ));
        h.drop(conn).unwrap();

        assert_eq!(h.get("udc_decoy_key".into()).unwrap().unwrap(), "d");
        assert_eq!(h.get("udc_s3_region".into()).unwrap().unwrap(), "auto");
        assert!(matches!(
            h.get("not_declared".into()).unwrap(),
            Err(variables::Error::Undefined(_))
        ));
        assert!(matches!(
            h.get("Bad-Name".into()).unwrap(),
            Err(variables::Error::InvalidName(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
