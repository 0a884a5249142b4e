//! Two guild actors for one guild that mint message ids with the same snowflake worker and
//! process id (two nodes sharing an id pair) and write to one store: every message one of them
//! acknowledged reads back as it was sent. When both mint the same id, the second create is
//! refused with a 500 instead of replacing the first.

// Test helpers panic on anything unexpected; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use enrichment_actors::gateway::SessionRegistry;
use enrichment_actors::guild::requests::Caller;
use enrichment_actors::guild::{GuildContext, GuildLimits, create_guild};
use enrichment_actors::router::{GuildRouter, LocalGuildRouter};
use enrichment_protocol::rest::CreateGuild;
use enrichment_protocol::{Snowflake, SnowflakeGenerator};
use enrichment_storage::Stores;

/// One "node": its own guild actors and its own generator, on the shared store.
async fn node(stores: &Stores) -> (Arc<GuildContext>, Arc<LocalGuildRouter>) {
    let sessions = Arc::new(SessionRegistry::new());
    // The same pair on both: the misconfiguration the id leases exist to prevent.
    let ids = SnowflakeGenerator::new(3, 4);
    let ctx = common::context(stores, &sessions, ids, GuildLimits::default());
    let router = LocalGuildRouter::start(ctx.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    (ctx, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_create_of_one_id_is_refused_and_no_acknowledged_message_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Snowflake(1_000);
    let stores = common::stores_with_owner(dir.path(), owner).await;
    let (ctx_a, router_a) = node(&stores).await;
    let (_ctx_b, router_b) = node(&stores).await;
    let body: CreateGuild =
        serde_json::from_value(serde_json::json!({ "name": "one guild" })).unwrap();
    let guild = create_guild(&ctx_a, owner, body).await.unwrap();
    let channel = stores
        .guilds
        .load_guild(guild.id)
        .await
        .unwrap()
        .unwrap()
        .channels[0]
        .id;

    let (mut acknowledged, mut refused) = (Vec::new(), 0);
    // Both actors mint from the start of a millisecond, so ids collide whenever both send in
    // the same millisecond; a few rounds make that certain on any machine.
    for round in 0..10 {
        let mut tasks = Vec::new();
        for (name, router) in [("a", &router_a), ("b", &router_b)] {
            for t in 0..4 {
                let router: Arc<dyn GuildRouter> = router.clone();
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for n in 0..25 {
                        let content = format!("{name}{t}-{round}-{n}");
                        let result = router
                            .request(
                                guild.id,
                                Caller::new(owner),
                                common::create(channel, &content),
                            )
                            .await;
                        out.push((content, result));
                    }
                    out
                }));
            }
        }
        for task in tasks {
            for (content, result) in task.await.unwrap() {
                match result {
                    Ok(message) => acknowledged.push((message.id, content)),
                    Err(e) => {
                        assert_eq!(e.status, 500, "{content}: {:?}", e.body);
                        refused += 1;
                    }
                }
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "the two actors never minted the same id");
    let ids: HashSet<Snowflake> = acknowledged.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), acknowledged.len(), "no id acknowledged twice");
    for (id, content) in &acknowledged {
        let stored = stores.messages.get_message(channel, *id).await.unwrap();
        assert_eq!(
            stored.map(|m| m.content).as_deref(),
            Some(content.as_str()),
            "message {id} reads back as acknowledged"
        );
    }
    router_a.stop();
    router_b.stop();
}
