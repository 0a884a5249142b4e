//! PostgreSQL from Debian's `postgresql` package: `initdb` into a temporary directory, then
//! `postgres` on an ephemeral port, trusting loopback connections.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{Guarded, free_port, is_root, temp_dir, which};

/// A running PostgreSQL server. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct Postgres {
    server: Guarded,
    port: u16,
    bin: PathBuf,
    // Declared last: the server stops before its directory goes.
    dir: tempfile::TempDir,
}

/// Where the server binaries are: `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
/// else `PATH`.
fn pg_bin() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(initdb) = which("initdb") {
        return Ok(initdb.parent().map(PathBuf::from).unwrap_or_default());
    }
    bail!("PostgreSQL is not installed: initdb not found (Debian: apt-get install postgresql)")
}

/// PostgreSQL will not run as root; as root, the servers run as the `postgres` user that
/// Debian's package creates.
fn server_user() -> Result<Option<(u32, u32)>> {
    if !is_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&"postgres") && fields.len() > 3 {
            let uid = fields[2].parse().context("postgres uid")?;
            let gid = fields[3].parse().context("postgres gid")?;
            return Ok(Some((uid, gid)));
        }
    }
    bail!("running as root, but there is no `postgres` user to run PostgreSQL as")
}

impl Postgres {
    /// Starts a server tuned for tests: commits are not flushed to disk (a lost test database
    /// costs nothing), so suites run at memory speed.
    pub fn start() -> Result<Postgres> {
        Self::start_with(false)
    }

    /// Starts a server with PostgreSQL's default durability (`fsync`, synchronous commit), for
    /// benchmarks that must measure durable writes.
    pub fn start_durable() -> Result<Postgres> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Postgres> {
        let bin = pg_bin()?;
        let user = server_user()?;
        let dir = temp_dir("enrichment-pg-", user)?;
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C"]);
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt;
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut last_err = None;
        // The port was free when chosen; another process may take it first, so try again.
        for _ in 0..5 {
            let port = free_port()?;
            let mut args = vec![
                "-D".to_owned(),
                data.display().to_string(),
                "-p".to_owned(),
                port.to_string(),
                "-c".to_owned(),
                "listen_addresses=127.0.0.1".to_owned(),
                "-c".to_owned(),
                format!("unix_socket_directories={}", dir.path().display()),
                "-c".to_owned(),
                "max_connections=400".to_owned(),
            ];
            if !durable {
                for setting in [
                    "fsync=off",
                    "synchronous_commit=off",
                    "full_page_writes=off",
                ] {
                    args.push("-c".to_owned());
                    args.push(setting.to_owned());
                }
            }
            let log = dir.path().join(format!("postgres-{port}.log"));
            // SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to
            // disconnect (a node under test keeps its pool open); SIGINT is its fast one.
            let mut server = Guarded::spawn_stopped_by(
                "INT",
                &bin.join("postgres"),
                &args,
                &log,
                dir.path(),
                user,
            )?;
            match wait_ready(&bin, port, &mut server) {
                Ok(()) => {
                    return Ok(Postgres {
                        server,
                        port,
                        bin,
                        dir,
                    });
                }
                Err(e) => last_err = Some(e.context(server.log_tail())),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database with a unique name and returns its URL.
    pub fn fresh_database(&self) -> Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
            ])
            .args(["-c", &format!("CREATE DATABASE {name}")])
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!(
                "CREATE DATABASE failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(self.url(&name))
    }

    /// The server's temporary directory (data, socket and log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server, disconnecting its clients (for tests of an unreachable database).
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn wait_ready(bin: &std::path::Path, port: u16, server: &mut Guarded) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if server.exited() {
            bail!("postgres exited during startup");
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("postgres was not ready on port {port} within 30 s")
}
