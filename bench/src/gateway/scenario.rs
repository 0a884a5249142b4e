//! Scenario files: what a multi-process run does, in TOML, so that a sizing run can be kept,
//! reviewed and repeated (`bench/scenarios/*.toml`).
//!
//! A scenario is a latency run — G guilds of M sessions, an open-loop message rate — spread
//! over several generator processes, with two optional disturbances during its measured
//! window:
//!
//! - **storm**: that many sessions lose their connection at once, with no close frame, and
//!   RESUME on a new one; the run reports how long until every one got RESUMED, and the usual
//!   check shows whether any event was missed.
//! - **slow consumers**: a share of the sessions stops reading its socket; the run reports the
//!   delivery latency of everyone else, and how many of the stalled sessions the server cut
//!   loose.
//!
//! Every field is validated here, before anything is started, with a message naming it.

use std::ops::Range;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// One scenario file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the result files and heads the summary.
    pub name: String,
    pub guilds: usize,
    /// Sessions per guild.
    pub members: usize,
    /// Sessions per user: `members / sessions_per_user` users per guild.
    #[serde(default = "one")]
    pub sessions_per_user: usize,
    /// Messages per second over all guilds (message `i` goes to guild `i mod G`).
    pub rate: f64,
    /// Measured seconds.
    pub duration_secs: f64,
    /// Seconds at the same rate before the measured window, not recorded.
    #[serde(default = "five")]
    pub warmup_secs: f64,
    /// Generator processes the sessions are spread over (each holds at most
    /// [`MAX_SESSIONS_PER_WORKER`]).
    #[serde(default = "one")]
    pub workers: usize,
    /// Sessions identifying at once, in each worker.
    #[serde(default = "identify_concurrency")]
    pub identify_concurrency: usize,
    /// HTTP posts in flight at most; a message scheduled while all are busy is dropped.
    #[serde(default = "in_flight")]
    pub in_flight: usize,
    /// Padding added to each message's content, in bytes.
    #[serde(default = "content_bytes")]
    pub content_bytes: usize,
    pub storm: Option<Storm>,
    pub slow_consumers: Option<SlowConsumers>,
}

/// Sessions dropped at once, mid-run, that resume.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Storm {
    /// Seconds into the measured window.
    pub at_secs: f64,
    pub sessions: usize,
}

/// Sessions that stop reading, mid-run, for good.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlowConsumers {
    /// Seconds into the measured window.
    pub at_secs: f64,
    /// Share of every worker's sessions, 0 < fraction < 1.
    pub fraction: f64,
}

fn one() -> usize {
    1
}
fn five() -> f64 {
    5.0
}
fn identify_concurrency() -> usize {
    256
}
fn in_flight() -> usize {
    256
}
fn content_bytes() -> usize {
    64
}

/// Sessions one generator process may hold: each is a socket, and a process may open 20,000
/// files on the machines this runs on, some of which the process needs for itself.
pub const MAX_SESSIONS_PER_WORKER: usize = 19_500;

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let ensure = |ok: bool, msg: &str| -> anyhow::Result<()> {
            anyhow::ensure!(ok, "{msg}");
            Ok(())
        };
        ensure(!self.name.trim().is_empty(), "name must not be empty")?;
        ensure(
            self.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "name may hold only letters, digits, '-' and '_' (it names files)",
        )?;
        ensure(self.guilds >= 1, "guilds must be at least 1")?;
        ensure(
            self.sessions_per_user >= 1,
            "sessions_per_user must be at least 1",
        )?;
        ensure(
            self.members >= 1 && self.members.is_multiple_of(self.sessions_per_user),
            "members must be a positive multiple of sessions_per_user",
        )?;
        ensure(
            self.rate.is_finite() && self.rate > 0.0,
            "rate must be a positive number",
        )?;
        ensure(
            Duration::try_from_secs_f64(self.duration_secs)
                .is_ok_and(|d| d >= Duration::from_secs(1)),
            "duration_secs must be at least 1",
        )?;
        ensure(
            Duration::try_from_secs_f64(self.warmup_secs).is_ok(),
            "warmup_secs must be a duration",
        )?;
        ensure(self.workers >= 1, "workers must be at least 1")?;
        ensure(
            self.identify_concurrency >= 1 && self.in_flight >= 1,
            "identify_concurrency and in_flight must be at least 1",
        )?;
        let per_worker = self.sessions().div_ceil(self.workers);
        anyhow::ensure!(
            per_worker <= MAX_SESSIONS_PER_WORKER,
            "{} sessions over {} workers is {per_worker} per worker; at most {MAX_SESSIONS_PER_WORKER} (one socket each): raise workers to at least {}",
            self.sessions(),
            self.workers,
            self.sessions().div_ceil(MAX_SESSIONS_PER_WORKER)
        );
        let in_window = |at: f64| at.is_finite() && at >= 0.0 && at < self.duration_secs;
        if let Some(st) = self.storm {
            ensure(
                in_window(st.at_secs),
                "storm.at_secs must fall within the measured window",
            )?;
            ensure(
                st.sessions >= 1 && st.sessions <= self.sessions(),
                "storm.sessions must be between 1 and the run's sessions",
            )?;
        }
        if let Some(sc) = self.slow_consumers {
            ensure(
                in_window(sc.at_secs),
                "slow_consumers.at_secs must fall within the measured window",
            )?;
            ensure(
                sc.fraction > 0.0 && sc.fraction < 1.0,
                "slow_consumers.fraction must be between 0 and 1",
            )?;
        }
        for w in 0..self.workers {
            let (storm, stall) = (self.storm_range(w), self.stall_range(w));
            anyhow::ensure!(
                storm.end <= stall.start || stall.is_empty() || storm.is_empty(),
                "worker {w}'s storm sessions and slow consumers overlap: fewer of either"
            );
        }
        Ok(())
    }

    pub fn sessions(&self) -> usize {
        self.guilds * self.members
    }

    pub fn users_per_guild(&self) -> usize {
        self.members / self.sessions_per_user
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_secs)
    }

    /// The connections worker `w` holds: consecutive indices, the workers' slices covering
    /// every session once.
    pub fn slice(&self, w: usize) -> Range<usize> {
        let n = self.sessions();
        let k = self.workers;
        (w * n / k)..((w + 1) * n / k)
    }

    /// The first connections of worker `w`'s slice, its share of the storm.
    pub fn storm_range(&self, w: usize) -> Range<usize> {
        let slice = self.slice(w);
        let Some(st) = self.storm else {
            return slice.start..slice.start;
        };
        let n = self.sessions();
        // The storm's sessions, shared in proportion to the slices.
        let before = slice.start * st.sessions / n;
        let upto = slice.end * st.sessions / n;
        slice.start..slice.start + (upto - before)
    }

    /// The last connections of worker `w`'s slice, its slow consumers.
    pub fn stall_range(&self, w: usize) -> Range<usize> {
        let slice = self.slice(w);
        let Some(sc) = self.slow_consumers else {
            return slice.end..slice.end;
        };
        let k = ((slice.len() as f64) * sc.fraction).round() as usize;
        slice.end - k.min(slice.len())..slice.end
    }

    /// The guild connection `c` is in: it is a session of user `c % users`, and user `u` is a
    /// member of guild `u / users_per_guild`.
    pub fn guild_of(&self, c: usize) -> usize {
        let users = self.guilds * self.users_per_guild();
        (c % users) / self.users_per_guild()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FULL: &str = r#"
name = "storm-20k"
guilds = 10
members = 2000
sessions_per_user = 10
rate = 20.0
duration_secs = 30
workers = 2
[storm]
at_secs = 10
sessions = 5000
[slow_consumers]
at_secs = 5
fraction = 0.05
"#;

    #[test]
    fn parses_a_scenario_with_its_defaults() {
        let s = Scenario::parse(FULL).unwrap();
        assert_eq!(s.sessions(), 20_000);
        assert_eq!(s.users_per_guild(), 200);
        assert_eq!(s.warmup_secs, 5.0);
        assert_eq!(s.identify_concurrency, 256);
        assert_eq!(s.storm.unwrap().sessions, 5000);
        // Every bundled scenario parses.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&p).unwrap();
                seen += 1;
            }
        }
        assert!(seen >= 3, "bench/scenarios has {seen} scenario files");
    }

    #[test]
    fn refuses_what_cannot_run_with_a_message_naming_the_field() {
        let err = |text: &str| format!("{:#}", Scenario::parse(text).unwrap_err());
        let base = "name = \"x\"\nguilds = 1\nmembers = 10\nrate = 1.0\nduration_secs = 5\n";
        Scenario::parse(base).unwrap();
        assert!(err(&format!("{base}bogus = 1\n")).contains("bogus"));
        assert!(err(&base.replace("rate = 1.0", "rate = 0.0")).contains("rate"));
        assert!(
            err(&base.replace("members = 10", "members = 10\nsessions_per_user = 3"))
                .contains("multiple of sessions_per_user")
        );
        assert!(err(&base.replace("\"x\"", "\"../x\"")).contains("name may hold"));
        assert!(
            err(&base.replace("members = 10", "members = 40000"))
                .contains("raise workers to at least 3")
        );
        assert!(
            err(&format!("{base}[storm]\nat_secs = 5\nsessions = 2\n")).contains("storm.at_secs")
        );
        assert!(
            err(&format!(
                "{base}[slow_consumers]\nat_secs = 1\nfraction = 1.5\n"
            ))
            .contains("fraction")
        );
    }

    #[test]
    fn slices_cover_every_session_once_and_the_disturbances_stay_apart() {
        let s = Scenario::parse(&FULL.replace("workers = 2", "workers = 3")).unwrap();
        let mut next = 0;
        let (mut storm, mut stall) = (0, 0);
        for w in 0..3 {
            let slice = s.slice(w);
            assert_eq!(slice.start, next);
            next = slice.end;
            let (a, b) = (s.storm_range(w), s.stall_range(w));
            assert!(slice.start <= a.start && a.end <= b.start && b.end <= slice.end);
            storm += a.len();
            stall += b.len();
        }
        assert_eq!(next, s.sessions());
        assert_eq!(storm, 5000, "the storm's sessions, exactly");
        assert!((990..=1010).contains(&stall), "5 % of 20,000: {stall}");
    }

    #[test]
    fn a_connection_belongs_to_its_users_guild() {
        let s = Scenario::parse(FULL).unwrap();
        // 2,000 users, 200 per guild, each with 10 sessions c, c + 2000, c + 4000, ...
        assert_eq!(s.guild_of(0), 0);
        assert_eq!(s.guild_of(199), 0);
        assert_eq!(s.guild_of(200), 1);
        assert_eq!(s.guild_of(2000), 0);
        assert_eq!(s.guild_of(19_999), 9);
    }
}
