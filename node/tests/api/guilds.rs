//! Guilds, channels, roles, members, bans, invites, applications and bots.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guild_lifecycle_and_channels() {
    let t = TestNode::start().await;
    let a = t.register("owner").await;
    let b = t.register("member").await;
    let g = t
        .post("/guilds", &a.token, json!({"name": "  Lifecycle  "}))
        .await
        .ok(201);
    let gid = id_of(&g);
    assert_eq!(g["name"], "Lifecycle");
    assert_eq!(g["owner_id"], a.id.as_str());
    assert_eq!(
        g["roles"][0]["id"],
        gid.as_str(),
        "@everyone has the guild's id"
    );
    let general = id_of(
        &t.get(&format!("/guilds/{gid}/channels"), &a.token)
            .await
            .ok(200)[0],
    );
    assert_eq!(g["system_channel_id"], general.as_str());
    t.join(&a, &general, &b).await;
    let g2 = t
        .patch(
            &format!("/guilds/{gid}"),
            &a.token,
            json!({"name": "Renamed", "description": "d"}),
        )
        .await
        .ok(200);
    assert_eq!(g2["name"], "Renamed");
    t.patch(&format!("/guilds/{gid}"), &b.token, json!({"name": "Nope"}))
        .await
        .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}"),
        &a.token,
        json!({"afk_timeout": 7}),
    )
    .await
    .err(400, 50035);
    t.patch(
        &format!("/guilds/{gid}"),
        &a.token,
        json!({"system_channel_id": "123"}),
    )
    .await
    .err(400, 50035);
    assert_eq!(
        t.get(&format!("/guilds/{gid}"), &b.token).await.ok(200)["name"],
        "Renamed"
    );

    // Channels: category, child, voice, positions, overwrites, delete.
    let cat = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "Stuff", "type": 4}),
        )
        .await
        .ok(201);
    let child = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "child", "parent_id": cat["id"]}),
        )
        .await
        .ok(201);
    assert_eq!(child["parent_id"], cat["id"]);
    let voice = t
        .post(
            &format!("/guilds/{gid}/channels"),
            &a.token,
            json!({"name": "Voice Room", "type": 2}),
        )
        .await
        .ok(201);
    assert_eq!(voice["name"], "Voice Room");
    assert_eq!(voice["bitrate"], 64000);
    t.post(
        &format!("/guilds/{gid}/channels"),
        &a.token,
        json!({"name": "bad", "type": 99}),
    )
    .await
    .err(400, 50035);
    t.post(
        &format!("/guilds/{gid}/channels"),
        &a.token,
        json!({"name": "bad", "parent_id": child["id"]}),
    )
    .await
    .err(400, 50035);
    t.post(
        &format!("/guilds/{gid}/channels"),
        &b.token,
        json!({"name": "nope"}),
    )
    .await
    .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/channels"),
        &a.token,
        json!([{"id": child["id"], "position": 9, "parent_id": null}]),
    )
    .await
    .ok(204);
    let moved = t
        .get(&format!("/channels/{}", id_of(&child)), &a.token)
        .await
        .ok(200);
    assert_eq!(moved["position"], 9);
    assert!(moved["parent_id"].is_null());
    let edited = t
        .patch(
            &format!("/channels/{}", id_of(&child)),
            &a.token,
            json!({"name": "Renamed Child", "topic": "t", "nsfw": true}),
        )
        .await
        .ok(200);
    assert_eq!(edited["name"], "renamed-child");
    assert_eq!(edited["topic"], "t");
    t.patch(
        &format!("/channels/{}", id_of(&child)),
        &b.token,
        json!({"name": "x"}),
    )
    .await
    .err(403, 50013);
    let deleted = t
        .delete(&format!("/channels/{}", id_of(&cat)), &a.token)
        .await
        .ok(200);
    assert_eq!(deleted["id"], cat["id"]);
    t.get(&format!("/channels/{}", id_of(&cat)), &a.token)
        .await
        .err(404, 10003);
    let listed = t
        .get(&format!("/guilds/{gid}/channels"), &a.token)
        .await
        .ok(200);
    assert_eq!(listed.as_array().unwrap().len(), 3);

    // Deleting the guild: owner only; then it is gone for everyone.
    t.delete(&format!("/guilds/{gid}"), &b.token)
        .await
        .err(403, 50013);
    t.delete(&format!("/guilds/{gid}"), &a.token).await.ok(204);
    t.get(&format!("/guilds/{gid}"), &a.token)
        .await
        .err(404, 10004);
    t.get(&format!("/channels/{general}"), &b.token)
        .await
        .err(404, 10003);
    assert_eq!(
        t.get("/users/@me/guilds", &b.token).await.ok(200),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_hierarchy() {
    let t = TestNode::start().await;
    let owner = t.register("rowner").await;
    let mod_ = t.register("rmod").await;
    let user = t.register("ruser").await;
    let (gid, c) = t.guild(&owner, "Roles").await;
    t.join(&owner, &c, &mod_).await;
    t.join(&owner, &c, &user).await;
    // MANAGE_ROLES | KICK_MEMBERS | MANAGE_NICKNAMES | VIEW/SEND.
    let mod_perms = (1u64 << 28) | (1 << 1) | (1 << 27) | (1 << 10) | (1 << 11);
    let high = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &owner.token,
            json!({"name": "mods", "permissions": mod_perms.to_string()}),
        )
        .await
        .ok(200);
    let low = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &owner.token,
            json!({"name": "helpers", "color": 255}),
        )
        .await
        .ok(200);
    let roles = t
        .get(&format!("/guilds/{gid}/roles"), &user.token)
        .await
        .ok(200);
    assert_eq!(roles.as_array().unwrap().len(), 3);
    // New roles go to position 1, pushing older ones up: mods is now above helpers.
    let pos = |name: &str| {
        roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["position"]
            .as_i64()
            .unwrap()
    };
    assert!(pos("mods") > pos("helpers"));
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{}", mod_.id, id_of(&high)),
        &owner.token,
        json!({}),
    )
    .await
    .ok(204);
    let m = t
        .get(&format!("/guilds/{gid}/members/{}", mod_.id), &owner.token)
        .await
        .ok(200);
    assert_eq!(m["roles"][0], high["id"]);
    assert_eq!(m["user"]["id"], mod_.id.as_str());
    // The moderator manages roles below its own, not its own or above.
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{}", user.id, id_of(&low)),
        &mod_.token,
        json!({}),
    )
    .await
    .ok(204);
    t.put(
        &format!("/guilds/{gid}/members/{}/roles/{}", user.id, id_of(&high)),
        &mod_.token,
        json!({}),
    )
    .await
    .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/roles/{}", id_of(&high)),
        &mod_.token,
        json!({"name": "x"}),
    )
    .await
    .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/roles/{}", id_of(&low)),
        &mod_.token,
        json!({"name": "helpers2"}),
    )
    .await
    .ok(200);
    // It cannot grant a permission it lacks (ADMINISTRATOR).
    t.patch(
        &format!("/guilds/{gid}/roles/{}", id_of(&low)),
        &mod_.token,
        json!({"permissions": "8"}),
    )
    .await
    .err(403, 50013);
    t.post(
        &format!("/guilds/{gid}/roles"),
        &mod_.token,
        json!({"name": "admins", "permissions": "8"}),
    )
    .await
    .err(403, 50013);
    // Nicknames and kicks follow the hierarchy too.
    t.patch(
        &format!("/guilds/{gid}/members/{}", user.id),
        &mod_.token,
        json!({"nick": "newbie"}),
    )
    .await
    .ok(200);
    t.patch(
        &format!("/guilds/{gid}/members/{}", owner.id),
        &mod_.token,
        json!({"nick": "boss"}),
    )
    .await
    .err(403, 50013);
    t.delete(&format!("/guilds/{gid}/members/{}", owner.id), &mod_.token)
        .await
        .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/members/@me"),
        &user.token,
        json!({"nick": "me!"}),
    )
    .await
    .ok(200);
    t.patch(
        &format!("/guilds/{gid}/members/{}", user.id),
        &user.token,
        json!({"roles": []}),
    )
    .await
    .err(403, 50013);
    // Role positions: the moderator cannot lift a role to or above its own.
    t.patch(
        &format!("/guilds/{gid}/roles"),
        &mod_.token,
        json!([{"id": low["id"], "position": 5}]),
    )
    .await
    .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/roles"),
        &owner.token,
        json!([{"id": low["id"], "position": 5}]),
    )
    .await
    .ok(200);
    // @everyone cannot be deleted; deleting a role removes it from members.
    t.delete(&format!("/guilds/{gid}/roles/{gid}"), &owner.token)
        .await
        .err(400, 50035);
    t.delete(
        &format!("/guilds/{gid}/roles/{}", id_of(&low)),
        &owner.token,
    )
    .await
    .ok(204);
    let u = t
        .get(&format!("/guilds/{gid}/members/{}", user.id), &owner.token)
        .await
        .ok(200);
    assert_eq!(u["roles"], json!([]));
    assert_eq!(u["nick"], "me!");
    t.get(
        &format!("/guilds/{gid}/roles/{}", id_of(&low)),
        &owner.token,
    )
    .await
    .err(404, 10011);
    // Kick: the moderator may kick the plain user.
    t.delete(&format!("/guilds/{gid}/members/{}", user.id), &mod_.token)
        .await
        .ok(204);
    t.get(&format!("/guilds/{gid}"), &user.token)
        .await
        .err(403, 50001);
    t.get(&format!("/guilds/{gid}/members/{}", user.id), &owner.token)
        .await
        .err(404, 10007);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_block_sending_until_lifted() {
    let t = TestNode::start().await;
    let owner = t.register("towner").await;
    let user = t.register("tuser").await;
    let (gid, c) = t.guild(&owner, "Timeouts").await;
    t.join(&owner, &c, &user).await;
    t.send(&user, &c, "before").await;
    let until = chrono_like_in(3600);
    let m = t
        .patch(
            &format!("/guilds/{gid}/members/{}", user.id),
            &owner.token,
            json!({"communication_disabled_until": until}),
        )
        .await
        .ok(200);
    assert!(m["communication_disabled_until"].is_string());
    t.post(
        &format!("/channels/{c}/messages"),
        &user.token,
        json!({"content": "muted?"}),
    )
    .await
    .err(403, 50013);
    // A timed-out member still reads.
    assert_eq!(
        t.get(&format!("/channels/{c}/messages"), &user.token)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.patch(
        &format!("/guilds/{gid}/members/{}", user.id),
        &owner.token,
        json!({"communication_disabled_until": chrono_like_in(40 * 24 * 3600)}),
    )
    .await
    .err(400, 50035);
    t.patch(
        &format!("/guilds/{gid}/members/{}", owner.id),
        &user.token,
        json!({"communication_disabled_until": until}),
    )
    .await
    .err(403, 50013);
    t.patch(
        &format!("/guilds/{gid}/members/{}", user.id),
        &owner.token,
        json!({"communication_disabled_until": null}),
    )
    .await
    .ok(200);
    t.send(&user, &c, "free again").await;
}

/// An ISO8601 time `secs` from now.
fn chrono_like_in(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    enrichment_protocol::Timestamp::from_unix_ms(now + (secs * 1000) as u64).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_remove_and_block_and_delete_recent_messages() {
    let t = TestNode::start().await;
    let owner = t.register("bowner").await;
    let user = t.register("buser").await;
    let (gid, c) = t.guild(&owner, "Bans").await;
    t.join(&owner, &c, &user).await;
    t.send(&user, &c, "spam 1").await;
    t.send(&user, &c, "spam 2").await;
    t.send(&owner, &c, "keep").await;
    t.put(
        &format!("/guilds/{gid}/bans/{}", owner.id),
        &user.token,
        json!({}),
    )
    .await
    .err(403, 50013);
    let res = t
        .call(
            reqwest::Method::PUT,
            &format!("/guilds/{gid}/bans/{}", user.id),
            Some(&owner.token),
            Some(json!({"delete_message_seconds": 3600})),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    let left = t
        .get(&format!("/channels/{c}/messages"), &owner.token)
        .await
        .ok(200);
    assert_eq!(
        left.as_array().unwrap().len(),
        1,
        "the banned user's recent messages are gone"
    );
    assert_eq!(left[0]["content"], "keep");
    let bans = t
        .get(&format!("/guilds/{gid}/bans"), &owner.token)
        .await
        .ok(200);
    assert_eq!(bans[0]["user"]["id"], user.id.as_str());
    t.get(&format!("/guilds/{gid}/bans/{}", user.id), &owner.token)
        .await
        .ok(200);
    t.get(&format!("/guilds/{gid}"), &user.token)
        .await
        .err(403, 50001);
    // A banned user cannot rejoin.
    let inv = t
        .post(&format!("/channels/{c}/invites"), &owner.token, json!({}))
        .await
        .ok(200);
    t.post(
        &format!("/invites/{}", inv["code"].as_str().unwrap()),
        &user.token,
        json!({}),
    )
    .await
    .err(403, 40007);
    t.put(
        &format!("/guilds/{gid}/bans/{}", user.id),
        &owner.token,
        json!({"delete_message_days": 8}),
    )
    .await
    .err(400, 50035);
    t.put(
        &format!("/guilds/{gid}/bans/424242"),
        &owner.token,
        json!({}),
    )
    .await
    .err(404, 10013);
    t.delete(&format!("/guilds/{gid}/bans/{}", user.id), &owner.token)
        .await
        .ok(204);
    t.delete(&format!("/guilds/{gid}/bans/{}", user.id), &owner.token)
        .await
        .err(404, 10026);
    t.post(
        &format!("/invites/{}", inv["code"].as_str().unwrap()),
        &user.token,
        json!({}),
    )
    .await
    .ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_limits_reuse_and_deletion() {
    let t = TestNode::start().await;
    let owner = t.register("iowner").await;
    let u1 = t.register("iuser1").await;
    let u2 = t.register("iuser2").await;
    let (gid, c) = t.guild(&owner, "Invites").await;
    let once = t
        .post(
            &format!("/channels/{c}/invites"),
            &owner.token,
            json!({"max_uses": 1, "unique": true}),
        )
        .await
        .ok(200);
    let code = once["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 8);
    assert_eq!(once["max_uses"], 1);
    assert_eq!(once["guild"]["id"], gid.as_str());
    assert_eq!(once["channel"]["id"], c.as_str());
    let seen = t.get(&format!("/invites/{code}"), &u1.token).await.ok(200);
    assert_eq!(seen["guild"]["name"], "Invites");
    assert!(seen.get("uses").is_none(), "metadata only for managers");
    t.post(&format!("/invites/{code}"), &u1.token, json!({}))
        .await
        .ok(200);
    t.post(&format!("/invites/{code}"), &u2.token, json!({}))
        .await
        .err(404, 10006);
    // Without `unique`, an equal live invite is reused.
    let a = t
        .post(
            &format!("/channels/{c}/invites"),
            &owner.token,
            json!({"max_age": 600}),
        )
        .await
        .ok(200);
    let b = t
        .post(
            &format!("/channels/{c}/invites"),
            &owner.token,
            json!({"max_age": 600}),
        )
        .await
        .ok(200);
    assert_eq!(a["code"], b["code"]);
    assert!(a["expires_at"].is_string());
    t.post(
        &format!("/channels/{c}/invites"),
        &owner.token,
        json!({"max_age": 604801}),
    )
    .await
    .err(400, 50035);
    t.post(
        &format!("/channels/{c}/invites"),
        &owner.token,
        json!({"max_uses": 101}),
    )
    .await
    .err(400, 50035);
    let listed = t
        .get(&format!("/guilds/{gid}/invites"), &owner.token)
        .await
        .ok(200);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the used-up invite is not listed: {listed}"
    );
    t.get(&format!("/guilds/{gid}/invites"), &u1.token)
        .await
        .err(403, 50013);
    t.get(&format!("/channels/{c}/invites"), &owner.token)
        .await
        .ok(200);
    t.delete(
        &format!("/invites/{}", a["code"].as_str().unwrap()),
        &u1.token,
    )
    .await
    .err(403, 50013);
    t.delete(
        &format!("/invites/{}", a["code"].as_str().unwrap()),
        &owner.token,
    )
    .await
    .ok(200);
    t.get(
        &format!("/invites/{}", a["code"].as_str().unwrap()),
        &u2.token,
    )
    .await
    .err(404, 10006);
    // Leaving: members may, the owner may not.
    t.delete(&format!("/users/@me/guilds/{gid}"), &u1.token)
        .await
        .ok(204);
    t.delete(&format!("/users/@me/guilds/{gid}"), &owner.token)
        .await
        .err(400, 50035);
    t.get(&format!("/guilds/{gid}"), &u1.token)
        .await
        .err(403, 50001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_bots_and_oauth2_authorization() {
    let t = TestNode::start().await;
    let dev = t.register("developer").await;
    let stranger = t.register("stranger").await;
    let (gid, c) = t.guild(&dev, "Bots").await;
    let app = t
        .post("/applications", &dev.token, json!({"name": "Echo Bot"}))
        .await
        .ok(201);
    let app_id = id_of(&app);
    assert_eq!(app["bot"]["bot"], true);
    assert_eq!(app["owner"]["id"], dev.id.as_str());
    t.get(&format!("/applications/{app_id}"), &stranger.token)
        .await
        .err(404, 10002);
    t.post(
        &format!("/applications/{app_id}/bot/reset"),
        &stranger.token,
        json!({}),
    )
    .await
    .err(404, 10002);
    let token1 = t
        .post(
            &format!("/applications/{app_id}/bot/reset"),
            &dev.token,
            json!({}),
        )
        .await
        .ok(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bot_auth = format!("Bot {token1}");
    let me = t.get("/users/@me", &bot_auth).await.ok(200);
    assert_eq!(me["bot"], true);
    assert_eq!(me["id"], app["bot"]["id"]);
    assert_eq!(
        t.get("/oauth2/applications/@me", &bot_auth).await.ok(200)["id"],
        app_id.as_str()
    );
    let gw = t.get("/gateway/bot", &bot_auth).await.ok(200);
    assert!(gw["url"].as_str().unwrap().starts_with("ws://"));
    assert_eq!(
        gw["session_start_limit"]["max_concurrency"],
        t.config.gateway.identify_max_concurrency
    );
    // Authorizing into a guild needs MANAGE_GUILD there.
    let q = format!("/oauth2/authorize?client_id={app_id}&scope=bot&permissions=3072");
    t.post(
        &q,
        &stranger.token,
        json!({"guild_id": gid, "authorize": true}),
    )
    .await
    .err(403, 50001);
    t.post(&q, &dev.token, json!({"guild_id": gid, "authorize": true}))
        .await
        .ok(200);
    let roles = t
        .get(&format!("/guilds/{gid}/roles"), &dev.token)
        .await
        .ok(200);
    let managed = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["managed"] == true)
        .expect("managed role");
    assert_eq!(managed["tags"]["bot_id"], app["bot"]["id"]);
    assert_eq!(managed["permissions"], "3072");
    t.delete(
        &format!("/guilds/{gid}/roles/{}", id_of(managed)),
        &dev.token,
    )
    .await
    .err(403, 50013);
    // The bot acts in the guild with its token.
    let m = t.send_as(&bot_auth, &c, "beep").await;
    assert_eq!(m["author"]["bot"], true);
    // Resetting the token revokes the old one at once.
    let token2 = t
        .post(
            &format!("/applications/{app_id}/bot/reset"),
            &dev.token,
            json!({}),
        )
        .await
        .ok(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(token1, token2);
    t.get("/users/@me", &bot_auth).await.err(401, 40001);
    t.get("/users/@me", &format!("Bot {token2}")).await.ok(200);
    // Bots cannot create applications.
    t.post(
        "/applications",
        &format!("Bot {token2}"),
        json!({"name": "Child"}),
    )
    .await
    .err(403, 20001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_carry_a_colors_object_and_accept_one() {
    let t = TestNode::start().await;
    let owner = t.register("colorist").await;
    let (gid, _) = t.guild(&owner, "Colors").await;
    let solid =
        |c: u32| json!({"primary_color": c, "secondary_color": null, "tertiary_color": null});
    // Every role is written with Discord's `colors` beside the older `color`.
    let roles = t
        .get(&format!("/guilds/{gid}/roles"), &owner.token)
        .await
        .ok(200);
    assert_eq!(roles[0]["color"], 0);
    assert_eq!(roles[0]["colors"], solid(0));
    // `colors.primary_color` sets the color (libraries send only `colors` now)...
    let role = t
        .post(
            &format!("/guilds/{gid}/roles"),
            &owner.token,
            json!({"name": "red", "colors": {"primary_color": 0xFF0000}}),
        )
        .await
        .ok(200);
    assert_eq!(role["color"], 0xFF0000);
    assert_eq!(role["colors"], solid(0xFF0000));
    let rid = id_of(&role);
    // ...and so does `color`; with both, `colors` wins.
    let edited = t
        .patch(
            &format!("/guilds/{gid}/roles/{rid}"),
            &owner.token,
            json!({"color": 0x00FF00}),
        )
        .await
        .ok(200);
    assert_eq!(edited["colors"], solid(0x00FF00));
    let edited = t
        .patch(
            &format!("/guilds/{gid}/roles/{rid}"),
            &owner.token,
            json!({"color": 1, "colors": {"primary_color": 0x0000FF, "secondary_color": null}}),
        )
        .await
        .ok(200);
    assert_eq!(edited["color"], 0x0000FF);
    assert_eq!(edited["colors"], solid(0x0000FF));
    // Gradients and holographic styles are not available; out-of-range colors are refused.
    let gradient = t
        .patch(
            &format!("/guilds/{gid}/roles/{rid}"),
            &owner.token,
            json!({"colors": {"primary_color": 1, "secondary_color": 2}}),
        )
        .await;
    gradient.err(400, 50035);
    assert!(gradient.body["errors"]["colors"]["secondary_color"]["_errors"].is_array());
    t.post(
        &format!("/guilds/{gid}/roles"),
        &owner.token,
        json!({"colors": {"primary_color": 0x1000000}}),
    )
    .await
    .err(400, 50035);
    // The gateway writes roles the same way.
    let (mut gw, _) = crate::gw::Gw::identify(&t, &owner.token, crate::gw::ALL).await;
    let created = gw.guild_create(&gid).await;
    let red = created["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rid.as_str())
        .unwrap()
        .clone();
    assert_eq!(red["colors"], solid(0x0000FF));
    // The OpenAPI schema of a role documents `colors`.
    let doc = t
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await
        .ok(200);
    assert!(
        doc["components"]["schemas"]["Role"]["properties"]["colors"].is_object(),
        "{}",
        doc["components"]["schemas"]["Role"]
    );
}

impl TestNode {
    pub async fn send_as(&self, auth: &str, channel: &str, content: &str) -> serde_json::Value {
        self.post(
            &format!("/channels/{channel}/messages"),
            auth,
            json!({"content": content}),
        )
        .await
        .ok(200)
    }
}
