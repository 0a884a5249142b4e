//! REST routes under `/api/v10` (and the `/api/v9` and unversioned aliases).
//!
//! Handlers are thin: authenticate, parse and validate, hand a command to the guild's actor
//! (or the account service), and shape the HTTP answer. Business rules live in the actors.

use actix_web::web;

pub mod auth;
pub mod channels;
pub mod guilds;
pub mod invites;
pub mod messages;
pub mod users;

/// Registers every API route on a scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    auth::configure(cfg);
    users::configure(cfg);
    guilds::configure(cfg);
    channels::configure(cfg);
    messages::configure(cfg);
    invites::configure(cfg);
}
