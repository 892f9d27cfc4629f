//! udc-server's log: `tracing`, one JSON object per line (`--log-format json`, the default when
//! stderr is not a terminal) or readable lines for a person (`pretty`, the default at a
//! terminal), filtered like RUST_LOG by `UDC_LOG` (default `info,s3s=off`). One line per request
//! (`udc::request`, from core's `access_log`), lines for sockets opening and closing, scheduled
//! jobs and internal errors. Never a token, key, password or request body.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use udc_core::access_log::RequestLine;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Pretty,
}

/// Keep it while the server runs: dropping it writes out the lines still queued.
pub type Guard = tracing_appender::non_blocking::WorkerGuard;

pub fn init(format: Option<Format>) -> Guard {
    // The embedded store's library logs each refused request as an error, and at debug the
    // signatures it compared: udc's own request lines cover the store (route `store`).
    let filter =
        EnvFilter::try_from_env("UDC_LOG").unwrap_or_else(|_| EnvFilter::new("info,s3s=off"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        Format::Pretty
    } else {
        Format::Json
    });
    // Lines are written by a thread of their own, many per write: a request never waits on
    // the log's disk (under a burst the disk cannot take, lines are dropped, not requests).
    // The thread writes out its buffer whenever it has no line left to take; unbuffered, it
    // made one `write` per line: its thread was an eighth of the server's CPU under load.
    let stderr = std::io::BufWriter::new(std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking(stderr);
    // A line that cannot be written (the log's disk is full) is dropped: reporting that on
    // stderr, as the subscriber would, panics when stderr is that file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false);
    // A second init (a test's) keeps the first.
    let _ = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        Format::Pretty => builder.try_init(),
    };
    guard
}

/// A request's line: a warning for refused credentials and rate limits, an error for a 5xx.
pub fn request(line: &RequestLine<'_>) {
    macro_rules! at {
        ($level:ident) => {
            tracing::$level!(
                target: "udc::request",
                request_id = line.request_id,
                method = line.method,
                route = line.route.as_str(),
                status = line.status,
                duration_ms = line.duration_ms,
                account_id = line.account_id,
                device_id = line.device_id,
                error = line.error,
                bytes_in = line.bytes_in,
                bytes_out = line.bytes_out,
                "request"
            )
        };
    }
    match line.status {
        500.. => at!(error),
        401 | 403 | 429 => at!(warn),
        _ => at!(info),
    }
}
