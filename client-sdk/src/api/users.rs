//! The current user, other users, applications and bots, OAuth2 bot authorization, and
//! gateway discovery.

use enrichment_protocol::models::{Application, Channel, Member, PartialGuild, Relationship, User};
use enrichment_protocol::rest::{
    AuthorizeBot, BotTokenResponse, CreateApplication, CreateDm, GatewayBotResponse,
    GatewayResponse, GuildsQuery, ModifiedCurrentUser, ModifyApplication, ModifyCurrentUser,
    PutRelationship,
};
use enrichment_protocol::{Permissions, Snowflake};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Body, Client, json};
use crate::error::Result;

/// The query of `POST /oauth2/authorize`.
#[derive(Clone, Debug, Serialize)]
pub struct AuthorizeQuery {
    /// The application whose bot is added.
    pub client_id: Snowflake,
    /// Space-separated scopes; the server supports `bot`.
    pub scope: String,
    /// Permissions for the bot's role, if the body does not give them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

/// The answer of `POST /oauth2/authorize`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AuthorizeResponse {
    /// Where a browser would be sent next.
    pub location: String,
}

impl Client {
    /// `GET /users/@me`.
    pub async fn current_user(&self) -> Result<User> {
        self.call(Method::GET, "/users/@me", None, Body::None).await
    }

    /// `PATCH /users/@me`. With `password` and `new_password` every session of the user ends
    /// (this client's token included) and the answer carries the new session's `token`.
    pub async fn modify_current_user(
        &self,
        body: &ModifyCurrentUser,
    ) -> Result<ModifiedCurrentUser> {
        self.call(Method::PATCH, "/users/@me", None, json(body))
            .await
    }

    /// `GET /users/{user_id}`.
    pub async fn get_user(&self, user_id: Snowflake) -> Result<User> {
        self.call(Method::GET, &format!("/users/{user_id}"), None, Body::None)
            .await
    }

    /// `GET /users/@me/guilds`.
    pub async fn current_user_guilds(&self, query: &GuildsQuery) -> Result<Vec<PartialGuild>> {
        self.call(Method::GET, "/users/@me/guilds", Some(query), Body::None)
            .await
    }

    /// `GET /users/@me/guilds/{guild_id}/member`.
    pub async fn current_user_guild_member(&self, guild_id: Snowflake) -> Result<Member> {
        let path = format!("/users/@me/guilds/{guild_id}/member");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `DELETE /users/@me/guilds/{guild_id}`: leaves a guild.
    pub async fn leave_guild(&self, guild_id: Snowflake) -> Result<()> {
        let path = format!("/users/@me/guilds/{guild_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `POST /users/@me/channels` with a `recipient_id`: the DM with that user, opened once
    /// and answered again after.
    pub async fn create_dm(&self, recipient_id: Snowflake) -> Result<Channel> {
        let body = CreateDm {
            recipient_id: Some(recipient_id),
            recipients: None,
        };
        self.call(Method::POST, "/users/@me/channels", None, json(&body))
            .await
    }

    /// `POST /users/@me/channels` with `recipients`: a group DM of the caller and them (one
    /// recipient makes it a DM).
    pub async fn create_group_dm(&self, recipients: &[Snowflake]) -> Result<Channel> {
        let body = CreateDm {
            recipient_id: None,
            recipients: Some(recipients.to_vec()),
        };
        self.call(Method::POST, "/users/@me/channels", None, json(&body))
            .await
    }

    /// `GET /users/@me/channels`: the caller's DMs and group DMs.
    pub async fn current_user_channels(&self) -> Result<Vec<Channel>> {
        self.call(Method::GET, "/users/@me/channels", None, Body::None)
            .await
    }

    /// `GET /users/@me/relationships`: the users the caller blocked.
    pub async fn relationships(&self) -> Result<Vec<Relationship>> {
        self.call(Method::GET, "/users/@me/relationships", None, Body::None)
            .await
    }

    /// `PUT /users/@me/relationships/{user_id}` with `type` 2: neither can DM the other
    /// until [`Client::unblock_user`].
    pub async fn block_user(&self, user_id: Snowflake) -> Result<()> {
        let path = format!("/users/@me/relationships/{user_id}");
        let body = PutRelationship { kind: Some(2) };
        self.call_empty(Method::PUT, &path, json(&body)).await
    }

    /// `DELETE /users/@me/relationships/{user_id}`.
    pub async fn unblock_user(&self, user_id: Snowflake) -> Result<()> {
        let path = format!("/users/@me/relationships/{user_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `POST /applications`: creates an application with its bot user; get the bot's token
    /// with [`Client::reset_bot_token`].
    pub async fn create_application(&self, body: &CreateApplication) -> Result<Application> {
        self.call(Method::POST, "/applications", None, json(body))
            .await
    }

    /// `GET /oauth2/applications/@me`: the application of the calling bot.
    pub async fn current_application(&self) -> Result<Application> {
        self.call(Method::GET, "/oauth2/applications/@me", None, Body::None)
            .await
    }

    /// `GET /applications/@me` (the same as [`Client::current_application`]).
    pub async fn current_application_alias(&self) -> Result<Application> {
        self.call(Method::GET, "/applications/@me", None, Body::None)
            .await
    }

    /// `PATCH /applications/@me`.
    pub async fn modify_current_application(
        &self,
        body: &ModifyApplication,
    ) -> Result<Application> {
        self.call(Method::PATCH, "/applications/@me", None, json(body))
            .await
    }

    /// `GET /applications/{application_id}` (owner only).
    pub async fn get_application(&self, application_id: Snowflake) -> Result<Application> {
        let path = format!("/applications/{application_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PATCH /applications/{application_id}` (owner only).
    pub async fn modify_application(
        &self,
        application_id: Snowflake,
        body: &ModifyApplication,
    ) -> Result<Application> {
        let path = format!("/applications/{application_id}");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `POST /applications/{application_id}/bot/reset`: a new bot token; the old one dies.
    pub async fn reset_bot_token(&self, application_id: Snowflake) -> Result<BotTokenResponse> {
        let path = format!("/applications/{application_id}/bot/reset");
        self.call(Method::POST, &path, None, Body::None).await
    }

    /// `POST /oauth2/authorize` with `scope=bot`: adds an application's bot to a guild.
    pub async fn authorize_bot(
        &self,
        query: &AuthorizeQuery,
        body: &AuthorizeBot,
    ) -> Result<AuthorizeResponse> {
        self.call(Method::POST, "/oauth2/authorize", Some(query), json(body))
            .await
    }

    /// `GET /gateway`: where the WebSocket gateway listens.
    pub async fn get_gateway(&self) -> Result<GatewayResponse> {
        self.call(Method::GET, "/gateway", None, Body::None).await
    }

    /// `GET /gateway/bot`: the gateway URL, shard advice and this token's identify budget.
    pub async fn get_gateway_bot(&self) -> Result<GatewayBotResponse> {
        self.call(Method::GET, "/gateway/bot", None, Body::None)
            .await
    }
}
