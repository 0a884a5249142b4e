//! The rate sweep: which offered rate to try next, and whether a step passed.
//!
//! Deliveries per second at a latency bound is the figure the baselines are compared on, so
//! every server is swept the same way: start at a rate, multiply it by a factor while steps
//! pass, and after the first failure bisect between the highest pass and the lowest failure a
//! few times. A step passes only if nothing was lost or refused and the p99 delivery latency
//! (from the scheduled send time) stayed within the bound; the result is the deliveries per
//! second of the best passing step. The same rule drives sweeps of the node through
//! `enrichment-gateway-load latency --json` ([`StepResult::from_gateway_json`]).

/// One step's figures, from either generator.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct StepResult {
    /// Messages per second offered.
    pub rate: f64,
    /// Deliveries recorded in the measured window per second.
    pub deliveries_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries nobody should have received (duplicates, wrong room, other order).
    pub unexpected: u64,
    /// Posts never sent because every in-flight slot was busy.
    pub dropped: u64,
    /// Posts that got no 2xx (an error status or a transport error).
    pub failed_posts: u64,
    pub server_cpu_us_per_delivery: f64,
}

impl StepResult {
    /// Whether the step sustained its rate within `p99_limit_ms`.
    pub fn passed(&self, p99_limit_ms: f64) -> bool {
        self.lost == 0
            && self.unexpected == 0
            && self.dropped == 0
            && self.failed_posts == 0
            && self.deliveries_per_sec > 0.0
            && self.p99_ms <= p99_limit_ms
    }

    /// Reads the object `enrichment-gateway-load latency --json` prints. Sessions that got
    /// another set or order of messages than their guild count as unexpected.
    pub fn from_gateway_json(v: &serde_json::Value) -> anyhow::Result<StepResult> {
        let f = |path: &[&str]| -> anyhow::Result<f64> {
            let mut at = v;
            for p in path {
                at = &at[*p];
            }
            at.as_f64()
                .ok_or_else(|| anyhow::anyhow!("no number at {} in the report", path.join(".")))
        };
        let n = |path: &[&str]| f(path).map(|x| x as u64);
        Ok(StepResult {
            rate: f(&["offered_rate"])?,
            deliveries_per_sec: f(&["deliveries_per_sec"])?,
            p50_ms: f(&["delivery_ms", "p50"])?,
            p99_ms: f(&["delivery_ms", "p99"])?,
            p999_ms: f(&["delivery_ms", "p999"])?,
            max_ms: f(&["delivery_ms", "max"])?,
            lost: n(&["lost"])?,
            unexpected: n(&["unexpected"])?
                + n(&["sessions_wrong_set"])?
                + n(&["sessions_out_of_order"])?,
            dropped: n(&["post_dropped"])?,
            failed_posts: n(&["post_non_2xx"])? + n(&["post_errors"])?,
            server_cpu_us_per_delivery: f(&["server_cpu_us_per_delivery"])?,
        })
    }
}

/// Chooses the rates of a sweep. Rates are whole messages per second.
#[derive(Clone, Debug)]
pub struct Sweep {
    factor: f64,
    refine: usize,
    max_steps: usize,
    min_rate: f64,
    next: Option<f64>,
    best: Option<f64>,
    lowest_fail: Option<f64>,
    refined: usize,
    steps: usize,
}

impl Sweep {
    /// Starts at `start`, multiplies by `factor` (> 1) while steps pass, then bisects `refine`
    /// times; never more than `max_steps` steps, never below one message per second.
    pub fn new(start: f64, factor: f64, refine: usize, max_steps: usize) -> anyhow::Result<Sweep> {
        anyhow::ensure!(
            start.is_finite() && start >= 1.0,
            "the sweep starts at 1 msg/s or more"
        );
        anyhow::ensure!(
            factor.is_finite() && factor > 1.0,
            "the sweep factor must be above 1"
        );
        Ok(Sweep {
            factor,
            refine,
            max_steps,
            min_rate: 1.0,
            next: Some(start.round()),
            best: None,
            lowest_fail: None,
            refined: 0,
            steps: 0,
        })
    }

    /// The rate to run next; `None` when the sweep is over.
    pub fn next_rate(&self) -> Option<f64> {
        if self.steps >= self.max_steps {
            return None;
        }
        self.next
    }

    /// The highest rate that passed so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Records the outcome of the step at [`Sweep::next_rate`] and picks the one after.
    pub fn record(&mut self, passed: bool) {
        let Some(rate) = self.next else { return };
        self.steps += 1;
        // Only steps between a pass and a failure refine; coming down or climbing does not.
        if self.best.is_some() && self.lowest_fail.is_some() {
            self.refined += 1;
        }
        if passed {
            self.best = Some(self.best.map_or(rate, |b| b.max(rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |f| f.min(rate)));
        }
        self.next = match (self.best, self.lowest_fail) {
            // Still climbing.
            (Some(best), None) => Some((best * self.factor).round()),
            // Nothing passed yet: come down until something does.
            (None, Some(fail)) => {
                let down = (fail / self.factor).round();
                (down >= self.min_rate && down < fail).then_some(down)
            }
            (Some(best), Some(fail)) => {
                let mid = ((best + fail) / 2.0).round();
                (self.refined < self.refine && mid > best && mid < fail).then_some(mid)
            }
            (None, None) => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a sweep against a server that passes every rate up to `knee`.
    fn run(mut s: Sweep, knee: f64) -> (Vec<f64>, Option<f64>) {
        let mut tried = Vec::new();
        while let Some(r) = s.next_rate() {
            tried.push(r);
            s.record(r <= knee);
        }
        (tried, s.best())
    }

    #[test]
    fn climbs_by_the_factor_then_bisects() {
        let s = Sweep::new(100.0, 2.0, 2, 20).unwrap_or_else(|e| panic!("{e}"));
        let (tried, best) = run(s, 500.0);
        // 800 fails; then 600 (fails) and 500 (passes) close in on the knee.
        assert_eq!(tried, vec![100.0, 200.0, 400.0, 800.0, 600.0, 500.0]);
        assert_eq!(best, Some(500.0));
    }

    #[test]
    fn comes_down_when_the_first_step_fails() {
        let s = Sweep::new(1000.0, 2.0, 1, 20).unwrap_or_else(|e| panic!("{e}"));
        let (tried, best) = run(s, 300.0);
        assert_eq!(tried, vec![1000.0, 500.0, 250.0, 375.0]);
        assert_eq!(best, Some(250.0));
    }

    #[test]
    fn stops_when_nothing_passes_or_steps_run_out() {
        let s = Sweep::new(8.0, 2.0, 3, 20).unwrap_or_else(|e| panic!("{e}"));
        let (tried, best) = run(s, 0.0);
        assert_eq!(tried, vec![8.0, 4.0, 2.0, 1.0]);
        assert_eq!(best, None);
        let s = Sweep::new(10.0, 1.5, 3, 4).unwrap_or_else(|e| panic!("{e}"));
        let (tried, best) = run(s, f64::INFINITY);
        assert_eq!(tried, vec![10.0, 15.0, 23.0, 35.0]);
        assert_eq!(best, Some(35.0));
        assert!(Sweep::new(10.0, 1.0, 1, 5).is_err());
        assert!(Sweep::new(0.5, 2.0, 1, 5).is_err());
    }

    #[test]
    fn bisection_stops_when_rates_meet() {
        let s = Sweep::new(1.0, 2.0, 10, 50).unwrap_or_else(|e| panic!("{e}"));
        let (tried, best) = run(s, 2.0);
        assert_eq!(tried, vec![1.0, 2.0, 4.0, 3.0]);
        assert_eq!(best, Some(2.0));
    }

    #[test]
    fn a_step_passes_only_clean_and_within_the_bound() {
        let ok = StepResult {
            rate: 500.0,
            deliveries_per_sec: 50_000.0,
            p99_ms: 49.9,
            ..StepResult::default()
        };
        assert!(ok.passed(50.0));
        assert!(!ok.passed(40.0));
        for bad in [
            StepResult { lost: 1, ..ok },
            StepResult {
                unexpected: 1,
                ..ok
            },
            StepResult { dropped: 1, ..ok },
            StepResult {
                failed_posts: 1,
                ..ok
            },
            StepResult {
                deliveries_per_sec: 0.0,
                ..ok
            },
        ] {
            assert!(!bad.passed(50.0), "{bad:?}");
        }
    }

    #[test]
    fn reads_the_gateway_generators_json() {
        let v = serde_json::json!({
            "sessions": 10000, "identified": 10000, "offered_rate": 500.0, "measured_secs": 8.0,
            "posted": 5000, "posted_ok": 4999, "post_non_2xx": 1, "post_errors": 0,
            "post_dropped": 2, "deliveries_expected": 499900, "deliveries": 499899, "lost": 1,
            "unexpected": 0, "sessions_wrong_set": 1, "sessions_out_of_order": 2,
            "connections_failed": 0,
            "delivery_ms": {"samples": 400000, "p50": 1.5, "p90": 3.0, "p99": 10.25, "p999": 20.0, "max": 30.0},
            "post_ms": {"samples": 4000, "p50": 1.0, "p90": 2.0, "p99": 5.0, "p999": 6.0, "max": 7.0},
            "deliveries_per_sec": 50000.0, "server_cpu_us_per_delivery": 9.5
        });
        let r = StepResult::from_gateway_json(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.rate, 500.0);
        assert_eq!(r.p99_ms, 10.25);
        assert_eq!(
            (r.lost, r.unexpected, r.dropped, r.failed_posts),
            (1, 3, 2, 1)
        );
        assert_eq!(r.server_cpu_us_per_delivery, 9.5);
        assert!(StepResult::from_gateway_json(&serde_json::json!({"offered_rate": 1.0})).is_err());
    }
}
