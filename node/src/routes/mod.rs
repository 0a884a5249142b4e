//! REST routes under `/api/v10` (and the `/api/v9` and unversioned aliases).
//!
//! Handlers are thin: authenticate, parse and validate, hand a command to the guild's actor
//! (or the account service), and shape the HTTP answer. Business rules live in the actors.

use actix_web::web;

pub mod auth;
pub mod channels;
pub mod emojis;
pub mod guilds;
pub mod invites;
pub mod messages;
pub mod private;
pub mod users;
pub mod webhooks;

/// Registers every API route on a scope.
///
/// actix tries a scope's routes in order and runs a regex for each one with a path parameter, so
/// a flat list of 77 routes cost a create-message request tens of microseconds before its
/// handler ran. The routes are therefore grouped by their first path segment, each group behind
/// a guard that compares that segment: a request only tries the routes of its own group. Within
/// a group the busiest routes come first; order decides between overlapping patterns, so a
/// literal segment stays ahead of a parameter in the same place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        group(&["auth", "users", "applications", "gateway", "oauth2"])
            .configure(auth::configure)
            .configure(private::configure_users)
            .configure(users::configure),
    )
    .service(
        group(&["guilds"])
            .configure(guilds::configure)
            .configure(emojis::configure),
    )
    .service(
        group(&["channels"])
            .configure(messages::configure)
            .configure(channels::configure)
            .configure(private::configure_channels)
            .configure(webhooks::configure_channels),
    )
    .service(group(&["invites"]).configure(invites::configure))
    .service(group(&["webhooks"]).configure(webhooks::configure));
}

/// A scope without a prefix of its own that only requests whose first segment below the API
/// prefix is one of `segments` enter.
fn group(segments: &'static [&'static str]) -> actix_web::Scope {
    web::scope("").guard(actix_web::guard::fn_guard(move |ctx| {
        first_segment(ctx.head().uri.path()).is_some_and(|s| segments.contains(&s))
    }))
}

/// The first path segment below `/api/v10`, `/api/v9` or `/api`.
fn first_segment(path: &str) -> Option<&str> {
    let rest = ["/api/v10/", "/api/v9/", "/api/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))?;
    rest.split('/').next().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::first_segment;

    #[test]
    fn the_first_segment_is_read_below_any_api_prefix() {
        assert_eq!(
            first_segment("/api/v10/channels/1/messages"),
            Some("channels")
        );
        assert_eq!(first_segment("/api/v9/guilds/1"), Some("guilds"));
        assert_eq!(first_segment("/api/users/@me"), Some("users"));
        assert_eq!(first_segment("/api/v10/gateway"), Some("gateway"));
        assert_eq!(first_segment("/api/v10/"), None);
        assert_eq!(first_segment("/healthz"), None);
    }
}
