//! Webhooks: managed with the client's token (MANAGE_WEBHOOKS), driven with their own.
//!
//! The `_with_token` calls and [`Client::execute_webhook`] need no login: the webhook's id and
//! token are the authority, as anyone holding a webhook URL can post. A client without a token
//! ([`Client::new`]) makes them.

use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{Message, Webhook};
use enrichment_protocol::rest::{
    CreateWebhook, EditMessage, ExecuteWebhook, ExecuteWebhookQuery, ModifyWebhook,
};
use reqwest::Method;

use crate::client::{Body, Client, json, segment};
use crate::error::Result;

impl Client {
    /// `POST /channels/{channel_id}/webhooks`: the answer is the only one with the token.
    pub async fn create_webhook(
        &self,
        channel_id: Snowflake,
        body: &CreateWebhook,
    ) -> Result<Webhook> {
        let path = format!("/channels/{channel_id}/webhooks");
        self.call(Method::POST, &path, None, json(body)).await
    }

    /// `GET /channels/{channel_id}/webhooks`.
    pub async fn get_channel_webhooks(&self, channel_id: Snowflake) -> Result<Vec<Webhook>> {
        let path = format!("/channels/{channel_id}/webhooks");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `GET /guilds/{guild_id}/webhooks`.
    pub async fn get_guild_webhooks(&self, guild_id: Snowflake) -> Result<Vec<Webhook>> {
        let path = format!("/guilds/{guild_id}/webhooks");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `GET /webhooks/{webhook_id}`.
    pub async fn get_webhook(&self, webhook_id: Snowflake) -> Result<Webhook> {
        let path = format!("/webhooks/{webhook_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PATCH /webhooks/{webhook_id}`: name, avatar, channel.
    pub async fn modify_webhook(
        &self,
        webhook_id: Snowflake,
        body: &ModifyWebhook,
    ) -> Result<Webhook> {
        let path = format!("/webhooks/{webhook_id}");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /webhooks/{webhook_id}`.
    pub async fn delete_webhook(&self, webhook_id: Snowflake) -> Result<()> {
        let path = format!("/webhooks/{webhook_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /webhooks/{webhook_id}/{token}`.
    pub async fn get_webhook_with_token(
        &self,
        webhook_id: Snowflake,
        token: &str,
    ) -> Result<Webhook> {
        let path = format!("/webhooks/{webhook_id}/{}", segment(token));
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PATCH /webhooks/{webhook_id}/{token}`: name and avatar (a token cannot move it).
    pub async fn modify_webhook_with_token(
        &self,
        webhook_id: Snowflake,
        token: &str,
        body: &ModifyWebhook,
    ) -> Result<Webhook> {
        let path = format!("/webhooks/{webhook_id}/{}", segment(token));
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /webhooks/{webhook_id}/{token}`.
    pub async fn delete_webhook_with_token(
        &self,
        webhook_id: Snowflake,
        token: &str,
    ) -> Result<()> {
        let path = format!("/webhooks/{webhook_id}/{}", segment(token));
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `POST /webhooks/{webhook_id}/{token}?wait=true`: posts as the webhook and returns the
    /// stored message.
    pub async fn execute_webhook(
        &self,
        webhook_id: Snowflake,
        token: &str,
        body: &ExecuteWebhook,
    ) -> Result<Message> {
        let path = format!("/webhooks/{webhook_id}/{}", segment(token));
        let query = ExecuteWebhookQuery {
            wait: Some(true),
            thread_id: None,
        };
        self.call(Method::POST, &path, Some(&query), json(body))
            .await
    }

    /// `GET /webhooks/{webhook_id}/{token}/messages/{message_id}`.
    pub async fn get_webhook_message(
        &self,
        webhook_id: Snowflake,
        token: &str,
        message_id: Snowflake,
    ) -> Result<Message> {
        let path = format!(
            "/webhooks/{webhook_id}/{}/messages/{message_id}",
            segment(token)
        );
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PATCH /webhooks/{webhook_id}/{token}/messages/{message_id}`.
    pub async fn edit_webhook_message(
        &self,
        webhook_id: Snowflake,
        token: &str,
        message_id: Snowflake,
        body: &EditMessage,
    ) -> Result<Message> {
        let path = format!(
            "/webhooks/{webhook_id}/{}/messages/{message_id}",
            segment(token)
        );
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /webhooks/{webhook_id}/{token}/messages/{message_id}`.
    pub async fn delete_webhook_message(
        &self,
        webhook_id: Snowflake,
        token: &str,
        message_id: Snowflake,
    ) -> Result<()> {
        let path = format!(
            "/webhooks/{webhook_id}/{}/messages/{message_id}",
            segment(token)
        );
        self.call_empty(Method::DELETE, &path, Body::None).await
    }
}
