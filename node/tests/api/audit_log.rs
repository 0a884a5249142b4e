//! The audit log: an entry for every moderation and configuration change, with the request's
//! `X-Audit-Log-Reason`, read back through `GET /guilds/{id}/audit-logs` with Discord's filters
//! and cursors, and announced as GUILD_AUDIT_LOG_ENTRY_CREATE to who may read the log.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::gw::{ALL, Gw};
use crate::support::*;
use enrichment_protocol::gateway::intents;

/// A request with `X-Audit-Log-Reason`, percent-encoded as clients send it.
async fn with_reason(
    t: &TestNode,
    method: Method,
    path: &str,
    user: &User,
    body: Option<Value>,
    reason: &str,
) -> Resp {
    t.call_with(
        method,
        path,
        Some(&user.token),
        body,
        &[("X-Audit-Log-Reason", reason)],
    )
    .await
}

fn entries(log: &Value) -> Vec<Value> {
    log["audit_log_entries"].as_array().unwrap().clone()
}

fn actions(entries: &[Value]) -> Vec<u64> {
    entries
        .iter()
        .map(|e| e["action_type"].as_u64().unwrap())
        .collect()
}

fn change<'a>(entry: &'a Value, key: &str) -> &'a Value {
    entry["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {entry}"))
        .iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no change of {key} in {entry}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_moderation_and_configuration_change_is_logged_with_who_and_why() {
    let mut t = TestNode::start().await;
    let a = t.register("auditowner").await;
    let b = t.register("auditmember").await;
    let c = t.register("auditkicked").await;
    let d = t.register("auditbystander").await;
    let (gid, general) = t.guild(&a, "Audited").await;
    for u in [&b, &c, &d] {
        t.join(&a, &general, u).await;
    }
    let log_path = format!("/guilds/{gid}/audit-logs");
    // The invite made to let members in is logged too (the joins reuse it).
    let joined = entries(&t.get(&log_path, &a.token).await.ok(200));
    assert_eq!(actions(&joined), vec![40], "{joined:?}");

    // 1: the guild renamed, with a percent-encoded reason.
    with_reason(
        &t,
        Method::PATCH,
        &format!("/guilds/{gid}"),
        &a,
        Some(json!({"name": "Renamed"})),
        "tidy%20up%20%E2%9C%A8",
    )
    .await
    .ok(200);
    // 2-4: a channel created, its topic set, an overwrite for b added.
    let ch = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "mods"}),
        )
        .await
        .ok(201);
    let ch = id_of(&ch);
    t.patch(&format!("/channels/{ch}"), &a.token, json!({"topic": "t"}))
        .await
        .ok(200);
    t.put(
        &format!("/channels/{ch}/permissions/{}", b.id),
        &a.token,
        json!({"type": 1, "allow": "1024", "deny": "2048"}),
    )
    .await
    .ok(204);
    // 5-7: a role created, given to b, b's nick changed.
    let role = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &a.token,
            json!({"name": "helpers"}),
        )
        .await
        .ok(200);
    let role = id_of(&role);
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{role}", b.id),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    t.patch(
        &format!("/guilds/{gid}/members/{}", b.id),
        &a.token,
        json!({"nick": "bee"}),
    )
    .await
    .ok(200);
    // 8: b's message deleted by the owner; b deleting its own is not logged.
    let own = t.send(&b, &general, "mine").await;
    t.delete(
        &format!("/channels/{general}/messages/{}", id_of(&own)),
        &b.token,
    )
    .await
    .ok(204);
    let doomed = t.send(&b, &general, "doomed").await;
    t.delete(
        &format!("/channels/{general}/messages/{}", id_of(&doomed)),
        &a.token,
    )
    .await
    .ok(204);
    // 9: a pin.
    let pinned = t.send(&b, &general, "pin me").await;
    t.put(
        &format!("/channels/{general}/pins/{}", id_of(&pinned)),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    // 10-12: a kick, a ban and its lifting, each with a reason.
    with_reason(
        &t,
        Method::DELETE,
        &format!("/guilds/{gid}/members/{}", c.id),
        &a,
        None,
        "kicked",
    )
    .await
    .ok(204);
    with_reason(
        &t,
        Method::PUT,
        &format!("/guilds/{gid}/bans/{}", b.id),
        &a,
        Some(json!({})),
        "banned",
    )
    .await
    .ok(204);
    with_reason(
        &t,
        Method::DELETE,
        &format!("/guilds/{gid}/bans/{}", b.id),
        &a,
        None,
        "forgiven",
    )
    .await
    .ok(204);
    // 13: the channel deleted.
    t.delete(&format!("/channels/{ch}"), &a.token).await.ok(200);

    let log = t
        .get(&format!("{log_path}?limit=100"), &a.token)
        .await
        .ok(200);
    let all = entries(&log);
    assert_eq!(
        actions(&all),
        vec![12, 23, 22, 20, 74, 72, 24, 25, 30, 13, 11, 10, 1, 40],
        "newest first: {log}"
    );
    assert!(
        all.iter().all(|e| e["user_id"] == a.id.as_str()),
        "every action here is the owner's"
    );
    let [
        channel_delete,
        unban,
        ban,
        kick,
        pin,
        message_delete,
        member_update,
        role_update,
        role_create,
        overwrite,
        channel_update,
        channel_create,
        guild_update,
        ..,
    ] = &all[..]
    else {
        panic!("{all:?}")
    };

    assert_eq!(guild_update["target_id"], gid.as_str());
    assert_eq!(guild_update["reason"], "tidy up \u{2728}");
    assert_eq!(change(guild_update, "name")["old_value"], "Audited");
    assert_eq!(change(guild_update, "name")["new_value"], "Renamed");

    assert_eq!(channel_create["target_id"], ch.as_str());
    assert_eq!(change(channel_create, "name")["new_value"], "mods");
    assert!(change(channel_create, "name").get("old_value").is_none());
    assert_eq!(change(channel_update, "topic")["new_value"], "t");
    assert_eq!(
        channel_update["changes"].as_array().unwrap().len(),
        1,
        "only what changed"
    );
    assert_eq!(overwrite["target_id"], ch.as_str());
    assert_eq!(overwrite["options"]["id"], b.id.as_str());
    assert_eq!(overwrite["options"]["type"], "1");
    assert_eq!(change(overwrite, "allow")["new_value"], "1024");
    assert_eq!(change(channel_delete, "name")["old_value"], "mods");
    assert!(change(channel_delete, "name").get("new_value").is_none());

    assert_eq!(role_create["target_id"], role.as_str());
    assert_eq!(change(role_create, "name")["new_value"], "helpers");
    assert_eq!(role_update["target_id"], b.id.as_str());
    assert_eq!(
        change(role_update, "$add")["new_value"],
        json!([{"id": role, "name": "helpers"}])
    );
    assert_eq!(member_update["target_id"], b.id.as_str());
    assert_eq!(change(member_update, "nick")["new_value"], "bee");

    assert_eq!(message_delete["target_id"], b.id.as_str());
    assert_eq!(message_delete["options"]["channel_id"], general.as_str());
    assert_eq!(message_delete["options"]["count"], "1");
    assert_eq!(pin["target_id"], b.id.as_str());
    assert_eq!(pin["options"]["message_id"], id_of(&pinned).as_str());

    assert_eq!(kick["target_id"], c.id.as_str());
    assert_eq!(kick["reason"], "kicked");
    assert_eq!(ban["target_id"], b.id.as_str());
    assert_eq!(ban["reason"], "banned");
    assert_eq!(unban["reason"], "forgiven");
    assert!(
        channel_create.get("reason").is_none(),
        "no header, no reason"
    );

    // The users the entries name come with them.
    let mut users: Vec<&str> = log["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    let mut expected = vec![a.id.as_str(), b.id.as_str(), c.id.as_str()];
    expected.sort_unstable();
    assert_eq!(users, expected);
    for list in [
        "webhooks",
        "integrations",
        "threads",
        "application_commands",
    ] {
        assert_eq!(log[list], json!([]), "{list} is present");
    }

    // Filters and cursors.
    let page = |q: String| {
        let t = &t;
        let a = &a;
        let log_path = &log_path;
        async move { entries(&t.get(&format!("{log_path}?{q}"), &a.token).await.ok(200)) }
    };
    assert_eq!(actions(&page("action_type=22".into()).await), vec![22]);
    assert_eq!(page(format!("user_id={}", b.id)).await, Vec::<Value>::new());
    assert_eq!(page(format!("user_id={}", a.id)).await.len(), all.len());
    let mut paged = Vec::new();
    let mut before = None::<String>;
    loop {
        let q = match &before {
            Some(id) => format!("limit=5&before={id}"),
            None => "limit=5".into(),
        };
        let p = page(q).await;
        if p.is_empty() {
            break;
        }
        before = Some(p.last().unwrap()["id"].as_str().unwrap().to_owned());
        paged.extend(p);
    }
    assert_eq!(paged, all, "paging back with before walks the whole log");
    let oldest = all.last().unwrap()["id"].as_str().unwrap();
    assert_eq!(
        page(format!("limit=2&after={oldest}")).await,
        all[all.len() - 3..all.len() - 1].to_vec(),
        "after gives the entries just above it, newest first"
    );

    // Who may read it, and bad queries.
    t.get(&log_path, &d.token).await.err(403, 50013);
    t.get(&log_path, &c.token).await.err(403, 50001);
    for q in ["limit=0", "limit=101", "action_type=-1", "user_id=abc"] {
        t.get(&format!("{log_path}?{q}"), &a.token)
            .await
            .err(400, 50035);
    }

    // The log is durable.
    t.restart().await;
    assert_eq!(
        entries(
            &t.get(&format!("{log_path}?limit=100"), &a.token)
                .await
                .ok(200)
        ),
        all
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_reach_only_sessions_that_may_read_the_log_and_asked_for_moderation_events() {
    let t = TestNode::start().await;
    let a = t.register("auditgwowner").await;
    let b = t.register("auditgwmember").await;
    let (gid, general) = t.guild(&a, "Watched").await;
    t.join(&a, &general, &b).await;
    let query = "v=10&encoding=json";
    let mut owner = Gw::joined(&t, query, &a.token, &gid).await;
    let mut owner_without_intent = Gw::connect(&t, query).await;
    owner_without_intent
        .send_identify(&a.token, ALL & !intents::GUILD_MODERATION)
        .await;
    owner_without_intent.guild_create(&gid).await;
    let mut member = Gw::joined(&t, query, &b.token, &gid).await;

    with_reason(
        &t,
        Method::POST,
        &format!("/guilds/{gid}/roles"),
        &a,
        Some(json!({"name": "watched"})),
        "needed",
    )
    .await
    .ok(200);

    // The entry leaves before the role's own event, on the same ordered stream.
    let (name, d) = owner.next_event().await;
    assert_eq!(name, "GUILD_AUDIT_LOG_ENTRY_CREATE");
    assert_eq!(d["guild_id"], gid.as_str());
    assert_eq!(d["action_type"], 30);
    assert_eq!(d["user_id"], a.id.as_str());
    assert_eq!(d["reason"], "needed");
    assert_eq!(owner.next_event().await.0, "GUILD_ROLE_CREATE");
    for gw in [&mut owner_without_intent, &mut member] {
        assert_eq!(gw.next_event().await.0, "GUILD_ROLE_CREATE");
    }
    // Granted VIEW_AUDIT_LOG, the member gets the next entry.
    let auditors = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &a.token,
            json!({"name": "auditors", "permissions": "128"}),
        )
        .await
        .ok(200);
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{}", b.id, id_of(&auditors)),
        &a.token,
        json!({}),
    )
    .await
    .ok(204);
    let seen: Vec<String> = {
        let mut names = Vec::new();
        while names.last().map(String::as_str) != Some("GUILD_MEMBER_UPDATE") {
            names.push(member.next_event().await.0);
        }
        names
    };
    assert_eq!(
        seen,
        ["GUILD_ROLE_CREATE", "GUILD_MEMBER_UPDATE"],
        "no entry before the member could read the log"
    );
    t.patch(
        &format!("/guilds/{gid}"),
        &a.token,
        json!({"name": "Watched2"}),
    )
    .await
    .ok(200);
    let (name, d) = member.next_event().await;
    assert_eq!(name, "GUILD_AUDIT_LOG_ENTRY_CREATE");
    assert_eq!(d["action_type"], 1);
    assert_eq!(member.next_event().await.0, "GUILD_UPDATE");
    // Without GUILD_MODERATION the owner's other session saw the changes and no entry.
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(owner_without_intent.next_event().await.0);
    }
    assert_eq!(
        names,
        ["GUILD_ROLE_CREATE", "GUILD_MEMBER_UPDATE", "GUILD_UPDATE"]
    );
    owner_without_intent
        .expect_quiet(Duration::from_millis(300))
        .await;
}
