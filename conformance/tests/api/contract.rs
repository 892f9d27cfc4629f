//! The suite's own check of the contract: it sees every request the suite's client sends.
//! (It once saw none: the client kept its observer and never called it.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Method;
use udc_agent::client::{RawResponse, Sent};
use udc_conformance::*;

#[tokio::test]
async fn every_request_and_answer_reach_the_contract_check() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let api = udc_agent::Client::new(&base_url()).with_observer(Arc::new(
        move |sent: &Sent, resp: &RawResponse| {
            assert_eq!((sent.method, sent.path), (&Method::GET, "/devices"));
            assert_eq!(resp.status, 401);
            counter.fetch_add(1, Ordering::SeqCst);
        },
    ));
    api.raw(Method::GET, "/devices", None, None, &[])
        .await
        .expect("request");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}
