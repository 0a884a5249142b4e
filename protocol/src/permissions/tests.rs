//! Discord's documented permission rules as tables, plus a property test against a reference
//! implementation written separately over plain `u64`, so a slip in either shows up as a mismatch.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const GUILD: Snowflake = Snowflake(1_000);
const OWNER: Snowflake = Snowflake(2_000);
const USER: Snowflake = Snowflake(2_001);
const OTHER_USER: Snowflake = Snowflake(2_002);
const MODS: Snowflake = Snowflake(1_001);
const HELPERS: Snowflake = Snowflake(1_002);
const MUTED: Snowflake = Snowflake(1_003);
const ADMINS: Snowflake = Snowflake(1_004);
/// A role id the guild does not have (deleted role still listed on a member, say).
const GHOST: Snowflake = Snowflake(1_999);

#[derive(Debug, Clone)]
struct TestGuild {
    owner: Snowflake,
    roles: HashMap<Snowflake, Permissions>,
}

impl RoleLookup for TestGuild {
    fn guild_id(&self) -> Snowflake {
        GUILD
    }
    fn owner_id(&self) -> Snowflake {
        self.owner
    }
    fn role_permissions(&self, role_id: Snowflake) -> Option<Permissions> {
        self.roles.get(&role_id).copied()
    }
}

fn guild(everyone: Permissions, roles: &[(Snowflake, Permissions)]) -> TestGuild {
    let mut map: HashMap<_, _> = roles.iter().copied().collect();
    map.insert(GUILD, everyone);
    TestGuild {
        owner: OWNER,
        roles: map,
    }
}

fn member(user_id: Snowflake, role_ids: &[Snowflake]) -> MemberRef<'_> {
    MemberRef {
        user_id,
        role_ids,
        timed_out: false,
    }
}

fn role_ow(id: Snowflake, allow: Permissions, deny: Permissions) -> OverwriteRef {
    OverwriteRef {
        id,
        kind: OverwriteKind::Role,
        allow,
        deny,
    }
}

fn member_ow(id: Snowflake, allow: Permissions, deny: Permissions) -> OverwriteRef {
    OverwriteRef {
        id,
        kind: OverwriteKind::Member,
        allow,
        deny,
    }
}

const NONE: Permissions = Permissions::empty();
const VIEW: Permissions = Permissions::VIEW_CHANNEL;
const SEND: Permissions = Permissions::SEND_MESSAGES;
const HISTORY: Permissions = Permissions::READ_MESSAGE_HISTORY;
const VIEW_SEND: Permissions = VIEW.union(SEND);

/// One row of the channel-permission table.
struct Case {
    name: &'static str,
    everyone: Permissions,
    roles: &'static [(Snowflake, Permissions)],
    user: Snowflake,
    member_roles: &'static [Snowflake],
    timed_out: bool,
    overwrites: Vec<OverwriteRef>,
    voice: bool,
    expected: Permissions,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            everyone: VIEW_SEND,
            roles: &[],
            user: USER,
            member_roles: &[],
            timed_out: false,
            overwrites: Vec::new(),
            voice: false,
            expected: NONE,
        }
    }
}

fn cases() -> Vec<Case> {
    use Permissions as P;
    vec![
        Case {
            name: "owner gets everything even with no roles and a deny-all overwrite",
            everyone: NONE,
            user: OWNER,
            overwrites: vec![
                role_ow(GUILD, NONE, P::all()),
                member_ow(OWNER, NONE, P::all()),
            ],
            expected: P::all(),
            ..Case::default()
        },
        Case {
            name: "owner in timeout is unaffected",
            user: OWNER,
            timed_out: true,
            expected: P::all(),
            ..Case::default()
        },
        Case {
            name: "administrator on any role gets everything and ignores channel denies",
            roles: &[(ADMINS, P::ADMINISTRATOR)],
            member_roles: &[ADMINS],
            overwrites: vec![
                role_ow(GUILD, NONE, P::all()),
                role_ow(ADMINS, NONE, P::all()),
                member_ow(USER, NONE, P::all()),
            ],
            expected: P::all(),
            ..Case::default()
        },
        Case {
            name: "administrator on @everyone gets everything",
            everyone: P::ADMINISTRATOR,
            expected: P::all(),
            ..Case::default()
        },
        Case {
            name: "administrator in timeout is unaffected",
            roles: &[(ADMINS, P::ADMINISTRATOR)],
            member_roles: &[ADMINS],
            timed_out: true,
            expected: P::all(),
            ..Case::default()
        },
        Case {
            name: "administrator granted by an overwrite is not administrator",
            overwrites: vec![member_ow(USER, P::ADMINISTRATOR, NONE)],
            expected: VIEW_SEND | P::ADMINISTRATOR,
            ..Case::default()
        },
        Case {
            name: "base is @everyone OR member roles",
            everyone: VIEW,
            roles: &[(MODS, P::KICK_MEMBERS), (HELPERS, SEND)],
            member_roles: &[MODS, HELPERS],
            expected: VIEW | SEND | P::KICK_MEMBERS,
            ..Case::default()
        },
        Case {
            name: "roles the member lacks add nothing",
            everyone: VIEW,
            roles: &[(MODS, P::KICK_MEMBERS), (HELPERS, SEND)],
            member_roles: &[HELPERS],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "unknown role ids on the member are ignored",
            everyone: VIEW_SEND,
            member_roles: &[GHOST],
            // A stale role id (the role was deleted) must not revive that role's leftover
            // overwrites either: the member simply does not have a role the guild does not have.
            overwrites: vec![role_ow(GHOST, P::MANAGE_MESSAGES, SEND)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "@everyone overwrite denies",
            everyone: VIEW_SEND | P::ADD_REACTIONS,
            overwrites: vec![role_ow(GUILD, NONE, P::ADD_REACTIONS)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "@everyone overwrite allow wins over its own deny of the same bit",
            everyone: VIEW,
            overwrites: vec![role_ow(GUILD, SEND, SEND)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "@everyone overwrite allows",
            everyone: VIEW,
            overwrites: vec![role_ow(GUILD, SEND | P::ADD_REACTIONS, NONE)],
            expected: VIEW_SEND | P::ADD_REACTIONS,
            ..Case::default()
        },
        Case {
            name: "role overwrite beats @everyone overwrite",
            everyone: VIEW_SEND,
            roles: &[(HELPERS, NONE)],
            member_roles: &[HELPERS],
            overwrites: vec![role_ow(GUILD, NONE, SEND), role_ow(HELPERS, SEND, NONE)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "role allow from one role beats deny from another, whatever the order",
            everyone: VIEW_SEND,
            roles: &[(MUTED, NONE), (HELPERS, NONE)],
            member_roles: &[MUTED, HELPERS],
            overwrites: vec![role_ow(HELPERS, SEND, NONE), role_ow(MUTED, NONE, SEND)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "role deny applies when no role allows",
            everyone: VIEW_SEND,
            roles: &[(MUTED, NONE)],
            member_roles: &[MUTED],
            overwrites: vec![role_ow(MUTED, NONE, SEND)],
            expected: VIEW,
            ..Case::default()
        },
        Case {
            name: "overwrites for roles the member lacks are ignored",
            everyone: VIEW_SEND,
            roles: &[(MUTED, NONE), (MODS, NONE)],
            member_roles: &[],
            overwrites: vec![
                role_ow(MUTED, NONE, SEND),
                role_ow(MODS, P::MANAGE_MESSAGES, NONE),
            ],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "member overwrite beats role overwrites (deny)",
            everyone: VIEW_SEND,
            roles: &[(HELPERS, NONE)],
            member_roles: &[HELPERS],
            overwrites: vec![
                role_ow(HELPERS, P::ADD_REACTIONS, NONE),
                member_ow(USER, NONE, SEND | P::ADD_REACTIONS),
            ],
            expected: VIEW,
            ..Case::default()
        },
        Case {
            name: "member overwrite beats role overwrites (allow)",
            everyone: VIEW_SEND,
            roles: &[(MUTED, NONE)],
            member_roles: &[MUTED],
            overwrites: vec![role_ow(MUTED, NONE, SEND), member_ow(USER, SEND, NONE)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "another member's overwrite is ignored",
            everyone: VIEW_SEND,
            overwrites: vec![member_ow(OTHER_USER, NONE, VIEW)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "a role overwrite with the member's user id is not a member overwrite",
            everyone: VIEW_SEND,
            overwrites: vec![role_ow(USER, NONE, VIEW)],
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "no VIEW_CHANNEL means nothing at all",
            everyone: P::DEFAULT_EVERYONE,
            overwrites: vec![role_ow(GUILD, NONE, VIEW)],
            expected: NONE,
            ..Case::default()
        },
        Case {
            name: "no VIEW_CHANNEL in the base and no overwrite means nothing",
            everyone: P::DEFAULT_EVERYONE.difference(VIEW),
            expected: NONE,
            ..Case::default()
        },
        Case {
            name: "no SEND_MESSAGES strips the send-dependent permissions",
            everyone: VIEW
                | HISTORY
                | P::MENTION_EVERYONE
                | P::SEND_TTS_MESSAGES
                | P::ATTACH_FILES
                | P::EMBED_LINKS
                | P::ADD_REACTIONS,
            expected: VIEW | HISTORY | P::ADD_REACTIONS,
            ..Case::default()
        },
        Case {
            name: "with SEND_MESSAGES the send-dependent permissions stay",
            everyone: VIEW_SEND
                | P::MENTION_EVERYONE
                | P::SEND_TTS_MESSAGES
                | P::ATTACH_FILES
                | P::EMBED_LINKS,
            expected: VIEW_SEND
                | P::MENTION_EVERYONE
                | P::SEND_TTS_MESSAGES
                | P::ATTACH_FILES
                | P::EMBED_LINKS,
            ..Case::default()
        },
        Case {
            name: "voice channel without CONNECT strips the voice permissions",
            everyone: VIEW_SEND
                | P::SPEAK
                | P::STREAM
                | P::USE_VAD
                | P::PRIORITY_SPEAKER
                | P::MUTE_MEMBERS
                | P::DEAFEN_MEMBERS
                | P::MOVE_MEMBERS
                | P::REQUEST_TO_SPEAK
                | P::ADD_REACTIONS,
            voice: true,
            expected: VIEW_SEND | P::ADD_REACTIONS,
            ..Case::default()
        },
        Case {
            name: "voice channel with CONNECT keeps the voice permissions",
            everyone: VIEW_SEND | P::CONNECT | P::SPEAK | P::STREAM | P::USE_VAD,
            voice: true,
            expected: VIEW_SEND | P::CONNECT | P::SPEAK | P::STREAM | P::USE_VAD,
            ..Case::default()
        },
        Case {
            name: "text channel without CONNECT keeps the voice bits",
            everyone: VIEW_SEND | P::SPEAK | P::STREAM,
            voice: false,
            expected: VIEW_SEND | P::SPEAK | P::STREAM,
            ..Case::default()
        },
        Case {
            name: "voice overwrite denying CONNECT strips voice permissions",
            everyone: VIEW_SEND | P::CONNECT | P::SPEAK,
            overwrites: vec![role_ow(GUILD, NONE, P::CONNECT)],
            voice: true,
            expected: VIEW_SEND,
            ..Case::default()
        },
        Case {
            name: "timed-out member keeps only VIEW_CHANNEL and READ_MESSAGE_HISTORY",
            everyone: P::DEFAULT_EVERYONE | P::MANAGE_MESSAGES,
            timed_out: true,
            expected: VIEW | HISTORY,
            ..Case::default()
        },
        Case {
            name: "timed-out member's overwrite allows do not escape the timeout",
            everyone: VIEW,
            timed_out: true,
            overwrites: vec![member_ow(USER, SEND | HISTORY | P::ADD_REACTIONS, NONE)],
            expected: VIEW | HISTORY,
            ..Case::default()
        },
        Case {
            name: "timed-out member without VIEW_CHANNEL in the channel gets nothing",
            everyone: P::DEFAULT_EVERYONE,
            timed_out: true,
            overwrites: vec![role_ow(GUILD, NONE, VIEW)],
            expected: NONE,
            ..Case::default()
        },
    ]
}

#[test]
fn channel_permission_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let g = guild(case.everyone, case.roles);
        let m = MemberRef {
            timed_out: case.timed_out,
            ..member(case.user, case.member_roles)
        };
        let got = channel_permissions(&g, m, &case.overwrites, case.voice);
        if got != case.expected {
            failures.push(format!(
                "{}: expected {:#x}, got {:#x}",
                case.name,
                case.expected.bits(),
                got.bits()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

#[test]
fn guild_permission_table() {
    use Permissions as P;
    let g = guild(
        VIEW,
        &[
            (MODS, P::KICK_MEMBERS | P::BAN_MEMBERS),
            (HELPERS, SEND),
            (ADMINS, P::ADMINISTRATOR),
        ],
    );
    let rows: &[(&str, Snowflake, &[Snowflake], bool, Permissions)] = &[
        ("owner", OWNER, &[], false, P::all()),
        ("owner timed out", OWNER, &[], true, P::all()),
        ("@everyone only", USER, &[], false, VIEW),
        (
            "roles OR'ed",
            USER,
            &[MODS, HELPERS],
            false,
            VIEW | SEND | P::KICK_MEMBERS | P::BAN_MEMBERS,
        ),
        (
            "unknown role ignored",
            USER,
            &[GHOST, HELPERS],
            false,
            VIEW_SEND,
        ),
        ("admin", USER, &[ADMINS], false, P::all()),
        ("admin timed out", USER, &[ADMINS], true, P::all()),
        ("timed out", USER, &[MODS, HELPERS], true, VIEW),
    ];
    for (name, user, roles, timed_out, expected) in rows {
        let got = guild_permissions(
            &g,
            MemberRef {
                user_id: *user,
                role_ids: roles,
                timed_out: *timed_out,
            },
        );
        assert_eq!(got, *expected, "{name}");
    }
}

#[test]
fn guild_without_everyone_role_starts_empty() {
    let g = TestGuild {
        owner: OWNER,
        roles: HashMap::from([(HELPERS, VIEW_SEND)]),
    };
    assert_eq!(guild_permissions(&g, member(USER, &[])), NONE);
    assert_eq!(guild_permissions(&g, member(USER, &[HELPERS])), VIEW_SEND);
}

#[test]
fn all_covers_every_documented_bit_and_nothing_undocumented() {
    // Bit 47 is unassigned in Discord's table; everything else up to PIN/BYPASS (52) is defined.
    let documented = ((1u64 << 53) - 1) & !(1u64 << 47);
    assert_eq!(Permissions::all().bits(), documented);
}

#[test]
fn serializes_as_decimal_string() {
    let p = Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES;
    assert_eq!(serde_json::to_string(&p).unwrap(), "\"3072\"");
    assert_eq!(
        serde_json::to_string(&Permissions::empty()).unwrap(),
        "\"0\""
    );
    assert_eq!(
        serde_json::to_string(&Permissions::all()).unwrap(),
        format!("\"{}\"", Permissions::all().bits())
    );
}

#[test]
fn deserializes_from_strings_and_numbers() {
    let a: Permissions = serde_json::from_str("\"3072\"").unwrap();
    let b: Permissions = serde_json::from_str("3072").unwrap();
    assert_eq!(a, VIEW_SEND);
    assert_eq!(b, VIEW_SEND);
    let zero: Permissions = serde_json::from_str("\"0\"").unwrap();
    assert_eq!(zero, NONE);
    // Bits we do not know yet are kept so they round-trip to clients unchanged.
    let future: Permissions = serde_json::from_str("\"140737488355328\"").unwrap();
    assert_eq!(future.bits(), 1 << 47);
    assert_eq!(
        serde_json::to_string(&future).unwrap(),
        "\"140737488355328\""
    );
    let p = Permissions::DEFAULT_EVERYONE;
    let back: Permissions = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn rejects_garbage() {
    for bad in [
        "\"\"",
        "\"abc\"",
        "\"+1\"",
        "\"-1\"",
        "\" 1\"",
        "\"1 \"",
        "\"0x10\"",
        "\"1.0\"",
        "\"18446744073709551616\"",
        "-1",
        "1.5",
        "true",
        "null",
        "[]",
        "{}",
    ] {
        assert!(
            serde_json::from_str::<Permissions>(bad).is_err(),
            "{bad} accepted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reference implementation and property test.
// ---------------------------------------------------------------------------------------------

/// Discord's documented computation over plain integers, one rule per step, sharing nothing with
/// the code under test but the bit positions (which come from Discord's table, retyped here).
mod reference {
    pub const ADMINISTRATOR: u64 = 1 << 3;
    pub const PRIORITY_SPEAKER: u64 = 1 << 8;
    pub const STREAM: u64 = 1 << 9;
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const SEND_TTS_MESSAGES: u64 = 1 << 12;
    pub const EMBED_LINKS: u64 = 1 << 14;
    pub const ATTACH_FILES: u64 = 1 << 15;
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    pub const MENTION_EVERYONE: u64 = 1 << 17;
    pub const CONNECT: u64 = 1 << 20;
    pub const SPEAK: u64 = 1 << 21;
    pub const MUTE_MEMBERS: u64 = 1 << 22;
    pub const DEAFEN_MEMBERS: u64 = 1 << 23;
    pub const MOVE_MEMBERS: u64 = 1 << 24;
    pub const USE_VAD: u64 = 1 << 25;
    pub const REQUEST_TO_SPEAK: u64 = 1 << 32;
    /// Every assigned bit: 0..=52 without the unassigned bit 47.
    pub const ALL: u64 = ((1 << 53) - 1) & !(1 << 47);

    pub struct Guild {
        pub id: u64,
        pub owner: u64,
        /// (role id, permissions); the @everyone role has the guild's id.
        pub roles: Vec<(u64, u64)>,
    }

    pub struct Member {
        pub id: u64,
        pub roles: Vec<u64>,
        pub timed_out: bool,
    }

    /// (id, is_member, allow, deny)
    pub type Overwrite = (u64, bool, u64, u64);

    fn role(g: &Guild, id: u64) -> u64 {
        g.roles
            .iter()
            .filter(|(r, _)| *r == id)
            .map(|(_, p)| *p)
            .fold(0, |a, p| a | p)
    }

    pub fn compute(g: &Guild, m: &Member, overwrites: &[Overwrite], voice: bool) -> u64 {
        // 1. The owner can do anything.
        if m.id == g.owner {
            return ALL;
        }
        // 2. Base: @everyone, then each of the member's roles.
        let mut base = role(g, g.id);
        for r in &m.roles {
            base |= role(g, *r);
        }
        // 3. Administrator overrides everything, channel overwrites included.
        if base & ADMINISTRATOR == ADMINISTRATOR {
            return ALL;
        }
        let mut p = base;
        // 4. @everyone overwrite: deny then allow.
        for &(id, is_member, allow, deny) in overwrites {
            if !is_member && id == g.id {
                p &= !deny;
                p |= allow;
            }
        }
        // 5. Role overwrites of the member's roles (that the guild actually has), combined: all
        //    denies, then all allows.
        let mut allow_all = 0;
        let mut deny_all = 0;
        for &(id, is_member, allow, deny) in overwrites {
            let guild_has = g.roles.iter().any(|(r, _)| *r == id);
            if !is_member && id != g.id && guild_has && m.roles.contains(&id) {
                allow_all |= allow;
                deny_all |= deny;
            }
        }
        p &= !deny_all;
        p |= allow_all;
        // 6. The member's own overwrite.
        for &(id, is_member, allow, deny) in overwrites {
            if is_member && id == m.id {
                p &= !deny;
                p |= allow;
            }
        }
        // 7. Timeout leaves reading only.
        if m.timed_out {
            p &= VIEW_CHANNEL | READ_MESSAGE_HISTORY;
        }
        // 8. Implicit rules.
        if p & VIEW_CHANNEL == 0 {
            return 0;
        }
        if p & SEND_MESSAGES == 0 {
            p &= !(MENTION_EVERYONE | SEND_TTS_MESSAGES | ATTACH_FILES | EMBED_LINKS);
        }
        if voice && p & CONNECT == 0 {
            p &= !(SPEAK
                | MUTE_MEMBERS
                | DEAFEN_MEMBERS
                | MOVE_MEMBERS
                | USE_VAD
                | PRIORITY_SPEAKER
                | STREAM
                | REQUEST_TO_SPEAK);
        }
        p
    }
}

/// Random permission sets biased towards the bits the rules look at, so implicit rules and
/// administrator fire often enough to matter.
fn perms() -> impl Strategy<Value = u64> {
    let interesting = reference::ADMINISTRATOR
        | reference::VIEW_CHANNEL
        | reference::SEND_MESSAGES
        | reference::CONNECT
        | reference::READ_MESSAGE_HISTORY
        | reference::MENTION_EVERYONE
        | reference::SPEAK
        | reference::STREAM;
    prop_oneof![
        // Mostly the interesting bits, with administrator rarer so overwrites matter.
        4 => (any::<u64>(), any::<u8>()).prop_map(move |(r, a)| {
            let p = r & interesting;
            if a < 32 { p } else { p & !reference::ADMINISTRATOR }
        }),
        1 => any::<u64>().prop_map(|r| r & reference::ALL & !reference::ADMINISTRATOR),
        1 => Just(0),
    ]
}

#[derive(Debug, Clone)]
struct World {
    owner_is_member: bool,
    everyone: Option<u64>,
    roles: Vec<u64>,
    member_roles: Vec<usize>,
    /// Role overwrites: index into roles (len == @everyone, len+1 == unknown role), allow, deny.
    role_overwrites: Vec<(usize, u64, u64)>,
    /// Member overwrites: for the member (true) or another user, allow, deny.
    member_overwrites: Vec<(bool, u64, u64)>,
    timed_out: bool,
    voice: bool,
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::bool::weighted(0.1),
        proptest::option::weighted(0.9, perms()),
        proptest::collection::vec(perms(), 0..8),
        proptest::collection::vec(0usize..10, 0..6),
        proptest::collection::vec((0usize..10, perms(), perms()), 0..6),
        proptest::collection::vec((any::<bool>(), perms(), perms()), 0..3),
        proptest::bool::weighted(0.3),
        any::<bool>(),
    )
        .prop_map(
            |(
                owner_is_member,
                everyone,
                roles,
                member_roles,
                role_ows,
                member_ows,
                timed_out,
                voice,
            )| {
                World {
                    owner_is_member,
                    everyone,
                    roles,
                    member_roles,
                    role_overwrites: role_ows,
                    member_overwrites: member_ows,
                    timed_out,
                    voice,
                }
            },
        )
}

/// Role ids 1001.. are real roles, 1999 never exists; guild 1000; member 2001, someone else 2002.
fn role_id(w: &World, idx: usize) -> u64 {
    role_id_of(w.roles.len(), idx)
}

fn role_id_of(role_count: usize, idx: usize) -> u64 {
    if idx < role_count {
        1_001 + idx as u64
    } else if idx == role_count {
        GUILD.0
    } else {
        GHOST.0
    }
}

fn check(w: &World) -> (u64, u64) {
    let user = if w.owner_is_member { OWNER.0 } else { USER.0 };

    // Discord keeps one overwrite per target: later duplicates replace earlier ones.
    let mut overwrites: Vec<reference::Overwrite> = Vec::new();
    let mut push = |ow: reference::Overwrite| {
        overwrites.retain(|o| !(o.0 == ow.0 && o.1 == ow.1));
        overwrites.push(ow);
    };
    for &(idx, allow, deny) in &w.role_overwrites {
        push((role_id(w, idx), false, allow, deny));
    }
    for &(mine, allow, deny) in &w.member_overwrites {
        push((if mine { user } else { OTHER_USER.0 }, true, allow, deny));
    }
    let mut member_roles: Vec<u64> = w.member_roles.iter().map(|&i| role_id(w, i)).collect();
    member_roles.dedup();

    let mut ref_roles: Vec<(u64, u64)> = w
        .roles
        .iter()
        .enumerate()
        .map(|(i, p)| (1_001 + i as u64, *p))
        .collect();
    if let Some(e) = w.everyone {
        ref_roles.push((GUILD.0, e));
    }
    let expected = reference::compute(
        &reference::Guild {
            id: GUILD.0,
            owner: OWNER.0,
            roles: ref_roles.clone(),
        },
        &reference::Member {
            id: user,
            roles: member_roles.clone(),
            timed_out: w.timed_out,
        },
        &overwrites,
        w.voice,
    );

    let g = TestGuild {
        owner: OWNER,
        roles: ref_roles
            .iter()
            .map(|&(id, p)| (Snowflake(id), Permissions::from_bits_retain(p)))
            .collect(),
    };
    let role_ids: Vec<Snowflake> = member_roles.iter().copied().map(Snowflake).collect();
    let ows: Vec<OverwriteRef> = overwrites
        .iter()
        .map(|&(id, is_member, allow, deny)| OverwriteRef {
            id: Snowflake(id),
            kind: if is_member {
                OverwriteKind::Member
            } else {
                OverwriteKind::Role
            },
            allow: Permissions::from_bits_retain(allow),
            deny: Permissions::from_bits_retain(deny),
        })
        .collect();
    let got = channel_permissions(
        &g,
        MemberRef {
            user_id: Snowflake(user),
            role_ids: &role_ids,
            timed_out: w.timed_out,
        },
        &ows,
        w.voice,
    );
    (got.bits(), expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn channel_permissions_match_reference(w in world()) {
        let (got, expected) = check(&w);
        prop_assert_eq!(got, expected, "got {:#x}, expected {:#x}", got, expected);
    }

    #[test]
    fn overwrite_order_does_not_matter(w in world(), seed in any::<u64>()) {
        // One overwrite per target (as Discord stores them), then the same set in another order:
        // the result must not depend on storage order.
        let mut w = w;
        let role_count = w.roles.len();
        let mut seen = std::collections::HashSet::new();
        w.role_overwrites.retain(|o| seen.insert(role_id_of(role_count, o.0)));
        let mut rotated = w.clone();
        if !rotated.role_overwrites.is_empty() {
            let n = rotated.role_overwrites.len();
            rotated.role_overwrites.rotate_left((seed as usize) % n);
        }
        prop_assert_eq!(check(&w).0, check(&rotated).0);
    }
}
