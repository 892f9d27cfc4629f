//! Core's outbound HTTP port on the Workers `fetch` API.

use udc_core::{Http, HttpError};
use worker::{Fetch, Headers, Method, Request, RequestInit};

pub struct WorkerHttp;

fn failed(e: impl std::fmt::Display) -> HttpError {
    HttpError(e.to_string())
}

impl Http for WorkerHttp {
    async fn send(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let (parts, body) = req.into_parts();
        let headers = Headers::new();
        for (name, value) in &parts.headers {
            headers
                .set(name.as_str(), value.to_str().map_err(failed)?)
                .map_err(failed)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(parts.method.as_str().to_owned()))
            .with_headers(headers);
        if !body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        let request = Request::new_with_init(&parts.uri.to_string(), &init).map_err(failed)?;
        let mut resp = Fetch::Request(request).send().await.map_err(failed)?;
        let mut out = http::Response::builder().status(resp.status_code());
        for (name, value) in resp.headers().entries() {
            out = out.header(name, value);
        }
        let body = resp.bytes().await.map_err(failed)?;
        out.body(body).map_err(failed)
    }
}
