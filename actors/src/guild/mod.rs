//! Guild actors: one ractor actor per guild, the single writer of that guild's state.
//!
//! A guild actor loads its guild from storage when first asked, answers permission questions
//! from memory, persists every change before replying, and publishes the matching
//! [`crate::events::GuildEvent`]. What it can be asked is the guild protocol ([`requests`]):
//! serializable requests, each paired with its reply type, dispatched to their handlers by
//! the dispatch table (`dispatch.rs`). Every write takes one path ([`commit`]): the change is applied through one
//! function, sequenced by an ordered commit queue, and published (fanout, then the event bus)
//! once durable. Metadata changes (roles, channels, members…) are applied one at a time; message
//! writes are pipelined through the queue, so concurrent sends share group commits while
//! replies and events still leave in snowflake order.
//!
//! Each actor also fans its events out to the recipients that follow the guild ([`fanout`]), and
//! answers the gateway side's requests for its sessions ([`requests::SessionOp`]: GUILD_CREATE,
//! member chunks, presence), which name sessions by key, never by handle.

pub mod actor;
mod audit;
mod blobs;
mod channels;
pub mod commit;
pub mod create;
mod dispatch;
mod emojis;
pub mod fanout;
mod members;
mod messages;
pub mod private;
pub mod requests;
mod roles;
mod sessions;
mod settings;
pub mod state;
mod text;
mod webhooks;

pub use actor::{GuildActor, GuildContext, GuildLimits, GuildMsg, PresenceSource};
pub use create::create_guild;
pub use fanout::{Recipient, RecipientDirectory, Relay, Variants};
pub use private::open_private_channel;
pub use requests::{Caller, Envelope, Request, SessionKey, SessionOp, SessionRef};
pub use state::GuildState;
