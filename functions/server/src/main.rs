//! udc-server: udc on one machine. `cargo run -p udc-server` and it listens on 127.0.0.1:8080
//! with its SQLite database under the user's data directory.

mod backup;
mod blobs;
mod http_client;
mod hub;
mod logging;
mod metrics;
mod ports;
mod protocol_errors;
mod settings;
mod sqlite;
mod stopping;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::{Request, Response};
use axum::serve::ListenerExt;
use axum::Router;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use udc_core::{
    error_response, request_id, ApiError, Clock, Core, InternalDetail, RequestContext, RequestId,
    SystemClock,
};

use crate::blobs::EmbeddedStore;
use crate::http_client::ServerHttp;
use crate::hub::{Outgoing, ServerHub};
use crate::ports::ServerPorts;
use crate::sqlite::SqliteSql;
use crate::stopping::Stopping;
use udc_core::access_log::RequestLine;

/// Bodies larger than this are cut off here; core answers 413 for anything over its own limit.
const READ_LIMIT: usize = 1024 * 1024;

#[derive(Parser)]
#[command(
    name = "udc-server",
    version,
    about = "udc, the Universal Device Connector, as one native server"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "UDC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the SQLite database and generated local secrets live (also after `backup` or
    /// `restore`).
    #[arg(long, env = "UDC_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// A file of KEY=VALUE settings (same names as the UDC_* environment variables).
    #[arg(long, env = "UDC_CONFIG")]
    config: Option<PathBuf>,
    /// The URL devices reach this server at (default: http://<listen address>). Presigned file
    /// URLs of the embedded store are signed for this host.
    #[arg(long, env = "UDC_PUBLIC_URL")]
    public_url: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (a listener of their own, never the
    /// public port; off unless given). Keep it on a private address.
    #[arg(long, env = "UDC_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Log lines as JSON objects or for a person to read (default: JSON unless stderr is a
    /// terminal). `UDC_LOG` filters them like RUST_LOG (default `info`).
    #[arg(long, env = "UDC_LOG_FORMAT", value_enum)]
    log_format: Option<logging::Format>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a fresh set of secrets as KEY=VALUE lines and exit.
    GenSecrets,
    /// Copy the data directory's database, stored objects and secrets into a new directory,
    /// consistently, while a server runs on it and takes writes.
    Backup {
        /// A new (or empty) directory for the backup; it holds secrets: keep it private.
        to: PathBuf,
    },
    /// Put a backup back into the data directory, which must hold no database and have no
    /// server running on it.
    Restore {
        /// A directory `udc-server backup` made.
        from: PathBuf,
    },
}

type App = Arc<Core<ServerPorts>>;

#[derive(Clone)]
struct Server {
    core: App,
    /// The embedded object store, unless an external one is configured.
    store: Option<EmbeddedStore>,
    /// Stopping: every socket closes with 1012, so its device reconnects (to the next server)
    /// at once and resumes where it was.
    stopping: Stopping,
}

/// Runs core on a blocking thread: core's futures are not Send (they are single-threaded on the
/// edge). For long work (the maintenance sweep); requests use `run_inline`.
async fn run_core<T: Send + 'static>(
    core: &App,
    f: impl FnOnce(&Core<ServerPorts>) -> T + Send + 'static,
) -> Option<T> {
    let core = core.clone();
    tokio::task::spawn_blocking(move || f(&core)).await.ok()
}

/// Runs a request's core future on this thread. It nearly always finishes in its first poll:
/// the SQLite and hub ports answer synchronously. (Handing every request to a blocking thread
/// cost more than the request: thread switches were half the CPU of an authenticated GET.)
/// One that waits on the network (the object store) then blocks here, after telling tokio, so
/// this worker's other tasks move to another thread. None if core panicked.
fn run_inline<F: std::future::Future>(fut: F) -> Option<F::Output> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => tokio::task::block_in_place(|| pollster::block_on(fut)),
        }
    }))
    .ok()
}

async fn handle(
    State(server): State<Server>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let id = RequestId::of(req.headers(), None);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let bytes_in = content_length(req.headers()).unwrap_or(0);
    let resp = answer(server, peer, req, &id).await;
    if let Some(InternalDetail(detail)) = resp.extensions().get::<InternalDetail>() {
        tracing::error!(
            request_id = id.as_str(),
            detail = detail.as_str(),
            "internal error"
        );
    }
    let resp = stamped(resp, &id).await;
    let bytes_out = content_length(resp.headers())
        .or_else(|| axum::body::HttpBody::size_hint(resp.body()).exact())
        .unwrap_or(0);
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let mut line = RequestLine::new(
        SystemClock.now_ms(),
        &id,
        &method,
        &path,
        &resp,
        took,
        bytes_in,
        bytes_out,
    );
    if EmbeddedStore::serves(&path) {
        line.route = "store".to_owned();
    }
    logging::request(&line);
    metrics::METRICS.request(&line);
    resp
}

/// The metrics listener: `GET /metrics` and nothing else.
async fn serve_metrics(addr: SocketAddr, hub: Arc<ServerHub>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener {addr}"))?;
    metrics::METRICS.turn_on();
    tracing::info!(address = %listener.local_addr()?, "serving metrics at /metrics");
    let app = Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let hub = hub.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics::METRICS.render(hub.counts()),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The request's id on its answer. An error is one of core's small JSON bodies, whole in
/// memory: reading it back costs nothing.
async fn stamped(mut resp: Response<Body>, id: &RequestId) -> Response<Body> {
    if !request_id::is_json_error(resp.status(), resp.headers()) {
        request_id::stamp_header(resp.headers_mut(), id);
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, READ_LIMIT)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    request_id::stamp(Response::from_parts(parts, body), id).map(Body::from)
}

async fn answer(
    server: Server,
    peer: SocketAddr,
    req: Request<Body>,
    id: &RequestId,
) -> Response<Body> {
    // The stand-in for a request head hyper would have refused with an empty answer.
    if let Some(refused) = protocol_errors::refusal(req.headers()) {
        return closing(error_response(&refused).map(Body::from));
    }
    // After a head that asks for an upgrade the guard stops checking the connection's bytes:
    // one that is not upgraded after all must not carry another request.
    let upgrade =
        req.headers().contains_key(http::header::UPGRADE) || req.method() == http::Method::CONNECT;
    let resp = route(server, peer, req, id).await;
    if upgrade && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return closing(resp);
    }
    resp
}

fn closing(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

async fn route(
    server: Server,
    peer: SocketAddr,
    req: Request<Body>,
    id: &RequestId,
) -> Response<Body> {
    if let Some(store) = &server.store {
        if EmbeddedStore::serves(req.uri().path()) {
            return store.handle(req).await;
        }
    }
    let core = server.core;
    if udc_core::app_shell::is_app_request(req.method(), req.uri().path()) {
        let security = udc_core::app_shell::app_headers(&core.config);
        let cache = udc_core::app_shell::cache_control(req.uri().path());
        return udc_web_assets::respond(&req, &security, cache).map(Body::from);
    }
    let (mut parts, body) = req.into_parts();
    let ctx = RequestContext {
        client_ip: Some(peer.ip().to_string()),
        account: None,
    };
    if parts.uri.path() == "/realtime" {
        if let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &core).await {
            let req = Request::from_parts(parts, Vec::new());
            return realtime(core, ws, req, ctx, (id.clone(), server.stopping)).await;
        }
    }
    let bytes = match axum::body::to_bytes(body, READ_LIMIT).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            return error_response(&ApiError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body too large",
            ))
            .map(Body::from)
        }
    };
    let req = Request::from_parts(parts, bytes);
    run_inline(core.handle(req, ctx))
        .unwrap_or_else(|| error_response(&ApiError::internal("handler failed")))
        .map(Body::from)
}

/// `GET /realtime`: core decides who may connect; the socket then belongs to the hub.
async fn realtime(
    core: App,
    ws: WebSocketUpgrade,
    req: Request<Vec<u8>>,
    ctx: RequestContext,
    (id, stopping): (RequestId, Stopping),
) -> Response<Body> {
    let grant = run_inline(core.authorize_realtime(&req, ctx));
    let grant = match grant {
        Some(Ok(g)) => g,
        Some(Err(err)) => return error_response(&err).map(Body::from),
        None => return error_response(&ApiError::internal("authorizing failed")).map(Body::from),
    };
    let hub = core.ports.hub.clone();
    // Small buffers: most sockets sit idle, and tungstenite's defaults (128 KiB to read) would
    // cost every one of them far more than its state.
    ws.max_message_size(udc_hub::protocol::MAX_FRAME_BYTES * 2)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .on_upgrade(move |socket| serve_socket(hub, socket, grant, id, stopping))
}

/// The close code logged for a socket that ended without a close frame (WebSocket's 1006).
const GONE: u16 = 1006;

async fn serve_socket(
    hub: Arc<ServerHub>,
    socket: WebSocket,
    grant: udc_core::RealtimeGrant,
    id: RequestId,
    mut stopping: Stopping,
) {
    let (mut sink, mut stream) = socket.split();
    let (conn, mut outbox) = match hub.connect(&grant) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(request_id = id.as_str(), account_id = grant.user_id.as_str(), error = %e, "socket refused by the hub");
            return;
        }
    };
    let (account_id, device_id) = (grant.user_id.as_str(), grant.device_id.as_str());
    let request_id = id.as_str();
    tracing::info!(request_id, account_id, device_id, "socket open");
    let closed: u16 = loop {
        tokio::select! {
            _ = stopping.stopped() => {
                let bye = CloseFrame { code: udc_hub::protocol::close::RESTARTING, reason: "udc-server is restarting".into() };
                let _ = sink.send(Message::Close(Some(bye))).await;
                break udc_hub::protocol::close::RESTARTING;
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Err(e) = hub.frame(conn, text.as_str()) {
                        tracing::error!(request_id, account_id, error = %e, "hub frame failed");
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let err = udc_hub::HubFrame::error("malformed_frame", "frames are JSON text").to_text();
                    if sink.send(Message::Text(err.into())).await.is_err() { break GONE; }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => break frame.map_or(GONE, |f| f.code),
                Some(Err(_)) | None => break GONE,
            },
            out = outbox.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() { break GONE; }
                }
                Some(Outgoing::Close(code, reason)) => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break code;
                }
                None => break GONE,
            },
        }
    };
    tracing::info!(
        request_id,
        account_id,
        device_id,
        code = closed,
        "socket closed"
    );
    if let Err(e) = hub.closed(conn, &grant.user_id) {
        tracing::error!(request_id, account_id, error = %e, "hub close failed");
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let _log = logging::init(args.log_format);
    if let Some(Command::GenSecrets) = args.command {
        return settings::print_new_secrets();
    }
    let data_dir = args.data_dir.unwrap_or_else(settings::default_data_dir);
    match &args.command {
        Some(Command::Backup { to }) => {
            let copied = backup::backup(&data_dir, to)?;
            // Not println!: a closed stdout must not turn a finished backup into a failure.
            let _ = writeln!(
                std::io::stdout(),
                "backed up {} into {}: database {} bytes, {} stored files ({} bytes)",
                data_dir.display(),
                to.display(),
                copied.database_bytes,
                copied.objects,
                copied.object_bytes
            );
            return Ok(());
        }
        Some(Command::Restore { from }) => {
            let copied = backup::restore(from, &data_dir)?;
            let _ = writeln!(
                std::io::stdout(),
                "restored {} into {}: database {} bytes, {} stored files ({} bytes)",
                from.display(),
                data_dir.display(),
                copied.database_bytes,
                copied.objects,
                copied.object_bytes
            );
            return Ok(());
        }
        _ => {}
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // Held while the server runs: no second server, and no restore, on this directory.
    let _lock = backup::DataLock::take(&data_dir)?;
    // Bound first, so a port of 0 is settled before presigned URLs name it.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            tracing::warn!("listening on every address; pass --public-url with the address devices use, or file URLs will name 127.0.0.1");
            format!("http://127.0.0.1:{}", addr.port())
        } else {
            format!("http://{addr}")
        }
    });
    let settings::Loaded {
        config,
        embedded_store,
    } = settings::load(&data_dir, args.config.as_deref(), &public_url)?;
    let store = match embedded_store {
        Some(keys) => Some(EmbeddedStore::open(
            &data_dir.join(backup::BLOBS),
            &keys.access_key_id,
            &keys.secret_access_key,
        )?),
        None => None,
    };
    let db_path = data_dir.join(backup::DATABASE);
    let sql = SqliteSql::open(&db_path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", db_path.display()))?;
    let applied = udc_core::migrations::apply(&sql, SystemClock.now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("migrating {}: {e}", db_path.display()))?;
    if !applied.is_empty() {
        tracing::info!(migrations = applied.join(", "), "applied migrations");
    }
    if config.test_mode {
        tracing::warn!("TEST MODE: clients may move the clock; never use this in production");
    }
    let hub =
        Arc::new(ServerHub::open(&db_path).map_err(|e| anyhow::anyhow!("opening the hub: {e}"))?);
    let ticking = hub.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            ticking.tick();
        }
    });
    let http = ServerHttp::new(tokio::runtime::Handle::current())?;
    let core: App = Arc::new(Core::new(ServerPorts { sql, hub, http }, config));
    let sweeping = core.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let swept = run_core(&sweeping, |c| {
                pollster::block_on(c.maintenance(SystemClock.now_ms()))
            })
            .await;
            match swept {
                Some(Ok(swept)) => {
                    tracing::info!(job = "maintenance", swept = ?swept, "scheduled job done")
                }
                Some(Err(e)) => tracing::error!(
                    job = "maintenance",
                    error = e.internal.unwrap_or(e.message),
                    "scheduled job failed"
                ),
                None => tracing::error!(job = "maintenance", "scheduled job panicked"),
            }
        }
    });
    if let Some(addr) = args.metrics_listen {
        serve_metrics(addr, core.ports.hub.clone()).await?;
    }
    let (stopper, stopping) = stopping::on_signal();
    let app = Router::new().fallback(handle).with_state(Server {
        core,
        store,
        stopping,
    });
    println!(
        "udc-server listening on http://{addr} (data in {})",
        data_dir.display()
    );
    // `tap_io` changes nothing: it is how axum hands a wrapped listener's peer address to
    // `ConnectInfo`.
    let serving = axum::serve(
        protocol_errors::GuardedListener(listener).tap_io(|_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopper.stopped());
    let grace = async {
        stopper.stopped().await;
        tokio::time::sleep(stopping::GRACE).await;
    };
    tokio::select! {
        served = serving => served?,
        () = grace => tracing::warn!("requests still running after {:?}; stopping anyway", stopping::GRACE),
    }
    stopper.sockets_closed().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_core(name: &str) -> (Core<ServerPorts>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("udc-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = udc_core::Config::from_lookup(|k| match k {
            udc_core::config::JWT_PRIVATE_KEY
            | udc_core::config::AUTH_PEPPER
            | udc_core::config::DECOY_KEY => {
                Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into())
            }
            _ => None,
        })
        .unwrap();
        let sql = SqliteSql::open(&dir.join("udc.sqlite3")).unwrap();
        pollster::block_on(udc_core::migrations::apply(&sql, 0)).unwrap();
        let hub = Arc::new(ServerHub::open(&dir.join("udc.sqlite3")).unwrap());
        // These tests never reach the store; the port still needs a runtime to exist.
        let runtime = Box::leak(Box::new(tokio::runtime::Runtime::new().unwrap()));
        let http = ServerHttp::new(runtime.handle().clone()).unwrap();
        (Core::new(ServerPorts { sql, hub, http }, config), dir)
    }

    async fn call(
        core: &Core<ServerPorts>,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        let resp = core.handle(req, RequestContext::default()).await;
        let json = serde_json::from_slice(resp.body()).unwrap_or_default();
        (resp.status().as_u16(), json)
    }

    const AUTH_KEY: &str = "c2VjcmV0LWF1dGgta2V5LXRoYXQtaXMtMzItYnl0ZXM="; // 32 bytes

    fn register_body(email: &str) -> serde_json::Value {
        serde_json::json!({
            "email": email,
            "kdf": {"algorithm": "argon2id", "memory_kib": 19456, "iterations": 2, "parallelism": 1,
                    "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
            "auth_key": AUTH_KEY,
        })
    }

    /// A socket outlives its 15-minute access token: when its session can no longer be
    /// refreshed, the hourly maintenance ends the session and closes the socket.
    #[test]
    fn an_expired_session_ends_and_its_sockets_close() {
        let (core, dir) = test_core("expiry");
        pollster::block_on(async {
            let (_, signed) =
                call(&core, "/auth/register", register_body("expiry@example.com")).await;
            let bearer = |t: &serde_json::Value| format!("Bearer {}", t.as_str().unwrap());
            let req = Request::builder()
                .method("POST")
                .uri("/devices/register")
                .header("content-type", "application/json")
                .header("authorization", bearer(&signed["tokens"]["access_token"]))
                .body(br#"{"name":"Desk","platform":"linux"}"#.to_vec())
                .unwrap();
            let resp = core.handle(req, RequestContext::default()).await;
            let device: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            let upgrade = Request::builder()
                .uri("/realtime")
                .header("authorization", bearer(&device["tokens"]["access_token"]))
                .body(Vec::new())
                .unwrap();
            let grant = core
                .authorize_realtime(&upgrade, RequestContext::default())
                .await
                .unwrap();
            let (_, mut outbox) = core.ports.hub.connect(&grant).unwrap();

            let now = SystemClock.now_ms();
            assert_eq!(core.maintenance(now).await.unwrap().sessions_expired, 0);
            let lapsed = now + core.config.refresh_ttl_secs * 1000 + 60_000;
            assert_eq!(core.maintenance(lapsed).await.unwrap().sessions_expired, 1);
            let mut closed = None;
            while let Ok(out) = outbox.try_recv() {
                if let hub::Outgoing::Close(code, _) = out {
                    closed = Some(code);
                }
            }
            assert_eq!(closed, Some(udc_hub::protocol::close::REVOKED));
        });
        std::fs::remove_dir_all(dir).unwrap();
    }
}
