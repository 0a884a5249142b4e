//! Creating a guild: the one guild write that happens before the guild has an actor.

use enrichment_protocol::models::{Channel, ChannelType, Guild, Role};
use enrichment_protocol::rest::CreateGuild;
use enrichment_protocol::{ApiError, ErrorCode, Permissions, Snowflake, Timestamp};
use enrichment_storage::{GuildWrite, MemberRecord};

use super::actor::GuildContext;
use super::commit::{Change, apply};

/// Creates a guild owned by `owner` with an @everyone role (id = guild id) and a `general`
/// text channel that is also the system channel, all in one atomic batch.
pub async fn create_guild(
    ctx: &GuildContext,
    owner: Snowflake,
    body: CreateGuild,
) -> Result<Guild, ApiError> {
    body.validate()?;
    let joined = ctx
        .stores
        .guilds
        .user_guilds(owner)
        .await
        .map_err(GuildContext::store_error)?;
    if joined.len() >= ctx.limits.max_guilds_per_user {
        return Err(ApiError::new(
            400,
            ErrorCode::MaxGuilds,
            format!(
                "Maximum number of guilds reached ({})",
                ctx.limits.max_guilds_per_user
            ),
        ));
    }
    let id = ctx.ids.next_id();
    let general = Channel {
        id: ctx.ids.next_id(),
        kind: ChannelType::GUILD_TEXT,
        guild_id: Some(id),
        position: 0,
        permission_overwrites: Vec::new(),
        name: "general".into(),
        topic: None,
        nsfw: false,
        last_message_id: None,
        bitrate: None,
        user_limit: None,
        rate_limit_per_user: 0,
        parent_id: None,
        last_pin_timestamp: None,
        flags: 0,
        private: None,
    };
    let everyone = Role::everyone(id, Permissions::DEFAULT_EVERYONE);
    let guild = Guild {
        icon: body.icon,
        system_channel_id: Some(general.id),
        description: body.description,
        ..Guild::new(id, body.name.trim(), owner)
    };
    let member = MemberRecord::new(id, owner, Vec::new(), Timestamp::now());
    let writes = vec![
        GuildWrite::PutGuild(guild.clone()),
        GuildWrite::PutRole {
            guild_id: id,
            role: everyone.clone(),
        },
        GuildWrite::PutChannel(general),
        GuildWrite::PutMember(member),
    ];
    apply(
        &ctx.stores,
        Change::Guild {
            guild_id: id,
            writes,
        },
    )
    .await
    .map_err(GuildContext::store_error)?;
    Ok(Guild {
        roles: vec![everyone],
        ..guild
    })
}
