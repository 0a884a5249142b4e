//! Boots real nodes in-process on ephemeral ports and drives them over HTTP.

use std::time::Duration;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use enrichment_node::config::{BlobKind, S3Config, Secret, StorageKind};
use enrichment_node::{Config, Node};
use enrichment_testkit::{Postgres, Redis, S3Server};
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestNode {
    pub node: Option<Node>,
    /// Kept so the data directory lives as long as the node.
    _dir: TempDir,
    pub config: Config,
    pub base: String,
    pub http: reqwest::Client,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts a Discord error: status and JSON code.
    #[track_caller]
    pub fn err(&self, status: u16, code: u64) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.body["code"].as_u64(),
            Some(code),
            "unexpected error body: {}",
            self.body
        );
        assert!(
            self.body["message"].is_string(),
            "error without message: {}",
            self.body
        );
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub token: String,
    pub refresh_token: String,
}

/// Whether this run puts every node on the shared backends (PostgreSQL, Redis, S3) instead of
/// the embedded default: `ENRICHMENT_TEST_BACKENDS=shared`, as `scripts/test` does for its
/// second pass over the REST and gateway suites.
pub fn shared_backends() -> bool {
    std::env::var("ENRICHMENT_TEST_BACKENDS").as_deref() == Ok("shared")
}

/// Servers shared by every test of this binary; each node gets a database and a Redis key
/// prefix of its own. They stop when the test process exits.
pub struct Servers {
    pub postgres: Postgres,
    pub redis: Redis,
    pub s3: S3Server,
}

pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| Servers {
        postgres: Postgres::start().expect("start PostgreSQL"),
        redis: Redis::start().expect("start redis-server"),
        s3: S3Server::start().expect("start s3s-fs"),
    })
}

/// A database and a key prefix for one node, or several nodes of one cluster.
#[derive(Clone, Debug)]
pub struct SharedPlace {
    pub database: String,
    pub prefix: String,
}

impl SharedPlace {
    pub fn new() -> SharedPlace {
        static N: AtomicU32 = AtomicU32::new(0);
        SharedPlace {
            database: servers()
                .postgres
                .fresh_database()
                .expect("create a database"),
            prefix: format!(
                "t{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Points a node's config at this place.
    pub fn apply(&self, c: &mut Config) {
        c.storage = StorageKind::Postgres;
        c.postgres.url = Some(Secret::new(self.database.clone()));
        c.postgres.pool_size = 4;
        c.redis.url = Some(Secret::new(servers().redis.url()));
        c.redis.key_prefix = self.prefix.clone();
        c.blobs = BlobKind::S3;
        c.s3 = S3Config {
            endpoint: Some(servers().s3.endpoint()),
            bucket: Some(enrichment_testkit::s3::BUCKET.to_owned()),
            access_key: Some(Secret::new(enrichment_testkit::s3::ACCESS_KEY)),
            secret_key: Some(Secret::new(enrichment_testkit::s3::SECRET_KEY)),
            ..S3Config::default()
        };
    }
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::ephemeral(dir);
    if shared_backends() {
        SharedPlace::new().apply(&mut c);
    }
    c
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let node = Node::start(config.clone()).await.expect("node starts");
        let base = node.api_url();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        TestNode {
            node: Some(node),
            _dir: dir,
            config,
            base,
            http,
        }
    }

    /// Stops the node and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        if let Some(n) = self.node.take() {
            n.stop().await;
        }
        let node = Node::start(self.config.clone())
            .await
            .expect("node restarts");
        self.base = node.api_url();
        self.node = Some(node);
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.call_with(method, path, token, body, &[]).await
    }

    /// [`TestNode::call`] with extra request headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn register(&self, username: &str) -> User {
        let body = self
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(json!({"username": username, "email": format!("{username}@example.com"), "password": "correct horse battery"})),
            )
            .await
            .ok(201);
        User {
            id: body["user"]["id"].as_str().expect("user id").to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
            refresh_token: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Creates a guild owned by `owner`; returns (guild id, general channel id).
    pub async fn guild(&self, owner: &User, name: &str) -> (String, String) {
        let g = self
            .post("/guilds", &owner.token, json!({"name": name}))
            .await
            .ok(201);
        let gid = g["id"].as_str().expect("guild id").to_owned();
        let chans = self
            .get(&format!("/guilds/{gid}/channels"), &owner.token)
            .await
            .ok(200);
        (gid, chans[0]["id"].as_str().expect("channel id").to_owned())
    }

    /// Makes `user` a member of the guild of `channel` through an invite from `inviter`.
    pub async fn join(&self, inviter: &User, channel: &str, user: &User) {
        let inv = self
            .post(
                &format!("/channels/{channel}/invites"),
                &inviter.token,
                json!({}),
            )
            .await
            .ok(200);
        let code = inv["code"].as_str().expect("code");
        self.post(&format!("/invites/{code}"), &user.token, json!({}))
            .await
            .ok(200);
    }

    pub async fn send(&self, user: &User, channel: &str, content: &str) -> Value {
        self.post(
            &format!("/channels/{channel}/messages"),
            &user.token,
            json!({"content": content}),
        )
        .await
        .ok(200)
    }
}

/// A bot authorized into a guild.
#[derive(Clone, Debug)]
pub struct Bot {
    pub app_id: String,
    pub user_id: String,
    /// `Bot <token>`, ready for an Authorization header or IDENTIFY.
    pub token: String,
}

impl TestNode {
    /// Creates an application owned by `owner`, issues its bot token and authorizes the bot
    /// into `guild_id` with `permissions`.
    pub async fn bot(&self, owner: &User, name: &str, guild_id: &str, permissions: u64) -> Bot {
        let app = self
            .post("/applications", &owner.token, json!({"name": name}))
            .await
            .ok(201);
        let app_id = id_of(&app);
        let token = self
            .post(
                &format!("/applications/{app_id}/bot/reset"),
                &owner.token,
                json!({}),
            )
            .await
            .ok(200)["token"]
            .as_str()
            .expect("token")
            .to_owned();
        self.post(
            &format!("/oauth2/authorize?client_id={app_id}&scope=bot&permissions={permissions}"),
            &owner.token,
            json!({"guild_id": guild_id, "authorize": true}),
        )
        .await
        .ok(200);
        Bot {
            app_id,
            user_id: app["bot"]["id"].as_str().expect("bot id").to_owned(),
            token: format!("Bot {token}"),
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // Nodes are stopped explicitly in restart tests; the rest end with the test runtime.
        let _ = self.node.take();
    }
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// The `kid` in a JWT's header.
pub fn jwt_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// `enrichment serve` as a real process on loopback ports, stdout and stderr appended to one
/// log file. Killed when dropped, so a failed assertion leaves no server behind.
pub struct Binary {
    child: std::process::Child,
    pub base: String,
    pub gateway_port: u16,
}

impl Binary {
    /// Starts the binary with `data_dir`, `extra` flags and `env`, and waits until it answers
    /// `/healthz`. A port that was free when chosen can be taken by another test before the
    /// child binds it; such a start is retried on new ports. Any other early exit fails the
    /// test with the log.
    pub async fn start(
        data_dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Binary {
        for _ in 0..3 {
            if let Some(node) = Binary::try_start(data_dir, extra, env, log).await {
                return node;
            }
        }
        panic!("no free ports after three tries");
    }

    /// One attempt of [`Binary::start`]: `None` when a port was taken before the child bound
    /// it. A caller that puts ports of its own in `extra` chooses them anew for each attempt.
    pub async fn try_start(
        data_dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Option<Binary> {
        use std::process::{Command, Stdio};
        let http = reqwest::Client::new();
        let port = enrichment_testkit::free_port().unwrap();
        let gateway_port = enrichment_testkit::free_port().unwrap();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        // Where this attempt's output starts: an earlier attempt's bind error is not this one's.
        let from = out.metadata().unwrap().len() as usize;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_enrichment"));
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-listen",
            &format!("127.0.0.1:{gateway_port}"),
        ])
        .args(extra)
        .env_remove("ENRICHMENT_ADMIN_TOKEN")
        .env_remove("ENRICHMENT_NODE_ID")
        .env("ENRICHMENT_DATA_DIR", data_dir)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut node = Binary {
            child: cmd.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            gateway_port,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", node.base)).send().await
                && r.status() == 200
            {
                return Some(node);
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                let all = std::fs::read_to_string(log).unwrap_or_default();
                let output = all.get(from..).unwrap_or(&all);
                if output.contains("Address already in use") {
                    return None;
                }
                panic!("the server exited with {status} before serving: {output}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not come up: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM: the node drains and exits.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// SIGSTOP: the process freezes where it is, its sockets open, as a process stalled by
    /// its machine does.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT: a paused process runs on.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGTERM, then waits until it is gone.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        self.wait()
    }

    /// SIGKILL: the process dies at once, releasing nothing.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits up to `timeout` for the process to exit on its own; `None` if it still runs.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
