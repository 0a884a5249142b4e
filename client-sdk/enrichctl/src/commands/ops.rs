//! `bot create` and the `cluster` commands.

use enrichment_client::AuthorizeQuery;
use enrichment_client::protocol::Permissions;
use enrichment_client::protocol::admin::{
    ClusterRing, GuildOwner, NodeInfo, NodeStatus, SigningKeys,
};
use enrichment_client::protocol::rest::{AuthorizeBot, CreateApplication};
use serde_json::json;

use crate::cli::{BotCmd, ClusterCmd, KeysCmd};
use crate::error::{CliError, CliResult, Exit};
use comfy_table::{Cell, Color};

use crate::output::{BOLD, YELLOW, duration, paint};
use crate::session::Ctx;

pub async fn bot(ctx: &mut Ctx, cmd: BotCmd) -> CliResult<()> {
    let BotCmd::Create {
        name,
        guild,
        permissions,
    } = cmd;
    let client = ctx.client().await?;
    let app = client
        .create_application(&CreateApplication {
            name,
            description: None,
        })
        .await?;
    let token = client.reset_bot_token(app.id).await?.token;
    let permissions = Permissions::from_bits_retain(permissions);
    let added = client
        .authorize_bot(
            &AuthorizeQuery {
                client_id: app.id,
                scope: "bot".into(),
                permissions: Some(permissions),
            },
            &AuthorizeBot {
                guild_id: guild,
                permissions: Some(permissions),
                authorize: true,
            },
        )
        .await;
    if let Err(e) = added {
        // The application exists and its token was issued: say so, or the token is lost.
        let mut err = CliError::from(e);
        err.message = format!(
            "created application {} with bot token {token}, but adding the bot to guild {guild} failed: {}",
            app.id, err.message
        );
        return Err(err);
    }
    let bot_id = app.bot.as_ref().map(|b| b.id);
    if ctx.out.json {
        return ctx.out.value(&json!({
            "application": app,
            "bot_user_id": bot_id,
            "guild_id": guild,
            "token": token,
        }));
    }
    ctx.out.fields(&[
        ("bot", paint(BOLD, &app.name)),
        ("application id", app.id.to_string()),
        (
            "bot user id",
            bot_id.map(|b| b.to_string()).unwrap_or_default(),
        ),
        ("added to guild", guild.to_string()),
        ("permissions", permissions.bits().to_string()),
    ]);
    ctx.out.say("");
    ctx.out.say(format!(
        "token (shown once; keep it secret): {}",
        paint(BOLD, &token)
    ));
    Ok(())
}

/// Coloured on a terminal only (comfy-table leaves styles out otherwise).
fn status_cell(s: NodeStatus) -> Cell {
    let cell = Cell::new(s);
    match s {
        NodeStatus::Joining => cell.fg(Color::Cyan),
        NodeStatus::Healthy => cell.fg(Color::Green),
        NodeStatus::Draining => cell.fg(Color::Yellow),
    }
}

fn node_rows(nodes: &[NodeInfo]) -> Vec<Vec<Cell>> {
    nodes
        .iter()
        .map(|n| {
            vec![
                Cell::new(&n.id),
                status_cell(n.status),
                Cell::new(&n.rest_address),
                Cell::new(&n.gateway_url),
                Cell::new(duration(n.uptime_secs)),
                Cell::new(&n.version),
                Cell::new(n.gateway_connections),
                Cell::new(n.sessions),
                Cell::new(n.guild_actors),
                Cell::new(backends(n)),
            ]
        })
        .collect()
}

/// `postgres, s3, redis up`: where the node keeps its data, and whether Redis answers.
fn backends(n: &NodeInfo) -> String {
    let redis = match n.shared_state.as_str() {
        "" | "off" => String::new(),
        state => format!("redis {state}"),
    };
    [n.storage.as_str(), n.blobs.as_str(), redis.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

const NODE_HEADER: [&str; 10] = [
    "NODE",
    "STATUS",
    "REST",
    "GATEWAY",
    "UPTIME",
    "VERSION",
    "CONNECTIONS",
    "SESSIONS",
    "GUILD ACTORS",
    "BACKENDS",
];

/// Admin errors: a 401 here is about the admin token, not the user's login.
fn admin_error(e: enrichment_client::Error) -> CliError {
    if e.is_unauthorized() {
        return CliError::new(Exit::Unauthorized, "the server refused the admin token").with_hint(
            "pass the node's admin token with --admin-token or ENRICHMENT_ADMIN_TOKEN (a user's \
             login does not work here); a node keeps a generated one in {data_dir}/admin-token",
        );
    }
    if e.is_not_found() {
        return CliError::new(Exit::NotFound, format!("not found: {e}"))
            .with_hint("`enrichctl cluster status` lists the node ids");
    }
    e.into()
}

/// Which node should own a guild, and which holds it now.
fn say_owner(ctx: &mut Ctx, ring: &ClusterRing, owner: &GuildOwner) {
    let node = ring.nodes.iter().find(|n| n.id == owner.node_id);
    ctx.out.say(format!(
        "guild {} is owned by node {}{}",
        owner.guild_id,
        paint(BOLD, &owner.node_id),
        node.map(|n| format!(" ({}, {})", n.rest_address, n.status))
            .unwrap_or_default()
    ));
    match &owner.lease {
        Some(l) if l.node_id != owner.node_id => ctx.out.say(format!(
            "its lease is held by node {} (generation {}, epoch {}): the guild is moving",
            l.node_id, l.generation, l.epoch
        )),
        Some(l) => ctx.out.say(format!(
            "lease: epoch {}, generation {}",
            l.epoch, l.generation
        )),
        None => {}
    }
}

fn key_table(ctx: &mut Ctx, keys: &SigningKeys) {
    let rows = keys
        .kids
        .iter()
        .map(|kid| {
            let signs = if *kid == keys.current_kid {
                Cell::new("signs new tokens").fg(Color::Green)
            } else {
                Cell::new("verifies")
            };
            vec![Cell::new(kid), signs]
        })
        .collect();
    ctx.out.table(&["KID", "USE"], rows);
}

pub async fn cluster(ctx: &mut Ctx, cmd: ClusterCmd) -> CliResult<()> {
    let admin = ctx.admin()?;
    match cmd {
        ClusterCmd::Status => {
            let status = admin.cluster_status().await.map_err(admin_error)?;
            if ctx.out.json {
                return ctx.out.value(&status);
            }
            ctx.out.table(&NODE_HEADER, node_rows(&status.nodes));
        }
        ClusterCmd::Owner { guild } => {
            let ring = admin.cluster_ring(Some(guild)).await.map_err(admin_error)?;
            match &ring.owner {
                Some(owner) if !ctx.out.json => say_owner(ctx, &ring, owner),
                Some(owner) => return ctx.out.value(owner),
                None => ctx
                    .out
                    .say(format!("no node is ready to own guild {guild}")),
            }
        }
        ClusterCmd::Ring { guild } => {
            let ring = admin.cluster_ring(guild).await.map_err(admin_error)?;
            if ctx.out.json {
                return ctx.out.value(&ring);
            }
            if let Some(owner) = &ring.owner {
                say_owner(ctx, &ring, owner);
                return Ok(());
            }
            let rows = ring
                .nodes
                .iter()
                .map(|n| {
                    vec![
                        Cell::new(&n.id),
                        status_cell(n.status),
                        Cell::new(&n.rest_address),
                        Cell::new(&n.gateway_url),
                    ]
                })
                .collect();
            ctx.out.say(format!("ring epoch {}", ring.epoch));
            ctx.out.table(&["NODE", "STATUS", "REST", "GATEWAY"], rows);
        }
        ClusterCmd::Keys(cmd) => {
            let (keys, rotated) = match cmd {
                KeysCmd::List => (admin.signing_keys().await.map_err(admin_error)?, false),
                KeysCmd::Rotate => (admin.rotate_signing_key().await.map_err(admin_error)?, true),
            };
            if ctx.out.json {
                return ctx.out.value(&keys);
            }
            key_table(ctx, &keys);
            if rotated {
                ctx.out.say(format!(
                    "new tokens are signed with {}; tokens signed before still verify until they expire",
                    paint(BOLD, &keys.current_kid)
                ));
            }
        }
        ClusterCmd::Reload { guild } => {
            match admin.reload_guild(guild).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {
                    return Err(CliError::new(
                        Exit::NotFound,
                        format!("guild {guild}'s actor does not run on this node"),
                    )
                    .with_hint(
                        "`enrichctl cluster owner GUILD` names the node that runs it; point \
                         --api at that node (an idle guild runs nowhere until it is used)",
                    ));
                }
                Err(e) => return Err(admin_error(e)),
            }
            if ctx.out.json {
                return ctx
                    .out
                    .value(&json!({ "guild_id": guild, "reloaded": true }));
            }
            ctx.out.say(format!(
                "guild {}'s actor reloads from storage; the sessions that follow it stay",
                paint(BOLD, guild)
            ));
        }
        ClusterCmd::Drain { node } => {
            let n = admin.drain_node(&node).await.map_err(admin_error)?;
            if ctx.out.json {
                return ctx.out.value(&n);
            }
            ctx.out.say(format!(
                "node {} is {}: its {} gateway connection(s) were told to reconnect elsewhere, and it takes no new ones",
                paint(BOLD, &n.id),
                paint(YELLOW, n.status),
                n.gateway_connections
            ));
        }
    }
    Ok(())
}
