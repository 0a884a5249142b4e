//! A guild actor writes under its node's ownership of the guild (`GuildOwnership`): while that
//! record is the guild's, its writes land; once the guild changed hands behind its back (another
//! node took it over), every write it tries is refused with a retryable 503 and nothing of it
//! is stored. A guild the node does not own gets no actor at all.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use enrichment_actors::gateway::SessionRegistry;
use enrichment_actors::guild::requests::{self, Caller};
use enrichment_actors::guild::{GuildLimits, create_guild};
use enrichment_actors::router::{GuildOwnership, GuildRouter, LocalGuildRouter};
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use enrichment_protocol::rest::{CreateGuild, HistoryAnchor};
use enrichment_protocol::{Snowflake, SnowflakeGenerator};
use enrichment_storage::{GuildClaim, GuildOwner, IdClaim, IdPair, Stores};

/// What the cluster layer would say: the record this node claimed, for the one guild it owns.
struct Claimed(GuildOwner);

#[async_trait]
impl GuildOwnership for Claimed {
    async fn owner(&self, guild_id: Snowflake) -> Option<GuildOwner> {
        (guild_id == self.0.guild_id).then(|| self.0.clone())
    }
}

async fn member(stores: &Stores, name: &str) -> (NodeIdentity, IdPair) {
    let me = NodeIdentity::new(name.to_owned(), GenerationId(1));
    match stores
        .nodes
        .claim_id_pair(&me, None, Duration::from_secs(60))
        .await
        .unwrap()
    {
        IdClaim::Claimed(lease) => (me, lease.pair),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_owner_writes_nothing_and_answers_a_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let user = Snowflake(1_000);
    let stores = common::stores_with_owner(dir.path(), user).await;
    let sessions = Arc::new(SessionRegistry::new());
    let ids = SnowflakeGenerator::new(1, 1);
    let ctx = common::context(&stores, &sessions, ids, GuildLimits::default());
    let body: CreateGuild =
        serde_json::from_value(serde_json::json!({ "name": "one guild" })).unwrap();
    let guild = create_guild(&ctx, user, body).await.unwrap();
    let unowned = create_guild(
        &ctx,
        user,
        serde_json::from_value(serde_json::json!({ "name": "another" })).unwrap(),
    )
    .await
    .unwrap();
    let channel = stores
        .guilds
        .load_guild(guild.id)
        .await
        .unwrap()
        .unwrap()
        .channels[0]
        .id;

    let (a, pa) = member(&stores, "node-a").await;
    let (b, pb) = member(&stores, "node-b").await;
    let GuildClaim::Claimed(owner) = stores.leases.claim_guild(guild.id, &a, pa).await.unwrap()
    else {
        panic!("node-a claims the guild");
    };
    let router = LocalGuildRouter::start(ctx.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(router.set_ownership(Arc::new(Claimed(owner.clone()))));
    let router: Arc<dyn GuildRouter> = router;

    let first = router
        .request(
            guild.id,
            Caller::new(user),
            common::create(channel, "while owner"),
        )
        .await
        .unwrap();

    // Behind the actor's back the guild passes to node-b (as when node-a was paused past its
    // lease): the actor still runs, with the old record.
    assert!(stores.leases.release_guild(&owner).await.unwrap());
    assert!(matches!(
        stores.leases.claim_guild(guild.id, &b, pb).await.unwrap(),
        GuildClaim::Claimed(_)
    ));
    let refused = router
        .request(
            guild.id,
            Caller::new(user),
            common::create(channel, "after the move"),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    let rename: requests::ModifyGuild = requests::ModifyGuild {
        body: serde_json::from_value(serde_json::json!({ "name": "renamed" })).unwrap(),
    };
    let refused = router
        .request(guild.id, Caller::new(user), rename)
        .await
        .unwrap_err();
    assert_eq!(refused.status, 503, "{:?}", refused.body);

    let stored = stores
        .messages
        .list_messages(channel, HistoryAnchor::Latest, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "only the owner's message: {stored:?}");
    assert_eq!(stored[0].id, first.id);
    let snapshot = stores.guilds.load_guild(guild.id).await.unwrap().unwrap();
    assert_eq!(snapshot.guild.unwrap().name, "one guild");

    // A guild this node never claimed gets no actor.
    let refused = router
        .request(
            unowned.id,
            Caller::new(user),
            common::create(channel, "elsewhere"),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert!(!router.is_running(unowned.id));
}
