//! redis-server from Debian's `redis-server` package, without persistence, on an ephemeral
//! port. It can be stopped and started again on the same port, to test how clients ride out
//! an outage.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{Guarded, free_port, temp_dir, wait_for_port, which};

/// A running (or, after [`Redis::stop`], stopped) redis-server.
#[derive(Debug)]
pub struct Redis {
    server: Option<Guarded>,
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Result<Redis> {
        let bin = which("redis-server")
            .context("redis-server is not installed (Debian: apt-get install redis-server)")?;
        let dir = temp_dir("enrichment-redis-", None)?;
        let mut redis = Redis {
            server: None,
            port: 0,
            bin,
            dir,
        };
        let mut last_err = None;
        // The port was free when chosen; another process may take it first, so try again.
        for _ in 0..5 {
            redis.port = free_port()?;
            match redis.spawn() {
                Ok(()) => return Ok(redis),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn spawn(&mut self) -> Result<()> {
        let args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &self.dir.path().display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = self.dir.path().join("redis.log");
        let mut server = Guarded::spawn(&self.bin, &args, &log, self.dir.path(), None)?;
        if let Err(e) = wait_for_port(self.port, Duration::from_secs(10)) {
            let tail = server.log_tail();
            server.stop();
            bail!("{e}: {tail}");
        }
        self.server = Some(server);
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's temporary directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server; its data is gone (nothing is persisted).
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }
}
