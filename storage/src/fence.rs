//! Writes fenced by a guild's ownership: how a deposed owner is kept from writing.
//!
//! In a cluster a guild has one writer, the actor on the node that holds its ownership record
//! ([`LeaseStore`]). A node can lose that record without knowing it yet: its process was
//! paused past its id lease, or it was cut off from the store while another node took the
//! guild over. Its actor may then still try to write. Every write of a guild's actor
//! therefore carries the ownership it was made under (a [`GuildOwner`]: node, generation,
//! epoch), and the store refuses it with [`StoreError::Fenced`] unless that is still the
//! guild's live record.
//!
//! [`Fenced`] is the guild and message store a fenced actor writes through: reads go straight
//! to the backend, writes to the backend's [`FencedWrites`]. What each backend guarantees:
//! - **PostgreSQL** checks the record inside the write's own transaction and share-locks it
//!   (`FOR SHARE`), so a claim or release waits for the write to commit: a write commits only
//!   under a live record, and the next owner, which loads the guild after its claim, sees it.
//!   Message creates keep their group commit: the check is part of the batch's one statement.
//! - **The embedded store and ScyllaDB** check the record just before the write
//!   ([`ChecksBeforeWriting`]). The embedded store has a single process, so nothing can take
//!   the guild over in between. On ScyllaDB the check and the write are separate requests, so
//!   a write can still land after the record moved on if the owner stalls between the two
//!   (a pause longer than what is left of its id lease). What bounds that window there is the
//!   owner's own fail-stop: a node whose id lease renewal is older than the lease minus a
//!   margin stops its guild actors before the store lets the lease go (see the node's `ids`).

use std::sync::Arc;

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use enrichment_protocol::models::AuditLogEntry;
use enrichment_protocol::rest::{AuditLogFilter, HistoryAnchor};

use crate::{
    GuildOwner, GuildSnapshot, GuildStore, GuildWrite, InviteRecord, LeaseStore, MessageRecord,
    MessageStore, PinnedMessage, ReactionCount, StoreError, StoreResult,
};

/// The error for a write refused because `owner` is not the guild's live record.
pub fn deposed(owner: &GuildOwner) -> StoreError {
    StoreError::Fenced(format!(
        "guild {} is no longer owned by {} under epoch {}",
        owner.guild_id, owner.node, owner.epoch
    ))
}

/// A backend's guild and message writes, each made only while `fence` is the guild's live
/// ownership record. Same contracts as the unfenced methods of [`GuildStore`] and
/// [`MessageStore`], plus [`StoreError::Fenced`] (with nothing written) when it is not.
#[async_trait]
pub trait FencedWrites: GuildStore + MessageStore {
    async fn write_guild_fenced(
        &self,
        fence: &GuildOwner,
        guild_id: Snowflake,
        writes: Vec<GuildWrite>,
    ) -> StoreResult<()>;
    async fn create_message_fenced(
        &self,
        fence: &GuildOwner,
        message: &MessageRecord,
    ) -> StoreResult<()>;
    async fn update_message_fenced(
        &self,
        fence: &GuildOwner,
        message: &MessageRecord,
    ) -> StoreResult<bool>;
    async fn delete_messages_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>>;
    async fn delete_channel_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
    ) -> StoreResult<()>;
    async fn add_reaction_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool>;
    async fn remove_reaction_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool>;
    async fn remove_reactions_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()>;
    async fn set_pinned_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool>;
}

/// A backend that fences by reading the ownership record just before each write, for
/// backends where the check cannot share the write's transaction (see the module docs).
pub trait ChecksBeforeWriting: GuildStore + MessageStore + LeaseStore {}

/// Whether `fence` is the guild's live ownership record right now.
async fn check(store: &impl LeaseStore, fence: &GuildOwner) -> StoreResult<()> {
    match store.guild_owner(fence.guild_id).await? {
        Some(current) if current == *fence => Ok(()),
        _ => Err(deposed(fence)),
    }
}

#[async_trait]
impl<S: ChecksBeforeWriting> FencedWrites for S {
    async fn write_guild_fenced(
        &self,
        fence: &GuildOwner,
        guild_id: Snowflake,
        writes: Vec<GuildWrite>,
    ) -> StoreResult<()> {
        check(self, fence).await?;
        self.write_guild(guild_id, writes).await
    }
    async fn create_message_fenced(
        &self,
        fence: &GuildOwner,
        message: &MessageRecord,
    ) -> StoreResult<()> {
        check(self, fence).await?;
        self.create_message(message).await
    }
    async fn update_message_fenced(
        &self,
        fence: &GuildOwner,
        message: &MessageRecord,
    ) -> StoreResult<bool> {
        check(self, fence).await?;
        self.update_message(message).await
    }
    async fn delete_messages_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>> {
        check(self, fence).await?;
        self.delete_messages(channel_id, ids).await
    }
    async fn delete_channel_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
    ) -> StoreResult<()> {
        check(self, fence).await?;
        self.delete_channel(channel_id).await
    }
    async fn add_reaction_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        check(self, fence).await?;
        self.add_reaction(channel_id, message_id, emoji, user_id)
            .await
    }
    async fn remove_reaction_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        check(self, fence).await?;
        self.remove_reaction(channel_id, message_id, emoji, user_id)
            .await
    }
    async fn remove_reactions_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()> {
        check(self, fence).await?;
        self.remove_reactions(channel_id, message_id, emoji).await
    }
    async fn set_pinned_fenced(
        &self,
        fence: &GuildOwner,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool> {
        check(self, fence).await?;
        self.set_pinned(channel_id, message_id, pinned).await
    }
}

/// The guild and message store of one guild's owner: see the module docs.
pub struct Fenced<S> {
    store: Arc<S>,
    fence: GuildOwner,
}

impl<S> std::fmt::Debug for Fenced<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fenced")
            .field("fence", &self.fence)
            .finish()
    }
}

impl<S: FencedWrites> Fenced<S> {
    /// Both stores of a [`crate::FencedStores`], fenced by `fence`.
    pub fn stores(store: Arc<S>, fence: GuildOwner) -> crate::FencedStores {
        let fenced = Arc::new(Fenced { store, fence });
        crate::FencedStores {
            guilds: fenced.clone(),
            messages: fenced,
        }
    }
}

#[async_trait]
impl<S: FencedWrites> GuildStore for Fenced<S> {
    async fn write_guild(&self, guild_id: Snowflake, writes: Vec<GuildWrite>) -> StoreResult<()> {
        self.store
            .write_guild_fenced(&self.fence, guild_id, writes)
            .await
    }
    async fn load_guild(&self, guild_id: Snowflake) -> StoreResult<Option<GuildSnapshot>> {
        self.store.load_guild(guild_id).await
    }
    async fn user_guilds(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        self.store.user_guilds(user_id).await
    }
    async fn channel_guild(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.store.channel_guild(channel_id).await
    }
    async fn get_invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        self.store.get_invite(code).await
    }
    async fn webhook_guild(&self, webhook_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.store.webhook_guild(webhook_id).await
    }
    async fn user_private_channels(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        self.store.user_private_channels(user_id).await
    }
    async fn dm_channel(&self, a: Snowflake, b: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.store.dm_channel(a, b).await
    }
    async fn audit_log(
        &self,
        guild_id: Snowflake,
        filter: &AuditLogFilter,
    ) -> StoreResult<Vec<AuditLogEntry>> {
        self.store.audit_log(guild_id, filter).await
    }
}

#[async_trait]
impl<S: FencedWrites> MessageStore for Fenced<S> {
    async fn create_message(&self, message: &MessageRecord) -> StoreResult<()> {
        self.store.create_message_fenced(&self.fence, message).await
    }
    async fn update_message(&self, message: &MessageRecord) -> StoreResult<bool> {
        self.store.update_message_fenced(&self.fence, message).await
    }
    async fn get_message(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        self.store.get_message(channel_id, message_id).await
    }
    async fn last_message_ids(
        &self,
        channel_ids: &[Snowflake],
    ) -> StoreResult<Vec<Option<Snowflake>>> {
        self.store.last_message_ids(channel_ids).await
    }
    async fn list_messages(
        &self,
        channel_id: Snowflake,
        anchor: HistoryAnchor,
        limit: usize,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.store.list_messages(channel_id, anchor, limit).await
    }
    async fn delete_messages(
        &self,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>> {
        self.store
            .delete_messages_fenced(&self.fence, channel_id, ids)
            .await
    }
    async fn delete_channel(&self, channel_id: Snowflake) -> StoreResult<()> {
        self.store
            .delete_channel_fenced(&self.fence, channel_id)
            .await
    }
    async fn add_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        self.store
            .add_reaction_fenced(&self.fence, channel_id, message_id, emoji, user_id)
            .await
    }
    async fn remove_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        self.store
            .remove_reaction_fenced(&self.fence, channel_id, message_id, emoji, user_id)
            .await
    }
    async fn remove_reactions(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()> {
        self.store
            .remove_reactions_fenced(&self.fence, channel_id, message_id, emoji)
            .await
    }
    async fn reaction_users(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        after: Snowflake,
        limit: usize,
    ) -> StoreResult<Vec<Snowflake>> {
        self.store
            .reaction_users(channel_id, message_id, emoji, after, limit)
            .await
    }
    async fn reaction_counts(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        viewer: Snowflake,
    ) -> StoreResult<Vec<ReactionCount>> {
        self.store
            .reaction_counts(channel_id, message_id, viewer)
            .await
    }
    async fn reaction_counts_many(
        &self,
        channel_id: Snowflake,
        message_ids: &[Snowflake],
        viewer: Snowflake,
    ) -> StoreResult<Vec<Vec<ReactionCount>>> {
        self.store
            .reaction_counts_many(channel_id, message_ids, viewer)
            .await
    }
    async fn set_pinned(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool> {
        self.store
            .set_pinned_fenced(&self.fence, channel_id, message_id, pinned)
            .await
    }
    async fn list_pins(&self, channel_id: Snowflake) -> StoreResult<Vec<PinnedMessage>> {
        self.store.list_pins(channel_id).await
    }
}
