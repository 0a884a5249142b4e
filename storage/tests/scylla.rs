//! The ScyllaDB store on the wire: against an in-memory CQL server, the driver connects, the
//! schema DDL is accepted, every statement prepares, and rows written through the store read
//! back. The server honours no clustering ranges, ordering or lightweight transactions, so
//! these checks stick to whole-row and whole-partition reads; the behaviour of the store is
//! proven by the conformance suite against a real ScyllaDB (`scylla_conformance`).

// A store test: it calls the write methods that the rest of the workspace reaches only
// through the guild actor's commit path.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use enrichment_protocol::rest::HistoryAnchor;
use enrichment_storage::scylla::{CqlConsistency, Replication, ScyllaOptions, ScyllaStore, schema};
use enrichment_storage::testsuite::{
    channel, credentials, dm, emoji, fresh_id, group_dm, guild, member, msg, user,
};
use enrichment_storage::{
    EmojiRecord, GuildSnapshot, GuildWrite, RelationshipRecord, SigningKeyRecord, StoreError,
};
use enrichment_testkit::CqlServer;

fn options(server: &CqlServer) -> ScyllaOptions {
    ScyllaOptions {
        nodes: vec![server.addr().to_string()],
        keyspace: "enrichment_smoke".into(),
        replication: Replication::Simple,
        replication_factor: 1,
        consistency: CqlConsistency::LocalQuorum,
        local_datacenter: None,
        connect_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn schema_statements_and_round_trips_over_the_wire() {
    let server = CqlServer::start().expect("start the CQL server");
    let opts = options(&server);
    assert_eq!(
        ScyllaStore::migrate(&opts).await.expect("migrate"),
        schema::VERSION
    );
    // Migrating again changes nothing.
    ScyllaStore::migrate(&opts).await.expect("migrate again");
    let store = ScyllaStore::connect(opts)
        .await
        .expect("connect and prepare");
    let s = store.stores();

    let alice = user(fresh_id(), "alice", Some("alice@example.com"));
    let creds = credentials(alice.id);
    s.users
        .create_user(&alice, &creds)
        .await
        .expect("create user");
    assert_eq!(
        s.users.get_user(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.users.get_credentials(alice.id).await.unwrap(),
        Some(creds)
    );
    assert_eq!(
        s.users.find_user_by_login("ALICE").await.unwrap(),
        Some(alice.id)
    );
    assert_eq!(
        s.users.get_users(&[fresh_id(), alice.id]).await.unwrap(),
        vec![alice.clone()]
    );

    let guild = guild(fresh_id(), alice.id, Vec::new());
    let channel = channel(fresh_id(), guild.id, "general");
    let member = member(guild.id, alice.id);
    let wave = emoji(fresh_id(), guild.id, "wave", Vec::new(), false);
    s.guilds
        .write_guild(
            guild.id,
            vec![
                GuildWrite::PutGuild(guild.clone()),
                GuildWrite::PutChannel(channel.clone()),
                GuildWrite::PutMember(member.clone()),
                GuildWrite::PutEmoji(wave.clone()),
            ],
        )
        .await
        .expect("guild batch");
    let snap = s.guilds.load_guild(guild.id).await.unwrap().expect("guild");
    assert_eq!(snap.guild.as_ref(), Some(&guild));
    assert_eq!(snap.channels, vec![channel.clone()]);
    assert_eq!(snap.members, vec![member]);
    assert_eq!(snap.emojis, vec![wave.clone()]);
    // An emoji replaced (renamed, given a role) and another added, then the first deleted.
    let waving = EmojiRecord {
        name: "waving".into(),
        roles: vec![guild.id],
        ..wave.clone()
    };
    let dance = emoji(fresh_id(), guild.id, "dance", Vec::new(), true);
    s.guilds
        .write_guild(
            guild.id,
            vec![
                GuildWrite::PutEmoji(waving.clone()),
                GuildWrite::PutEmoji(dance.clone()),
            ],
        )
        .await
        .expect("emoji batch");
    let mut emojis = s.guilds.load_guild(guild.id).await.unwrap().unwrap().emojis;
    emojis.sort_by_key(|e| e.id);
    assert_eq!(emojis, vec![waving, dance.clone()]);
    s.guilds
        .write_guild(
            guild.id,
            vec![GuildWrite::DeleteEmoji {
                guild_id: guild.id,
                emoji_id: wave.id,
            }],
        )
        .await
        .expect("emoji deletion");
    assert_eq!(
        s.guilds.load_guild(guild.id).await.unwrap().unwrap().emojis,
        vec![dance]
    );
    assert_eq!(
        s.guilds.user_guilds(alice.id).await.unwrap(),
        vec![guild.id]
    );
    assert_eq!(
        s.guilds.channel_guild(channel.id).await.unwrap(),
        Some(guild.id)
    );

    let m = msg(channel.id, fresh_id(), "hello over CQL");
    s.messages.create_message(&m).await.expect("create message");
    assert_eq!(
        s.messages.get_message(m.channel_id, m.id).await.unwrap(),
        Some(m.clone())
    );
    let page = s
        .messages
        .list_messages(m.channel_id, HistoryAnchor::Latest, 50)
        .await
        .unwrap();
    assert!(page.contains(&m), "{page:?}");
    assert_eq!(
        s.messages
            .last_message_ids(&[m.channel_id, fresh_id()])
            .await
            .unwrap(),
        vec![Some(m.id), None]
    );
    assert!(
        s.messages
            .add_reaction(m.channel_id, m.id, "👍", alice.id)
            .await
            .unwrap()
    );
    let counts = s
        .messages
        .reaction_counts(m.channel_id, m.id, alice.id)
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].count, counts[0].me), (1, true));
    assert_eq!(
        s.messages
            .delete_messages(m.channel_id, &[m.id])
            .await
            .unwrap(),
        vec![m.id]
    );
    assert_eq!(
        s.messages.get_message(m.channel_id, m.id).await.unwrap(),
        None
    );

    let key = SigningKeyRecord {
        kid: "k1".into(),
        private_pem: "-----BEGIN PRIVATE KEY-----\n...".into(),
        created_at: enrichment_protocol::Timestamp::from_unix_ms(1_700_000_000_000),
        retired: false,
    };
    assert!(s.keys.insert_signing_key(&key).await.unwrap());
    assert_eq!(s.keys.signing_keys().await.unwrap(), vec![key]);
}

#[tokio::test]
async fn private_channels_and_relationships_over_the_wire() {
    let server = CqlServer::start().expect("start the CQL server");
    let opts = options(&server);
    ScyllaStore::migrate(&opts).await.expect("migrate");
    let s = ScyllaStore::connect(opts)
        .await
        .expect("connect and prepare")
        .stores();

    let (a, b, c) = (fresh_id(), fresh_id(), fresh_id());
    let direct = dm(fresh_id(), b, a);
    let group = group_dm(fresh_id(), vec![a, b, c]);
    for channel in [&direct, &group] {
        s.guilds
            .write_guild(
                channel.id,
                vec![
                    GuildWrite::PutPrivateChannel(channel.clone()),
                    GuildWrite::OpenPrivateChannel {
                        channel_id: channel.id,
                        user_id: a,
                    },
                ],
            )
            .await
            .expect("private channel batch");
        assert_eq!(
            s.guilds.load_guild(channel.id).await.unwrap(),
            Some(GuildSnapshot {
                private: Some(channel.clone()),
                ..GuildSnapshot::default()
            })
        );
        assert_eq!(
            s.guilds.channel_guild(channel.id).await.unwrap(),
            Some(channel.id)
        );
    }
    assert_eq!(s.guilds.dm_channel(a, b).await.unwrap(), Some(direct.id));
    assert_eq!(s.guilds.dm_channel(b, a).await.unwrap(), Some(direct.id));
    assert_eq!(s.guilds.dm_channel(b, c).await.unwrap(), None);
    assert_eq!(
        s.guilds.user_private_channels(a).await.unwrap(),
        vec![direct.id, group.id]
    );
    // The DM put again under its own id: its pair's claim is its own.
    s.guilds
        .write_guild(
            direct.id,
            vec![
                GuildWrite::PutPrivateChannel(direct.clone()),
                GuildWrite::ClosePrivateChannel {
                    channel_id: direct.id,
                    user_id: a,
                },
            ],
        )
        .await
        .expect("the same DM again");
    assert_eq!(
        s.guilds.user_private_channels(a).await.unwrap(),
        vec![group.id]
    );
    assert_eq!(s.guilds.load_guild(fresh_id()).await.unwrap(), None);

    let block = |target, ms| RelationshipRecord {
        user_id: a,
        target_id: target,
        kind: RelationshipRecord::BLOCKED,
        since: enrichment_protocol::Timestamp::from_unix_ms(ms),
    };
    s.users
        .put_relationship(&block(c, 1_700_000_000_000))
        .await
        .unwrap();
    s.users
        .put_relationship(&block(b, 1_700_000_000_001))
        .await
        .unwrap();
    s.users
        .put_relationship(&block(b, 1_700_000_000_002))
        .await
        .unwrap();
    assert_eq!(
        s.users.relationships(a).await.unwrap(),
        vec![block(b, 1_700_000_000_002), block(c, 1_700_000_000_000)]
    );
    // The highest target: this server reads a clustered row by key as the rows from that key
    // on, so a deleted row below another would still seem to be there.
    assert!(s.users.delete_relationship(a, c).await.unwrap());
    assert!(!s.users.delete_relationship(a, c).await.unwrap());
    assert_eq!(
        s.users.relationships(a).await.unwrap(),
        vec![block(b, 1_700_000_000_002)]
    );
}

#[tokio::test]
async fn an_unreachable_cluster_fails_naming_the_setting() {
    let port = enrichment_testkit::free_port().unwrap();
    let opts = ScyllaOptions {
        nodes: vec![format!("127.0.0.1:{port}")],
        connect_timeout: Duration::from_secs(1),
        ..options(&CqlServer::start().unwrap())
    };
    let err = ScyllaStore::connect(opts)
        .await
        .expect_err("nothing listens");
    let StoreError::Backend(msg) = err else {
        panic!("unexpected error kind");
    };
    assert!(msg.contains("ENRICHMENT_SCYLLA_NODES"), "{msg}");
}
