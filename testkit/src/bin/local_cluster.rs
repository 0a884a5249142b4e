//! `enrichment-local-cluster`: a cluster of real `enrichment` nodes on this machine.
//!
//! It starts PostgreSQL, Redis and s3s-fs the way the tests do (this crate's servers, on
//! ephemeral loopback ports in temporary directories), then N nodes in cluster mode, node i on
//! its own loopback address 127.0.0.i with REST, gateway and gossip on fixed ports from
//! `--base-port`, node 1 the seed of the others. Once every node is ready and lists every
//! other, it prints where everything is and waits. SIGINT or SIGTERM stops the nodes (SIGTERM,
//! so they drain), then the servers, and removes every temporary directory.
//!
//! Exit status: 0 when stopped on request (a signal, or `--hold-secs`), 1 when something
//! failed (a server or node did not start, a node exited by itself, a node had to be killed).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use enrichment_testkit::{Postgres, Redis, S3Server, s3, which};

/// How long the nodes have, all together, to answer `/readyz` and to see each other.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long the nodes have to drain and exit after SIGTERM before they are killed.
const STOP_WITHIN: Duration = Duration::from_secs(30);
/// How often the launcher looks at its nodes.
const POLL: Duration = Duration::from_millis(200);

#[derive(Parser, Debug)]
#[command(
    name = "enrichment-local-cluster",
    about = "Runs a cluster of enrichment nodes on this machine, on PostgreSQL, Redis and an S3 \
             server (s3s-fs) that it starts, until Ctrl-C",
    after_help = "Node i (from 1) listens on 127.0.0.i: REST on the base port, the gateway on the \
                  next port, cluster gossip (UDP) on the one after. Every server and node runs \
                  in a temporary directory that is removed when the cluster stops. Needs \
                  PostgreSQL (initdb, postgres), redis-server and s3s-fs installed, as \
                  ./scripts/test does. Other ENRICHMENT_* variables in the environment reach \
                  every node (ENRICHMENT_LOG=debug, for example)."
)]
struct Args {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    nodes: u8,
    /// REST port of every node; the gateway listens on the next port, gossip on the one after.
    #[arg(long, default_value_t = 18080, value_parser = clap::value_parser!(u16).range(1..=65533))]
    base_port: u16,
    /// The `enrichment` binary [default: the one beside this program, else on PATH].
    #[arg(long, value_name = "PATH")]
    enrichment: Option<PathBuf>,
    /// Stop by itself after this many seconds, as if it had been sent SIGTERM.
    #[arg(long, value_name = "S")]
    hold_secs: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut cluster = None;
    // Whatever happens in `run`, even a panic, what it started is stopped below.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&args, &signals, &mut cluster)
    }))
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the launcher panicked")));
    if let Err(e) = &outcome {
        eprintln!("error: {e:#}");
    }
    let stopped_cleanly = match cluster.take() {
        Some(cluster) => cluster.stop(),
        None => true,
    };
    if outcome.is_ok() && stopped_cleanly {
        eprintln!("stopped");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Starts everything into `slot` (so that whatever started is stopped, however this ends) and
/// holds it until a signal or `--hold-secs`.
fn run(args: &Args, signals: &Signals, slot: &mut Option<Cluster>) -> Result<()> {
    let started = Instant::now();
    let binary = enrichment_binary(args.enrichment.as_deref())?;
    let layout = Layout {
        nodes: args.nodes,
        base_port: args.base_port,
    };
    layout.check_free()?;
    let root = tempfile::Builder::new()
        .prefix("enrichment-local-cluster-")
        .tempdir()
        .context("creating the cluster's temporary directory")?;
    let admin_token = random_hex(32)?;
    let secret = random_hex(32)?;

    eprintln!("starting PostgreSQL, Redis and s3s-fs");
    let cluster = slot.insert(Cluster {
        nodes: Vec::new(),
        services: None,
        root,
    });
    let services = Services::start()?;
    let services = cluster.services.insert(services);
    if let Some(signal) = signals.received() {
        eprintln!("{signal}: stopping");
        return Ok(());
    }

    eprintln!(
        "starting {} ({})",
        plural(layout.nodes, "node"),
        binary.display()
    );
    for i in 0..layout.nodes {
        let node = NodeProc::spawn(
            &binary,
            &layout,
            i,
            cluster.root.path(),
            services,
            &admin_token,
            &secret,
        )?;
        cluster.nodes.push(node);
    }

    eprintln!(
        "waiting until every node is ready and lists all {} (at most {} s)",
        layout.nodes,
        READY_WITHIN.as_secs()
    );
    if let Some(signal) = cluster.wait_ready(&layout, &admin_token, signals)? {
        eprintln!("{signal}: stopping");
        return Ok(());
    }

    print_summary(&layout, cluster, &admin_token, &secret, started)?;

    let hold_until = args
        .hold_secs
        .map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        if let Some(signal) = signals.wait(POLL) {
            eprintln!("{signal}: stopping");
            return Ok(());
        }
        if hold_until.is_some_and(|t| Instant::now() >= t) {
            eprintln!("--hold-secs elapsed: stopping");
            return Ok(());
        }
        cluster.check_running()?;
    }
}

/// SIGINT and SIGTERM, caught from the start: a signal only ever asks the launcher to stop in
/// order. The handlers stay installed until it exits, so a second Ctrl-C does not cut the
/// stop short.
struct Signals {
    received: Receiver<&'static str>,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the signal runtime")?;
        // Installed here, before `install` returns: nothing sent from now on is missed.
        let (mut term, mut int) = {
            let _entered = runtime.enter();
            (
                signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            )
        };
        let (tx, received) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        let name = tokio::select! {
                            _ = term.recv() => "SIGTERM",
                            _ = int.recv() => "SIGINT",
                        };
                        if tx.send(name).is_err() {
                            return;
                        }
                    }
                });
            })
            .context("starting the signal thread")?;
        Ok(Signals { received })
    }

    /// A signal received since the last call, if any.
    fn received(&self) -> Option<&'static str> {
        self.received.try_recv().ok()
    }

    /// Waits up to `timeout` for a signal.
    fn wait(&self, timeout: Duration) -> Option<&'static str> {
        self.received.recv_timeout(timeout).ok()
    }
}

/// Where each node listens: node i (from 0) on 127.0.0.(i+1), the same three ports on each.
struct Layout {
    nodes: u8,
    base_port: u16,
}

impl Layout {
    fn ip(&self, i: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, i + 1)
    }

    fn rest(&self, i: u8) -> SocketAddr {
        SocketAddrV4::new(self.ip(i), self.base_port).into()
    }

    fn gateway(&self, i: u8) -> SocketAddr {
        SocketAddrV4::new(self.ip(i), self.base_port + 1).into()
    }

    fn cluster(&self, i: u8) -> SocketAddr {
        SocketAddrV4::new(self.ip(i), self.base_port + 2).into()
    }

    fn node_id(&self, i: u8) -> String {
        format!("node-{}", i + 1)
    }

    /// Fails, naming the address, when something already listens where a node would.
    fn check_free(&self) -> Result<()> {
        let taken = |addr: SocketAddr, what: &str| {
            format!(
                "{addr} ({what}) is not free: something else listens there (another local \
                 cluster?); choose other ports with --base-port"
            )
        };
        for i in 0..self.nodes {
            TcpListener::bind(self.rest(i)).with_context(|| taken(self.rest(i), "REST"))?;
            TcpListener::bind(self.gateway(i))
                .with_context(|| taken(self.gateway(i), "gateway"))?;
            UdpSocket::bind(self.cluster(i))
                .with_context(|| taken(self.cluster(i), "cluster gossip, UDP"))?;
        }
        Ok(())
    }
}

/// The shared backends every node uses.
struct Services {
    /// Held for its database; dropping it stops the server.
    _postgres: Postgres,
    database: String,
    redis: Redis,
    s3: S3Server,
}

impl Services {
    fn start() -> Result<Services> {
        let postgres = Postgres::start().context("starting PostgreSQL")?;
        let database = postgres
            .fresh_database()
            .context("creating the cluster's database")?;
        let redis = Redis::start().context("starting Redis")?;
        let s3 = S3Server::start().context("starting s3s-fs")?;
        Ok(Services {
            _postgres: postgres,
            database,
            redis,
            s3,
        })
    }
}

/// One `enrichment serve` process.
struct NodeProc {
    id: String,
    child: Child,
    log: PathBuf,
    /// Its exit was reported already (with its log).
    reported: bool,
}

impl NodeProc {
    fn spawn(
        binary: &Path,
        layout: &Layout,
        i: u8,
        root: &Path,
        services: &Services,
        admin_token: &str,
        secret: &str,
    ) -> Result<NodeProc> {
        let id = layout.node_id(i);
        let data_dir = root.join(&id);
        std::fs::create_dir_all(&data_dir).context("creating a node's data directory")?;
        let log = root.join(format!("{id}.log"));
        let out = File::create(&log).context("creating a node's log file")?;
        let err = out.try_clone().context("opening a node's log file")?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            // Each node has its own id pair and address: none may come from the environment.
            .env_remove("ENRICHMENT_WORKER_ID")
            .env_remove("ENRICHMENT_PROCESS_ID")
            .env_remove("ENRICHMENT_CLUSTER_ADVERTISE")
            .env("ENRICHMENT_NODE_ID", &id)
            .env("ENRICHMENT_DATA_DIR", &data_dir)
            .env("ENRICHMENT_LISTEN", layout.rest(i).to_string())
            .env("ENRICHMENT_GATEWAY_LISTEN", layout.gateway(i).to_string())
            .env("ENRICHMENT_ADMIN_TOKEN", admin_token)
            .env("ENRICHMENT_STORAGE", "postgres")
            .env("ENRICHMENT_POSTGRES_URL", &services.database)
            .env("ENRICHMENT_REDIS_URL", services.redis.url())
            .env("ENRICHMENT_BLOBS", "s3")
            .env("ENRICHMENT_S3_ENDPOINT", services.s3.endpoint())
            .env("ENRICHMENT_S3_BUCKET", s3::BUCKET)
            .env("ENRICHMENT_S3_ACCESS_KEY", s3::ACCESS_KEY)
            .env("ENRICHMENT_S3_SECRET_KEY", s3::SECRET_KEY)
            .env("ENRICHMENT_CLUSTER_ENABLED", "true")
            .env("ENRICHMENT_CLUSTER_LISTEN", layout.cluster(i).to_string())
            .env("ENRICHMENT_CLUSTER_SECRET", secret)
            // The log is a file: no colour codes in it.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            // Out of the terminal's process group: a Ctrl-C reaches the launcher only, which
            // stops the nodes before the servers they use.
            .process_group(0);
        if i == 0 {
            cmd.env_remove("ENRICHMENT_CLUSTER_SEEDS");
        } else {
            cmd.env("ENRICHMENT_CLUSTER_SEEDS", layout.cluster(0).to_string());
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(NodeProc {
            id,
            child,
            log,
            reported: false,
        })
    }

    /// The last lines of the node's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, through the shell's `kill` (present wherever `sh` is).
    fn terminate(&self) {
        let _ = Command::new("sh")
            .args([
                "-c",
                "kill -TERM \"$1\"",
                "sh",
                &self.child.id().to_string(),
            ])
            .stderr(Stdio::null())
            .status();
    }
}

/// Everything the launcher started; [`Cluster::stop`] takes it down in order.
struct Cluster {
    nodes: Vec<NodeProc>,
    services: Option<Services>,
    root: tempfile::TempDir,
}

impl Cluster {
    /// Fails, with the node's log, when a node has exited.
    fn check_running(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            if let Some(status) = node.child.try_wait().context("watching a node")? {
                node.reported = true;
                bail!(
                    "{} exited by itself ({status}); the end of its log, {}:\n{}",
                    node.id,
                    node.log.display(),
                    node.log_tail()
                );
            }
        }
        Ok(())
    }

    /// Waits until every node answers `/readyz` with 200 and lists every node as healthy in
    /// its `/admin/v1/cluster/status`. Returns the signal that interrupted the wait, if one did.
    fn wait_ready(
        &mut self,
        layout: &Layout,
        admin_token: &str,
        signals: &Signals,
    ) -> Result<Option<&'static str>> {
        let want: BTreeSet<String> = (0..layout.nodes).map(|i| layout.node_id(i)).collect();
        let deadline = Instant::now() + READY_WITHIN;
        let mut last = String::new();
        loop {
            self.check_running()?;
            let mut all = true;
            for i in 0..layout.nodes {
                match node_state(layout.rest(i), admin_token, &want) {
                    Ok(None) => {}
                    Ok(Some(waiting)) => {
                        all = false;
                        last = format!("{}: {waiting}", layout.node_id(i));
                        break;
                    }
                    Err(e) => {
                        all = false;
                        last = format!("{}: {e:#}", layout.node_id(i));
                        break;
                    }
                }
            }
            if all {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--- {} ({}):\n{}", n.id, n.log.display(), n.log_tail()))
                    .collect();
                bail!(
                    "the cluster was not ready within {} s; last seen: {last}\n{}",
                    READY_WITHIN.as_secs(),
                    logs.join("\n")
                );
            }
            if let Some(signal) = signals.wait(POLL) {
                return Ok(Some(signal));
            }
        }
    }

    /// SIGTERM to every node, then waits for them (killing any that outlast
    /// [`STOP_WITHIN`]), then stops the servers and removes the temporary directories.
    /// Whether every node exited by itself with success.
    fn stop(mut self) -> bool {
        let mut clean = true;
        if !self.nodes.is_empty() {
            eprintln!("stopping the nodes (SIGTERM: they drain)");
        }
        for node in &self.nodes {
            node.terminate();
        }
        let deadline = Instant::now() + STOP_WITHIN;
        for node in &mut self.nodes {
            let status = loop {
                match node.child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL / 4),
                    _ => break None,
                }
            };
            match status {
                Some(status) if status.success() => {}
                Some(_) if node.reported => clean = false,
                Some(status) => {
                    clean = false;
                    eprintln!(
                        "{} exited with {status}; the end of its log:\n{}",
                        node.id,
                        node.log_tail()
                    );
                }
                None => {
                    clean = false;
                    eprintln!(
                        "{} did not stop within {} s: killing it",
                        node.id,
                        STOP_WITHIN.as_secs()
                    );
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                }
            }
        }
        if let Some(services) = self.services.take() {
            eprintln!("stopping PostgreSQL, Redis and s3s-fs");
            drop(services);
        }
        let root = self.root.path().to_path_buf();
        if let Err(e) = self.root.close() {
            clean = false;
            eprintln!("could not remove {}: {e}", root.display());
        }
        clean
    }
}

/// `None` when the node is ready and lists every node in `want` as healthy; otherwise what it
/// still waits for.
fn node_state(
    rest: SocketAddr,
    admin_token: &str,
    want: &BTreeSet<String>,
) -> Result<Option<String>> {
    let (status, _) = http_get(rest, "/readyz", None)?;
    if status != 200 {
        return Ok(Some(format!("/readyz answers {status}")));
    }
    let (status, body) = http_get(rest, "/admin/v1/cluster/status", Some(admin_token))?;
    if status != 200 {
        return Ok(Some(format!("/admin/v1/cluster/status answers {status}")));
    }
    let value: serde_json::Value =
        serde_json::from_str(&body).context("reading /admin/v1/cluster/status")?;
    let healthy: BTreeSet<String> = value["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["status"] == "healthy")
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect();
    if &healthy == want {
        Ok(None)
    } else {
        Ok(Some(format!(
            "lists {} healthy",
            healthy.into_iter().collect::<Vec<_>>().join(", ")
        )))
    }
}

/// A GET over HTTP/1.1 with short timeouts: the status code and the body.
fn http_get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(3)))?;
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading GET {path} from {addr}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {path} from {addr}: no complete answer"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("GET {path} from {addr}: no status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = size.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// "1 node", "2 nodes".
fn plural(n: u8, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `len` random bytes from the kernel, in hex.
fn random_hex(len: usize) -> Result<String> {
    let mut bytes = vec![0u8; len];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `--enrichment`, else `enrichment` beside this program (cargo puts both in one target
/// directory), else on PATH.
fn enrichment_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--enrichment {}: no such file", path.display());
    }
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("enrichment"))
        .filter(|p| p.is_file());
    beside.or_else(|| which("enrichment")).context(
        "no enrichment binary: build it (cargo build --release -p enrichment-node) and pass \
         --enrichment target/release/enrichment, or run deploy/local-cluster",
    )
}

fn print_summary(
    layout: &Layout,
    cluster: &Cluster,
    admin_token: &str,
    secret: &str,
    started: Instant,
) -> Result<()> {
    let mut rows = vec![[
        "node".to_owned(),
        "REST".to_owned(),
        "gateway".to_owned(),
        "cluster (UDP)".to_owned(),
        "log".to_owned(),
    ]];
    for (i, node) in (0..layout.nodes).zip(&cluster.nodes) {
        rows.push([
            node.id.clone(),
            format!("http://{}", layout.rest(i)),
            format!("ws://{}", layout.gateway(i)),
            layout.cluster(i).to_string(),
            node.log.display().to_string(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let services = cluster
        .services
        .as_ref()
        .context("the servers are not running")?;
    let first = format!("http://{}", layout.rest(0));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nEnrichment cluster of {}, on PostgreSQL, Redis and s3s-fs\n",
        plural(layout.nodes, "node")
    )?;
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "  {}", line.join("  ").trim_end())?;
    }
    writeln!(out)?;
    writeln!(out, "  cluster secret  {secret}")?;
    writeln!(out, "  PostgreSQL      {}", services.database)?;
    writeln!(out, "  Redis           {}", services.redis.url())?;
    writeln!(
        out,
        "  S3              {} (bucket {}, access key {})",
        services.s3.endpoint(),
        s3::BUCKET,
        s3::ACCESS_KEY
    )?;
    writeln!(out, "  data and logs   {}", cluster.root.path().display())?;
    writeln!(
        out,
        "\nThe admin token, the same on every node, and what to try:\n"
    )?;
    writeln!(out, "  export ENRICHMENT_ADMIN_TOKEN={admin_token}")?;
    writeln!(out, "  enrichctl --server {first} cluster status")?;
    writeln!(
        out,
        "  curl -s {first}/admin/v1/cluster/status -H \"Authorization: Bearer $ENRICHMENT_ADMIN_TOKEN\""
    )?;
    writeln!(
        out,
        "  API={first}/api/v10    # the README's walkthrough works against any node"
    )?;
    writeln!(
        out,
        "\nCtrl-C stops the nodes (they drain), then the servers, and removes the data and logs."
    )?;
    writeln!(
        out,
        "ready: {}, in {} s",
        plural(layout.nodes, "node"),
        started.elapsed().as_secs()
    )?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_i_listens_on_its_own_loopback_address_with_the_same_three_ports() {
        let layout = Layout {
            nodes: 3,
            base_port: 18080,
        };
        assert_eq!(layout.rest(0).to_string(), "127.0.0.1:18080");
        assert_eq!(layout.gateway(1).to_string(), "127.0.0.2:18081");
        assert_eq!(layout.cluster(2).to_string(), "127.0.0.3:18082");
        assert_eq!(layout.node_id(2), "node-3");
    }

    #[test]
    fn a_chunked_body_is_joined() {
        let body = "7\r\n{\"nodes\r\n6\r\n\":[]}\n\r\n0\r\n\r\n";
        assert_eq!(dechunk(body), "{\"nodes\":[]}\n");
        assert_eq!(dechunk("0\r\n\r\n"), "");
    }

    #[test]
    fn random_hex_is_as_long_as_asked_and_differs() {
        let a = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(32).unwrap());
    }
}
