//! An S3-compatible server: `s3s-fs`, which keeps each bucket as a directory and each object as
//! a file (`cargo install s3s-fs@0.14.1 --features binary --locked`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{Guarded, free_port, temp_dir, wait_for_port, which};

/// A running s3s-fs with one bucket.
#[derive(Debug)]
pub struct S3Server {
    server: Guarded,
    port: u16,
    dir: tempfile::TempDir,
}

/// The credentials the test server accepts.
pub const ACCESS_KEY: &str = "enrichment-test";
pub const SECRET_KEY: &str = "enrichment-test-secret";
/// The bucket that exists from the start.
pub const BUCKET: &str = "attachments";

fn s3s_fs() -> Result<PathBuf> {
    if let Some(path) = which("s3s-fs") {
        return Ok(path);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let path = home.join("bin/s3s-fs");
    if path.is_file() {
        return Ok(path);
    }
    bail!("s3s-fs is not installed (cargo install s3s-fs@0.14.1 --features binary --locked)")
}

impl S3Server {
    pub fn start() -> Result<S3Server> {
        let bin = s3s_fs()?;
        let dir = temp_dir("enrichment-s3-", None)?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(BUCKET)).context("creating the bucket directory")?;
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let args: Vec<String> = [
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
                &root.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let log = dir.path().join(format!("s3s-fs-{port}.log"));
            let mut server = Guarded::spawn(&bin, &args, &log, dir.path(), None)?;
            match wait_for_port(port, Duration::from_secs(10)) {
                Ok(()) => return Ok(S3Server { server, port, dir }),
                Err(e) => {
                    last_err = Some(e.context(server.log_tail()));
                    server.stop();
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("s3s-fs did not start")))
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the bucket's objects are on disk (to check what the server really holds).
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join("root").join(BUCKET)
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}
