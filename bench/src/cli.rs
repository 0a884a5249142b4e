//! What the command lines of the gateway and baseline load generators have in common: the
//! options both take ([`LoadArgs`], flattened into each), their runtime, and their checks.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::Context;

/// Options both load generators take, with the same meaning.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Loopback source addresses to spread connections over (127.0.0.1 .. 127.0.0.N).
    #[arg(long, global = true, default_value_t = 8)]
    pub sources: u8,
    /// Generator worker threads (0 = one per core).
    #[arg(long, global = true, default_value_t = 0)]
    pub threads: usize,
}

impl LoadArgs {
    /// The multi-threaded runtime, with `--threads` workers (one per core for 0).
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        rt.enable_all();
        if self.threads > 0 {
            rt.worker_threads(self.threads);
        }
        rt.build().context("starting the runtime")
    }
}

/// The loopback source addresses 127.0.0.1 .. 127.0.0.`n`.
pub fn loopback_sources(n: u8) -> Vec<IpAddr> {
    (1..=n)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect()
}

/// The option `--NAME V` (seconds) as a duration.
pub fn seconds(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{name} {v} is not a duration"))
}

/// Refuses a run whose `need` sockets, plus `spare` other open files, exceed what this process
/// may open.
pub fn ensure_open_files(need: usize, spare: usize) -> anyhow::Result<()> {
    if let Some(limit) = crate::gateway::procfs::open_files_limit() {
        anyhow::ensure!(
            (need + spare) as u64 <= limit,
            "{need} connections need {} open files; this process may open {limit} (raise `ulimit -n`)",
            need + spare
        );
    }
    Ok(())
}
