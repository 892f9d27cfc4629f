//! The realtime edge of core: who may open a socket (`GET /realtime`, upgraded by the host),
//! socket tickets for browsers, and `GET /events` for devices that cannot keep a socket.

use http::{Request, StatusCode};
use serde::Serialize;

use crate::auth::Caller;
use crate::crypto::sha256_hex;
use crate::error::{ApiError, ApiResult};
use crate::ports::{Hub, Ports, Sql, Stmt};
use crate::tokens::{self, AccessClaims};
use crate::web::{int_param, query_param, Reply};
use crate::{Core, RequestContext, Rq};

pub const TICKET_TTL_SECS: i64 = 60;

/// A device allowed onto its account's hub.
#[derive(Debug, Clone, PartialEq)]
pub struct RealtimeGrant {
    pub user_id: String,
    pub device_id: String,
    /// The socket lives only as long as this session.
    pub session_id: String,
    /// `?resume_after=N`: the last seq the device processed.
    pub resume_after: Option<u64>,
}

fn cursor(query: Option<&str>, name: &str) -> ApiResult<Option<u64>> {
    // Sequence numbers start at 1; 0 is "from the start".
    Ok(int_param(query, name, 0)?.map(|n| n.unsigned_abs()))
}

#[derive(Serialize)]
struct Ticket {
    ticket: String,
    expires_in: i64,
}

impl<P: Ports> Core<P> {
    /// Decides whether a socket may open, before the host upgrades: a device-bound access token
    /// (`Authorization: Bearer`) or a ticket (`?ticket=`), with a live session. On refusal the
    /// host sends `error_response(&err)` instead of upgrading.
    pub async fn authorize_realtime(
        &self,
        req: &Request<Vec<u8>>,
        ctx: RequestContext,
    ) -> ApiResult<RealtimeGrant> {
        let rq = self.rq(req, ctx);
        self.grant(&rq, req.uri().query()).await
    }

    async fn grant(&self, rq: &Rq<'_>, query: Option<&str>) -> ApiResult<RealtimeGrant> {
        let resume_after = cursor(query, "resume_after")?;
        let caller = match query_param(query, "ticket") {
            Some(ticket) => {
                let claims = tokens::verify_access(&self.config, rq.now_ms, ticket)?;
                if claims.scope.as_deref() != Some("realtime") {
                    return Err(ApiError::unauthorized(
                        "invalid_token",
                        "not a realtime ticket",
                    ));
                }
                let caller = self.live_caller(Caller::of(claims), Vec::new()).await?.0;
                self.spend_ticket(ticket, rq.now_ms).await?;
                caller
            }
            None => self.caller(rq).await?,
        };
        Ok(RealtimeGrant {
            user_id: caller.user_id.clone(),
            device_id: caller.device()?.to_owned(),
            session_id: caller.session_id.clone(),
            resume_after,
        })
    }

    /// A ticket travels in a URL (proxies and histories keep those): it opens one socket only.
    async fn spend_ticket(&self, ticket: &str, now_ms: i64) -> ApiResult<()> {
        let changes = self
            .ports
            .sql()
            .batch(vec![Stmt::new(
                "INSERT INTO realtime_tickets_used (ticket_hash, expires_at) VALUES (?, ?) \
                 ON CONFLICT (ticket_hash) DO NOTHING",
                vec![
                    sha256_hex(ticket.as_bytes()).into(),
                    (now_ms + TICKET_TTL_SECS * 1000).into(),
                ],
            )])
            .await?;
        if changes.first() != Some(&1) {
            return Err(ApiError::unauthorized(
                "ticket_used",
                "this ticket has already opened a socket; ask for a new one",
            ));
        }
        Ok(())
    }

    pub(crate) async fn realtime_ticket(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let device_id = caller.device()?.to_owned();
        let ticket = tokens::mint(
            &self.config,
            rq.now_ms,
            AccessClaims {
                sub: caller.user_id,
                sid: caller.session_id,
                did: Some(device_id),
                scope: Some("realtime".into()),
            },
            TICKET_TTL_SECS,
        )?;
        Reply::json(
            StatusCode::CREATED,
            Ticket {
                ticket,
                expires_in: TICKET_TTL_SECS,
            },
        )
    }

    pub(crate) async fn events(&self, rq: &Rq<'_>) -> ApiResult<Reply> {
        let caller = self.caller(rq).await?;
        let device_id = caller.device()?.to_owned();
        let after = cursor(rq.query, "after")?.unwrap_or(0);
        let page = self
            .ports
            .hub()
            .events_after(&caller.user_id, &device_id, after)
            .await?;
        Reply::ok(page)
    }
}
