//! Prints an access token of a fresh account's device on the udc at `UDC_BASE_URL`, for the
//! schema fuzzer (scripts/test.sh: without one it would only ever meet 401) and for load from
//! wrk (scripts/bench.sh).

use udc_conformance::Account;

#[tokio::main]
async fn main() {
    let account = Account::create().await;
    let device = account.device("Fuzzer").await;
    println!("{}", device.token());
}
