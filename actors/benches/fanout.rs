//! Fanout's hot paths: who may receive a guild event (recomputed after every visibility
//! change, cached otherwise) and the delivery of one event to every recipient session.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use enrichment_actors::events::{Audience, GuildEvent, MessageData};
use enrichment_actors::gateway::{Session, SessionInfo, SessionLimits};
use enrichment_actors::guild::GuildState;
use enrichment_actors::guild::fanout::{self, Fanout};
use enrichment_protocol::gateway::{Encoding, PresenceUpdate, intents};
use enrichment_protocol::models::{
    Channel, ChannelType, Guild, Member, Message, PermissionOverwrite, Role, User,
};
use enrichment_protocol::{Permissions, Snowflake, Timestamp};
use enrichment_storage::MemberRecord;

const GUILD: Snowflake = Snowflake(81_384_788_765_712_384);
const FIRST_USER: u64 = 175_928_847_299_117_063;

fn id(n: u64) -> Snowflake {
    Snowflake(GUILD.0 + n)
}

/// Roles: 1 moderators, 2 muted, 3..=7 five teams, 8 bots.
fn role_id(n: u64) -> Snowflake {
    id(100 + n)
}

/// Channels: `general` (everyone), `staff` (moderators only), one per team.
fn channel_id(n: u64) -> Snowflake {
    id(1000 + n)
}

const GENERAL: u64 = 0;
const STAFF: u64 = 1;
const TEAM_A: u64 = 2;

fn role(n: u64, name: &str, permissions: Permissions) -> Role {
    Role {
        id: if n == 0 { GUILD } else { role_id(n) },
        name: name.to_owned(),
        color: 0,
        hoist: false,
        icon: None,
        unicode_emoji: None,
        position: n as i32,
        permissions,
        managed: false,
        mentionable: false,
        tags: None,
        flags: 0,
    }
}

fn overwrite(
    id: Snowflake,
    member: bool,
    allow: Permissions,
    deny: Permissions,
) -> PermissionOverwrite {
    PermissionOverwrite {
        id,
        kind: u8::from(member),
        allow,
        deny,
    }
}

fn channel(n: u64, name: &str, permission_overwrites: Vec<PermissionOverwrite>) -> Channel {
    Channel {
        id: channel_id(n),
        kind: ChannelType::GUILD_TEXT,
        guild_id: Some(GUILD),
        position: n as i32,
        permission_overwrites,
        name: name.to_owned(),
        topic: None,
        nsfw: false,
        last_message_id: None,
        bitrate: None,
        user_limit: None,
        rate_limit_per_user: 0,
        parent_id: None,
        last_pin_timestamp: None,
        flags: 0,
        private: None,
    }
}

fn user_id(i: u64) -> Snowflake {
    Snowflake(FIRST_USER + i)
}

/// A guild of `members`: everyone has a team, one in seven moderates, one in eleven is muted,
/// one in fifty is a bot. Channels carry role and member overwrites.
fn guild_state(members: u64) -> GuildState {
    let view = Permissions::VIEW_CHANNEL;
    let send = Permissions::SEND_MESSAGES;
    let mut roles = vec![
        role(0, "@everyone", Permissions::DEFAULT_EVERYONE),
        role(
            1,
            "moderators",
            Permissions::MANAGE_CHANNELS | Permissions::MANAGE_MESSAGES | Permissions::KICK_MEMBERS,
        ),
        role(2, "muted", Permissions::empty()),
        role(8, "bots", Permissions::EMBED_LINKS),
    ];
    roles.extend((3..=7).map(|n| role(n, &format!("team {n}"), Permissions::ATTACH_FILES)));
    let mut channels = vec![
        channel(
            GENERAL,
            "general",
            vec![overwrite(role_id(2), false, Permissions::empty(), send)],
        ),
        channel(
            STAFF,
            "staff",
            vec![
                overwrite(GUILD, false, Permissions::empty(), view),
                overwrite(role_id(1), false, view, Permissions::empty()),
                overwrite(user_id(3), true, view, Permissions::empty()),
                overwrite(user_id(21), true, Permissions::empty(), view),
            ],
        ),
    ];
    channels.extend((3..=7).map(|team| {
        channel(
            TEAM_A + team - 3,
            &format!("team-{team}"),
            vec![
                overwrite(GUILD, false, Permissions::empty(), view),
                overwrite(role_id(team), false, view, Permissions::empty()),
                overwrite(role_id(1), false, view, Permissions::empty()),
                overwrite(role_id(2), false, Permissions::empty(), send),
            ],
        )
    }));
    let members = (0..members)
        .map(|i| {
            let mut r = vec![role_id(3 + i % 5)];
            if i % 7 == 0 {
                r.push(role_id(1));
            }
            if i % 11 == 0 {
                r.push(role_id(2));
            }
            if i % 50 == 49 {
                r.push(role_id(8));
            }
            let m = MemberRecord {
                guild_id: GUILD,
                user_id: user_id(i),
                nick: None,
                avatar: None,
                roles: r,
                joined_at: Timestamp::from_unix_ms(1_650_000_000_000),
                deaf: false,
                mute: false,
                flags: 0,
                communication_disabled_until: None,
            };
            (m.user_id, m)
        })
        .collect();
    GuildState {
        guild: Guild::new(GUILD, "Bench", user_id(0)),
        roles: roles
            .into_iter()
            .map(|r| (r.id, r))
            .collect::<BTreeMap<_, _>>(),
        channels: channels.into_iter().map(|c| (c.id, c)).collect(),
        members,
        bans: HashMap::new(),
        invites: HashMap::new(),
        webhooks: HashMap::new(),
        emojis: BTreeMap::new(),
        private: None,
    }
}

/// One session per member: one in ten MessagePack, bots (one in fifty) without the message
/// content intent. Small replay caps keep 10,000 sessions' buffers bounded across iterations.
fn sessions(members: u64) -> Vec<Arc<Session>> {
    let limits = SessionLimits {
        replay_frames: 64,
        ..SessionLimits::default()
    };
    (0..members)
        .map(|i| {
            let bot = i % 50 == 49;
            let mut wanted = intents::GUILDS | intents::GUILD_MESSAGES;
            if !bot {
                wanted |= intents::MESSAGE_CONTENT;
            }
            Arc::new(Session::new(
                SessionInfo {
                    session_id: format!("{i:016x}"),
                    user_id: user_id(i),
                    bot,
                    intents: wanted,
                    encoding: if i % 10 == 9 {
                        Encoding::MsgPack
                    } else {
                        Encoding::Json
                    },
                    shard: None,
                    large_threshold: 50,
                },
                i + 1,
                limits,
                PresenceUpdate::default(),
            ))
        })
        .collect()
}

fn fanout(members: u64) -> Fanout {
    let mut f = Fanout::default();
    for s in sessions(members) {
        f.add(s);
    }
    f
}

fn bench_recipients(c: &mut Criterion) {
    let now = Timestamp::from_unix_ms(1_700_000_000_000);
    let mut group = c.benchmark_group("fanout/recipients");
    for members in [1_000u64, 10_000] {
        let state = guild_state(members);
        let mut f = fanout(members);
        // Throughput counts the members examined, not the recipients found.
        group.throughput(Throughput::Elements(members));
        for (name, audience) in [
            ("guild", Audience::Guild),
            ("channel_general", Audience::Channel(channel_id(GENERAL))),
            ("channel_team", Audience::Channel(channel_id(TEAM_A))),
            ("channel_staff", Audience::Channel(channel_id(STAFF))),
        ] {
            // After a visibility change: the list is recomputed from permissions.
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/recompute"), members),
                &audience,
                |b, audience| {
                    b.iter(|| {
                        f.invalidate();
                        f.recipients(&state, black_box(audience), now)
                    })
                },
            );
        }
    }
    group.finish();

    // Every other event: the cached list (a clone of an `Arc`, whatever the guild's size).
    let mut group = c.benchmark_group("fanout/recipients_cached");
    for members in [1_000u64, 10_000] {
        let state = guild_state(members);
        let mut f = fanout(members);
        let audience = Audience::Channel(channel_id(GENERAL));
        f.recipients(&state, &audience, now);
        group.bench_with_input(
            BenchmarkId::new("channel_general", members),
            &audience,
            |b, audience| b.iter(|| f.recipients(&state, black_box(audience), now)),
        );
    }
    group.finish();
}

fn message_create() -> GuildEvent {
    let author = User {
        global_name: Some("Nelly".into()),
        avatar: Some("a_1269e74af4df7417b13759eae50c83dc".into()),
        ..User::new(user_id(7), "nelly")
    };
    let message = Message {
        id: Snowflake(1_234_567_890_123_456_789),
        channel_id: channel_id(GENERAL),
        guild_id: Some(GUILD),
        author,
        content: "Hey <@175928847299117064>, the release notes for this week are up: new \
                  permission overwrites UI, faster gateway resumes. Please review before Friday!"
            .into(),
        timestamp: Timestamp::from_unix_ms(1_700_000_000_123),
        edited_timestamp: None,
        tts: false,
        mention_everyone: false,
        mentions: vec![User::new(user_id(1), "ada")],
        mention_roles: Vec::new(),
        attachments: Vec::new(),
        embeds: Vec::new(),
        reactions: Vec::new(),
        nonce: None,
        pinned: false,
        kind: 0,
        flags: 0,
        message_reference: None,
        referenced_message: None,
        components: Vec::new(),
        webhook_id: None,
    };
    GuildEvent::MessageCreate(MessageData {
        message,
        member: Some(Member {
            user: None,
            nick: None,
            avatar: None,
            roles: vec![role_id(1), role_id(5)],
            joined_at: Timestamp::from_unix_ms(1_650_000_000_000),
            premium_since: None,
            deaf: false,
            mute: false,
            flags: 0,
            pending: false,
            communication_disabled_until: None,
        }),
    })
}

fn bench_deliver(c: &mut Criterion) {
    let members = 10_000u64;
    let state = guild_state(members);
    let mut f = fanout(members);
    let recipients = f.recipients(
        &state,
        &Audience::Channel(channel_id(GENERAL)),
        Timestamp::from_unix_ms(1_700_000_000_000),
    );
    assert_eq!(recipients.len() as u64, members);
    let event = message_create();
    let mut group = c.benchmark_group("fanout/deliver");
    group.throughput(Throughput::Elements(recipients.len() as u64));
    // Encodes the event once per (encoding, content variant), then appends the shared bytes
    // to every session's replay and outbox.
    group.bench_function("message_create/10000_sessions", |b| {
        b.iter(|| fanout::deliver(black_box(&recipients), Snowflake(1), black_box(&event)))
    });
    group.finish();
}

criterion_group!(benches, bench_recipients, bench_deliver);
criterion_main!(benches);
