//! Runs the real `enrichctl` binary against a node started in-process, each user with a home
//! directory (and so a credentials file) of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use enrichment_node::config::Secret;
use enrichment_node::{Config, Node};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStderr, ChildStdout};

pub const ADMIN_TOKEN: &str = "cli-test-admin-token";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestNode {
    pub node: Node,
    _dir: TempDir,
    config: Config,
    pub server: String,
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::ephemeral(dir.path());
        config.admin_token = Some(Secret::new(ADMIN_TOKEN));
        tweak(&mut config);
        let node = Node::start(config.clone()).await.expect("node starts");
        let server = format!("http://{}", node.addr);
        TestNode {
            node,
            _dir: dir,
            config,
            server,
        }
    }

    /// Stops the node (gateway clients get RECONNECT) and starts it again on the same ports
    /// and data directory; sessions do not survive, stored data and tokens do.
    pub async fn restart(self) -> TestNode {
        let mut config = self.config.clone();
        config.listen = self.node.addr;
        config.gateway_listen = self.node.gateway_addr;
        self.node.stop().await;
        let node = Node::start(config.clone()).await.expect("node restarts");
        TestNode {
            node,
            _dir: self._dir,
            config,
            server: self.server,
        }
    }

    /// A user of the CLI: a home directory of its own, pointed at this node.
    pub fn user(&self) -> Cli {
        Cli {
            home: tempfile::tempdir().expect("home"),
            server: Some(self.server.clone()),
        }
    }
}

/// One person's `enrichctl`.
pub struct Cli {
    pub home: TempDir,
    /// Passed as ENRICHMENT_SERVER; `None` leaves the server to the credentials file.
    pub server: Option<String>,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "enrichctl failed: {self:#?}");
        &self.stdout
    }

    /// Asserts success and parses stdout as exactly one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {out:?}"))
    }

    /// Asserts the exit code and that stderr mentions `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:#?}"
        );
    }
}

impl Cli {
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join(".config")
    }

    pub fn credentials(&self) -> PathBuf {
        self.config_dir().join("enrichctl").join("credentials.json")
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_enrichctl"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        if let Some(s) = &self.server {
            cmd.env("ENRICHMENT_SERVER", s);
        }
        cmd
    }

    /// Starts `enrichctl args...` (a `tail`) with its output read line by line.
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Spawned {
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr: BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
        }
    }

    /// Runs `enrichctl args...` with `stdin` (empty when `None`) and waits for it.
    pub async fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("enrichctl starts");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .await
                .expect("stdin written");
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("enrichctl finished within 60 s")
            .expect("enrichctl ran");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], None).await
    }

    /// Registers `name` (password on stdin) and so logs in.
    pub async fn register(&self, name: &str) -> Value {
        let email = format!("{name}@example.com");
        self.run_with(
            &[
                "--json",
                "register",
                "--username",
                name,
                "--email",
                &email,
                "--password-stdin",
            ],
            &[],
            Some(&format!("{PASSWORD}\n")),
        )
        .await
        .json()
    }
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// A running `enrichctl` and its output, line by line.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub stdout: Lines<BufReader<ChildStdout>>,
    pub stderr: Lines<BufReader<ChildStderr>>,
}

impl Spawned {
    /// What the process writes to stderr from here until it ends.
    pub async fn notes(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        while let Ok(Some(l)) = self.stderr.next_line().await {
            notes.push(l);
        }
        notes
    }
}
