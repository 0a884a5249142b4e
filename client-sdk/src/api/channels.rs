//! Channels, their permission overwrites, invites and typing.

use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{Channel, Invite};
use enrichment_protocol::rest::{CreateInvite, EditOverwrite, ModifyChannel};
use reqwest::Method;

use crate::client::{Body, Client, json, segment};
use crate::error::Result;

impl Client {
    /// `PUT /channels/{channel_id}/recipients/{user_id}`: adds a user to a group DM.
    pub async fn add_group_dm_recipient(
        &self,
        channel_id: Snowflake,
        user_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/recipients/{user_id}");
        self.call_empty(Method::PUT, &path, Body::None).await
    }

    /// `DELETE /channels/{channel_id}/recipients/{user_id}`: the owner removes a user, or a
    /// user leaves.
    pub async fn remove_group_dm_recipient(
        &self,
        channel_id: Snowflake,
        user_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/recipients/{user_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /channels/{channel_id}`.
    pub async fn get_channel(&self, channel_id: Snowflake) -> Result<Channel> {
        let path = format!("/channels/{channel_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PATCH /channels/{channel_id}`.
    pub async fn modify_channel(
        &self,
        channel_id: Snowflake,
        body: &ModifyChannel,
    ) -> Result<Channel> {
        let path = format!("/channels/{channel_id}");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /channels/{channel_id}`; answers the deleted channel.
    pub async fn delete_channel(&self, channel_id: Snowflake) -> Result<Channel> {
        let path = format!("/channels/{channel_id}");
        self.call(Method::DELETE, &path, None, Body::None).await
    }

    /// `PUT /channels/{channel_id}/permissions/{overwrite_id}`.
    pub async fn edit_channel_permissions(
        &self,
        channel_id: Snowflake,
        overwrite_id: Snowflake,
        body: &EditOverwrite,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/permissions/{overwrite_id}");
        self.call_empty(Method::PUT, &path, json(body)).await
    }

    /// `DELETE /channels/{channel_id}/permissions/{overwrite_id}`.
    pub async fn delete_channel_permission(
        &self,
        channel_id: Snowflake,
        overwrite_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/permissions/{overwrite_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /channels/{channel_id}/invites`.
    pub async fn get_channel_invites(&self, channel_id: Snowflake) -> Result<Vec<Invite>> {
        let path = format!("/channels/{channel_id}/invites");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `POST /channels/{channel_id}/invites`.
    pub async fn create_channel_invite(
        &self,
        channel_id: Snowflake,
        body: &CreateInvite,
    ) -> Result<Invite> {
        let path = format!("/channels/{channel_id}/invites");
        self.call(Method::POST, &path, None, json(body)).await
    }

    /// `POST /channels/{channel_id}/typing`.
    pub async fn trigger_typing(&self, channel_id: Snowflake) -> Result<()> {
        let path = format!("/channels/{channel_id}/typing");
        self.call_empty(Method::POST, &path, Body::None).await
    }

    /// `GET /invites/{code}`.
    pub async fn get_invite(&self, code: &str) -> Result<Invite> {
        let path = format!("/invites/{}", segment(code));
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `POST /invites/{code}`: joins the invite's guild.
    pub async fn accept_invite(&self, code: &str) -> Result<Invite> {
        let path = format!("/invites/{}", segment(code));
        self.call(Method::POST, &path, None, Body::None).await
    }

    /// `DELETE /invites/{code}`; answers the deleted invite.
    pub async fn delete_invite(&self, code: &str) -> Result<Invite> {
        let path = format!("/invites/{}", segment(code));
        self.call(Method::DELETE, &path, None, Body::None).await
    }
}
