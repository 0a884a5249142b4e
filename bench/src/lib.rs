//! Load harness for Enrichment: an **open-loop, fixed offered rate** REST load generator.
//!
//! # Open loop and coordinated omission
//!
//! A *closed-loop* generator (N workers, each sending its next request when the previous one
//! answers) slows down whenever the server slows down: during a 200 ms stall it simply stops
//! sending, so the stall shows up as one slow sample instead of the hundreds of requests real
//! clients would have sent meanwhile. That is *coordinated omission*: the generator coordinates
//! with the server and omits exactly the samples that would have been bad.
//!
//! This generator is *open loop*. Request `i` has a fixed **scheduled send time**
//! `start + i / rate`, computed before the run and independent of how the server behaves.
//! Latency is measured from that scheduled time to the moment the whole response body has been
//! read, so any delay — in the server, in the connection pool, or in this process's own
//! scheduler — counts against the request that suffered it.
//!
//! In-flight requests are bounded by `--connections`. When every slot is busy at a request's
//! scheduled time, the request is **dropped** (counted, never sent) rather than queued: queueing
//! would silently turn the run back into a closed loop. A non-zero drop count means the server
//! (or this generator) could not sustain the offered rate with that much concurrency, and the
//! percentiles of the requests that *were* sent are then an under-estimate. Read them together.
//!
//! # What the numbers mean
//!
//! - **offered rate**: `--rate`, requests per second put on the schedule.
//! - **scheduled**: requests whose scheduled time falls in the measured window (after warmup).
//! - **sent / dropped**: scheduled requests that got an in-flight slot / that did not.
//! - **2xx, 4xx, 5xx, other**: HTTP responses by status class (`other` is 1xx/3xx);
//!   **errors** are transport failures and timeouts (no HTTP status).
//! - **achieved rate**: HTTP responses (any status) to measured requests divided by the measured
//!   window, which is `--duration` or, if later responses are still arriving after it ends, the
//!   time from the window start to the last such response. **2xx rate** is the same for 2xx only.
//! - **p50 … p99.9, max**: latency percentiles (milliseconds) over every measured request that
//!   got an HTTP response, from its *scheduled* time to its last body byte. Recorded with
//!   HdrHistogram at 3 significant digits.
//! - **dispatch lag**: how late the generator itself started each request after its scheduled
//!   time (timer granularity, a busy CPU). It is already included in the latencies; it is shown
//!   separately so a saturated generator can be told apart from a slow server.
//! - **timeline** (`--timeline`, always in `--json`): the same counters and p50/p99/max per second
//!   of the measured window, bucketed by scheduled time, to show stalls that whole-run
//!   percentiles average away.
//!
//! Warmup requests (`--warmup` seconds) run on the same schedule but are not recorded.
//! The run is bounded: the schedule ends after warmup + duration, in-flight requests are then
//! awaited (each bounded by `--timeout-ms`), and the process exits.

pub mod baseline;
pub mod cli;
pub mod gateway;
pub mod mix;
pub mod report;
pub mod run;
pub mod setup;

pub use mix::{Mix, Op};
pub use report::Report;

/// Refuses anything but a plain `http://` URL on a loopback address: the harnesses only ever
/// load local nodes.
pub fn check_loopback(api: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let url = reqwest::Url::parse(api).with_context(|| format!("--api {api:?} is not a URL"))?;
    if url.scheme() != "http" {
        anyhow::bail!("--api must be a plain http:// URL on loopback");
    }
    let host = url.host_str().context("--api has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        anyhow::bail!("--api host {host:?} is not loopback; this harness only targets local nodes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(check_loopback("http://127.0.0.1:8080/api/v10").is_ok());
        assert!(check_loopback("http://localhost:1/api/v10").is_ok());
        assert!(check_loopback("http://[::1]:1/api/v10").is_ok());
        assert!(check_loopback("http://10.0.0.1:8080/api/v10").is_err());
        assert!(check_loopback("https://127.0.0.1/api/v10").is_err());
        assert!(check_loopback("http://example.com/api/v10").is_err());
    }
}
