//! Messages, reactions and pins.

use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{Message, PinList, User};
use enrichment_protocol::rest::{
    BulkDelete, CreateMessage, EditMessage, MessagesQuery, ReactionsQuery,
};
use reqwest::Method;

use crate::client::{Body, Client, json, segment};
use crate::error::Result;

impl Client {
    /// `GET /channels/{channel_id}/messages`: up to 100, newest first (or around/after an id).
    pub async fn get_channel_messages(
        &self,
        channel_id: Snowflake,
        query: &MessagesQuery,
    ) -> Result<Vec<Message>> {
        let path = format!("/channels/{channel_id}/messages");
        self.call(Method::GET, &path, Some(query), Body::None).await
    }

    /// `GET /channels/{channel_id}/messages/{message_id}`.
    pub async fn get_channel_message(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> Result<Message> {
        let path = format!("/channels/{channel_id}/messages/{message_id}");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `POST /channels/{channel_id}/messages`.
    pub async fn create_message(
        &self,
        channel_id: Snowflake,
        body: &CreateMessage,
    ) -> Result<Message> {
        let path = format!("/channels/{channel_id}/messages");
        self.call(Method::POST, &path, None, json(body)).await
    }

    /// `PATCH /channels/{channel_id}/messages/{message_id}`.
    pub async fn edit_message(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        body: &EditMessage,
    ) -> Result<Message> {
        let path = format!("/channels/{channel_id}/messages/{message_id}");
        self.call(Method::PATCH, &path, None, json(body)).await
    }

    /// `DELETE /channels/{channel_id}/messages/{message_id}`.
    pub async fn delete_message(&self, channel_id: Snowflake, message_id: Snowflake) -> Result<()> {
        let path = format!("/channels/{channel_id}/messages/{message_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `POST /channels/{channel_id}/messages/bulk-delete` (2–100 messages).
    pub async fn bulk_delete_messages(
        &self,
        channel_id: Snowflake,
        body: &BulkDelete,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/messages/bulk-delete");
        self.call_empty(Method::POST, &path, json(body)).await
    }

    /// `PUT .../reactions/{emoji}/@me`. `emoji` is a Unicode emoji or `name:id`.
    pub async fn create_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
    ) -> Result<()> {
        let path = format!(
            "/channels/{channel_id}/messages/{message_id}/reactions/{}/@me",
            segment(emoji)
        );
        self.call_empty(Method::PUT, &path, Body::None).await
    }

    /// `DELETE .../reactions/{emoji}/@me`.
    pub async fn delete_own_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
    ) -> Result<()> {
        let path = format!(
            "/channels/{channel_id}/messages/{message_id}/reactions/{}/@me",
            segment(emoji)
        );
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `DELETE .../reactions/{emoji}/{user_id}` (needs MANAGE_MESSAGES).
    pub async fn delete_user_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> Result<()> {
        let path = format!(
            "/channels/{channel_id}/messages/{message_id}/reactions/{}/{user_id}",
            segment(emoji)
        );
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET .../reactions/{emoji}`: who reacted.
    pub async fn get_reactions(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        query: &ReactionsQuery,
    ) -> Result<Vec<User>> {
        let path = format!(
            "/channels/{channel_id}/messages/{message_id}/reactions/{}",
            segment(emoji)
        );
        self.call(Method::GET, &path, Some(query), Body::None).await
    }

    /// `DELETE .../reactions`: every reaction on a message.
    pub async fn delete_all_reactions(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/messages/{message_id}/reactions");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `DELETE .../reactions/{emoji}`: every reaction with one emoji.
    pub async fn delete_all_reactions_for_emoji(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
    ) -> Result<()> {
        let path = format!(
            "/channels/{channel_id}/messages/{message_id}/reactions/{}",
            segment(emoji)
        );
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /channels/{channel_id}/messages/pins`: pinned messages with their pin times.
    pub async fn get_channel_pins(&self, channel_id: Snowflake) -> Result<PinList> {
        let path = format!("/channels/{channel_id}/messages/pins");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PUT /channels/{channel_id}/messages/pins/{message_id}`.
    pub async fn pin_message(&self, channel_id: Snowflake, message_id: Snowflake) -> Result<()> {
        let path = format!("/channels/{channel_id}/messages/pins/{message_id}");
        self.call_empty(Method::PUT, &path, Body::None).await
    }

    /// `DELETE /channels/{channel_id}/messages/pins/{message_id}`.
    pub async fn unpin_message(&self, channel_id: Snowflake, message_id: Snowflake) -> Result<()> {
        let path = format!("/channels/{channel_id}/messages/pins/{message_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }

    /// `GET /channels/{channel_id}/pins`: Discord's older pins route (bare messages).
    pub async fn get_pinned_messages(&self, channel_id: Snowflake) -> Result<Vec<Message>> {
        let path = format!("/channels/{channel_id}/pins");
        self.call(Method::GET, &path, None, Body::None).await
    }

    /// `PUT /channels/{channel_id}/pins/{message_id}` (older route).
    pub async fn pin_message_legacy(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/pins/{message_id}");
        self.call_empty(Method::PUT, &path, Body::None).await
    }

    /// `DELETE /channels/{channel_id}/pins/{message_id}` (older route).
    pub async fn unpin_message_legacy(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> Result<()> {
        let path = format!("/channels/{channel_id}/pins/{message_id}");
        self.call_empty(Method::DELETE, &path, Body::None).await
    }
}
