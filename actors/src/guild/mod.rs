//! Guild actors: one ractor actor per guild, the single writer of that guild's state.
//!
//! A guild actor loads its guild from storage when first asked, answers permission questions
//! from memory, persists every change before replying, and publishes the matching
//! [`crate::events::GuildEvent`]. Metadata changes (roles, channels, members…) are applied one at
//! a time. Message writes are pipelined through an ordered commit queue ([`commit`]): the
//! actor validates and hands the durable write to the queue, then moves on to the next command,
//! so concurrent sends share group commits while replies and events still leave in snowflake
//! order.
//!
//! Each actor also fans its events out to the gateway sessions that follow the guild
//! ([`fanout`]), and answers those sessions' own requests (GUILD_CREATE, member chunks,
//! presence).

pub mod actor;
mod blobs;
pub mod command;
pub mod commit;
pub mod create;
pub mod fanout;
mod gateway;
mod members;
mod messages;
mod ops;
pub mod state;
mod text;

pub use actor::{GuildActor, GuildContext, GuildLimits, GuildMsg};
pub use command::{Command, GuildRequest, GuildResult, Reply};
pub use create::create_guild;
pub use state::GuildState;
