//! What the guild actor tests share.

// Each test crate uses its own part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use enrichment_actors::events::EventBus;
use enrichment_actors::gateway::{GatewayConfig, Presences, SessionRegistry};
use enrichment_actors::guild::requests::CreateMessage;
use enrichment_actors::guild::{GuildContext, GuildLimits};
use enrichment_actors::users::UserDirectory;
use enrichment_protocol::models::User;
use enrichment_protocol::{Snowflake, SnowflakeGenerator};
use enrichment_storage::Stores;
use enrichment_storage::blobs::memory::MemoryBlobStore;
use enrichment_storage::embedded::EmbeddedStore;
use enrichment_storage::shared::memory::MemoryShared;
use enrichment_storage::testsuite::credentials;

/// The context of guild actors on `stores`, whose recipients are the sessions of `sessions`,
/// with presence and blobs in this process.
pub fn context(
    stores: &Stores,
    sessions: &Arc<SessionRegistry>,
    ids: SnowflakeGenerator,
    limits: GuildLimits,
) -> Arc<GuildContext> {
    Arc::new(GuildContext {
        stores: stores.clone(),
        users: UserDirectory::new(stores.users.clone()),
        bus: EventBus::new(64),
        recipients: sessions.clone(),
        presences: Arc::new(Presences {
            registry: sessions.clone(),
            shared: Arc::new(MemoryShared::new()),
        }),
        ids: Arc::new(ids),
        limits,
        member_chunk_size: GatewayConfig::default().member_chunk_size,
        blobs: Arc::new(MemoryBlobStore::default()),
    })
}

/// An embedded store in `dir` with one account, `user`, named "owner".
pub async fn stores_with_owner(dir: &std::path::Path, user: Snowflake) -> Stores {
    let stores = Arc::new(EmbeddedStore::open(dir).unwrap()).stores();
    stores
        .users
        .create_user(&User::new(user, "owner"), &credentials(user))
        .await
        .unwrap();
    stores
}

/// A plain text message request.
pub fn create(channel: Snowflake, content: &str) -> CreateMessage {
    let body = serde_json::from_value(serde_json::json!({ "content": content })).unwrap();
    CreateMessage::text(channel, body)
}
