//! Core's outbound HTTP port on reqwest. Core's future is polled outside tokio's context once
//! it waits (see `run_inline`), so each request is spawned onto the runtime and awaited there.

use udc_core::{Http, HttpError};

pub struct ServerHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl ServerHttp {
    pub fn new(runtime: tokio::runtime::Handle) -> Result<ServerHttp, reqwest::Error> {
        Ok(ServerHttp {
            client: reqwest::Client::builder()
                // Completing a multipart upload may copy gigabytes at the store first.
                .timeout(std::time::Duration::from_secs(300))
                .build()?,
            runtime,
        })
    }
}

impl Http for ServerHttp {
    async fn send(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = req.into_parts();
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = http::Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            let body = resp.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(out.body(body))
        });
        match task.await {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(e))) => Err(HttpError(e.to_string())),
            // Its URL may be presigned: never part of an error's text.
            Ok(Err(e)) => Err(HttpError(e.without_url().to_string())),
            Err(e) => Err(HttpError(e.to_string())),
        }
    }
}
