//! discord.js v14, unmodified, from npm: `node/tests/compat/discordjs/bot.mjs` with
//! `rest: { api: "http://127.0.0.1:PORT/api" }` and nothing else changed. It finds the gateway
//! through `GET /gateway/bot`.
//!
//! The packages are installed with `npm ci` from the committed lock file into the cargo target
//! directory, once per lock file content; a warm target directory skips the install.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::scenario::{CHANNEL_NAME, GUILD_NAME, Scenario, THUMBS_UP};

/// The whole conversation with the bot, after the install.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// `npm ci` on a cold target directory.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/discordjs")
}

/// Runs `program --version`, failing the test with what to install when it is missing.
fn require_tool(program: &str) {
    let ok = std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{program}` was not found: the discord.js compatibility test needs Node.js 18 or newer \
         with npm (Debian: `apt-get install nodejs npm`)"
    );
}

/// Installs the locked packages once per lock file; returns the directory holding
/// `node_modules`.
fn install() -> PathBuf {
    require_tool("node");
    require_tool("npm");
    let src = source_dir();
    let manifest = std::fs::read(src.join("package.json")).expect("package.json");
    let lock = std::fs::read(src.join("package-lock.json")).expect("package-lock.json");
    let mut hash = Sha256::new();
    hash.update(&manifest);
    hash.update(&lock);
    let key: String = hash
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-discordjs");
    let dir = root.join(&key);
    if dir.join("node_modules/.installed").exists() {
        return dir;
    }
    // Install beside the final place and move it there, so an interrupted install is never
    // taken for a finished one.
    let staging = root.join(format!("{key}.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).expect("staging dir");
    std::fs::write(staging.join("package.json"), &manifest).expect("copy package.json");
    std::fs::write(staging.join("package-lock.json"), &lock).expect("copy package-lock.json");
    let started = Instant::now();
    let mut child = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&staging)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("npm starts");
    let status = loop {
        if let Some(status) = child.try_wait().expect("npm ci") {
            break status;
        }
        if started.elapsed() > INSTALL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "npm ci took more than {INSTALL_TIMEOUT:?} in {}",
                staging.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("npm output");
    assert!(
        status.success(),
        "npm ci failed in {}:\n{}\n{}",
        staging.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(staging.join("node_modules/.installed"), b"").expect("install marker");
    eprintln!("discord.js installed in {:?}", started.elapsed());
    if std::fs::rename(&staging, &dir).is_err() {
        // Another run finished first; its install is as good as ours.
        let _ = std::fs::remove_dir_all(&staging);
        assert!(dir.join("node_modules/.installed").exists());
    }
    dir
}

/// The running bot: its JSON lines, its stdin, and everything it wrote to stderr.
struct BotProcess {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    deadline: Instant,
}

impl BotProcess {
    async fn spawn(dir: &Path, s: &Scenario) -> BotProcess {
        std::fs::copy(source_dir().join("bot.mjs"), dir.join("bot.mjs")).expect("copy bot.mjs");
        let mut child = Command::new("node")
            .arg("bot.mjs")
            .current_dir(dir)
            .env("ENRICHMENT_API", format!("http://{}/api", s.rest_addr()))
            .env("BOT_TOKEN", s.raw_bot_token())
            .env("GUILD_ID", &s.guild_id)
            .env("CHANNEL_ID", &s.channel_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().expect("stdin");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(read_json_lines(child.stdout.take().expect("stdout"), tx));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        tokio::spawn(collect(
            child.stderr.take().expect("stderr"),
            stderr.clone(),
        ));
        BotProcess {
            child,
            stdin,
            lines,
            stderr,
            deadline: Instant::now() + SCENARIO_TIMEOUT,
        }
    }

    /// The next line the bot prints, which must be `event`.
    async fn expect(&mut self, event: &str) -> Value {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.lines.recv()).await {
            Ok(Some(line)) if line["event"] == event => line,
            Ok(Some(line)) => self.fail(&format!("expected `{event}`, the bot said {line}")),
            Ok(None) => self.fail(&format!("the bot exited before `{event}`")),
            Err(_) => self.fail(&format!(
                "no `{event}` within {SCENARIO_TIMEOUT:?} of the bot's start"
            )),
        }
    }

    /// Lets the bot go on to its next step.
    async fn proceed(&mut self) {
        if self.stdin.write_all(b"next\n").await.is_err() {
            self.fail("the bot stopped reading");
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.start_kill();
        // The reader tasks may still be draining; what they have is enough to diagnose.
        std::thread::sleep(Duration::from_millis(200));
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let tail: String = {
            let lines: Vec<&str> = stderr.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        panic!("discord.js bot: {what}\n--- bot stderr (last lines) ---\n{tail}");
    }
}

async fn read_json_lines(out: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<Value>) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let value = serde_json::from_str(&line)
            .unwrap_or_else(|_| serde_json::json!({"event": "unparsed", "line": line}));
        if tx.send(value).is_err() {
            break;
        }
    }
}

async fn collect(err: impl AsyncRead + Unpin, into: std::sync::Arc<std::sync::Mutex<String>>) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut s) = into.lock() {
            s.push_str(&line);
            s.push('\n');
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discordjs_bot_plays_the_scenario() {
    let dir = tokio::task::spawn_blocking(install)
        .await
        .expect("install task");
    let s = Scenario::start("djs_owner", "DjsBot").await;
    let mut bot = BotProcess::spawn(&dir, &s).await;

    // Login: /gateway/bot, IDENTIFY, READY, then GUILD_CREATE fills the caches.
    let ready = bot.expect("ready").await;
    assert_eq!(ready["user_id"], s.bot.user_id, "{ready}");
    assert_eq!(ready["application_id"], s.bot.app_id, "{ready}");
    assert_eq!(ready["guild_count"], 1, "{ready}");
    assert_eq!(ready["guild_name"], GUILD_NAME, "{ready}");
    assert_eq!(
        ready["channel_names"],
        serde_json::json!([CHANNEL_NAME, "general"]),
        "{ready}"
    );
    assert_eq!(ready["member_cached"], true, "{ready}");
    assert!(ready["role_count"].as_u64() >= Some(2), "{ready}");

    // A human writes; the bot reads the content (MESSAGE_CONTENT) and replies.
    let said = s.owner_says("hello bot").await;
    let said_id = said["id"].as_str().expect("id");
    let seen = bot.expect("message_create").await;
    assert_eq!(seen["id"], said_id, "{seen}");
    assert_eq!(seen["content"], "hello bot", "{seen}");
    assert_eq!(seen["author_id"], s.owner.id, "{seen}");
    assert_eq!(seen["guild_id"], s.guild_id, "{seen}");
    assert_eq!(seen["channel_name"], CHANNEL_NAME, "{seen}");
    let replied = bot.expect("replied").await;
    let reply_id = replied["id"].as_str().expect("reply id").to_owned();
    assert_eq!(replied["reference"], said_id, "{replied}");
    s.check_reply(&reply_id, said_id, "pong: hello bot").await;
    bot.proceed().await;

    let reacted = bot.expect("reacted").await;
    assert_eq!(reacted["emoji"], THUMBS_UP, "{reacted}");
    assert_eq!(reacted["me"], true, "{reacted}");
    s.check_reaction(&reply_id).await;
    bot.proceed().await;

    let edited = bot.expect("edited").await;
    assert_eq!(edited["content"], "pong (edited)", "{edited}");
    assert_eq!(edited["edited"], true, "{edited}");
    s.check_edited(&reply_id, "pong (edited)").await;
    bot.proceed().await;

    bot.expect("deleted").await;
    s.check_deleted(&reply_id).await;

    // A member joins: GUILD_MEMBER_ADD (GUILD_MEMBERS) and the bot welcomes them.
    let newcomer = s.newcomer_joins("djs_newcomer").await;
    let welcomed = bot.expect("welcomed").await;
    assert_eq!(welcomed["user_id"], newcomer.id, "{welcomed}");
    assert_eq!(welcomed["username"], "djs_newcomer", "{welcomed}");
    assert_eq!(welcomed["guild_id"], s.guild_id, "{welcomed}");
    s.check_welcome(
        welcomed["message_id"].as_str().expect("message id"),
        "djs_newcomer",
    )
    .await;
    bot.proceed().await;

    // A webhook made by the bot and posted through with its token.
    let sent = bot.expect("webhook_sent").await;
    assert_eq!(sent["has_token"], true, "{sent}");
    let webhook_id = sent["webhook_id"].as_str().expect("webhook id").to_owned();
    assert_eq!(sent["message_webhook_id"], webhook_id.as_str(), "{sent}");
    assert_eq!(sent["author"], "Hooked", "{sent}");
    s.check_webhook_message(
        sent["message_id"].as_str().expect("message id"),
        &webhook_id,
        "Hooked",
    )
    .await;
    bot.proceed().await;
    bot.expect("webhook_deleted").await;
    s.check_webhook_deleted(&webhook_id).await;
    bot.proceed().await;

    // A DM opened by `user.createDM()`, the newcomer's answer read back by the bot.
    let dm = bot.expect("dm_sent").await;
    assert_eq!(dm["type"], 1, "{dm}");
    assert_eq!(dm["recipient_id"], newcomer.id, "{dm}");
    assert_eq!(dm["guild_id"], serde_json::Value::Null, "{dm}");
    let dm_channel = dm["channel_id"].as_str().expect("dm id").to_owned();
    s.check_dm(&newcomer, &dm_channel, "Welcome in private")
        .await;
    s.node.send(&newcomer, &dm_channel, "thanks, bot").await;
    let heard = bot.expect("dm_received").await;
    assert_eq!(heard["channel_id"], dm_channel.as_str(), "{heard}");
    assert_eq!(heard["author_id"], newcomer.id, "{heard}");
    assert_eq!(heard["content"], "thanks, bot", "{heard}");
    assert_eq!(heard["is_dm"], true, "{heard}");
    bot.proceed().await;

    bot.expect("done").await;
    let status = tokio::time::timeout(Duration::from_secs(10), bot.child.wait()).await;
    match status {
        Ok(Ok(status)) if status.success() => {}
        other => bot.fail(&format!("the bot did not exit cleanly: {other:?}")),
    }
}
