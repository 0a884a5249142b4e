//! Channel overwrites and permission denials, end to end.

use serde_json::json;

use crate::support::*;

const VIEW: u64 = 1 << 10;
const SEND: u64 = 1 << 11;
const HISTORY: u64 = 1 << 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_channels_and_overwrites() {
    let t = TestNode::start().await;
    let owner = t.register("powner").await;
    let user = t.register("puser").await;
    let (gid, general) = t.guild(&owner, "Perms").await;
    t.join(&owner, &general, &user).await;
    let secret = id_of(
        &t.post(
            &format!("/guilds/{gid}/channels"),
            &owner.token,
            json!({"name": "secret", "permission_overwrites": [{"id": gid, "type": 0, "allow": "0", "deny": VIEW.to_string()}]}),
        )
        .await
        .ok(201),
    );
    t.send(&owner, &secret, "classified").await;
    // Hidden: not listed, not readable, not writable, no typing, no invites.
    let listed = t
        .get(&format!("/guilds/{gid}/channels"), &user.token)
        .await
        .ok(200);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != secret.as_str())
    );
    t.get(&format!("/channels/{secret}"), &user.token)
        .await
        .err(403, 50001);
    t.get(&format!("/channels/{secret}/messages"), &user.token)
        .await
        .err(403, 50001);
    t.post(
        &format!("/channels/{secret}/messages"),
        &user.token,
        json!({"content": "hi"}),
    )
    .await
    .err(403, 50001);
    t.post(
        &format!("/channels/{secret}/typing"),
        &user.token,
        json!({}),
    )
    .await
    .err(403, 50001);
    t.post(
        &format!("/channels/{secret}/invites"),
        &user.token,
        json!({}),
    )
    .await
    .err(403, 50001);
    // A member overwrite lets this one user in; a role overwrite works the same way.
    t.put(
        &format!("/channels/{secret}/permissions/{}", user.id),
        &owner.token,
        json!({"type": 1, "allow": (VIEW | HISTORY).to_string(), "deny": SEND.to_string()}),
    )
    .await
    .ok(204);
    let msgs = t
        .get(&format!("/channels/{secret}/messages"), &user.token)
        .await
        .ok(200);
    assert_eq!(msgs[0]["content"], "classified");
    t.post(
        &format!("/channels/{secret}/messages"),
        &user.token,
        json!({"content": "hi"}),
    )
    .await
    .err(403, 50013);
    t.delete(
        &format!("/channels/{secret}/permissions/{}", user.id),
        &owner.token,
    )
    .await
    .ok(204);
    t.get(&format!("/channels/{secret}/messages"), &user.token)
        .await
        .err(403, 50001);
    let role = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &owner.token,
            json!({"name": "insiders"}),
        )
        .await
        .ok(200);
    t.put(
        &format!("/channels/{secret}/permissions/{}", id_of(&role)),
        &owner.token,
        json!({"type": 0, "allow": (VIEW | SEND | HISTORY).to_string()}),
    )
    .await
    .ok(204);
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{}", user.id, id_of(&role)),
        &owner.token,
        json!({}),
    )
    .await
    .ok(204);
    t.send(&user, &secret, "in the club").await;
    // Without READ_MESSAGE_HISTORY the history reads as empty, as on Discord.
    t.put(
        &format!("/channels/{secret}/permissions/{}", user.id),
        &owner.token,
        json!({"type": 1, "deny": HISTORY.to_string()}),
    )
    .await
    .ok(204);
    assert_eq!(
        t.get(&format!("/channels/{secret}/messages"), &user.token)
            .await
            .ok(200),
        json!([])
    );
    t.get(&format!("/channels/{secret}/pins"), &user.token)
        .await
        .ok(200);
    // Members cannot edit overwrites; unknown targets are refused; bad types too.
    t.put(
        &format!("/channels/{general}/permissions/{gid}"),
        &user.token,
        json!({"type": 0, "deny": VIEW.to_string()}),
    )
    .await
    .err(403, 50013);
    t.put(
        &format!("/channels/{general}/permissions/31337"),
        &owner.token,
        json!({"type": 0}),
    )
    .await
    .err(400, 50035);
    t.put(
        &format!("/channels/{general}/permissions/{gid}"),
        &owner.token,
        json!({"type": 7}),
    )
    .await
    .err(400, 50035);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_role_changes_apply_to_all_members() {
    let t = TestNode::start().await;
    let owner = t.register("eowner").await;
    let user = t.register("euser").await;
    let (gid, c) = t.guild(&owner, "Everyone").await;
    t.join(&owner, &c, &user).await;
    t.send(&user, &c, "allowed").await;
    // Read-only @everyone: viewing stays, sending goes.
    t.patch(
        &format!("/guilds/{gid}/roles/{gid}"),
        &owner.token,
        json!({"permissions": (VIEW | HISTORY).to_string()}),
    )
    .await
    .ok(200);
    t.post(
        &format!("/channels/{c}/messages"),
        &user.token,
        json!({"content": "x"}),
    )
    .await
    .err(403, 50013);
    assert_eq!(
        t.get(&format!("/channels/{c}/messages"), &user.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The owner keeps everything regardless.
    t.send(&owner, &c, "owner speaks").await;
    // Member management without rights.
    t.post(
        &format!("/guilds/{gid}/roles"),
        &user.token,
        json!({"name": "x"}),
    )
    .await
    .err(403, 50013);
    t.put(
        &format!("/guilds/{gid}/bans/{}", owner.id),
        &user.token,
        json!({}),
    )
    .await
    .err(403, 50013);
    t.get(&format!("/guilds/{gid}/bans"), &user.token)
        .await
        .err(403, 50013);
    t.delete(&format!("/guilds/{gid}/members/{}", owner.id), &user.token)
        .await
        .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/members/{}", owner.id),
        &user.token,
        json!({"mute": true}),
    )
    .await
    .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/channels"),
        &user.token,
        json!([{"id": c, "position": 3}]),
    )
    .await
    .err(403, 50013);
    t.delete(&format!("/channels/{c}"), &user.token)
        .await
        .err(403, 50013);
    let m = id_of(&t.send(&owner, &c, "pin me").await);
    t.put(&format!("/channels/{c}/pins/{m}"), &user.token, json!({}))
        .await
        .err(403, 50013);
    // An administrator role gives everything, including ignoring channel denies.
    let admin = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &owner.token,
            json!({"name": "admin", "permissions": "8"}),
        )
        .await
        .ok(200);
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{}", user.id, id_of(&admin)),
        &owner.token,
        json!({}),
    )
    .await
    .ok(204);
    t.put(
        &format!("/channels/{c}/permissions/{}", user.id),
        &owner.token,
        json!({"type": 1, "deny": SEND.to_string()}),
    )
    .await
    .ok(204);
    t.send(&user, &c, "admin speaks").await;
    t.put(&format!("/channels/{c}/pins/{m}"), &user.token, json!({}))
        .await
        .ok(204);
}
