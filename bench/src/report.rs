//! Turns what was recorded into a report: a human table or one JSON object.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::mix::Op;
use crate::run::{OpStats, Recorded};

/// Latency summary in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One operation's line of the report (or the `all` line).
#[derive(Clone, Debug, Serialize)]
pub struct OpReport {
    pub op: String,
    pub scheduled: u64,
    pub sent: u64,
    pub dropped: u64,
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub status_other: u64,
    pub errors: u64,
    /// Exact status codes, e.g. `{"200": 29950, "429": 3}`.
    pub status_codes: std::collections::BTreeMap<String, u64>,
    pub achieved_rps: f64,
    pub latency_ms: Latency,
}

/// One second of the measured window (by scheduled time).
#[derive(Clone, Debug, Serialize)]
pub struct SecondReport {
    /// Seconds since the start of the measured window.
    pub t: usize,
    pub scheduled: u64,
    pub dropped: u64,
    pub responses: u64,
    pub non_2xx: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The configuration echoed back in the report.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub api: String,
    pub rate: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub mix: String,
    pub users: usize,
    pub guilds: usize,
    pub channels_per_guild: usize,
    pub channels: usize,
    pub connections: usize,
    pub seed_messages: usize,
    pub content_bytes: usize,
    pub timeout_ms: u64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config: RunConfig,
    pub offered_rps: f64,
    /// The measured window in seconds (see the crate docs).
    pub window_s: f64,
    pub scheduled: u64,
    pub sent: u64,
    pub dropped: u64,
    pub responses: u64,
    pub errors: u64,
    pub achieved_rps: f64,
    pub achieved_2xx_rps: f64,
    pub peak_in_flight: usize,
    pub warmup_sent: u64,
    pub warmup_dropped: u64,
    pub setup_s: f64,
    pub ops: Vec<OpReport>,
    pub all: OpReport,
    pub dispatch_lag_ms: Latency,
    pub error_samples: Vec<String>,
    pub timeline: Vec<SecondReport>,
}

fn op_report(name: &str, s: &OpStats, window_s: f64) -> OpReport {
    OpReport {
        op: name.to_owned(),
        scheduled: s.scheduled,
        sent: s.sent(),
        dropped: s.dropped,
        status_2xx: s.status_2xx,
        status_4xx: s.status_4xx,
        status_5xx: s.status_5xx,
        status_other: s.status_other,
        errors: s.errors,
        status_codes: s.codes.iter().map(|&(c, n)| (c.to_string(), n)).collect(),
        achieved_rps: if window_s > 0.0 {
            s.responses() as f64 / window_s
        } else {
            0.0
        },
        latency_ms: Latency::from_hist(&s.latency),
    }
}

impl Report {
    pub fn build(config: RunConfig, rec: &Recorded, setup_s: f64) -> anyhow::Result<Report> {
        let window_s = match (rec.measure_start, rec.last_response) {
            (Some(start), Some(last)) => config
                .duration_s
                .max(last.saturating_duration_since(start).as_secs_f64()),
            _ => config.duration_s,
        };
        let mut total = OpStats::new()?;
        let mut ops = Vec::new();
        for op in Op::ALL {
            let s = &rec.ops[op.index()];
            if s.scheduled == 0 {
                continue;
            }
            total.absorb(s)?;
            ops.push(op_report(op.name(), s, window_s));
        }
        let all = op_report("all", &total, window_s);
        Ok(Report {
            offered_rps: config.rate,
            window_s,
            scheduled: total.scheduled,
            sent: total.sent(),
            dropped: total.dropped,
            responses: total.responses(),
            errors: total.errors,
            achieved_rps: all.achieved_rps,
            achieved_2xx_rps: if window_s > 0.0 {
                total.status_2xx as f64 / window_s
            } else {
                0.0
            },
            peak_in_flight: rec.peak_in_flight,
            warmup_sent: rec.warmup_sent,
            warmup_dropped: rec.warmup_dropped,
            setup_s,
            ops,
            all,
            dispatch_lag_ms: Latency::from_hist(&rec.dispatch_lag),
            error_samples: rec.error_samples.clone(),
            timeline: rec
                .timeline
                .iter()
                .enumerate()
                .map(|(t, s)| {
                    let l = Latency::from_hist(&s.latency);
                    SecondReport {
                        t,
                        scheduled: s.scheduled,
                        dropped: s.dropped,
                        responses: s.responses,
                        non_2xx: s.non_2xx,
                        errors: s.errors,
                        p50_ms: l.p50,
                        p99_ms: l.p99,
                        max_ms: l.max,
                    }
                })
                .collect(),
            config,
        })
    }

    /// A fixed-width table for terminals and READMEs.
    pub fn to_table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "offered {:.0} req/s for {:.0} s after {:.0} s warmup | mix {} | {} users, {} guilds x {} channels | {} connections",
            c.rate,
            c.duration_s,
            c.warmup_s,
            c.mix,
            c.users,
            c.guilds,
            c.channels_per_guild,
            c.connections
        );
        let _ = writeln!(
            out,
            "scheduled {} | sent {} | dropped (no free connection) {} | responses {} | errors {} | peak in flight {}",
            self.scheduled,
            self.sent,
            self.dropped,
            self.responses,
            self.errors,
            self.peak_in_flight
        );
        let _ = writeln!(
            out,
            "achieved {:.1} req/s (2xx {:.1} req/s) over {:.2} s",
            self.achieved_rps, self.achieved_2xx_rps, self.window_s
        );
        let _ = writeln!(
            out,
            "{:<8} {:>8} {:>7} {:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "op",
            "sent",
            "dropped",
            "2xx",
            "4xx",
            "5xx",
            "err",
            "p50 ms",
            "p90 ms",
            "p95 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "req/s"
        );
        for r in self.ops.iter().chain(std::iter::once(&self.all)) {
            let l = &r.latency_ms;
            let _ = writeln!(
                out,
                "{:<8} {:>8} {:>7} {:>8} {:>6} {:>6} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.1}",
                r.op,
                r.sent,
                r.dropped,
                r.status_2xx,
                r.status_4xx,
                r.status_5xx + r.status_other,
                r.errors,
                l.p50,
                l.p90,
                l.p95,
                l.p99,
                l.p99_9,
                l.max,
                r.achieved_rps
            );
        }
        let d = &self.dispatch_lag_ms;
        let _ = writeln!(
            out,
            "generator dispatch lag (included above): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            d.p50, d.p99, d.max
        );
        for e in &self.error_samples {
            let _ = writeln!(out, "error sample: {e}");
        }
        out
    }

    /// Per-second lines, to spot stalls and latency cliffs.
    pub fn timeline_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>4} {:>9} {:>7} {:>9} {:>7} {:>6} {:>8} {:>8} {:>8}",
            "s",
            "scheduled",
            "dropped",
            "responses",
            "non-2xx",
            "err",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        for s in &self.timeline {
            let _ = writeln!(
                out,
                "{:>4} {:>9} {:>7} {:>9} {:>7} {:>6} {:>8.2} {:>8.2} {:>8.2}",
                s.t,
                s.scheduled,
                s.dropped,
                s.responses,
                s.non_2xx,
                s.errors,
                s.p50_ms,
                s.p99_ms,
                s.max_ms
            );
        }
        out
    }
}

impl OpStats {
    fn absorb(&mut self, o: &OpStats) -> anyhow::Result<()> {
        self.scheduled += o.scheduled;
        self.dropped += o.dropped;
        self.status_2xx += o.status_2xx;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.status_other += o.status_other;
        self.errors += o.errors;
        for &(code, n) in &o.codes {
            match self.codes.binary_search_by_key(&code, |&(c, _)| c) {
                Ok(i) => self.codes[i].1 += n,
                Err(i) => self.codes.insert(i, (code, n)),
            }
        }
        self.latency
            .add(&o.latency)
            .map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_in_milliseconds() {
        let mut h = crate::run::new_histogram().unwrap();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap();
        }
        let l = Latency::from_hist(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.max - 10.0).abs() < 0.01, "{l:?}");
    }
}
