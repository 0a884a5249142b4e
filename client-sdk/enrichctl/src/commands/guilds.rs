//! `guild`, `channel`, `invite`, `role`, `member`, `ban` and `audit-log`.

use enrichment_client::protocol::models::{ChannelType, Member, Role, audit_action};
use enrichment_client::protocol::rest::{
    AuditLogQuery, CreateBan, CreateChannel, CreateGuild, CreateInvite, GuildsQuery, MembersQuery,
    ModifyMember, RoleBody,
};
use enrichment_client::protocol::{Permissions, Snowflake, Timestamp};
use serde_json::json;

use crate::cli::{BanCmd, ChannelCmd, ChannelKind, GuildCmd, InviteCmd, MemberCmd, RoleCmd};
use crate::error::CliResult;
use crate::output::{BOLD, or_dash, paint, short_time};
use crate::session::Ctx;

/// What a delete-style command prints with `--json`.
fn done(ctx: &Ctx, what: &str, fields: serde_json::Value, human: String) -> CliResult<()> {
    if ctx.out.json {
        let mut v = json!({ "ok": true, "action": what });
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), fields.as_object()) {
            obj.extend(extra.clone());
        }
        return ctx.out.value(&v);
    }
    ctx.out.say(human);
    Ok(())
}

fn channel_type_name(t: ChannelType) -> &'static str {
    match t.0 {
        0 => "text",
        1 => "dm",
        2 => "voice",
        3 => "group-dm",
        4 => "category",
        5 => "announcement",
        13 => "stage",
        _ => "other",
    }
}

pub async fn guild(ctx: &mut Ctx, cmd: GuildCmd) -> CliResult<()> {
    let client = ctx.client().await?;
    match cmd {
        GuildCmd::Create { name } => {
            let g = client
                .create_guild(&CreateGuild {
                    name,
                    ..CreateGuild::default()
                })
                .await?;
            if ctx.out.json {
                return ctx.out.value(&g);
            }
            ctx.out
                .say(format!("created guild {} ({})", paint(BOLD, &g.name), g.id));
        }
        GuildCmd::List => {
            let guilds = client.current_user_guilds(&GuildsQuery::default()).await?;
            if ctx.out.json {
                return ctx.out.value(&guilds);
            }
            let rows = guilds
                .iter()
                .map(|g| {
                    vec![
                        g.id.to_string(),
                        g.name.clone(),
                        if g.owner { "yes" } else { "" }.to_owned(),
                    ]
                })
                .collect();
            ctx.out.table(&["ID", "NAME", "OWNER"], rows);
        }
        GuildCmd::Show { guild } => {
            let g = client.get_guild(guild).await?;
            if ctx.out.json {
                return ctx.out.value(&g);
            }
            ctx.out.fields(&[
                ("guild", paint(BOLD, &g.name)),
                ("id", g.id.to_string()),
                ("owner", g.owner_id.to_string()),
                ("description", or_dash(g.description.as_ref())),
                ("members", or_dash(g.approximate_member_count)),
                ("roles", g.roles.len().to_string()),
                (
                    "system channel",
                    or_dash(g.system_channel_id.map(|c| c.to_string())),
                ),
            ]);
            ctx.out.say("");
            role_table(ctx, g.roles);
        }
        GuildCmd::Delete { guild } => {
            client.delete_guild(guild).await?;
            return done(
                ctx,
                "guild_deleted",
                json!({ "guild_id": guild }),
                format!("deleted guild {guild}"),
            );
        }
    }
    Ok(())
}

pub async fn channel(ctx: &mut Ctx, cmd: ChannelCmd) -> CliResult<()> {
    let client = ctx.client().await?;
    match cmd {
        ChannelCmd::Create {
            guild,
            name,
            kind,
            topic,
            parent,
        } => {
            let kind = match kind {
                ChannelKind::Text => ChannelType::GUILD_TEXT,
                ChannelKind::Voice => ChannelType::GUILD_VOICE,
                ChannelKind::Category => ChannelType::GUILD_CATEGORY,
                ChannelKind::Announcement => ChannelType::GUILD_ANNOUNCEMENT,
                ChannelKind::Stage => ChannelType::GUILD_STAGE_VOICE,
            };
            let c = client
                .create_guild_channel(
                    guild,
                    &CreateChannel {
                        name,
                        kind: Some(kind),
                        topic,
                        parent_id: parent,
                        ..CreateChannel::default()
                    },
                )
                .await?;
            if ctx.out.json {
                return ctx.out.value(&c);
            }
            ctx.out.say(format!(
                "created {} channel {} ({}) in guild {guild}",
                channel_type_name(c.kind),
                paint(BOLD, format!("#{}", c.name)),
                c.id
            ));
        }
        ChannelCmd::List { guild } => {
            let mut channels = client.get_guild_channels(guild).await?;
            channels.sort_by_key(|c| (c.position, c.id));
            if ctx.out.json {
                return ctx.out.value(&channels);
            }
            let rows = channels
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        c.name.clone(),
                        channel_type_name(c.kind).to_owned(),
                        or_dash(c.parent_id),
                        c.topic.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            ctx.out
                .table(&["ID", "NAME", "TYPE", "CATEGORY", "TOPIC"], rows);
        }
    }
    Ok(())
}

pub async fn invite(ctx: &mut Ctx, cmd: InviteCmd) -> CliResult<()> {
    let client = ctx.client().await?;
    match cmd {
        InviteCmd::Create {
            channel,
            max_uses,
            max_age,
        } => {
            let inv = client
                .create_channel_invite(
                    channel,
                    &CreateInvite {
                        max_age,
                        max_uses,
                        ..CreateInvite::default()
                    },
                )
                .await?;
            if ctx.out.json {
                return ctx.out.value(&inv);
            }
            ctx.out.fields(&[
                ("invite", paint(BOLD, &inv.code)),
                (
                    "channel",
                    or_dash(
                        inv.channel
                            .as_ref()
                            .map(|c| format!("#{} ({})", c.name, c.id)),
                    ),
                ),
                (
                    "expires",
                    inv.expires_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "never".into()),
                ),
                (
                    "max uses",
                    match inv.max_uses {
                        Some(0) | None => "unlimited".into(),
                        Some(n) => n.to_string(),
                    },
                ),
                ("join with", format!("enrichctl invite accept {}", inv.code)),
            ]);
        }
        InviteCmd::Accept { code } => {
            let inv = client.accept_invite(&code).await?;
            if ctx.out.json {
                return ctx.out.value(&inv);
            }
            let guild = inv
                .guild
                .as_ref()
                .map(|g| format!("{} ({})", paint(BOLD, &g.name), g.id))
                .unwrap_or_else(|| "the guild".into());
            ctx.out.say(format!("joined {guild}"));
        }
    }
    Ok(())
}

fn role_table(ctx: &Ctx, mut roles: Vec<Role>) {
    roles.sort_by_key(|r| std::cmp::Reverse((r.position, r.id)));
    let rows = roles
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.name.clone(),
                r.position.to_string(),
                r.permissions.bits().to_string(),
                if r.color == 0 {
                    String::new()
                } else {
                    format!("#{:06x}", r.color)
                },
                [
                    (r.hoist, "hoisted"),
                    (r.mentionable, "mentionable"),
                    (r.managed, "managed"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            ]
        })
        .collect();
    ctx.out.table(
        &["ID", "NAME", "POSITION", "PERMISSIONS", "COLOR", "FLAGS"],
        rows,
    );
}

pub async fn role(ctx: &mut Ctx, cmd: RoleCmd) -> CliResult<()> {
    let client = ctx.client().await?;
    let body = |name: Option<String>, f: crate::cli::RoleFields| RoleBody {
        name,
        permissions: f.permissions.map(Permissions::from_bits_retain),
        color: f.color,
        hoist: f.hoist,
        mentionable: f.mentionable,
        ..RoleBody::default()
    };
    match cmd {
        RoleCmd::List { guild } => {
            let roles = client.get_guild_roles(guild).await?;
            if ctx.out.json {
                return ctx.out.value(&roles);
            }
            role_table(ctx, roles);
        }
        RoleCmd::Create {
            guild,
            name,
            fields,
        } => {
            let r = client
                .create_guild_role(guild, &body(Some(name), fields))
                .await?;
            if ctx.out.json {
                return ctx.out.value(&r);
            }
            ctx.out
                .say(format!("created role {} ({})", paint(BOLD, &r.name), r.id));
        }
        RoleCmd::Edit {
            guild,
            role,
            name,
            fields,
        } => {
            let r = client
                .modify_guild_role(guild, role, &body(name, fields))
                .await?;
            if ctx.out.json {
                return ctx.out.value(&r);
            }
            ctx.out
                .say(format!("updated role {} ({})", paint(BOLD, &r.name), r.id));
        }
        RoleCmd::Delete { guild, role } => {
            client.delete_guild_role(guild, role).await?;
            return done(
                ctx,
                "role_deleted",
                json!({ "guild_id": guild, "role_id": role }),
                format!("deleted role {role}"),
            );
        }
    }
    Ok(())
}

fn member_row(m: &Member) -> Vec<String> {
    let (id, name) = m
        .user
        .as_ref()
        .map(|u| (u.id.to_string(), u.username.clone()))
        .unwrap_or_default();
    vec![
        id,
        name,
        m.nick.clone().unwrap_or_default(),
        m.roles
            .iter()
            .map(Snowflake::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        short_time(m.joined_at),
    ]
}

const MEMBER_HEADER: [&str; 5] = ["USER ID", "USERNAME", "NICK", "ROLES", "JOINED"];

pub async fn member(ctx: &mut Ctx, cmd: MemberCmd) -> CliResult<()> {
    let client = ctx.client().await?;
    match cmd {
        MemberCmd::List { guild, limit } => {
            let members = client
                .list_guild_members(
                    guild,
                    &MembersQuery {
                        limit: Some(limit.into()),
                        after: None,
                    },
                )
                .await?;
            if ctx.out.json {
                return ctx.out.value(&members);
            }
            ctx.out
                .table(&MEMBER_HEADER, members.iter().map(member_row).collect());
        }
        MemberCmd::Show { guild, user } => {
            let m = client.get_guild_member(guild, user).await?;
            if ctx.out.json {
                return ctx.out.value(&m);
            }
            ctx.out.table(&MEMBER_HEADER, vec![member_row(&m)]);
        }
        MemberCmd::Kick { guild, user } => {
            client.remove_guild_member(guild, user).await?;
            return done(
                ctx,
                "member_removed",
                json!({ "guild_id": guild, "user_id": user }),
                format!("removed {user} from guild {guild}"),
            );
        }
        MemberCmd::Nick { guild, user, nick } => {
            let m = client
                .modify_guild_member(
                    guild,
                    user,
                    &ModifyMember {
                        nick: Some(nick),
                        ..ModifyMember::default()
                    },
                )
                .await?;
            if ctx.out.json {
                return ctx.out.value(&m);
            }
            ctx.out.say(match &m.nick {
                Some(n) => format!("{user} is now known as {}", paint(BOLD, n)),
                None => format!("cleared the nickname of {user}"),
            });
        }
        MemberCmd::AddRole { guild, user, role } => {
            client.add_guild_member_role(guild, user, role).await?;
            return done(
                ctx,
                "member_role_added",
                json!({ "guild_id": guild, "user_id": user, "role_id": role }),
                format!("gave role {role} to {user}"),
            );
        }
        MemberCmd::RemoveRole { guild, user, role } => {
            client.remove_guild_member_role(guild, user, role).await?;
            return done(
                ctx,
                "member_role_removed",
                json!({ "guild_id": guild, "user_id": user, "role_id": role }),
                format!("took role {role} from {user}"),
            );
        }
    }
    Ok(())
}

pub async fn ban(ctx: &mut Ctx, cmd: BanCmd) -> CliResult<()> {
    let client = ctx.client().await?;
    match cmd {
        BanCmd::List { guild } => {
            let bans = client.get_guild_bans(guild).await?;
            if ctx.out.json {
                return ctx.out.value(&bans);
            }
            let rows = bans
                .iter()
                .map(|b| {
                    vec![
                        b.user.id.to_string(),
                        b.user.username.clone(),
                        b.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            ctx.out.table(&["USER ID", "USERNAME", "REASON"], rows);
        }
        BanCmd::Add {
            guild,
            user,
            delete_message_seconds,
            reason,
        } => {
            let client = match reason {
                Some(r) => client.with_audit_reason(r),
                None => client,
            };
            client
                .create_guild_ban(
                    guild,
                    user,
                    &CreateBan {
                        delete_message_seconds,
                        ..CreateBan::default()
                    },
                )
                .await?;
            return done(
                ctx,
                "ban_added",
                json!({ "guild_id": guild, "user_id": user }),
                format!("banned {user} from guild {guild}"),
            );
        }
        BanCmd::Remove { guild, user } => {
            client.remove_guild_ban(guild, user).await?;
            return done(
                ctx,
                "ban_removed",
                json!({ "guild_id": guild, "user_id": user }),
                format!("lifted the ban on {user} in guild {guild}"),
            );
        }
    }
    Ok(())
}

pub async fn audit_log(
    ctx: &mut Ctx,
    guild: Snowflake,
    user_id: Option<Snowflake>,
    action: Option<u16>,
    limit: u8,
    before: Option<Snowflake>,
) -> CliResult<()> {
    let client = ctx.client().await?;
    let log = client
        .get_guild_audit_log(
            guild,
            &AuditLogQuery {
                user_id,
                action_type: action.map(i64::from),
                before,
                after: None,
                limit: Some(i64::from(limit)),
            },
        )
        .await?;
    if ctx.out.json {
        return ctx.out.value(&log);
    }
    let name_of = |id: Option<Snowflake>| {
        id.map(|id| {
            log.users
                .iter()
                .find(|u| u.id == id)
                .map_or_else(|| id.to_string(), |u| u.username.clone())
        })
        .unwrap_or_default()
    };
    let rows = log
        .audit_log_entries
        .iter()
        .map(|e| {
            let target = e.target_id.as_deref().unwrap_or_default();
            let target = target
                .parse::<u64>()
                .ok()
                .and_then(|t| {
                    log.users
                        .iter()
                        .find(|u| u.id.get() == t)
                        .map(|u| u.username.clone())
                })
                .unwrap_or_else(|| target.to_owned());
            vec![
                e.id.to_string(),
                short_time(Timestamp::from_unix_ms(e.id.unix_ms())),
                audit_action::name(e.action_type)
                    .map_or_else(|| e.action_type.to_string(), str::to_owned),
                name_of(e.user_id),
                target,
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    ctx.out.table(
        &["ENTRY ID", "TIME", "ACTION", "BY", "TARGET", "REASON"],
        rows,
    );
    Ok(())
}
