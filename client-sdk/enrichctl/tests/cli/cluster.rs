//! `cluster status`, `ring`, `keys`, `reload` and `drain` with the admin token, and without it.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_commands_need_the_admin_token() {
    let t = TestNode::start().await;
    let cli = t.user();
    cli.register("dave").await;
    // A user's login does not open the admin API.
    cli.run(&["cluster", "status"])
        .await
        .fails(3, "cluster commands need the admin token");
    cli.run(&["cluster", "status", "--admin-token", "not-the-token"])
        .await
        .fails(3, "the server refused the admin token");
    let with_token = [("ENRICHMENT_ADMIN_TOKEN", ADMIN_TOKEN)];

    let status = cli
        .run_with(&["--json", "cluster", "status"], &with_token, None)
        .await
        .json();
    let node = &status["nodes"][0];
    assert_eq!(node["id"], t.node.node_id.as_str());
    assert_eq!(node["status"], "healthy");
    let table = cli
        .run_with(&["cluster", "status"], &with_token, None)
        .await;
    assert!(table.ok().contains(&t.node.node_id), "{table:?}");
    assert!(table.stdout.contains("healthy"));
    assert!(table.stdout.contains("embedded, fs"), "{table:?}");
    assert!(
        !table.stdout.contains('\u{1b}'),
        "no colour codes in a pipe"
    );

    let ring = cli
        .run_with(
            &["--json", "cluster", "ring", "--guild", "175928847299117063"],
            &with_token,
            None,
        )
        .await
        .json();
    assert_eq!(ring["owner"]["node_id"], t.node.node_id.as_str());
    let owner = cli
        .run_with(&["cluster", "ring", "--guild", "42"], &with_token, None)
        .await;
    assert!(owner.ok().contains("is owned by node"), "{owner:?}");

    // Keys: list, rotate, and a token issued before the rotation still works.
    cli.run(&["cluster", "keys", "list"])
        .await
        .fails(3, "cluster commands need the admin token");
    let keys = cli
        .run_with(&["--json", "cluster", "keys", "list"], &with_token, None)
        .await
        .json();
    let first = keys["current_kid"].as_str().unwrap().to_owned();
    assert_eq!(keys["kids"], serde_json::json!([first]));
    let rotated = cli
        .run_with(&["cluster", "keys", "rotate"], &with_token, None)
        .await;
    assert!(
        rotated.ok().contains("new tokens are signed with"),
        "{rotated:?}"
    );
    let keys = cli
        .run_with(&["--json", "cluster", "keys", "list"], &with_token, None)
        .await
        .json();
    let second = keys["current_kid"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let kids = keys["kids"].as_array().unwrap();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&serde_json::json!(first)), "{keys}");
    let listed = cli
        .run_with(&["cluster", "keys", "list"], &with_token, None)
        .await;
    assert!(listed.ok().contains(&second), "{listed:?}");
    assert!(listed.stdout.contains("signs new tokens"));
    // The login made before the rotation still works.
    let me = cli.run(&["--json", "whoami"]).await.json();
    assert_eq!(me["username"], "dave");

    // Reload: a guild whose actor runs here (it was just used), and one that runs nowhere.
    let guild = cli
        .run(&["--json", "guild", "create", "Reloaded"])
        .await
        .json();
    let gid = guild["id"].as_str().unwrap().to_owned();
    let cid = cli
        .run(&["--json", "channel", "create", &gid, "general"])
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.run(&["send", &cid, "before the reload"]).await.ok();
    let reloaded = cli
        .run_with(&["cluster", "reload", &gid], &with_token, None)
        .await;
    assert!(
        reloaded.ok().contains("reloads from storage"),
        "{reloaded:?}"
    );
    cli.run(&["send", &cid, "after the reload"]).await.ok();
    cli.run_with(
        &["cluster", "reload", "175928847299117063"],
        &with_token,
        None,
    )
    .await
    .fails(4, "cluster owner GUILD");
    cli.run(&["cluster", "reload", &gid])
        .await
        .fails(3, "cluster commands need the admin token");

    cli.run_with(&["cluster", "drain", "elsewhere"], &with_token, None)
        .await
        .fails(4, "cluster status` lists the node ids");
    let drained = cli
        .run_with(
            &["--json", "cluster", "drain", &t.node.node_id],
            &with_token,
            None,
        )
        .await
        .json();
    assert_eq!(drained["status"], "draining");
    let status = cli
        .run_with(&["--json", "cluster", "status"], &with_token, None)
        .await
        .json();
    assert_eq!(status["nodes"][0]["status"], "draining");
}
