//! Hot paths of the wire layer: permission computation (run on every message send and gateway
//! fan-out), id minting (every write) and message JSON (every read and every dispatch).

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use enrichment_protocol::models::{Embed, EmbedAuthor, EmbedField, EmbedFooter, Message, User};
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

criterion_group!(
    benches,
    bench_permissions,
    bench_snowflake,
    bench_message_json
);
criterion_main!(benches);
