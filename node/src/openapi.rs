//! The OpenAPI 3 document, generated from the route annotations (`GET /api/v10/openapi.json`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Enrichment API",
        version = "10",
        description = "Discord API v10 compatible REST API. Authenticate with `Authorization: Bot <token>`, `Bearer <jwt>` or a bare user token."
    ),
    servers((url = "/api/v10")),
    paths(
        routes::auth::register,
        routes::auth::login,
        routes::auth::login_mfa,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::enable_totp,
        routes::auth::disable_totp,
        routes::users::get_me,
        routes::users::modify_me,
        routes::users::my_guilds,
        routes::users::my_member,
        routes::users::leave_guild,
        routes::users::get_user,
        routes::private::create_dm,
        routes::private::list_dms,
        routes::private::add_recipient,
        routes::private::remove_recipient,
        routes::private::list_relationships,
        routes::private::put_relationship,
        routes::private::delete_relationship,
        routes::users::create_application,
        routes::users::current_application,
        routes::users::current_application_alias,
        routes::users::modify_current_application,
        routes::users::get_application,
        routes::users::modify_application,
        routes::users::reset_bot_token,
        routes::users::authorize,
        routes::users::gateway,
        routes::users::gateway_bot,
        routes::guilds::create,
        routes::guilds::get_guild,
        routes::guilds::modify_guild,
        routes::guilds::delete_guild,
        routes::guilds::list_channels,
        routes::guilds::create_channel,
        routes::guilds::channel_positions,
        routes::guilds::list_roles,
        routes::guilds::create_role,
        routes::guilds::role_positions,
        routes::guilds::get_role,
        routes::guilds::modify_role,
        routes::guilds::delete_role,
        routes::guilds::list_members,
        routes::guilds::modify_current_member,
        routes::guilds::get_member,
        routes::guilds::modify_member,
        routes::guilds::kick,
        routes::guilds::add_member_role,
        routes::guilds::remove_member_role,
        routes::guilds::list_bans,
        routes::guilds::get_ban,
        routes::guilds::ban,
        routes::guilds::unban,
        routes::guilds::list_invites,
        routes::guilds::audit_log,
        routes::emojis::list,
        routes::emojis::create,
        routes::emojis::get_emoji,
        routes::emojis::modify,
        routes::emojis::remove,
        routes::webhooks::create,
        routes::webhooks::list_channel,
        routes::webhooks::list_guild,
        routes::webhooks::get_webhook,
        routes::webhooks::modify_webhook,
        routes::webhooks::delete_webhook,
        routes::webhooks::get_with_token,
        routes::webhooks::modify_with_token,
        routes::webhooks::delete_with_token,
        routes::webhooks::execute,
        routes::webhooks::get_message,
        routes::webhooks::edit_message,
        routes::webhooks::delete_message,
        routes::channels::get_channel,
        routes::channels::modify_channel,
        routes::channels::delete_channel,
        routes::channels::edit_overwrite,
        routes::channels::delete_overwrite,
        routes::channels::list_invites,
        routes::channels::create_invite,
        routes::channels::typing,
        routes::messages::list_messages,
        routes::messages::create_message,
        routes::messages::get_message,
        routes::messages::edit_message,
        routes::messages::delete_message,
        routes::messages::bulk_delete,
        routes::messages::list_pins_new,
        routes::messages::add_reaction,
        routes::messages::remove_own_reaction,
        routes::messages::remove_user_reaction,
        routes::messages::list_reactions,
        routes::messages::remove_all_reactions,
        routes::messages::remove_emoji_reactions,
        routes::messages::list_pins,
        routes::messages::pin,
        routes::messages::unpin,
        routes::messages::pin_new,
        routes::messages::unpin_new,
        routes::invites::get_invite,
        routes::invites::accept_invite,
        routes::invites::delete_invite
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "auth"), (name = "users"), (name = "applications"), (name = "gateway"), (name = "guilds"),
        (name = "channels"), (name = "roles"), (name = "members"), (name = "bans"), (name = "invites"),
        (name = "messages"), (name = "reactions"), (name = "pins"), (name = "audit-log"), (name = "webhooks"), (name = "emojis")
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Authorization"))),
        );
    }
}

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}
