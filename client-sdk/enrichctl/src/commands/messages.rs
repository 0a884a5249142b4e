//! `send`, `history`, `tail` and `webhook`.

use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use enrichment_client::Client;
use enrichment_client::gateway::{Event, Gateway, GatewayError, GatewayOptions};
use enrichment_client::protocol::Snowflake;
use enrichment_client::protocol::gateway::intents;
use enrichment_client::protocol::models::Message;
use enrichment_client::protocol::rest::{
    CreateMessage, CreateWebhook, ExecuteWebhook, MessagesQuery,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::WebhookCmd;
use crate::error::{CliError, CliResult, Exit};
use crate::output::{BOLD, DIM, paint, short_time, status};
use crate::session::Ctx;

/// The most messages one history request returns.
const PAGE: u32 = 100;

/// One message as a human reads it: `[time] author: content`.
fn show(ctx: &Ctx, m: &Message) -> CliResult<()> {
    if ctx.out.json {
        return ctx.out.line(m);
    }
    ctx.out.say(format!(
        "{} {}: {}",
        paint(DIM, format!("[{}]", short_time(m.timestamp))),
        paint(BOLD, &m.author.username),
        m.content
    ));
    Ok(())
}

/// A message's text from the command line, or from standard input for `-`.
fn message_text(text: String) -> CliResult<String> {
    let content = if text == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::local(format!("cannot read standard input: {e}")))?;
        s.trim_end_matches('\n').to_owned()
    } else {
        text
    };
    if content.trim().is_empty() {
        return Err(CliError::usage("the message is empty"));
    }
    Ok(content)
}

pub async fn send(ctx: &mut Ctx, channel: Snowflake, text: String) -> CliResult<()> {
    let m = post(ctx, channel, text).await?;
    if ctx.out.json {
        return ctx.out.value(&m);
    }
    ctx.out.say(format!("sent message {}", m.id));
    Ok(())
}

/// Posts `text` (`-`: standard input) in a channel.
async fn post(ctx: &mut Ctx, channel: Snowflake, text: String) -> CliResult<Message> {
    let content = message_text(text)?;
    let client = ctx.client().await?;
    Ok(client
        .create_message(
            channel,
            &CreateMessage {
                content: Some(content),
                ..CreateMessage::default()
            },
        )
        .await?)
}

/// Opens (or finds) the DM with `user` and sends `text` in it.
pub async fn dm(ctx: &mut Ctx, user: Snowflake, text: String) -> CliResult<()> {
    let channel = ctx.client().await?.create_dm(user).await?;
    let m = post(ctx, channel.id, text).await?;
    if ctx.out.json {
        return ctx.out.value(&m);
    }
    ctx.out
        .say(format!("sent message {} in DM {}", m.id, channel.id));
    Ok(())
}

/// The latest `limit` messages (before `before`), oldest first, paging 100 at a time with a
/// progress bar on a terminal when more than one page is needed.
pub async fn history(
    ctx: &mut Ctx,
    channel: Snowflake,
    limit: u32,
    before: Option<Snowflake>,
) -> CliResult<()> {
    let client = ctx.client().await?;
    let bar = if limit > PAGE && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(limit.into());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {pos}/{len} messages {wide_bar} {eta}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut messages: Vec<Message> = Vec::new();
    let mut cursor = before;
    while (messages.len() as u32) < limit {
        let want = (limit - messages.len() as u32).min(PAGE);
        let page = client
            .get_channel_messages(
                channel,
                &MessagesQuery {
                    limit: Some(want.into()),
                    before: cursor,
                    ..MessagesQuery::default()
                },
            )
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        };
        let got = page.len() as u32;
        // Pages come newest first; the next one starts below the oldest seen.
        cursor = page.iter().map(|m| m.id).min().or(cursor);
        messages.extend(page);
        bar.set_position(messages.len() as u64);
        if got < want {
            break;
        }
    }
    bar.finish_and_clear();
    messages.sort_by_key(|m| m.id);
    if ctx.out.json {
        return ctx.out.value(&messages);
    }
    for m in &messages {
        show(ctx, m)?;
    }
    Ok(())
}

/// Prints the channel's new messages as they arrive. The SDK resumes dropped connections
/// without losing events; when the session itself is lost, the messages sent meanwhile are
/// read back over REST so the tail has no gap. An access token that expires while tailing
/// is refreshed and the gateway connected again.
pub async fn tail(ctx: &mut Ctx, channel: Snowflake) -> CliResult<()> {
    let mut client = ctx.client().await?;
    // Fails early, with the right exit code, for an unknown or hidden channel.
    let info = client.get_channel(channel).await?;
    let options = GatewayOptions {
        intents: intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT,
        ..GatewayOptions::default()
    };
    let mut gateway = Gateway::connect(&client, options.clone()).await?;
    // The newest message already in the channel: everything after it is printed, once.
    let mut last = info.last_message_id.unwrap_or(Snowflake(0));
    let mut sessions = 0u32;
    let mut renewed: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            e = gateway.next_event() => e,
            _ = tokio::signal::ctrl_c() => {
                gateway.close().await;
                return Ok(());
            }
        };
        let Some(event) = event else {
            return Err(CliError::new(
                Exit::Unavailable,
                "the gateway session ended",
            ));
        };
        let event = match event {
            Ok(e) => e,
            // One unreadable dispatch; the session goes on.
            Err(e @ GatewayError::Decode { .. }) => {
                status(format!("skipped an event: {e}"));
                continue;
            }
            // The token was refused on a reconnect: it expired while tailing. Renew it and
            // start over (at most once a minute, so a revoked login ends the tail).
            Err(GatewayError::Closed { code: 4004, .. })
                if renewed.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) =>
            {
                status("the gateway refused the token; renewing the login");
                renewed = Some(Instant::now());
                client = ctx.client().await?;
                gateway = Gateway::connect(&client, options.clone()).await?;
                continue;
            }
            Err(e) => return Err(enrichment_client::Error::Gateway(e).into()),
        };
        match event {
            Event::Ready(_) => {
                sessions += 1;
                if sessions == 1 {
                    status(format!(
                        "tailing #{} ({channel}); Ctrl-C to stop",
                        info.name
                    ));
                } else {
                    status("new gateway session; catching up on missed messages");
                    // The access token may have expired since the tail started.
                    client = ctx.client().await?;
                }
                // What was sent before this session followed the channel (none, usually).
                last = catch_up(ctx, &client, channel, last).await?.unwrap_or(last);
            }
            Event::Resumed => status("resumed"),
            Event::Disconnected { resuming, .. } => status(if resuming {
                "connection lost; resuming"
            } else {
                "connection lost; reconnecting"
            }),
            // Ids only grow within a channel: anything not newer was already shown.
            Event::MessageCreate(m) if m.message.channel_id == channel && m.message.id > last => {
                last = m.message.id;
                show(ctx, &m.message)?;
            }
            _ => {}
        }
    }
}

/// Prints messages after `after` (up to one page); returns the newest printed.
async fn catch_up(
    ctx: &Ctx,
    client: &Client,
    channel: Snowflake,
    after: Snowflake,
) -> CliResult<Option<Snowflake>> {
    let mut missed = client
        .get_channel_messages(
            channel,
            &MessagesQuery {
                limit: Some(PAGE.into()),
                after: Some(after),
                ..MessagesQuery::default()
            },
        )
        .await?;
    missed.sort_by_key(|m| m.id);
    for m in &missed {
        show(ctx, m)?;
    }
    Ok(missed.last().map(|m| m.id))
}

pub async fn webhook(ctx: &mut Ctx, cmd: WebhookCmd) -> CliResult<()> {
    match cmd {
        WebhookCmd::Create { channel, name } => {
            let client = ctx.client().await?;
            let hook = client
                .create_webhook(channel, &CreateWebhook { name, avatar: None })
                .await?;
            if ctx.out.json {
                return ctx.out.value(&hook);
            }
            ctx.out.fields(&[
                ("webhook id", hook.id.to_string()),
                ("token", hook.token.clone().unwrap_or_default()),
                (
                    "post with",
                    format!("enrichctl webhook send {} TOKEN \"text\"", hook.id),
                ),
            ]);
        }
        WebhookCmd::List { channel } => {
            let client = ctx.client().await?;
            let hooks = client.get_channel_webhooks(channel).await?;
            if ctx.out.json {
                return ctx.out.value(&hooks);
            }
            let rows = hooks
                .iter()
                .map(|h| {
                    vec![
                        h.id.to_string(),
                        h.name.clone().unwrap_or_default(),
                        h.user
                            .as_ref()
                            .map(|u| u.username.clone())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            ctx.out.table(&["WEBHOOK ID", "NAME", "CREATED BY"], rows);
        }
        WebhookCmd::Delete { webhook } => {
            ctx.client().await?.delete_webhook(webhook).await?;
            if ctx.out.json {
                return ctx
                    .out
                    .value(&serde_json::json!({"ok": true, "action": "webhook_deleted", "webhook_id": webhook}));
            }
            ctx.out.say(format!("deleted webhook {webhook}"));
        }
        WebhookCmd::Send {
            webhook,
            token,
            text,
            username,
        } => {
            let content = message_text(text)?;
            // The token is the authority: no login needed.
            let m = ctx
                .anonymous()?
                .execute_webhook(
                    webhook,
                    &token,
                    &ExecuteWebhook {
                        content: Some(content),
                        username,
                        ..ExecuteWebhook::default()
                    },
                )
                .await?;
            if ctx.out.json {
                return ctx.out.value(&m);
            }
            ctx.out
                .say(format!("sent message {} as {}", m.id, m.author.username));
        }
    }
    Ok(())
}
