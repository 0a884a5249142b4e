//! Discord's permission bitfield and its documented computation.
//!
//! Order (Discord, "Permissions" topic): base = @everyone | member roles; owner and ADMINISTRATOR
//! get everything; then the channel's @everyone overwrite, the OR of the member's role overwrites
//! (all denies, then all allows), then the member's own overwrite. Implicit rules follow: no
//! VIEW_CHANNEL removes everything, no SEND_MESSAGES removes the permissions that only make sense
//! when sending, and no CONNECT in a voice channel removes the other voice permissions. A member
//! in timeout keeps only VIEW_CHANNEL and READ_MESSAGE_HISTORY.

use std::fmt;

use bitflags::bitflags;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Snowflake;

bitflags! {
    /// The 53-bit permission set; sent on the wire as a decimal string.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Permissions: u64 {
        const CREATE_INSTANT_INVITE = 1 << 0;
        const KICK_MEMBERS = 1 << 1;
        const BAN_MEMBERS = 1 << 2;
        const ADMINISTRATOR = 1 << 3;
        const MANAGE_CHANNELS = 1 << 4;
        const MANAGE_GUILD = 1 << 5;
        const ADD_REACTIONS = 1 << 6;
        const VIEW_AUDIT_LOG = 1 << 7;
        const PRIORITY_SPEAKER = 1 << 8;
        const STREAM = 1 << 9;
        const VIEW_CHANNEL = 1 << 10;
        const SEND_MESSAGES = 1 << 11;
        const SEND_TTS_MESSAGES = 1 << 12;
        const MANAGE_MESSAGES = 1 << 13;
        const EMBED_LINKS = 1 << 14;
        const ATTACH_FILES = 1 << 15;
        const READ_MESSAGE_HISTORY = 1 << 16;
        const MENTION_EVERYONE = 1 << 17;
        const USE_EXTERNAL_EMOJIS = 1 << 18;
        const VIEW_GUILD_INSIGHTS = 1 << 19;
        const CONNECT = 1 << 20;
        const SPEAK = 1 << 21;
        const MUTE_MEMBERS = 1 << 22;
        const DEAFEN_MEMBERS = 1 << 23;
        const MOVE_MEMBERS = 1 << 24;
        const USE_VAD = 1 << 25;
        const CHANGE_NICKNAME = 1 << 26;
        const MANAGE_NICKNAMES = 1 << 27;
        const MANAGE_ROLES = 1 << 28;
        const MANAGE_WEBHOOKS = 1 << 29;
        const MANAGE_GUILD_EXPRESSIONS = 1 << 30;
        const USE_APPLICATION_COMMANDS = 1 << 31;
        const REQUEST_TO_SPEAK = 1 << 32;
        const MANAGE_EVENTS = 1 << 33;
        const MANAGE_THREADS = 1 << 34;
        const CREATE_PUBLIC_THREADS = 1 << 35;
        const CREATE_PRIVATE_THREADS = 1 << 36;
        const USE_EXTERNAL_STICKERS = 1 << 37;
        const SEND_MESSAGES_IN_THREADS = 1 << 38;
        const USE_EMBEDDED_ACTIVITIES = 1 << 39;
        const MODERATE_MEMBERS = 1 << 40;
        const VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41;
        const USE_SOUNDBOARD = 1 << 42;
        const CREATE_GUILD_EXPRESSIONS = 1 << 43;
        const CREATE_EVENTS = 1 << 44;
        const USE_EXTERNAL_SOUNDS = 1 << 45;
        const SEND_VOICE_MESSAGES = 1 << 46;
        const SET_VOICE_CHANNEL_STATUS = 1 << 48;
        const SEND_POLLS = 1 << 49;
        const USE_EXTERNAL_APPS = 1 << 50;
        const PIN_MESSAGES = 1 << 51;
        const BYPASS_SLOWMODE = 1 << 52;
    }
}

impl Permissions {
    /// What a new guild's @everyone role gets, as Discord's client creates it.
    pub const DEFAULT_EVERYONE: Permissions = Permissions::from_bits_retain(
        Permissions::CREATE_INSTANT_INVITE.bits()
            | Permissions::ADD_REACTIONS.bits()
            | Permissions::STREAM.bits()
            | Permissions::VIEW_CHANNEL.bits()
            | Permissions::SEND_MESSAGES.bits()
            | Permissions::EMBED_LINKS.bits()
            | Permissions::ATTACH_FILES.bits()
            | Permissions::READ_MESSAGE_HISTORY.bits()
            | Permissions::MENTION_EVERYONE.bits()
            | Permissions::USE_EXTERNAL_EMOJIS.bits()
            | Permissions::CONNECT.bits()
            | Permissions::SPEAK.bits()
            | Permissions::USE_VAD.bits()
            | Permissions::CHANGE_NICKNAME.bits()
            | Permissions::USE_APPLICATION_COMMANDS.bits()
            | Permissions::CREATE_PUBLIC_THREADS.bits()
            | Permissions::CREATE_PRIVATE_THREADS.bits()
            | Permissions::SEND_MESSAGES_IN_THREADS.bits()
            | Permissions::SEND_POLLS.bits(),
    );

    /// Removed when SEND_MESSAGES is missing.
    const SEND_DEPENDENT: Permissions = Permissions::from_bits_retain(
        Permissions::MENTION_EVERYONE.bits()
            | Permissions::SEND_TTS_MESSAGES.bits()
            | Permissions::ATTACH_FILES.bits()
            | Permissions::EMBED_LINKS.bits(),
    );

    /// Voice permissions removed when CONNECT is missing in a voice channel.
    const CONNECT_DEPENDENT: Permissions = Permissions::from_bits_retain(
        Permissions::SPEAK.bits()
            | Permissions::MUTE_MEMBERS.bits()
            | Permissions::DEAFEN_MEMBERS.bits()
            | Permissions::MOVE_MEMBERS.bits()
            | Permissions::USE_VAD.bits()
            | Permissions::PRIORITY_SPEAKER.bits()
            | Permissions::STREAM.bits()
            | Permissions::REQUEST_TO_SPEAK.bits(),
    );

    /// Kept by a member in timeout.
    const TIMEOUT_KEEPS: Permissions = Permissions::from_bits_retain(
        Permissions::VIEW_CHANNEL.bits() | Permissions::READ_MESSAGE_HISTORY.bits(),
    );
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({})", self.bits())
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.bits())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Permissions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a permission bitfield as a decimal string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Permissions, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom("invalid permission bitfield"));
                }
                v.parse::<u64>()
                    .map(Permissions::from_bits_retain)
                    .map_err(|_| E::custom("invalid permission bitfield"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Permissions, E> {
                Ok(Permissions::from_bits_retain(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Permissions, E> {
                u64::try_from(v)
                    .map(Permissions::from_bits_retain)
                    .map_err(|_| E::custom("invalid permission bitfield"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Permissions {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Permission bitfield as a decimal string"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Permissions {}

/// Whether an overwrite targets a role (0) or a member (1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OverwriteKind {
    Role,
    Member,
}

/// The slice of a channel overwrite that permission computation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverwriteRef {
    pub id: Snowflake,
    pub kind: OverwriteKind,
    pub allow: Permissions,
    pub deny: Permissions,
}

/// Who is asking: the member's id, roles and timeout state.
#[derive(Clone, Copy, Debug)]
pub struct MemberRef<'a> {
    pub user_id: Snowflake,
    pub role_ids: &'a [Snowflake],
    pub timed_out: bool,
}

/// The guild-wide facts permission computation needs.
pub trait RoleLookup {
    fn guild_id(&self) -> Snowflake;
    fn owner_id(&self) -> Snowflake;
    /// A role's permissions; `None` for a role id the guild does not have.
    fn role_permissions(&self, role_id: Snowflake) -> Option<Permissions>;
}

/// Guild-level permissions (no channel overwrites).
pub fn guild_permissions(guild: &impl RoleLookup, member: MemberRef<'_>) -> Permissions {
    if member.user_id == guild.owner_id() {
        return Permissions::all();
    }
    let mut perms = guild.role_permissions(guild.guild_id()).unwrap_or_default();
    for role in member.role_ids {
        if let Some(p) = guild.role_permissions(*role) {
            perms |= p;
        }
    }
    if perms.contains(Permissions::ADMINISTRATOR) {
        return Permissions::all();
    }
    if member.timed_out {
        perms &= Permissions::TIMEOUT_KEEPS;
    }
    perms
}

/// Permissions in a channel, with overwrites and implicit rules applied.
pub fn channel_permissions(
    guild: &impl RoleLookup,
    member: MemberRef<'_>,
    overwrites: &[OverwriteRef],
    is_voice: bool,
) -> Permissions {
    if member.user_id == guild.owner_id() {
        return Permissions::all();
    }
    let base = guild_permissions(
        guild,
        MemberRef {
            timed_out: false,
            ..member
        },
    );
    if base.contains(Permissions::ADMINISTRATOR) {
        return Permissions::all();
    }
    let mut perms = base;
    let guild_id = guild.guild_id();
    if let Some(everyone) = overwrites
        .iter()
        .find(|o| o.kind == OverwriteKind::Role && o.id == guild_id)
    {
        perms.remove(everyone.deny);
        perms.insert(everyone.allow);
    }
    let (mut allow, mut deny) = (Permissions::empty(), Permissions::empty());
    for o in overwrites {
        // A stale role id on the member (the role was deleted) must not revive a leftover
        // overwrite for it: like `guild_permissions`, only roles the guild has count.
        if o.kind == OverwriteKind::Role
            && o.id != guild_id
            && member.role_ids.contains(&o.id)
            && guild.role_permissions(o.id).is_some()
        {
            allow |= o.allow;
            deny |= o.deny;
        }
    }
    perms.remove(deny);
    perms.insert(allow);
    if let Some(own) = overwrites
        .iter()
        .find(|o| o.kind == OverwriteKind::Member && o.id == member.user_id)
    {
        perms.remove(own.deny);
        perms.insert(own.allow);
    }
    if member.timed_out {
        perms &= Permissions::TIMEOUT_KEEPS;
    }
    apply_implicit(perms, is_voice)
}

fn apply_implicit(mut perms: Permissions, is_voice: bool) -> Permissions {
    if !perms.contains(Permissions::VIEW_CHANNEL) {
        return Permissions::empty();
    }
    if !perms.contains(Permissions::SEND_MESSAGES) {
        perms.remove(Permissions::SEND_DEPENDENT);
    }
    if is_voice && !perms.contains(Permissions::CONNECT) {
        perms.remove(Permissions::CONNECT_DEPENDENT);
    }
    perms
}

#[cfg(test)]
mod tests;
