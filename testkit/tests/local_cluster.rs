//! The local cluster launcher, as a user runs it: two real nodes that come up ready and list
//! each other, and a SIGTERM that takes down every process the launcher started, exits 0 and
//! leaves no directory behind.
//!
//! The launcher is this package's binary; the `enrichment` binary belongs to the node crate,
//! which this crate cannot depend on. It is taken from `ENRICHMENT_BIN` when set, else from the
//! same target directory as the launcher: `./scripts/test` builds the whole workspace, node
//! included, before it runs any test. Run alone, build it first:
//! `cargo build -p enrichment-node && cargo test -p enrichment-testkit --test local_cluster`
//! (with `--release` on both for the release binaries).

// Helpers outside `#[test]` functions unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_enrichment-local-cluster");

fn enrichment_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ENRICHMENT_BIN") {
        return PathBuf::from(path);
    }
    let beside = PathBuf::from(LAUNCHER).with_file_name("enrichment");
    assert!(
        beside.is_file(),
        "{} is missing: build the node first (cargo build -p enrichment-node, with --release \
         for a release test run), or set ENRICHMENT_BIN",
        beside.display()
    );
    beside
}

/// A base port whose three ports are free on 127.0.0.1 and 127.0.0.2.
fn free_base_port() -> u16 {
    for _ in 0..50 {
        let base = enrichment_testkit::free_port().unwrap();
        if base > 65533 {
            continue;
        }
        let free = ["127.0.0.1", "127.0.0.2"].iter().all(|ip| {
            TcpListener::bind((*ip, base)).is_ok()
                && TcpListener::bind((*ip, base + 1)).is_ok()
                && UdpSocket::bind((*ip, base + 2)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no three free ports in a row on 127.0.0.1 and 127.0.0.2")
}

/// The launcher process; stopped (SIGTERM, then SIGKILL) if the test ends early.
struct Launcher {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
    _stderr_dir: tempfile::TempDir,
}

impl Launcher {
    fn start(args: &[&str]) -> Launcher {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("launcher.stderr");
        let mut child = Command::new(LAUNCHER)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Launcher {
            child,
            lines,
            stderr,
            _stderr_dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Every line of standard output up to and including `ready: ...`.
    fn until_ready(&mut self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let done = line.starts_with("ready: ");
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!(
                        "the launcher exited ({status}) before it was ready\nstdout:\n{}\nstderr:\n{}",
                        seen.join("\n"),
                        self.stderr()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "the launcher was not ready within {within:?}\nstdout:\n{}\nstderr:\n{}",
                seen.join("\n"),
                self.stderr()
            );
        }
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("sh")
            .args(["-c", &format!("kill -{name} \"$1\""), "sh"])
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
    }

    fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("TERM");
            if self.exited_within(Duration::from_secs(60)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// A process as `/proc` shows it: pid, parent, command name, start time (pid and start time
/// name one process, even after the pid is reused).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    start: u64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    // After comm: state (0), ppid (1), ..., starttime (19).
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some(Proc {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        comm,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every live process below `root`.
fn descendants(root: u32) -> Vec<Proc> {
    let all: Vec<Proc> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(read_proc)
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            parents.push(p.pid);
            found.push(p.clone());
        }
    }
    found.sort();
    found
}

fn still_running(p: &Proc) -> bool {
    read_proc(p.pid).is_some_and(|now| now.start == p.start)
}

/// A GET over HTTP/1.1: the status code and the body.
fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

#[test]
fn two_nodes_see_each_other_and_sigterm_stops_everything_it_started() {
    let enrichment = enrichment_binary();
    let base = free_base_port();
    let mut launcher = Launcher::start(&[
        "--nodes",
        "2",
        "--base-port",
        &base.to_string(),
        "--enrichment",
        enrichment.to_str().unwrap(),
        // A backstop: the launcher stops by itself should this test die without stopping it.
        "--hold-secs",
        "600",
    ]);
    let out = launcher.until_ready(Duration::from_secs(240));
    let token = out
        .iter()
        .find_map(|l| l.trim().strip_prefix("export ENRICHMENT_ADMIN_TOKEN="))
        .unwrap_or_else(|| panic!("no admin token in {out:#?}"))
        .to_owned();
    let data = out
        .iter()
        .find_map(|l| l.trim().strip_prefix("data and logs"))
        .map(|rest| PathBuf::from(rest.trim()))
        .unwrap_or_else(|| panic!("no data directory in {out:#?}"));
    assert!(data.is_dir(), "{}", data.display());
    for node in ["node-1", "node-2"] {
        assert!(
            out.iter().any(|l| l.trim_start().starts_with(node)),
            "{node} missing from the table: {out:#?}"
        );
    }

    let started = descendants(launcher.child.id());
    let nodes: Vec<&Proc> = started.iter().filter(|p| p.comm == "enrichment").collect();
    assert_eq!(nodes.len(), 2, "{started:#?}");
    for server in ["postgres", "redis-server", "s3s-fs"] {
        assert!(
            started.iter().any(|p| p.comm.starts_with(server)),
            "{server} is not among the launcher's processes: {started:#?}"
        );
    }

    // Each node, on its own loopback address, is ready and lists both.
    let want: BTreeSet<&str> = ["node-1", "node-2"].into();
    let addrs: Vec<SocketAddr> = ["127.0.0.1", "127.0.0.2"]
        .iter()
        .map(|ip| format!("{ip}:{base}").parse().unwrap())
        .collect();
    for addr in &addrs {
        assert_eq!(get(*addr, "/readyz", "").0, 200, "{addr}");
        let (status, body) = get(*addr, "/admin/v1/cluster/status", &token);
        assert_eq!(status, 200, "{addr}: {body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let ids: BTreeSet<&str> = value["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, want, "{addr}: {body}");
    }

    launcher.signal("TERM");
    let status = launcher
        .exited_within(Duration::from_secs(90))
        .unwrap_or_else(|| panic!("the launcher still runs 90 s after SIGTERM"));
    let stderr = launcher.stderr();
    assert!(status.success(), "{status}\n{stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");

    let left: Vec<&Proc> = started.iter().filter(|p| still_running(p)).collect();
    assert!(left.is_empty(), "still running: {left:#?}");
    assert!(!data.exists(), "{} is still there", data.display());
    for addr in &addrs {
        assert!(TcpStream::connect_timeout(addr, Duration::from_secs(1)).is_err());
    }
}
