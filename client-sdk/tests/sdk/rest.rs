//! Every REST call of the SDK against a real node, checking what the server then holds.

use enrichment_client::protocol::Permissions;
use enrichment_client::protocol::models::{ChannelType, audit_action};
use enrichment_client::protocol::rest::*;
use enrichment_client::{AuthorizeQuery, Client, Error, Token};

use crate::support::TestNode;

fn text(content: &str) -> CreateMessage {
    CreateMessage {
        content: Some(content.into()),
        ..CreateMessage::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_tokens_and_totp() {
    let t = TestNode::start().await;
    let alice = t.user("alice").await;
    let me = alice.current_user().await.expect("me");
    assert_eq!(me.username, "alice");

    // Login by email, refresh rotates, logout kills the access token.
    let login = t
        .anon
        .login(&LoginRequest {
            login: "alice@example.com".into(),
            password: "correct horse battery".into(),
        })
        .await
        .expect("login");
    assert_eq!(login.user_id, me.id);
    let refreshed = t
        .anon
        .refresh(&RefreshRequest {
            refresh_token: login.refresh_token.clone().expect("refresh token"),
        })
        .await
        .expect("refresh");
    let spent = t
        .anon
        .refresh(&RefreshRequest {
            refresh_token: login.refresh_token.clone().expect("refresh token"),
        })
        .await
        .expect_err("a spent refresh token");
    assert_eq!(spent.status(), Some(401), "{spent}");
    // Reusing a spent refresh token revokes the whole family, the new tokens included.
    let family = t.anon.with_token(Token::Bearer(refreshed.token));
    assert!(
        family
            .current_user()
            .await
            .expect_err("revoked")
            .is_unauthorized()
    );

    // Logout ends the session: its access token stops working at once.
    let again = t
        .anon
        .login(&LoginRequest {
            login: "alice".into(),
            password: "correct horse battery".into(),
        })
        .await
        .expect("login");
    let session = t
        .anon
        .with_token(Token::Bearer(again.token.expect("token")));
    session.current_user().await.expect("logged in");
    session
        .logout(&LogoutRequest {
            refresh_token: again.refresh_token,
        })
        .await
        .expect("logout");
    assert!(
        session
            .current_user()
            .await
            .expect_err("logged out")
            .is_unauthorized()
    );

    // Wrong password: a typed error with Discord's code.
    let bad = t
        .anon
        .login(&LoginRequest {
            login: "alice".into(),
            password: "wrong password".into(),
        })
        .await
        .expect_err("wrong password");
    assert_eq!(
        (bad.status(), bad.code()),
        (Some(400), Some(50035)),
        "{bad}"
    );

    // TOTP: enable, log in with a backup code, disable.
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let code = enrichment_actors::auth::current_code(secret, now).expect("code");
    let enabled = alice
        .enable_totp(&EnableTotpRequest {
            secret: secret.into(),
            code,
            password: "correct horse battery".into(),
        })
        .await
        .expect("enable totp");
    assert_eq!(enabled.backup_codes.len(), 10);
    let step = t
        .anon
        .login(&LoginRequest {
            login: "alice".into(),
            password: "correct horse battery".into(),
        })
        .await
        .expect("login with mfa");
    assert!(step.mfa && step.token.is_none());
    let tokens = t
        .anon
        .verify_mfa_totp(&MfaTotpRequest {
            ticket: step.ticket.expect("ticket"),
            code: enabled.backup_codes[0].code.clone(),
        })
        .await
        .expect("mfa");
    let via_mfa = t.anon.with_token(Token::Bearer(tokens.token));
    assert_eq!(via_mfa.current_user().await.expect("me").id, me.id);
    let new_token = alice
        .disable_totp(&DisableTotpRequest {
            code: enabled.backup_codes[1].code.clone(),
        })
        .await
        .expect("disable totp");
    assert!(!new_token.is_empty());
    assert_eq!(
        alice.current_user().await.expect("me").mfa_enabled,
        Some(false)
    );

    let renamed = alice
        .modify_current_user(&ModifyCurrentUser {
            global_name: Some(Some("Alice A.".into())),
            ..ModifyCurrentUser::default()
        })
        .await
        .expect("modify me")
        .user;
    assert_eq!(renamed.global_name.as_deref(), Some("Alice A."));
    let seen = second_user_view(&t, me.id).await;
    assert_eq!(seen.global_name.as_deref(), Some("Alice A."));
}

async fn second_user_view(
    t: &TestNode,
    id: enrichment_client::protocol::Snowflake,
) -> enrichment_client::protocol::models::User {
    let bob = t.user("bob_viewer").await;
    bob.get_user(id).await.expect("get user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guilds_channels_roles_members_bans_invites() {
    let t = TestNode::start().await;
    let owner = t.user("owner").await;
    let bob = t.user("bob").await;
    let bob_id = bob.current_user().await.expect("bob").id;
    let (gid, general) = t.guild(&owner, "Guild One").await;

    let g = owner
        .modify_guild(
            gid,
            &ModifyGuild {
                name: Some("Guild Renamed".into()),
                ..ModifyGuild::default()
            },
        )
        .await
        .expect("modify guild");
    assert_eq!(g.name, "Guild Renamed");
    assert_eq!(
        owner.get_guild(gid).await.expect("guild").name,
        "Guild Renamed"
    );

    // Channels.
    let news = owner
        .create_guild_channel(
            gid,
            &CreateChannel {
                name: "news".into(),
                kind: Some(ChannelType(0)),
                ..CreateChannel::default()
            },
        )
        .await
        .expect("create channel");
    let news = owner
        .modify_channel(
            news.id,
            &ModifyChannel {
                topic: Some(Some("Announcements".into())),
                ..ModifyChannel::default()
            },
        )
        .await
        .expect("modify channel");
    assert_eq!(news.topic.as_deref(), Some("Announcements"));
    owner
        .modify_guild_channel_positions(
            gid,
            &[ChannelPosition {
                id: news.id,
                position: Some(Some(0)),
                ..ChannelPosition::default()
            }],
        )
        .await
        .expect("channel positions");
    assert_eq!(
        owner.get_channel(news.id).await.expect("channel").position,
        0
    );

    // Invites: create, look up, join, list, delete.
    let invite = owner
        .create_channel_invite(general, &CreateInvite::default())
        .await
        .expect("invite");
    assert_eq!(
        bob.get_invite(&invite.code).await.expect("get invite").code,
        invite.code
    );
    bob.accept_invite(&invite.code).await.expect("join");
    assert_eq!(
        owner
            .get_channel_invites(general)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(owner.get_guild_invites(gid).await.expect("list").len(), 1);
    owner
        .delete_invite(&invite.code)
        .await
        .expect("delete invite");
    assert!(
        bob.get_invite(&invite.code)
            .await
            .expect_err("gone")
            .is_not_found()
    );
    let bob_guilds = bob
        .current_user_guilds(&GuildsQuery::default())
        .await
        .expect("my guilds");
    assert_eq!(bob_guilds.len(), 1);
    assert_eq!(
        bob.current_user_guild_member(gid)
            .await
            .expect("my member")
            .user
            .expect("user")
            .id,
        bob_id
    );

    // Roles.
    let role = owner
        .create_guild_role(
            gid,
            &RoleBody {
                name: Some("mods".into()),
                permissions: Some(Permissions::MANAGE_MESSAGES),
                ..RoleBody::default()
            },
        )
        .await
        .expect("create role");
    let role = owner
        .modify_guild_role(
            gid,
            role.id,
            &RoleBody {
                color: Some(0x3366ff),
                ..RoleBody::default()
            },
        )
        .await
        .expect("modify role");
    assert_eq!(role.color, 0x3366ff);
    assert_eq!(
        owner.get_guild_role(gid, role.id).await.expect("role").name,
        "mods"
    );
    let roles = owner
        .modify_guild_role_positions(
            gid,
            &[RolePosition {
                id: role.id,
                position: Some(Some(1)),
            }],
        )
        .await
        .expect("role positions");
    assert!(roles.iter().any(|r| r.id == role.id));
    assert_eq!(owner.get_guild_roles(gid).await.expect("roles").len(), 2);

    // Members.
    owner
        .add_guild_member_role(gid, bob_id, role.id)
        .await
        .expect("add role");
    let m = owner.get_guild_member(gid, bob_id).await.expect("member");
    assert_eq!(m.roles, vec![role.id]);
    owner
        .remove_guild_member_role(gid, bob_id, role.id)
        .await
        .expect("remove role");
    let m = owner
        .modify_guild_member(
            gid,
            bob_id,
            &ModifyMember {
                nick: Some(Some("Bobby".into())),
                ..ModifyMember::default()
            },
        )
        .await
        .expect("modify member");
    assert_eq!((m.nick.as_deref(), m.roles.len()), (Some("Bobby"), 0));
    let me = bob
        .modify_current_member(
            gid,
            &ModifyCurrentMember {
                nick: Some(Some("Bob".into())),
            },
        )
        .await
        .expect("modify me");
    assert_eq!(me.nick.as_deref(), Some("Bob"));
    let members = owner
        .list_guild_members(
            gid,
            &MembersQuery {
                limit: Some(10),
                after: None,
            },
        )
        .await
        .expect("members");
    assert_eq!(members.len(), 2);
    owner
        .delete_guild_role(gid, role.id)
        .await
        .expect("delete role");
    assert!(
        owner
            .get_guild_role(gid, role.id)
            .await
            .expect_err("gone")
            .is_not_found()
    );

    // Kick, rejoin through a new invite, leave, then ban.
    owner.remove_guild_member(gid, bob_id).await.expect("kick");
    let invite = owner
        .create_channel_invite(general, &CreateInvite::default())
        .await
        .expect("invite");
    bob.accept_invite(&invite.code).await.expect("rejoin");
    bob.leave_guild(gid).await.expect("leave");
    bob.accept_invite(&invite.code).await.expect("rejoin");
    owner
        .with_audit_reason("spam, again")
        .create_guild_ban(gid, bob_id, &CreateBan::default())
        .await
        .expect("ban");
    let bans = owner
        .get_guild_audit_log(
            gid,
            &AuditLogQuery {
                action_type: Some(i64::from(audit_action::MEMBER_BAN_ADD)),
                ..AuditLogQuery::default()
            },
        )
        .await
        .expect("audit log");
    assert_eq!(bans.audit_log_entries.len(), 1, "{bans:?}");
    let entry = &bans.audit_log_entries[0];
    assert_eq!(entry.reason.as_deref(), Some("spam, again"));
    assert_eq!(entry.target_id, Some(bob_id.to_string()));
    assert!(bans.users.iter().any(|u| u.id == bob_id));
    let refused = bob
        .get_guild_audit_log(gid, &AuditLogQuery::default())
        .await
        .expect_err("no VIEW_AUDIT_LOG");
    assert_eq!(refused.code(), Some(50001), "{refused}");
    assert_eq!(owner.get_guild_bans(gid).await.expect("bans").len(), 1);
    assert_eq!(
        owner.get_guild_ban(gid, bob_id).await.expect("ban").user.id,
        bob_id
    );
    let refused = bob.accept_invite(&invite.code).await.expect_err("banned");
    assert_eq!(refused.status(), Some(403), "{refused}");
    owner.remove_guild_ban(gid, bob_id).await.expect("unban");
    bob.accept_invite(&invite.code)
        .await
        .expect("rejoin after unban");

    // Channel permission overwrites: hide #news from @everyone.
    owner
        .edit_channel_permissions(
            news.id,
            gid,
            &EditOverwrite {
                deny: Some(Permissions::VIEW_CHANNEL),
                kind: 0,
                ..EditOverwrite::default()
            },
        )
        .await
        .expect("overwrite");
    let hidden = bob.get_channel(news.id).await.expect_err("hidden");
    assert_eq!((hidden.status(), hidden.code()), (Some(403), Some(50001)));
    owner
        .delete_channel_permission(news.id, gid)
        .await
        .expect("remove overwrite");
    bob.get_channel(news.id).await.expect("visible again");

    let deleted = owner.delete_channel(news.id).await.expect("delete channel");
    assert_eq!(deleted.id, news.id);
    owner.delete_guild(gid).await.expect("delete guild");
    assert!(owner.get_guild(gid).await.expect_err("gone").is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reactions_pins_and_typing() {
    let t = TestNode::start().await;
    let owner = t.user("owner").await;
    let bob = t.user("bob").await;
    let bob_id = bob.current_user().await.expect("bob").id;
    let (_, ch) = t.guild(&owner, "Chat").await;
    let invite = owner
        .create_channel_invite(ch, &CreateInvite::default())
        .await
        .expect("invite");
    bob.accept_invite(&invite.code).await.expect("join");

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            owner
                .create_message(ch, &text(&format!("message {i}")))
                .await
                .expect("send")
                .id,
        );
    }
    let latest = bob
        .get_channel_messages(
            ch,
            &MessagesQuery {
                limit: Some(3),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("history");
    assert_eq!(
        latest.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3], ids[2]]
    );
    let older = bob
        .get_channel_messages(
            ch,
            &MessagesQuery {
                before: Some(ids[2]),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("history before");
    assert_eq!(older.len(), 2);
    let bad = bob
        .get_channel_messages(
            ch,
            &MessagesQuery {
                limit: Some(500),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect_err("limit too high");
    assert_eq!(bad.code(), Some(50035));

    let edited = owner
        .edit_message(
            ch,
            ids[0],
            &EditMessage {
                content: Some(Some("edited".into())),
                ..EditMessage::default()
            },
        )
        .await
        .expect("edit");
    assert!(edited.edited_timestamp.is_some());
    assert_eq!(
        bob.get_channel_message(ch, ids[0])
            .await
            .expect("get")
            .content,
        "edited"
    );

    // Reactions, with emoji that need encoding in the path.
    bob.create_reaction(ch, ids[1], "👍").await.expect("react");
    owner
        .create_reaction(ch, ids[1], "👍")
        .await
        .expect("react");
    owner
        .create_reaction(ch, ids[1], "🎉")
        .await
        .expect("react");
    let users = owner
        .get_reactions(ch, ids[1], "👍", &ReactionsQuery::default())
        .await
        .expect("who reacted");
    assert_eq!(users.len(), 2);
    bob.delete_own_reaction(ch, ids[1], "👍")
        .await
        .expect("unreact");
    owner
        .create_reaction(ch, ids[2], "👍")
        .await
        .expect("react");
    bob.create_reaction(ch, ids[2], "👍").await.expect("react");
    owner
        .delete_user_reaction(ch, ids[2], "👍", bob_id)
        .await
        .expect("remove bob's");
    let users = owner
        .get_reactions(ch, ids[2], "👍", &ReactionsQuery::default())
        .await
        .expect("who reacted");
    assert_eq!(users.len(), 1);
    owner
        .delete_all_reactions_for_emoji(ch, ids[1], "🎉")
        .await
        .expect("clear emoji");
    let m = owner.get_channel_message(ch, ids[1]).await.expect("get");
    assert_eq!(m.reactions.len(), 1);
    owner
        .delete_all_reactions(ch, ids[1])
        .await
        .expect("clear all");
    let m = owner.get_channel_message(ch, ids[1]).await.expect("get");
    assert!(m.reactions.is_empty());

    // Pins, both route families.
    owner.pin_message(ch, ids[3]).await.expect("pin");
    owner
        .pin_message_legacy(ch, ids[4])
        .await
        .expect("pin (old route)");
    let pins = bob.get_channel_pins(ch).await.expect("pins");
    assert_eq!(pins.items.len(), 2);
    assert_eq!(bob.get_pinned_messages(ch).await.expect("pins").len(), 2);
    owner.unpin_message(ch, ids[3]).await.expect("unpin");
    owner.unpin_message_legacy(ch, ids[4]).await.expect("unpin");
    assert!(
        bob.get_channel_pins(ch)
            .await
            .expect("pins")
            .items
            .is_empty()
    );

    bob.trigger_typing(ch).await.expect("typing");

    owner.delete_message(ch, ids[0]).await.expect("delete");
    assert!(
        bob.get_channel_message(ch, ids[0])
            .await
            .expect_err("gone")
            .is_not_found()
    );
    owner
        .bulk_delete_messages(
            ch,
            &BulkDelete {
                messages: vec![ids[1], ids[2]],
            },
        )
        .await
        .expect("bulk delete");
    let left = bob
        .get_channel_messages(ch, &MessagesQuery::default())
        .await
        .expect("history");
    assert_eq!(left.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_bots_and_gateway_discovery() {
    let t = TestNode::start().await;
    let owner = t.user("owner").await;
    let (gid, ch) = t.guild(&owner, "Bots").await;

    let app = owner
        .create_application(&CreateApplication {
            name: "Helper".into(),
            description: Some("helps".into()),
        })
        .await
        .expect("create application");
    assert_eq!(
        owner.get_application(app.id).await.expect("app").name,
        "Helper"
    );
    let app = owner
        .modify_application(
            app.id,
            &ModifyApplication {
                description: Some("helps more".into()),
                ..ModifyApplication::default()
            },
        )
        .await
        .expect("modify application");
    assert_eq!(app.description, "helps more");
    let token = owner
        .reset_bot_token(app.id)
        .await
        .expect("bot token")
        .token;
    let authorized = owner
        .authorize_bot(
            &AuthorizeQuery {
                client_id: app.id,
                scope: "bot".into(),
                permissions: None,
            },
            &AuthorizeBot {
                guild_id: gid,
                permissions: Some(Permissions::SEND_MESSAGES | Permissions::VIEW_CHANNEL),
                authorize: true,
            },
        )
        .await
        .expect("authorize");
    assert!(authorized.location.contains("authorized"), "{authorized:?}");

    let bot = owner.with_token(Token::Bot(token));
    assert_eq!(bot.current_application().await.expect("app").id, app.id);
    assert_eq!(
        bot.current_application_alias().await.expect("app").id,
        app.id
    );
    let app = bot
        .modify_current_application(&ModifyApplication {
            description: Some("from the bot".into()),
            ..ModifyApplication::default()
        })
        .await
        .expect("modify own application");
    assert_eq!(app.description, "from the bot");
    let sent = bot
        .create_message(ch, &text("beep"))
        .await
        .expect("bot speaks");
    assert!(sent.author.bot);

    let gw = t.anon.get_gateway().await.expect("gateway");
    assert!(gw.url.starts_with("ws://127.0.0.1:"), "{}", gw.url);
    let gb = bot.get_gateway_bot().await.expect("gateway bot");
    assert_eq!(gb.url, gw.url);
    assert!(gb.session_start_limit.remaining > 0);

    // Calls needing a token say so; a bad base URL is refused before any request.
    let err = t.anon.current_user().await.expect_err("no token");
    assert!(err.is_unauthorized(), "{err}");
    assert!(matches!(
        Client::new("127.0.0.1:80"),
        Err(Error::InvalidBaseUrl(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_managed_with_a_login_and_driven_with_their_token() {
    let t = TestNode::start().await;
    let owner = t.user("hookowner").await;
    let (gid, general) = t.guild(&owner, "Hooks").await;
    let hook = owner
        .create_webhook(
            general,
            &CreateWebhook {
                name: "CI".into(),
                avatar: None,
            },
        )
        .await
        .expect("create webhook");
    let token = hook.token.clone().expect("token on create");
    assert_eq!(
        owner.get_channel_webhooks(general).await.expect("list")[0].id,
        hook.id
    );
    assert_eq!(owner.get_guild_webhooks(gid).await.expect("list").len(), 1);
    assert!(
        owner
            .get_webhook(hook.id)
            .await
            .expect("get")
            .token
            .is_none()
    );

    // No login: the token is the authority.
    let anyone = Client::new(owner.base_url()).expect("client");
    let posted = anyone
        .execute_webhook(
            hook.id,
            &token,
            &ExecuteWebhook {
                content: Some("build 41 green".into()),
                username: Some("CI bot".into()),
                ..ExecuteWebhook::default()
            },
        )
        .await
        .expect("execute");
    assert_eq!(posted.webhook_id, Some(hook.id));
    assert_eq!(posted.author.username, "CI bot");
    let edited = anyone
        .edit_webhook_message(
            hook.id,
            &token,
            posted.id,
            &EditMessage {
                content: Some(Some("build 41 green (edited)".into())),
                ..EditMessage::default()
            },
        )
        .await
        .expect("edit");
    assert_eq!(edited.content, "build 41 green (edited)");
    assert_eq!(
        anyone
            .get_webhook_message(hook.id, &token, posted.id)
            .await
            .expect("get message")
            .content,
        "build 41 green (edited)"
    );
    anyone
        .delete_webhook_message(hook.id, &token, posted.id)
        .await
        .expect("delete message");
    let renamed = anyone
        .modify_webhook_with_token(
            hook.id,
            &token,
            &ModifyWebhook {
                name: Some("CI 2".into()),
                ..ModifyWebhook::default()
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.name.as_deref(), Some("CI 2"));
    assert_eq!(
        anyone
            .get_webhook_with_token(hook.id, &token)
            .await
            .expect("get with token")
            .name
            .as_deref(),
        Some("CI 2")
    );
    let wrong = anyone
        .get_webhook_with_token(hook.id, "not-the-token")
        .await
        .expect_err("wrong token");
    assert_eq!((wrong.status(), wrong.code()), (Some(401), Some(50027)));
    anyone
        .delete_webhook_with_token(hook.id, &token)
        .await
        .expect("delete");
    assert!(
        owner
            .get_webhook(hook.id)
            .await
            .expect_err("gone")
            .is_not_found()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_group_dms_and_blocks() {
    let t = TestNode::start().await;
    let ana = t.user("ana_dm").await;
    let ben = t.user("ben_dm").await;
    let cy = t.user("cy_dm").await;
    let ana_id = ana.current_user().await.expect("ana").id;
    let ben_id = ben.current_user().await.expect("ben").id;
    let cy_id = cy.current_user().await.expect("cy").id;
    let (_, general) = t.guild(&ana, "Shared").await;
    for who in [&ben, &cy] {
        let invite = ana
            .create_channel_invite(general, &CreateInvite::default())
            .await
            .expect("invite");
        who.accept_invite(&invite.code).await.expect("join");
    }

    let dm = ben.create_dm(ana_id).await.expect("dm");
    assert_eq!(dm.kind, ChannelType::DM);
    assert_eq!(dm.guild_id, None);
    let private = dm.private.as_ref().expect("a DM's fields");
    assert_eq!(private.recipients[0].id, ana_id);
    assert_eq!(ana.create_dm(ben_id).await.expect("again").id, dm.id);
    let sent = ben
        .create_message(dm.id, &text("hi ana"))
        .await
        .expect("send");
    assert_eq!(sent.guild_id, None);
    assert_eq!(
        ana.current_user_channels().await.expect("list")[0].id,
        dm.id
    );

    ana.block_user(ben_id).await.expect("block");
    assert_eq!(ana.relationships().await.expect("list")[0].id, ben_id);
    let refused = ben
        .create_message(dm.id, &text("hello?"))
        .await
        .expect_err("blocked");
    assert_eq!(refused.code(), Some(50007), "{refused}");
    ana.unblock_user(ben_id).await.expect("unblock");
    ben.create_message(dm.id, &text("thanks"))
        .await
        .expect("unblocked");

    let group = ana.create_group_dm(&[ben_id]).await.expect("one is a DM");
    assert_eq!(group.id, dm.id);
    let group = ana.create_group_dm(&[ben_id, cy_id]).await.expect("group");
    assert_eq!(group.kind, ChannelType::GROUP_DM);
    ana.remove_group_dm_recipient(group.id, cy_id)
        .await
        .expect("remove");
    let seen = ben.get_channel(group.id).await.expect("read");
    assert_eq!(seen.private.expect("fields").recipients.len(), 1);
    ana.add_group_dm_recipient(group.id, cy_id)
        .await
        .expect("add back");
    assert_eq!(
        cy.current_user_channels().await.expect("list")[0].id,
        group.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_emojis() {
    use base64::Engine as _;
    let t = TestNode::start().await;
    let owner = t.user("emoji_owner").await;
    let (gid, _) = t.guild(&owner, "Emojis").await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\0\0\0\0";
    let image = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    let emoji = owner
        .create_guild_emoji(
            gid,
            &CreateEmoji {
                name: "wave".into(),
                image,
                roles: None,
            },
        )
        .await
        .expect("create");
    let id = emoji.id.expect("a custom emoji has an id");
    assert_eq!(owner.list_guild_emojis(gid).await.expect("list").len(), 1);
    let renamed = owner
        .modify_guild_emoji(
            gid,
            id,
            &ModifyEmoji {
                name: Some("hello".into()),
                roles: None,
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.name.as_deref(), Some("hello"));
    assert_eq!(
        owner
            .get_guild_emoji(gid, id)
            .await
            .expect("get")
            .name
            .as_deref(),
        Some("hello")
    );
    owner.delete_guild_emoji(gid, id).await.expect("delete");
    let gone = owner.get_guild_emoji(gid, id).await.expect_err("gone");
    assert_eq!(gone.code(), Some(10014), "{gone}");
}
