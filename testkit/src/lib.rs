//! Test servers: PostgreSQL, Redis and an S3-compatible server (s3s-fs), each started from its
//! installed binary on an ephemeral loopback port in a temporary directory, so runs never
//! collide with each other or with services already on the machine.
//!
//! Every server runs under a small `sh` guard that reads its stdin: the pipe closes when the
//! test process ends, however it ends, and the guard then stops the server. A test binary can
//! therefore share one server across its tests through a `static` without leaking processes.
//! A `static` is never dropped, so its temporary directory would outlive the run; the guard
//! removes that directory too when the pipe closes without an orderly stop.
//!
//! The guard runs in a process group of its own, so a Ctrl-C at the terminal reaches only the
//! process that holds it: that process stops what uses a server before the server (the local
//! cluster launcher stops its nodes first), and if it dies instead, the pipe closes as above.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[cfg(feature = "cql")]
mod cql;
mod postgres;
mod redis;
pub mod s3;

#[cfg(feature = "cql")]
pub use cql::CqlServer;
pub use postgres::Postgres;
pub use redis::Redis;
pub use s3::S3Server;

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral port")?;
    Ok(listener.local_addr()?.port())
}

/// A loopback port that refuses connections for as long as the returned socket lives. The
/// socket is bound but never listens, so a connection to it is reset at once, and no server
/// can be given the port meanwhile, as one freed after binding ([`free_port`]) may be.
pub fn refusing_port() -> Result<(socket2::Socket, u16)> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .context("creating a socket")?;
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .context("binding an ephemeral port")?;
    let port = socket
        .local_addr()?
        .as_socket()
        .context("a loopback address")?
        .port();
    Ok((socket, port))
}

/// Finds `name` in `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listened on 127.0.0.1:{port} within {timeout:?}")
}

/// A server process under its stdin guard. Dropping it stops the server and waits for it.
#[derive(Debug)]
pub struct Guarded {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Guarded {
    /// Runs `program args` under the guard, with output appended to `log`. `uid_gid` runs it
    /// as another user (PostgreSQL refuses to run as root). `dir` is the server's temporary
    /// directory, removed by the guard if the test process goes away without stopping it.
    pub fn spawn(
        program: &Path,
        args: &[String],
        log: &Path,
        dir: &Path,
        uid_gid: Option<(u32, u32)>,
    ) -> Result<Guarded> {
        Self::spawn_stopped_by("TERM", program, args, log, dir, uid_gid)
    }

    /// [`Guarded::spawn`], for a server whose fast, clean shutdown is `signal` (`TERM`, `INT`)
    /// rather than SIGTERM.
    pub fn spawn_stopped_by(
        signal: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        dir: &Path,
        uid_gid: Option<(u32, u32)>,
    ) -> Result<Guarded> {
        // The server gets stdin from /dev/null, so only the guard holds the pipe. On EOF the
        // guard sends the stop signal and waits, so the directory is released before anything
        // removes it. An orderly `stop` first writes `keep`: the owner may start the server
        // again in the same directory (a restart, a retry on another port) and removes the
        // directory itself when dropped. EOF without `keep` means the process ended with the
        // server still held, so nobody else will.
        let script = r#"log="$1"; dir="$2"; sig="$3"; shift 3; "$@" </dev/null >>"$log" 2>&1 & pid=$!; trap 'kill -$sig $pid 2>/dev/null; wait $pid; exit 0' TERM INT; keep=; while read -r line; do [ "$line" = keep ] && keep=1; done; kill -$sig $pid 2>/dev/null; wait $pid; [ -n "$keep" ] || rm -rf "$dir""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("guard")
            .arg(log)
            .arg(dir)
            .arg(signal)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        // Out of the caller's process group: see the module's documentation.
        cmd.process_group(0);
        if let Some((uid, gid)) = uid_gid {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdin = child.stdin.take();
        Ok(Guarded {
            child,
            stdin,
            log: log.to_path_buf(),
        })
    }

    /// The server's log so far, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Whether the guard (and so the server) has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"keep\n");
            let _ = stdin.flush();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A new temporary directory, optionally handed to another user.
pub fn temp_dir(prefix: &str, owner: Option<(u32, u32)>) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("creating a temporary directory")?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .context("handing the temporary directory to the server's user")?;
    }
    Ok(dir)
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
