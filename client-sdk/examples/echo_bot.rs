//! A bot that answers `!echo <text>` with `<text>`, as a reply.
//!
//! ```sh
//! ENRICHMENT_SERVER=http://127.0.0.1:8080 BOT_TOKEN=... \
//!     cargo run -p enrichment-client --example echo_bot
//! ```
//! The bot's application needs the message-content intent enabled (`PATCH
//! /applications/@me` with `flags` including 1 << 19) to read what people write.

use enrichment_client::gateway::{Event, Gateway, GatewayOptions};
use enrichment_client::protocol::gateway::intents;
use enrichment_client::protocol::models::MessageReference;
use enrichment_client::protocol::rest::CreateMessage;
use enrichment_client::{Client, Token};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server =
        std::env::var("ENRICHMENT_SERVER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("BOT_TOKEN").map_err(|_| "set BOT_TOKEN to the bot's token")?;
    let client = Client::builder(server).token(Token::Bot(token)).build()?;
    let options = GatewayOptions {
        intents: intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT,
        ..GatewayOptions::default()
    };
    let mut gateway = Gateway::connect(&client, options).await?;
    let mut me = None;
    while let Some(event) = gateway.next_event().await {
        match event? {
            Event::Ready(ready) => {
                println!(
                    "ready as {} in {} guilds",
                    ready.user.username,
                    ready.guilds.len()
                );
                me = Some(ready.user.id);
            }
            Event::MessageCreate(m) if Some(m.author.id) != me => {
                let Some(text) = m.content.strip_prefix("!echo ") else {
                    continue;
                };
                let reply = CreateMessage {
                    content: Some(text.to_owned()),
                    message_reference: Some(MessageReference {
                        kind: None,
                        message_id: Some(m.id),
                        channel_id: Some(m.channel_id),
                        guild_id: m.guild_id,
                        fail_if_not_exists: true,
                    }),
                    ..CreateMessage::default()
                };
                if let Err(e) = client.create_message(m.channel_id, &reply).await {
                    eprintln!("could not reply: {e}");
                }
            }
            Event::Disconnected { resuming, .. } => {
                eprintln!(
                    "connection lost; {}",
                    if resuming {
                        "resuming"
                    } else {
                        "identifying again"
                    }
                );
            }
            _ => {}
        }
    }
    Ok(())
}
