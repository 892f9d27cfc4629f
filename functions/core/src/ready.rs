//! `GET /ready`: whether this host can serve requests — its database answers with udc's tables
//! in it, and its object store takes a signed request. `/health` stays the cheap liveness check
//! that touches neither. What is down is named to anyone; why (addresses, the store's answer)
//! only in the host's log, with the request's id.

use http::StatusCode;
use serde::Serialize;

use crate::blob::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Clock, Http, Ports, Sql, Stmt};
use crate::web::Reply;
use crate::Core;

/// The object that answers HEAD: it need not exist (a 404 shows the store up and the signature
/// good, as a 200 would).
const PROBE_KEY: &str = "udc-ready-probe";

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Ok,
    Down,
    /// No object store configured: files are refused, the rest serves.
    NotConfigured,
}

#[derive(Serialize)]
struct Checks {
    database: Check,
    store: Check,
}

impl<P: Ports> Core<P> {
    pub(crate) async fn ready(&self) -> ApiResult<Reply> {
        let mut why = Vec::new();
        let database = match self
            .ports
            .sql()
            .query(Stmt::new("SELECT 1 FROM users LIMIT 1", vec![]))
            .await
        {
            Ok(_) => Check::Ok,
            Err(e) => {
                why.push(format!("database: {e}"));
                Check::Down
            }
        };
        let store = match &self.config.storage {
            None => Check::NotConfigured,
            Some(storage) => match self.probe_store(storage).await {
                Ok(()) => Check::Ok,
                Err(e) => {
                    why.push(format!("object store: {}", e.internal.unwrap_or(e.message)));
                    Check::Down
                }
            },
        };
        if why.is_empty() {
            return Reply::ok(serde_json::json!({
                "status": "ready",
                "checks": Checks { database, store },
            }));
        }
        let down: Vec<&str> = [(database, "the database"), (store, "the object store")]
            .into_iter()
            .filter(|(check, _)| *check == Check::Down)
            .map(|(_, name)| name)
            .collect();
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not ready: {} cannot be reached", down.join(" and ")),
        );
        err.internal = Some(why.join("; "));
        Err(err)
    }

    async fn probe_store(&self, storage: &crate::config::Storage) -> ApiResult<()> {
        let store = BlobStore::new(storage);
        let req = store.head(PROBE_KEY, self.ports.clock().now_ms())?;
        let resp = self.ports.http().send(req).await?;
        BlobStore::head_size(&resp).map(|_| ())
    }
}
