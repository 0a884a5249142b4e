//! Guilds, their channels list, roles, members, bans and invites.

use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{AuditLog, Ban, Channel, Emoji, Guild, Invite, Member, Role};
use enrichment_protocol::rest::{
    AuditLogQuery, ChannelPosition, CreateBan, CreateChannel, CreateEmoji, CreateGuild,
    MembersQuery, ModifyCurrentMember, ModifyEmoji, ModifyGuild, ModifyMember, RoleBody,
    RolePosition,
};
use reqwest::Method;

use crate::client::{Body, Client, json};
use crate::error::Result;

impl Client {
    /// `POST /guilds`: creates a guild owned by the caller (with `@everyone` and `#general`).
    pub async fn create_guild(&self, body: &CreateGuild) -> Result<Guild> {
        self.call(Method::POST, "/guilds", None, json(body)).await
    }

    /// `GET /guilds/{guild_id}`.
    pub async fn get_guild(&self, guild_id: Snowflake) -> Result<Guild> {
        self.call(
            Method::GET,
            &format!("/guilds/{guild_id}"),
            None,
            Body::None,
        )
        .await
    }

    /// `PATCH /guilds/{guild_id}`.
    pub async fn modify_guild(&self, guild_id: Snowflake, body: &ModifyGuild) -> Result<Guild> {
        self.call(
            Method::PATCH,
            &format!("/guilds/{guild_id}"),
            None,
            json(body),
        )
        .await
    }

    /// `DELETE /guilds/{guild_id}` (owner only).
    pub async fn delete_guild(&self, guild_id: Snowflake) -> Result<()> {
        self.call_empty(Method::DELETE, &format!("/guilds/{guild_id}"), Body::None)
            .await
    }

    /// `GET /guilds/{guild_id}/channels`.
    pub async fn get_guild_channels(&self, guild_id: Snowflake) -> Result<Vec<Channel>> {
        let path = format!("/guilds/{guild_id}/channels");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `POST /guilds/{guild_id}/channels`.
    pub async fn create_guild_channel(
        &self,
        guild_id: Snowflake,
        body: &CreateChannel,
    ) -> Result<Channel> {
        let path = format!("/guilds/{guild_id}/channels");
        self.call(Method::POST, &path, None, json(body)).await
    }

    /// `PATCH /guilds/{guild_id}/channels`: reorders channels.
    pub async fn modify_guild_channel_positions(
        &self,
        guild_id: Snowflake,
        body: &[ChannelPosition],
    ) -> Result<()> {
        let path = format!("/guilds/{guild_id}/channels");
        self.call_empty(Method::PATCH, &path, json(&body)).await
    }

    /// `GET /guilds/{guild_id}/roles`.
    pub async fn get_guild_roles(&self, guild_id: Snowflake) -> Result<Vec<Role>> {
        let path = format!("/guilds/{guild_id}/roles");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `GET /guilds/{guild_id}/roles/{role_id}`.
    pub async fn get_guild_role(&self, guild_id: Snowflake, role_id: Snowflake) -> Result<Role> {
        let path = format!("/guilds/{guild_id}/roles/{role_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `POST /guilds/{guild_id}/roles`.
    pub async fn create_guild_role(&self, guild_id: Snowflake, body: &RoleBody) -> Result<Role> {
        let path = format!("/guilds/{guild_id}/roles");
        self.call(Method::POST, &path, None, json(body)).await
    }

    /// `PATCH /guilds/{guild_id}/roles`: reorders roles; answers every role.
    pub async fn modify_guild_role_positions(
        &self,
        guild_id: Snowflake,
        body: &[RolePosition],
    ) -> Result<Vec<Role>> {
        let path = format!("/guilds/{guild_id}/roles");
        self.call(Method::PATCH, &path, None, json(&body)).await
    }

    /// `PATCH /guilds/{guild_id}/roles/{role_id}`.
    pub async fn modify_guild_role(
        &self,
        guild_id: Snowflake,
        role_id: Snowflake,
        body: &RoleBody,
    ) -> Result<Role> {
        let path = format!("/guilds/{guild_id}/roles/{role_id}");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /guilds/{guild_id}/roles/{role_id}`.
    pub async fn delete_guild_role(&self, guild_id: Snowflake, role_id: Snowflake) -> Result<()> {
        let path = format!("/guilds/{guild_id}/roles/{role_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /guilds/{guild_id}/members` (`limit` 1–1000, `after` a user id).
    pub async fn list_guild_members(
        &self,
        guild_id: Snowflake,
        query: &MembersQuery,
    ) -> Result<Vec<Member>> {
        let path = format!("/guilds/{guild_id}/members");
        self.call(Method::GET, &path, Some(query), Body::None).await
    }

    /// `GET /guilds/{guild_id}/members/{user_id}`.
    pub async fn get_guild_member(
        &self,
        guild_id: Snowflake,
        user_id: Snowflake,
    ) -> Result<Member> {
        let path = format!("/guilds/{guild_id}/members/{user_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PATCH /guilds/{guild_id}/members/{user_id}`: nick, roles, timeout.
    pub async fn modify_guild_member(
        &self,
        guild_id: Snowflake,
        user_id: Snowflake,
        body: &ModifyMember,
    ) -> Result<Member> {
        let path = format!("/guilds/{guild_id}/members/{user_id}");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `PATCH /guilds/{guild_id}/members/@me`: the caller's own nick.
    pub async fn modify_current_member(
        &self,
        guild_id: Snowflake,
        body: &ModifyCurrentMember,
    ) -> Result<Member> {
        let path = format!("/guilds/{guild_id}/members/@me");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /guilds/{guild_id}/members/{user_id}`: kicks a member.
    pub async fn remove_guild_member(&self, guild_id: Snowflake, user_id: Snowflake) -> Result<()> {
        let path = format!("/guilds/{guild_id}/members/{user_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}`.
    pub async fn add_guild_member_role(
        &self,
        guild_id: Snowflake,
        user_id: Snowflake,
        role_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/guilds/{guild_id}/members/{user_id}/roles/{role_id}");
        self.call_empty(Method::PUT, &path, Body::None).await
    }

    /// `DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}`.
    pub async fn remove_guild_member_role(
        &self,
        guild_id: Snowflake,
        user_id: Snowflake,
        role_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/guilds/{guild_id}/members/{user_id}/roles/{role_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /guilds/{guild_id}/bans`.
    pub async fn get_guild_bans(&self, guild_id: Snowflake) -> Result<Vec<Ban>> {
        let path = format!("/guilds/{guild_id}/bans");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `GET /guilds/{guild_id}/bans/{user_id}`.
    pub async fn get_guild_ban(&self, guild_id: Snowflake, user_id: Snowflake) -> Result<Ban> {
        let path = format!("/guilds/{guild_id}/bans/{user_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PUT /guilds/{guild_id}/bans/{user_id}`: bans (and removes) a user.
    pub async fn create_guild_ban(
        &self,
        guild_id: Snowflake,
        user_id: Snowflake,
        body: &CreateBan,
    ) -> Result<()> {
        let path = format!("/guilds/{guild_id}/bans/{user_id}");
        self.call_empty(Method::PUT, &path, json(body)).await
    }

    /// `DELETE /guilds/{guild_id}/bans/{user_id}`.
    pub async fn remove_guild_ban(&self, guild_id: Snowflake, user_id: Snowflake) -> Result<()> {
        let path = format!("/guilds/{guild_id}/bans/{user_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /guilds/{guild_id}/emojis`.
    pub async fn list_guild_emojis(&self, guild_id: Snowflake) -> Result<Vec<Emoji>> {
        let path = format!("/guilds/{guild_id}/emojis");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `GET /guilds/{guild_id}/emojis/{emoji_id}`.
    pub async fn get_guild_emoji(&self, guild_id: Snowflake, emoji_id: Snowflake) -> Result<Emoji> {
        let path = format!("/guilds/{guild_id}/emojis/{emoji_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `POST /guilds/{guild_id}/emojis` (CREATE_GUILD_EXPRESSIONS); `image` is image data,
    /// `data:image/png;base64,...`.
    pub async fn create_guild_emoji(
        &self,
        guild_id: Snowflake,
        body: &CreateEmoji,
    ) -> Result<Emoji> {
        let path = format!("/guilds/{guild_id}/emojis");
        self.call(Method::POST, &path, None, json(body)).await
    }

    /// `PATCH /guilds/{guild_id}/emojis/{emoji_id}`.
    pub async fn modify_guild_emoji(
        &self,
        guild_id: Snowflake,
        emoji_id: Snowflake,
        body: &ModifyEmoji,
    ) -> Result<Emoji> {
        let path = format!("/guilds/{guild_id}/emojis/{emoji_id}");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /guilds/{guild_id}/emojis/{emoji_id}`.
    pub async fn delete_guild_emoji(&self, guild_id: Snowflake, emoji_id: Snowflake) -> Result<()> {
        let path = format!("/guilds/{guild_id}/emojis/{emoji_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /guilds/{guild_id}/audit-logs` (VIEW_AUDIT_LOG): entries newest first, filtered by
    /// `user_id` and `action_type`, paged with `before` / `after` (`limit` 1–100).
    pub async fn get_guild_audit_log(
        &self,
        guild_id: Snowflake,
        query: &AuditLogQuery,
    ) -> Result<AuditLog> {
        let path = format!("/guilds/{guild_id}/audit-logs");
        self.call(Method::GET, &path, Some(query), Body::None).await
    }

    /// `GET /guilds/{guild_id}/invites`.
    pub async fn get_guild_invites(&self, guild_id: Snowflake) -> Result<Vec<Invite>> {
        let path = format!("/guilds/{guild_id}/invites");
        self.call(Method::GET, &path, None, Body::None).await
    }
}
