//! What the guild actor tests share.

use std::sync::Arc;

use enrichment_actors::events::EventBus;
use enrichment_actors::gateway::{GatewayConfig, Presences, SessionRegistry};
use enrichment_actors::guild::{GuildContext, GuildLimits};
use enrichment_actors::users::UserDirectory;
use enrichment_protocol::SnowflakeGenerator;
use enrichment_storage::Stores;
use enrichment_storage::blobs::memory::MemoryBlobStore;
use enrichment_storage::shared::memory::MemoryShared;

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
