//! udc on Cloudflare Workers. Each account's data lives in its own Durable Object
//! (`account_object`), which runs core over its own SQLite; the Worker tells from the request
//! which account it is for (`udc_core::routing`, and the directory in D1 for an email or an
//! approval request) and forwards it there: one hop. What is no account's (health, a sign-in to
//! an email with no account, a token that is not one) the Worker's own core answers over D1,
//! which keeps the directory — and the rows of accounts from before, until each moves into its
//! object on its first request.

mod account_object;
mod d1;
mod fetch;
mod hub;
mod object_sql;
mod object_store;
mod ports;

/// The account's Durable Object class, exported from this Worker (see wrangler.toml).
pub use account_object::UserHub;

use serde_json::json;
use udc_core::access_log::{Caller, RequestLine};
use udc_core::{
    error_response, request_id, ApiError, Clock, Config, Core, InternalDetail, RequestContext,
    RequestId,
};
use worker::{
    event, AnalyticsEngineDataPointBuilder, AnalyticsEngineDataset, Context, Env, Headers, Request,
    Response, Result, ScheduleContext, ScheduledEvent,
};

use udc_core::routing::Destination;

use crate::account_object::Route;

use crate::d1::D1Sql;
use crate::hub::WorkerHub;
pub(crate) use crate::ports::WorkerClock;
use crate::ports::{AnyHub, AnySql, CfPorts};

/// Secrets (`wrangler secret put`, `.dev.vars`) first, then plain `[vars]`.
fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|s| s.to_string())
        .or_else(|| env.var(name).ok().map(|v| v.to_string()))
}

pub(crate) async fn to_http(mut req: Request) -> Result<http::Request<Vec<u8>>> {
    let mut builder = http::Request::builder()
        .method(raw_method(&req).as_str())
        .uri(req.url()?.as_str());
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = req.bytes().await?;
    builder
        .body(body)
        .map_err(|e| worker::Error::RustError(e.to_string()))
}

/// What a request's log line needs, taken as it arrives.
struct Started {
    id: RequestId,
    method: http::Method,
    path: String,
    at_ms: i64,
    bytes_in: u64,
    /// The Analytics Engine dataset (`METRICS` in wrangler.toml), when bound.
    metrics: Option<AnalyticsEngineDataset>,
}

impl Started {
    /// The request's line on the console, as JSON: Workers Logs indexes it by field.
    fn log<B>(&self, resp: &http::Response<B>, bytes_out: u64) {
        self.write(&self.line(resp, bytes_out));
    }

    fn line<'a, B>(&'a self, resp: &'a http::Response<B>, bytes_out: u64) -> RequestLine<'a> {
        let now = WorkerClock.now_ms();
        RequestLine::new(
            now,
            &self.id,
            &self.method,
            &self.path,
            resp,
            (now - self.at_ms) as f64,
            self.bytes_in,
            bytes_out,
        )
    }

    /// The line of a request the account's object answered, from the headers it put on its
    /// answer for this (`account_object::LOG_ACCOUNT`...), which go no further.
    fn log_forwarded(&self, resp: Response) -> Result<Response> {
        if resp.status_code() == 101 {
            // An opened socket: its answer cannot be rebuilt, and it has nothing to remove.
            self.log_status(101);
            return Ok(resp);
        }
        let headers = Headers::new();
        let (mut account, mut device, mut error, mut bytes_out) = (None, None, None, 0);
        for (name, value) in resp.headers().entries() {
            match name.as_str() {
                account_object::LOG_ACCOUNT => account = Some(value),
                account_object::LOG_DEVICE => device = Some(value),
                account_object::LOG_ERROR => error = Some(value),
                other => {
                    if other == "content-length" {
                        bytes_out = value.parse().unwrap_or(0);
                    }
                    headers.append(&name, &value)?;
                }
            }
        }
        let mut answered = http::Response::builder()
            .status(resp.status_code())
            .body(())
            .unwrap_or_default();
        if let Some(account_id) = account {
            answered.extensions_mut().insert(Caller {
                account_id,
                device_id: device,
            });
        }
        let mut line = self.line(&answered, bytes_out);
        line.error = error.as_deref();
        self.write(&line);
        Ok(resp.with_headers(headers))
    }

    fn write(&self, line: &RequestLine) {
        worker::console_log!("{}", line.to_json());
        if let Some(dataset) = &self.metrics {
            // One point per request: blobs route, method, status, error; doubles duration (ms),
            // bytes in, bytes out, status; indexed (sampled) by route.
            let status = line.status.to_string();
            let written = AnalyticsEngineDataPointBuilder::new()
                .indexes([line.route.as_str()])
                .blobs([
                    line.route.as_str(),
                    line.method,
                    status.as_str(),
                    line.error.unwrap_or(""),
                ])
                .doubles([
                    line.duration_ms,
                    line.bytes_in as f64,
                    line.bytes_out as f64,
                    f64::from(line.status),
                ])
                .write_to(dataset);
            if let Err(e) = written {
                log_event(
                    true,
                    "metrics point not written",
                    json!({ "error": e.to_string() }),
                );
            }
        }
    }

    /// The line of an answer that is not core's (the web app's files, an opened socket).
    fn log_status(&self, status: u16) {
        let resp = http::Response::builder()
            .status(status)
            .body(())
            .unwrap_or_default();
        self.log(&resp, 0);
    }
}

/// A line of the log that is no request's: JSON like those, so Workers Logs indexes it.
pub(crate) fn log_event(error: bool, message: &str, mut fields: serde_json::Value) {
    fields["level"] = if error { "error" } else { "info" }.into();
    fields["message"] = message.into();
    if error {
        worker::console_error!("{fields}");
    } else {
        worker::console_log!("{fields}");
    }
}

fn from_http(resp: http::Response<Vec<u8>>, at: &Started) -> Result<Response> {
    let resp = request_id::stamp(resp, &at.id);
    at.log(&resp, resp.body().len() as u64);
    to_worker_response(resp, at.id.as_str())
}

/// Core's answer as workerd's, its internal detail (never sent) logged under `request_id`.
pub(crate) fn to_worker_response(
    resp: http::Response<Vec<u8>>,
    request_id: &str,
) -> Result<Response> {
    let (parts, body) = resp.into_parts();
    if let Some(InternalDetail(detail)) = parts.extensions.get::<InternalDetail>() {
        let fields = json!({ "request_id": request_id, "detail": detail });
        log_event(true, "internal error", fields);
    }
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers.set(name.as_str(), v)?;
        }
    }
    let resp = if body.is_empty() {
        Response::empty()?
    } else {
        Response::from_bytes(body)?
    };
    Ok(resp
        .with_status(parts.status.as_u16())
        .with_headers(headers))
}

thread_local! {
    // Secrets only change with a new deployment, which starts new isolates.
    static CONFIG: std::cell::OnceCell<Config> = const { std::cell::OnceCell::new() };
    // Signatures the isolate checked: a device sends one token with every request.
    static VERIFIED: udc_core::tokens::VerifiedTokens = udc_core::tokens::VerifiedTokens::default();
}

pub(crate) fn config(env: &Env) -> std::result::Result<Config, String> {
    CONFIG.with(|cell| {
        if let Some(c) = cell.get() {
            return Ok(c.clone());
        }
        let c = Config::from_lookup(|name| setting(env, name))?;
        Ok(cell.get_or_init(|| c).clone())
    })
}

fn core(env: &Env, config: Config) -> Result<Core<CfPorts>> {
    Ok(Core::new(
        CfPorts {
            sql: AnySql::D1(D1Sql(env.d1("DB")?)),
            directory: D1Sql(env.d1("DB")?),
            hub: AnyHub::Worker(WorkerHub(env.durable_object("HUB")?)),
        },
        config,
    ))
}

/// The cron trigger in wrangler.toml: core's periodic cleanup.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let result = match config(&env) {
        Ok(config) => match core(&env, config) {
            Ok(core) => core
                .maintenance(WorkerClock.now_ms())
                .await
                .map(|swept| format!("{swept:?}"))
                .map_err(|e| e.internal.unwrap_or(e.message)),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(swept) => log_event(
            false,
            "scheduled job done",
            json!({ "job": "maintenance", "swept": swept }),
        ),
        Err(e) => log_event(
            true,
            "scheduled job failed",
            json!({ "job": "maintenance", "error": e }),
        ),
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let header = |name| req.headers().get(name).ok().flatten();
    let at = Started {
        id: RequestId::pick(
            header(request_id::HEADER).as_deref(),
            header("cf-ray").as_deref(),
        ),
        method: http_method(&req),
        path: req.path(),
        at_ms: WorkerClock.now_ms(),
        bytes_in: header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        metrics: env.analytics_engine("METRICS").ok(),
    };
    match serve(req, env, &at).await {
        Ok(resp) => Ok(resp),
        // What failed on the way (reading the request, a binding) still answers in the API's
        // error shape, not workerd's bare 500.
        Err(e) => {
            let fields = json!({ "request_id": at.id.as_str(), "error": e.to_string() });
            log_event(true, "request failed", fields);
            from_http(
                error_response(&ApiError::internal("the request failed")),
                &at,
            )
        }
    }
}

async fn serve(req: Request, env: Env, at: &Started) -> Result<Response> {
    let ctx = RequestContext {
        client_ip: req.headers().get("cf-connecting-ip")?,
        account: None,
    };
    let config = match config(&env) {
        Ok(c) => c,
        Err(missing) => {
            log_event(true, "misconfigured", json!({ "error": missing }));
            return from_http(error_response(&ApiError::internal(missing)), at);
        }
    };
    if udc_core::app_shell::is_app_request(&http_method(&req), &req.path()) {
        return web_app(&env, &config, req, at).await;
    }
    let core = core(&env, config)?;
    let upgrade = req
        .headers()
        .get("upgrade")?
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let is_realtime = req.path() == "/realtime";
    // A method workerd's request type does not know would arrive at the object as a GET: core
    // answers it here (405).
    let method = worker::Method::from(raw_method(&req));
    let forwardable = method.to_string() == raw_method(&req);
    let req = to_http(req).await?;
    let account = match account_of(&core, &req).await {
        Ok(account) => account,
        Err(e) => return from_http(error_response(&e), at),
    };
    if let (Some((account, route)), true) = (account, forwardable) {
        let resp = forward(&env, &account, route, method, &req, at).await?;
        // An account the request only named, which no object or D1 holds: no account's.
        if !resp.headers().has(account_object::NOT_HERE)? {
            return at.log_forwarded(resp);
        }
    }
    if is_realtime && upgrade {
        return realtime(&core, req, ctx, at).await;
    }
    from_http(core.handle(req, ctx).await, at)
}

/// The account whose object answers `req`, if any (`udc_core::routing`), and how it was known;
/// else the Worker's own core answers it, over D1.
async fn account_of(
    core: &Core<CfPorts>,
    req: &http::Request<Vec<u8>>,
) -> udc_core::ApiResult<Option<(String, Route)>> {
    let uri = req.uri();
    let destination = VERIFIED.with(|verified| {
        udc_core::routing::destination(
            &core.config,
            verified,
            WorkerClock.now_ms(),
            uri.path(),
            uri.query(),
            req.headers(),
            req.body(),
        )
    });
    let directory = &core.ports.directory;
    let known = |id: Option<String>| id.map(|id| (id, Route::Known));
    Ok(match destination {
        Destination::Account(id) => Some((id, Route::Known)),
        Destination::Named(id) => Some((id, Route::Named)),
        Destination::Email(email) => {
            match udc_core::directory::find_email(directory, &email).await? {
                Some(id) => Some((id, Route::Known)),
                // A sign-up to an email nobody holds makes a new account, in a new object.
                None if uri.path().trim_end_matches('/') == "/auth/register"
                    && req.method() == http::Method::POST =>
                {
                    Some((core.new_id()?, Route::New))
                }
                None => None,
            }
        }
        Destination::Approval(id) => known(
            udc_core::directory::find_approval(directory, &id)
                .await?
                .flatten(),
        ),
        Destination::RefreshHash(hash) => {
            known(udc_core::directory::find_refresh(directory, &hash).await?)
        }
        Destination::Shared => None,
    })
}

/// Hands the request to its account's object, which answers it (a socket's upgrade included).
async fn forward(
    env: &Env,
    account: &str,
    route: Route,
    method: worker::Method,
    req: &http::Request<Vec<u8>>,
    at: &Started,
) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in req.headers() {
        let name = name.as_str();
        // The Worker's own headers to the object are the Worker's alone.
        if [
            account_object::FORWARDED,
            account_object::ACCOUNT,
            account_object::ROUTE,
        ]
        .contains(&name)
        {
            continue;
        }
        if let Ok(v) = value.to_str() {
            headers.append(name, v)?;
        }
    }
    headers.set(account_object::FORWARDED, "1")?;
    headers.set(account_object::ACCOUNT, account)?;
    headers.set(account_object::ROUTE, route.as_str())?;
    headers.set(request_id::HEADER, at.id.as_str())?;
    let mut init = worker::RequestInit::new();
    init.with_method(method).with_headers(headers);
    if !req.body().is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(req.body().as_slice()).into()));
    }
    let forwarded = Request::new_with_init(&req.uri().to_string(), &init)?;
    env.durable_object("HUB")?
        .id_from_name(account)?
        .get_stub()?
        .fetch_with_request(forwarded)
        .await
}

fn http_method(req: &Request) -> http::Method {
    http::Method::from_bytes(raw_method(req).as_bytes()).unwrap_or(http::Method::POST)
}

/// The method as sent: `worker::Method` turns one it does not know (`QUERY`, `FOO`) into GET,
/// which would run a GET handler; core answers such a method 405.
fn raw_method(req: &Request) -> String {
    req.inner().method()
}

/// The web app, from Workers Static Assets (`[assets]` in wrangler.toml: unknown paths get the
/// app's page), with the deployment's security headers and cache rule from core.
async fn web_app(env: &Env, config: &Config, req: Request, at: &Started) -> Result<Response> {
    let path = req.path();
    // A deployment without the assets binding (or a failing fetch) answers in the API's error
    // shape, not workerd's bare 500.
    let fetched = match env.assets("ASSETS") {
        Ok(assets) => assets.fetch_request(req).await,
        Err(e) => Err(e),
    };
    let resp = match fetched {
        Ok(resp) => resp,
        Err(e) => {
            log_event(
                true,
                "web app assets unavailable",
                json!({ "error": e.to_string() }),
            );
            return from_http(
                error_response(&ApiError::internal("the web app's files are unavailable")),
                at,
            );
        }
    };
    let is_page = resp
        .headers()
        .get("content-type")?
        .is_some_and(|t| t.starts_with("text/html"));
    if path.starts_with("/assets/") && is_page {
        // A stale page asking for an old build's script gets a 404, not the app's HTML (as
        // udc-server and Spin answer).
        return from_http(error_response(&ApiError::not_found("asset")), at);
    }
    let headers = Headers::new();
    for (name, value) in resp.headers().entries() {
        headers.set(&name, &value)?;
    }
    for (name, value) in udc_core::app_shell::app_headers(config) {
        headers.set(name, &value)?;
    }
    headers.set("cache-control", udc_core::app_shell::cache_control(&path))?;
    headers.set(request_id::HEADER, at.id.as_str())?;
    at.log_status(resp.status_code());
    Ok(resp.with_headers(headers))
}

/// `GET /realtime` with a ticket or token that names no account: core says why it is refused.
async fn realtime(
    core: &Core<CfPorts>,
    req: http::Request<Vec<u8>>,
    ctx: RequestContext,
    at: &Started,
) -> Result<Response> {
    let err = match core.authorize_realtime(&req, ctx).await {
        Err(err) => err,
        // A ticket or token core takes names its account, whose object took the socket.
        Ok(_) => ApiError::internal("a socket's account was not found"),
    };
    from_http(error_response(&err), at)
}
