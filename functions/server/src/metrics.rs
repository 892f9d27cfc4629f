//! udc-server's metrics in Prometheus's text format, served on a listener of their own
//! (`--metrics-listen`, off by default: never on the public port). Counted only while that
//! listener is on. Names and units follow Prometheus's conventions (`_total`, `_seconds`,
//! `_bytes`); routes are templates, so the number of series is bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use udc_core::access_log::RequestLine;

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations at or under each bound (cumulative when written out).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", self.sum);
        let _ = writeln!(out, "{name}_count{labels} {}", self.count);
    }
}

/// One route's requests: looked up by the route's text, so counting one allocates nothing
/// once the route was seen.
#[derive(Default)]
struct RouteStats {
    /// (method, status) → answered; a route sees a handful.
    answered: Vec<(&'static str, u16, u64)>,
    latency: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    on: AtomicBool,
    routes: Mutex<BTreeMap<String, RouteStats>>,
    fanout: Mutex<Histogram>,
    sign_in_failures: AtomicU64,
    rate_limited: AtomicU64,
    events_logged: AtomicU64,
    frames_sent: AtomicU64,
    store_bytes_in: AtomicU64,
    store_bytes_out: AtomicU64,
    database_calls: AtomicU64,
    database_nanos: AtomicU64,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Open sockets and the accounts with a hub in memory, read when scraped.
pub struct HubCounts {
    pub sockets: usize,
    pub hubs: usize,
}

impl Metrics {
    pub fn turn_on(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub fn request(&self, line: &RequestLine<'_>) {
        if !self.on() {
            return;
        }
        {
            let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
            if !routes.contains_key(&line.route) {
                routes.insert(line.route.clone(), RouteStats::default());
            }
            if let Some(stats) = routes.get_mut(&line.route) {
                match stats
                    .answered
                    .iter_mut()
                    .find(|(m, s, _)| *m == line.method && *s == line.status)
                {
                    Some((_, _, n)) => *n += 1,
                    None => stats.answered.push((line.method, line.status, 1)),
                }
                stats.latency.observe(line.duration_ms / 1000.0);
            }
        }
        if line.route == "/auth/login" && line.status == 401 {
            self.sign_in_failures.fetch_add(1, Ordering::Relaxed);
        }
        if line.status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        // What the store took or served; a refused request's Content-Length is only a claim.
        if line.route == "store" && (200..300).contains(&line.status) {
            self.store_bytes_in
                .fetch_add(line.bytes_in, Ordering::Relaxed);
            self.store_bytes_out
                .fetch_add(line.bytes_out, Ordering::Relaxed);
        }
    }

    /// `count` events written to an account's log, handed to its sockets in `took`.
    pub fn events_logged(&self, count: usize, took: Duration) {
        if self.on() {
            self.events_logged
                .fetch_add(count as u64, Ordering::Relaxed);
            self.fanout
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .observe(took.as_secs_f64());
        }
    }

    pub fn frame_sent(&self) {
        if self.on() {
            self.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn database(&self, took: Duration) {
        if self.on() {
            self.database_calls.fetch_add(1, Ordering::Relaxed);
            self.database_nanos
                .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// Everything, in Prometheus's text format (version 0.0.4).
    pub fn render(&self, hub: HubCounts) -> String {
        let mut out = String::new();
        let name = family(
            &mut out,
            "udc_http_requests_total",
            "counter",
            "Requests answered, by route template, method and status.",
        );
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        for (route, stats) in routes.iter() {
            for (method, status, n) in &stats.answered {
                let _ = writeln!(
                    out,
                    "{name}{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    escape(route),
                    escape(method)
                );
            }
        }
        let name = family(
            &mut out,
            "udc_http_request_duration_seconds",
            "histogram",
            "Time from a request's head to its answer, by route template.",
        );
        for (route, stats) in routes.iter() {
            let labels = format!("route=\"{}\"", escape(route));
            stats.latency.write(&mut out, name, &labels);
        }
        drop(routes);
        let name = family(
            &mut out,
            "udc_event_fanout_seconds",
            "histogram",
            "Time to hand a change's events to its account's open sockets.",
        );
        self.fanout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(&mut out, name, "");
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let plain: [(&str, &str, &str, String); 10] = [
            (
                "udc_sockets_open",
                "gauge",
                "Realtime sockets open.",
                hub.sockets.to_string(),
            ),
            (
                "udc_hubs_in_memory",
                "gauge",
                "Accounts whose hub is in memory (they have sockets).",
                hub.hubs.to_string(),
            ),
            (
                "udc_events_logged_total",
                "counter",
                "Events written to accounts' logs.",
                load(&self.events_logged).to_string(),
            ),
            (
                "udc_hub_frames_sent_total",
                "counter",
                "Frames handed to sockets (events, presence, signals).",
                load(&self.frames_sent).to_string(),
            ),
            (
                "udc_sign_in_failures_total",
                "counter",
                "Password sign-ins refused (401).",
                load(&self.sign_in_failures).to_string(),
            ),
            (
                "udc_rate_limited_total",
                "counter",
                "Requests refused with 429.",
                load(&self.rate_limited).to_string(),
            ),
            (
                "udc_store_received_bytes_total",
                "counter",
                "File bytes the embedded store took (uploads).",
                load(&self.store_bytes_in).to_string(),
            ),
            (
                "udc_store_sent_bytes_total",
                "counter",
                "File bytes the embedded store served (downloads).",
                load(&self.store_bytes_out).to_string(),
            ),
            (
                "udc_database_calls_total",
                "counter",
                "Queries and transactions run on SQLite.",
                load(&self.database_calls).to_string(),
            ),
            (
                "udc_database_seconds_total",
                "counter",
                "Time spent in SQLite calls.",
                (load(&self.database_nanos) as f64 / 1e9).to_string(),
            ),
        ];
        for (name, kind, help, value) in plain {
            let name = family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

/// A metric family's HELP and TYPE lines; its name, for its samples.
fn family<'n>(out: &mut String, name: &'n str, kind: &str, help: &str) -> &'n str {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name
}

/// A label value as Prometheus reads it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_ends_at_its_count() {
        let mut h = Histogram::default();
        for s in [0.0005, 0.003, 0.003, 20.0] {
            h.observe(s);
        }
        let mut out = String::new();
        h.write(&mut out, "x_seconds", "route=\"/a\"");
        assert!(
            out.contains("x_seconds_bucket{route=\"/a\",le=\"0.001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{route=\"/a\",le=\"0.005\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{route=\"/a\",le=\"10\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{route=\"/a\"} 4\n"), "{out}");
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
