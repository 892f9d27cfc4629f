//! `WorkerHub`: the hub port of the Worker's own core (over D1: what is no account's, and the
//! rows of accounts from before they moved into their objects) — calls to the account's
//! `UserHub` Durable Object (`idFromName(user_id)`) on its hub routes, which no client can
//! reach (a client's request reaches an object only marked as forwarded).

use udc_core::HubError;
use udc_hub::{DevicePresence, EventsPage, Outboxed, Relay, Revoked};
use worker::{Headers, Method, ObjectNamespace, Request, RequestInit, Response, Stub};

pub struct WorkerHub(pub ObjectNamespace);

impl WorkerHub {
    fn stub(&self, user_id: &str) -> worker::Result<Stub> {
        self.0.id_from_name(user_id)?.get_stub()
    }

    async fn call(
        &self,
        user_id: &str,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Response, HubError> {
        let mut init = RequestInit::new();
        let headers = Headers::new();
        headers
            .set(crate::account_object::ACCOUNT, user_id)
            .map_err(HubError::new)?;
        if let Some(body) = body {
            headers
                .set("content-type", "application/json")
                .map_err(HubError::new)?;
            init.with_body(Some(body.into()));
        }
        init.with_method(method).with_headers(headers);
        let req =
            Request::new_with_init(&format!("https://hub{path}"), &init).map_err(HubError::new)?;
        let mut resp = self
            .stub(user_id)
            .map_err(HubError::new)?
            .fetch_with_request(req)
            .await
            .map_err(HubError::new)?;
        if !(200..300).contains(&resp.status_code()) {
            let text = resp.text().await.unwrap_or_default();
            return Err(HubError(format!(
                "hub {path} answered {}: {text}",
                resp.status_code()
            )));
        }
        Ok(resp)
    }
}

impl udc_core::Hub for WorkerHub {
    /// Core's database is D1; the log is each account's Durable Object: a change's events go
    /// through the outbox in D1.
    fn logs_in_sql(&self) -> bool {
        false
    }

    async fn logged(&self, _user_id: &str, _count: usize) -> Result<(), HubError> {
        Ok(())
    }

    async fn take_outboxed(&self, user_id: &str, batch: Vec<Outboxed>) -> Result<u64, HubError> {
        let body = serde_json::to_string(&batch).map_err(HubError::new)?;
        let taken: serde_json::Value = self
            .call(user_id, Method::Post, "/take", Some(body))
            .await?
            .json()
            .await
            .map_err(HubError::new)?;
        taken["taken"]
            .as_u64()
            .ok_or_else(|| HubError(format!("hub /take answered {taken}")))
    }

    async fn relay(&self, user_id: &str, relay: Relay) -> Result<usize, HubError> {
        let body = serde_json::to_string(&relay).map_err(HubError::new)?;
        let reached: serde_json::Value = self
            .call(user_id, Method::Post, "/relay", Some(body))
            .await?
            .json()
            .await
            .map_err(HubError::new)?;
        Ok(reached["reached"].as_u64().unwrap_or(0) as usize)
    }

    async fn presence(&self, user_id: &str) -> Result<Vec<DevicePresence>, HubError> {
        self.call(user_id, Method::Get, "/presence", None)
            .await?
            .json()
            .await
            .map_err(HubError::new)
    }

    async fn revoke(&self, user_id: &str, revoked: Revoked) -> Result<(), HubError> {
        let body = serde_json::to_string(&revoked).map_err(HubError::new)?;
        self.call(user_id, Method::Post, "/revoke", Some(body))
            .await
            .map(|_| ())
    }

    async fn forget_account(&self, user_id: &str) -> Result<(), HubError> {
        self.call(user_id, Method::Post, "/erase", None)
            .await
            .map(|_| ())
    }

    async fn events_after(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
    ) -> Result<EventsPage, HubError> {
        let path = format!("/events?device={device_id}&after={after}");
        self.call(user_id, Method::Get, &path, None)
            .await?
            .json()
            .await
            .map_err(HubError::new)
    }
}
