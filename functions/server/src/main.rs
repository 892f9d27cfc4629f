//! udc-server: udc on one machine. `cargo run -p udc-server` and it listens on 127.0.0.1:8080
//! with its SQLite database under the user's data directory.

mod ports;
mod settings;
mod sqlite;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, Response};
use axum::Router;
use clap::{Parser, Subcommand};
use udc_core::{error_response, ApiError, Clock, Core, InternalDetail, RequestContext};

use crate::ports::{ServerPorts, SystemClock};
use crate::sqlite::SqliteSql;

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
    /// Where the SQLite database and generated local secrets live.
    #[arg(long, env = "UDC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A file of KEY=VALUE settings (same names as the UDC_* environment variables).
    #[arg(long, env = "UDC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a fresh set of secrets as KEY=VALUE lines and exit.
    GenSecrets,
}

type App = Arc<Core<ServerPorts>>;

async fn handle(
    State(core): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
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
    let ctx = RequestContext {
        client_ip: Some(peer.ip().to_string()),
    };
    // Core's futures are not Send (they are single-threaded on the edge), and the SQLite port
    // never actually waits, so each request runs to completion on a blocking thread.
    let resp = tokio::task::spawn_blocking(move || pollster::block_on(core.handle(req, ctx)))
        .await
        .unwrap_or_else(|e| error_response(&ApiError::internal(format!("handler failed: {e}"))));
    if let Some(InternalDetail(detail)) = resp.extensions().get::<InternalDetail>() {
        eprintln!("udc-server: internal error: {detail}");
    }
    resp.map(Body::from)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Command::GenSecrets) = args.command {
        return settings::print_new_secrets();
    }
    let data_dir = args.data_dir.unwrap_or_else(settings::default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let config = settings::load(&data_dir, args.config.as_deref())?;
    let db_path = data_dir.join("udc.sqlite3");
    let sql = SqliteSql::open(&db_path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", db_path.display()))?;
    let applied = udc_core::migrations::apply(&sql, SystemClock.now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("migrating {}: {e}", db_path.display()))?;
    if !applied.is_empty() {
        eprintln!("udc-server: applied migrations {}", applied.join(", "));
    }
    if config.test_mode {
        eprintln!(
            "udc-server: TEST MODE: clients may move the clock; never use this in production"
        );
    }
    let core: App = Arc::new(Core::new(ServerPorts { sql }, config));
    let app = Router::new().fallback(handle).with_state(core);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "udc-server listening on http://{addr} (data in {})",
        data_dir.display()
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use udc_core::Sql;

    /// What a stolen database holds: no auth key, no refresh token, nothing a client sent in
    /// the clear that would let someone sign in without an Argon2id per guess.
    #[test]
    fn the_database_keeps_only_keyed_hashes_of_credentials() {
        let dir = std::env::temp_dir().join(format!("udc-server-test-{}", std::process::id()));
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
        pollster::block_on(async {
            udc_core::migrations::apply(&sql, 0).await.unwrap();
            let core = Core::new(ServerPorts { sql }, config);
            let auth_key = "c2VjcmV0LWF1dGgta2V5LXRoYXQtaXMtMzItYnl0ZXM="; // 32 bytes
            let body = serde_json::json!({
                "email": "owner@example.com",
                "kdf": {"algorithm": "argon2id", "memory_kib": 19456, "iterations": 2, "parallelism": 1,
                        "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
                "auth_key": auth_key,
            });
            let req = Request::builder()
                .method("POST")
                .uri("/auth/register")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            let resp = core.handle(req, RequestContext::default()).await;
            assert_eq!(resp.status(), 201);
            let answer: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            let refresh = answer["tokens"]["refresh_token"].as_str().unwrap();

            let dump: String = core
                .ports
                .sql
                .query(udc_core::Stmt::new(
                    "SELECT u.auth_hash || ' ' || t.token_hash FROM users u, refresh_tokens t",
                    vec![],
                ))
                .await
                .unwrap()
                .into_iter()
                .map(|r| format!("{r:?}"))
                .collect();
            use base64::Engine;
            let raw_key = base64::engine::general_purpose::STANDARD
                .decode(auth_key)
                .unwrap();
            for secret in [
                auth_key.to_owned(),
                hex::encode(&raw_key),
                refresh.to_owned(),
            ] {
                assert!(
                    !dump.contains(&secret),
                    "{secret} stored in the clear: {dump}"
                );
            }
        });
        std::fs::remove_dir_all(dir).unwrap();
    }
}
