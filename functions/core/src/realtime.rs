//! The realtime edge of core: who may open a socket (`GET /realtime`, upgraded by the host),
//! socket tickets for browsers, and `GET /events` for devices that cannot keep a socket.

use http::{Request, StatusCode};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::ports::{Hub, Ports};
use crate::tokens::{self, AccessClaims};
use crate::web::{query_param, Reply};
use crate::{Core, RequestContext, Rq};

pub const TICKET_TTL_SECS: i64 = 60;

/// A device allowed onto its account's hub.
#[derive(Debug, Clone, PartialEq)]
pub struct RealtimeGrant {
    pub user_id: String,
    pub device_id: String,
    /// `?resume_after=N`: the last seq the device processed.
    pub resume_after: Option<u64>,
}

fn cursor(query: Option<&str>, name: &str) -> ApiResult<Option<u64>> {
    query_param(query, name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("{name}: must be a non-negative integer")))
        })
        .transpose()
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
                self.live_caller(
                    AccessClaims {
                        scope: None,
                        ..claims
                    },
                    |_| Vec::new(),
                )
                .await?
                .0
            }
            None => self.caller(rq).await?,
        };
        Ok(RealtimeGrant {
            user_id: caller.user_id.clone(),
            device_id: caller.device()?.to_owned(),
            resume_after,
        })
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
