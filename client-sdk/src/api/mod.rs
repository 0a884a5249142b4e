//! Typed calls, one method per server route, named after Discord's documentation in snake
//! case (`create_message`, `get_guild_channels`, ...). Bodies and answers are the `protocol`
//! crate's types, so the SDK and the server cannot disagree about a field.

mod auth;
mod channels;
mod guilds;
mod messages;
mod users;
mod webhooks;

pub use users::{AuthorizeQuery, AuthorizeResponse};
