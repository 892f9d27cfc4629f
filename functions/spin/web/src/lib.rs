//! The web app as its own Spin component: `spin.toml` routes the API's paths
//! (`udc_core::app_shell::API_SEGMENTS`) to the API's component and everything else here. Apart,
//! the API's component is smaller to instantiate on every request (the app's files were a quarter
//! of it), and this one is given no secret: only the store's endpoint, for the page's CSP.

use std::io::Write;

use udc_core::access_log::{self, RequestLine};
use udc_core::{app_shell, error_response, request_id, ApiError, Clock, RequestId, SystemClock};

/// The component's entry point. `#[http_component]` generates the export the component model
/// calls, which must be an unsafe `extern` function: the only unsafe code of this crate.
#[allow(unsafe_code)]
mod entry {
    #[spin_sdk::http_component]
    fn handle(req: http::Request<Vec<u8>>) -> anyhow::Result<http::Response<Vec<u8>>> {
        Ok(super::handle(&req))
    }
}

fn handle(req: &http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
    let started = std::time::Instant::now();
    let id = RequestId::of(req.headers(), None);
    let resp = request_id::stamp(answer(req), &id);
    // Spin keeps a component's stdout and stderr as its log; never println!/eprintln!, which
    // panic when the write fails.
    if let Some(line) = access_log::internal_error_line(SystemClock.now_ms(), &id, &resp) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    let line = RequestLine::new(
        SystemClock.now_ms(),
        &id,
        req.method(),
        req.uri().path(),
        &resp,
        started.elapsed().as_secs_f64() * 1000.0,
        req.body().len() as u64,
        resp.body().len() as u64,
    );
    let _ = writeln!(std::io::stdout(), "{}", line.to_json());
    resp
}

fn answer(req: &http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
    let path = req.uri().path();
    // What the app does not take (a POST, say) on a path that is not the API's: the API's 404.
    if !app_shell::is_app_request(req.method(), path) {
        return udc_core::web::no_route(path);
    }
    let endpoint = spin_sdk::variables::get("udc_s3_endpoint").ok();
    match app_shell::store_headers(endpoint.as_deref()) {
        Ok(security) => udc_web_assets::respond(req, &security, app_shell::cache_control(path)),
        Err(misconfigured) => error_response(&ApiError::internal(misconfigured)),
    }
}
