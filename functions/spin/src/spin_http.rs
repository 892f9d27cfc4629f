//! Core's outbound HTTP port on Spin's outgoing handler (the store's host must be in the
//! component's `allowed_outbound_hosts`).

use udc_core::{Http, HttpError};

pub struct SpinHttp;

impl Http for SpinHttp {
    async fn send(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        spin_sdk::http::send::<_, http::Response<Vec<u8>>>(req)
            .await
            .map_err(|e| HttpError(e.to_string()))
    }
}
