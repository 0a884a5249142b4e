//! The scenario every library plays, and the server-side checks of each step.
//!
//! A human owner creates a guild with a second channel, creates an application, adds its bot
//! with a few permissions and turns on the limited GUILD_MEMBERS and MESSAGE_CONTENT flags
//! through `PATCH /applications/@me`, as a developer would. The bot then logs in, sees the
//! guild, answers a message with a reply, reacts to its reply, edits it, deletes it, and
//! welcomes a member who joins through an invite. A library that drives webhooks (discord.js)
//! then makes one, posts through it with its token and deletes it.

use enrichment_protocol::Permissions;
use enrichment_protocol::gateway::app_flags;
use serde_json::{Value, json};

use crate::support::{Bot, TestNode, User, id_of};

pub const GUILD_NAME: &str = "Compat Guild";
/// The channel the scenario talks in (next to the guild's default "general").
pub const CHANNEL_NAME: &str = "bot-lab";
/// The emoji the bot reacts with, percent-encoded for a REST path.
pub const THUMBS_UP: &str = "👍";
const THUMBS_UP_PATH: &str = "%F0%9F%91%8D";

pub struct Scenario {
    pub node: TestNode,
    pub owner: User,
    pub guild_id: String,
    pub channel_id: String,
    pub bot: Bot,
}

impl Scenario {
    pub async fn start(owner_name: &str, bot_name: &str) -> Scenario {
        // Rate limits as a real node has them, so the libraries read the X-RateLimit headers.
        let node = TestNode::start_with(|c| c.rate_limits.enabled = true).await;
        let owner = node.register(owner_name).await;
        let (guild_id, _general) = node.guild(&owner, GUILD_NAME).await;
        let channel = node
            .post(
                &format!("/guilds/{guild_id}/channels"),
                &owner.token,
                json!({"name": CHANNEL_NAME}),
            )
            .await
            .ok(201);
        let permissions = Permissions::VIEW_CHANNEL
            | Permissions::SEND_MESSAGES
            | Permissions::READ_MESSAGE_HISTORY
            | Permissions::ADD_REACTIONS
            | Permissions::EMBED_LINKS
            | Permissions::MANAGE_WEBHOOKS;
        let bot = node
            .bot(&owner, bot_name, &guild_id, permissions.bits())
            .await;
        let flags =
            app_flags::GATEWAY_GUILD_MEMBERS_LIMITED | app_flags::GATEWAY_MESSAGE_CONTENT_LIMITED;
        let app = node
            .patch("/applications/@me", &bot.token, json!({"flags": flags}))
            .await
            .ok(200);
        assert_eq!(app["flags"], flags, "privileged intent flags are on");
        Scenario {
            channel_id: id_of(&channel),
            node,
            owner,
            guild_id,
            bot,
        }
    }

    /// The REST address without a path, e.g. `127.0.0.1:8080`.
    pub fn rest_addr(&self) -> String {
        self.node
            .node
            .as_ref()
            .expect("node running")
            .addr
            .to_string()
    }

    /// The bot token without its `Bot ` prefix, as libraries take it.
    pub fn raw_bot_token(&self) -> &str {
        self.bot
            .token
            .strip_prefix("Bot ")
            .expect("bot token prefix")
    }

    /// The owner writes in the scenario channel; returns the message.
    pub async fn owner_says(&self, content: &str) -> Value {
        self.node.send(&self.owner, &self.channel_id, content).await
    }

    pub async fn message(&self, id: &str) -> Value {
        self.node
            .get(
                &format!("/channels/{}/messages/{id}", self.channel_id),
                &self.owner.token,
            )
            .await
            .ok(200)
    }

    /// The bot's reply is stored as a reply to `to`, written by the bot.
    pub async fn check_reply(&self, reply_id: &str, to: &str, content: &str) {
        let reply = self.message(reply_id).await;
        assert_eq!(reply["author"]["id"], self.bot.user_id, "{reply}");
        assert_eq!(reply["content"], content, "{reply}");
        assert_eq!(reply["type"], 19, "a reply has type REPLY: {reply}");
        assert_eq!(reply["message_reference"]["message_id"], to, "{reply}");
        assert_eq!(
            reply["message_reference"]["channel_id"], self.channel_id,
            "{reply}"
        );
        assert_eq!(reply["referenced_message"]["id"], to, "{reply}");
    }

    /// The bot's 👍 is on the message, and only the bot's.
    pub async fn check_reaction(&self, message_id: &str) {
        let users = self
            .node
            .get(
                &format!(
                    "/channels/{}/messages/{message_id}/reactions/{THUMBS_UP_PATH}",
                    self.channel_id
                ),
                &self.owner.token,
            )
            .await
            .ok(200);
        let ids: Vec<&str> = users
            .as_array()
            .expect("reaction users")
            .iter()
            .map(|u| u["id"].as_str().expect("user id"))
            .collect();
        assert_eq!(ids, [self.bot.user_id.as_str()], "{users}");
        let msg = self.message(message_id).await;
        assert_eq!(msg["reactions"][0]["emoji"]["name"], THUMBS_UP, "{msg}");
        assert_eq!(msg["reactions"][0]["count"], 1, "{msg}");
    }

    pub async fn check_edited(&self, message_id: &str, content: &str) {
        let msg = self.message(message_id).await;
        assert_eq!(msg["content"], content, "{msg}");
        assert!(msg["edited_timestamp"].is_string(), "{msg}");
    }

    pub async fn check_deleted(&self, message_id: &str) {
        self.node
            .get(
                &format!("/channels/{}/messages/{message_id}", self.channel_id),
                &self.owner.token,
            )
            .await
            .err(404, 10008);
    }

    /// A message a webhook posted in the scenario channel, shown with the webhook as author.
    pub async fn check_webhook_message(&self, message_id: &str, webhook_id: &str, name: &str) {
        let msg = self.message(message_id).await;
        assert_eq!(msg["webhook_id"], webhook_id, "{msg}");
        assert_eq!(msg["author"]["id"], webhook_id, "{msg}");
        assert_eq!(msg["author"]["username"], name, "{msg}");
        assert_eq!(msg["author"]["bot"], true, "{msg}");
    }

    /// The webhook is gone.
    pub async fn check_webhook_deleted(&self, webhook_id: &str) {
        self.node
            .get(&format!("/webhooks/{webhook_id}"), &self.owner.token)
            .await
            .err(404, 10015);
    }

    /// The newest message of a DM, as `user` reads it: the bot's, with `content`.
    pub async fn check_dm(&self, user: &User, channel_id: &str, content: &str) {
        let latest = self
            .node
            .get(
                &format!("/channels/{channel_id}/messages?limit=1"),
                &user.token,
            )
            .await
            .ok(200);
        assert_eq!(latest[0]["author"]["id"], self.bot.user_id, "{latest}");
        assert_eq!(latest[0]["content"], content, "{latest}");
        let listed = self
            .node
            .get("/users/@me/channels", &user.token)
            .await
            .ok(200);
        assert_eq!(listed[0]["id"], channel_id, "{listed}");
        assert_eq!(
            listed[0]["recipients"][0]["id"], self.bot.user_id,
            "{listed}"
        );
    }

    /// A new user joins the guild through an invite from the owner.
    pub async fn newcomer_joins(&self, name: &str) -> User {
        let user = self.node.register(name).await;
        self.node.join(&self.owner, &self.channel_id, &user).await;
        user
    }

    /// The bot's welcome for `newcomer` is in the scenario channel.
    pub async fn check_welcome(&self, message_id: &str, newcomer: &str) {
        let msg = self.message(message_id).await;
        assert_eq!(msg["author"]["id"], self.bot.user_id, "{msg}");
        assert_eq!(msg["content"], format!("Welcome, {newcomer}!"), "{msg}");
        let latest = self
            .node
            .get(
                &format!("/channels/{}/messages?limit=1", self.channel_id),
                &self.owner.token,
            )
            .await
            .ok(200);
        assert_eq!(
            latest[0]["id"], message_id,
            "the welcome is the latest message"
        );
    }
}
