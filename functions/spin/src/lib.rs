//! udc as a Spin component (spin-sdk 5, WASI 0.2, Spin 3.x): converts nothing (spin-sdk hands
//! over an `http::Request`), supplies Spin SQLite, outbound HTTP for the object store, the clock
//! and randomness, and applies the schema itself because Spin has no migration tool. The web app
//! is a component of its own (`functions/spin/web`): `spin.toml` routes only the API's paths here.

mod spin_exec;
mod spin_http;
mod spin_hub;
mod spin_sqlite;

use std::io::Write;

use udc_core::access_log::{self, RequestLine};
use udc_core::{
    error_response, request_id, ApiError, Clock, Config, Core, OsRandom, Ports, RequestContext,
    RequestId, SystemClock,
};

use crate::spin_http::SpinHttp;
use crate::spin_hub::SpinHub;
use crate::spin_sqlite::SpinSql;

struct SpinPorts {
    sql: SpinSql,
    hub: SpinHub,
}

impl Ports for SpinPorts {
    type Sql = SpinSql;
    type Directory = SpinSql;
    type Clock = SystemClock;
    type Random = OsRandom;
    type Hub = SpinHub;
    type Http = SpinHttp;
    fn sql(&self) -> &SpinSql {
        &self.sql
    }
    fn directory(&self) -> &SpinSql {
        &self.sql
    }
    fn hub(&self) -> &SpinHub {
        &self.hub
    }
    fn http(&self) -> &SpinHttp {
        &SpinHttp
    }
    fn clock(&self) -> &SystemClock {
        &SystemClock
    }
    fn random(&self) -> &OsRandom {
        &OsRandom
    }
}

/// The component's entry point. `#[http_component]` generates the export the component model
/// calls, which must be an unsafe `extern` function: the only unsafe code of this crate.
#[allow(unsafe_code)]
mod entry {
    #[spin_sdk::http_component]
    async fn handle(req: http::Request<Vec<u8>>) -> anyhow::Result<http::Response<Vec<u8>>> {
        super::handle(req).await
    }
}

async fn handle(req: http::Request<Vec<u8>>) -> anyhow::Result<http::Response<Vec<u8>>> {
    let started = std::time::Instant::now();
    let id = RequestId::of(req.headers(), None);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let bytes_in = req.body().len() as u64;
    let resp = answer(req).await;
    if let Some(line) = access_log::internal_error_line(SystemClock.now_ms(), &id, &resp) {
        // Never println!/eprintln!: they panic when the write fails.
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    let resp = request_id::stamp(resp, &id);
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let bytes_out = resp.body().len() as u64;
    let line = RequestLine::new(
        SystemClock.now_ms(),
        &id,
        &method,
        &path,
        &resp,
        took,
        bytes_in,
        bytes_out,
    );
    // Spin keeps a component's stdout as its log.
    let _ = writeln!(std::io::stdout(), "{}", line.to_json());
    Ok(resp)
}

/// The answer, before the request's id is put on it.
async fn answer(req: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
    // Spin variable names are lowercase.
    let config =
        match Config::from_lookup(|name| spin_sdk::variables::get(&name.to_lowercase()).ok()) {
            Ok(c) => c,
            Err(missing) => return error_response(&ApiError::internal(missing)),
        };
    let sql = match SpinSql::open() {
        Ok(sql) => sql,
        Err(e) => return error_response(&e.into()),
    };
    if let Err(e) = udc_core::migrations::ensure(&sql, SystemClock.now_ms()).await {
        return error_response(&e.into());
    }
    let client_ip = req
        .headers()
        .get("spin-client-addr")
        .and_then(|v| v.to_str().ok())
        .and_then(|addr| {
            addr.rsplit_once(':')
                .map(|(ip, _)| ip.trim_matches(['[', ']']).to_owned())
        });
    let hub = SpinHub::on(sql.0.clone());
    let core = Core::new(SpinPorts { sql, hub }, config);
    core.handle(
        req,
        RequestContext {
            client_ip,
            account: None,
        },
    )
    .await
}
