//! Hot paths of the wire layer: permission computation (run on every message send and gateway
//! fan-out), id minting (every write), message JSON (every read and every dispatch), and the
//! gateway's frames: the shared dispatch prefix (once per event and encoding), the sequence
//! splice (once per receiver) and zlib-stream and zstd-stream compression (once per frame on such
//! connections).

use std::collections::HashMap;
use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use enrichment_protocol::gateway::{
    Encoding, ZlibStream, ZstdStream, dispatch_prefix, finish_dispatch,
};
use enrichment_protocol::models::{
    Embed, EmbedAuthor, EmbedField, EmbedFooter, Member, Message, User,
};
use enrichment_protocol::permissions::{
    MemberRef, OverwriteKind, OverwriteRef, RoleLookup, channel_permissions,
};
use enrichment_protocol::{Permissions, Snowflake, SnowflakeGenerator, Timestamp};

const GUILD_ID: Snowflake = Snowflake(81_384_788_765_712_384);

struct BenchGuild {
    roles: HashMap<Snowflake, Permissions>,
}

impl RoleLookup for BenchGuild {
    fn guild_id(&self) -> Snowflake {
        GUILD_ID
    }
    fn owner_id(&self) -> Snowflake {
        Snowflake(1)
    }
    fn role_permissions(&self, role_id: Snowflake) -> Option<Permissions> {
        self.roles.get(&role_id).copied()
    }
}

fn role(i: u64) -> Snowflake {
    Snowflake(GUILD_ID.0 + 1 + i)
}

fn bench_permissions(c: &mut Criterion) {
    // 20 roles plus @everyone; none is administrator, so the whole computation runs.
    let mut roles: HashMap<_, _> = (0..20)
        .map(|i| {
            (
                role(i),
                Permissions::from_bits_retain((1u64 << (i % 40)) | (1 << 6)),
            )
        })
        .collect();
    roles.insert(GUILD_ID, Permissions::DEFAULT_EVERYONE);
    let guild = BenchGuild { roles };
    let member_roles: Vec<Snowflake> = (0..20).step_by(3).map(role).collect();
    let user = Snowflake(175_928_847_299_117_063);
    // @everyone, 8 role overwrites (some for roles the member has), and the member's own.
    let mut overwrites = vec![OverwriteRef {
        id: GUILD_ID,
        kind: OverwriteKind::Role,
        allow: Permissions::empty(),
        deny: Permissions::SEND_MESSAGES,
    }];
    overwrites.extend((0..8).map(|i| OverwriteRef {
        id: role(i * 2),
        kind: OverwriteKind::Role,
        allow: if i % 2 == 0 {
            Permissions::SEND_MESSAGES
        } else {
            Permissions::empty()
        },
        deny: Permissions::ATTACH_FILES,
    }));
    overwrites.push(OverwriteRef {
        id: user,
        kind: OverwriteKind::Member,
        allow: Permissions::EMBED_LINKS,
        deny: Permissions::MENTION_EVERYONE,
    });
    let member = MemberRef {
        user_id: user,
        role_ids: &member_roles,
        timed_out: false,
    };

    c.bench_function("channel_permissions/20_roles_10_overwrites", |b| {
        b.iter(|| {
            channel_permissions(
                black_box(&guild),
                black_box(member),
                black_box(&overwrites),
                false,
            )
        })
    });
}

fn bench_snowflake(c: &mut Criterion) {
    let generator = SnowflakeGenerator::new(1, 0);
    c.bench_function("snowflake/next_id", |b| {
        b.iter(|| black_box(generator.next_id()))
    });
}

fn user(id: u64, name: &str) -> User {
    User {
        id: Snowflake(id),
        username: name.to_owned(),
        discriminator: "0".to_owned(),
        global_name: Some(format!("{name} (display)")),
        avatar: Some("a_1269e74af4df7417b13759eae50c83dc".to_owned()),
        bot: false,
        system: false,
        banner: None,
        accent_color: None,
        public_flags: 64,
        flags: 64,
        mfa_enabled: None,
        email: None,
        verified: None,
        locale: None,
        premium_type: None,
    }
}

fn sample_message() -> Message {
    let content = "Hey <@175928847299117064> and <@175928847299117065>, the release notes for \
                   this week are up: new permission overwrites UI, faster gateway resumes, and a \
                   fix for the embed footer bug. Please review before Friday!";
    Message {
        id: Snowflake(1_234_567_890_123_456_789),
        channel_id: Snowflake(1_234_567_890_123_456_000),
        guild_id: Some(GUILD_ID),
        author: user(175_928_847_299_117_063, "nelly"),
        content: content.to_owned(),
        timestamp: Timestamp::from_unix_ms(1_700_000_000_123),
        edited_timestamp: None,
        tts: false,
        mention_everyone: false,
        mentions: vec![
            user(175_928_847_299_117_064, "ada"),
            user(175_928_847_299_117_065, "grace"),
        ],
        mention_roles: vec![],
        attachments: vec![],
        embeds: vec![Embed {
            title: Some("Release notes, week 46".to_owned()),
            kind: Some("rich".to_owned()),
            description: Some("Everything that shipped this week, with links.".to_owned()),
            url: Some("https://example.invalid/releases/46".to_owned()),
            timestamp: Some(Timestamp::from_unix_ms(1_700_000_000_000)),
            color: Some(0x5865F2),
            footer: Some(EmbedFooter {
                text: "Enrichment".to_owned(),
                icon_url: None,
            }),
            author: Some(EmbedAuthor {
                name: "Release bot".to_owned(),
                url: None,
                icon_url: Some("https://example.invalid/bot.png".to_owned()),
            }),
            fields: vec![
                EmbedField {
                    name: "Gateway".to_owned(),
                    value: "Resume 2x faster".to_owned(),
                    inline: true,
                },
                EmbedField {
                    name: "UI".to_owned(),
                    value: "Overwrites editor".to_owned(),
                    inline: true,
                },
            ],
            image: None,
            thumbnail: None,
        }],
        reactions: vec![],
        nonce: None,
        pinned: false,
        kind: 0,
        flags: 0,
        message_reference: None,
        referenced_message: None,
        components: vec![],
        webhook_id: None,
    }
}

fn bench_message_json(c: &mut Criterion) {
    let message = sample_message();
    let json = serde_json::to_vec(&message).expect("sample message serializes");
    let mut group = c.benchmark_group("message_json");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&message)).expect("serializes"))
    });
    group.bench_function("decode", |b| {
        b.iter(|| serde_json::from_slice::<Message>(black_box(&json)).expect("deserializes"))
    });
    group.finish();
}

/// MESSAGE_CREATE's `d`: the message and its author's member object, as the gateway sends it.
#[derive(serde::Serialize)]
struct MessageCreate {
    #[serde(flatten)]
    message: Message,
    member: Member,
}

fn message_create(n: u64) -> MessageCreate {
    let mut message = sample_message();
    message.id = Snowflake(message.id.0 + (n << 22));
    message.content = format!("{} (#{n})", message.content);
    MessageCreate {
        member: Member {
            user: None,
            nick: Some("Nelly".to_owned()),
            avatar: None,
            roles: vec![role(1), role(4), role(7)],
            joined_at: Timestamp::from_unix_ms(1_650_000_000_000),
            premium_since: None,
            deaf: false,
            mute: false,
            flags: 0,
            pending: false,
            communication_disabled_until: None,
        },
        message,
    }
}

const ENCODINGS: [(Encoding, &str); 2] = [(Encoding::Json, "json"), (Encoding::MsgPack, "msgpack")];

fn bench_gateway_frames(c: &mut Criterion) {
    let d = message_create(0);
    let mut group = c.benchmark_group("gateway/dispatch_prefix");
    for (encoding, name) in ENCODINGS {
        let prefix = dispatch_prefix(encoding, "MESSAGE_CREATE", &d).expect("encodes");
        group.throughput(Throughput::Bytes(prefix.len() as u64));
        group.bench_function(format!("message_create/{name}"), |b| {
            b.iter(|| dispatch_prefix(encoding, "MESSAGE_CREATE", black_box(&d)).expect("encodes"))
        });
    }
    group.finish();

    // Per receiver: the shared prefix plus its own `s`, into a fresh buffer as the writer does.
    let mut group = c.benchmark_group("gateway/finish_dispatch");
    for (encoding, name) in ENCODINGS {
        let prefix = dispatch_prefix(encoding, "MESSAGE_CREATE", &d).expect("encodes");
        group.throughput(Throughput::Bytes(prefix.len() as u64));
        let mut seq = 1_000_000u64;
        group.bench_function(format!("message_create/{name}"), |b| {
            b.iter(|| {
                seq += 1;
                let mut out = BytesMut::with_capacity(prefix.len() + 21);
                finish_dispatch(encoding, black_box(&prefix), seq, &mut out);
                out
            })
        });
    }
    group.finish();

    // One deflate context per connection, as zlib-stream keeps it; the frames differ (ids,
    // content, seq) as consecutive MESSAGE_CREATEs do, so no frame is a copy of the previous.
    let frames: Vec<Vec<u8>> = (0..64u64)
        .map(|n| {
            let prefix = dispatch_prefix(Encoding::Json, "MESSAGE_CREATE", &message_create(n))
                .expect("encodes");
            let mut out = BytesMut::new();
            finish_dispatch(Encoding::Json, &prefix, 1000 + n, &mut out);
            out.to_vec()
        })
        .collect();
    let mut group = c.benchmark_group("gateway/zlib_stream");
    group.throughput(Throughput::Bytes(frames[0].len() as u64));
    let mut z = ZlibStream::new();
    let mut i = 0;
    group.bench_function("compress/message_create_json", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            z.compress(black_box(&frames[i]))
        })
    });
    // The first frame of a connection pays for the context.
    group.bench_function("compress/new_stream_message_create_json", |b| {
        b.iter(|| ZlibStream::new().compress(black_box(&frames[0])))
    });
    group.finish();

    // The same frames through one zstd stream, flushed per frame as zstd-stream sends them.
    let mut group = c.benchmark_group("gateway/zstd_stream");
    group.throughput(Throughput::Bytes(frames[0].len() as u64));
    let mut z = ZstdStream::new().expect("zstd context");
    let mut i = 0;
    group.bench_function("compress/message_create_json", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            z.compress(black_box(&frames[i])).expect("compresses")
        })
    });
    group.bench_function("compress/new_stream_message_create_json", |b| {
        b.iter(|| {
            ZstdStream::new()
                .expect("zstd context")
                .compress(black_box(&frames[0]))
                .expect("compresses")
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_permissions,
    bench_snowflake,
    bench_message_json,
    bench_gateway_frames
);
criterion_main!(benches);
