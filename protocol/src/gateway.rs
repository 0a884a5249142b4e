//! The Discord v10 gateway vocabulary: opcodes, close codes, connect parameters, the payloads
//! clients send and the ones the server composes, and the frame codecs.
//!
//! Frames are `{op, d, s, t}` maps in JSON or MessagePack. Fanout serializes an event's
//! dispatch once per encoding into a shared *prefix* that ends just before the sequence number
//! ([`dispatch_prefix`]); each connection then appends its own `s` ([`finish_dispatch`]), so
//! ten thousand receivers cost one serialization, not ten thousand. [`compress`] holds Discord's
//! transport compressions, `compress=zlib-stream` and `compress=zstd-stream`: one compression
//! context per connection, every message flushed so the client can read it on arrival.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::models::{Channel, Guild, Member, Role, User};
use crate::{Snowflake, Timestamp};

pub mod compress;
pub mod dispatch;

pub use compress::{
    Compressor, Decompressor, SYNC_FLUSH, TransportCompression, ZlibInflater, ZlibStream,
    ZstdDecoder, ZstdStream,
};

/// Gateway opcodes (Discord's numbers).
pub mod op {
    pub const DISPATCH: u8 = 0;
    pub const HEARTBEAT: u8 = 1;
    pub const IDENTIFY: u8 = 2;
    pub const PRESENCE_UPDATE: u8 = 3;
    pub const VOICE_STATE_UPDATE: u8 = 4;
    pub const RESUME: u8 = 6;
    pub const RECONNECT: u8 = 7;
    pub const REQUEST_GUILD_MEMBERS: u8 = 8;
    pub const INVALID_SESSION: u8 = 9;
    pub const HELLO: u8 = 10;
    pub const HEARTBEAT_ACK: u8 = 11;
}

/// Gateway intent bits (Discord's values).
pub mod intents {
    pub const GUILDS: u64 = 1 << 0;
    pub const GUILD_MEMBERS: u64 = 1 << 1;
    pub const GUILD_MODERATION: u64 = 1 << 2;
    pub const GUILD_EXPRESSIONS: u64 = 1 << 3;
    pub const GUILD_INTEGRATIONS: u64 = 1 << 4;
    pub const GUILD_WEBHOOKS: u64 = 1 << 5;
    pub const GUILD_INVITES: u64 = 1 << 6;
    pub const GUILD_VOICE_STATES: u64 = 1 << 7;
    pub const GUILD_PRESENCES: u64 = 1 << 8;
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
    pub const GUILD_MESSAGE_TYPING: u64 = 1 << 11;
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    pub const DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;
    pub const DIRECT_MESSAGE_TYPING: u64 = 1 << 14;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
    pub const GUILD_SCHEDULED_EVENTS: u64 = 1 << 16;
    pub const AUTO_MODERATION_CONFIGURATION: u64 = 1 << 20;
    pub const AUTO_MODERATION_EXECUTION: u64 = 1 << 21;
    pub const GUILD_MESSAGE_POLLS: u64 = 1 << 24;
    pub const DIRECT_MESSAGE_POLLS: u64 = 1 << 25;

    /// Every bit Discord defines; anything else is close code 4013.
    pub const ALL: u64 = ((1 << 17) - 1)
        | AUTO_MODERATION_CONFIGURATION
        | AUTO_MODERATION_EXECUTION
        | GUILD_MESSAGE_POLLS
        | DIRECT_MESSAGE_POLLS;
    /// Intents a bot may use only when its application enables them.
    pub const PRIVILEGED: u64 = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT;
}

/// Application flags that unlock privileged intents (Discord's values).
pub mod app_flags {
    pub const GATEWAY_PRESENCE: u64 = 1 << 12;
    pub const GATEWAY_PRESENCE_LIMITED: u64 = 1 << 13;
    pub const GATEWAY_GUILD_MEMBERS: u64 = 1 << 14;
    pub const GATEWAY_GUILD_MEMBERS_LIMITED: u64 = 1 << 15;
    pub const GATEWAY_MESSAGE_CONTENT: u64 = 1 << 18;
    pub const GATEWAY_MESSAGE_CONTENT_LIMITED: u64 = 1 << 19;
    /// The flags an application may set on itself through `PATCH /applications/@me`.
    pub const SELF_SETTABLE: u64 =
        GATEWAY_PRESENCE_LIMITED | GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED;

    /// The privileged intents an application with `flags` may request.
    pub fn allowed_intents(flags: u64) -> u64 {
        use super::intents::*;
        let mut allowed = 0;
        if flags & (GATEWAY_PRESENCE | GATEWAY_PRESENCE_LIMITED) != 0 {
            allowed |= GUILD_PRESENCES;
        }
        if flags & (GATEWAY_GUILD_MEMBERS | GATEWAY_GUILD_MEMBERS_LIMITED) != 0 {
            allowed |= GUILD_MEMBERS;
        }
        if flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED) != 0 {
            allowed |= MESSAGE_CONTENT;
        }
        allowed
    }
}

/// Gateway close codes (Discord's numbers and meanings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    UnknownError = 4000,
    UnknownOpcode = 4001,
    DecodeError = 4002,
    NotAuthenticated = 4003,
    AuthenticationFailed = 4004,
    AlreadyAuthenticated = 4005,
    InvalidSeq = 4007,
    RateLimited = 4008,
    SessionTimedOut = 4009,
    InvalidShard = 4010,
    ShardingRequired = 4011,
    InvalidApiVersion = 4012,
    InvalidIntents = 4013,
    DisallowedIntents = 4014,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        use CloseCode::*;
        Some(match code {
            4000 => UnknownError,
            4001 => UnknownOpcode,
            4002 => DecodeError,
            4003 => NotAuthenticated,
            4004 => AuthenticationFailed,
            4005 => AlreadyAuthenticated,
            4007 => InvalidSeq,
            4008 => RateLimited,
            4009 => SessionTimedOut,
            4010 => InvalidShard,
            4011 => ShardingRequired,
            4012 => InvalidApiVersion,
            4013 => InvalidIntents,
            4014 => DisallowedIntents,
            _ => return None,
        })
    }

    /// Whether a client may reconnect after this close (Discord's table).
    pub fn reconnectable(self) -> bool {
        !matches!(
            self,
            CloseCode::AuthenticationFailed
                | CloseCode::InvalidShard
                | CloseCode::ShardingRequired
                | CloseCode::InvalidApiVersion
                | CloseCode::InvalidIntents
                | CloseCode::DisallowedIntents
        )
    }

    /// The human reason sent in the close frame.
    pub fn reason(self) -> &'static str {
        use CloseCode::*;
        match self {
            UnknownError => "Unknown error.",
            UnknownOpcode => "Unknown opcode.",
            DecodeError => "Error while decoding payload.",
            NotAuthenticated => "Not authenticated.",
            AuthenticationFailed => "Authentication failed.",
            AlreadyAuthenticated => "Already authenticated.",
            InvalidSeq => "Invalid seq.",
            RateLimited => "You are being rate limited.",
            SessionTimedOut => "Session timed out.",
            InvalidShard => "Invalid shard.",
            ShardingRequired => "Sharding required.",
            InvalidApiVersion => "Invalid API version.",
            InvalidIntents => "Invalid intent(s).",
            DisallowedIntents => "Disallowed intent(s).",
        }
    }
}

/// Wire encoding chosen with `?encoding=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub enum Encoding {
    #[default]
    Json,
    MsgPack,
}

/// What a client asked for in the connect URL's query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectParams {
    pub version: u8,
    pub encoding: Encoding,
    pub compress: TransportCompression,
}

impl ConnectParams {
    /// Parses `v=10&encoding=json&compress=zlib-stream` (or `zstd-stream`). A missing `v` means
    /// 10, a missing encoding JSON; anything we do not speak is the close code to answer with.
    pub fn parse(query: Option<&str>) -> Result<ConnectParams, CloseCode> {
        let mut p = ConnectParams {
            version: 10,
            encoding: Encoding::Json,
            compress: TransportCompression::None,
        };
        for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "v" => {
                    p.version = match v {
                        "9" => 9,
                        "10" => 10,
                        _ => return Err(CloseCode::InvalidApiVersion),
                    }
                }
                "encoding" => {
                    p.encoding = match v {
                        "json" => Encoding::Json,
                        "msgpack" => Encoding::MsgPack,
                        _ => return Err(CloseCode::DecodeError),
                    }
                }
                "compress" => {
                    p.compress =
                        TransportCompression::from_query(v).ok_or(CloseCode::DecodeError)?;
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------------
// What clients send.

/// A frame from a client, before its `d` is read according to `op`.
#[derive(Debug, Deserialize)]
pub struct Inbound {
    pub op: u8,
    #[serde(default)]
    pub d: serde_json::Value,
}

impl Inbound {
    pub fn decode(encoding: Encoding, bytes: &[u8]) -> Result<Inbound, String> {
        match encoding {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Encoding::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }

    /// Reads `d` as the payload its opcode carries.
    pub fn data<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        serde_json::from_value(self.d).map_err(|e| e.to_string())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionProperties {
    #[serde(default, alias = "$os")]
    pub os: String,
    #[serde(default, alias = "$browser")]
    pub browser: String,
    #[serde(default, alias = "$device")]
    pub device: String,
}

/// Op 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identify {
    pub token: String,
    #[serde(default)]
    pub properties: ConnectionProperties,
    pub intents: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<[u32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceUpdate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
}

/// Op 6.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    pub token: String,
    pub session_id: String,
    pub seq: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub enum Status {
    #[default]
    Online,
    Idle,
    Dnd,
    /// Sent by a client; others see the user as offline.
    Invisible,
    Offline,
}

impl Status {
    /// What other users see.
    pub fn visible(self) -> Status {
        match self {
            Status::Invisible => Status::Offline,
            s => s,
        }
    }
}

/// A rich-presence activity; the fields clients commonly set, kept as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct Activity {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
}

/// Op 3 (and IDENTIFY's `presence`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceUpdate {
    #[serde(default)]
    pub since: Option<u64>,
    #[serde(default)]
    pub activities: Vec<Activity>,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub afk: bool,
}

/// `user_ids` may be one id or a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub enum OneOrMany {
    One(Snowflake),
    Many(Vec<Snowflake>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<Snowflake> {
        match self {
            OneOrMany::One(id) => vec![id],
            OneOrMany::Many(ids) => ids,
        }
    }
}

/// Op 8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct RequestGuildMembers {
    pub guild_id: Snowflake,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default)]
    pub limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presences: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ids: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// What the server sends.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub heartbeat_interval: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnavailableGuild {
    pub id: Snowflake,
    pub unavailable: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyApplication {
    pub id: Snowflake,
    pub flags: u64,
}

/// The READY dispatch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub v: u8,
    pub user: User,
    pub guilds: Vec<UnavailableGuild>,
    pub session_id: String,
    pub resume_gateway_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<[u32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<ReadyApplication>,
    /// Discord sends these for user accounts; bots get empty lists.
    #[serde(default)]
    pub private_channels: Vec<serde_json::Value>,
    #[serde(default)]
    pub relationships: Vec<serde_json::Value>,
}

/// The user part of a presence: only the id is guaranteed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct PresenceUser {
    pub id: Snowflake,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct ClientStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<Status>,
}

/// PRESENCE_UPDATE, and the entries of GUILD_CREATE's `presences`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct Presence {
    pub user: PresenceUser,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    pub status: Status,
    #[cfg_attr(feature = "arbitrary", proptest(strategy = "crate::arbitrary::few()"))]
    pub activities: Vec<Activity>,
    pub client_status: ClientStatus,
}

/// GUILD_CREATE: the guild plus what a session needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuildCreate {
    #[serde(flatten)]
    pub guild: Guild,
    pub joined_at: Option<Timestamp>,
    pub large: bool,
    pub unavailable: bool,
    pub member_count: u64,
    pub members: Vec<Member>,
    pub channels: Vec<Channel>,
    pub threads: Vec<Channel>,
    pub presences: Vec<Presence>,
    pub voice_states: Vec<serde_json::Value>,
    pub stage_instances: Vec<serde_json::Value>,
    pub guild_scheduled_events: Vec<serde_json::Value>,
    pub soundboard_sounds: Vec<serde_json::Value>,
}

impl GuildCreate {
    /// The roles ride inside the guild object.
    pub fn roles(&self) -> &[Role] {
        &self.guild.roles
    }
}

/// GUILD_MEMBERS_CHUNK.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuildMembersChunk {
    pub guild_id: Snowflake,
    pub members: Vec<Member>,
    pub chunk_index: u32,
    pub chunk_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_found: Option<Vec<Snowflake>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presences: Option<Vec<Presence>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// RATE_LIMITED: an op 8 request refused for now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimited {
    pub opcode: u8,
    pub retry_after: f64,
    pub meta: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// Frame codecs.

/// Encoding failed; only possible for values serde cannot represent (never for our types).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode gateway payload: {0}")]
pub struct EncodeError(String);

#[derive(Serialize)]
struct Control<'a, T: Serialize> {
    op: u8,
    d: &'a T,
    s: Option<u64>,
    t: Option<&'a str>,
}

/// A whole non-dispatch frame (`s` and `t` null): HELLO, ACK, INVALID_SESSION, RECONNECT, ...
pub fn control_frame<T: Serialize>(
    encoding: Encoding,
    op: u8,
    d: &T,
) -> Result<Vec<u8>, EncodeError> {
    let frame = Control {
        op,
        d,
        s: None,
        t: None,
    };
    match encoding {
        Encoding::Json => serde_json::to_vec(&frame).map_err(|e| EncodeError(e.to_string())),
        Encoding::MsgPack => {
            rmp_serde::to_vec_named(&frame).map_err(|e| EncodeError(e.to_string()))
        }
    }
}

/// A dispatch frame up to, not including, its sequence number: the part every receiver shares.
pub fn dispatch_prefix<T: Serialize + ?Sized>(
    encoding: Encoding,
    t: &str,
    d: &T,
) -> Result<Bytes, EncodeError> {
    let err = |e: &dyn std::fmt::Display| EncodeError(e.to_string());
    match encoding {
        Encoding::Json => {
            let mut out = Vec::with_capacity(128);
            out.extend_from_slice(b"{\"op\":0,\"t\":");
            serde_json::to_writer(&mut out, t).map_err(|e| err(&e))?;
            out.extend_from_slice(b",\"d\":");
            serde_json::to_writer(&mut out, d).map_err(|e| err(&e))?;
            out.extend_from_slice(b",\"s\":");
            Ok(out.into())
        }
        Encoding::MsgPack => {
            let mut out = Vec::with_capacity(128);
            // A four-entry map whose last key is "s": each receiver appends only its number.
            out.push(0x84);
            rmp::encode::write_str(&mut out, "op").map_err(|e| err(&e))?;
            rmp::encode::write_uint(&mut out, 0).map_err(|e| err(&e))?;
            rmp::encode::write_str(&mut out, "t").map_err(|e| err(&e))?;
            rmp::encode::write_str(&mut out, t).map_err(|e| err(&e))?;
            rmp::encode::write_str(&mut out, "d").map_err(|e| err(&e))?;
            let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
            d.serialize(&mut ser).map_err(|e| err(&e))?;
            rmp::encode::write_str(&mut out, "s").map_err(|e| err(&e))?;
            Ok(out.into())
        }
    }
}

/// The length of the frame [`finish_dispatch`] appends for `prefix_len` bytes of prefix and
/// sequence number `seq`: what a connection needs to write the WebSocket header first.
pub fn dispatch_len(encoding: Encoding, prefix_len: usize, seq: u64) -> usize {
    prefix_len
        + match encoding {
            Encoding::Json => itoa::Buffer::new().format(seq).len() + 1,
            // MessagePack's smallest form of an unsigned integer, as `rmp` writes it.
            Encoding::MsgPack => match seq {
                0..0x80 => 1,
                0x80..0x100 => 2,
                0x100..0x1_0000 => 3,
                0x1_0000..0x1_0000_0000 => 5,
                _ => 9,
            },
        }
}

/// Appends a complete dispatch frame: the shared prefix and this receiver's `s`.
pub fn finish_dispatch(encoding: Encoding, prefix: &[u8], seq: u64, out: &mut BytesMut) {
    out.reserve(prefix.len() + 21);
    out.put_slice(prefix);
    match encoding {
        Encoding::Json => {
            let mut buf = itoa::Buffer::new();
            out.put_slice(buf.format(seq).as_bytes());
            out.put_u8(b'}');
        }
        Encoding::MsgPack => {
            let mut w = out.writer();
            // Writing to memory cannot fail.
            let _ = rmp::encode::write_uint(&mut w, seq);
        }
    }
}

/// A decoded server frame, for clients and tests.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Outbound {
    pub op: u8,
    #[serde(default)]
    pub d: serde_json::Value,
    #[serde(default)]
    pub s: Option<u64>,
    #[serde(default)]
    pub t: Option<String>,
}

impl Outbound {
    pub fn decode(encoding: Encoding, bytes: &[u8]) -> Result<Outbound, String> {
        match encoding {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Encoding::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// A client frame, encoded (for clients and tests).
pub fn client_frame<T: Serialize>(
    encoding: Encoding,
    op: u8,
    d: &T,
) -> Result<Vec<u8>, EncodeError> {
    #[derive(Serialize)]
    struct Frame<'a, T: Serialize> {
        op: u8,
        d: &'a T,
    }
    let f = Frame { op, d };
    match encoding {
        Encoding::Json => serde_json::to_vec(&f).map_err(|e| EncodeError(e.to_string())),
        Encoding::MsgPack => rmp_serde::to_vec_named(&f).map_err(|e| EncodeError(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
