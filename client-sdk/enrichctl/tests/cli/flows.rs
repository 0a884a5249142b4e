//! What a user does: register, create a guild and a channel, talk, read history, tail a
//! channel live, invite someone, make a bot.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use enrichment_client::protocol::rest::CreateMessage;
use enrichment_client::{Client, Token};
use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_talks_and_another_tails_live() {
    let t = TestNode::start().await;
    let alice = t.user();
    let me = alice.register("alice").await;
    assert_eq!(me["username"], "alice");

    // The login is kept, privately.
    let creds = alice.credentials();
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", creds.display());
    let dir_mode = std::fs::metadata(creds.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "the directory is private too");
    assert_eq!(
        alice.run(&["--json", "whoami"]).await.json()["id"],
        me["id"]
    );
    assert!(alice.run(&["whoami"]).await.ok().contains("alice"));

    let guild = alice
        .run(&["--json", "guild", "create", "Book Club"])
        .await
        .json();
    let gid = id(&guild);
    assert_eq!(guild["name"], "Book Club");
    let listed = alice.run(&["--json", "guild", "list"]).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        alice
            .run(&["guild", "list"])
            .await
            .ok()
            .contains("Book Club")
    );
    assert_eq!(
        alice.run(&["--json", "guild", "show", &gid]).await.json()["id"],
        gid
    );

    let channel = alice
        .run(&["--json", "channel", "create", &gid, "reading list"])
        .await
        .json();
    let cid = id(&channel);
    let channels = alice.run(&["--json", "channel", "list", &gid]).await.json();
    assert!(
        channels
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == cid.as_str())
    );
    assert!(
        alice
            .run(&["channel", "list", &gid])
            .await
            .ok()
            .contains("reading-list")
    );

    let sent = alice
        .run(&["--json", "send", &cid, "Next up: Dune"])
        .await
        .json();
    assert_eq!(sent["content"], "Next up: Dune");
    alice.run(&["send", &cid, "Then: Hyperion"]).await.ok();
    let history = alice
        .run(&["--json", "history", &cid, "--limit", "10"])
        .await
        .json();
    let contents: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["Next up: Dune", "Then: Hyperion"],
        "oldest first"
    );
    let human = alice.run(&["history", &cid]).await;
    assert!(human.ok().contains("alice: Then: Hyperion"), "{human:?}");

    // Bob joins through an invite and tails the channel.
    let invite = alice
        .run(&["--json", "invite", "create", &cid, "--max-uses", "1"])
        .await
        .json();
    let code = invite["code"].as_str().unwrap();
    let bob = t.user();
    bob.register("bob").await;
    let joined = bob.run(&["--json", "invite", "accept", code]).await.json();
    assert_eq!(joined["guild"]["id"], gid);

    let mut tail = bob.spawn(&["--json", "tail", &cid]);
    let (stderr, stdout) = (&mut tail.stderr, &mut tail.stdout);
    let ready = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
        .await
        .expect("tail reports that it is listening")
        .unwrap()
        .unwrap_or_default();
    assert!(ready.contains("tailing #reading-list"), "{ready}");
    alice.run(&["send", &cid, "live from alice"]).await.ok();
    alice.run(&["send", &cid, "and again"]).await.ok();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
            .await
            .expect("the tail prints the message")
            .unwrap()
            .expect("a line");
        let m: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert_eq!(m["author"]["username"], "alice");
        seen.push(m["content"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["live from alice", "and again"]);
    tail.child.kill().await.unwrap();

    // A bot: created, authorized into the guild, and its token works.
    let bot = alice
        .run(&["--json", "bot", "create", "Echo", "--guild", &gid])
        .await
        .json();
    let token = bot["token"].as_str().unwrap().to_owned();
    let bot_client = Client::builder(&t.server)
        .token(Token::Bot(token))
        .build()
        .unwrap();
    let beep = bot_client
        .create_message(
            cid.parse().unwrap(),
            &CreateMessage {
                content: Some("beep".into()),
                ..CreateMessage::default()
            },
        )
        .await
        .expect("the bot may speak in the guild");
    assert_eq!(
        beep.author.id.to_string(),
        bot["bot_user_id"].as_str().unwrap()
    );
    let human = alice
        .run(&["bot", "create", "Other", "--guild", &gid])
        .await;
    assert!(human.ok().contains("token (shown once"), "{human:?}");

    // Logging out forgets the login.
    let out = alice.run(&["--json", "logout"]).await.json();
    assert_eq!(out["logged_out"], true);
    alice.run(&["whoami"]).await.fails(3, "not logged in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_members_and_bans() {
    let t = TestNode::start().await;
    let alice = t.user();
    alice.register("alice").await;
    let bob = t.user();
    let bob_id = id(&bob.register("bob").await);
    let gid = id(&alice
        .run(&["--json", "guild", "create", "Mods"])
        .await
        .json());
    let general = alice.run(&["--json", "channel", "list", &gid]).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = alice
        .run(&["--json", "invite", "create", &general])
        .await
        .json()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.run(&["invite", "accept", &code]).await.ok();

    let role = alice
        .run(&[
            "--json", "role", "create", &gid, "Helpers", "--color", "ff8800", "--hoist", "true",
        ])
        .await
        .json();
    assert_eq!(
        (role["color"].as_u64(), role["hoist"].as_bool()),
        (Some(0xff8800), Some(true))
    );
    let rid = id(&role);
    let edited = alice
        .run(&["--json", "role", "edit", &gid, &rid, "--name", "Curators"])
        .await
        .json();
    assert_eq!(edited["name"], "Curators");
    assert!(
        alice
            .run(&["role", "list", &gid])
            .await
            .ok()
            .contains("Curators")
    );

    alice
        .run(&["member", "add-role", &gid, &bob_id, &rid])
        .await
        .ok();
    let m = alice
        .run(&["--json", "member", "show", &gid, &bob_id])
        .await
        .json();
    assert_eq!(m["roles"], serde_json::json!([rid]));
    let m = alice
        .run(&["--json", "member", "nick", &gid, &bob_id, "bobby"])
        .await
        .json();
    assert_eq!(m["nick"], "bobby");
    let members = alice.run(&["--json", "member", "list", &gid]).await.json();
    assert_eq!(members.as_array().unwrap().len(), 2);
    alice
        .run(&["member", "remove-role", &gid, &bob_id, &rid])
        .await
        .ok();

    // Bob may not ban: 403 is its own exit code.
    bob.run(&["ban", "add", &gid, &bob_id])
        .await
        .fails(6, "Missing Permissions");
    let banned = alice
        .run(&[
            "--json", "ban", "add", &gid, &bob_id, "--reason", "flooding",
        ])
        .await
        .json();
    assert_eq!(banned["ok"], true);
    let log = alice
        .run(&["--json", "audit-log", &gid, "--action", "22"])
        .await
        .json();
    assert_eq!(log["audit_log_entries"][0]["target_id"], bob_id);
    assert_eq!(log["audit_log_entries"][0]["reason"], "flooding");
    let table = alice.run(&["audit-log", &gid, "--limit", "5"]).await;
    let table = table.ok();
    assert!(
        table.contains("MEMBER_BAN_ADD") && table.contains("flooding"),
        "{table}"
    );
    let bans = alice.run(&["--json", "ban", "list", &gid]).await.json();
    assert_eq!(bans[0]["user"]["id"], bob_id);
    bob.run(&["guild", "show", &gid])
        .await
        .fails(6, "Missing Access");
    alice.run(&["ban", "remove", &gid, &bob_id]).await.ok();
    assert_eq!(
        alice.run(&["--json", "ban", "list", &gid]).await.json(),
        serde_json::json!([])
    );
    alice.run(&["role", "delete", &gid, &rid]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_past_one_hundred() {
    let t = TestNode::start().await;
    let alice = t.user();
    alice.register("alice").await;
    let gid = id(&alice
        .run(&["--json", "guild", "create", "Archive"])
        .await
        .json());
    let cid = alice.run(&["--json", "channel", "list", &gid]).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // 130 messages through the SDK with alice's stored token.
    let creds: Value =
        serde_json::from_slice(&std::fs::read(alice.credentials()).unwrap()).unwrap();
    let token = creds["servers"][&t.server]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = Client::builder(&t.server)
        .token(Token::Bearer(token))
        .build()
        .unwrap();
    for i in 0..130 {
        client
            .create_message(
                cid.parse().unwrap(),
                &CreateMessage {
                    content: Some(format!("m{i}")),
                    ..CreateMessage::default()
                },
            )
            .await
            .unwrap();
    }
    let page = alice
        .run(&["--json", "history", &cid, "--limit", "120"])
        .await
        .json();
    let contents: Vec<String> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (10..130).map(|i| format!("m{i}")).collect();
    assert_eq!(
        contents, expected,
        "the latest 120, oldest first, across two pages"
    );
    let all = alice
        .run(&["--json", "history", &cid, "--limit", "1000"])
        .await;
    assert_eq!(all.json().as_array().unwrap().len(), 130);
    assert!(
        all.stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {:?}",
        all.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_carries_on_across_a_node_restart() {
    let t = TestNode::start().await;
    let alice = t.user();
    alice.register("alice").await;
    let gid = id(&alice
        .run(&["--json", "guild", "create", "Uptime"])
        .await
        .json());
    let cid = alice.run(&["--json", "channel", "list", &gid]).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tail = alice.spawn(&["tail", &cid]);
    let (stderr, stdout) = (&mut tail.stderr, &mut tail.stdout);
    let line = |l: Option<String>| l.expect("a line");
    let ready = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(line(ready).contains("tailing #general"));
    alice.run(&["send", &cid, "before"]).await.ok();
    let first = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(line(first).ends_with("alice: before"));

    // The node goes away and comes back without the tail's session: what was sent before
    // the tail is back is read over REST, what comes after arrives live, each once.
    let t = t.restart().await;
    alice.run(&["send", &cid, "while reconnecting"]).await.ok();
    let mut got = Vec::new();
    while got.len() < 2 {
        if got.len() == 1 {
            alice.run(&["send", &cid, "after"]).await.ok();
        }
        let l = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .expect("the tail goes on after the restart")
            .unwrap();
        got.push(line(l).rsplit(": ").next().unwrap().to_owned());
    }
    assert_eq!(got, ["while reconnecting", "after"]);
    tail.child.kill().await.unwrap();
    let notes = tail.notes().await;
    assert!(
        notes.iter().any(|n| n.contains("connection lost"))
            && notes.iter().any(|n| n.contains("catching up")),
        "{notes:?}"
    );
    drop(t);
}

/// The stored access token of `cli` for `server`.
fn stored_token(cli: &Cli, server: &str) -> String {
    let creds: Value = serde_json::from_slice(&std::fs::read(cli.credentials()).unwrap()).unwrap();
    creds["servers"][server]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_tokens_are_renewed_even_while_tailing() {
    // Access tokens live 2 s: every command finds its token about to expire.
    let t = TestNode::start_with(|c| c.auth.access_ttl_secs = 2).await;
    let alice = t.user();
    alice.register("alice").await;
    let first = stored_token(&alice, &t.server);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        alice.run(&["--json", "whoami"]).await.json()["username"],
        "alice"
    );
    assert_ne!(stored_token(&alice, &t.server), first, "renewed and kept");
    let gid = id(&alice
        .run(&["--json", "guild", "create", "Night"])
        .await
        .json());
    let cid = alice.run(&["--json", "channel", "list", &gid]).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut tail = alice.spawn(&["tail", &cid]);
    let (stderr, stdout) = (&mut tail.stderr, &mut tail.stdout);
    let ready = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(ready.unwrap_or_default().contains("tailing"));
    // The tail's token expires; then its connection drops, and the server refuses the old
    // token on the way back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t = t.restart().await;
    alice.run(&["send", &cid, "still there?"]).await.ok();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let Some(line) = line else {
        let _ = tail.child.start_kill();
        let notes = tail.notes().await;
        panic!("the tail ended: {notes:?}");
    };
    assert!(line.ends_with("alice: still there?"), "{line}");
    tail.child.kill().await.unwrap();
    let notes = tail.notes().await;
    assert!(
        notes.iter().any(|n| n.contains("renewing the login")),
        "{notes:?}"
    );
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_made_with_a_login_and_posted_through_without_one() {
    let t = TestNode::start().await;
    let alice = t.user();
    alice.register("hookalice").await;
    let gid = id(&alice
        .run(&["--json", "guild", "create", "Hooks"])
        .await
        .json());
    let general = alice.run(&["--json", "channel", "list", &gid]).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hook = alice
        .run(&["--json", "webhook", "create", &general, "Deploys"])
        .await
        .json();
    let hook_id = id(&hook);
    let token = hook["token"].as_str().unwrap().to_owned();
    let listed = alice
        .run(&["--json", "webhook", "list", &general])
        .await
        .json();
    assert_eq!(listed[0]["id"], hook_id);

    // Someone with no login at all posts through it.
    let stranger = t.user();
    let sent = stranger
        .run(&[
            "--json",
            "webhook",
            "send",
            &hook_id,
            &token,
            "v2 is out",
            "--username",
            "Release",
        ])
        .await
        .json();
    assert_eq!(sent["author"]["username"], "Release");
    assert_eq!(sent["webhook_id"], hook_id);
    let history = alice
        .run(&["--json", "history", &general, "--limit", "1"])
        .await;
    assert!(history.ok().contains("v2 is out"));
    stranger
        .run(&["webhook", "send", &hook_id, "wrong-token", "x"])
        .await
        .fails(3, "Invalid Webhook Token");
    alice.run(&["webhook", "delete", &hook_id]).await.ok();
    stranger
        .run(&["webhook", "send", &hook_id, &token, "x"])
        .await
        .fails(4, "Unknown Webhook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_reaches_someone_who_shares_a_guild() {
    let t = TestNode::start().await;
    let alice = t.user();
    alice.register("dmalice").await;
    let gid = id(&alice
        .run(&["--json", "guild", "create", "Neighbours"])
        .await
        .json());
    let general = alice.run(&["--json", "channel", "list", &gid]).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = t.user();
    let bob_id = id(&bob.register("dmbob").await);
    let stranger = t.user();
    stranger.register("dmstranger").await;
    stranger
        .run(&["dm", &bob_id, "hello?"])
        .await
        .fails(6, "Cannot send messages to this user");

    let invite = alice
        .run(&["--json", "invite", "create", &general])
        .await
        .json();
    bob.run(&["invite", "accept", invite["code"].as_str().unwrap()])
        .await
        .ok();
    let sent = alice.run(&["--json", "dm", &bob_id, "lunch?"]).await.json();
    let dm = sent["channel_id"].as_str().unwrap().to_owned();
    assert!(sent.get("guild_id").is_none(), "{sent}");
    // The same DM again, and its text on a terminal-less run.
    let again = alice.run(&["dm", &bob_id, "at noon"]).await;
    assert!(
        again.ok().contains(&format!("in DM {dm}")),
        "{}",
        again.ok()
    );
    let history = bob.run(&["history", &dm]).await;
    let text = history.ok();
    assert!(
        text.contains("dmalice: lunch?") && text.contains("dmalice: at noon"),
        "{text}"
    );
}
