//! twilight (twilight-http, twilight-gateway, twilight-model, twilight-cache-inmemory),
//! unmodified: REST through `ClientBuilder::proxy("127.0.0.1:PORT", true)` and the gateway
//! through `ConfigBuilder::proxy_url`, set to the URL `GET /gateway/bot` reports, with its default
//! transport compression (its `zstd` feature: `compress=zstd-stream`). twilight
//! deserializes every REST answer and gateway event into its typed models, so a field of the
//! wrong shape fails here.

use std::time::{Duration, Instant};

use twilight_cache_inmemory::DefaultInMemoryCache;
use twilight_gateway::{
    CloseFrame, ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};
use twilight_http::Client;
use twilight_http::api_error::ApiError;
use twilight_http::error::ErrorType;
use twilight_http::request::channel::reaction::RequestReactionType;
use twilight_model::channel::message::{EmojiReactionType, MessageType};
use twilight_model::gateway::payload::incoming::GuildCreate;
use twilight_model::id::Id;
use twilight_model::id::marker::{ChannelMarker, GuildMarker, UserMarker};

use crate::scenario::{CHANNEL_NAME, GUILD_NAME, Scenario, THUMBS_UP};

/// The whole conversation on the gateway.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// The shard, its cache, and the deadline every wait shares.
struct Bot {
    shard: Shard,
    cache: DefaultInMemoryCache,
    deadline: Instant,
}

impl Bot {
    /// The next event, after the cache has seen it. A payload twilight cannot deserialize is
    /// an error here, with the payload in the message.
    async fn next(&mut self, what: &str) -> Event {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.shard.next_event(EventTypeFlags::all())).await {
            Ok(Some(Ok(event))) => {
                self.cache.update(&event);
                event
            }
            Ok(Some(Err(e))) => panic!("twilight gateway error while waiting for {what}: {e:?}"),
            Ok(None) => panic!("the shard stopped while waiting for {what}"),
            Err(_) => panic!("no {what} within {SCENARIO_TIMEOUT:?} of the shard's start"),
        }
    }

    /// Skips events until `pick` takes one.
    async fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        loop {
            let event = self.next(what).await;
            if let Some(found) = pick(&event) {
                return found;
            }
            if let Event::GatewayClose(frame) = &event {
                panic!("the gateway closed while waiting for {what}: {frame:?}");
            }
        }
    }
}

fn id<M>(s: &str) -> Id<M> {
    s.parse().expect("snowflake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilight_bot_plays_the_scenario() {
    let s = Scenario::start("tw_owner", "TwilightBot").await;
    let http = Client::builder()
        .proxy(s.rest_addr(), true)
        .token(s.raw_bot_token().to_owned())
        .timeout(Duration::from_secs(10))
        .build();
    let guild_id: Id<GuildMarker> = id(&s.guild_id);
    let channel_id: Id<ChannelMarker> = id(&s.channel_id);
    let bot_user: Id<UserMarker> = id(&s.bot.user_id);

    // What a bot reads at startup, as twilight's models.
    let me = http
        .current_user()
        .await
        .expect("GET /users/@me")
        .model()
        .await
        .expect("current user model");
    assert_eq!(me.id, bot_user);
    assert!(me.bot);
    let app = http
        .current_user_application()
        .await
        .expect("GET /applications/@me")
        .model()
        .await
        .expect("application model");
    assert_eq!(app.id.to_string(), s.bot.app_id);
    let gateway = http
        .gateway()
        .authed()
        .await
        .expect("GET /gateway/bot")
        .model()
        .await
        .expect("gateway model");
    assert_eq!(
        gateway.url,
        s.node.node.as_ref().expect("node").gateway_url,
        "/gateway/bot names the node's gateway"
    );
    assert!(gateway.session_start_limit.remaining >= 1);
    let guilds = http
        .current_user_guilds()
        .await
        .expect("GET /users/@me/guilds")
        .models()
        .await
        .expect("guild list models");
    assert_eq!(guilds.len(), 1);
    assert_eq!(guilds[0].name, GUILD_NAME);

    // The gateway, at the URL the node reported.
    let intents = Intents::GUILDS
        | Intents::GUILD_MEMBERS
        | Intents::GUILD_MESSAGES
        | Intents::GUILD_MESSAGE_REACTIONS
        | Intents::MESSAGE_CONTENT;
    let config = ConfigBuilder::new(s.raw_bot_token().to_owned(), intents)
        .proxy_url(gateway.url.clone())
        .build();
    let mut bot = Bot {
        shard: Shard::with_config(ShardId::ONE, config),
        cache: DefaultInMemoryCache::new(),
        deadline: Instant::now() + SCENARIO_TIMEOUT,
    };
    let ready = bot
        .wait_for("READY", |e| match e {
            Event::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .await;
    assert_eq!(ready.user.id, bot_user);
    assert_eq!(ready.application.id.to_string(), s.bot.app_id);
    assert_eq!(ready.guilds.len(), 1);
    assert_eq!(ready.guilds[0].id, guild_id);
    assert_eq!(ready.resume_gateway_url, gateway.url);
    bot.wait_for("GUILD_CREATE", |e| match e {
        Event::GuildCreate(g) => match g.as_ref() {
            GuildCreate::Available(g) if g.id == guild_id => Some(()),
            _ => None,
        },
        _ => None,
    })
    .await;
    {
        let guild = bot.cache.guild(guild_id).expect("guild cached");
        assert_eq!(guild.name(), GUILD_NAME);
        let mut names: Vec<String> = bot
            .cache
            .guild_channels(guild_id)
            .expect("channels cached")
            .iter()
            .map(|c| {
                bot.cache
                    .channel(*c)
                    .expect("channel cached")
                    .name
                    .clone()
                    .unwrap_or_default()
            })
            .collect();
        names.sort();
        assert_eq!(names, [CHANNEL_NAME, "general"]);
        assert!(bot.cache.member(guild_id, bot_user).is_some());
        assert!(
            bot.cache
                .guild_roles(guild_id)
                .is_some_and(|r| r.len() >= 2)
        );
    }

    // A human writes; the bot reads the content (MESSAGE_CONTENT) and replies.
    let said = s.owner_says("hello bot").await;
    let said_id = said["id"].as_str().expect("id").to_owned();
    let seen = bot
        .wait_for("MESSAGE_CREATE", |e| match e {
            Event::MessageCreate(m) if m.id.to_string() == said_id => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(seen.content, "hello bot");
    assert_eq!(seen.author.id.to_string(), s.owner.id);
    assert_eq!(seen.guild_id, Some(guild_id));
    assert_eq!(seen.channel_id, channel_id);
    let reply = http
        .create_message(channel_id)
        .content("pong: hello bot")
        .reply(seen.id)
        .await
        .expect("reply")
        .model()
        .await
        .expect("reply model");
    assert_eq!(reply.kind, MessageType::Reply);
    assert_eq!(
        reply.reference.as_ref().and_then(|r| r.message_id),
        Some(seen.id)
    );
    assert_eq!(
        reply.referenced_message.as_ref().map(|m| m.id),
        Some(seen.id)
    );
    let reply_id = reply.id.to_string();
    s.check_reply(&reply_id, &said_id, "pong: hello bot").await;

    // React, and see the reaction come back on the gateway.
    http.create_reaction(
        channel_id,
        reply.id,
        &RequestReactionType::Unicode { name: THUMBS_UP },
    )
    .await
    .expect("react");
    bot.wait_for("MESSAGE_REACTION_ADD", |e| match e {
        Event::ReactionAdd(r) if r.message_id == reply.id && r.user_id == bot_user => {
            assert!(
                matches!(&r.emoji, EmojiReactionType::Unicode { name } if name == THUMBS_UP),
                "{r:?}"
            );
            Some(())
        }
        _ => None,
    })
    .await;
    s.check_reaction(&reply_id).await;
    let users = http
        .reactions(
            channel_id,
            reply.id,
            &RequestReactionType::Unicode { name: THUMBS_UP },
        )
        .await
        .expect("reaction users")
        .models()
        .await
        .expect("user models");
    assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), [bot_user]);

    // Edit.
    let edited = http
        .update_message(channel_id, reply.id)
        .content(Some("pong (edited)"))
        .await
        .expect("edit")
        .model()
        .await
        .expect("edited model");
    assert_eq!(edited.content, "pong (edited)");
    assert!(edited.edited_timestamp.is_some());
    bot.wait_for("MESSAGE_UPDATE", |e| match e {
        Event::MessageUpdate(m) if m.id == reply.id => Some(()),
        _ => None,
    })
    .await;
    s.check_edited(&reply_id, "pong (edited)").await;

    // Delete; the message is gone for twilight too, with Discord's error body.
    http.delete_message(channel_id, reply.id)
        .await
        .expect("delete");
    bot.wait_for("MESSAGE_DELETE", |e| match e {
        Event::MessageDelete(m) if m.id == reply.id => Some(()),
        _ => None,
    })
    .await;
    s.check_deleted(&reply_id).await;
    let gone = http
        .message(channel_id, reply.id)
        .await
        .expect_err("a deleted message is not found");
    match gone.kind() {
        ErrorType::Response { status, error, .. } => {
            assert_eq!(status.get(), 404);
            match error {
                ApiError::General(g) => assert_eq!(g.code, 10008),
                other => panic!("unexpected error body: {other:?}"),
            }
        }
        other => panic!("unexpected error: {other:?}"),
    }

    // A member joins: GUILD_MEMBER_ADD (GUILD_MEMBERS) and the bot welcomes them.
    let newcomer = s.newcomer_joins("tw_newcomer").await;
    let joined = bot
        .wait_for("GUILD_MEMBER_ADD", |e| match e {
            Event::MemberAdd(m) => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(joined.guild_id, guild_id);
    assert_eq!(joined.user.id.to_string(), newcomer.id);
    assert!(bot.cache.member(guild_id, joined.user.id).is_some());
    let welcome = http
        .create_message(channel_id)
        .content(&format!("Welcome, {}!", joined.user.name))
        .await
        .expect("welcome")
        .model()
        .await
        .expect("welcome model");
    s.check_welcome(&welcome.id.to_string(), "tw_newcomer")
        .await;

    bot.shard.close(CloseFrame::NORMAL);
    bot.wait_for("the close", |e| match e {
        Event::GatewayClose(_) => Some(()),
        _ => None,
    })
    .await;
}
